"""What the rules role runs: the event handlers, in order, and the timers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from core.bus import Bus
from core.settings import Settings
from rules.automations import Automations
from rules.sla import SlaClocks, SlaTimer
from rules.triggers import Triggers
from rules.worker import Handler, Timer
from ticket_service.store.db import Database


@dataclass
class Components:
    handlers: list[Handler] = field(default_factory=list)
    timers: list[Timer] = field(default_factory=list)


def build(bus: Bus, settings: Settings, db: Database, classes: Mapping[str, str] | None = None) -> Components:
    """The handlers see each event in this order: SLA clocks first (a trigger may ask for
    the clock's state), then triggers, then webhooks (which also carry the events the
    triggers published).

    ``classes``: each channel's capacity class (a trigger closing a ticket frees capacity).
    Seams for the pieces beside the triggers: ``webhooks=`` (an ``effects.Webhooks``, for
    ``call_webhook``) and ``business_hours=`` (a ``triggers.BusinessHours``) on both runners.
    """
    runner = {"secret_key": settings.secret_key, "classes": classes}
    timer = SlaTimer(db, bus)
    return Components(handlers=[SlaClocks(db, timer), Triggers(db, bus, **runner)],
                      timers=[timer, Automations(db, bus, **runner)])
