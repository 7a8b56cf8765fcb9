from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from store.calendar import Calendar, add_working, next_open, working_between

BERLIN = ZoneInfo("Europe/Berlin")
DAY = ((time(9), time(12, 30)), (time(13, 30), time(17, 30)))  # 7.5 working hours
BUSINESS = Calendar(
    name="business",
    timezone=BERLIN,
    hours={weekday: DAY for weekday in range(5)},
    holidays=frozenset({date(2026, 12, 24), date(2026, 12, 25), date(2026, 12, 26)}),
)
NIGHT_SUNDAY = Calendar(  # only works across the 02:00 DST changes of a Sunday
    name="night", timezone=BERLIN, hours={6: ((time(0, 30), time(3, 30)),)}, holidays=frozenset()
)


def berlin(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=BERLIN)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def test_within_a_day() -> None:
    assert add_working(BUSINESS, berlin(2026, 12, 1, 9, 15), timedelta(hours=2)) == utc(2026, 12, 1, 10, 15)
    assert working_between(BUSINESS, berlin(2026, 12, 1, 9, 15), berlin(2026, 12, 1, 11, 15)) == timedelta(
        hours=2
    )


def test_across_the_lunch_gap() -> None:
    due = add_working(BUSINESS, berlin(2026, 12, 1, 11, 30), timedelta(hours=2))
    assert due == berlin(2026, 12, 1, 14, 30) == utc(2026, 12, 1, 13, 30)
    assert add_working(BUSINESS, berlin(2026, 12, 1, 11, 30), timedelta(hours=1)) == berlin(
        2026, 12, 1, 12, 30
    )
    assert working_between(BUSINESS, berlin(2026, 12, 1, 12), berlin(2026, 12, 1, 14)) == timedelta(hours=1)


def test_across_a_weekend() -> None:
    # Friday 2026-12-04 16:30 + 2h: one hour on Friday, one on Monday.
    assert add_working(BUSINESS, berlin(2026, 12, 4, 16, 30), timedelta(hours=2)) == utc(2026, 12, 7, 9)
    assert working_between(BUSINESS, berlin(2026, 12, 4, 9), berlin(2026, 12, 7, 9)) == timedelta(
        hours=7, minutes=30
    )


def test_across_a_holiday() -> None:
    # Wednesday 2026-12-23 17:00 + 1h: Thu 24 and Fri 25 are holidays, Sat 26 and Sun 27 the weekend.
    assert add_working(BUSINESS, berlin(2026, 12, 23, 17), timedelta(hours=1)) == berlin(2026, 12, 28, 9, 30)
    assert next_open(BUSINESS, berlin(2026, 12, 24, 10)) == utc(2026, 12, 28, 8)
    assert working_between(BUSINESS, berlin(2026, 12, 23), berlin(2026, 12, 29)) == timedelta(hours=15)


def test_declared_outside_working_hours_starts_at_the_next_opening() -> None:
    saturday = berlin(2026, 12, 5, 10)
    assert next_open(BUSINESS, saturday) == utc(2026, 12, 7, 8)  # Monday 09:00 CET
    assert add_working(BUSINESS, saturday, timedelta(hours=2)) == berlin(2026, 12, 7, 11)
    assert add_working(BUSINESS, saturday, timedelta(0)) == berlin(2026, 12, 7, 9)
    assert next_open(BUSINESS, berlin(2026, 12, 7, 12, 45)) == berlin(2026, 12, 7, 13, 30)
    assert next_open(BUSINESS, berlin(2026, 12, 7, 9, 5)) == berlin(2026, 12, 7, 9, 5)
    assert next_open(BUSINESS, berlin(2026, 12, 7, 12, 30)) == berlin(2026, 12, 7, 13, 30)  # ends are open


def test_results_are_utc() -> None:
    assert next_open(BUSINESS, berlin(2026, 12, 5, 10)).tzinfo is UTC
    assert add_working(BUSINESS, berlin(2026, 12, 7, 10), timedelta(hours=1)).tzinfo is UTC


def test_spring_forward_day_has_its_real_length() -> None:
    # 2027-03-28 (Sunday): 02:00 CET becomes 03:00 CEST, so 00:30-03:30 is two real hours.
    start = berlin(2027, 3, 28, 0, 30)
    assert start == utc(2027, 3, 27, 23, 30)
    assert working_between(NIGHT_SUNDAY, berlin(2027, 3, 28), berlin(2027, 3, 29)) == timedelta(hours=2)
    assert add_working(NIGHT_SUNDAY, start, timedelta(hours=2)) == utc(2027, 3, 28, 1, 30)  # 03:30 CEST
    assert add_working(NIGHT_SUNDAY, start, timedelta(hours=3)) == utc(
        2027, 4, 3, 23, 30
    )  # next Sunday 00:30 CEST


