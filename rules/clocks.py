"""SLA clocks of one ticket, brought in line with what the store says happened.

``reconcile`` is the one place clocks change on ticket activity. It reads the ticket, its
messages and its clocks and sets the clocks to what they should be, so a redelivered,
late or reordered event changes nothing twice (it is idempotent by construction, not by
remembering event ids):

- the policy: the first of the tenant's policies (by position) whose conditions match,
  looked at again on every event while the ticket is open; a ticket that later matches
  none keeps the one it had;
- first_reply starts when the ticket is created, and is met by the first agent reply: an
  outgoing message of kind ``reply`` (notes do not count, nor replies a trigger or an
  automation wrote: an acknowledgement is not an answer), at the time it was written;
- next_reply starts with the first customer message after an agent reply and is met by
  the next agent reply (the row is reused: ``cycle`` counts customer turns);
- resolution runs from creation until solved or closed; a reopen resumes it, the time
  spent solved not counted. Reply clocks still open when the ticket is solved are met then;
- a clock pauses while the ticket's status is in the policy's ``pause_in`` and resumes
  with the business time it had left, its due time computed again on the calendar.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.engine import Connection, Row

from rules.calendar import Calendar, add_business_ms, business_ms_between
from rules.calendar_schema import from_json
from rules.conditions import matches
from rules.facts import ticket_facts, ticket_row
from ticket_service.store import sla as store
from ticket_service.store.tables import messages, sla_clocks

CLOSED = ("solved", "closed")
RUNNING, PAUSED, MET, BREACHED = "running", "paused", "met", "breached"
FIRST_REPLY, NEXT_REPLY, RESOLUTION = "first_reply", "next_reply", "resolution"


@dataclass(frozen=True)
class Policy:
    id: int
    name: str
    conditions: dict
    targets: dict[str, int]  # metric -> seconds
    calendar: str | None
    warn_ms: int
    pause_in: tuple[str, ...]

    @classmethod
    def of(cls, row: Row) -> Policy:
        return cls(row.id, row.name, row.conditions or {}, dict(row.targets or {}), row.calendar,
                   row.warn_before_s * 1000, tuple(row.pause_in or ()))


class Calendars:
    """The tenant's calendars read once per transaction; a name gone means calendar time."""

    def __init__(self, conn: Connection, tenant_id: int) -> None:
        self.conn, self.tenant_id, self._seen = conn, tenant_id, {}

    def get(self, name: str | None) -> Calendar | None:
        if name is None:
            return None
        if name not in self._seen:
            row = store.get_calendar(self.conn, self.tenant_id, name)
            self._seen[name] = None if row is None else from_json(row.spec)
        return self._seen[name]


def business(cal: Calendar | None, a: int, b: int) -> int:
    return max(0, b - a) if cal is None else business_ms_between(cal, a, b)


def due(cal: Calendar | None, start: int, ms: int) -> int:
    return start + max(0, ms) if cal is None else add_business_ms(cal, start, ms)


def scheduled(c: dict[str, Any], cal: Calendar | None) -> dict[str, Any]:
    """A running clock's due, warning and next times from ``run_from`` and the time left."""
    due_at = due(cal, c["run_from"], c["target_ms"] - c["used_ms"])
    warn_at = max(c["run_from"], due_at - c["warn_ms"]) if c["warn_ms"] else None
    pending_warn = warn_at is not None and c.get("warned_at") is None and warn_at < due_at
    return {**c, "due_at": due_at, "warn_at": warn_at, "next_at": warn_at if pending_warn else due_at}


def _new(ticket: Row, policy: Policy, metric: str, start: int, now: int) -> dict[str, Any]:
    return {"tenant_id": ticket.tenant_id, "ticket_id": ticket.id, "metric": metric, "policy_id": policy.id,
            "policy": policy.name, "calendar": policy.calendar, "state": RUNNING,
            "target_ms": policy.targets[metric] * 1000, "warn_ms": policy.warn_ms, "used_ms": 0,
            "run_from": start, "started_at": start, "warned_at": None, "paused_at": None, "breached_at": None,
            "met_at": None, "cycle": 1, "breaches": 0, "start_message_id": None, "announce": "",
            "updated_at": now}


