"""Agent writes scenario: how long an agent's change takes while normalizers store a burst.

A ``gateway``, ``normalizers`` × ``normalizer`` and the ``api`` role. After a warm-up of
WeChat pushes (one ticket per fan), ``agents`` concurrent clients change their own ticket's
status through the REST API (``PATCH /api/v1/tickets/{id}``, pending and open in turn, each
request sent ``pause_s`` after the one before is answered): first with nothing else running
(``idle_*``), then while the normalizers work off a backlog of N pushes that waited in
``ingest.wechat`` (``busy_*``). Reported: the PATCH's p50/p99/max latency in each phase and how many were
made, and ``stored_per_s`` of the normalizers during the busy phase. On SQLite the API's
write transaction waits in the writers' queue with the normalizers' batches
(``ticket_service.store.db.WriterQueue``): the busy figures are what that line costs an agent.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
from sqlalchemy import select

from ops.bench import latency, wechat
from ops.bench.harness import System, free_port
from ops.bench.latency import percentile
from ticket_service.store import admin
from ticket_service.store.db import Database
from ticket_service.store.tables import tickets

SECRET = "bench-agent-writes-secret"


async def _agent(http: aiohttp.ClientSession, url: str, key: str, until, took: list[float],
                 pause_s: float = 0.0) -> None:
    status = "pending"
    while True:  # at least one write in each phase, however short
        started = time.perf_counter()
        async with http.patch(url, json={"status": status}, headers={"Authorization": f"Bearer {key}"}) as resp:
            body = await resp.read()
            if resp.status != 200:
                raise RuntimeError(f"PATCH {url}: {resp.status} {body[:200]!r}")
        took.append((time.perf_counter() - started) * 1000)
        status = "open" if status == "pending" else "pending"
        if until():
            return
        if pause_s:
            await asyncio.sleep(pause_s)  # an agent reading before the next change


def _summary(prefix: str, took: list[float]) -> dict:
    took = sorted(took)
    return {f"{prefix}_writes": len(took), f"{prefix}_p50_ms": round(percentile(took, 50), 1),
            f"{prefix}_p99_ms": round(percentile(took, 99), 1), f"{prefix}_max_ms": round(took[-1], 1)}


async def run(n: int = 20_000, agents: int = 4, normalizers: int = 1, connections: int = 16,
              database_url: str | None = None, idle_s: float = 3.0, pause_s: float = 0.0) -> dict:
    system = System(database_url)
    try:
        push_url = await wechat.start(system, pipeline=False)
        api_port = free_port()
        system.role("api", http_port=api_port, secret_key=SECRET)
        replicas = [system.role("normalizer", batch_size=128) for _ in range(normalizers)]
        system.wait_port(api_port)
        work = wechat.pushes(agents + n)
        db = Database(system.database_url)
        try:
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections + agents)) as http:
                await wechat.send(http, push_url, work[:agents], agents)  # one ticket per agent's fan
                await latency.wait_stored(db, agents, 60, check=system.check)
                async with db.write() as conn:
                    key = await admin.create_api_key(conn, await admin.tenant_id(conn, "bench"))
                    ids = (await conn.execute(select(tickets.c.id).order_by(tickets.c.id))).scalars().all()
                urls = [f"http://127.0.0.1:{api_port}/api/v1/tickets/{i}" for i in ids[:agents]]

                idle: list[float] = []
                idle_until = time.perf_counter() + idle_s
                await asyncio.gather(*(_agent(http, u, key, lambda: time.perf_counter() > idle_until, idle, pause_s)
                                       for u in urls))

                try:
                    await wechat.send_backlog(http, push_url, work[agents:], connections, replicas)
                finally:
                    wechat.resume(replicas)
                started = time.perf_counter()
                stored = asyncio.ensure_future(latency.wait_stored(db, agents + n, check=system.check))
                busy: list[float] = []
                await asyncio.gather(*(_agent(http, u, key, stored.done, busy, pause_s) for u in urls))
                done = await stored - started
        finally:
            await db.dispose()
        return {"scenario": "agent_writes", "normalizers": normalizers, "agents": agents, "pause_s": pause_s,
                "backlog": n,
                "stored_per_s": round(n / done, 1), "seconds": round(done, 2),
                **_summary("idle", idle), **_summary("busy", busy)}
    finally:
        system.stop()
