"""Incident figures for a window, computed by SQL aggregates in the database.

Every time figure leaves out cancelled incidents. The window holds the incidents *declared* in it.
Percentiles are interpolated like PostgreSQL's percentile_cont, from the two values around the rank,
read by their row numbers in the sorted values so SQLite and PostgreSQL compute them the same way.

`report` sends a fixed set of statements: one grouped count for the volume, one scan of the window's
non-cancelled incidents grouped by priority (SLA compliance, rates, and each time figure's count and sum),
one ranked read per time figure for its median and p90, and one read of the open backlog. Each piece reads
its columns by label.

`by_day` (the web view's trend, and `weekly`'s weeks) is one scan of the window grouped by UTC day, giving
the counts and sums that add up: a week's mean is its days' sums over their counts, not a mean of means.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import RowMapping, and_, case, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from store import dialect
from store.models import OPEN_STATES, Incident, State
from store.policy import PRIORITIES, Policy

OPEN_LISTED = 1000  # the backlog lists at most this many open incidents, oldest first
REPEATED = 3  # a category with at least this many non-cancelled incidents in the window is a repeat

Rows = Sequence[RowMapping]


def _durations(session: AsyncSession) -> dict[str, ColumnElement[float]]:
    """Each time figure's value per incident, NULL where it does not apply; named as in the report."""
    resolve = case(
        (
            Incident.resolved_at.is_not(None),
            dialect.seconds_between(session, Incident.resolved_at, Incident.declared_at)
            - Incident.resolution_paused_seconds,
        )
    )
    detect = case(
        (
            Incident.detected_at.is_not(None),
            dialect.seconds_between(session, Incident.declared_at, Incident.detected_at),
        )
    )
    return {
        "mtta_seconds": dialect.seconds_between(session, Incident.acknowledged_at, Incident.declared_at),
        "mttr_seconds": resolve,
        "mttd_seconds": detect,
    }


async def report(session: AsyncSession, *, policy: Policy, now: datetime, days: int) -> dict[str, Any]:
    start = now - timedelta(days=days)
    in_window = [Incident.declared_at >= start, Incident.declared_at <= now]
    counted = [*in_window, Incident.state != State.CANCELLED]
    volume = await _volume(session, in_window)
    durations = _durations(session)
    per_priority = await _per_priority(session, durations, counted, policy=policy)
    return {
        "window_days": days,
        "generated_at": now.isoformat(),
        "incidents": _incidents(volume),
        **await _times(session, durations, counted, per_priority),
        "sla": _sla(per_priority),
        "times_by_priority": _times_by_priority(per_priority),
        **_rates(per_priority),
        "open": await _backlog(session, policy=policy, now=now),
        "repeats": _repeats(volume),
    }


async def _volume(session: AsyncSession, in_window: list[Any]) -> Rows:
    """One grouped count over the window: (priority, category, state) -> incidents, at most
    4 x categories x 7 rows, from which the volume figures and the repeats are summed."""
    result = await session.execute(
        select(Incident.priority, Incident.category, Incident.state, func.count().label("incidents"))
        .where(*in_window)
        .group_by(Incident.priority, Incident.category, Incident.state)
    )
    return result.mappings().all()


def _state_name(state: Any) -> str:
    return getattr(state, "value", state)


def _incidents(volume: Rows) -> dict[str, Any]:
    by_priority = {p: 0 for p in PRIORITIES}
    by_category: dict[str, int] = {}
    by_state: dict[str, int] = {}
    for row in volume:
        n, state = row["incidents"], _state_name(row["state"])
        by_priority[row["priority"]] = by_priority.get(row["priority"], 0) + n
        by_category[row["category"]] = by_category.get(row["category"], 0) + n
        by_state[state] = by_state.get(state, 0) + n
    return {
        "total": sum(by_state.values()),
        "cancelled": by_state.get(State.CANCELLED.value, 0),
        "by_priority": by_priority,
        "by_category": by_category,
        "by_state": by_state,
    }


def _repeats(volume: Rows) -> list[dict[str, Any]]:
    """Categories with at least REPEATED non-cancelled incidents, most first, then by name."""
    kept: dict[str, int] = {}
    for row in volume:
        if _state_name(row["state"]) != State.CANCELLED.value:
            kept[row["category"]] = kept.get(row["category"], 0) + row["incidents"]
    repeats = sorted(((c, n) for c, n in kept.items() if n >= REPEATED), key=lambda item: (-item[1], item[0]))
    return [{"category": category, "count": n} for category, n in repeats]


