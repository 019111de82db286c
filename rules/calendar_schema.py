"""A business calendar as the API and the CLI take it, checked field by field.

::

    {"name": "cn-support", "timezone": "Asia/Shanghai",
     "hours": {"mon": [["09:00", "12:00"], ["13:30", "18:00"]], ..., "sun": []},
     "country": "CN", "subdivision": null,
     "extra_holidays": ["2026-12-24"],
     "workdays": ["2026-02-14", {"date": "2026-02-28", "as": "fri"}]}

A bad document raises ``InvalidField`` naming the path at fault (``hours.mon[1][0]``).
``workdays`` are the adjusted working days (调休): a bare date works Monday's hours, or
``as`` names the weekday whose hours it works. A workday wins over any holiday that day.
"""

from __future__ import annotations

import re
from datetime import date
from functools import lru_cache
from typing import Any
from zoneinfo import available_timezones

import holidays

from rules.calendar import Calendar

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAX_INTERVALS = 6  # per day
MAX_DATES = 1000  # extra holidays, workdays
MAX_NAME = 100
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}\Z")
_TIME = re.compile(r"([01][0-9]|2[0-4]):([0-5][0-9])\Z")
_KEYS = frozenset({"name", "timezone", "hours", "country", "subdivision", "extra_holidays", "workdays"})
MINUTE_MS = 60_000


class InvalidField(ValueError):
    """A document that cannot be used; ``path`` names where."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path, self.message = path, message


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def name(value: Any, path: str = "name") -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise InvalidField(path, f"1 to {MAX_NAME} letters, digits, '.', '_' or '-', starting with a letter or digit")
    return value


def timezone(value: Any) -> str:
    if not isinstance(value, str) or value not in _zones():
        raise InvalidField("timezone", "must be an IANA time zone such as Asia/Shanghai")
    return value


def _clock(value: Any, path: str) -> int:
    m = _TIME.match(value) if isinstance(value, str) else None
    if m is None or (m[1] == "24" and m[2] != "00"):
        raise InvalidField(path, "must be a time HH:MM from 00:00 to 24:00")
    return (int(m[1]) * 60 + int(m[2])) * MINUTE_MS


def _day(value: Any, path: str) -> list[tuple[int, int]]:
    if not isinstance(value, list) or len(value) > MAX_INTERVALS:
        raise InvalidField(path, f"must be a list of at most {MAX_INTERVALS} [start, end] pairs")
    out = []
    for i, pair in enumerate(value):
        if not isinstance(pair, list) or len(pair) != 2:
            raise InvalidField(f"{path}[{i}]", 'must be a pair ["HH:MM", "HH:MM"]')
        start, end = _clock(pair[0], f"{path}[{i}][0]"), _clock(pair[1], f"{path}[{i}][1]")
        if end <= start:
            raise InvalidField(f"{path}[{i}]", "must end after it starts")
        out.append((start, end))
    out.sort()
    for i in range(1, len(out)):
        if out[i][0] < out[i - 1][1]:
            raise InvalidField(path, "intervals overlap")
    return out


def hours(value: Any) -> tuple[tuple[tuple[int, int], ...], ...]:
    if not isinstance(value, dict):
        raise InvalidField("hours", 'must be an object {"mon": [["09:00", "18:00"]], ...}')
    extra = sorted(set(value) - set(WEEKDAYS))
    if extra:
        raise InvalidField(f"hours.{extra[0]}", f"unknown day; one of {', '.join(WEEKDAYS)}")
    week = tuple(tuple(_day(value.get(d, []), f"hours.{d}")) for d in WEEKDAYS)
    if not any(week):
        raise InvalidField("hours", "must have working hours on at least one weekday")
    return week


def _date(value: Any, path: str) -> date:
    try:
        if isinstance(value, str) and len(value) == 10:
            return date.fromisoformat(value)
    except ValueError:
        pass
    raise InvalidField(path, "must be a date YYYY-MM-DD")


def _dates(value: Any, path: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_DATES:
        raise InvalidField(path, f"must be a list of at most {MAX_DATES} dates")
    return value


def workdays(value: Any) -> tuple[tuple[date, int], ...]:
    out: dict[date, int] = {}
    for i, item in enumerate(_dates(value, "workdays")):
        where = f"workdays[{i}]"
        if isinstance(item, dict):
            extra = sorted(set(item) - {"date", "as"})
            if extra:
                raise InvalidField(f"{where}.{extra[0]}", 'unknown key; a workday has "date" and "as"')
            day = _date(item.get("date"), f"{where}.date")
            as_day = item.get("as", "mon")
            if as_day not in WEEKDAYS:
                raise InvalidField(f"{where}.as", f"must be one of {', '.join(WEEKDAYS)}")
            out[day] = WEEKDAYS.index(as_day)
        else:
            out[_date(item, where)] = 0
    return tuple(sorted(out.items()))


def _country(doc: dict) -> tuple[str | None, str | None]:
    country, subdivision = doc.get("country"), doc.get("subdivision")
    if country is None:
        if subdivision is not None:
            raise InvalidField("subdivision", "needs a country")
        return None, None
    if not isinstance(country, str) or country not in holidays.list_supported_countries():
        raise InvalidField("country", "must be an ISO 3166 country code the holidays package knows, such as CN")
    if subdivision is not None:
        known = holidays.list_supported_countries()[country]
        if not isinstance(subdivision, str) or subdivision not in known:
            raise InvalidField("subdivision", f"must be one of {', '.join(known) or 'none for this country'}")
    return country, subdivision


def calendar(doc: Any) -> tuple[str, Calendar, dict]:
    """(name, the calendar, the normalised document to store) from an API/CLI body."""
    if not isinstance(doc, dict):
        raise InvalidField("body", "must be a JSON object")
    extra = sorted(set(doc) - _KEYS)
    if extra:
        raise InvalidField(extra[0], "unknown field")
    cal_name, zone, week = name(doc.get("name")), timezone(doc.get("timezone")), hours(doc.get("hours"))
    country, subdivision = _country(doc)
    extra_days = frozenset(_date(d, f"extra_holidays[{i}]")
                           for i, d in enumerate(_dates(doc.get("extra_holidays"), "extra_holidays")))
    adjusted = workdays(doc.get("workdays"))
    cal = Calendar(zone, week, country, subdivision, extra_days, adjusted)
    return cal_name, cal, to_json(cal_name, cal)


def _hhmm(ms: int) -> str:
    minutes = ms // MINUTE_MS
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def to_json(cal_name: str, cal: Calendar) -> dict:
    return {
        "name": cal_name, "timezone": cal.timezone,
        "hours": {d: [[_hhmm(s), _hhmm(e)] for s, e in cal.week[i]] for i, d in enumerate(WEEKDAYS)},
        "country": cal.country, "subdivision": cal.subdivision,
        "extra_holidays": sorted(d.isoformat() for d in cal.extra_holidays),
        "workdays": [{"date": d.isoformat(), "as": WEEKDAYS[w]} for d, w in cal.workdays],
    }


def from_json(doc: dict) -> Calendar:
    """A stored (already valid) document as a ``Calendar``."""
    return calendar(doc)[1]
