"""Webhooks out, the fan-out: every ``ticket.events`` event becomes one pending delivery per
webhook of its tenant subscribed to its type, in one transaction (``rules.deliveries``
sends them).

Events the rules published themselves (origin trigger, automation, sla) are delivered too.
A redelivered event adds nothing: a delivery is unique per (webhook, event id). A tenant's
webhooks are kept for ``webhook_cache_s``, so an event no webhook wants costs no query.

``enqueue`` is for the other rules: a trigger's ``call_webhook`` queues one delivery inside
its own transaction.
"""

from __future__ import annotations

import time
from typing import Any

import structlog
from sqlalchemy import select
from ulid import ULID

from core.ids import now_ms
from core.settings import Settings
from rules.event import RuleEvent
from ticket_service.store import deliveries
from ticket_service.store import webhooks as webhooks_store
from ticket_service.store.db import Database
from ticket_service.store.tables import tickets

log = structlog.get_logger()

enqueue = deliveries.enqueue
# Fields of the event map that the body carries elsewhere (event, tenant, ticket).
_OMITTED = frozenset({"type", "tenant_id"})


def event_time(event_id: str) -> int:
    """When the event was published: its id is a ULID, whose first 48 bits are that time."""
    try:
        return ULID.from_str(event_id).milliseconds
    except ValueError:
        return now_ms()


def event_data(data: dict[str, Any]) -> dict[str, Any]:
    """The event's own fields as JSON can carry them (msgpack may hold bytes)."""
    out = {}
    for key, value in data.items():
        if key in _OMITTED:
            continue
        out[str(key)] = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    return out


class WebhookFanout:
    """The rules handler that queues deliveries (last in order: it carries what the others published)."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.ttl = settings.webhook_cache_s
        self._hooks: dict[int, tuple[float, str, list[webhooks_store.Hook]]] = {}

    async def _tenant_hooks(self, tenant_id: int) -> tuple[str, list[webhooks_store.Hook]]:
        """The tenant's slug and webhooks, read at most every ``webhook_cache_s``."""
        now = time.monotonic()
        cached = self._hooks.get(tenant_id)
        if cached and cached[0] > now:
            return cached[1], cached[2]

        def read(conn) -> tuple[str, list[webhooks_store.Hook]]:
            return deliveries.tenant_slug(conn, tenant_id), webhooks_store.hooks(conn, tenant_id)
        slug, hooks = await self.db.run_read(read)
        if len(self._hooks) > 10_000:
            self._hooks.clear()
        self._hooks[tenant_id] = (now + self.ttl, slug, hooks)
        return slug, hooks

    async def _tenant_of(self, event: RuleEvent) -> int | None:
        if event.tenant_id is not None or event.ticket_id is None:
            return event.tenant_id

        def read(conn):
            return conn.execute(select(tickets.c.tenant_id).where(tickets.c.id == event.ticket_id)).scalar()
        return await self.db.run_read(read)

    async def on_event(self, event: RuleEvent) -> None:
        tenant_id = await self._tenant_of(event)
        if tenant_id is None:
            return
        slug, hooks = await self._tenant_hooks(tenant_id)
        wanted = [h for h in hooks if h.wants(event.type)]
        if not wanted:
            return
        added = await self.db.run_write(deliveries.fan_out, tenant_id, slug, wanted, event.id, event.type,
                                        event_time(event.id), event.ticket_id, event_data(event.data), now_ms())
        log.info("webhook.queued", event_type=event.type, event_id=event.id, deliveries=len(added))
