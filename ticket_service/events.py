"""Ticket events on ``ticket.events``: an Envelope whose payload is a msgpack event map."""

from __future__ import annotations

from typing import Any

import msgpack

from core.envelope import Envelope, pack
from core.errors import PermanentError

CHANNEL = "ticket"
CONTENT_TYPE = "application/vnd.switchboard.ticket-event+msgpack"

TICKET_CREATED = "ticket.created"
MESSAGE_ADDED = "message.added"
TICKET_REOPENED = "ticket.reopened"
TICKET_CLOSED = "ticket.closed"
AGENT_CHANGED = "agent.changed"
TICKET_UPDATED = "ticket.updated"  # assignee cleared or changed by hand
# An agent now holds the ticket: ``agent_id``, ``via`` (event, pull, requeue, manual, ...).
TICKET_ASSIGNED = "ticket.assigned"
# The status moved: ``from`` and ``to`` (new, open, pending, solved, closed).
TICKET_STATUS_CHANGED = "ticket.status_changed"


def event_envelope(kind: str, tenant: str, account: str, trace_id: str, **fields: Any) -> Envelope:
    """Wrap one event; ``trace_id`` carries the ingress trace on to the router."""
    payload = pack({"type": kind, **fields})
    return Envelope(
        tenant=tenant, channel=CHANNEL, account=account, payload=payload,
        content_type=CONTENT_TYPE, trace_id=trace_id, meta={"type": kind},
    )


def read_event(env: Envelope) -> dict[str, Any]:
    if env.content_type != CONTENT_TYPE:
        raise PermanentError(f"not a ticket event: {env.content_type}")
    try:
        event = msgpack.unpackb(env.payload, raw=False)
    except Exception as exc:
        raise PermanentError(f"bad ticket event: {exc}") from exc
    if not isinstance(event, dict) or "type" not in event:
        raise PermanentError("ticket event without a type")
    return event
