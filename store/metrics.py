"""Incident figures for a window, computed by SQL aggregates in the database.

Every time figure leaves out cancelled incidents. The window holds the incidents *declared* in it.
Percentiles are interpolated like PostgreSQL's percentile_cont, from the two values around the rank,
read with ORDER BY ... OFFSET so SQLite and PostgreSQL compute them the same way.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Float, and_, case, cast, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from store.models import OPEN_STATES, Incident, State
from store.policy import PRIORITIES, Policy

OPEN_LISTED = 1000  # the backlog lists at most this many open incidents, oldest first


def _seconds(session: AsyncSession, later: Any, earlier: Any) -> ColumnElement[float]:
    if session.bind.dialect.name == "sqlite":
        return (func.julianday(later) - func.julianday(earlier)) * 86400.0
    return func.extract("epoch", later - earlier)


async def _summary(
    session: AsyncSession, value: ColumnElement[float], conditions: list[Any]
) -> dict[str, float | None]:
    where = and_(*conditions, value.is_not(None))
    count, mean = (await session.execute(select(func.count(), func.avg(value)).where(where))).one()
    if not count:
        return {"mean": None, "median": None, "p90": None}

    async def percentile(share: float) -> float:
        rank = share * (count - 1)
        low = math.floor(rank)
        values = [
            float(v)
            for v in await session.scalars(select(value).where(where).order_by(value).offset(low).limit(2))
        ]
        upper = values[1] if len(values) > 1 else values[0]
        return values[0] + (upper - values[0]) * (rank - low)

    return {
        "mean": _round(float(mean)),
        "median": _round(await percentile(0.5)),
        "p90": _round(await percentile(0.9)),
    }


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

    async def grouped(column: Any) -> dict[str, int]:
        rows = await session.execute(select(column, func.count()).where(*in_window).group_by(column))
        return {str(getattr(key, "value", key)): int(n) for key, n in rows}

    total = int(await session.scalar(select(func.count()).where(*in_window)) or 0)
    by_priority = {p: 0 for p in PRIORITIES} | await grouped(Incident.priority)
    by_state = await grouped(Incident.state)

    acknowledge = _seconds(session, Incident.acknowledged_at, Incident.declared_at)
    resolve = (
        _seconds(session, Incident.resolved_at, Incident.declared_at) - Incident.resolution_paused_seconds
    )
    detect = _seconds(session, Incident.declared_at, Incident.detected_at)

    response_target = case(
        *(
            (Incident.priority == p, literal(policy.priorities[p].response.total_seconds()))
            for p in PRIORITIES
        ),
        else_=literal(0.0),
    )
    resolution_target = case(
        *(
            (Incident.priority == p, literal(policy.priorities[p].resolution.total_seconds()))
            for p in PRIORITIES
        ),
        else_=literal(0.0),
    )
    response_done = (Incident.acknowledged_at.is_not(None)) | (Incident.response_breached_at.is_not(None))
    response_met = and_(
        Incident.acknowledged_at.is_not(None),
        Incident.response_breached_at.is_(None),
        acknowledge <= response_target,
    )
    resolution_done = (Incident.resolved_at.is_not(None)) | (Incident.resolution_breached_at.is_not(None))
    resolution_met = and_(
        Incident.resolved_at.is_not(None),
        Incident.resolution_breached_at.is_(None),
        resolve <= resolution_target,
    )
    one = literal(1)
    sla_rows = await session.execute(
        select(
            Incident.priority,
            func.sum(case((response_done, one), else_=0)),
            func.sum(case((response_met, one), else_=0)),
            func.sum(case((resolution_done, one), else_=0)),
            func.sum(case((resolution_met, one), else_=0)),
        )
        .where(*counted)
        .group_by(Incident.priority)
    )
    sla: dict[str, dict[str, float | None]] = {
        p: {"response_met": None, "resolution_met": None} for p in PRIORITIES
    }
    for priority, r_done, r_met, s_done, s_met in sla_rows:
        sla[priority] = {
            "response_met": round(int(r_met) / int(r_done), 4) if r_done else None,
            "resolution_met": round(int(s_met) / int(s_done), 4) if s_done else None,
        }

    rates = (
        await session.execute(
            select(
                func.avg(cast(case((Incident.reopen_count > 0, 1.0), else_=0.0), Float)),
                func.avg(cast(case((Incident.escalation_level > 1, 1.0), else_=0.0), Float)),
            ).where(*counted)
        )
    ).one()

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
    repeats = await session.execute(
        select(Incident.category, func.count())
        .where(*counted)
        .group_by(Incident.category)
        .having(func.count() >= 3)
        .order_by(func.count().desc(), Incident.category)
    )
    return {
        "window_days": days,
        "generated_at": now.isoformat(),
        "incidents": {
            "total": total,
            "cancelled": by_state.get(State.CANCELLED.value, 0),
            "by_priority": by_priority,
            "by_category": await grouped(Incident.category),
            "by_state": by_state,
        },
        "mtta_seconds": await _summary(session, acknowledge, counted),
        "mttr_seconds": await _summary(session, resolve, [*counted, Incident.resolved_at.is_not(None)]),
        "mttd_seconds": await _summary(session, detect, [*counted, Incident.detected_at.is_not(None)]),
        "sla": sla,
        "reopen_rate": None if rates[0] is None else round(float(rates[0]), 4),
        "escalation_rate": None if rates[1] is None else round(float(rates[1]), 4),
        "open": open_list,
        "repeats": [{"category": category, "count": int(n)} for category, n in repeats],
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
