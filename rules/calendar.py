"""Business calendars: which instants are working time, and arithmetic over them.

A ``Calendar`` is a time zone, working intervals per weekday (several a day: a lunch break
is the gap between two), statutory holidays of a country (the ``holidays`` package), the
tenant's own extra holidays, and adjusted working days (the weekend days that Chinese
public holidays turn into working days, each with the weekday schedule it follows).

An instant is business time when its wall-clock time in the zone falls in an interval of
its wall-clock date. The arithmetic walks the UTC timeline in pieces of constant UTC
offset (a DST change starts a new piece), so a skipped or repeated wall-clock hour counts
exactly as the wall clock says; inside a piece it walks whole days, and whole weeks
without a special date are taken at once. Times are epoch milliseconds.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays

DAY_MS = 86_400_000
WEEK = 7
_EPOCH_DAY = date(1970, 1, 1).toordinal()
# How far ahead a zone's next offset change is looked for; a zone without one for this
# long is taken as fixed from there on.
_TRANSITION_YEARS = 30
_FAR = 2**62

Interval = tuple[int, int]  # ms since the wall-clock midnight: [start, end)


@dataclass(frozen=True)
class Calendar:
    """A validated business calendar (``rules.calendar_schema.calendar`` builds one)."""

    timezone: str
    week: tuple[tuple[Interval, ...], ...]  # Monday first, 7 entries
    country: str | None = None
    subdivision: str | None = None
    extra_holidays: frozenset[date] = frozenset()
    workdays: tuple[tuple[date, int], ...] = ()  # (date, weekday whose schedule it follows)
    week_ms: int = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "week_ms", sum(e - s for day in self.week for s, e in day))

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def schedule(self, day: date) -> tuple[Interval, ...]:
        """The working intervals of one wall-clock date: a workday's weekday, a holiday none."""
        as_weekday = _workdays(self).get(day)
        if as_weekday is not None:
            return self.week[as_weekday]
        if day in self.extra_holidays or day in _country_days(self.country, self.subdivision, day.year):
            return ()
        return self.week[day.weekday()]

    def is_plain_week(self, first: int) -> bool:
        """Whether the 7 days from day number ``first`` hold no holiday nor workday."""
        days = _special_days(self, _from_day(first).year)
        if _from_day(first + WEEK - 1).year != _from_day(first).year:
            days = sorted({*days, *_special_days(self, _from_day(first + WEEK - 1).year)})
        i = bisect.bisect_left(days, first)
        return i == len(days) or days[i] >= first + WEEK


@lru_cache(maxsize=256)
def _workdays(cal: Calendar) -> dict[date, int]:
    return dict(cal.workdays)


@lru_cache(maxsize=512)
def _country_days(country: str | None, subdivision: str | None, year: int) -> frozenset[date]:
    if not country:
        return frozenset()
    return frozenset(holidays.country_holidays(country, subdiv=subdivision, years=year))


@lru_cache(maxsize=1024)
def _special_days(cal: Calendar, year: int) -> list[int]:
    """Day numbers of the year's holidays and workdays, sorted."""
    found = {d for d in cal.extra_holidays if d.year == year}
    found |= {d for d, _ in cal.workdays if d.year == year}
    found |= _country_days(cal.country, cal.subdivision, year)
    return sorted(_day_number(d) for d in found)


def _day_number(d: date) -> int:
    return d.toordinal() - _EPOCH_DAY


def _from_day(n: int) -> date:
    return date.fromordinal(n + _EPOCH_DAY)


# -- UTC offsets -----------------------------------------------------------------------------

def _offset_ms(zone: ZoneInfo, at_s: int) -> int:
    return int(datetime.fromtimestamp(at_s, zone).utcoffset().total_seconds() * 1000)


@lru_cache(maxsize=4096)
def _transitions(name: str, year: int) -> tuple[tuple[int, int], ...]:
    """(instant ms, offset ms from then on) of each offset change in the UTC year.

    Found by sampling once a day and bisecting to the second: zones change at most a few
    times a year and never twice within a day.
    """
    zone = ZoneInfo(name)
    start = int(datetime(year, 1, 1, tzinfo=UTC).timestamp())
    end = int(datetime(year + 1, 1, 1, tzinfo=UTC).timestamp())
    out = []
    at, offset = start, _offset_ms(zone, start)
    while at < end:
        step = min(at + 86_400, end)
        new = _offset_ms(zone, step)
        if new != offset:
            lo, hi = at, step  # offset(lo) == old, offset(hi) == new
            while hi - lo > 1:
                mid = (lo + hi) // 2
                lo, hi = (mid, hi) if _offset_ms(zone, mid) == offset else (lo, mid)
            out.append((hi * 1000, new))
            offset = new
        at = step
    return tuple(out)


