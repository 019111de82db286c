"""An SLA policy as the API and the CLI take it, checked field by field.

::

    {"name": "vip", "if": {"all": [{"field": "vip_tier", "op": "gte", "value": 1}]},
     "targets": {"first_reply_s": 3600, "next_reply_s": 7200, "resolution_s": 86400},
     "calendar": "cn-support", "warn_before_s": 900, "pause_in": ["pending"], "position": 1}

``targets`` is any non-empty subset of the three metrics; ``calendar`` null counts
calendar time (24/7). A bad document raises ``InvalidField`` naming the path at fault.
"""

from __future__ import annotations

from typing import Any

from rules import conditions
from rules.calendar_schema import InvalidField, name

METRICS = ("first_reply", "next_reply", "resolution")
TARGET_KEYS = {f"{m}_s": m for m in METRICS}
# Statuses a clock may pause in; solved and closed end the resolution clock instead.
PAUSABLE = ("new", "open", "pending")
DEFAULT_WARN_S = 900
MAX_SECONDS = 2**31 - 1  # INTEGER columns; about 68 years
_KEYS = frozenset({"name", "if", "targets", "calendar", "warn_before_s", "pause_in", "position"})


def _seconds(value: Any, path: str, low: int) -> int:
    if type(value) is not int or not low <= value <= MAX_SECONDS:
        raise InvalidField(path, f"must be an integer from {low} to {MAX_SECONDS}")
    return value


def targets(value: Any) -> dict[str, int]:
    if not isinstance(value, dict) or not value:
        raise InvalidField("targets", f"must be an object with one or more of {', '.join(TARGET_KEYS)}")
    extra = sorted(set(value) - set(TARGET_KEYS))
    if extra:
        raise InvalidField(f"targets.{extra[0]}", f"unknown target; one of {', '.join(TARGET_KEYS)}")
    return {TARGET_KEYS[k]: _seconds(v, f"targets.{k}", 1) for k, v in value.items()}


def pause_in(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidField("pause_in", "must be a list of ticket statuses")
    for i, status in enumerate(value):
        if status not in PAUSABLE:
            raise InvalidField(f"pause_in[{i}]", f"must be one of {', '.join(PAUSABLE)}")
    return sorted(set(value))


def policy(doc: Any) -> dict[str, Any]:
    """The columns of a policy (``position`` None: last) from an API/CLI body."""
    if not isinstance(doc, dict):
        raise InvalidField("body", "must be a JSON object")
    extra = sorted(set(doc) - _KEYS)
    if extra:
        raise InvalidField(extra[0], "unknown field")
    try:
        conds = conditions.validate(doc.get("if"), "if")
    except conditions.ConditionError as exc:
        raise InvalidField(exc.path, exc.message) from None
    calendar = doc.get("calendar")
    if calendar is not None:
        name(calendar, "calendar")
    position = doc.get("position")
    if position is not None:
        position = _seconds(position, "position", 1)
    return {"name": name(doc.get("name")), "conditions": conds, "targets": targets(doc.get("targets")),
            "calendar": calendar, "warn_before_s": _seconds(doc.get("warn_before_s", DEFAULT_WARN_S),
                                                           "warn_before_s", 0),
            "pause_in": pause_in(doc.get("pause_in")), "position": position}


def to_json(row) -> dict[str, Any]:
    return {"name": row.name, "position": row.position, "if": row.conditions or {},
            "targets": {f"{m}_s": s for m, s in (row.targets or {}).items()}, "calendar": row.calendar,
            "warn_before_s": row.warn_before_s, "pause_in": list(row.pause_in or [])}