def _replies(conn: Connection, ticket_id: int, after_id: int | None) -> Row | None:
    """The first agent reply on the ticket (after message ``after_id``)."""
    stmt = select(messages.c.id, messages.c.created_at).where(
        messages.c.ticket_id == ticket_id, messages.c.direction == "out", messages.c.kind == "reply",
        messages.c.auto_reason == "")
    if after_id is not None:
        stmt = stmt.where(messages.c.id > after_id)
    return conn.execute(stmt.order_by(messages.c.id).limit(1)).first()


def _turn(conn: Connection, ticket_id: int) -> Row | None:
    """The customer message that opened the current unanswered turn, if the agent spoke last."""
    last_reply = conn.execute(select(func.max(messages.c.id)).where(
        messages.c.ticket_id == ticket_id, messages.c.direction == "out", messages.c.kind == "reply",
        messages.c.auto_reason == "")).scalar()
    if last_reply is None:
        return None
    return conn.execute(select(messages.c.id, messages.c.created_at).where(
        and_(messages.c.ticket_id == ticket_id, messages.c.direction == "in", messages.c.id > last_reply))
        .order_by(messages.c.id).limit(1)).first()


class Reconcile:
    """One ticket's clocks in one transaction (see the module docstring)."""

    def __init__(self, conn: Connection, ticket: Row, now: int, calendars: Calendars) -> None:
        self.conn, self.ticket, self.now, self.calendars = conn, ticket, now, calendars
        self.clocks: dict[str, dict[str, Any]] = {
            r.metric: dict(r._mapping) for r in store.ticket_clocks(conn, ticket.tenant_id, ticket.id)}
        self.before = {m: dict(c) for m, c in self.clocks.items()}
        self.policy: Policy | None = None

    def cal(self, c: dict[str, Any]) -> Calendar | None:
        return self.calendars.get(c["calendar"])

    def choose(self, event: dict[str, Any] | None, policies: list[Policy]) -> None:
        """The policy that applies now; switching re-targets the clocks from their own start."""
        t = self.ticket
        if t.status not in CLOSED and policies:
            facts = ticket_facts(self.conn, t, self.now, event)
            chosen = next((p for p in policies if matches(p.conditions, facts)), None)
            if chosen is not None:
                self.policy = chosen
        if self.policy is None:
            current = next(iter(self.clocks.values()), None)
            self.policy = next((p for p in policies if current and p.id == current["policy_id"]), None)
        if self.policy is None:
            return
        for metric, c in list(self.clocks.items()):
            if c["policy_id"] == self.policy.id:
                continue
            if metric not in self.policy.targets:
                if c["state"] in (RUNNING, PAUSED):
                    self.clocks.pop(metric)
                continue
            c.update(policy_id=self.policy.id, policy=self.policy.name, calendar=self.policy.calendar,
                     target_ms=self.policy.targets[metric] * 1000, warn_ms=self.policy.warn_ms)
            if c["state"] == RUNNING:
                self.clocks[metric] = scheduled(c, self.cal(c))
        for metric, start in ((FIRST_REPLY, t.created_at), (RESOLUTION, t.created_at)):
            if metric in self.policy.targets and metric not in self.clocks:
                self.clocks[metric] = scheduled(_new(t, self.policy, metric, start, self.now),
                                                self.calendars.get(self.policy.calendar))

    def replies(self) -> None:
        t, first = self.ticket, self.clocks.get(FIRST_REPLY)
        if first and first["met_at"] is None and (reply := _replies(self.conn, t.id, None)):
            self._meet(first, reply.created_at)
        following = self.clocks.get(NEXT_REPLY)
        if following and following["met_at"] is None and following["start_message_id"] is not None:
            reply = _replies(self.conn, t.id, following["start_message_id"])
            if reply:
                self._meet(following, reply.created_at)
        if self.policy is None or NEXT_REPLY not in self.policy.targets or t.status in CLOSED:
            return
        turn = _turn(self.conn, t.id)
        if turn is None or (following and following["start_message_id"] == turn.id):
            return
        if following and following["start_message_id"] is not None and following["start_message_id"] > turn.id:
            return
        fresh = _new(t, self.policy, NEXT_REPLY, turn.created_at, self.now)
        if following:
            fresh.update(id=following["id"], cycle=following["cycle"] + 1, breaches=following["breaches"])
        fresh["start_message_id"] = turn.id
        self.clocks[NEXT_REPLY] = scheduled(fresh, self.calendars.get(self.policy.calendar))

    def _meet(self, c: dict[str, Any], at: int) -> None:
        if c["state"] in (RUNNING, PAUSED):
            if c["state"] == RUNNING:
                c["used_ms"] += business(self.cal(c), c["run_from"], max(at, c["run_from"]))
            c.update(state=MET)
        c.update(met_at=at, run_from=None, next_at=None, warn_at=None)

    def status(self, status_at: int) -> None:
        """Pause, resume, stop or restart on the ticket's status."""
        t, pause = self.ticket, self.policy.pause_in if self.policy else ()
        at = min(self.now, max(status_at, t.created_at))
        for metric, c in self.clocks.items():
            if t.status in CLOSED:
                if c["met_at"] is None:
                    self._meet(c, t.closed_at or at)
            elif metric == RESOLUTION and c["met_at"] is not None:
                # Reopened: the resolution clock goes on with the time it had used.
                c["met_at"] = None
                if c["state"] == MET:
                    c.update(state=RUNNING, run_from=at, paused_at=None)
                    self._resume_or_pause(c, pause, at)
            else:
                self._resume_or_pause(c, pause, at)

    def _resume_or_pause(self, c: dict[str, Any], pause: tuple[str, ...], at: int) -> None:
        if c["state"] == RUNNING and self.ticket.status in pause:
            c["used_ms"] += business(self.cal(c), c["run_from"], max(at, c["run_from"]))
            c.update(state=PAUSED, run_from=None, paused_at=at, due_at=None, warn_at=None, next_at=None)
        elif c["state"] == PAUSED and self.ticket.status not in pause:
            c.update(state=RUNNING, run_from=max(at, c["paused_at"] or at), paused_at=None)
            c.update(scheduled(c, self.cal(c)))
        elif c["state"] == RUNNING and c["run_from"] is not None:
            c.update(scheduled(c, self.cal(c)))

    def write(self) -> int | None:
        """Store what changed; returns the earliest ``next_at`` among the ticket's clocks."""
        for metric, before in self.before.items():
            if metric not in self.clocks:
                self.conn.execute(sla_clocks.delete().where(sla_clocks.c.id == before["id"]))
        for metric, c in self.clocks.items():
            before = self.before.get(metric)
            if before == c:
                continue
            values = {k: v for k, v in c.items() if k != "id"} | {"updated_at": self.now}
            if before is None:
                self.conn.execute(sla_clocks.insert().values(**values))
            else:
                self.conn.execute(sla_clocks.update().where(sla_clocks.c.id == before["id"]).values(**values))
        times = [c["next_at"] for c in self.clocks.values() if c.get("next_at") is not None]
        return min(times) if times else None


