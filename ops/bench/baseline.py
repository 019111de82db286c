"""The machine's own limit, measured in the same run: what the bus and the store do with no logic.

* bus: XADD of the email scenario's envelopes (pipelined, 100 at a time), then XREADGROUP
  (128 at a time) + XACK until drained — Redis with AOF everysec, as the scenarios use;
* store: batched inserts of ticket + message rows (500 per transaction, after one
  transaction's warm-up) — the same SQLite file settings or ``DATABASE_URL``.

The slower of the two is the ceiling any end-to-end figure is compared against.
"""

from __future__ import annotations

import asyncio
import time

import redis.asyncio as aioredis
from sqlalchemy import func, insert, select

from core.envelope import Envelope
from core.ids import now_ms
from ops.bench.email import mail_mix
from ops.bench.harness import System
from ticket_service.store import admin
from ticket_service.store.db import Database
from ticket_service.store.tables import customers, messages, tickets

_STREAM = "bench.baseline"
_GROUP = "baseline"


async def _bus(redis_url: str, envelopes: list[bytes]) -> tuple[float, float]:
    client = aioredis.Redis.from_url(redis_url)
    try:
        await client.xgroup_create(_STREAM, _GROUP, id="0", mkstream=True)
        started = time.perf_counter()
        for i in range(0, len(envelopes), 100):
            async with client.pipeline(transaction=False) as pipe:
                for raw in envelopes[i:i + 100]:
                    pipe.xadd(_STREAM, {b"e": raw})
                await pipe.execute()
        added = time.perf_counter() - started
        started, done = time.perf_counter(), 0
        while done < len(envelopes):
            reply = await client.xreadgroup(_GROUP, "c", {_STREAM: ">"}, count=128)
            ids = [entry_id for _, entries in reply for entry_id, _ in entries]
            await client.xack(_STREAM, _GROUP, *ids)
            done += len(ids)
        consumed = time.perf_counter() - started
        return len(envelopes) / added, len(envelopes) / consumed
    finally:
        await client.aclose()


async def _store(database_url: str, n: int, account: int, tenant: int) -> float:
    db = Database(database_url)
    now = now_ms()
    try:
        async with db.write() as conn:
            await conn.execute(insert(customers), [{"tenant_id": tenant, "name": "c", "created_at": now}])
            customer = (await conn.execute(select(func.max(customers.c.id)))).scalar()
        # Warm-up: one transaction's rows before the clock, as every scenario starts its clock
        # on warm roles. A first statement on a connection is planned, and on PostgreSQL each
        # foreign-key check's query too (cached per session): the first 500 rows took 1.1-1.5×
        # as long as the next 500 on a fresh cluster.
        await _rows(db, n, 500, account, tenant, customer, now)
        started = time.perf_counter()
        for first in range(0, n, 500):
            await _rows(db, first, min(500, n - first), account, tenant, customer, now)
        return n / (time.perf_counter() - started)
    finally:
        await db.dispose()


async def _rows(db: Database, first: int, count: int, account: int, tenant: int, customer: int, now: int) -> None:
    """Tickets ``first + 1`` … ``first + count`` with a message each, in one transaction."""
    async with db.write() as conn:
        await conn.execute(insert(tickets), [
            {"tenant_id": tenant, "number": first + i + 1, "subject": f"case {first + i}", "status": "new",
             "channel": "email", "account_id": account, "customer_id": customer, "tags": [],
             "created_at": now, "updated_at": now} for i in range(count)])
        ids = (await conn.execute(
            select(tickets.c.id).where(tickets.c.tenant_id == tenant).order_by(tickets.c.id.desc())
            .limit(count))).scalars().all()
        await conn.execute(insert(messages), [
            {"tenant_id": tenant, "ticket_id": ticket_id, "channel": "email", "account_id": account,
             "dedup_key": f"baseline-{ticket_id}", "envelope_id": f"e{ticket_id}", "direction": "in",
             "customer_id": customer, "sender": "c@example.cn", "subject": "case", "text": "Hello",
             "html": "", "headers": {}, "created_at": now} for ticket_id in ids])


async def run(n: int = 5000, database_url: str | None = None) -> dict:
    system = System(database_url)
    try:
        account = await system.start()
        await asyncio.sleep(0.3)  # redis-server up
        tenant = await _bench_tenant(system.database_url)
        mails, _ = mail_mix(n)
        envelopes = [Envelope(tenant="bench", channel="email", account=str(account), payload=m).pack() for m in mails]
        xadd_per_s, consume_per_s = await _bus(system.redis_url, envelopes)
        rows_per_s = await _store(system.database_url, n, account, tenant)
        limit = min(xadd_per_s, consume_per_s, rows_per_s)
        return {"scenario": "baseline", "n": n, "xadd_per_s": round(xadd_per_s, 1),
                "xreadgroup_xack_per_s": round(consume_per_s, 1), "ticket_message_rows_per_s": round(rows_per_s, 1),
                "limit_per_s": round(limit, 1)}
    finally:
        system.stop()


async def _bench_tenant(database_url: str) -> int:
    db = Database(database_url)
    try:
        async with db.read() as conn:
            return await admin.tenant_id(conn, "bench")
    finally:
        await db.dispose()
