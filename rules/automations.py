"""Automations: time-based rules, checked every few seconds by a timer of the rules role.

An automation's ``if`` holds a time test in its top-level ``all`` (``hours_since_pending gt
72``); that test becomes an indexed query on the ticket's time column (``status_at`` with
the status, ``created_at``, ``updated_at``, ``assigned_at``), so a pass reads the tickets
that can match, a page at a time, never all of them. Tickets it already fired on in their
current episode are left out by the query too.

An automation fires at most once per ticket per episode: the ticket's ``status_at`` (its
audit row is unique on automation, ticket, episode). "Pending 72 h: remind the customer"
and "pending 96 h: close" thus remind once and close once; a ticket that went back to
open and is pending again is a new episode and is reminded again.
"""

from __future__ import annotations

import asyncio

import structlog
from sqlalchemy import and_, exists, or_, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from core.ids import now_ms
from rules import definitions, effects
from rules.conditions import matches
from rules.event import ORIGIN_AUTOMATION
from rules.facts import HOUR_MS, ticket_row
from rules.triggers import RULE_KEY, Runner
from ticket_service.store import audit as audit_store
from ticket_service.store import triggers as store
from ticket_service.store.db import is_outage
from ticket_service.store.tables import audit, tickets

log = structlog.get_logger()

INTERVAL_S = 5.0
PAGE = 100  # tickets looked at per automation per pass
EVENT = "automation"  # the audit's event type for an automation's firing
OPEN = ("new", "open", "pending")

# field -> (the column its cutoff applies to, the statuses it implies)
_WINDOWS = {
    "hours_since_pending": (tickets.c.status_at, ("pending",)),
    "hours_since_solved": (tickets.c.status_at, ("solved", "closed")),
    "hours_since_created": (tickets.c.created_at, None),
    "hours_since_updated": (tickets.c.updated_at, None),
    "hours_since_assigned": (tickets.c.assigned_at, OPEN),
}


def candidates(conn: Connection, automation, now: int, after: tuple[int, int] | None, limit: int = PAGE) -> list:
    """(time, ticket id, episode) of tickets past the automation's time test that it has not
    fired on in their episode, in time order after the keyset ``after``."""
    field, hours = definitions.time_window(automation.conditions)
    column, statuses = _WINDOWS[field]
    fired = exists().where(audit.c.automation_id == automation.id, audit.c.ticket_id == tickets.c.id,
                           audit.c.episode == tickets.c.status_at)
    stmt = select(column.label("at"), tickets.c.id, tickets.c.status_at).where(
        tickets.c.tenant_id == automation.tenant_id, column <= now - int(hours * HOUR_MS),
        tickets.c.status_at.is_not(None), ~fired)
    if statuses:
        stmt = stmt.where(tickets.c.status.in_(statuses))
    if after is not None:
        stmt = stmt.where(or_(column > after[0], and_(column == after[0], tickets.c.id > after[1])))
    return conn.execute(stmt.order_by(column, tickets.c.id).limit(limit)).all()


class Automations(Runner):
    """The rules role's automation timer."""

    def __init__(self, *args, interval_s: float = INTERVAL_S, page: int = PAGE, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.interval_s, self.page = interval_s, page
        self._after: dict[int, tuple[int, int]] = {}  # automation -> where its last page ended
        self.passes = 0

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.run_once()
            except Exception as exc:
                log.warning("automations.pass_failed", error=str(exc)) if is_outage(exc) else log.error(
                    "automations.pass_failed", exc_info=True)
            try:
                await asyncio.wait_for(stop.wait(), self.interval_s)
            except TimeoutError:
                pass

    async def run_once(self) -> int:
        """One pass: a page of candidates per automation, each fired on where it matches."""
        fired = 0
        for automation in await self.db.run_read(store.active_automations):
            if definitions.time_window(automation.conditions or {}) is None:
                continue  # written by hand without a time test: nothing to query by
            now = now_ms()
            page = await self.db.run_read(candidates, automation, now, self._after.get(automation.id), self.page)
            if len(page) < self.page:
                self._after.pop(automation.id, None)  # the end: the next pass starts over
            else:
                self._after[automation.id] = (page[-1].at, page[-1].id)
            for candidate in page:
                fired += await self._fire(automation, candidate.id, candidate.status_at)
        self.passes += 1
        return fired

    async def _fire(self, automation, ticket_id: int, episode: int) -> int:
        context = {"automation_id": automation.id, "ticket_id": ticket_id, "episode": episode}
        try:
            published = await self.db.run_write(self._apply, automation, ticket_id, episode)
        except IntegrityError:
            return 0  # another rules process fired it on this episode first
        except Exception as exc:
            if is_outage(exc):
                raise
            await self.db.run_write(self._record_error, automation, ticket_id, episode,
                                    self.failed(exc, "automation", **context))
            return 0
        if published is None:
            return 0
        log.info("automation.fired", **context)
        await self.publish(automation.tenant_id, ticket_id, ORIGIN_AUTOMATION, {"automation_id": automation.id},
                           "", published)
        return 1

    def _apply(self, conn: Connection, automation, ticket_id: int, episode: int) -> list | None:
        row = ticket_row(conn, automation.tenant_id, ticket_id)
        if row is None or row.status_at != episode or audit_store.automation_fired(conn, automation.id, ticket_id,
                                                                                     episode):
            return None  # moved on since the query, or fired already
        conditions, actions = definitions.stored(automation, "automation")
        now = now_ms()
        event = {"type": EVENT}
        if not matches(conditions, self.facts(conn, row, now, event)):
            return None
        key = f"{RULE_KEY}:a{automation.id}:{ticket_id}:{episode}"
        firing = self.firing(conn, automation.tenant_id, ticket_id, now, ORIGIN_AUTOMATION, key, event)
        effects.apply(firing, actions)
        audit_store.record(conn, tenant_id=automation.tenant_id, ticket_id=ticket_id, event_id=key, event_type=EVENT,
                           automation_id=automation.id, episode=episode, name=automation.name,
                           actions=firing.applied, now=now)
        return firing.published

    @staticmethod
    def _record_error(conn: Connection, automation, ticket_id: int, episode: int, error: str) -> None:
        if audit_store.automation_fired(conn, automation.id, ticket_id, episode):
            return
        audit_store.record(conn, tenant_id=automation.tenant_id, ticket_id=ticket_id,
                           event_id=f"{RULE_KEY}:a{automation.id}:{ticket_id}:{episode}", event_type=EVENT,
                           automation_id=automation.id, episode=episode, name=automation.name, actions=[],
                           now=now_ms(), error=error)