def test_fall_back_day_has_its_real_length() -> None:
    # 2027-10-31 (Sunday): 03:00 CEST becomes 02:00 CET, so 00:30-03:30 is four real hours.
    start = berlin(2027, 10, 31, 0, 30)
    assert start == utc(2027, 10, 30, 22, 30)
    assert working_between(NIGHT_SUNDAY, berlin(2027, 10, 31), berlin(2027, 11, 1)) == timedelta(hours=4)
    assert add_working(NIGHT_SUNDAY, start, timedelta(hours=3)) == utc(2027, 10, 31, 1, 30)  # 02:30 CET
    assert add_working(NIGHT_SUNDAY, start, timedelta(hours=4)) == utc(2027, 10, 31, 2, 30)  # 03:30 CET


def test_business_hours_follow_local_time_across_dst() -> None:
    # Friday 2027-03-26 16:30 CET + 2h ends on Monday 10:00 CEST, which is 08:00 UTC.
    assert add_working(BUSINESS, berlin(2027, 3, 26, 16, 30), timedelta(hours=2)) == utc(2027, 3, 29, 8)


def test_a_day_working_to_midnight() -> None:
    always = Calendar(
        name="24/7",
        timezone=BERLIN,
        hours={d: ((time(0), time.max),) for d in range(7)},
        holidays=frozenset(),
    )
    assert working_between(always, berlin(2027, 3, 27), berlin(2027, 3, 30)) == timedelta(hours=71)
    assert add_working(always, berlin(2027, 3, 27, 23), timedelta(hours=2)) == berlin(2027, 3, 28, 1)
    assert add_working(always, utc(2027, 3, 27, 12), timedelta(weeks=3)) == utc(2027, 4, 17, 12)


@pytest.mark.parametrize(
    "amount",
    [
        timedelta(0),
        timedelta(minutes=1),
        timedelta(hours=3, minutes=30),
        timedelta(hours=7, minutes=30),
        timedelta(hours=24),
        timedelta(weeks=3, seconds=7),
    ],
)
@pytest.mark.parametrize(
    "start",
    [berlin(2026, 12, 1, 11), berlin(2026, 12, 5, 10), berlin(2026, 12, 23, 12, 45), berlin(2027, 3, 26, 17)],
)
def test_working_between_inverts_add_working(start: datetime, amount: timedelta) -> None:
    due = add_working(BUSINESS, start, amount)
    assert working_between(BUSINESS, start, due) == amount
    if amount:
        assert working_between(BUSINESS, start, due - timedelta(microseconds=1)) < amount


def test_working_between_is_zero_when_end_is_not_after_start() -> None:
    assert working_between(BUSINESS, berlin(2026, 12, 1, 11), berlin(2026, 12, 1, 10)) == timedelta(0)
    assert working_between(BUSINESS, berlin(2026, 12, 1, 11), berlin(2026, 12, 1, 11)) == timedelta(0)


def test_a_calendar_with_no_hours_raises() -> None:
    empty = Calendar(name="empty", timezone=BERLIN, hours={}, holidays=frozenset())
    closed = Calendar(name="closed", timezone=BERLIN, hours={0: ()}, holidays=frozenset())
    for cal in (empty, closed):
        with pytest.raises(ValueError, match="no working hours"):
            next_open(cal, berlin(2026, 12, 1))
        with pytest.raises(ValueError, match="no working hours"):
            add_working(cal, berlin(2026, 12, 1), timedelta(hours=1))
        with pytest.raises(ValueError, match="no working hours"):
            working_between(cal, berlin(2026, 12, 1), berlin(2026, 12, 2))


def test_a_search_longer_than_the_cap_raises() -> None:
    mondays = Calendar(
        name="mondays",
        timezone=BERLIN,
        hours={0: ((time(9), time(10)),)},
        holidays=frozenset(date(2027, 1, 1) + timedelta(days=n) for n in range(500)),
    )
    with pytest.raises(ValueError, match="no working time in the 400 days"):
        next_open(mondays, berlin(2027, 1, 1))
    # A bounded sum is not a search: it crosses the closed stretch and counts Mondays 15, 22 and 29 May 2028.
    assert working_between(mondays, berlin(2027, 1, 1), berlin(2028, 6, 1)) == timedelta(hours=3)


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="overlaps"):
        Calendar(
            name="x",
            timezone=BERLIN,
            hours={0: ((time(9), time(12)), (time(11), time(13)))},
            holidays=frozenset(),
        )
    with pytest.raises(ValueError, match="must start before it ends"):
        Calendar(name="x", timezone=BERLIN, hours={0: ((time(22), time(0)),)}, holidays=frozenset())
    with pytest.raises(ValueError, match="weekday 7"):
        Calendar(name="x", timezone=BERLIN, hours={7: DAY}, holidays=frozenset())
    with pytest.raises(ValueError, match="no timezone"):
        next_open(BUSINESS, datetime(2026, 12, 1, 9))
    with pytest.raises(ValueError, match="negative"):
        add_working(BUSINESS, berlin(2026, 12, 1, 9), timedelta(hours=-1))
