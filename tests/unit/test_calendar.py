"""Business calendar arithmetic against a minute-by-minute reference, and the document checks."""

from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rules.calendar import (
    Calendar,
    add_business_seconds,
    business_seconds_between,
    is_business_time,
)
from rules.calendar_schema import InvalidField, calendar

MIN = 60_000
H = 60 * MIN
# UTC, a fixed zone, three with DST (Lord Howe moves by 30 minutes), one that skips midnight.
ZONES = ["UTC", "Asia/Shanghai", "America/New_York", "Europe/London", "Australia/Lord_Howe",
         "America/Santiago"]
# Days around 2026's DST changes of those zones, and a Chinese holiday season.
ANCHORS = [date(2026, 3, 8), date(2026, 3, 29), date(2026, 4, 5), date(2026, 9, 6), date(2026, 10, 4),
           date(2026, 10, 25), date(2026, 11, 1), date(2026, 2, 14), date(2026, 1, 1), date(2026, 6, 15)]


def reference_is_business(cal: Calendar, at_ms: int) -> bool:
    """Independent of the walk: the wall clock of one minute, the date's rules spelled out."""
    wall = datetime.fromtimestamp(at_ms / 1000, ZoneInfo(cal.timezone))
    day = wall.date()
    adjusted = dict(cal.workdays)
    if day in adjusted:
        intervals = cal.week[adjusted[day]]
    elif day in cal.extra_holidays or (cal.country and day in _statutory(cal.country, day.year)):
        intervals = ()
    else:
        intervals = cal.week[day.weekday()]
    tod = (wall.hour * 60 + wall.minute) * MIN
    return any(s <= tod < e for s, e in intervals)


@lru_cache
def _statutory(country: str, year: int):
    return holidays.country_holidays(country, years=year)


def reference_between(cal: Calendar, a: int, b: int) -> int:
    return sum(60 for t in range(a, b, MIN) if reference_is_business(cal, t))


def reference_add(cal: Calendar, start: int, seconds: int) -> int:
    if seconds == 0:
        return start
    left, t = seconds, start
    while True:
        if reference_is_business(cal, t):
            left -= 60
            if left == 0:
                return t + MIN
        t += MIN


@st.composite
def calendars(draw):
    def day():
        cuts = sorted(draw(st.lists(st.integers(0, 24 * 4), min_size=0, max_size=6, unique=True)))
        pairs = [(cuts[i] * 15 * MIN, cuts[i + 1] * 15 * MIN) for i in range(0, len(cuts) - 1, 2)]
        return tuple(pairs)
    week = tuple(day() for _ in range(7))
    if not any(week):
        week = ((9 * H, 12 * H), (13 * H + 30 * MIN, 18 * H)), *week[1:]
    anchor = draw(st.sampled_from(ANCHORS))
    near = st.integers(-10, 20).map(lambda n: anchor + timedelta(days=n))
    extra = frozenset(draw(st.lists(near, max_size=4)))
    work = tuple(sorted(dict(draw(st.lists(st.tuples(near, st.integers(0, 6)), max_size=3))).items()))
    country = draw(st.sampled_from([None, "CN"]))
    cal = Calendar(draw(st.sampled_from(ZONES)), week, country, None, extra, work)
    return cal, anchor


def _start(anchor: date, minute: int) -> int:
    return int(datetime(anchor.year, anchor.month, anchor.day, tzinfo=UTC).timestamp() * 1000) + minute * MIN


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(calendars(), st.integers(-3 * 1440, 3 * 1440), st.integers(0, 3 * 1440))
def test_between_matches_the_minute_by_minute_count(made, minute, span):
    cal, anchor = made
    a = _start(anchor, minute)
    assert business_seconds_between(cal, a, a + span * MIN) == reference_between(cal, a, a + span * MIN)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(calendars(), st.integers(-3 * 1440, 3 * 1440), st.integers(0, 30 * 60))
def test_add_matches_the_minute_by_minute_walk(made, minute, business_minutes):
    cal, anchor = made
    start = _start(anchor, minute)
    due = add_business_seconds(cal, start, business_minutes * 60)
    assert due == reference_add(cal, start, business_minutes * 60)
    assert business_seconds_between(cal, start, due) == business_minutes * 60


@settings(max_examples=150, deadline=None)
@given(calendars(), st.integers(-3 * 1440, 3 * 1440))
def test_is_business_time_matches_the_reference(made, minute):
    cal, anchor = made
    at = _start(anchor, minute)
    assert is_business_time(cal, at) is reference_is_business(cal, at)


