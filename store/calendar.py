"""Working-time arithmetic on a business-hours calendar: pure functions, standard library only.

A calendar's hours are local wall-clock intervals per weekday. Each local day's intervals are converted
to UTC on their own, so a day with a DST change has its true length (00:30-03:30 on the spring-forward
day in Europe/Berlin is two hours of real time, on the fall-back day four).

Conventions:
- An interval's end of `time.max` means 24:00, i.e. the next day's 00:00 exactly; `time(0)` is never an end.
- A wall time that does not exist (in a spring-forward gap) is shifted forward by the gap, as zoneinfo
  does with fold=0; an ambiguous one (in a fall-back hour) is its first occurrence. If that makes an
  interval empty or overlap the one before, only the part after the previous interval counts.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

SEARCH_DAYS = 400  # longest closed stretch searched for an opening before giving up
WEEKDAYS = range(7)  # 0 = Monday

Interval = tuple[time, time]


@dataclass(frozen=True)
class Calendar:
    name: str
    timezone: ZoneInfo
    hours: Mapping[int, tuple[Interval, ...]]  # weekday (0 = Monday) -> sorted, non-overlapping intervals
    holidays: frozenset[date]  # local dates with no working time

    def __post_init__(self) -> None:
        for weekday, intervals in self.hours.items():
            if weekday not in WEEKDAYS:
                raise ValueError(f"calendar {self.name}: weekday {weekday!r} is not 0 (Monday) to 6 (Sunday)")
            previous_end: time | None = None
            for start, end in intervals:
                if start.tzinfo is not None or end.tzinfo is not None:
                    raise ValueError(
                        f"calendar {self.name}: working hours are local times without a timezone"
                    )
                if not start < end:
                    raise ValueError(
                        f"calendar {self.name}: interval {start:%H:%M}-{end:%H:%M} must start before it ends "
                        "(use time.max for 24:00)"
                    )
                if previous_end is not None and start < previous_end:
                    raise ValueError(
                        f"calendar {self.name}: interval {start:%H:%M}-{end:%H:%M} overlaps or precedes the one "
                        f"ending {previous_end:%H:%M}"
                    )
                previous_end = end

    @property
    def has_hours(self) -> bool:
        return any(self.hours.get(weekday) for weekday in WEEKDAYS)


def next_open(cal: Calendar, at: datetime) -> datetime:
    """The first working instant at or after `at`, in UTC."""
    moment = _utc(at)
    for start, end in _intervals(cal, moment):
        if end > moment:
            return max(start, moment)
    raise AssertionError("unreachable: _intervals without a bound never ends")  # pragma: no cover


def add_working(cal: Calendar, start: datetime, amount: timedelta) -> datetime:
    """The instant, in UTC, when `amount` of working time has elapsed from `start` (or from the next opening)."""
    if amount < timedelta(0):
        raise ValueError(f"cannot add a negative amount of working time ({amount})")
    moment = _utc(start)
    remaining = amount
    for opens, closes in _intervals(cal, moment):
        if closes <= moment:
            continue
        opens = max(opens, moment)
        if closes - opens >= remaining:
            return opens + remaining
        remaining -= closes - opens
    raise AssertionError("unreachable: _intervals without a bound never ends")  # pragma: no cover


def working_between(cal: Calendar, start: datetime, end: datetime) -> timedelta:
    """Working time in [start, end); zero if `end` is not after `start`."""
    since, until = _utc(start), _utc(end)
    total = timedelta(0)
    if until <= since:
        _require_hours(cal)
        return total
    for opens, closes in _intervals(cal, since, until):
        if opens >= until:
            break
        overlap = min(closes, until) - max(opens, since)
        if overlap > timedelta(0):
            total += overlap
    return total


def _intervals(
    cal: Calendar, since: datetime, until: datetime | None = None
) -> Iterator[tuple[datetime, datetime]]:
    """UTC working intervals, in order and non-overlapping, from the local day before `since`'s onwards.

    Without `until` it runs forever, but raises ValueError after SEARCH_DAYS days with no working time.
    """
    _require_hours(cal)
    day = since.astimezone(cal.timezone).date() - timedelta(days=1)
    last_end: datetime | None = None
    closed_days = 0
    while True:
        if until is not None and _local(cal, day, time(0)) >= until:
            return
        found = False
        if day not in cal.holidays:
            for start_time, end_time in cal.hours.get(day.weekday(), ()):
                start, end = _local(cal, day, start_time), _local(cal, day, end_time)
                if last_end is not None:
                    start = max(start, last_end)
                if end <= start:
                    continue
                found = True
                last_end = end
                yield start, end
        closed_days = 0 if found else closed_days + 1
        if until is None and closed_days > SEARCH_DAYS:
            raise ValueError(f"calendar {cal.name} has no working time in the {SEARCH_DAYS} days after {day}")
        day += timedelta(days=1)


def _local(cal: Calendar, day: date, wall: time) -> datetime:
    if wall == time.max:  # 24:00
        day, wall = day + timedelta(days=1), time(0)
    return datetime.combine(day, wall.replace(fold=0), tzinfo=cal.timezone).astimezone(UTC)


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{moment.isoformat()} has no timezone")
    return moment.astimezone(UTC)


def _require_hours(cal: Calendar) -> None:
    if not cal.has_hours:
        raise ValueError(f"calendar {cal.name} has no working hours")
