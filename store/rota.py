"""On-call schedules: who is on call at a moment, and when that changes.

A schedule is layers of rotations (app.yaml's `schedules`), each handing over at wall-clock times in the
schedule's timezone, so that a 09:00 hand-off stays at 09:00 across clock changes. Where several layers
cover a moment the later one wins; an override (kept in the database) beats every layer, and of two
overlapping overrides the later created wins. Pure functions of the schedule, its overrides and a
moment: the caller brings the overrides and the clock.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from itertools import islice
from zoneinfo import ZoneInfo

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # datetime.weekday()'s order
HORIZON = timedelta(days=366)  # how far ahead a search for the next hand-off looks


@dataclass(frozen=True)
class Window:
    """A layer's `only`: the weekdays (0 = Monday) and the hours of each when the layer is on call.
    An `end` at or before `start` runs past midnight into the next day."""

    days: frozenset[int] = frozenset(range(7))
    start: time = time(0)
    end: time = time(0)


@dataclass(frozen=True)
class Layer:
    name: str
    participants: tuple[str, ...]
    shift: timedelta
    start: datetime  # naive: a hand-off, on the wall clock of the schedule's timezone
    only: Window | None = None


@dataclass(frozen=True)
class Schedule:
    name: str
    timezone: ZoneInfo
    layers: tuple[Layer, ...]
    channel: str | None = None  # hand-off notices and cover requests
    usergroup: str | None = None  # its members follow the rota

    @property
    def participants(self) -> frozenset[str]:
        return frozenset(user for layer in self.layers for user in layer.participants)


@dataclass(frozen=True)
class Override:
    """Someone on call instead, from `starts_at` to `ends_at` (aware, UTC)."""

    id: int
    user: str
    starts_at: datetime
    ends_at: datetime
    created_at: datetime


@dataclass(frozen=True)
class Shift:
    """One person's unbroken time on call (None: nobody is), from `starts_at` to `ends_at`, and what put
    them there at its start: a layer's name, or an override's id."""

    user: str | None
    starts_at: datetime
    ends_at: datetime
    layer: str | None = None
    override: int | None = None


LOOKBACK = timedelta(days=35)  # how far back on_call looks for when the person's unbroken time began
_TICK = timedelta(microseconds=1)  # the finest step of a datetime: the moment just before a change
_TYPED = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}")


def shifts(
    schedule: Schedule, overrides: Sequence[Override], *, start: datetime, end: datetime, limit: int = 5000
) -> list[Shift]:
    """Who is on call from `start` to `end`: consecutive shifts covering it exactly (at most `limit`),
    nobody's time included as shifts of user None."""
    start, end = _utc(start), _utc(end)
    if end <= start or limit <= 0:
        return []
    return list(islice(_segments(_Rota(schedule, overrides), start, end), limit))


def on_call(schedule: Schedule, overrides: Sequence[Override], at: datetime) -> Shift:
    """The shift that holds `at`, from when that person's unbroken time began (at most LOOKBACK before)
    to when it ends (at most HORIZON after)."""
    at = _utc(at)
    rota = _Rota(schedule, overrides)
    now = next(_segments(rota, at, at + HORIZON))
    began, cover = _began(rota, at, at - LOOKBACK)
    return rota.shift(cover, began, now.ends_at)


def handoffs(
    schedule: Schedule, overrides: Sequence[Override], *, after: datetime, count: int
) -> list[Shift]:
    """The next `count` changes of who is on call, strictly after `after` and within HORIZON: each the
    shift that begins at the change (the last one found ends at HORIZON's edge if nothing follows it)."""
    after = _utc(after)
    if count <= 0:
        return []
    segments = _segments(_Rota(schedule, overrides), after, after + HORIZON)
    next(segments)  # who is on call at `after` itself: not a hand-off
    return list(islice(segments, count))


def next_handoff(schedule: Schedule, overrides: Sequence[Override], *, after: datetime) -> Shift | None:
    found = handoffs(schedule, overrides, after=after, count=1)
    return found[0] if found else None


