"""SLA clocks in the rules role: the ``ticket.events`` handler and the due-time timer.

The handler reconciles the clocks of the ticket an event is about (``rules.clocks``) and
tells the timer when a clock became due sooner than it planned to wake.

The timer never sweeps the open tickets: clocks owe something (a warning, a breach) at
``next_at``, which is indexed. It takes the clocks with ``next_at <= now`` a batch at a
time, claims each with ``UPDATE … WHERE next_at = :seen`` (PostgreSQL also skips rows
another replica holds, ``FOR UPDATE SKIP LOCKED``), checks the ticket once more (a reply or
a pause the events have not brought yet), marks the clock and records the event to
announce, all in one transaction. Then it publishes ``sla.warning`` / ``sla.breached`` on
``ticket.events`` and clears the record; a replica that died in between leaves the record,
and the next timer to start publishes it with the same envelope id (receivers dedup on it).
It sleeps until the earliest ``next_at``, at most ``MAX_SLEEP_S``, and wakes early when the
handler made a clock due sooner.

Warnings and breaches raise the ticket's routing priority: a waiting ticket's ``rank``
becomes the due time minus ``WARNING_LEAD_MS`` (half a century) on a warning and minus
``BREACH_LEAD_MS`` (a century) on a breach, never a worse rank than it had. Queue ranks
are enqueue times less boosts of minutes to hours, so every breached waiting ticket is first,
then every warned one, then the rest, each group the earliest due first. A breached
ticket is also tagged ``sla_breached``.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import structlog
from sqlalchemy import bindparam, func, select, update
from sqlalchemy.engine import Connection
from ulid import ULID

from core.bus import Bus
from core.envelope import Envelope
from core.ids import now_ms
from core.keys import TICKET_EVENTS
from rules import clocks
from rules.event import ORIGIN_SLA, RuleEvent
from ticket_service import events
from ticket_service.store import queue as queue_store
from ticket_service.store import tickets as tickets_store
from ticket_service.store.db import Database
from ticket_service.store.tables import sla_clocks, tickets

log = structlog.get_logger()

SLA_WARNING, SLA_BREACHED = "sla.warning", "sla.breached"
MAX_SLEEP_S = 1.0
MIN_SLEEP_S = 0.05
BATCH = 200
BREACH_LEAD_MS = 100 * 365 * 86_400_000
WARNING_LEAD_MS = BREACH_LEAD_MS // 2
BREACHED_TAG = "sla_breached"
_KINDS = {"w": SLA_WARNING, "b": SLA_BREACHED}


class SlaTimer:
    """Fires warnings and breaches at their due time (see the module docstring)."""

    def __init__(self, db: Database, bus: Bus, batch: int = BATCH, max_sleep_s: float = MAX_SLEEP_S) -> None:
        self.db, self.bus, self.batch, self.max_sleep_s = db, bus, batch, max_sleep_s
        self._woken = asyncio.Event()
        self._until = 0  # when the timer means to look next (ms)

    def wake(self, at: int) -> None:
        """A clock is due at ``at``: look again now if that is before the planned wake-up."""
        if at < self._until:
            self._woken.set()

    async def run(self, stop: asyncio.Event) -> None:
        published = await self._announce(await self.db.run_read(_unannounced))
        while not stop.is_set():
            try:
                fired, earliest = await self.db.run_write(claim_due, now_ms(), self.batch, published)
                published = await self._announce(fired)
            except Exception:
                log.exception("sla.timer_failed")
                fired, earliest, published = [], None, []
            if len(fired) >= self.batch:
                continue
            now = now_ms()
            delay = self.max_sleep_s if earliest is None else min(self.max_sleep_s, max(0, earliest - now) / 1000)
            # Clocks falling due close together are fired together: one transaction and one
            # round trip to Redis for several, at most ``MIN_SLEEP_S`` later than their time.
            delay = max(delay, MIN_SLEEP_S)
            self._until = now + int(delay * 1000)
            self._woken.clear()
            waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._woken.wait())]
            await asyncio.wait(waits, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
            for w in waits:
                w.cancel()
        if published:
            await self.db.run_write(_announced, published)

    async def _announce(self, fired: list[dict[str, Any]]) -> list[tuple[int, str]]:
        """Publish the firings; returns (clock id, token) of each, cleared by the next claim."""
        if not fired:
            return []
        await self.bus.publish_many((TICKET_EVENTS, announcement(e)) for e in fired)
        now = now_ms()
        for e in fired:
            log.info(e["type"], ticket_id=e["ticket_id"], metric=e["metric"], due_at=e["due_at"],
                     late_ms=now - e["due_at"] if e["type"] == SLA_BREACHED else None)
        return [(e["clock_id"], e["token"]) for e in fired]


class SlaClocks:
    """The handler: every ticket event reconciles that ticket's clocks."""

    def __init__(self, db: Database, timer: SlaTimer | None = None) -> None:
        self.db, self.timer = db, timer

    async def on_event(self, event: RuleEvent) -> None:
        if event.origin == ORIGIN_SLA or event.type.startswith("sla.") or event.ticket_id is None:
            return
        next_at = await self.db.run_write(_apply, event, now_ms())
        if next_at is not None and self.timer is not None:
            self.timer.wake(next_at)


