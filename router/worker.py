"""The router stage: ``ticket.events`` -> assignments, plus a periodic pass over the queue."""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from core import keys
from core.bus import Bus
from core.envelope import Envelope
from core.errors import PermanentError
from core.settings import Settings
from core.worker import Worker
from router.assignment import Assigner
from ticket_service import events
from ticket_service.store.db import Database
from ticket_service.store.db import is_outage as db_is_outage

log = structlog.get_logger()
_ROUTE = frozenset({events.TICKET_CREATED, events.TICKET_REOPENED, events.MESSAGE_ADDED, events.TICKET_UPDATED})


def _int(event: dict, name: str) -> int:
    value = event.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise PermanentError(f"{event.get('type')} event without an integer {name}")
    return value


class Router(Worker):
    role = "router"
    group = keys.GROUP_ROUTER

    def is_outage(self, exc: BaseException) -> bool:
        return isinstance(exc, self.outage_errors) or db_is_outage(exc)

    def __init__(self, bus: Bus, settings: Settings, db: Database, consumer: str | None = None) -> None:
        super().__init__(bus, settings, [keys.TICKET_EVENTS], consumer)
        self.db = db
        self.assigner = Assigner(db, settings.router_aging_s * 1000, settings.router_queue_scan)

    async def handle(self, envelope: Envelope) -> None:
        event = events.read_event(envelope)
        kind = event["type"]
        if kind in _ROUTE:
            await self.assigner.route(_int(event, "ticket_id"), event.get("received_at"))
        if kind in (events.TICKET_CLOSED, events.TICKET_UPDATED) and event.get("freed_agent_id"):
            await self.assigner.pull(_int(event, "tenant_id"), _int(event, "freed_agent_id"))
        elif kind == events.AGENT_CHANGED:
            await self.assigner.agent_changed(_int(event, "tenant_id"), _int(event, "agent_id"),
                                              str(event.get("status", "")))

    async def tick(self) -> None:
        """The periodic pass: escalations, load drift, pulls for agents with room, queue depths."""
        await self.assigner.escalate_due()
        await self.assigner.reconcile()

    async def _ticker(self) -> None:
        interval = self.settings.router_reconcile_ms / 1000
        while not self.stopping:
            await self._sleep(interval)
            if self.stopping:
                return
            try:
                # One instance per interval does the pass; the others skip it.
                if await self.redis.set(keys.router_tick_key(), self.consumer, nx=True,
                                        px=self.settings.router_reconcile_ms):
                    await self.tick()
            except Exception:
                log.error("router.tick_failed", exc_info=True)

    async def run(self, drain: bool = False) -> None:
        ticker = None if drain else asyncio.create_task(self._ticker())
        try:
            await super().run(drain)
        finally:
            if ticker is not None:
                ticker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ticker
