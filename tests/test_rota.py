"""Who is on call, worked out by hand: layers on the wall clock across clock changes, windows, overrides,
merging, hand-offs of second-scale shifts, and typed local times."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from store.rota import (
    HORIZON,
    LOOKBACK,
    Layer,
    Override,
    Schedule,
    Shift,
    Window,
    handoffs,
    next_handoff,
    on_call,
    parse_local,
    shifts,
)

LONDON = ZoneInfo("Europe/London")
WEEK, DAY, SECOND = timedelta(days=7), timedelta(days=1), timedelta(seconds=1)
MON_FRI = frozenset(range(5))


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def schedule(*layers: Layer) -> Schedule:
    return Schedule("primary", LONDON, layers)


def override(id: int, user: str, starts_at: datetime, ends_at: datetime, *, created: int = 1) -> Override:
    return Override(id, user, starts_at, ends_at, created_at=utc(2027, 1, created))


# Monday 7 June 2027 09:00 (BST, 08:00 UTC): ann, then bob, a week each.
WEEKLY = Layer("weekly", ("ann", "bob"), WEEK, datetime(2027, 6, 7, 9))


def test_weekly_handoff_stays_at_nine_local_across_clocks_going_forward_and_back() -> None:
    rota = schedule(Layer("weekly", ("ann", "bob", "cat"), WEEK, datetime(2027, 3, 22, 9)))

    spring = handoffs(rota, [], after=utc(2027, 3, 23), count=2)
    autumn = handoffs(rota, [], after=utc(2027, 10, 20), count=2)

    assert [(s.user, s.starts_at) for s in spring] == [
        ("bob", utc(2027, 3, 29, 8)),
        ("cat", utc(2027, 4, 5, 8)),
    ]
    # 31 weeks after 22 March is bob's turn again (31 % 3 == 1).
    assert [(s.user, s.starts_at) for s in autumn] == [
        ("bob", utc(2027, 10, 25, 8)),
        ("cat", utc(2027, 11, 1, 9)),
    ]
    assert [s.starts_at.astimezone(LONDON).hour for s in [*spring, *autumn]] == [9, 9, 9, 9]
    assert on_call(rota, [], utc(2027, 3, 28, 12)) == Shift(
        "ann", utc(2027, 3, 22, 9), utc(2027, 3, 29, 8), layer="weekly"
    )


def test_daily_layer() -> None:
    rota = schedule(Layer("daily", ("ann", "bob"), DAY, datetime(2027, 3, 26, 9)))

    assert shifts(rota, [], start=utc(2027, 3, 27), end=utc(2027, 3, 30)) == [
        Shift("ann", utc(2027, 3, 27), utc(2027, 3, 27, 9), layer="daily"),
        Shift("bob", utc(2027, 3, 27, 9), utc(2027, 3, 28, 8), layer="daily"),
        Shift("ann", utc(2027, 3, 28, 8), utc(2027, 3, 29, 8), layer="daily"),
        Shift("bob", utc(2027, 3, 29, 8), utc(2027, 3, 30), layer="daily"),
    ]


def test_twelve_hour_layer_hands_over_at_nine_and_twenty_one_local() -> None:
    rota = schedule(Layer("half", ("day", "night"), timedelta(hours=12), datetime(2027, 3, 27, 9)))

    found = handoffs(rota, [], after=utc(2027, 3, 27, 10), count=4)

    assert [(s.user, s.starts_at) for s in found] == [
        ("night", utc(2027, 3, 27, 21)),
        ("day", utc(2027, 3, 28, 8)),
        ("night", utc(2027, 3, 28, 20)),
        ("day", utc(2027, 3, 29, 8)),
    ]
    assert [s.starts_at.astimezone(LONDON).hour for s in found] == [21, 9, 21, 9]
    assert found[0].ends_at == utc(2027, 3, 28, 8)


def test_shifts_before_the_layer_start_follow_the_participants_backwards() -> None:
    rota = schedule(Layer("weekly", ("ann", "bob", "cat"), WEEK, datetime(2027, 3, 22, 9)))

    found = shifts(rota, [], start=utc(2027, 3, 1, 9), end=utc(2027, 3, 22, 9))

    assert [(s.user, s.starts_at, s.ends_at) for s in found] == [
        ("ann", utc(2027, 3, 1, 9), utc(2027, 3, 8, 9)),  # k = -3
        ("bob", utc(2027, 3, 8, 9), utc(2027, 3, 15, 9)),  # k = -2
        ("cat", utc(2027, 3, 15, 9), utc(2027, 3, 22, 9)),  # k = -1
    ]


def test_business_hours_layer_wins_inside_its_window_and_the_weekly_one_outside() -> None:
    business = Layer(
        "business", ("xan", "yve"), DAY, datetime(2027, 6, 7, 9), only=Window(MON_FRI, time(9), time(17))
    )
    rota = schedule(WEEKLY, business)

    monday = shifts(rota, [], start=utc(2027, 6, 7), end=utc(2027, 6, 8, 12))

    assert monday == [
        Shift("bob", utc(2027, 6, 7), utc(2027, 6, 7, 8), layer="weekly"),  # the week before: k = -1
        Shift("xan", utc(2027, 6, 7, 8), utc(2027, 6, 7, 16), layer="business"),
        Shift("ann", utc(2027, 6, 7, 16), utc(2027, 6, 8, 8), layer="weekly"),
        Shift("yve", utc(2027, 6, 8, 8), utc(2027, 6, 8, 12), layer="business"),
    ]
    # The weekend is the weekly layer's, from Friday's close to Monday's opening (yve's day again).
    assert on_call(rota, [], utc(2027, 6, 12, 12)) == Shift(
        "ann", utc(2027, 6, 11, 16), utc(2027, 6, 14, 8), layer="weekly"
    )
    assert next_handoff(rota, [], after=utc(2027, 6, 12, 12)) == Shift(
        "yve", utc(2027, 6, 14, 8), utc(2027, 6, 14, 16), layer="business"
    )


def test_overnight_window_belongs_to_the_day_it_opens() -> None:
    nights = Layer(
        "nights", ("owl",), DAY, datetime(2027, 6, 7), only=Window(frozenset({4}), time(22), time(6))
    )
    rota = schedule(nights)

    assert shifts(rota, [], start=utc(2027, 6, 11), end=utc(2027, 6, 13)) == [
        Shift(None, utc(2027, 6, 11), utc(2027, 6, 11, 21)),
        Shift("owl", utc(2027, 6, 11, 21), utc(2027, 6, 12, 5), layer="nights"),  # Fri 22:00 to Sat 06:00 BST
        Shift(None, utc(2027, 6, 12, 5), utc(2027, 6, 13)),  # Saturday night is not Friday's
    ]


def test_whole_day_window() -> None:
    weekends = Layer("weekends", ("sam",), DAY, datetime(2027, 6, 7), only=Window(frozenset({5, 6})))

    assert on_call(schedule(weekends), [], utc(2027, 6, 12, 12)) == Shift(
        "sam", utc(2027, 6, 11, 23), utc(2027, 6, 13, 23), layer="weekends"
    )


def test_override_starting_inside_one_shift_and_ending_inside_the_next() -> None:
    rota = schedule(WEEKLY)
    cover = [override(1, "cat", utc(2027, 6, 9, 12), utc(2027, 6, 16, 12))]

    def at(moment: datetime) -> Shift:
        return on_call(rota, cover, moment)

    ann = Shift("ann", utc(2027, 6, 7, 8), utc(2027, 6, 9, 12), layer="weekly")
    cat = Shift("cat", utc(2027, 6, 9, 12), utc(2027, 6, 16, 12), override=1)
    bob = Shift("bob", utc(2027, 6, 16, 12), utc(2027, 6, 21, 8), layer="weekly")
    assert at(utc(2027, 6, 9, 11, 59, 59)) == ann
    assert at(utc(2027, 6, 9, 12)) == cat
    assert at(utc(2027, 6, 9, 12, 0, 1)) == cat
    assert at(utc(2027, 6, 14, 8)) == cat  # bob's hand-off happens under the override
    assert at(utc(2027, 6, 16, 11, 59, 59)) == cat
    assert at(utc(2027, 6, 16, 12)) == bob
    assert at(utc(2027, 6, 16, 12, 0, 1)) == bob


def test_later_created_override_wins_and_the_earlier_shows_again_after_it() -> None:
    rota = schedule(WEEKLY)
    cat = override(1, "cat", utc(2027, 6, 9, 12), utc(2027, 6, 12, 12), created=1)
    dan = override(2, "dan", utc(2027, 6, 10), utc(2027, 6, 11), created=2)

    assert shifts(rota, [dan, cat], start=utc(2027, 6, 9), end=utc(2027, 6, 13)) == [
        Shift("ann", utc(2027, 6, 9), utc(2027, 6, 9, 12), layer="weekly"),
        Shift("cat", utc(2027, 6, 9, 12), utc(2027, 6, 10), override=1),
        Shift("dan", utc(2027, 6, 10), utc(2027, 6, 11), override=2),
        Shift("cat", utc(2027, 6, 11), utc(2027, 6, 12, 12), override=1),
        Shift("ann", utc(2027, 6, 12, 12), utc(2027, 6, 13), layer="weekly"),
    ]
    older_dan = override(2, "dan", utc(2027, 6, 10), utc(2027, 6, 11), created=1)
    newer_cat = override(1, "cat", utc(2027, 6, 9, 12), utc(2027, 6, 12, 12), created=2)
    tied = override(3, "eve", utc(2027, 6, 10), utc(2027, 6, 11), created=1)
    assert on_call(rota, [older_dan, newer_cat], utc(2027, 6, 10, 12)).user == "cat"
    assert on_call(rota, [cat, tied], utc(2027, 6, 10, 12)).user == "eve"  # created together: the larger id


def test_override_giving_the_next_person_early_merges_into_their_shift() -> None:
    rota = schedule(WEEKLY)
    early = [override(7, "bob", utc(2027, 6, 12), utc(2027, 6, 14, 8))]

    assert shifts(rota, early, start=utc(2027, 6, 11), end=utc(2027, 6, 22)) == [
        Shift("ann", utc(2027, 6, 11), utc(2027, 6, 12), layer="weekly"),
        Shift("bob", utc(2027, 6, 12), utc(2027, 6, 21, 8), override=7),
        Shift("ann", utc(2027, 6, 21, 8), utc(2027, 6, 22), layer="weekly"),
    ]
    assert on_call(rota, early, utc(2027, 6, 15)) == Shift(
        "bob", utc(2027, 6, 12), utc(2027, 6, 21, 8), override=7
    )


def test_single_participant_daily_layer_is_one_long_shift() -> None:
    rota = schedule(Layer("solo", ("ann",), DAY, datetime(2027, 6, 7, 9)))

    assert shifts(rota, [], start=utc(2027, 6, 7), end=utc(2027, 6, 10)) == [
        Shift("ann", utc(2027, 6, 7), utc(2027, 6, 10), layer="solo")
    ]
    at = utc(2027, 6, 8)
    assert on_call(rota, [], at) == Shift("ann", at - LOOKBACK, at + HORIZON, layer="solo")
    assert handoffs(rota, [], after=at, count=3) == []
    assert next_handoff(rota, [], after=at) is None


def test_handoffs_of_one_second_shifts_are_found_without_walking_the_year() -> None:
    ticking = Layer("tick", ("a", "b", "c"), SECOND, datetime(2027, 1, 1))
    after = utc(2027, 6, 1, 0, 0, 0)

    found = handoffs(schedule(ticking), [], after=after, count=500)

    assert len(found) == 500
    assert [s.starts_at for s in found] == [after + (i + 1) * SECOND for i in range(500)]
    assert all(s.ends_at - s.starts_at == SECOND for s in found)
    assert [s.user for s in found[:3]] == ["b", "c", "a"]  # 01:00:01 BST is shift 13,050,001 of 1 January's
    # A year of one person's seconds, or of seconds under an override, has no hand-off to visit.
    assert (
        handoffs(schedule(Layer("tick", ("a",), SECOND, datetime(2027, 1, 1))), [], after=after, count=1)
        == []
    )
    held = [override(1, "ann", after, after + timedelta(days=200))]
    assert next_handoff(schedule(ticking), held, after=after) == Shift(
        "a", after + timedelta(days=200), after + timedelta(days=200, seconds=1), layer="tick"
    )


def test_handoff_skipped_by_the_clocks_happens_as_they_jump() -> None:
    rota = schedule(Layer("late", ("ann", "bob"), DAY, datetime(2027, 3, 27, 1, 30)))

    found = handoffs(rota, [], after=utc(2027, 3, 27, 12), count=2)

    assert [(s.user, s.starts_at) for s in found] == [
        ("bob", utc(2027, 3, 28, 1)),
        ("ann", utc(2027, 3, 29, 0, 30)),
    ]


def test_minute_shifts_keep_their_order_across_the_clock_changes() -> None:
    rota = schedule(Layer("minute", ("a", "b"), timedelta(minutes=1), datetime(2027, 1, 1)))

    for start in (utc(2027, 3, 28, 0, 30), utc(2027, 10, 31, 0, 30)):
        found = shifts(rota, [], start=start, end=start + timedelta(hours=2))
        assert all(s.starts_at < s.ends_at for s in found)
        assert all(
            a.ends_at == b.starts_at and a.user != b.user for a, b in zip(found, found[1:], strict=False)
        )
    # The repeated hour (01:00-02:00 GMT) has no hand-offs: its wall-clock times fell in the first one.
    assert on_call(rota, [], utc(2027, 10, 31, 1, 30)) == Shift(
        "b", utc(2027, 10, 31, 0, 59), utc(2027, 10, 31, 2), layer="minute"
    )


def test_on_call_start_is_looked_back_for() -> None:
    rota = schedule(WEEKLY)

    assert on_call(rota, [], utc(2027, 6, 10, 15, 30)) == Shift(
        "ann", utc(2027, 6, 7, 8), utc(2027, 6, 14, 8), layer="weekly"
    )


def test_nobody_on_call_when_no_layer_covers() -> None:
    at = utc(2027, 6, 8, 12)

    assert on_call(schedule(), [], at) == Shift(None, at - LOOKBACK, at + HORIZON)
    assert shifts(schedule(), [], start=at, end=at + DAY) == [Shift(None, at, at + DAY)]
    weekends = Layer("weekends", ("sam",), DAY, datetime(2027, 6, 7), only=Window(frozenset({5, 6})))
    assert on_call(schedule(weekends), [], at) == Shift(None, utc(2027, 6, 6, 23), utc(2027, 6, 11, 23))


def test_shifts_are_clipped_limited_and_returned_in_utc() -> None:
    rota = schedule(Layer("daily", ("ann", "bob"), DAY, datetime(2027, 6, 7, 9)))
    start = datetime(2027, 6, 7, 12, tzinfo=LONDON)

    found = shifts(rota, [], start=start, end=start + 10 * DAY, limit=3)

    assert [(s.user, s.starts_at, s.ends_at) for s in found] == [
        ("ann", utc(2027, 6, 7, 11), utc(2027, 6, 8, 8)),
        ("bob", utc(2027, 6, 8, 8), utc(2027, 6, 9, 8)),
        ("ann", utc(2027, 6, 9, 8), utc(2027, 6, 10, 8)),
    ]
    assert all(s.starts_at.tzinfo is UTC and s.ends_at.tzinfo is UTC for s in found)
    assert shifts(rota, [], start=start, end=start) == []


def test_parse_local() -> None:
    assert parse_local("2027-06-10 09:30", LONDON) == utc(2027, 6, 10, 8, 30)
    assert parse_local(" 2027-01-10 09:30 ", LONDON) == utc(2027, 1, 10, 9, 30)
    assert parse_local("2027-10-31 01:30", LONDON) == utc(2027, 10, 31, 0, 30)  # the first 01:30 (BST)


@pytest.mark.parametrize("typed", ["2026-13-01 09:00", "2026-02-30 09:00", "2026-1-5 9:00", "tomorrow", ""])
def test_parse_local_refuses_what_is_not_a_time(typed: str) -> None:
    with pytest.raises(ValueError) as refused:
        parse_local(typed, LONDON)

    assert str(refused.value) == f'"{typed}" is not a time: give YYYY-MM-DD HH:MM'


def test_parse_local_refuses_a_time_the_clocks_skip() -> None:
    with pytest.raises(ValueError) as refused:
        parse_local("2027-03-28 01:30", LONDON)

    assert str(refused.value) == "2027-03-28 01:30 does not exist in Europe/London (the clocks go forward)"