def _apply(conn: Connection, event: RuleEvent, now: int) -> int | None:
    tenant_id = event.tenant_id
    if tenant_id is None:  # message.sent carries the tenant's slug, not its id
        tenant_id = conn.execute(select(tickets.c.tenant_id).where(tickets.c.id == event.ticket_id)).scalar()
    if tenant_id is None:
        return None
    return clocks.reconcile(conn, tenant_id, event.ticket_id, now, event.data)


def announcement(e: dict[str, Any]) -> Envelope:
    """The event for one firing; its envelope id is derived from the clock, cycle and kind,
    so a second announcement of the same firing is recognisably the same event."""
    digest = hashlib.sha256(f"{e['clock_id']}:{e['token']}".encode()).digest()[:10]
    env_id = str(ULID.from_bytes(e["due_at"].to_bytes(6, "big") + digest))
    env = events.event_envelope(e["type"], str(e["tenant_id"]), "", "", tenant_id=e["tenant_id"],
                                ticket_id=e["ticket_id"], metric=e["metric"], due_at=e["due_at"],
                                policy=e["policy"], cycle=e["cycle"], origin=ORIGIN_SLA)
    env.id = env.trace_id = env_id
    return env


def _event(row, token: str) -> dict[str, Any]:
    return {"type": _KINDS[token[0]], "token": token, "clock_id": row.id, "tenant_id": row.tenant_id,
            "ticket_id": row.ticket_id, "metric": row.metric, "due_at": row.due_at, "policy": row.policy,
            "cycle": row.cycle}


def _unannounced(conn: Connection) -> list[dict[str, Any]]:
    rows = conn.execute(select(sla_clocks).where(sla_clocks.c.announce != "")).all()
    return [_event(r, token) for r in rows for token in r.announce.split(",")]


def _announced(conn: Connection, done: list[tuple[int, str]]) -> None:
    """Clear the record of announcements made (a clock rarely holds two at once)."""
    if not done:
        return
    cleared = conn.execute(update(sla_clocks).where(sla_clocks.c.id == bindparam("b_id"),
                                                    sla_clocks.c.announce == bindparam("b_token"))
                           .values(announce=""), [{"b_id": i, "b_token": t} for i, t in done]).rowcount
    if cleared == len(done):
        return
    for clock_id, token in done:
        row = conn.execute(select(sla_clocks.c.announce).where(sla_clocks.c.id == clock_id)).first()
        if row is not None and token in row.announce.split(","):
            left = ",".join(t for t in row.announce.split(",") if t != token)
            conn.execute(update(sla_clocks).where(sla_clocks.c.id == clock_id).values(announce=left))


def earliest(conn: Connection) -> int | None:
    return conn.execute(select(func.min(sla_clocks.c.next_at))).scalar()


def claim_due(conn: Connection, now: int, limit: int, published: list[tuple[int, str]] = ()
              ) -> tuple[list[dict[str, Any]], int | None]:
    """Fire the clocks due by ``now`` (at most ``limit``); returns the events to announce
    and the earliest ``next_at`` left. ``published``: the last round's announcements, cleared."""
    _announced(conn, published)
    stmt = (select(sla_clocks.c.id, sla_clocks.c.next_at, sla_clocks.c.tenant_id, sla_clocks.c.ticket_id)
            .where(sla_clocks.c.next_at <= now).order_by(sla_clocks.c.next_at).limit(limit))
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    fired: list[dict[str, Any]] = []
    known: dict[int, list[clocks.Policy]] = {}
    for due in conn.execute(stmt).all():
        claimed = conn.execute(update(sla_clocks).where(sla_clocks.c.id == due.id, sla_clocks.c.next_at == due.next_at)
                               .values(updated_at=now)).rowcount
        if not claimed:
            continue  # another replica fired it
        clocks.reconcile(conn, due.tenant_id, due.ticket_id, now, choose=False, known=known)
        row = conn.execute(select(sla_clocks).where(sla_clocks.c.id == due.id)).first()
        if row is None or row.state != clocks.RUNNING or row.next_at is None or row.next_at > now:
            continue  # met or paused after all
        fired.append(_fire(conn, row, now))
    return fired, earliest(conn)


def _fire(conn: Connection, row, now: int) -> dict[str, Any]:
    announce = [t for t in row.announce.split(",") if t]
    if row.due_at <= now:
        token = f"b{row.cycle}"
        conn.execute(update(sla_clocks).where(sla_clocks.c.id == row.id).values(
            state=clocks.BREACHED, breached_at=row.due_at, breaches=row.breaches + 1, next_at=None,
            warned_at=row.warned_at or now, announce=",".join([*announce, token]), updated_at=now))
        # A breached ticket waiting for an agent goes ahead of every ticket that has not breached.
        queue_store.move_ahead(conn, row.ticket_id, row.due_at - BREACH_LEAD_MS)
        tickets_store.tag_ticket(conn, row.ticket_id, [BREACHED_TAG], 0)
    else:
        token = f"w{row.cycle}"
        conn.execute(update(sla_clocks).where(sla_clocks.c.id == row.id).values(
            warned_at=now, next_at=row.due_at, announce=",".join([*announce, token]), updated_at=now))
        # A warned one ahead of every ticket neither warned nor breached.
        queue_store.move_ahead(conn, row.ticket_id, row.due_at - WARNING_LEAD_MS)
    return _event(row, token)
