"""The router on SQLite and PostgreSQL: mails in through the normalizer, assignments out."""

from __future__ import annotations

import asyncio

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select, update
from support import make_mail

from connectors.registry import capacity_classes
from core import keys
from core.ids import now_ms
from core.worker import NotAttempted
from router.batch import Assigner
from router.periodic import Periodic
from router.worker import Router
from ticket_service import events
from ticket_service.store import agents as agents_store
from ticket_service.store import decisions as decisions_store
from ticket_service.store import rules as rules_store
from ticket_service.store import tickets as tickets_store
from ticket_service.store.tables import agents, customers, metadata, routing_queue, tickets

ZH = "您好，我的退款申请已经两周了还没有处理，请尽快帮我查一下。"


async def _router_drain(system) -> Router:
    router = Router(system.bus, system.settings, system.db, capacity_classes())
    await asyncio.wait_for(router.run(drain=True), 60)
    return router


async def _agent(system, name, **kw) -> int:
    async with system.db.write() as conn:
        return await conn.run_sync(agents_store.create_agent, system.tenant, name, f"{name.lower()}@acme.test", **kw)


async def _rule(system, name, **kw) -> int:
    async with system.db.write() as conn:
        return await conn.run_sync(rules_store.add_rule, system.tenant, now_ms(), name=name, **kw)


async def _assignees(system) -> dict[int, int | None]:
    return {t.number: t.assignee_id for t in await system.tickets()}


async def _loads(system) -> dict[int, int]:
    async with system.db.read() as conn:
        return dict((await conn.execute(select(agents.c.id, agents.c.load_email))).all())


async def test_chinese_refund_goes_to_the_chinese_speaker_and_english_to_the_other(system):
    # Rule order matters: the Chinese rule first, the catch-all refunds rule second.
    li = await _agent(system, "Li", status="online", skills={"chinese": 5, "refunds": 2}, capacity={"email": 2})
    sam = await _agent(system, "Sam", status="online", skills={"refunds": 3}, capacity={"email": 2})
    await _rule(system, "chinese", match={"languages": ["zh"]}, required={"chinese": 3})
    await _rule(system, "refunds", match={"keywords": ["refund"]}, required={"refunds": 3})
    await system.publish(make_mail(subject="退款", body=ZH, sender="wei@example.cn")[0])
    await system.publish(make_mail(subject="Refund please", body="I want a refund.", sender="ann@example.com")[0])
    await system.drain()
    await _router_drain(system)
    assert await _assignees(system) == {1: li, 2: sam}
    assert await _loads(system) == {li: 1, sam: 1}
    ticket = (await system.tickets())[0]
    assert ticket.language == "zh" and ticket.assigned_at is not None


async def test_no_eligible_agent_queues_then_agent_online_pulls_it(system):
    bo = await _agent(system, "Bo", status="offline", skills={"refunds": 3}, capacity={"email": 1})
    await system.publish(make_mail(sender="a@example.com")[0])
    await system.publish(make_mail(sender="b@example.com")[0])
    await system.drain()
    await _router_drain(system)
    assert await _assignees(system) == {1: None, 2: None}
    async with system.db.write() as conn:
        await conn.run_sync(agents_store.set_agent_status, system.tenant, bo, "online", now_ms())
    await system.bus.publish(keys.TICKET_EVENTS, events.event_envelope(
        events.AGENT_CHANGED, "acme", "", "", tenant_id=system.tenant, agent_id=bo, status="online"))
    await _router_drain(system)
    # Capacity 1: the older ticket is taken, the other keeps waiting.
    assert await _assignees(system) == {1: bo, 2: None}
    async with system.db.read() as conn:
        waiting = (await conn.execute(select(routing_queue.c.ticket_id))).scalars().all()
        first = (await system.tickets())[0]
        trail = [d.outcome for d in await conn.run_sync(decisions_store.decisions, system.tenant, first.id)]
    assert waiting == [(await system.tickets())[1].id]
    assert trail == ["queued", "assigned"]


async def test_vip_waiting_ticket_is_pulled_before_older_standard_one(system):
    agent = await _agent(system, "Al", status="offline", capacity={"email": 1})
    await system.publish(make_mail(sender="plain@example.com")[0])
    await system.drain()
    await system.publish(make_mail(sender="vip@example.com")[0])
    await system.drain()
    async with system.db.write() as conn:
        vip = (await conn.execute(select(tickets.c.customer_id).where(tickets.c.number == 2))).scalar()
        await conn.execute(update(customers).where(customers.c.id == vip).values(vip_tier=2))
    await _router_drain(system)
    async with system.db.write() as conn:
        await conn.run_sync(agents_store.set_agent_status, system.tenant, agent, "online", now_ms())
    await Assigner(system.db, 600_000, classes=capacity_classes()).pull(system.tenant, agent)
    assert await _assignees(system) == {1: None, 2: agent}


