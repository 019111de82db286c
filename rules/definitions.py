"""A trigger or automation as the API takes it, checked into its stored columns.

``{"name", "on": [event types], "if": conditions, "then": actions, "position", "active"}``
(an automation has no ``on``). Faults name their path (``then[2].template``,
``if.all[0].op``); the whole definition is bounded in size. Stored rows are checked again
where they run (``stored``), so a row written by hand fails alone.
"""

from __future__ import annotations

import json
from typing import Any

from rules import actions, conditions
from rules.conditions import ConditionError
from ticket_service import events
from ticket_service.api.tickets import iso_ms

MAX_NAME = 200
MAX_BYTES = 32 * 1024
MAX_TRIGGERS = 200  # per tenant: each event runs the tenant's triggers in order
MAX_AUTOMATIONS = 100  # per tenant: each runs a query every few seconds
LIMITS = {"trigger": MAX_TRIGGERS, "automation": MAX_AUTOMATIONS}

# What a trigger may listen to: the ticket events with a ticket (SLA events included).
EVENTS = (events.TICKET_CREATED, events.MESSAGE_ADDED, events.TICKET_REOPENED, events.TICKET_ASSIGNED,
          events.TICKET_STATUS_CHANGED, events.TICKET_CLOSED, events.TICKET_UPDATED, "sla.warning",
          "sla.breached", "message.sent", "message.failed")

# The time conditions an automation's ticket query is built on: at least one of them,
# ``gt``/``gte`` in the top-level ``all``, says which tickets can match at all.
TIME_FIELDS = ("hours_since_pending", "hours_since_solved", "hours_since_created", "hours_since_updated",
               "hours_since_assigned")


def _name(body: dict) -> str:
    name = body.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
        raise ConditionError("name", f"a non-empty string of at most {MAX_NAME} characters")
    return name


def _on(value: Any) -> list[str]:
    if not isinstance(value, list) or not value or len(value) > len(EVENTS):
        raise ConditionError("on", f"a non-empty list of event types: {', '.join(EVENTS)}")
    for i, kind in enumerate(value):
        if kind not in EVENTS:
            raise ConditionError(f"on[{i}]", f"one of {', '.join(EVENTS)}")
    return list(dict.fromkeys(value))


def time_window(cond: dict) -> tuple[str, float] | None:
    """The first (field, hours) of a ``gt``/``gte`` time test in the top-level ``all``."""
    for entry in cond.get("all") or ():
        if isinstance(entry, dict) and entry.get("field") in TIME_FIELDS and entry.get("op") in ("gt", "gte"):
            return entry["field"], float(entry["value"])
    return None


def _keys(body: dict, kind: str) -> None:
    known = {"name", "if", "then", "position", "active"} | ({"on"} if kind == "trigger" else set())
    extra = sorted(str(k) for k in set(body) - known)
    if extra:
        raise ConditionError(extra[0][:60], f"unknown field (known: {', '.join(sorted(known))})")


def definition(body: Any, kind: str) -> dict[str, Any]:
    """The columns of a trigger or automation from an API body, or ``ConditionError``."""
    if not isinstance(body, dict):
        raise ConditionError("body", "must be a JSON object")
    _keys(body, kind)
    out: dict[str, Any] = {"name": _name(body)}
    if kind == "trigger":
        out["events"] = _on(body.get("on"))
    out["conditions"] = conditions.validate(body.get("if"), "if")
    if kind == "automation" and time_window(out["conditions"]) is None:
        raise ConditionError("if.all", "an automation needs a time test in if.all: one of "
                             f"{', '.join(TIME_FIELDS)} with gt or gte")
    out["actions"] = actions.validate(body.get("then"), "then")
    if body.get("position") is not None:
        position = body["position"]
        if type(position) is not int or not 1 <= position <= 10_000:
            raise ConditionError("position", "an integer from 1 (first) to 10000")
        out["position"] = position
    active = body.get("active", True)
    if not isinstance(active, bool):
        raise ConditionError("active", "true or false")
    out["active"] = active
    size = len(json.dumps(out, ensure_ascii=False).encode())
    if size > MAX_BYTES:
        raise ConditionError("body", f"{size} bytes as JSON, over the limit of {MAX_BYTES}")
    return out


def stored(row: Any, kind: str) -> tuple[dict, list[dict]]:
    """A stored row's (conditions, actions), checked as the API checks them."""
    cond = conditions.validate(row.conditions, "if")
    if kind == "automation" and time_window(cond) is None:
        raise ConditionError("if.all", "no time test")
    return cond, actions.validate(row.actions, "then")


def as_json(row: Any, kind: str) -> dict[str, Any]:
    body = {"id": row.id, "name": row.name, "position": row.position}
    if kind == "trigger":
        body["on"] = list(row.events or [])
    return body | {"if": row.conditions or {}, "then": list(row.actions or []), "active": bool(row.active),
                   "created_at": iso_ms(row.created_at), "updated_at": iso_ms(row.updated_at)}
