"""The rules stage: ``ticket.events`` (group ``rules``) -> handlers; timers beside it.

A handler sees every event once per delivery and must be idempotent under redelivery
(the entry is acked only after every handler returned): it keeps what it did keyed by the
event id in the same transaction as its effects. Timers (SLA due times, automations,
webhook retries) run while the worker runs and stop with it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol

import structlog

from core import keys
from core.bus import Bus
from core.envelope import Envelope
from core.settings import Settings
from core.worker import Worker, bound
from rules.event import RuleEvent

log = structlog.get_logger()


class Handler(Protocol):
    async def on_event(self, event: RuleEvent) -> None: ...


class Timer(Protocol):
    async def run(self, stop: asyncio.Event) -> None: ...


class RulesWorker(Worker):
    role = "rules"
    group = "rules"

    def __init__(self, bus: Bus, settings: Settings, handlers: Sequence[Handler] = (),
                 timers: Sequence[Timer] = (), consumer: str | None = None) -> None:
        super().__init__(bus, settings, [keys.TICKET_EVENTS], consumer)
        self.handlers = list(handlers)
        self.timers = list(timers)

    async def handle(self, envelope: Envelope) -> None:
        event = RuleEvent.of(envelope)
        with bound(envelope):
            for handler in self.handlers:
                await handler.on_event(event)

    async def run(self, drain: bool = False) -> None:
        if drain:
            await super().run(drain=True)
            return
        tasks = [asyncio.create_task(timer.run(self._stop)) for timer in self.timers]
        try:
            await super().run()
        finally:
            self._stop.set()
            await asyncio.gather(*tasks)
