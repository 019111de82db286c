"""What the rules role runs: the event handlers, in order, and the timers."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Connection

from core.bus import Bus
from core.settings import Settings
from rules.automations import Automations
from rules.calendar import is_business_time
from rules.clocks import Calendars
from rules.deliveries import Deliverer
from rules.sla import SlaClocks, SlaTimer
from rules.triggers import Triggers
from rules.webhooks import WebhookFanout
from rules.worker import Handler, Timer
from ticket_service.portal_links import PortalLinks
from ticket_service.store import deliveries
from ticket_service.store.db import Database


class TriggerWebhooks:
    """``call_webhook``: one delivery to the tenant's webhook (signed) or to a URL (unsigned),
    queued in the firing's transaction, so a firing and its call commit together."""

    def enqueue(self, conn: Connection, tenant_id: int, target: Mapping[str, Any], event: Mapping[str, Any]) -> Any:
        where = target.get("webhook_id", target.get("url"))
        data = {k: v for k, v in event.items() if k not in ("tenant_id",)}
        return deliveries.enqueue(conn, tenant_id, where, str(event.get("type") or "trigger.webhook"), data,
                                  ticket_id=event.get("ticket_id"))


def business_hours(conn: Connection, tenant_id: int, now: int) -> Callable[[str | None], bool | None]:
    """The ``business_hours`` fact: whether ``now`` is business time on the named calendar
    (without a name, the tenant's calendar named ``default``); None when there is no such
    calendar, so the condition fails rather than guessing."""
    calendars = Calendars(conn, tenant_id)

    def check(name: str | None) -> bool | None:
        cal = calendars.get(name or "default")
        return None if cal is None else is_business_time(cal, now)
    return check


@dataclass
class Components:
    handlers: list[Handler] = field(default_factory=list)
    timers: list[Timer] = field(default_factory=list)


def build(bus: Bus, settings: Settings, db: Database, classes: Mapping[str, str] | None = None) -> Components:
    """The handlers see each event in this order: SLA clocks first (a trigger may ask for
    the clock's state), then triggers, then webhooks (which also carry the events the
    triggers published).

    ``classes``: each channel's capacity class (a trigger closing a ticket frees capacity).
    Templates' ``ticket.status_url`` is signed as the api role signs status links (the roles
    share ``secret_key``, ``public_url`` and ``portal_link_ttl_s``).
    """
    links = (PortalLinks(settings.secret_key, settings.effective_public_url, settings.portal_link_ttl_s)
             if settings.secret_key else None)
    runner = {"secret_key": settings.secret_key, "classes": classes, "webhooks": TriggerWebhooks(),
              "business_hours": business_hours, "links": links}
    timer = SlaTimer(db, bus)
    return Components(handlers=[SlaClocks(db, timer), Triggers(db, bus, **runner), WebhookFanout(db, settings)],
                      timers=[timer, Automations(db, bus, **runner), Deliverer(db, settings)])