def _target(policy: Policy, kind: str) -> ColumnElement[float]:
    """The incident's priority's `kind` ("response" or "resolution") target, in seconds."""
    seconds = [
        (Incident.priority == p, literal(getattr(policy.priorities[p], kind).total_seconds()))
        for p in PRIORITIES
    ]
    return case(*seconds, else_=literal(0.0))


def _tally(condition: Any) -> ColumnElement[int]:
    return func.sum(case((condition, literal(1)), else_=literal(0)))


def _clocks(durations: dict[str, ColumnElement[float]], *, policy: Policy) -> dict[str, ColumnElement[bool]]:
    """Per SLA clock, whether it ran out (`_done`: stopped or breached) and whether it was met."""
    response_met = and_(
        Incident.acknowledged_at.is_not(None),
        Incident.response_breached_at.is_(None),
        durations["mtta_seconds"] <= _target(policy, "response"),
    )
    resolution_met = and_(
        Incident.resolved_at.is_not(None),
        Incident.resolution_breached_at.is_(None),
        durations["mttr_seconds"] <= _target(policy, "resolution"),
    )
    return {
        "response_done": Incident.acknowledged_at.is_not(None) | Incident.response_breached_at.is_not(None),
        "response_met": response_met,
        "resolution_done": Incident.resolved_at.is_not(None) | Incident.resolution_breached_at.is_not(None),
        "resolution_met": resolution_met,
    }


async def _per_priority(
    session: AsyncSession, durations: dict[str, ColumnElement[float]], counted: list[Any], *, policy: Policy
) -> Rows:
    """Everything else about the window's non-cancelled incidents: one scan, grouped by priority."""
    columns: list[ColumnElement[Any]] = [
        func.count().label("incidents"),
        _tally(Incident.reopen_count > 0).label("reopened"),
        _tally(Incident.escalation_level > 1).label("escalated"),
        *(_tally(condition).label(name) for name, condition in _clocks(durations, policy=policy).items()),
    ]
    for name, value in durations.items():
        columns += [func.count(value).label(f"{name}_count"), func.sum(value).label(f"{name}_sum")]
    result = await session.execute(
        select(Incident.priority, *columns).where(*counted).group_by(Incident.priority)
    )
    return result.mappings().all()


def _share(part: Any, whole: Any) -> float | None:
    """part / whole to four places, None when there is no whole to share."""
    whole = int(whole or 0)
    return round(int(part or 0) / whole, 4) if whole else None


def _sla(per_priority: Rows) -> dict[str, dict[str, float | None]]:
    """Per priority, the share of clocks that ran out and were met: None where none ran out."""
    sla: dict[str, dict[str, float | None]] = {
        p: {"response_met": None, "resolution_met": None} for p in PRIORITIES
    }
    for row in per_priority:
        sla[row["priority"]] = {
            "response_met": _share(row["response_met"], row["response_done"]),
            "resolution_met": _share(row["resolution_met"], row["resolution_done"]),
        }
    return sla


def _times_by_priority(per_priority: Rows) -> dict[str, dict[str, float | None]]:
    """Per priority, the mean of each time figure (None where no incident stopped that clock)."""
    means: dict[str, dict[str, float | None]] = {
        p: {"mtta_seconds": None, "mttr_seconds": None} for p in PRIORITIES
    }
    for row in per_priority:
        means[row["priority"]] = {
            name: _round(float(row[f"{name}_sum"]) / row[f"{name}_count"]) if row[f"{name}_count"] else None
            for name in ("mtta_seconds", "mttr_seconds")
        }
    return means


def _rates(per_priority: Rows) -> dict[str, float | None]:
    kept = sum(row["incidents"] for row in per_priority)
    return {
        "reopen_rate": _share(sum(int(row["reopened"] or 0) for row in per_priority), kept),
        "escalation_rate": _share(sum(int(row["escalated"] or 0) for row in per_priority), kept),
    }


async def _times(
    session: AsyncSession, durations: dict[str, ColumnElement[float]], counted: list[Any], per_priority: Rows
) -> dict[str, dict[str, float | None]]:
    """Each time figure's mean (from the per-priority counts and sums), median and p90."""
    figures: dict[str, dict[str, float | None]] = {}
    for name, value in durations.items():
        count = sum(int(row[f"{name}_count"] or 0) for row in per_priority)
        total = sum(float(row[f"{name}_sum"] or 0) for row in per_priority)
        figures[name] = {
            "mean": _round(total / count) if count else None,
            **await _percentiles(session, value, counted, count),
        }
    return figures


