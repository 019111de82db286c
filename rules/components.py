"""What the rules role runs: the event handlers, in order, and the timers."""

from __future__ import annotations

from dataclasses import dataclass, field

from core.bus import Bus
from core.settings import Settings
from rules.deliveries import Deliverer
from rules.webhooks import WebhookFanout
from rules.worker import Handler, Timer
from ticket_service.store.db import Database


@dataclass
class Components:
    handlers: list[Handler] = field(default_factory=list)
    timers: list[Timer] = field(default_factory=list)


def build(bus: Bus, settings: Settings, db: Database) -> Components:
    """The handlers see each event in this order: SLA clocks first (a trigger may ask for
    the clock's state), then triggers, then webhooks (which also carry the events the
    triggers published)."""
    return Components(handlers=[WebhookFanout(db, settings)], timers=[Deliverer(db, settings)])
