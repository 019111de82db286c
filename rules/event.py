"""One ``ticket.events`` entry as the rules see it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.envelope import Envelope
from ticket_service import events

# Events published by the rules themselves carry ``origin``; triggers never run on an event
# whose origin is a trigger (that is how a trigger's own effects cannot start a loop).
ORIGIN_TRIGGER = "trigger"
ORIGIN_AUTOMATION = "automation"
ORIGIN_SLA = "sla"


@dataclass(frozen=True)
class RuleEvent:
    id: str  # the envelope id: unique per event, the same on every redelivery
    type: str
    tenant_id: int | None
    ticket_id: int | None
    origin: str
    data: dict[str, Any] = field(repr=False)
    trace_id: str = ""

    @classmethod
    def of(cls, env: Envelope) -> RuleEvent:
        data = events.read_event(env)
        return cls(id=env.id, type=str(data["type"]), tenant_id=_int(data.get("tenant_id")),
                   ticket_id=_int(data.get("ticket_id")), origin=str(data.get("origin") or ""), data=data,
                   trace_id=env.trace_id)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
