"""Incident figures for a window, computed by SQL aggregates in the database.

Every time figure leaves out cancelled incidents. The window holds the incidents *declared* in it.
Percentiles are interpolated like PostgreSQL's percentile_cont, from the two values around the rank,
read with ORDER BY ... OFFSET so SQLite and PostgreSQL compute them the same way.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from store.models import OPEN_STATES, Incident, State
from store.policy import PRIORITIES, Policy

OPEN_LISTED = 1000  # the backlog lists at most this many open incidents, oldest first


def _seconds(session: AsyncSession, later: Any, earlier: Any) -> ColumnElement[float]:
    if session.bind.dialect.name == "sqlite":
        return (func.julianday(later) - func.julianday(earlier)) * 86400.0
    return func.extract("epoch", later - earlier)


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
        select(value.label("v"), func.row_number().over(order_by=value).label("rn"))
        .where(*conditions, value.is_not(None))
        .subquery()
    )
    rows = await session.execute(select(ordered.c.v, ordered.c.rn).where(ordered.c.rn.in_(wanted)))
    picked = {int(rn): float(v) for v, rn in rows}
    return {name: _round(_interpolate(picked, count, rank)) for name, rank in ranks.items()}


def _interpolate(picked: dict[int, float], count: int, rank: float) -> float:
    """The value at a fractional 0-based rank, from the 1-based row numbers around it."""
    low = math.floor(rank)
    lower, upper = picked[low + 1], picked[min(low + 2, count)]
    return lower + (upper - lower) * (rank - low)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def sla_state(incident: Incident) -> str:
    if incident.response_breached_at or incident.resolution_breached_at:
        return "breached"
    if incident.response_warned_at or incident.resolution_warned_at:
        return "warning"
    return "ok"


async def report(session: AsyncSession, *, policy: Policy, now: datetime, days: int) -> dict[str, Any]:
    start = now - timedelta(days=days)
    in_window = [Incident.declared_at >= start, Incident.declared_at <= now]
    counted = [*in_window, Incident.state != State.CANCELLED]

    # Volume: one grouped count over the window; the rest is arithmetic on at most 4 x categories x 7 rows.
    volume = list(
        await session.execute(
            select(Incident.priority, Incident.category, Incident.state, func.count())
            .where(*in_window)
            .group_by(Incident.priority, Incident.category, Incident.state)
        )
    )
    by_priority = {p: 0 for p in PRIORITIES}
    by_category: dict[str, int] = {}
    by_state: dict[str, int] = {}
    kept_by_category: dict[str, int] = {}
    for priority, category, state, n in volume:
        state_name = getattr(state, "value", state)
        by_priority[priority] = by_priority.get(priority, 0) + n
        by_category[category] = by_category.get(category, 0) + n
        by_state[state_name] = by_state.get(state_name, 0) + n
        if state_name != State.CANCELLED.value:
            kept_by_category[category] = kept_by_category.get(category, 0) + n

    acknowledge = _seconds(session, Incident.acknowledged_at, Incident.declared_at)
    resolve = case(
        (
            Incident.resolved_at.is_not(None),
            _seconds(session, Incident.resolved_at, Incident.declared_at)
            - Incident.resolution_paused_seconds,
        )
    )
    detect = case(
        (Incident.detected_at.is_not(None), _seconds(session, Incident.declared_at, Incident.detected_at))
    )
    times = {"mtta_seconds": acknowledge, "mttr_seconds": resolve, "mttd_seconds": detect}

    def target(kind: str) -> ColumnElement[float]:
        seconds = [
            (Incident.priority == p, literal(getattr(policy.priorities[p], kind).total_seconds()))
            for p in PRIORITIES
        ]
        return case(*seconds, else_=literal(0.0))

    def tally(condition: Any) -> ColumnElement[int]:
        return func.sum(case((condition, literal(1)), else_=literal(0)))

    # Everything else about non-cancelled incidents: one scan, grouped by priority.
    aggregates = [
        func.count(),
        tally(Incident.reopen_count > 0),
        tally(Incident.escalation_level > 1),
        tally(Incident.acknowledged_at.is_not(None) | Incident.response_breached_at.is_not(None)),
        tally(
            and_(
                Incident.acknowledged_at.is_not(None),
                Incident.response_breached_at.is_(None),
                acknowledge <= target("response"),
            )
        ),
        tally(Incident.resolved_at.is_not(None) | Incident.resolution_breached_at.is_not(None)),
        tally(
            and_(
                Incident.resolved_at.is_not(None),
                Incident.resolution_breached_at.is_(None),
                resolve <= target("resolution"),
            )
        ),
    ]
    for value in times.values():
        aggregates += [func.count(value), func.sum(value)]
    per_priority = list(
        await session.execute(
            select(Incident.priority, *aggregates).where(*counted).group_by(Incident.priority)
        )
    )

    kept = sum(row[1] for row in per_priority)
    sla: dict[str, dict[str, float | None]] = {
        p: {"response_met": None, "resolution_met": None} for p in PRIORITIES
    }
    for row in per_priority:
        response_done, response_met, resolution_done, resolution_met = (int(v or 0) for v in row[4:8])
        sla[row[0]] = {
            "response_met": round(response_met / response_done, 4) if response_done else None,
            "resolution_met": round(resolution_met / resolution_done, 4) if resolution_done else None,
        }
    figures: dict[str, dict[str, float | None]] = {}
    for index, (name, value) in enumerate(times.items()):
        count = sum(int(row[8 + 2 * index] or 0) for row in per_priority)
        total = sum(float(row[9 + 2 * index] or 0) for row in per_priority)
        figures[name] = {
            "mean": _round(total / count) if count else None,
            **await _percentiles(session, value, counted, count),
        }

    open_rows = await session.scalars(
        select(Incident)
        .where(Incident.state.in_(list(OPEN_STATES)))
        .order_by(Incident.declared_at)
        .limit(OPEN_LISTED)
    )
    open_list = [
        {
            "id": policy.public_id(i.number),
            "priority": i.priority,
            "state": i.state.value,
            "age_seconds": round((now - i.declared_at).total_seconds(), 1),
            "sla": sla_state(i),
        }
        for i in open_rows
    ]
    repeats = sorted(
        ((c, n) for c, n in kept_by_category.items() if n >= 3), key=lambda item: (-item[1], item[0])
    )
    return {
        "window_days": days,
        "generated_at": now.isoformat(),
        "incidents": {
            "total": sum(by_state.values()),
            "cancelled": by_state.get(State.CANCELLED.value, 0),
            "by_priority": by_priority,
            "by_category": by_category,
            "by_state": by_state,
        },
        "mtta_seconds": {k: figures["mtta_seconds"][k] for k in ("mean", "median", "p90")},
        "mttr_seconds": {k: figures["mttr_seconds"][k] for k in ("mean", "median", "p90")},
        "mttd_seconds": {k: figures["mttd_seconds"][k] for k in ("mean", "median", "p90")},
        "sla": sla,
        "reopen_rate": round(sum(int(r[2] or 0) for r in per_priority) / kept, 4) if kept else None,
        "escalation_rate": round(sum(int(r[3] or 0) for r in per_priority) / kept, 4) if kept else None,
        "open": open_list,
        "repeats": [{"category": category, "count": n} for category, n in repeats],
    }


async def daily(session: AsyncSession, *, now: datetime, days: int) -> list[dict[str, Any]]:
    """Per UTC day of the window: incidents declared by priority, and the mean resolution time of those
    declared that day and since resolved (cancelled ones left out)."""
    start = (now - timedelta(days=days - 1)).replace(hour=0, minute=0, second=0, microsecond=0)
    if session.bind.dialect.name == "sqlite":
        day = func.date(Incident.declared_at)
    else:
        day = func.to_char(func.timezone("UTC", Incident.declared_at), "YYYY-MM-DD")
    resolve = (
        _seconds(session, Incident.resolved_at, Incident.declared_at) - Incident.resolution_paused_seconds
    )
    rows = await session.execute(
        select(
            day,
            Incident.priority,
            func.count(),
            func.avg(case((Incident.resolved_at.is_not(None), resolve))),
            func.count(Incident.resolved_at),
        )
        .where(Incident.declared_at >= start, Incident.declared_at <= now, Incident.state != State.CANCELLED)
        .group_by(day, Incident.priority)
    )
    table = {
        (start + timedelta(days=n)).date().isoformat(): {
            "day": (start + timedelta(days=n)).date().isoformat(),
            **{p: 0 for p in PRIORITIES},
            "mttr_seconds": None,
            "_sum": 0.0,
            "_n": 0,
        }
        for n in range(days)
    }
    for key, priority, count, mean, resolved in rows:
        entry = table.get(str(key))
        if entry is None:
            continue
        entry[priority] = int(count)
        if mean is not None:
            entry["_sum"] += float(mean) * int(resolved)
            entry["_n"] += int(resolved)
    for entry in table.values():
        total, n = entry.pop("_sum"), entry.pop("_n")
        entry["mttr_seconds"] = round(total / n, 1) if n else None
    return list(table.values())
