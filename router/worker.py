"""The router stage: ``ticket.events`` -> assignments, plus a periodic pass over the queue."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import Mapping

import structlog

from core import keys, metrics
from core.batch import Batch
from core.bus import Bus, _text
from core.envelope import Envelope
from core.errors import PermanentError
from core.ids import now_ms
from core.settings import Settings
from core.worker import Worker
from router.batch import Assigner, Pull, Route
from router.outcome import Decision
from router.periodic import Periodic
from ticket_service import events
from ticket_service.store import decisions as decisions_store
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

    def __init__(self, bus: Bus, settings: Settings, db: Database, classes: Mapping[str, str],
                 consumer: str | None = None) -> None:
        """``classes``: each channel's capacity class, as the channel registry says."""
        super().__init__(bus, settings, [keys.TICKET_EVENTS], consumer)
        self.db = db
        self.assigner = Assigner(db, settings.router_aging_s * 1000, classes, settings.router_queue_scan)
        self.periodic = Periodic(self.assigner)

    async def setup(self) -> None:
        await super().setup()
        # Modules and SQLAlchemy's caches are a million long-lived objects: a full collection
        # over them stops every decision in flight for ~0.1 s. They stay; keep them out of it.
        gc.collect()
        gc.freeze()

    async def _read_streams(self, streams: list[str], block_ms: int) -> list[tuple[str, list]]:
        """A blocking read, then reads that do not block while they bring entries, up to
        ``batch_size``: what arrived while the last round ran is decided in one round (a round
        costs about as much whatever its size)."""
        batch = await super()._read_streams(streams, block_ms)
        got = sum(len(entries) for _, entries in batch)
        while 0 < got < self.settings.batch_size:
            reply = await self.redis.xreadgroup(self.group, self.consumer, {s: ">" for s in streams},
                                                count=self.settings.batch_size - got)
            more = [(_text(stream), entries) for stream, entries in reply or [] if entries]
            if not more:
                break
            got += sum(len(entries) for _, entries in more)
            read = dict(batch)
            for stream, entries in more:
                read[stream] = read.get(stream, []) + entries
            batch = list(read.items())
        return batch

    def _requests(self, event: dict) -> list[Route | Pull] | None:
        """What an event asks of the assigner; None for an agent's status change (not batched)."""
        kind = event["type"]
        if kind == events.AGENT_CHANGED:
            return None
        requests: list[Route | Pull] = []
        if kind == events.TICKET_CREATED and event.get("auto"):
            return requests  # opened by bulk mail: recorded as skipped (``_skip``), never routed
        if kind in _ROUTE:
            requests.append(Route(_int(event, "ticket_id"), event.get("received_at")))
        if kind in (events.TICKET_CLOSED, events.TICKET_UPDATED) and event.get("freed_agent_id"):
            requests.append(Pull(_int(event, "tenant_id"), _int(event, "freed_agent_id")))
        return requests

    @staticmethod
    def _skipped(event: dict) -> tuple[int, int, str] | None:
        """(tenant, ticket, reason) of a ticket opened by bulk mail, which no agent is given."""
        if event["type"] != events.TICKET_CREATED or not event.get("auto"):
            return None
        return _int(event, "tenant_id"), _int(event, "ticket_id"), str(event["auto"])

    async def _skip(self, skipped: list[tuple[int, int, str]]) -> list[None]:
        def record(conn) -> None:
            for tenant_id, ticket_id, reason in skipped:
                decisions_store.record(conn, tenant_id, ticket_id, Decision.SKIPPED, now, detail={
                    "reason": "auto", "auto_reason": reason})

        if skipped:
            now = now_ms()
            await self.db.run_write(record)
            metrics.ROUTER_DECISIONS.labels(Decision.SKIPPED).inc(len(skipped))
            for _, ticket_id, reason in skipped:
                log.info("router.skipped", ticket_id=ticket_id, reason="auto", auto_reason=reason)
        return [None] * len(skipped)

    async def _announce(self) -> None:
        """``ticket.assigned`` for the assignments committed since the last call (rules and
        webhooks react to them; this router ignores them). Published after the commit: a
        crash in between loses the announcement, never the assignment."""
        assigned = self.assigner.take_assigned()
        if not assigned:
            return
        try:
            await self.bus.publish_many([(keys.TICKET_EVENTS, events.event_envelope(
                events.TICKET_ASSIGNED, str(tenant_id), "", "", tenant_id=tenant_id, ticket_id=ticket_id,
                agent_id=agent_id, via=via)) for tenant_id, ticket_id, agent_id, via in assigned])
        except Exception:
            self.assigner.assigned[:0] = assigned  # said with the next batch's
            raise

    async def handle(self, envelope: Envelope) -> None:
        try:
            await self._handle(envelope)
        finally:
            await self._announce()

    async def _handle(self, envelope: Envelope) -> None:
        event = events.read_event(envelope)
        if skipped := self._skipped(event):
            await self._skip([skipped])
            return
        requests = self._requests(event)
        if requests is None:
            await self.assigner.agent_changed(_int(event, "tenant_id"), _int(event, "agent_id"),
                                              str(event.get("status", "")))
        elif requests:
            await self.assigner.apply(requests)

    async def handle_batch(self, envelopes: list[Envelope]) -> list[BaseException | None]:
        """The routes and pulls of the batch in shared rounds (see ``Assigner.apply``), split
        where an agent changes status. When a round fails for anything but an outage, its
        events are applied one by one (``core.batch.Batch``), so that only a bad one fails."""
        batch = Batch(len(envelopes), self.is_outage, self.role)
        group: dict[int, list[Route | Pull]] = {}
        skipped: dict[int, tuple[int, int, str]] = {}
        for i, envelope in enumerate(envelopes):
            try:
                event = events.read_event(envelope)
                if skip := self._skipped(event):
                    skipped[i] = skip
                requests = self._requests(event)
            except Exception as exc:
                batch.fail([i], exc)
                continue
            if requests is not None:
                group[i] = requests
                continue
            await self._apply(batch, group)
            group = {}
            await batch.run({i: envelope}, single=self._handle_one)
        await self._apply(batch, group)
        await batch.run(skipped, single=lambda skip: self._skip([skip]), whole=self._skip)
        await self._announce()
        return batch.results

    async def _apply(self, batch: Batch, group: dict[int, list[Route | Pull]]) -> None:
        """A group of events' requests in shared rounds; per event on its own when that fails."""
        async def whole(each: list[list[Route | Pull]]) -> list[None]:
            await self.assigner.apply([r for requests in each for r in requests])
            return [None] * len(each)

        await batch.run(group, single=self.assigner.apply, whole=whole)

    async def tick(self) -> None:
        """The periodic pass: escalations, load drift, pulls for agents with room, queue depths."""
        try:
            await self.periodic.run()
        finally:
            await self._announce()

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
