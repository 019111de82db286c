"""Triggers: on each ticket event, the tenant's triggers listening to it, in ``position`` order.

Each trigger fires at most once per event: its audit row, unique on (event id, trigger id),
is written in the transaction of its effects, so a redelivered event finds the row and
does nothing. Each runs in a transaction of its own and reads the ticket afresh, so a
later trigger sees what an earlier one did. A trigger that fails (a stored row the API
would refuse, a template that does not render, an action the ticket cannot take) is
recorded as an error and the next trigger runs. Events caused by triggers carry
``origin: "trigger"`` and start no trigger: two triggers undoing each other stop there.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from core.bus import Bus
from core.ids import now_ms
from core.keys import TICKET_EVENTS
from rules import definitions, effects
from rules.conditions import ConditionError, matches
from rules.event import ORIGIN_TRIGGER, RuleEvent
from rules.facts import ticket_facts, ticket_row
from ticket_service import events
from ticket_service.portal_links import PortalLinks
from ticket_service.store import audit
from ticket_service.store import triggers as store
from ticket_service.store.db import Database, is_outage
from ticket_service.store.tables import messages

log = structlog.get_logger()

# The seam to business calendars: (conn, tenant, now) -> the ``business_hours`` fact.
BusinessHours = Callable[[Connection, int, int], Callable[[str | None], bool | None]]
# Faults in the tenant's data, logged at info; anything else is ours, logged at error.
TENANT_FAULTS = (ConditionError, effects.ActionError)
_SENT = ("message.sent", "message.failed")
RULE_KEY = "rule"  # idempotency keys of messages written by triggers and automations start so


class Runner:
    """What triggers and automations share: the store, the bus and the seams."""

    def __init__(self, db: Database, bus: Bus, secret_key: str = "", classes: Mapping[str, str] | None = None,
                 webhooks: effects.Webhooks | None = None, business_hours: BusinessHours | None = None,
                 links: PortalLinks | None = None) -> None:
        self.db, self.bus, self.secret_key = db, bus, secret_key
        self.classes = dict(classes or {})
        self.webhooks, self.business_hours, self.links = webhooks, business_hours, links

    def firing(self, conn: Connection, tenant_id: int, ticket_id: int, now: int, origin: str, key: str,
               event: Mapping[str, Any]) -> effects.Firing:
        return effects.Firing(conn, tenant_id, ticket_id, now, origin, key, event, self.secret_key, self.classes,
                              self.webhooks, links=self.links)

    def facts(self, conn: Connection, row, now: int, event: Mapping[str, Any]):
        hours = self.business_hours(conn, row.tenant_id, now) if self.business_hours else None
        return ticket_facts(conn, row, now, dict(event), hours)

    async def publish(self, tenant_id: int, ticket_id: int, origin: str, source: dict, trace_id: str,
                      published: list[tuple[str, dict]]) -> None:
        if published:
            await self.bus.publish_many([(TICKET_EVENTS, events.event_envelope(
                kind, str(tenant_id), "", trace_id, tenant_id=tenant_id, ticket_id=ticket_id, origin=origin,
                **source, **fields)) for kind, fields in published])

    @staticmethod
    def failed(exc: Exception, what: str, **context: Any) -> str:
        if isinstance(exc, TENANT_FAULTS):
            log.info(f"{what}.failed", error=str(exc), **context)
        else:
            log.error(f"{what}.failed", exc_info=exc, **context)
        return f"{type(exc).__name__}: {exc}" if not isinstance(exc, TENANT_FAULTS) else str(exc)


class Triggers(Runner):
    """The rules worker's trigger handler."""

    async def on_event(self, event: RuleEvent) -> None:
        if event.origin == ORIGIN_TRIGGER or event.tenant_id is None or event.ticket_id is None:
            return
        if event.type in _SENT and await self.db.run_read(_by_rule, event.data.get("message_id")):
            return  # the sending of a trigger's own reply: as good as caused by a trigger
        rows = await self.db.run_read(store.listed, "trigger", event.tenant_id, True)
        for row in rows:
            if event.type in (row.events or ()):
                await self._fire(row, event)

    async def _fire(self, row, event: RuleEvent) -> None:
        context = {"trigger_id": row.id, "ticket_id": event.ticket_id, "event_id": event.id}
        try:
            published = await self.db.run_write(self._apply, row, event)
        except IntegrityError:
            # Another worker fired it for this event meanwhile (a reclaimed entry): its row won.
            if await self.db.run_read(audit.trigger_fired, event.id, row.id):
                return
            raise
        except Exception as exc:
            if is_outage(exc):
                raise
            await self.db.run_write(self._record_error, row, event, self.failed(exc, "trigger", **context))
            return
        if published is not None:
            log.info("trigger.fired", **context)
            await self.publish(event.tenant_id, event.ticket_id, ORIGIN_TRIGGER, {"trigger_id": row.id},
                               event.trace_id, published)

    def _apply(self, conn: Connection, row, event: RuleEvent) -> list | None:
        """The trigger on the ticket as it is now; None when it had fired or does not match."""
        if audit.trigger_fired(conn, event.id, row.id):
            return None
        ticket = ticket_row(conn, event.tenant_id, event.ticket_id)
        if ticket is None:
            return None
        conditions, actions = definitions.stored(row, "trigger")
        now = now_ms()
        if not matches(conditions, self.facts(conn, ticket, now, event.data)):
            return None
        firing = self.firing(conn, event.tenant_id, event.ticket_id, now, ORIGIN_TRIGGER,
                             f"{RULE_KEY}:{event.id}:{row.id}", event.data)
        effects.apply(firing, actions)
        audit.record(conn, tenant_id=event.tenant_id, ticket_id=event.ticket_id, event_id=event.id,
                     event_type=event.type, trigger_id=row.id, name=row.name, actions=firing.applied, now=now)
        return firing.published

    @staticmethod
    def _record_error(conn: Connection, row, event: RuleEvent, error: str) -> None:
        if audit.trigger_fired(conn, event.id, row.id) or ticket_row(conn, event.tenant_id, event.ticket_id) is None:
            return
        audit.record(conn, tenant_id=event.tenant_id, ticket_id=event.ticket_id, event_id=event.id,
                     event_type=event.type, trigger_id=row.id, name=row.name, actions=[], now=now_ms(), error=error)


def _by_rule(conn: Connection, message_id: Any) -> bool:
    """Whether a trigger or automation wrote this message (its idempotency key says so)."""
    if not isinstance(message_id, int):
        return False
    key = conn.execute(select(messages.c.dedup_key).where(messages.c.id == message_id)).scalar()
    return bool(key) and key.startswith(f"idem:{RULE_KEY}:")
