"""Automations: "pending 72 h -> remind the customer, then close", run by the real rules
worker's timer; time is moved by writing the tickets' timestamps, never by waiting."""

from __future__ import annotations

import asyncio

import pytest
from rules_support import rules_world
from sqlalchemy import select, update
from support import make_mail

from core.ids import now_ms
from rules.automations import candidates
from rules.worker import RulesWorker
from ticket_service.store.tables import automations, tickets

HOUR = 3_600_000
REMIND = {"name": "remind", "if": {"all": [{"field": "hours_since_pending", "op": "gte", "value": 72},
                                           {"field": "hours_since_pending", "op": "lt", "value": 96}]},
          "then": [{"type": "reply", "template": "Is ticket #{{ ticket.number }} solved for you?"}]}
CLOSE = {"name": "close", "if": {"all": [{"field": "hours_since_pending", "op": "gte", "value": 96}]},
         "then": [{"type": "set_status", "status": "closed"}]}


@pytest.fixture
async def rules(system):
    async with rules_world(system) as world:
        yield world


async def _pending_since(system, ticket_id: int, hours: float) -> None:
    async with system.db.write() as conn:
        await conn.execute(update(tickets).where(tickets.c.id == ticket_id).values(
            status="pending", status_at=now_ms() - int(hours * HOUR)))


async def _passes(rules, n: int) -> None:
    """The real worker (timer beside the consumer loop) until its timer made ``n`` more passes."""
    timer = rules.automations(interval_s=0.02)
    worker = RulesWorker(rules.system.bus, rules.system.settings, [rules.triggers()], [timer])
    task = asyncio.create_task(worker.run())
    try:
        while timer.passes < n:
            await asyncio.sleep(0.02)
    finally:
        worker.stop()
        await asyncio.wait_for(task, 30)


async def _ticket(system):
    await system.publish(make_mail(subject="Where is my parcel?", sender="Zhang Wei <zhang.wei@example.cn>")[0])
    await system.drain()
    return (await system.tickets())[-1]


async def test_pending_72_hours_reminds_once_then_96_hours_closes(rules):
    system = rules.system
    remind = await rules.add("automation", REMIND)
    close = await rules.add("automation", CLOSE)
    ticket = await _ticket(system)
    fresh = await _ticket(system)
    await _pending_since(system, ticket.id, 73)
    await _pending_since(system, fresh.id, 2)  # pending, but not for long: left alone
    await _passes(rules, 4)
    [reminder] = await rules.outbox()
    assert (reminder.ticket_id, reminder.recipient) == (ticket.id, "zhang.wei@example.cn")
    body = (await rules.call("GET", f"/tickets/{ticket.id}"))[1]["messages"][-1]["text"]
    assert body == f"Is ticket #{ticket.number} solved for you?"
    assert [t.status for t in await system.tickets()] == ["pending", "pending"]
    # A day later: past 96 hours the reminder no longer matches, the closing does.
    async with system.db.write() as conn:
        await conn.execute(update(tickets).where(tickets.c.id == ticket.id).values(
            status_at=tickets.c.status_at - 24 * HOUR))
    await _passes(rules, 3)
    assert len(await rules.outbox()) == 1
    assert [t.status for t in await system.tickets()] == ["closed", "pending"]
    firings = await rules.audit()
    assert [(f.automation_id, f.ticket_id, f.result) for f in firings] == [
        (remind["id"], ticket.id, "applied"), (close["id"], ticket.id, "applied")]
    changed = [e for e in await system.events() if e["type"] == "ticket.status_changed"]
    assert [(e["ticket_id"], e["from"], e["to"], e["origin"], e["automation_id"]) for e in changed] == [
        (ticket.id, "pending", "closed", "automation", close["id"])]


async def test_a_ticket_pending_again_is_a_new_episode_and_is_reminded_again(rules):
    system = rules.system
    await rules.add("automation", REMIND)
    ticket = await _ticket(system)
    await _pending_since(system, ticket.id, 80)
    await _passes(rules, 2)
    await _pending_since(system, ticket.id, 75)  # answered, then pending again: a later status_at
    await _passes(rules, 2)
    assert [r.ticket_id for r in await rules.outbox()] == [ticket.id, ticket.id]
    assert len({f.episode for f in await rules.audit()}) == 2


async def test_the_query_reads_only_tickets_past_the_time_test_and_not_fired_on(rules):
    system = rules.system
    created = await rules.add("automation", REMIND)
    old, young, open_ = (await _ticket(system)), (await _ticket(system)), (await _ticket(system))
    await _pending_since(system, old.id, 80)
    await _pending_since(system, young.id, 10)
    async with system.db.write() as conn:
        await conn.execute(update(tickets).where(tickets.c.id == open_.id).values(status_at=now_ms() - 500 * HOUR))
    async with system.db.read() as conn:
        row = (await conn.execute(select(automations).where(automations.c.id == created["id"]))).one()
    assert [c.id for c in await system.db.run_read(candidates, row, now_ms(), None)] == [old.id]
    await _passes(rules, 2)
    assert await system.db.run_read(candidates, row, now_ms(), None) == []


async def test_a_failing_automation_is_recorded_once_and_others_still_run(rules):
    system = rules.system
    bad = await rules.add("automation", {**REMIND, "name": "bad", "then": [
        {"type": "reply", "template": "{{ ticket.number / 0 }}"}]})
    good = await rules.add("automation", {**REMIND, "name": "tag", "then": [{"type": "add_tags", "tags": ["nudged"]}]})
    ticket = await _ticket(system)
    await _pending_since(system, ticket.id, 73)
    await _passes(rules, 3)
    firings = await rules.audit()
    assert [(f.automation_id, f.result, f.error) for f in firings] == [
        (bad["id"], "error", "template: division by zero"), (good["id"], "applied", "")]
    assert (await system.tickets())[-1].tags == ["nudged"]
