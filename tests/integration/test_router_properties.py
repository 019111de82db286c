"""Property: whatever the agents and the order of events, two routers racing on one database
never put an agent over capacity, never assign a ticket twice, and never lose a waiting ticket."""

from __future__ import annotations

import asyncio
import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from connectors.registry import capacity_classes
from core.channel import class_of
from core.ids import now_ms
from router.batch import Assigner
from ticket_service.store import admin
from ticket_service.store import agents as agents_store
from ticket_service.store import queue as queue_store
from ticket_service.store import rules as rules_store
from ticket_service.store import tickets as ticket_store
from ticket_service.store import tickets as tickets_store
from ticket_service.store.db import Database, migrate
from ticket_service.store.tables import agents, routing_decisions, routing_queue, tickets

_tenants = itertools.count(1)
CHANNELS = ("email", "wechat", "voice")

agent_st = st.fixed_dictionaries({
    "status": st.sampled_from(["online", "online", "away", "offline"]),
    "tier": st.integers(0, 2),
    "skills": st.dictionaries(st.sampled_from(["chinese", "refunds"]), st.integers(0, 3), max_size=2),
    "capacity": st.fixed_dictionaries({c: st.integers(0, 2) for c in ("email", "chat", "voice")}),
})
op_st = st.one_of(
    st.tuples(st.just("route"), st.integers(0, 11)),
    st.tuples(st.just("close"), st.integers(0, 11)),
    st.tuples(st.just("status"), st.integers(0, 4), st.sampled_from(["online", "away", "offline"])),
    st.tuples(st.just("pull"), st.integers(0, 4)),
)


async def _setup(db: Database, agent_specs: list[dict], channels: list[str], rule_skill: str | None):
    slug = f"p{next(_tenants)}-{now_ms()}"
    now = now_ms()
    async with db.write() as conn:
        tenant = await admin.create_tenant(conn, slug)
        account = await admin.add_account(conn, tenant, "email", f"help@{slug}.test")
        agent_ids = [await conn.run_sync(agents_store.create_agent, tenant, f"a{i}", f"a{i}@{slug}.test", **spec)
                     for i, spec in enumerate(agent_specs)]
        if rule_skill:
            await conn.run_sync(rules_store.add_rule, tenant, now, name="skill", required={rule_skill: 2})
        ticket_ids = []
        for i, channel in enumerate(channels):
            customer = await conn.run_sync(ticket_store.resolve_customer, tenant, "email", "", f"c{i % 3}@x.test", "", now)
            ticket_id, _ = await conn.run_sync(ticket_store.create_ticket, tenant_id=tenant, subject="s", status="new", channel=channel, account_id=account,
                priority=0, customer_id=customer.id, now=now)
            ticket_ids.append(ticket_id)
    return tenant, agent_ids, ticket_ids


async def _apply(assigner: Assigner, db: Database, tenant: int, agent_ids, ticket_ids, routed: set, op) -> None:
    kind = op[0]
    if kind == "route":
        routed.add(ticket_ids[op[1]])
        await assigner.route(ticket_ids[op[1]])
    elif kind == "close":
        async with db.write() as conn:
            freed = await conn.run_sync(tickets_store.close_ticket, ticket_ids[op[1]], "solved", now_ms(), capacity_classes())
            await conn.run_sync(queue_store.dequeue, ticket_ids[op[1]])
        if freed:
            await assigner.pull(tenant, freed)
    elif kind == "status":
        agent_id = agent_ids[op[1] % len(agent_ids)]
        async with db.write() as conn:
            await conn.run_sync(agents_store.set_agent_status, tenant, agent_id, op[2], now_ms())
        await assigner.agent_changed(tenant, agent_id, op[2])
    else:
        await assigner.pull(tenant, agent_ids[op[1] % len(agent_ids)])


async def _check(db: Database, tenant: int, ticket_ids: list[int], routed: set) -> None:
    async with db.read() as conn:
        rows = (await conn.execute(select(*agents_store.AGENT_COLS).where(agents.c.tenant_id == tenant))).all()
        held = (await conn.execute(
            select(tickets.c.id, tickets.c.assignee_id, tickets.c.channel, tickets.c.assigned_at, tickets.c.status)
            .where(tickets.c.tenant_id == tenant))).all()
        assigned = dict((await conn.execute(
            select(routing_decisions.c.ticket_id, func.count()).where(
                routing_decisions.c.tenant_id == tenant, routing_decisions.c.outcome == "assigned")
            .group_by(routing_decisions.c.ticket_id))).all())
        freed = dict((await conn.execute(
            select(routing_decisions.c.ticket_id, func.count()).where(
                routing_decisions.c.tenant_id == tenant, routing_decisions.c.outcome == "requeued")
            .group_by(routing_decisions.c.ticket_id))).all())
        waiting = set((await conn.execute(
            select(routing_queue.c.ticket_id).where(routing_queue.c.tenant_id == tenant))).scalars())
    counts: dict[tuple[int, str], int] = {}
    for t in held:
        if t.assignee_id is not None and t.assigned_at is not None and t.status not in tickets_store.CLOSED:
            key = (t.assignee_id, class_of(capacity_classes(), t.channel))
            counts[key] = counts.get(key, 0) + 1
    for a in rows:
        for cls in agents_store.CLASSES:
            load, cap = getattr(a, f"load_{cls}"), getattr(a, f"cap_{cls}")
            assert load == counts.get((a.id, cls), 0), f"agent {a.id} {cls}: load {load} != held"
            assert load <= cap, f"agent {a.id} over {cls} capacity: {load}/{cap}"
    for t in held:
        assert assigned.get(t.id, 0) <= 1 + freed.get(t.id, 0), f"ticket {t.id} assigned twice"
        unheld_open = t.status not in tickets_store.CLOSED and (t.assignee_id is None or t.assigned_at is None)
        if t.id in routed and unheld_open:
            assert t.id in waiting, f"ticket {t.id} neither assigned nor waiting"
        if t.status in tickets_store.CLOSED:
            assert t.id not in waiting


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    agent_specs=st.lists(agent_st, min_size=1, max_size=5),
    channels=st.lists(st.sampled_from(CHANNELS), min_size=12, max_size=12),
    rule_skill=st.sampled_from([None, "chinese"]),
    ops=st.lists(op_st, min_size=1, max_size=40),
)
def test_racing_routers_keep_capacity_and_single_assignment(database_url, agent_specs, channels, rule_skill, ops):
    # Two routers work through one shuffled event list at once, interleaving at every await.
    async def run() -> None:
        db = Database(database_url)
        try:
            await migrate(db)
            tenant, agent_ids, ticket_ids = await _setup(db, agent_specs, channels, rule_skill)
            routed: set[int] = set()
            a, b = Assigner(db, 600_000, capacity_classes()), Assigner(db, 600_000, capacity_classes())

            async def worker(assigner, share):
                for op in share:
                    await _apply(assigner, db, tenant, agent_ids, ticket_ids, routed, op)

            await asyncio.gather(worker(a, ops[0::2]), worker(b, ops[1::2]))
            await _check(db, tenant, ticket_ids, routed)
        finally:
            await db.dispose()

    asyncio.run(run())