def test_long_spans_take_whole_weeks_and_agree_with_the_sum_of_their_parts():
    # Ten thousand working hours across four years, DST and Chinese holidays included.
    _, cal, _ = calendar({"name": "cn", "timezone": "Asia/Shanghai", "country": "CN",
                          "hours": {d: [["09:00", "12:00"], ["13:30", "18:00"]] for d in ("mon", "tue", "wed",
                                                                                          "thu", "fri")},
                          "workdays": ["2026-02-14", {"date": "2026-02-28", "as": "fri"}]})
    start = _start(date(2026, 1, 5), 0)
    due = add_business_seconds(cal, start, 10_000 * 3600)
    middle = add_business_seconds(cal, start, 4_321 * 3600)
    assert add_business_seconds(cal, middle, (10_000 - 4_321) * 3600) == due
    assert business_seconds_between(cal, start, due) == 10_000 * 3600
    assert 2030 <= datetime.fromtimestamp(due / 1000, UTC).year <= 2031


def test_a_chinese_week_with_a_lunch_break_holiday_and_adjusted_workday():
    _, cal, _ = calendar({"name": "cn", "timezone": "Asia/Shanghai", "country": "CN",
                          "hours": {d: [["09:00", "12:00"], ["13:30", "18:00"]] for d in ("mon", "tue", "wed",
                                                                                          "thu", "fri")},
                          "workdays": ["2026-02-14"]})
    sh = ZoneInfo("Asia/Shanghai")

    def at(*args):
        return int(datetime(*args, tzinfo=sh).timestamp() * 1000)
    # Friday 13 Feb 17:00 + 2 h: one hour on Friday, then Saturday 14 Feb works Monday's hours.
    assert add_business_seconds(cal, at(2026, 2, 13, 17, 0), 7200) == at(2026, 2, 14, 10, 0)
    # 11:30 + 1 h crosses lunch: 30 min before, 30 min after 13:30.
    assert add_business_seconds(cal, at(2026, 2, 12, 11, 30), 3600) == at(2026, 2, 12, 14, 0)
    # Spring Festival: 16-20 Feb are holidays (the package's) and Monday 23rd a substituted day
    # off, so Tuesday 24 Feb 09:00 is the first working minute after Saturday 14th.
    assert add_business_seconds(cal, at(2026, 2, 14, 18, 0), 60) == at(2026, 2, 24, 9, 1)
    assert is_business_time(cal, at(2026, 2, 12, 12, 30)) is False
    assert is_business_time(cal, at(2026, 2, 14, 9, 0)) is True


@pytest.mark.parametrize("doc, path", [
    ({"timezone": "Mars/Olympus"}, "timezone"),
    ({"timezone": "../../etc/passwd"}, "timezone"),
    ({"hours": {"mon": [["09:00", "08:00"]]}}, "hours.mon[0]"),
    ({"hours": {"mon": [["09:00", "25:00"]]}}, "hours.mon[0][1]"),
    ({"hours": {"mon": [["09:00", "12:00"], ["11:00", "13:00"]]}}, "hours.mon"),
    ({"hours": {"funday": []}}, "hours.funday"),
    ({"hours": {}}, "hours"),
    ({"country": "XX"}, "country"),
    ({"country": "CN", "subdivision": "ZZ"}, "subdivision"),
    ({"workdays": ["2026-02-30"]}, "workdays[0]"),
    ({"workdays": [{"date": "2026-02-14", "as": "someday"}]}, "workdays[0].as"),
    ({"extra_holidays": "2026-01-01"}, "extra_holidays"),
    ({"name": ""}, "name"),
    ({"colour": "red"}, "colour"),
])
def test_a_bad_calendar_names_the_field_at_fault(doc, path):
    base = {"name": "x", "timezone": "Asia/Shanghai", "hours": {"mon": [["09:00", "18:00"]]}}
    with pytest.raises(InvalidField) as caught:
        calendar({**base, **doc})
    assert caught.value.path == path


def test_a_calendar_round_trips_through_its_stored_form():
    name, cal, stored = calendar({"name": "cn", "timezone": "Asia/Shanghai", "country": "CN",
                                  "hours": {"mon": [["13:30", "18:00"], ["09:00", "12:00"]]},
                                  "extra_holidays": ["2026-12-24"], "workdays": ["2026-02-14"]})
    assert stored["hours"]["mon"] == [["09:00", "12:00"], ["13:30", "18:00"]]
    assert stored["workdays"] == [{"date": "2026-02-14", "as": "mon"}]
    assert calendar(stored) == (name, cal, stored)
