"""What SLA events do: warned and breached tickets go ahead in the queue the router reads, a
trigger listening to sla.breached acts on a real breach, and the first policy whose
conditions match is the one a ticket's clocks follow. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest
from rules_support import rules_world
from sqlalchemy import insert, select, update
from support import make_mail
from test_sla_clocks import Running, _clocks, _drain_rules, _setup, _sla_events, _until_events

from core.ids import now_ms
from rules.sla import BREACH_LEAD_MS, WARNING_LEAD_MS
from ticket_service.api.tickets import iso_ms
from ticket_service.store import route_sets
from ticket_service.store.tables import audit, customers, routing_queue, sla_clocks, tickets

HOUR = 3_600_000


@pytest.fixture
async def rules(system):
    async with rules_world(system) as world:
        yield world


async def _ticket(system, subject: str, sender: str = "zhang.wei@example.cn") -> int:
    await system.publish(make_mail(subject=subject, sender=sender)[0])
    await system.drain()
    return (await system.tickets())[-1].id


async def _fired(system, event_type: str, limit_s: float = 30.0) -> list:
    """The audit rows of firings on ``event_type``, once there is one."""
    loop = asyncio.get_running_loop()
    end = loop.time() + limit_s
    while True:
        async with system.db.read() as conn:
            rows = (await conn.execute(select(audit).where(audit.c.event_type == event_type))).all()
        if rows or loop.time() > end:
            return rows
        await asyncio.sleep(0.05)


async def test_the_router_reads_the_breached_ticket_first_then_the_warned_one_then_the_rest(system):
    # Queued in the opposite order (the "other" ticket has waited longest); one clock breached,
    # one in its warning lead, one an hour from due.
    await _setup(system, {"name": "standard", "targets": {"first_reply_s": 3600}, "warn_before_s": 900})
    breached, warned, other = [await _ticket(system, s, f"{s}@example.cn") for s in ("breached", "warned", "other")]
    await _drain_rules(system)
    now = now_ms()
    due = {breached: now - 60_000, warned: now + 600_000}  # warned: its warning was due 5 minutes ago
    async with system.db.write() as conn:
        for ticket_id, rank in ((other, now - 10 * HOUR), (warned, now - HOUR), (breached, now)):
            await conn.execute(insert(routing_queue).values(
                tenant_id=system.tenant, ticket_id=ticket_id, channel_class="email", vip_tier=0, rank=rank,
                queued_at=rank, requirements={}))
        for ticket_id, due_at in due.items():
            await conn.execute(update(sla_clocks).where(sla_clocks.c.ticket_id == ticket_id).values(
                run_from=due_at - HOUR, started_at=due_at - HOUR, due_at=due_at, next_at=due_at - 900_000))
    async with Running(system):
        found = await _until_events(system, 2, 30)
    assert sorted((e["type"], e["ticket_id"]) for _, _, e in found) == [
        ("sla.breached", breached), ("sla.warning", warned)]
    async with system.db.read() as conn:
        page = await conn.run_sync(lambda c: route_sets.queue_pages(c, {(system.tenant, "email"): 10}))
    queue = page[(system.tenant, "email")]
    assert [row.ticket_id for row in queue] == [breached, warned, other]
    assert [row.rank for row in queue] == [due[breached] - BREACH_LEAD_MS, due[warned] - WARNING_LEAD_MS,
                                           now - 10 * HOUR]
    assert (await _clocks(system, warned))["first_reply"]["state"] == "running"
    tags = {t.id: list(t.tags or []) for t in await system.tickets()}
    assert (tags[breached], tags[warned], tags[other]) == (["sla_breached"], [], [])


async def test_a_trigger_on_sla_breached_acts_on_a_real_breach(rules):
    # A two-second first-reply target, nobody answers: the timer's breach fires the trigger.
    system = rules.system
    await _setup(system, {"name": "fast", "targets": {"first_reply_s": 2}, "warn_before_s": 0})
    trigger = await rules.add("trigger", {
        "name": "escalate", "on": ["sla.breached"],
        "if": {"all": [{"field": "sla_metric", "op": "is", "value": "first_reply"}]},
        "then": [{"type": "add_tags", "tags": ["escalated"]}, {"type": "set_priority", "priority": 90}]})
    ticket_id = await _ticket(system, "Where is my order?")
    async with Running(system):
        [row] = await _fired(system, "sla.breached")
    [(_, envelope, breach)] = await _sla_events(system)
    assert (breach["type"], breach["ticket_id"]) == ("sla.breached", ticket_id)
    assert (row.trigger_id, row.ticket_id, row.event_id, row.result) == (
        trigger["id"], ticket_id, envelope.id, "applied")
    status, body = await rules.call("GET", f"/tickets/{ticket_id}")
    assert status == 200
    assert (sorted(body["tags"]), body["priority"]) == (["escalated", "sla_breached"], 90)
    assert (body["sla"]["policy"], body["sla"]["first_reply"]["state"]) == ("fast", "breached")
    [firing] = (await rules.call("GET", f"/tickets/{ticket_id}/audit"))[1]["items"]
    assert (firing["event"]["type"], firing["actions"]) == ("sla.breached", [
        {"type": "add_tags", "tags": ["sla_breached", "escalated"]}, {"type": "set_priority", "priority": 90}])


async def test_a_ticket_follows_the_first_policy_whose_conditions_match(rules):
    # urgent (priority >= 50) before vip (VIP tier >= 1) before standard (any ticket).
    system = rules.system
    for name, cond, target in (("urgent", [{"field": "priority", "op": "gte", "value": 50}], 600),
                               ("vip", [{"field": "vip_tier", "op": "gte", "value": 1}], 1800),
                               ("standard", [], 7200)):
        await _setup(system, {"name": name, "if": {"all": cond}, "targets": {"first_reply_s": target}})
    urgent_vip = await _ticket(system, "Account locked", "boss@example.cn")
    vip = await _ticket(system, "Invoice", "chair@example.cn")
    plain = await _ticket(system, "Question", "someone@example.cn")
    owners = {t.id: t.customer_id for t in await system.tickets()}
    async with system.db.write() as conn:  # VIP customers, as the CRM says
        await conn.execute(update(customers).where(customers.c.id.in_([owners[urgent_vip], owners[vip]]))
                           .values(vip_tier=2))
        await conn.execute(update(tickets).where(tickets.c.id == urgent_vip).values(priority=60))
    await _drain_rules(system)  # the ticket.created events: each ticket's policy chosen
    created = {t.id: t.created_at for t in await system.tickets()}
    for ticket_id, policy, target in ((urgent_vip, "urgent", 600), (vip, "vip", 1800), (plain, "standard", 7200)):
        status, body = await rules.call("GET", f"/tickets/{ticket_id}")
        assert (status, body["sla"]["policy"]) == (200, policy)
        assert body["sla"]["first_reply"]["due_at"] == iso_ms(created[ticket_id] + target * 1000)