def parse_local(text: str, tz: ZoneInfo) -> datetime:
    """`YYYY-MM-DD HH:MM` on the wall clock of `tz`, as UTC; a time that happens twice (the clocks go
    back) is the first of the two, one that never happens (they go forward) is refused."""
    typed = text.strip()
    try:
        wall = datetime.strptime(typed, "%Y-%m-%d %H:%M") if _TYPED.fullmatch(typed) else None
    except ValueError:
        wall = None
    if wall is None:
        raise ValueError(f'"{typed}" is not a time: give YYYY-MM-DD HH:MM')
    moment = wall.replace(tzinfo=tz).astimezone(UTC)
    if not _exists(wall, moment, tz):
        raise ValueError(f"{typed} does not exist in {tz.key} (the clocks go forward)")
    return moment


def _utc(moment: datetime) -> datetime:
    if moment.utcoffset() is None:
        raise ValueError(f"{moment} has no timezone: on-call times are aware")
    return moment.astimezone(UTC)


def _exists(wall: datetime, moment: datetime, tz: ZoneInfo) -> bool:
    """Whether the wall-clock time `wall` (naive) is what the clocks of `tz` show at `moment`."""
    return moment.astimezone(tz).replace(tzinfo=None) == wall


def _instant(wall: datetime, tz: ZoneInfo) -> datetime:
    """The UTC moment a wall-clock time names: the first if it happens twice, and, if the clocks skip
    it, the moment they jump past it. fold=0's own answer for a skipped time lands after the wall-clock
    times just past the gap, which would put a layer's sub-hour hand-offs out of order."""
    moment = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if _exists(wall, moment, tz):
        return moment
    # The jump lies between the skipped time read with the offset after it (earlier) and before it.
    early, late = wall.replace(tzinfo=tz, fold=1).astimezone(UTC), moment
    offset = early.astimezone(tz).utcoffset()
    while late - early > _TICK:
        middle = early + (late - early) // 2
        if middle.astimezone(tz).utcoffset() == offset:
            early = middle
        else:
            late = middle
    return late


@dataclass(frozen=True)
class _Cover:
    """What puts someone (or nobody) on call at a moment: a layer (its index) or an override (its id)."""

    user: str | None
    layer: int | None = None
    override: int | None = None


class _Rotation:
    """One layer on its schedule's clock: hand-off k falls at `start + k * shift` on the wall clock."""

    def __init__(self, layer: Layer, tz: ZoneInfo) -> None:
        self.layer = layer
        self.tz = tz

    def handoff(self, k: int) -> datetime:
        return _instant(self.layer.start + k * self.layer.shift, self.tz)

    def index(self, at: datetime) -> int:
        """The last hand-off at or before `at`. The wall clock gives a guess that is exact away from
        clock changes; galloping then bisecting corrects it near one, however short the shifts."""
        wall = at.astimezone(self.tz).replace(tzinfo=None)
        low = (wall - self.layer.start) // self.layer.shift
        step = 1
        while self.handoff(low) > at:
            low, step = low - step, step * 2
        high, step = low + 1, 1
        while self.handoff(high) <= at:
            low, high, step = high, high + step, step * 2
        while high - low > 1:
            middle = (low + high) // 2
            if self.handoff(middle) <= at:
                low = middle
            else:
                high = middle
        return low

    def user(self, at: datetime) -> str:
        participants = self.layer.participants
        return participants[self.index(at) % len(participants)]

    def covers(self, at: datetime) -> bool:
        if not self.layer.participants:
            return False
        return self.layer.only is None or any(
            opens <= at < closes for opens, closes in self._windows(at, 1, 0)
        )

    def edge_after(self, at: datetime) -> datetime | None:
        """The first opening or closing of the layer's windows after `at` (None: it has no windows)."""
        edges = (edge for window in self._windows(at, 1, 7) for edge in window if edge > at)
        return min(edges, default=None)

    def edge_before(self, at: datetime) -> datetime | None:
        edges = (edge for window in self._windows(at, 8, 0) for edge in window if edge <= at)
        return max(edges, default=None)

    def change_after(self, at: datetime) -> datetime | None:
        """The first hand-off after `at` to someone else (None: the layer has only one person)."""
        participants, k = self.layer.participants, self.index(at)
        n = len(participants)
        for step in range(1, n):
            if participants[(k + step) % n] != participants[k % n]:
                return self.handoff(k + step)
        return None

    def change_before(self, at: datetime) -> datetime | None:
        """The hand-off that began the run of shifts holding `at` (None: the layer has only one person)."""
        participants, k = self.layer.participants, self.index(at)
        n = len(participants)
        for back in range(n - 1):
            if participants[(k - back - 1) % n] != participants[k % n]:
                return self.handoff(k - back)
        return None

    def _windows(self, at: datetime, before: int, after: int) -> Iterator[tuple[datetime, datetime]]:
        """The layer's windows that open from `before` days before `at`'s date to `after` days after;
        each belongs to the day it opens on."""
        only = self.layer.only
        if only is None:
            return
        today = at.astimezone(self.tz).date()
        for offset in range(-before, after + 1):
            day = today + timedelta(days=offset)
            if day.weekday() in only.days:
                closing_day = day if only.end > only.start else day + timedelta(days=1)
                yield (
                    _instant(datetime.combine(day, only.start), self.tz),
                    _instant(datetime.combine(closing_day, only.end), self.tz),
                )