async def test_closing_frees_capacity_and_the_next_ticket_is_pulled(system):
    agent = await _agent(system, "Al", status="online", capacity={"email": 1})
    for who in ("a", "b"):
        await system.publish(make_mail(sender=f"{who}@example.com")[0])
    await system.drain()
    await _router_drain(system)
    assert await _assignees(system) == {1: agent, 2: None}
    first = (await system.tickets())[0]
    async with system.db.write() as conn:
        freed = await conn.run_sync(tickets_store.close_ticket, first.id, "solved", now_ms(), capacity_classes())
    assert freed == agent and await _loads(system) == {agent: 0}
    await Assigner(system.db, 600_000, capacity_classes()).pull(system.tenant, agent)
    assert await _assignees(system) == {1: agent, 2: agent}
    assert await _loads(system) == {agent: 1}


async def test_reconcile_corrects_load_drift(system):
    agent = await _agent(system, "Al", status="online", capacity={"email": 3})
    await system.publish(make_mail()[0])
    await system.drain()
    await _router_drain(system)
    async with system.db.write() as conn:
        await conn.execute(update(agents).values(load_email=3))  # drift: two phantom tickets
    await Periodic(Assigner(system.db, 600_000, capacity_classes())).reconcile()
    assert await _loads(system) == {agent: 1}


async def test_waiting_vip_escalates_drops_then_widens_and_is_flagged(system):
    # Needs chinese 4 from a tier-2 agent; after the wait only chinese 2 and any tier.
    junior = await _agent(system, "Jun", status="online", skills={"chinese": 2}, capacity={"email": 1})
    await _rule(system, "zh", match={"languages": ["zh"]}, required={"chinese": 4}, min_tier=2,
                preferred={"refunds": 1}, escalate_after_s=60, widen={"required": {"chinese": 2}, "min_tier": 0})
    await system.publish(make_mail(subject="退款", body=ZH)[0])
    await system.drain()
    await _router_drain(system)
    assert await _assignees(system) == {1: None}
    ticket = (await system.tickets())[0]
    assigner = Periodic(Assigner(system.db, 600_000, capacity_classes()))
    async with system.db.write() as conn:  # as if the ticket had waited 61 s, then 121 s
        await conn.execute(update(routing_queue).values(queued_at=routing_queue.c.queued_at - 61_000,
                                                        next_stage_at=routing_queue.c.next_stage_at - 61_000))
    assert await assigner.escalate_due() == 1
    async with system.db.read() as conn:
        assert (await conn.execute(select(routing_queue.c.stage))).scalar() == 1
    assert await _assignees(system) == {1: None}  # stage 1 only drops the preferred skill
    async with system.db.write() as conn:
        await conn.execute(update(routing_queue).values(queued_at=routing_queue.c.queued_at - 60_000,
                                                        next_stage_at=routing_queue.c.next_stage_at - 60_000))
    await assigner.escalate_due()
    assert await _assignees(system) == {1: junior}
    async with system.db.read() as conn:
        trail = await conn.run_sync(decisions_store.decisions, system.tenant, ticket.id)
    assert [d.outcome for d in trail] == ["queued", "escalated", "escalated", "assigned"]
    assert trail[2].detail["requirements"]["required"] == {"chinese": 2}
    assert trail[3].detail["via"] == "escalation"
    assert (await system.tickets())[0].tags == ["escalated"]


