"""The rules role: its own consumer group on ticket.events, handlers in order, timers beside it."""

import asyncio

from core import keys
from rules.event import RuleEvent
from rules.worker import RulesWorker
from ticket_service import events


class Recorder:
    def __init__(self, name, seen, fail_once=()):
        self.name, self.seen, self.fail_once = name, seen, set(fail_once)

    async def on_event(self, event: RuleEvent) -> None:
        if event.ticket_id in self.fail_once:
            self.fail_once.discard(event.ticket_id)
            raise RuntimeError("handler failed")
        self.seen.append((self.name, event.type, event.ticket_id, event.origin))


class Ticking:
    def __init__(self):
        self.ticks = 0
        self.stopped = False

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.ticks += 1
            await asyncio.sleep(0.01)
        self.stopped = True


async def _publish(system, kind, ticket_id, **fields):
    await system.bus.publish(keys.TICKET_EVENTS, events.event_envelope(
        kind, "acme", "", "", tenant_id=system.tenant, ticket_id=ticket_id, **fields))


async def test_every_event_reaches_the_handlers_in_order_and_a_failed_one_is_delivered_again(system):
    seen = []
    worker = RulesWorker(system.bus, system.settings, [Recorder("sla", seen), Recorder("triggers", seen, {2})])
    await _publish(system, events.TICKET_CREATED, 1)
    await _publish(system, events.MESSAGE_ADDED, 2, origin="trigger")
    await asyncio.wait_for(worker.run(drain=True), 30)
    assert ("sla", "ticket.created", 1, "") in seen
    assert ("triggers", "ticket.created", 1, "") in seen
    assert seen.index(("sla", "ticket.created", 1, "")) < seen.index(("triggers", "ticket.created", 1, ""))
    # Ticket 2's second handler failed once: the entry stayed pending and came back, so the
    # first handler saw it twice (handlers are idempotent by event id) and the second once.
    assert seen.count(("sla", "message.added", 2, "trigger")) == 2
    assert seen.count(("triggers", "message.added", 2, "trigger")) == 1
    groups = {g["name"] for g in await system.bus.redis.xinfo_groups(keys.TICKET_EVENTS)}
    assert b"rules" in groups or "rules" in groups


async def test_timers_run_beside_the_worker_and_stop_with_it(system):
    timer = Ticking()
    worker = RulesWorker(system.bus, system.settings, [], [timer])
    task = asyncio.create_task(worker.run())
    await asyncio.sleep(0.3)
    worker.stop()
    await asyncio.wait_for(task, 10)
    assert timer.ticks > 1
    assert timer.stopped is True


async def test_facts_of_a_stored_ticket_feed_conditions(system):
    from sqlalchemy import update

    from core.ids import now_ms
    from rules.conditions import matches, validate
    from rules.facts import ticket_facts, ticket_row
    from ticket_service.store.tables import customers

    raw = (b"From: Li Lei <li@example.com>\r\nTo: help@acme.test\r\nSubject: refund\r\n"
           b"Message-ID: <f1@example.com>\r\n\r\n\xe6\x88\x91\xe8\xa6\x81\xe9\x80\x80\xe6\xac\xbe\r\n")
    await system.publish(raw)
    await system.drain()
    [ticket] = await system.tickets()
    async with system.db.write() as conn:
        await conn.execute(update(customers).values(vip_tier=2))

    def read(conn):
        row = ticket_row(conn, system.tenant, ticket.id)
        assert ticket_row(conn, system.tenant + 1, ticket.id) is None
        f = ticket_facts(conn, row, now_ms() + 2 * 3_600_000, {"type": "ticket.created"})
        return f, {k: f[k] for k in ("event", "channel", "account", "status", "vip_tier", "text", "direction")}
    facts, seen = await system.db.run_read(read)
    assert seen == {"event": "ticket.created", "channel": "email", "account": "help@acme.test",
                    "status": "new", "vip_tier": 2, "text": "我要退款", "direction": "in"}
    assert 1.9 < facts["hours_since_created"] < 2.1
    assert facts["hours_since_pending"] is None
    cond = validate({"all": [{"field": "text", "op": "contains", "value": "退款"},
                             {"field": "vip_tier", "op": "gte", "value": 2},
                             {"field": "hours_since_created", "op": "gt", "value": 1}]})
    assert matches(cond, facts) is True