async def _percentiles(
    session: AsyncSession, value: ColumnElement[float], conditions: list[Any], count: int
) -> dict[str, float | None]:
    """Median and p90 of `value` over `count` non-NULL rows: one sort, reading only the ranks needed."""
    if not count:
        return {"median": None, "p90": None}
    ranks = {"median": 0.5 * (count - 1), "p90": 0.9 * (count - 1)}
    wanted = sorted(
        {r for rank in ranks.values() for r in (math.floor(rank) + 1, min(math.floor(rank) + 2, count))}
    )
    ordered = (
        select(value.label("value"), func.row_number().over(order_by=value).label("position"))
        .where(*conditions, value.is_not(None))
        .subquery()
    )
    result = await session.execute(
        select(ordered.c.value, ordered.c.position).where(ordered.c.position.in_(wanted))
    )
    picked = {int(row["position"]): float(row["value"]) for row in result.mappings()}
    return {name: _round(_interpolate(picked, count, rank)) for name, rank in ranks.items()}


def _interpolate(picked: dict[int, float], count: int, rank: float) -> float:
    """The value at a fractional 0-based rank, from the 1-based row numbers around it."""
    low = math.floor(rank)
    lower, upper = picked[low + 1], picked[min(low + 2, count)]
    return lower + (upper - lower) * (rank - low)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


async def _backlog(session: AsyncSession, *, policy: Policy, now: datetime) -> list[dict[str, Any]]:
    """The open incidents, oldest first, at most OPEN_LISTED of them. Only the columns shown are read:
    loading a thousand whole incidents held the event loop for tens of milliseconds."""
    open_rows = await session.execute(
        select(
            Incident.number,
            Incident.priority,
            Incident.state,
            Incident.declared_at,
            (Incident.response_breached_at.is_not(None) | Incident.resolution_breached_at.is_not(None)),
            (Incident.response_warned_at.is_not(None) | Incident.resolution_warned_at.is_not(None)),
        )
        .where(Incident.state.in_(list(OPEN_STATES)))
        .order_by(Incident.declared_at)
        .limit(OPEN_LISTED)
    )
    return [
        {
            "id": policy.public_id(number),
            "priority": priority,
            "state": state.value,
            "age_seconds": round((now - declared_at).total_seconds(), 1),
            "sla": "breached" if breached else "warning" if warned else "ok",
        }
        for number, priority, state, declared_at, breached, warned in open_rows
    ]


async def daily(session: AsyncSession, *, now: datetime, days: int) -> list[dict[str, Any]]:
    """Per UTC day of the window: incidents declared by priority, and the mean resolution time of those
    declared that day and since resolved (cancelled ones left out)."""
    start = (now - timedelta(days=days - 1)).replace(hour=0, minute=0, second=0, microsecond=0)
    day = dialect.utc_day(session, Incident.declared_at)
    resolve = (
        dialect.seconds_between(session, Incident.resolved_at, Incident.declared_at)
        - Incident.resolution_paused_seconds
    )
    rows = await session.execute(
        select(
            day.label("day"),
            Incident.priority,
            func.count().label("incidents"),
            func.avg(case((Incident.resolved_at.is_not(None), resolve))).label("mttr_seconds"),
            func.count(Incident.resolved_at).label("resolved"),
        )
        .where(Incident.declared_at >= start, Incident.declared_at <= now, Incident.state != State.CANCELLED)
        .group_by(day, Incident.priority)
    )
    table: dict[str, dict[str, Any]] = {
        (start + timedelta(days=n)).date().isoformat(): {
            "day": (start + timedelta(days=n)).date().isoformat(),
            **{p: 0 for p in PRIORITIES},
            "mttr_seconds": None,
            "_sum": 0.0,
            "_n": 0,
        }
        for n in range(days)
    }
    for row in rows.mappings():
        entry = table.get(str(row["day"]))
        if entry is None:
            continue
        entry[row["priority"]] = int(row["incidents"])
        if row["mttr_seconds"] is not None:
            entry["_sum"] += float(row["mttr_seconds"]) * int(row["resolved"])
            entry["_n"] += int(row["resolved"])
    for entry in table.values():
        total, n = entry.pop("_sum"), entry.pop("_n")
        entry["mttr_seconds"] = round(total / n, 1) if n else None
    return list(table.values())