class _Rota:
    """A schedule with its overrides: who is on call at a moment, and the moments that could change it."""

    def __init__(self, schedule: Schedule, overrides: Sequence[Override]) -> None:
        self.layers = schedule.layers
        self.rotations = [_Rotation(layer, schedule.timezone) for layer in schedule.layers]
        self.overrides = [o for o in overrides if o.ends_at > o.starts_at]
        self.edges = sorted({_utc(edge) for o in self.overrides for edge in (o.starts_at, o.ends_at)})

    def who(self, at: datetime) -> _Cover:
        live = [o for o in self.overrides if o.starts_at <= at < o.ends_at]
        if live:
            won = max(live, key=lambda o: (o.created_at, o.id))
            return _Cover(won.user, override=won.id)
        for index in reversed(range(len(self.rotations))):
            if self.rotations[index].covers(at):
                return _Cover(self.rotations[index].user(at), layer=index)
        return _Cover(None)

    def after(self, at: datetime, cover: _Cover) -> datetime | None:
        """The first moment after `at` that could end `cover`: an override's start or end; while no
        override holds, also the covering layer's next hand-off to someone else and the windows of
        every layer that could take over (that one and those after it)."""
        found = self.edges[bisect_right(self.edges, at) :][:1]
        if cover.override is None:
            first = 0 if cover.layer is None else cover.layer
            found += [edge for r in self.rotations[first:] if (edge := r.edge_after(at)) is not None]
            if cover.layer is not None and (edge := self.rotations[cover.layer].change_after(at)) is not None:
                found.append(edge)
        return min(found, default=None)

    def before(self, at: datetime, cover: _Cover) -> datetime | None:
        """The last moment at or before `at` that could have begun `cover`: `after`, looking back."""
        found = self.edges[: bisect_right(self.edges, at)][-1:]
        if cover.override is None:
            first = 0 if cover.layer is None else cover.layer
            found += [edge for r in self.rotations[first:] if (edge := r.edge_before(at)) is not None]
            if (
                cover.layer is not None
                and (edge := self.rotations[cover.layer].change_before(at)) is not None
            ):
                found.append(edge)
        return max(found, default=None)

    def shift(self, cover: _Cover, starts_at: datetime, ends_at: datetime) -> Shift:
        layer = None if cover.layer is None else self.layers[cover.layer].name
        return Shift(cover.user, starts_at, ends_at, layer=layer, override=cover.override)


def _segments(rota: _Rota, start: datetime, until: datetime) -> Iterator[Shift]:
    """Who is on call from `start` to `until`, a shift at a time, as lazily as the changes come: only
    the moments that could change who holds the rota are visited, never every hand-off of a layer that
    someone else covers or that hands over to the same person."""
    began, moment = start, start
    first = cover = rota.who(start)
    while True:
        turn = rota.after(moment, cover)
        if turn is None or turn >= until:
            yield rota.shift(first, began, until)
            return
        cover = rota.who(turn)
        if cover.user != first.user:
            yield rota.shift(first, began, turn)
            began, first = turn, cover
        moment = turn


def _began(rota: _Rota, at: datetime, since: datetime) -> tuple[datetime, _Cover]:
    """When the unbroken time on call of whoever holds `at` began (`since` at the earliest), and what put
    them there then."""
    moment, cover = at, rota.who(at)
    while True:
        turn = rota.before(moment, cover)
        if turn is None or turn <= since:
            return since, cover
        earlier = rota.who(turn - _TICK)
        if earlier.user != cover.user:
            return turn, cover
        moment, cover = turn - _TICK, earlier