def policies(conn: Connection, tenant_id: int) -> list[Policy]:
    return [Policy.of(r) for r in store.list_policies(conn, tenant_id)]


def reconcile(conn: Connection, tenant_id: int, ticket_id: int, now: int, event: dict[str, Any] | None = None,
              choose: bool = True, known: dict[int, list[Policy]] | None = None) -> int | None:
    """Bring one ticket's clocks in line; returns the earliest due moment among them, if any.

    ``choose`` False (the timer) keeps the policy the clocks have and skips the conditions;
    ``known`` keeps the tenants' policies across the calls of one transaction."""
    ticket = ticket_row(conn, tenant_id, ticket_id)
    if ticket is None:
        return None
    r = Reconcile(conn, ticket, now, Calendars(conn, tenant_id))
    known = {} if known is None else known
    if tenant_id not in known and (choose or r.clocks):
        known[tenant_id] = policies(conn, tenant_id)
    found = known.get(tenant_id, [])
    if choose:
        r.choose(event, found)
    else:
        current = next(iter(r.clocks.values()), None)
        r.policy = next((p for p in found if current and p.id == current["policy_id"]), None)
    if not r.clocks:
        return None
    ticket_map = ticket._mapping
    r.replies()
    r.status(int(ticket_map.get("status_at") or ticket.updated_at))
    return r.write()
