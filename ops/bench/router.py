"""Router scenario: 1,000 agents, a backlog of waiting tickets, draining as agents free up.

Every agent starts full; the backlog waits in the queue (10 % VIP, 20 % Chinese needing the
``chinese`` skill a third of the agents have). The driver then solves held tickets in
batches, as agents would, and publishes ``ticket.closed``; router processes pull the best
waiting ticket for each freed agent. Reported: assignments per second while draining and
the p50/p99 of the time one decision took (snapshot, policy, claim), as recorded with it;
``cpu_us_per_msg_router``: the routers' CPU per assignment (the driver's solving is not in it);
``decisions_per_round``; with ``--postgres``, ``db_statements_per_msg``: the statements the
routers and the driver ran per decision (the driver's closing is about 0.1 of them).
"""

from __future__ import annotations

import asyncio
import random
import time

import redis.asyncio as aioredis
from sqlalchemy import func, insert, select

from connectors.registry import capacity_classes
from core import keys
from core.ids import now_ms
from ops.bench.harness import System, cpu_per_msg
from ops.bench.latency import percentile
from router import policy
from ticket_service import events
from ticket_service.store import admin, assign_sets
from ticket_service.store import agents as agents_store
from ticket_service.store import rules as rules_store
from ticket_service.store.db import Database
from ticket_service.store.tables import agents as agents_table
from ticket_service.store.tables import customers, routing_decisions, routing_queue, tickets

CAPACITY = 5
CLASSES = capacity_classes()
_CHUNK = 2000
_SOLVE_CHUNK = 50


async def _seed(db: Database, tenant: int, account: int, agents: int, backlog: int, seed: int) -> None:
    rng, now = random.Random(seed), now_ms()
    async with db.write() as conn:
        for i in range(agents):
            await conn.run_sync(agents_store.create_agent, tenant, f"agent {i}", f"a{i}@bench.test", status="online",
                                     tier=i % 3, skills={"chinese": 4} if i % 3 == 0 else {"refunds": 3},
                                     capacity={"email": CAPACITY})
        await conn.run_sync(rules_store.add_rule, tenant, now, name="chinese", match={"languages": ["zh"]},
                            required={"chinese": 3})
        await conn.execute(insert(customers), [
            {"tenant_id": tenant, "name": f"c{i}", "vip_tier": 2 if i % 10 == 0 else 0, "created_at": now}
            for i in range(1000)])
        first_customer = (await conn.execute(select(func.min(customers.c.id)))).scalar()
        first_agent = (await conn.execute(select(func.min(agents_table.c.id)))).scalar()
    held, total = agents * CAPACITY, agents * CAPACITY + backlog
    zh = policy.requirements(policy.Rule(0, "chinese", required={"chinese": 3})).to_json()
    for start in range(0, total, _CHUNK):
        rows, queue = [], []
        for n in range(start, min(start + _CHUNK, total)):
            customer = rng.randrange(1000)
            rows.append({"tenant_id": tenant, "number": n + 1, "subject": f"case {n}", "status": "new",
                         "channel": "email", "account_id": account, "priority": 0, "tags": [],
                         "customer_id": first_customer + customer, "created_at": now - (total - n),
                         "updated_at": now, "language": "zh" if n % 5 == 0 else "latin",
                         "assignee_id": first_agent + n // CAPACITY if n < held else None,
                         "assigned_at": now if n < held else None})
        async with db.write() as conn:
            await conn.execute(insert(tickets), rows)
            ids = (await conn.execute(select(tickets.c.id, tickets.c.number, tickets.c.customer_id)
                                      .where(tickets.c.number > start, tickets.c.number <= start + _CHUNK,
                                             tickets.c.tenant_id == tenant))).all()
            for ticket_id, number, customer_id in ids:
                if number <= held:
                    continue
                vip = 2 if (customer_id - first_customer) % 10 == 0 else 0
                queued_at = now - (total - number)
                req = zh if (number - 1) % 5 == 0 else policy.Requirements().to_json()
                queue.append({"tenant_id": tenant, "ticket_id": ticket_id, "channel_class": "email",
                              "vip_tier": vip, "rank": policy.queue_rank(queued_at, vip, 0, 600_000),
                              "queued_at": queued_at, "requirements": req, "stage": 0})
            if queue:
                await conn.execute(insert(routing_queue), queue)
    async with db.write() as conn:
        await conn.run_sync(agents_store.reconcile_loads, tenant, CLASSES)  # every agent starts full


