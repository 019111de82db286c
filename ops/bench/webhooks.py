"""Webhooks scenario: ticket events on ``ticket.events``, fanned out and delivered by one
``switchboard rules`` role process to a local HTTP receiver (in this process) that answers
200 at once.

Measures deliveries/s (first delivery queued to last delivered) and queued->delivered
latency per delivery (the row's created_at to delivered_at), with ``webhooks`` webhooks
subscribed to every event, so each event makes that many deliveries.
"""

from __future__ import annotations

import asyncio
import statistics
import time

import redis.asyncio as aioredis
from aiohttp import web
from sqlalchemy import func, select

from core import keys
from core.blobs import BlobStore
from core.bus import Bus
from core.credentials import seal
from core.ids import now_ms
from ops.bench.harness import System
from ticket_service import events
from ticket_service.store import admin
from ticket_service.store import webhooks as webhooks_store
from ticket_service.store.db import Database
from ticket_service.store.tables import webhook_deliveries

SECRET = "bench-webhooks-secret"


class _Receiver:
    def __init__(self) -> None:
        self.count = 0

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        self.count += 1
        return web.Response(text="ok")

    async def start(self) -> tuple[web.AppRunner, int]:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return runner, site._server.sockets[0].getsockname()[1]


async def _webhooks(db: Database, url: str, count: int) -> int:
    async with db.write() as conn:
        tenant = await admin.tenant_id(conn, "bench")
    await db.run_write(webhooks_store.set_allows_private, tenant, True)
    for n in range(count):
        await db.run_write(webhooks_store.create, tenant, f"{url}?n={n}", ["*"], seal(SECRET, f"whsec_bench_{n}"),
                           now_ms())
    return tenant


async def _publish(system: System, tenant: int, events_n: int) -> None:
    client = aioredis.Redis.from_url(system.redis_url)
    bus = Bus(client, BlobStore(system.dir / "data" / "blobs"), 1 << 20)
    try:
        for n in range(events_n):
            await bus.publish(keys.TICKET_EVENTS, events.event_envelope(
                events.MESSAGE_ADDED, "bench", "", "", tenant_id=tenant, ticket_id=None, message_id=n))
    finally:
        await client.aclose()


async def _finished(db: Database) -> int:
    async with db.read() as conn:
        return (await conn.execute(select(func.count()).select_from(webhook_deliveries)
                                   .where(webhook_deliveries.c.status == "delivered"))).scalar_one()


def _pct(values: list[int], q: int) -> float:
    return float(statistics.quantiles(values, n=100)[q - 1]) if len(values) > 1 else float(values[0])


async def run(events_n: int = 2000, webhooks: int = 2, database_url: str | None = None) -> dict:
    system = System(database_url)
    receiver = _Receiver()
    runner, port = await receiver.start()
    try:
        await system.start()
        db = Database(system.database_url)
        tenant = await _webhooks(db, f"http://127.0.0.1:{port}/hook", webhooks)
        await _publish(system, tenant, events_n)
        started = time.perf_counter()
        system.role("rules", secret_key=SECRET, webhook_poll_ms=50)
        expected = events_n * webhooks
        while await _finished(db) < expected:
            system.check()
            if time.perf_counter() - started > 900:
                raise RuntimeError("deliveries still pending after 15 minutes")
            await asyncio.sleep(0.1)
        async with db.read() as conn:
            rows = (await conn.execute(select(webhook_deliveries.c.created_at, webhook_deliveries.c.delivered_at,
                                              webhook_deliveries.c.attempts))).all()
        await db.dispose()
        waits = sorted(r.delivered_at - r.created_at for r in rows)
        span_ms = max(r.delivered_at for r in rows) - min(r.created_at for r in rows)
        return {"scenario": "webhooks", "events": events_n, "webhooks": webhooks, "rules": 1,
                "delivered": len(rows), "received": receiver.count,
                "deliveries_per_s": round(1000 * len(rows) / max(span_ms, 1), 1),
                "queued_to_delivered_p50_ms": round(_pct(waits, 50), 1),
                "queued_to_delivered_p99_ms": round(_pct(waits, 99), 1),
                "seconds": round(time.perf_counter() - started, 2)}
    finally:
        system.stop()
        await runner.cleanup()