async def test_agent_going_offline_hands_back_tickets_not_started(system):
    # Offline requeues by default; "away" only when the tenant says so.
    ann = await _agent(system, "Ann", status="online", capacity={"email": 2})
    for who in ("a", "b"):
        await system.publish(make_mail(sender=f"{who}@example.com")[0])
    await system.drain()
    await _router_drain(system)
    first, second = await system.tickets()
    async with system.db.write() as conn:
        await conn.execute(update(tickets).where(tickets.c.id == first.id).values(status="open"))  # started
    assigner = Assigner(system.db, 600_000, capacity_classes())
    async with system.db.write() as conn:
        await conn.run_sync(agents_store.set_agent_status, system.tenant, ann, "away", now_ms())
    await assigner.agent_changed(system.tenant, ann, "away")
    assert await _assignees(system) == {1: ann, 2: ann}
    async with system.db.write() as conn:
        await conn.run_sync(agents_store.set_agent_status, system.tenant, ann, "offline", now_ms())
    await assigner.agent_changed(system.tenant, ann, "offline")
    assert await _assignees(system) == {1: ann, 2: None}
    assert await _loads(system) == {ann: 1}
    async with system.db.read() as conn:
        assert (await conn.execute(select(routing_queue.c.ticket_id))).scalars().all() == [second.id]
        assert [d.outcome for d in await conn.run_sync(decisions_store.decisions, system.tenant, second.id)] == [
            "assigned", "requeued", "queued"]


async def test_bad_event_between_good_ones_is_dead_lettered(system):
    # Poison pill: a ticket event without a ticket id; the events around it are routed.
    agent = await _agent(system, "Al", status="online", capacity={"email": 5})
    await system.publish(make_mail(sender="a@example.com")[0])
    await system.drain()
    await system.bus.publish(keys.TICKET_EVENTS, events.event_envelope(events.TICKET_CREATED, "acme", "", "",
                                                                       tenant_id=system.tenant))
    await system.publish(make_mail(sender="b@example.com")[0])
    await system.drain()
    router = await _router_drain(system)
    assert await _assignees(system) == {1: agent, 2: agent}
    dead = await system.bus.redis.xrange(keys.dead_stream(keys.TICKET_EVENTS))
    assert len(dead) == 1 and b"without an integer ticket_id" in dead[0][1][b"error"]
    # ok: the two tickets' events and the two ticket.assigned the router announced (and passed over).
    assert router.counters["dead"] == 1 and router.counters["ok"] == 4
    assert [e["type"] for e in await system.events()].count(events.TICKET_ASSIGNED) == 2


async def test_routing_migration_matches_the_tables(system):
    # 0002_routing creates exactly what tables.py declares for routing, and 0003 the identity
    # index, on both databases.
    def diff(conn):
        return compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)

    async with system.db.read() as conn:
        found = await conn.run_sync(diff)
    routing = ("routing_", "load_", "cap_", "last_agent_id", "last_assigned_at", "status_at", "language",
               "assigned_at", "ix_identities_tenant_value")
    assert [d for d in found if any(name in repr(d) for name in routing)] == []


async def test_a_round_that_fails_is_retried_event_by_event_and_only_the_bad_one_fails(system):
    agent = await _agent(system, "Al", status="online", capacity={"email": 5})
    for who in ("a", "b"):
        await system.publish(make_mail(sender=f"{who}@example.com")[0])
    await system.drain()
    first, second = [t.id for t in await system.tickets()]
    # A ticket id no database column holds: the shared round fails on it, not on the others.
    batch = [events.event_envelope(events.TICKET_CREATED, "acme", "", "", tenant_id=system.tenant, ticket_id=t)
             for t in (first, 2**63, second)]
    results = await Router(system.bus, system.settings, system.db, capacity_classes()).handle_batch(batch)
    assert [r is None for r in results] == [True, False, True]
    assert not isinstance(results[1], NotAttempted)
    assert await _assignees(system) == {1: agent, 2: agent}


async def test_a_bulk_mail_ticket_in_a_round_that_fails_is_recorded_as_skipped_once(system):
    agent = await _agent(system, "Al", status="online", capacity={"email": 5})
    for who in ("a", "b"):
        await system.publish(make_mail(sender=f"{who}@example.com")[0])
    await system.drain()
    first, second = [t.id for t in await system.tickets()]
    # The round fails on the impossible id and is split; the skip is still recorded once.
    batch = [events.event_envelope(events.TICKET_CREATED, "acme", "", "", tenant_id=system.tenant, ticket_id=t, **kw)
             for t, kw in ((first, {}), (2**63, {}), (second, {"auto": "bulk"}))]
    results = await Router(system.bus, system.settings, system.db, capacity_classes()).handle_batch(batch)
    assert [r is None for r in results] == [True, False, True]
    async with system.db.read() as conn:
        rows = await conn.run_sync(decisions_store.decisions, system.tenant, second)
    assert [(r.outcome, r.detail) for r in rows] == [("skipped", {"reason": "auto", "auto_reason": "bulk"})]
    assert await _assignees(system) == {1: agent, 2: None}