@dataclass(frozen=True)
class Tally:
    """What some days' incidents add up to: the counts and sums behind their means and shares, so that
    days add up to weeks. The times and the SLA clocks leave out cancelled incidents, as `report` does."""

    incidents: int = 0  # declared, cancelled ones included
    cancelled: int = 0
    mtta_count: int = 0
    mtta_sum: float = 0.0
    mttr_count: int = 0
    mttr_sum: float = 0.0
    sla_measured: int = 0  # clocks that ran out: response and resolution, each counted
    sla_met: int = 0

    def __add__(self, other: Tally) -> Tally:
        return Tally(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(Tally)))

    @property
    def mtta_seconds(self) -> float | None:
        return _round(self.mtta_sum / self.mtta_count) if self.mtta_count else None

    @property
    def mttr_seconds(self) -> float | None:
        return _round(self.mttr_sum / self.mttr_count) if self.mttr_count else None

    @property
    def sla_compliance(self) -> float | None:
        """The share of the SLA clocks that ran out and were met; None when none ran out."""
        return _share(self.sla_met, self.sla_measured)


async def by_day(
    session: AsyncSession, *, policy: Policy, start: datetime, end: datetime
) -> dict[date, Tally]:
    """Per UTC day, the incidents declared from `start` to `end`: one scan, grouped by day; days without
    incidents are left out."""
    day = dialect.utc_day(session, Incident.declared_at)
    durations = _durations(session)
    kept = Incident.state != State.CANCELLED
    clocks = _clocks(durations, policy=policy)
    acknowledge, resolve = (case((kept, durations[name])) for name in ("mtta_seconds", "mttr_seconds"))
    result = await session.execute(
        select(
            day.label("day"),
            func.count().label("incidents"),
            _tally(~kept).label("cancelled"),
            func.count(acknowledge).label("mtta_count"),
            func.sum(acknowledge).label("mtta_sum"),
            func.count(resolve).label("mttr_count"),
            func.sum(resolve).label("mttr_sum"),
            (_tally(kept & clocks["response_done"]) + _tally(kept & clocks["resolution_done"])).label(
                "sla_measured"
            ),
            (_tally(kept & clocks["response_met"]) + _tally(kept & clocks["resolution_met"])).label(
                "sla_met"
            ),
        )
        .where(Incident.declared_at >= start, Incident.declared_at <= end)
        .group_by(day)
    )
    return {
        date.fromisoformat(str(row["day"])): Tally(
            incidents=int(row["incidents"]),
            cancelled=int(row["cancelled"] or 0),
            mtta_count=int(row["mtta_count"] or 0),
            mtta_sum=float(row["mtta_sum"] or 0),
            mttr_count=int(row["mttr_count"] or 0),
            mttr_sum=float(row["mttr_sum"] or 0),
            sla_measured=int(row["sla_measured"] or 0),
            sla_met=int(row["sla_met"] or 0),
        )
        for row in result.mappings()
    }


async def weekly(session: AsyncSession, *, policy: Policy, now: datetime, days: int) -> list[dict[str, Any]]:
    """Per ISO week (Monday to Sunday, in UTC) of `report`'s window, oldest first, each week present:
    incidents declared, cancelled, MTTA, MTTR and SLA compliance. The database adds up each day; the days,
    at most `days` of them, are then added into their weeks."""
    start = now - timedelta(days=days)
    weeks: dict[date, Tally] = {}
    monday = _monday(start.astimezone(UTC).date())
    while monday <= now.astimezone(UTC).date():
        weeks[monday], monday = Tally(), monday + timedelta(days=7)
    for day, tally in (await by_day(session, policy=policy, start=start, end=now)).items():
        weeks[_monday(day)] = weeks.get(_monday(day), Tally()) + tally
    return [
        {
            "week": "{}-W{:02d}".format(*monday.isocalendar()[:2]),
            "starts": monday.isoformat(),
            "incidents": tally.incidents,
            "cancelled": tally.cancelled,
            "mtta_seconds": tally.mtta_seconds,
            "mttr_seconds": tally.mttr_seconds,
            "sla_compliance": tally.sla_compliance,
        }
        for monday, tally in sorted(weeks.items())
    ]


def _monday(day: date) -> date:
    return day - timedelta(days=day.weekday())
