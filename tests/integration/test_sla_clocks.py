"""SLA clocks driven by ticket.events and fired by the due-time timer, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, insert, select, text, update
from support import make_mail

from core import keys
from core.envelope import Envelope
from core.ids import now_ms
from rules import components
from rules.sla_api import add_calendar, add_policy
from rules.worker import RulesWorker
from ticket_service import events
from ticket_service.store import reports
from ticket_service.store import tickets as tickets_store
from ticket_service.store.replies import Draft, store_reply
from ticket_service.store.tables import routing_queue, sla_clocks, sla_policies, tickets

MIN = 60_000
LATE_BOUND_MS = 5_000  # the contract: warnings and breaches within 5 s of their true time


async def _setup(system, policy: dict, calendar: dict | None = None) -> None:
    def write(conn):
        if calendar:
            add_calendar(conn, system.tenant, calendar, now_ms())
        add_policy(conn, system.tenant, policy, now_ms())
    await system.db.run_write(write)


async def _ticket(system, subject="Where is my order?") -> int:
    await system.publish(make_mail(subject=subject, msgid=f"<{subject.replace(' ', '.')}@example.cn>")[0])
    await system.drain()
    return (await system.tickets())[-1].id


async def _drain_rules(system) -> RulesWorker:
    parts = components.build(system.bus, system.settings, system.db)
    worker = RulesWorker(system.bus, system.settings, parts.handlers, parts.timers)
    await asyncio.wait_for(worker.run(drain=True), 60)
    return worker


async def _clocks(system, ticket_id: int) -> dict[str, dict]:
    async with system.db.read() as conn:
        rows = (await conn.execute(select(sla_clocks).where(sla_clocks.c.ticket_id == ticket_id))).all()
    return {r.metric: dict(r._mapping) for r in rows}


async def _publish(system, kind: str, ticket_id: int, **fields) -> None:
    await system.bus.publish(keys.TICKET_EVENTS, events.event_envelope(
        kind, "acme", "", "", tenant_id=system.tenant, ticket_id=ticket_id, **fields))


async def _sla_events(system) -> list[tuple[int, Envelope, dict]]:
    """(stream time ms, envelope, event) of every sla.* event on ticket.events."""
    out = []
    for entry_id, f in await system.bus.redis.xrange(keys.TICKET_EVENTS):
        env = Envelope.unpack(f[b"e"])
        event = events.read_event(env)
        if str(event["type"]).startswith("sla."):
            out.append((int(entry_id.split(b"-")[0]), env, event))
    return out


async def _until_events(system, count: int, deadline_s: float) -> list[tuple[int, Envelope, dict]]:
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    while loop.time() < end:
        found = await _sla_events(system)
        if len(found) >= count:
            return found
        await asyncio.sleep(0.05)
    return await _sla_events(system)


class Running:
    """The real rules worker (handlers and timers) in the background."""

    def __init__(self, system) -> None:
        parts = components.build(system.bus, system.settings, system.db)
        self.worker = RulesWorker(system.bus, system.settings, parts.handlers, parts.timers)

    async def __aenter__(self) -> Running:
        self.task = asyncio.create_task(self.worker.run())
        return self

    async def __aexit__(self, *exc) -> None:
        self.worker.stop()
        await asyncio.wait_for(self.task, 30)


def _zone_at_midday() -> ZoneInfo:
    """A zone whose wall clock is well inside a day now, so minutes around now share a date."""
    for name in ("Asia/Shanghai", "Europe/London", "America/New_York"):
        zone = ZoneInfo(name)
        if 1 <= datetime.now(zone).hour <= 22:
            return zone
    raise AssertionError("three zones eight hours apart cannot all be near midnight")


def _hhmm(t: datetime) -> str:
    return t.strftime("%H:%M")


async def test_warning_and_breach_fire_on_time_across_a_lunch_break_next_to_a_holiday(system):
    # Morning [m-3, m-2), lunch [m-2, m-1), afternoon [m-1, m+10) around the current minute m,
    # yesterday and tomorrow holidays. The ticket was opened 30 s before lunch: 30 s of the
    # morning plus the afternoon so far are used, so a target 15 s beyond that falls due about
    # 15 s from now (the setup takes some of it), its warning 6 s before.
    zone = _zone_at_midday()
    now = datetime.now(zone)
    m = now.replace(second=0, microsecond=0)
    today = now.date()
    created = int((m - timedelta(minutes=2, seconds=30)).timestamp() * 1000)
    target_s = 30 + (now_ms() - int((m - timedelta(minutes=1)).timestamp() * 1000)) // 1000 + 15
    await _setup(system, {"name": "standard", "targets": {"first_reply_s": target_s}, "calendar": "shifts",
                          "warn_before_s": 6},
                 {"name": "shifts", "timezone": zone.key,
                  "hours": {d: [[_hhmm(m - timedelta(minutes=3)), _hhmm(m - timedelta(minutes=2))],
                                [_hhmm(m - timedelta(minutes=1)), _hhmm(m + timedelta(minutes=10))]]
                            for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")},
                  "extra_holidays": [(today - timedelta(days=1)).isoformat(), (today + timedelta(days=1)).isoformat()]})
    ticket_id = await _ticket(system)
    async with system.db.write() as conn:
        await conn.execute(update(tickets).where(tickets.c.id == ticket_id).values(created_at=created))
    async with Running(system):
        found = await _until_events(system, 2, 30)
    assert [(e["type"], e["metric"], e["ticket_id"], e["origin"]) for _, _, e in found] == [
        ("sla.warning", "first_reply", ticket_id, "sla"), ("sla.breached", "first_reply", ticket_id, "sla")]
    due_at = found[1][2]["due_at"]
    assert due_at == created + 30_000 + (target_s - 30) * 1000 + MIN  # the lunch minute is not counted
    warned_at, breached_at = found[0][0], found[1][0]
    assert 0 <= warned_at - (due_at - 6_000) < LATE_BOUND_MS
    assert 0 <= breached_at - due_at < LATE_BOUND_MS
    clock = (await _clocks(system, ticket_id))["first_reply"]
    assert (clock["state"], clock["breached_at"], clock["breaches"], clock["next_at"]) == (
        "breached", due_at, 1, None)


async def test_a_breach_is_on_time_among_ten_thousand_open_clocks(system):
    await _setup(system, {"name": "standard", "targets": {"resolution_s": 86_400}, "warn_before_s": 0})
    ticket_id = await _ticket(system)
    [ticket] = await system.tickets()
    async with system.db.read() as conn:
        policy_id = (await conn.execute(select(sla_policies.c.id))).scalar()
    now = now_ms()
    base = {k: getattr(ticket, k) for k in ("tenant_id", "status", "channel", "account_id", "customer_id",
                                             "created_at", "updated_at")}
    async with system.db.write() as conn:
        first = (await conn.execute(select(func.max(tickets.c.number)))).scalar() + 1
        await conn.execute(insert(tickets), [{**base, "number": first + i, "subject": f"bulk {i}", "tags": []}
                                             for i in range(10_000)])
        ids = (await conn.execute(select(tickets.c.id).where(tickets.c.id != ticket_id))).scalars().all()
        clock = {"tenant_id": system.tenant, "metric": "resolution", "policy": "standard", "policy_id": policy_id,
                 "state": "running",
                 "target_ms": 86_400_000, "used_ms": 0, "started_at": now, "updated_at": now}
        await conn.execute(insert(sla_clocks), [{**clock, "ticket_id": t, "run_from": now, "due_at": now + 86_400_000,
                                                 "next_at": now + 86_400_000 - i} for i, t in enumerate(ids)])
        due = now + 3_000
        await conn.execute(insert(sla_clocks).values(**clock, ticket_id=ticket_id, run_from=due - 86_400_000,
                                                     due_at=due, next_at=due))
    async with Running(system):
        found = await _until_events(system, 1, 30)
    [(at, _, event)] = found
    assert (event["type"], event["ticket_id"], event["due_at"]) == ("sla.breached", ticket_id, due)
    assert 0 <= at - due < LATE_BOUND_MS


async def test_clocks_pause_while_pending_and_resume_with_the_time_left(system):
    await _setup(system, {"name": "standard", "targets": {"resolution_s": 3600}, "pause_in": ["pending"]})
    ticket_id = await _ticket(system)
    t0 = now_ms() - 20 * MIN
    async with system.db.write() as conn:
        await conn.execute(update(tickets).where(tickets.c.id == ticket_id).values(created_at=t0, updated_at=t0))
    await _drain_rules(system)
    assert (await _clocks(system, ticket_id))["resolution"]["due_at"] == t0 + 3600_000
    await system.db.run_write(tickets_store.set_status, ticket_id, "pending", t0 + 10 * MIN)
    await _publish(system, "ticket.status_changed", ticket_id, **{"from": "new", "to": "pending"})
    await _drain_rules(system)
    paused = (await _clocks(system, ticket_id))["resolution"]
    assert (paused["state"], paused["used_ms"], paused["paused_at"], paused["due_at"], paused["next_at"]) == (
        "paused", 10 * MIN, t0 + 10 * MIN, None, None)
    await system.db.run_write(tickets_store.set_status, ticket_id, "open", t0 + 16 * MIN)
    await _publish(system, "ticket.status_changed", ticket_id, **{"from": "pending", "to": "open"})
    await _drain_rules(system)
    resumed = (await _clocks(system, ticket_id))["resolution"]
    # Six minutes pending are not counted: 50 minutes were left at the resume.
    assert (resumed["state"], resumed["run_from"], resumed["due_at"]) == ("running", t0 + 16 * MIN,
                                                                          t0 + 66 * MIN)
    assert resumed["next_at"] == t0 + 66 * MIN - 900_000  # the warning, 15 minutes before


async def test_first_reply_is_met_by_an_agent_reply_not_a_note_and_next_reply_follows_the_customer(system):
    await _setup(system, {"name": "standard", "targets": {"first_reply_s": 3600, "next_reply_s": 1800}})
    ticket_id = await _ticket(system)
    await _drain_rules(system)
    assert set(await _clocks(system, ticket_id)) == {"first_reply"}

    async def write(kind: str) -> int:
        return (await system.db.run_write(store_reply, system.tenant, ticket_id, Draft(kind=kind, text="On it"),
                                          "", now_ms()))[0]
    note = await write("note")
    await _publish(system, "message.added", ticket_id, message_id=note)
    await _drain_rules(system)
    assert (await _clocks(system, ticket_id))["first_reply"]["state"] == "running"
    reply = await write("reply")
    # The sender's event once the platform took it: tenant by slug, no tenant_id.
    await system.bus.publish(keys.TICKET_EVENTS, events.event_envelope(
        "message.sent", "acme", str(system.account), "", ticket_id=ticket_id, message_id=reply, status="sent"))
    await _drain_rules(system)
    [stored] = [m for m in await system.messages() if m.id == reply]
    first = (await _clocks(system, ticket_id))["first_reply"]
    assert (first["state"], first["met_at"], first["next_at"]) == ("met", stored.created_at, None)
    # The customer answers: next_reply starts at their message and waits for the agent.
    await system.publish(make_mail(subject="Re: Where is my order?", body="Still nothing",
                                   msgid="<follow@example.cn>", refs=["<Where.is.my.order?@example.cn>"])[0])
    await system.drain()
    await _drain_rules(system)
    follow = [m for m in await system.messages() if m.direction == "in"][-1]
    nxt = (await _clocks(system, ticket_id))["next_reply"]
    assert (nxt["state"], nxt["started_at"], nxt["start_message_id"], nxt["cycle"]) == (
        "running", follow.created_at, follow.id, 1)
    assert nxt["due_at"] == follow.created_at + 1800_000
    second = await write("reply")
    await _publish(system, "message.added", ticket_id, message_id=second)
    await _drain_rules(system)
    nxt = (await _clocks(system, ticket_id))["next_reply"]
    assert (nxt["state"], nxt["next_at"]) == ("met", None)
    async with system.db.read() as conn:
        outcomes = (await conn.execute(text(
            "SELECT metric, outcome FROM sla_outcomes WHERE ticket_id = :t ORDER BY metric").bindparams(
            t=ticket_id))).all()
    assert [tuple(r) for r in outcomes] == [("first_reply", "met"), ("next_reply", "met")]


async def test_a_restarted_worker_does_not_breach_twice_and_finishes_an_unpublished_breach(system):
    await _setup(system, {"name": "standard", "targets": {"resolution_s": 3600}})
    one, two = await _ticket(system, "first"), await _ticket(system, "second")
    await _drain_rules(system)
    past = now_ms() - 2 * 3600_000
    async with system.db.write() as conn:
        await conn.execute(update(sla_clocks).where(sla_clocks.c.ticket_id == one).values(
            run_from=past, started_at=past, due_at=past + 3600_000, next_at=past + 3600_000))
        # Ticket two's breach was claimed and marked by a worker that died before publishing.
        await conn.execute(update(sla_clocks).where(sla_clocks.c.ticket_id == two).values(
            state="breached", due_at=past, breached_at=past, next_at=None, breaches=1, announce="b1"))
        await conn.execute(insert(routing_queue).values(
            tenant_id=system.tenant, ticket_id=one, channel_class="email", vip_tier=0, rank=now_ms(),
            queued_at=now_ms(), requirements={}))
    for _ in range(2):  # run, stop, run again: each worker gets time to fire
        async with Running(system):
            await _until_events(system, 2, 10)
            await asyncio.sleep(1.5)
    found = [(e["type"], e["ticket_id"]) for _, _, e in await _sla_events(system)]
    assert sorted(found) == [("sla.breached", one), ("sla.breached", two)]
    assert (await _clocks(system, two))["resolution"]["announce"] == ""
    async with system.db.read() as conn:
        rank = (await conn.execute(select(routing_queue.c.rank).where(routing_queue.c.ticket_id == one))).scalar()
        tags = (await conn.execute(select(tickets.c.tags).where(tickets.c.id == one))).scalar()
    assert rank == past + 3600_000 - 100 * 365 * 86_400_000
    assert "sla_breached" in tags


async def test_a_reply_a_rule_wrote_is_not_the_agents_first_reply(system):
    # An acknowledgement a trigger sent is a reply on the customer's channel, but no answer:
    # first_reply keeps running until an agent writes, and the KPI's first reply is the agent's.
    await _setup(system, {"name": "standard", "targets": {"first_reply_s": 3600}})
    ticket_id = await _ticket(system)
    await _drain_rules(system)

    async def write(**auto) -> int:
        draft = Draft(kind="reply", text="We have your request", **auto)
        return (await system.db.run_write(store_reply, system.tenant, ticket_id, draft, "", now_ms()))[0]
    ack = await write(auto_reason="trigger")
    await _publish(system, "message.added", ticket_id, message_id=ack)
    await _drain_rules(system)
    assert (await _clocks(system, ticket_id))["first_reply"]["state"] == "running"
    await asyncio.sleep(0.02)
    answer = await write()
    await _publish(system, "message.added", ticket_id, message_id=answer)
    await _drain_rules(system)
    by_id = {m.id: m for m in await system.messages()}
    assert (by_id[ack].auto_reason, by_id[answer].auto_reason) == ("trigger", "")
    first = (await _clocks(system, ticket_id))["first_reply"]
    assert (first["state"], first["met_at"]) == ("met", by_id[answer].created_at)
    [ticket] = [t for t in await system.tickets() if t.id == ticket_id]
    async with system.db.read() as conn:
        [row] = await conn.run_sync(lambda c: reports.kpis(c, system.tenant, 0, now_ms() + 1, "channel", "UTC"))
    assert (row["replied"], row["first_reply_p50_s"]) == (1, round((by_id[answer].created_at - ticket.created_at) / 1000, 1))
