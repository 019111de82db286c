"""SLA scenario: how late warnings and breaches fire among many open clocks.

A ``switchboard rules`` process runs against 10,000 open clocks due tomorrow; then 2,000
clocks are written at once, due over the next minute, each warning 5 s before its due
time. Reported: the lateness of every ``sla.warning`` and ``sla.breached`` (its
``ticket.events`` stream time minus the moment it was due), p50/p99/max, and how many
fired. The contract is within 5 s of the true time, whatever the number of open tickets.
"""

from __future__ import annotations

import asyncio
import time

import redis.asyncio as aioredis
from sqlalchemy import func, insert, select

from core import keys
from core.envelope import Envelope
from core.ids import now_ms
from ops.bench.harness import System
from ops.bench.latency import percentile
from rules import sla_api
from ticket_service.events import read_event
from ticket_service.store import admin
from ticket_service.store.db import Database
from ticket_service.store.tables import customers, sla_clocks, sla_policies, tickets

WARN_MS = 5_000
_CHUNK = 2_000


async def _tickets(db: Database, tenant: int, account: int, n: int) -> list[int]:
    now = now_ms()
    async with db.write() as conn:
        customer = (await conn.execute(insert(customers).values(tenant_id=tenant, name="c", created_at=now)
                                       .returning(customers.c.id))).scalar()
        for start in range(0, n, _CHUNK):
            await conn.execute(insert(tickets), [
                {"tenant_id": tenant, "number": i + 1, "subject": f"case {i}", "status": "open", "channel": "email",
                 "account_id": account, "customer_id": customer, "tags": [], "created_at": now, "updated_at": now}
                for i in range(start, min(start + _CHUNK, n))])
        return list((await conn.execute(select(tickets.c.id).order_by(tickets.c.id))).scalars())


async def _clocks(db: Database, tenant: int, ticket_ids: list[int], due: list[int], warn_ms: int) -> None:
    now = now_ms()
    async with db.write() as conn:
        policy = (await conn.execute(select(sla_policies.c.id))).scalar()
        rows = [{"tenant_id": tenant, "ticket_id": t, "metric": "resolution", "policy_id": policy, "policy": "bench",
                 "state": "running", "target_ms": d - now, "warn_ms": warn_ms, "used_ms": 0, "run_from": now,
                 "started_at": now, "due_at": d, "warn_at": d - warn_ms if warn_ms else None,
                 "next_at": d - warn_ms if warn_ms else d, "updated_at": now} for t, d in zip(ticket_ids, due, strict=True)]
        for start in range(0, len(rows), _CHUNK):
            await conn.execute(insert(sla_clocks), rows[start:start + _CHUNK])


async def _fired(redis: aioredis.Redis) -> list[tuple[str, int]]:
    """(event type, lateness ms) of every SLA event on ticket.events."""
    out = []
    for entry_id, fields in await redis.xrange(keys.TICKET_EVENTS):
        event = read_event(Envelope.unpack(fields[b"e"]))
        if event["type"] in ("sla.warning", "sla.breached"):
            true_time = event["due_at"] - (WARN_MS if event["type"] == "sla.warning" else 0)
            out.append((event["type"], int(entry_id.split(b"-")[0]) - true_time))
    return out


def _figures(name: str, late: list[int]) -> dict:
    ordered = sorted(late)
    return {f"{name}_count": len(ordered),
            f"{name}_late_p50_ms": percentile(ordered, 50) if ordered else None,
            f"{name}_late_p99_ms": percentile(ordered, 99) if ordered else None,
            f"{name}_late_max_ms": ordered[-1] if ordered else None}


async def run(due: int = 2_000, open_clocks: int = 10_000, spread_s: float = 60.0,
              database_url: str | None = None) -> dict:
    system = System(database_url)
    try:
        account = await system.start()
        db = Database(system.database_url)
        async with db.read() as conn:
            tenant = await admin.tenant_id(conn, "bench")
        await db.run_write(sla_api.add_policy, tenant, {"name": "bench", "targets": {"resolution_s": 86_400}},
                           now_ms())
        ids = await _tickets(db, tenant, account, open_clocks + due)
        await _clocks(db, tenant, ids[:open_clocks], [now_ms() + 86_400_000] * open_clocks, 0)
        system.role("rules")
        await asyncio.sleep(2)  # the process starts and its timer looks at the index
        system.check()
        start = now_ms() + 10_000  # the first warnings 5 s after the clocks are written
        await _clocks(db, tenant, ids[open_clocks:], [start + int(i * spread_s * 1000 / due) for i in range(due)],
                      WARN_MS)
        redis = aioredis.Redis.from_url(system.redis_url)
        deadline = time.monotonic() + spread_s + 60
        while time.monotonic() < deadline:
            fired = await _fired(redis)
            if len(fired) >= 2 * due:
                break
            system.check()
            await asyncio.sleep(0.5)
        async with db.read() as conn:
            open_left = (await conn.execute(select(func.count()).select_from(sla_clocks)
                                            .where(sla_clocks.c.state == "running"))).scalar()
        await redis.aclose()
        await db.dispose()
        row = {"scenario": "sla", "open_clocks": open_clocks, "due_clocks": due, "spread_s": spread_s,
               "still_running": open_left}
        row |= _figures("warning", [late for kind, late in fired if kind == "sla.warning"])
        row |= _figures("breach", [late for kind, late in fired if kind == "sla.breached"])
        return row
    finally:
        system.stop()
