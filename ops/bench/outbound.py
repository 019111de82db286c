"""Outbound scenario: replies queued through the API, sent by one ``switchboard sender`` role
process to an SMTP relay in its own process (ops/bench/smtp_sink.py).

Measures replies/s sent (first queued to last sent) and queued->sent latency per reply (the
outbox row's created_at to sent_at), and ``cpu_us_per_msg_<role>``, the CPU of the ``api`` and the
``sender`` per reply. Email only: WeChat's API cannot run here, and a stand-in
would measure the stand-in.
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time

import aiohttp
import redis.asyncio as aioredis
from sqlalchemy import select

from core import keys
from core.blobs import BlobStore
from core.bus import Bus
from core.envelope import Envelope
from core.settings import load
from normalizer.worker import Normalizer
from ops.bench.harness import SUPPORT, System, cpu_per_msg, free_port
from ticket_service.store import admin
from ticket_service.store.db import Database
from ticket_service.store.tables import outbox, tickets

SECRET = "bench-outbound-secret"
MAIL = (b"From: Customer <customer@example.net>\r\nTo: " + SUPPORT.encode() + b"\r\nSubject: Order 1042\r\n"
        b"Message-ID: <bench-customer-1@example.net>\r\n\r\nWhere is my order?\r\n")


async def _ticket(system: System, account: int) -> tuple[int, str]:
    """One email ticket to answer (the normalizer in drain mode) and an API key of its tenant."""
    client = aioredis.Redis.from_url(system.redis_url)
    blobs = BlobStore(system.dir / "data" / "blobs")
    bus = Bus(client, blobs, 1 << 20)
    db = Database(system.database_url)
    try:
        await bus.publish(keys.ingest_stream("email"), Envelope(
            tenant="bench", channel="email", account=str(account), payload=MAIL, content_type="message/rfc822"))
        settings = load(env={}).replace(data_dir=system.dir / "data", block_ms=50)
        await Normalizer(bus, settings, db, blobs).run(drain=True)
        async with db.write() as conn:
            ticket = (await conn.execute(select(tickets.c.id))).scalar_one()
            key = await admin.create_api_key(conn, await admin.tenant_id(conn, "bench"))
        return ticket, key
    finally:
        await client.aclose()
        await db.dispose()


async def _post(http: aiohttp.ClientSession, url: str, key: str, texts: list[str]) -> int:
    queued = 0
    for text in texts:
        async with http.post(url, json={"text": text}, headers={"Authorization": f"Bearer {key}"}) as resp:
            queued += resp.status == 201
    return queued


async def _rows(db: Database) -> list:
    async with db.read() as conn:
        return (await conn.execute(select(outbox.c.status, outbox.c.created_at, outbox.c.sent_at))).all()


def _start_sink(port: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ops.bench.smtp_sink", "--port", str(port)])


def _pct(values: list[int], q: float) -> float:
    return float(statistics.quantiles(values, n=100)[int(q) - 1]) if len(values) > 1 else float(values[0])


async def run(replies: int = 2000, connections: int = 8, database_url: str | None = None) -> dict:
    system = System(database_url)
    sink = None
    try:
        account = await system.start()
        ticket, key = await _ticket(system, account)
        sink_port, api_port = free_port(), free_port()
        sink = _start_sink(sink_port)
        system.wait_port(sink_port)
        system.role("api", http_port=api_port, secret_key=SECRET)
        system.role("sender", secret_key=SECRET, smtp_relay=f"smtp://127.0.0.1:{sink_port}")
        system.wait_port(api_port)
        system.wait_workers("sender", 1)
        url = f"http://127.0.0.1:{api_port}/api/v1/tickets/{ticket}/messages"
        texts = [f"Your parcel {i} left the depot today." for i in range(replies)]
        db = Database(system.database_url)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections)) as http:
            cpu_before = system.cpu_seconds()
            started = time.perf_counter()
            queued = sum(await asyncio.gather(*(_post(http, url, key, texts[i::connections])
                                                for i in range(connections))))
        if queued != replies:
            raise RuntimeError(f"{queued} of {replies} replies queued")
        while (rows := await _rows(db)) and any(r.status == "queued" for r in rows):
            system.check()
            if time.perf_counter() - started > 900:
                raise RuntimeError("replies still queued after 15 minutes")
            await asyncio.sleep(0.1)
        cpu = cpu_per_msg(cpu_before, system.cpu_seconds(), replies)
        await db.dispose()
        if {r.status for r in rows} != {"sent"}:
            raise RuntimeError(f"replies ended {sorted({r.status for r in rows})}, not all sent")
        waits = sorted(r.sent_at - r.created_at for r in rows)
        span_ms = max(r.sent_at for r in rows) - min(r.created_at for r in rows)
        return {"scenario": "outbound", "replies": replies, "connections": connections, "senders": 1,
                "channel": "email", "sent": len(rows), "sent_per_s": round(1000 * len(rows) / max(span_ms, 1), 1),
                "queued_to_sent_p50_ms": round(_pct(waits, 50), 1),
                "queued_to_sent_p99_ms": round(_pct(waits, 99), 1),
                "seconds": round(time.perf_counter() - started, 2), **cpu}
    finally:
        if sink is not None:
            sink.terminate()
            sink.wait(10)
        system.stop()
