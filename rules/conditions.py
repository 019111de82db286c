"""Conditions as data: what triggers, automations and SLA policies ask of a ticket.

A condition set is ``{"all": [...], "any": [...]}`` (either may be left out; both present
means every ``all`` entry and at least one ``any`` entry). An entry is a test
``{"field": "channel", "op": "is", "value": "email"}`` or a nested set, up to
``MAX_DEPTH`` levels. ``validate`` refuses a bad set naming the path of the fault
(``if.all[2].value``); ``matches`` evaluates a valid set against a ticket's ``Facts``.

Fields (``FIELDS``) say which operators and value shapes they take. ``field.<name>`` reads
a custom field. ``business_hours`` may name a ``calendar`` (else the tenant's default one).
Regular expressions run on the ``regex`` engine with a time limit: a tenant's pattern must
not hold a worker that serves every tenant.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import regex
import structlog

log = structlog.get_logger()

MAX_DEPTH = 4
MAX_ENTRIES = 50  # per list
MAX_STRING = 500
MAX_PATTERN = 200
REGEX_TIMEOUT_S = 0.02
TEXT_LIMIT = 20_000  # characters of a message a text test looks at

_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}\Z")


class ConditionError(ValueError):
    """A condition set that cannot be used; ``path`` names where (``if.all[1].op``)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


# Value shapes.
STR, INT, NUM, BOOL, STRS = "string", "integer", "number", "boolean", "strings"

_ARTICLE = {STR: "a string", INT: "an integer", NUM: "a number of 0 or more", BOOL: "true or false"}

_EQ = ("is", "is_not")
_SET = ("in", "not_in")
_CMP = ("gt", "gte", "lt", "lte")
_TEXT = ("contains", "not_contains", "regex")
_PRESENCE = ("present", "absent")


@dataclass(frozen=True)
class Field:
    kind: str  # the shape of the fact: STR, INT, NUM, BOOL or STRS (a list, such as tags)
    ops: tuple[str, ...]


_SCALAR_STR = Field(STR, _EQ + _SET + _PRESENCE)
_SCALAR_INT = Field(INT, _EQ + _SET + _CMP)
_HOURS = Field(NUM, _CMP + _PRESENCE)

FIELDS: dict[str, Field] = {
    "event": _SCALAR_STR,  # the event being handled: ticket.created, sla.breached, ...
    "channel": _SCALAR_STR,
    "account": _SCALAR_STR,  # the account's address (mailbox, WeChat id, ...)
    "status": _SCALAR_STR,
    "language": _SCALAR_STR,
    "assignee": Field(INT, _EQ + _PRESENCE),
    "priority": _SCALAR_INT,
    "vip_tier": _SCALAR_INT,
    "tags": Field(STRS, ("includes", "excludes", "includes_all", *_PRESENCE)),
    "subject": Field(STR, _EQ + _TEXT + _PRESENCE),
    "text": Field(STR, _TEXT),  # the message the event is about (else the ticket's latest)
    "sender": Field(STR, _EQ + _TEXT + _PRESENCE),
    "direction": _SCALAR_STR,  # in | out: who wrote the message the event is about
    "business_hours": Field(BOOL, ("is",)),
    "hours_since_created": _HOURS,
    "hours_since_updated": _HOURS,
    "hours_since_pending": _HOURS,
    "hours_since_solved": _HOURS,
    "hours_since_assigned": _HOURS,
    "hours_since_customer_message": _HOURS,
    "sla_metric": _SCALAR_STR,  # on sla.* events: first_reply | next_reply | resolution
    # Why bulk or machine-made mail opened the ticket (its ``auto_reason``: list, bulk, …); empty
    # once a person writes in it. An acknowledgement asks it absent: RFC 3834 §2, no answering robots.
    "auto": _SCALAR_STR,
}
CUSTOM = "field."
# A custom field's value is whatever its definition allows; every operator that makes sense
# for some type is accepted and compares by the value's own type.
_CUSTOM = Field("any", _EQ + _SET + _CMP + ("contains", "not_contains", "includes", "excludes") + _PRESENCE)