def _piece(name: str, at_ms: int) -> tuple[int, int]:
    """(UTC offset at ``at_ms``, the instant the offset next changes or a far bound)."""
    zone = ZoneInfo(name)
    offset = _offset_ms(zone, at_ms // 1000)
    year = datetime.fromtimestamp(at_ms // 1000, UTC).year
    for y in range(year, year + _TRANSITION_YEARS):
        for when, _ in _transitions(name, y):
            if when > at_ms:
                return offset, when
    return offset, _FAR


# -- the walk -------------------------------------------------------------------------------

def _walk(cal: Calendar, start_ms: int, until_ms: int | None, need_ms: int | None) -> tuple[int, int]:
    """Business ms counted from ``start_ms``: stop at ``until_ms`` or once ``need_ms`` are
    counted. Returns (business ms counted, the instant the walk stopped at)."""
    counted, at = 0, start_ms
    while True:
        offset, piece_end = _piece(cal.timezone, at)
        stop = piece_end if until_ms is None else min(piece_end, until_ms)
        got, at, done = _walk_piece(cal, at, stop, offset, None if need_ms is None else need_ms - counted)
        counted += got
        if done or (until_ms is not None and at >= until_ms):
            return counted, at


def _walk_piece(cal: Calendar, lo_ms: int, hi_ms: int, offset: int, need: int | None) -> tuple[int, int, bool]:
    """The walk inside ``[lo_ms, hi_ms)`` where the UTC offset is ``offset``: returns
    (business ms, where it stopped, whether ``need`` was met)."""
    lo, hi = lo_ms + offset, hi_ms + offset  # wall-clock ms, linear in the instant here
    counted = 0
    day = lo // DAY_MS
    while day * DAY_MS < hi:
        base = day * DAY_MS
        if (cal.week_ms and base >= lo and base + WEEK * DAY_MS <= hi and cal.is_plain_week(day)
                and (need is None or need - counted > cal.week_ms)):
            counted += cal.week_ms
            day += WEEK
            continue
        for s, e in cal.schedule(_from_day(day)):
            a, b = max(base + s, lo), min(base + e, hi)
            if a >= b:
                continue
            if need is not None and counted + (b - a) >= need:
                return need, a + (need - counted) - offset, True
            counted += b - a
        day += 1
    return counted, hi_ms, need is not None and counted >= need


# -- the three questions ---------------------------------------------------------------------

def business_ms_between(cal: Calendar, a_ms: int, b_ms: int) -> int:
    """Business time in ``[a_ms, b_ms)``, in ms (0 when ``b_ms <= a_ms``)."""
    if b_ms <= a_ms:
        return 0
    return _walk(cal, a_ms, b_ms, None)[0]


def add_business_ms(cal: Calendar, start_ms: int, ms: int) -> int:
    """The first instant by which ``ms`` of business time have passed since ``start_ms``."""
    if ms <= 0:
        return start_ms
    if not cal.week_ms:  # a schema check; without it the walk would never end
        raise ValueError("the calendar has no working time")
    return _walk(cal, start_ms, None, ms)[1]


def business_seconds_between(cal: Calendar, a_ms: int, b_ms: int) -> float:
    return business_ms_between(cal, a_ms, b_ms) / 1000


def add_business_seconds(cal: Calendar, start_ms: int, seconds: float) -> int:
    """The due instant (ms) ``seconds`` of business time after ``start_ms``."""
    return add_business_ms(cal, start_ms, round(seconds * 1000))


def is_business_time(cal: Calendar, at_ms: int) -> bool:
    """Whether ``at_ms`` falls in a working interval of its wall-clock date."""
    wall = datetime.fromtimestamp(at_ms / 1000, cal.zone)
    tod = _wall_ms(wall)
    return any(s <= tod < e for s, e in cal.schedule(wall.date()))


def _wall_ms(wall: datetime) -> int:
    return ((wall.hour * 60 + wall.minute) * 60 + wall.second) * 1000 + wall.microsecond // 1000
