"""Calls scenario: a call center pushes signed bulk call records into one gateway process.

Measures records/s accepted by the gateway (verify, validate every record, XADD one entry
per post, answer 202) and records/s stored end to end by one normalizer (a message per call);
``cpu_us_per_msg_<role>``: CPU of each role and Redis per record.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time

import aiohttp
from sqlalchemy import func, select

from ops.bench.harness import System, cpu_per_msg, free_port
from ticket_service.store import admin
from ticket_service.store.db import Database
from ticket_service.store.tables import messages

SECRET = "bench-cti-secret"


def posts(records: int, batch: int) -> list[bytes]:
    """Bodies of ``records`` distinct completed calls, ``batch`` per post, from 2,000 callers."""
    out = []
    for first in range(0, records, batch):
        out.append(json.dumps({"records": [
            {"id": f"bench-{i}", "status": "completed", "direction": "inbound", "from": f"+86138{i % 2000:08d}",
             "to": "+862161234567", "agent": f"agent-{i % 40}", "queue": "售后", "duration": 30 + i % 600,
             "started_at": 1795420800000 + i * 1000, "recording_url": f"https://rec.example.cn/{i}.mp3",
             "ivr_path": ["main", str(i % 4)]}
            for i in range(first, min(first + batch, records))
        ]}).encode())
    return out


def _headers(body: bytes) -> dict:
    ts = str(int(time.time()))
    sig = hmac.new(SECRET.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {"X-SB-Timestamp": ts, "X-SB-Signature": sig, "Content-Type": "application/json"}


async def _client(http: aiohttp.ClientSession, url: str, bodies: list[bytes]) -> int:
    accepted = 0
    for body in bodies:
        async with http.post(url, data=body, headers=_headers(body)) as resp:
            if resp.status == 202:
                accepted += (await resp.json())["records"]
    return accepted


async def _stored(db: Database) -> int:
    async with db.read() as conn:
        return (await conn.execute(select(func.count(messages.c.id)))).scalar_one()


async def run(records: int = 20_000, batch: int = 1000, connections: int = 4,
              database_url: str | None = None) -> dict:
    system = System(database_url)
    try:
        await system.start()
        db = Database(system.database_url)
        async with db.write() as conn:
            tenant = await admin.tenant_id(conn, "bench")
            await admin.add_account(conn, tenant, "voice", "bench", {"secret": SECRET, "region": "CN"})
        port = free_port()
        system.role("gateway", http_port=port)
        system.role("normalizer", batch_size=128)
        system.wait_port(port)
        system.wait_workers("normalizer", 1)
        bodies = posts(records, batch)
        url = f"http://127.0.0.1:{port}/voice/bench/records"
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections)) as http:
            cpu_before = system.cpu_seconds()
            started = time.perf_counter()
            shares = [bodies[i::connections] for i in range(connections)]
            accepted = sum(await asyncio.gather(*(_client(http, url, s) for s in shares)))
            took = time.perf_counter() - started
        if accepted != records:
            raise RuntimeError(f"{accepted} of {records} records accepted")
        while (stored := await _stored(db)) < records:
            if time.perf_counter() - started > 900:
                raise RuntimeError(f"{stored} of {records} calls stored within 15 minutes")
            await asyncio.sleep(0.1)
        done = time.perf_counter() - started
        cpu = cpu_per_msg(cpu_before, system.cpu_seconds(), records)
        await db.dispose()
        return {"scenario": "calls", "records": records, "batch": batch, "connections": connections,
                "gateways": 1, "normalizers": 1, "accepted_per_s": round(accepted / took, 1),
                "stored_per_s": round(records / done, 1), "seconds": round(done, 2), **cpu}
    finally:
        system.stop()