def field_spec(name: str) -> Field | None:
    if name.startswith(CUSTOM):
        return _CUSTOM if _NAME.match(name[len(CUSTOM):]) else None
    return FIELDS.get(name)


# -- validation ---------------------------------------------------------------------------

def validate(data: Any, path: str = "if") -> dict:
    """``data`` as a condition set, or ``ConditionError`` naming the path of the fault.

    ``None`` and ``{}`` mean "always"."""
    if data is None:
        return {}
    _group(data, path, 1)
    return data


def _group(data: Any, path: str, depth: int) -> None:
    if not isinstance(data, dict):
        raise ConditionError(path, 'must be an object {"all": [...], "any": [...]}')
    extra = set(data) - {"all", "any"}
    if extra:
        raise ConditionError(f"{path}.{sorted(extra)[0]}", 'unknown key: a condition set has "all" and "any"')
    if depth > MAX_DEPTH:
        raise ConditionError(path, f"nested deeper than {MAX_DEPTH} levels")
    for key in ("all", "any"):
        if key not in data:
            continue
        entries = data[key]
        if not isinstance(entries, list):
            raise ConditionError(f"{path}.{key}", "must be a list")
        if len(entries) > MAX_ENTRIES:
            raise ConditionError(f"{path}.{key}", f"more than {MAX_ENTRIES} entries")
        for i, entry in enumerate(entries):
            where = f"{path}.{key}[{i}]"
            if isinstance(entry, dict) and "field" not in entry and ({"all", "any"} & set(entry)):
                _group(entry, where, depth + 1)
            else:
                _test(entry, where)


def _test(entry: Any, path: str) -> None:
    if not isinstance(entry, dict):
        raise ConditionError(path, 'must be an object {"field", "op", "value"}')
    extra = set(entry) - {"field", "op", "value", "calendar"}
    if extra:
        raise ConditionError(f"{path}.{sorted(extra)[0]}", "unknown key")
    name = entry.get("field")
    spec = field_spec(name) if isinstance(name, str) else None
    if spec is None:
        raise ConditionError(f"{path}.field", f"unknown field {str(name)[:60]!r}; one of "
                             f"{', '.join(FIELDS)} or field.<custom field name>")
    op = entry.get("op")
    if op not in spec.ops:
        raise ConditionError(f"{path}.op", f"{name} takes one of {', '.join(spec.ops)}")
    if "calendar" in entry and (name != "business_hours" or not isinstance(entry["calendar"], str)
                                or not entry["calendar"] or len(entry["calendar"]) > 100):
        raise ConditionError(f"{path}.calendar", "only business_hours takes a calendar name")
    if op in _PRESENCE:
        if "value" in entry:
            raise ConditionError(f"{path}.value", f"{op} takes no value")
        return
    if "value" not in entry:
        raise ConditionError(f"{path}.value", "missing")
    _value(entry["value"], spec, op, f"{path}.value")


def _value(value: Any, spec: Field, op: str, path: str) -> None:
    if op in _SET or op in ("includes", "excludes", "includes_all") and isinstance(value, list):
        if not isinstance(value, list) or not value:
            raise ConditionError(path, f"{op} takes a non-empty list")
        if len(value) > MAX_ENTRIES:
            raise ConditionError(path, f"more than {MAX_ENTRIES} values")
        for i, item in enumerate(value):
            _scalar(item, spec, op, f"{path}[{i}]")
        return
    if op == "regex":
        if not isinstance(value, str) or not value or len(value) > MAX_PATTERN:
            raise ConditionError(path, f"a regular expression of 1 to {MAX_PATTERN} characters")
        try:
            regex.compile(value)
        except regex.error as exc:
            raise ConditionError(path, f"not a valid regular expression: {exc}") from None
        return
    _scalar(value, spec, op, path)


