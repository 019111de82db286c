"""Custom ticket fields: what a definition may say and what each type's values are.

Checked where definitions and values come in (API, CLI, the normalizer's form mapping). Values
from the API are JSON (a number is a JSON number); values from a web form or an app message are
text and are read with ``from_text`` (``"12.5"`` for a number, ``"a,b"`` for a multi-choice).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

TYPES = ("text", "number", "date", "choice", "multi_choice")
CHOICE_TYPES = ("choice", "multi_choice")
RANGE_TYPES = ("number", "date")  # filters also take field.NAME.gte / field.NAME.lte
NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")
MAX_FIELDS = 50  # per tenant
MAX_CHOICES = 100
MAX_CHOICE = 100  # characters in one choice
MAX_LABEL = 200
MAX_TEXT = 500  # ticket_field_values.value_text is VARCHAR(500), indexed
MAX_NUMBER = 1e15  # every integer up to here is exact in a double (the index column)
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")  # ISO 8601 calendar date, extended format
_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?")
_EPOCH = date(1970, 1, 1)
DEFINITION_KEYS = ("name", "type", "label", "required", "choices")


class FieldError(ValueError):
    """A definition or value that does not fit, with the API's answer; ``message`` names the field,
    ``why`` (for a value) says what it must be without naming it."""

    def __init__(self, message: str, status: int = 400, code: str = "invalid_field", why: str = "") -> None:
        super().__init__(message)
        self.message, self.status, self.code, self.why = message, status, code, why or message


@dataclass(frozen=True, slots=True)
class Field:
    """One custom field of a tenant."""

    name: str
    type: str
    label: str = ""
    required: bool = False
    choices: tuple[str, ...] = ()

    def to_json(self) -> dict:
        return {"name": self.name, "type": self.type, "label": self.label, "required": self.required,
                "choices": list(self.choices) if self.type in CHOICE_TYPES else None}


def name(value: Any) -> str:
    if not isinstance(value, str) or not NAME.fullmatch(value):
        raise FieldError("name must be a slug: a-z first, then a-z, 0-9 or _, at most 40 characters")
    return value


def _choices(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_CHOICES:
        raise FieldError(f"choices must be a list of 1 to {MAX_CHOICES} strings")
    for c in value:
        # A comma separates choices in a form's text and in filters: it cannot be part of one.
        if not isinstance(c, str) or not c.strip() or len(c) > MAX_CHOICE or "," in c or c != c.strip():
            raise FieldError(f"each choice must be a string of 1 to {MAX_CHOICE} characters without "
                             "commas or surrounding spaces")
    if len(set(value)) != len(value):
        raise FieldError("choices must not repeat")
    return tuple(value)


def definition(body: Mapping[str, Any], before: Field | None = None) -> Field:
    """A field from a request body; with ``before``, a change to it (its name and type stay)."""
    unknown = sorted(str(k) for k in set(body) - set(DEFINITION_KEYS))
    if unknown:
        raise FieldError(f"{unknown[0][:40]!r} is not a known key (known: {', '.join(DEFINITION_KEYS)})")
    if before is not None:
        for key in ("name", "type"):
            if key in body and body[key] != getattr(before, key):
                raise FieldError(f"{key} cannot change (remove the field and add a new one)")
        body = {**before.to_json(), **body}
    kind = body.get("type")
    if kind not in TYPES:
        raise FieldError(f"type must be one of {', '.join(TYPES)}")
    label = body.get("label") or ""
    if not isinstance(label, str) or len(label) > MAX_LABEL:
        raise FieldError(f"label must be a string of at most {MAX_LABEL} characters")
    required = body.get("required", False)
    if not isinstance(required, bool):
        raise FieldError("required must be true or false")
    if kind in CHOICE_TYPES:
        choices = _choices(body.get("choices"))
    elif body.get("choices") is not None:
        raise FieldError(f"choices are for {' and '.join(CHOICE_TYPES)} fields only")
    else:
        choices = ()
    return Field(name(body.get("name")), kind, label, required, choices)


def _bad(field: Field, why: str) -> FieldError:
    return FieldError(f"fields.{field.name}: {why}", why=why)


def _iso_date(field: Field, value: Any) -> str:
    if isinstance(value, str) and _DATE.fullmatch(value):
        try:
            return date.fromisoformat(value).isoformat()
        except ValueError:
            pass
    raise _bad(field, "must be a date as YYYY-MM-DD")


def value(field: Field, raw: Any) -> Any:
    """``raw`` (JSON) as the field stores it, or ``FieldError`` saying what it must be."""
    kind = field.type
    if kind == "text":
        if not isinstance(raw, str) or not raw.strip() or len(raw) > MAX_TEXT:
            raise _bad(field, f"must be a non-empty string of at most {MAX_TEXT} characters")
        return raw
    if kind == "number":
        if type(raw) not in (int, float) or not math.isfinite(raw) or abs(raw) > MAX_NUMBER:
            raise _bad(field, "must be a number")
        return raw
    if kind == "date":
        return _iso_date(field, raw)
    if kind == "choice":
        if raw not in field.choices or not isinstance(raw, str):
            raise _bad(field, f"must be one of {', '.join(field.choices)}")
        return raw
    if not isinstance(raw, list) or not raw or any(not isinstance(c, str) or c not in field.choices for c in raw):
        raise _bad(field, f"must be a non-empty list of {', '.join(field.choices)}")
    return list(dict.fromkeys(raw))


def from_text(field: Field, raw: str) -> Any:
    """A value given as text (a form field, an app message, a query parameter)."""
    raw = raw.strip()
    if field.type == "number":
        if not _NUMBER.fullmatch(raw):
            raise _bad(field, "must be a number")
        number = float(raw)
        return value(field, int(number) if number.is_integer() and abs(number) <= MAX_NUMBER else number)
    if field.type == "multi_choice":
        return value(field, [c.strip() for c in raw.split(",") if c.strip()])
    return value(field, raw)


def index_rows(field: Field, stored: Any) -> list[tuple[str, float | None]]:
    """What ``ticket_field_values`` holds for one value: (text, number) per row."""
    if field.type == "number":
        return [(repr(stored), float(stored))]
    if field.type == "date":
        return [(stored, float((date.fromisoformat(stored) - _EPOCH).days))]
    if field.type == "multi_choice":
        return [(c, None) for c in stored]
    return [(stored, None)]


def sort_key(field: Field, stored: Any) -> float:
    """A number or date value on the index's number scale (for range filters)."""
    return index_rows(field, stored)[0][1]