async def _solve_batch(db: Database, bus: aioredis.Redis, tenant: int, limit: int) -> int:
    async with db.read() as conn:
        held = (await conn.execute(
            select(tickets.c.id).where(tickets.c.tenant_id == tenant, tickets.c.assigned_at.is_not(None),
                                       tickets.c.status == "new").order_by(tickets.c.assigned_at).limit(limit)
        )).scalars().all()
    # Short transactions, as agents solving a few at a time would: a long one would hold
    # SQLite's write lock (or the agents' rows) and the routers would measure the wait for it.
    # Each is set-based (``assign_sets.close_tickets``): the driver must outpace the routers.
    for start in range(0, len(held), _SOLVE_CHUNK):
        freed = await db.run_write(assign_sets.close_tickets, held[start:start + _SOLVE_CHUNK], "solved",
                                   now_ms(), CLASSES)
        async with bus.pipeline(transaction=False) as pipe:
            for ticket_id, agent_id in freed:
                env = events.event_envelope(events.TICKET_CLOSED, "bench", "", "", tenant_id=tenant,
                                            ticket_id=ticket_id, freed_agent_id=agent_id)
                pipe.xadd(keys.TICKET_EVENTS, {b"e": env.pack()})
            await pipe.execute()
    return len(held)


async def _waiting(db: Database) -> int:
    async with db.read() as conn:
        return (await conn.execute(select(func.count()).select_from(routing_queue))).scalar_one()


async def run(agents: int = 1000, backlog: int = 100_000, routers: int = 2, database_url: str | None = None,
              limit_s: float = 3600) -> dict:
    system = System(database_url)
    try:
        account = await system.start()
        db = Database(system.database_url)
        async with db.read() as conn:
            tenant = await admin.tenant_id(conn, "bench")
        await _seed(db, tenant, account, agents, backlog, seed=11)
        bus = aioredis.Redis.from_url(system.redis_url)
        for _ in range(routers):
            system.role("router", batch_size=64, router_reconcile_ms=600_000)
        system.wait_workers("router", routers)  # the figure is decisions, not Python's imports
        statements = await system.db_statements()
        cpu_before, started = system.cpu_seconds(), time.perf_counter()
        while (left := await _waiting(db)) > 0:
            if time.perf_counter() - started > limit_s:
                raise RuntimeError(f"{left} tickets still waiting after {limit_s} s")
            await _solve_batch(db, bus, tenant, 500)
            await asyncio.sleep(0.01)
        seconds = time.perf_counter() - started
        cpu_after = system.cpu_seconds()
        figures = {}
        if statements is not None:
            figures["db_statements_per_msg"] = round((await system.db_statements() - statements) / backlog, 2)
        async with db.read() as conn:
            assigned = (await conn.execute(select(routing_decisions.c.elapsed_us, routing_decisions.c.created_at).where(
                routing_decisions.c.outcome == "assigned"))).all()
        elapsed = [e for e, _ in assigned]
        await bus.aclose()
        await db.dispose()
        return {
            "scenario": "router", "agents": agents, "backlog": backlog, "routers": routers,
            "decisions": len(elapsed), "decisions_per_s": round(len(elapsed) / seconds, 1),
            "decision_p50_ms": round(percentile([e / 1000 for e in elapsed], 50), 2),
            "decision_p99_ms": round(percentile([e / 1000 for e in elapsed], 99), 2),
            # A round stamps its decisions with one commit time: decisions per such time is
            # about the decisions per round (two routers' rounds rarely commit in the same ms).
            "decisions_per_round": round(len(elapsed) / max(len({at for _, at in assigned}), 1), 1),
            "seconds": round(seconds, 2), **cpu_per_msg(cpu_before, cpu_after, len(elapsed)), **figures,
        }
    finally:
        system.stop()