def _scalar(value: Any, spec: Field, op: str, path: str) -> None:
    kind = spec.kind
    if kind == STRS or op in _TEXT:
        kind = STR
    if kind == "any":  # a custom field: compared by the value's own type
        ok = isinstance(value, (str, int, float, bool)) and not (op in _CMP and isinstance(value, bool))
    elif kind == STR:
        ok = isinstance(value, str)
    elif kind == INT:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind == NUM:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0
    else:
        ok = isinstance(value, bool)
    if not ok:
        raise ConditionError(path, "must be a string, number or boolean" if kind == "any" else f"must be {_ARTICLE[kind]}")
    if isinstance(value, str) and (len(value) > MAX_STRING or (op in _TEXT and not value)):
        raise ConditionError(path, f"a string of 1 to {MAX_STRING} characters")


# -- evaluation -----------------------------------------------------------------------------

class Facts(Mapping[str, Any]):
    """What a condition can ask of one ticket at one moment.

    Plain values, or callables computed on first use and kept (``text`` may need a read,
    ``business_hours`` a calendar); ``business_hours`` is a callable taking a calendar name
    or None."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self._values = dict(values)
        self._done: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        if name in self._done:
            return self._done[name]
        value = self._values[name]
        if callable(value) and name != "business_hours":
            value = value()
        self._done[name] = value
        return value

    def __iter__(self):
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def business_hours(self, calendar: str | None) -> bool | None:
        check: Callable[[str | None], bool | None] | None = self._values.get("business_hours")
        return None if check is None else check(calendar)


def matches(conditions: Mapping | None, facts: Facts) -> bool:
    """Whether a validated condition set holds; a missing fact fails the test using it."""
    if not conditions:
        return True
    return _holds(conditions, facts)


def _holds(group: Mapping, facts: Facts) -> bool:
    entries_all = group.get("all") or ()
    entries_any = group.get("any") or ()
    if not all(_entry(e, facts) for e in entries_all):
        return False
    return not entries_any or any(_entry(e, facts) for e in entries_any)


def _entry(entry: Mapping, facts: Facts) -> bool:
    if "field" not in entry:
        return _holds(entry, facts)
    name, op = entry["field"], entry["op"]
    if name == "business_hours":
        actual = facts.business_hours(entry.get("calendar"))
    elif name.startswith(CUSTOM):
        fields = facts.get("fields") or {}
        actual = fields.get(name[len(CUSTOM):])
    else:
        actual = facts.get(name)
    if op == "present":
        return actual not in (None, "", [])
    if op == "absent":
        return actual in (None, "", [])
    if actual is None:
        return op in ("is_not", "not_in", "not_contains", "excludes")
    return _compare(op, actual, entry.get("value"))


def _compare(op: str, actual: Any, value: Any) -> bool:
    many = actual if isinstance(actual, list) else None
    if op == "is":
        return actual == value
    if op == "is_not":
        return actual != value
    if op == "in":
        return actual in value
    if op == "not_in":
        return actual not in value
    if op in ("includes", "excludes", "includes_all"):
        have = set(map(str, many if many is not None else [actual]))
        want = set(map(str, value if isinstance(value, list) else [value]))
        if op == "includes_all":
            return want <= have
        return bool(have & want) == (op == "includes")
    if op in _CMP:
        try:
            return {"gt": actual > value, "gte": actual >= value, "lt": actual < value, "lte": actual <= value}[op]
        except TypeError:
            return False
    text = " ".join(map(str, many)) if many is not None else str(actual)
    text = text[:TEXT_LIMIT]
    if op == "contains":
        return value.casefold() in text.casefold()
    if op == "not_contains":
        return value.casefold() not in text.casefold()
    try:  # regex
        return regex.search(value, text, timeout=REGEX_TIMEOUT_S) is not None
    except TimeoutError:
        log.info("rules.regex_timeout", pattern=value[:60])
        return False
