"""The overrides of the on-call schedules, as store/rota.py reads them, and the schedules by name."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from store import rota
from store.errors import Field, InvalidInput
from store.models import ScheduleOverride
from store.policy import Policy

LOOK_BACK = timedelta(days=35)  # as far back as rota.on_call looks for when a shift began


def schedule_named(policy: Policy, name: str) -> rota.Schedule:
    """The schedule app.yaml calls `name` (in any case), or the refusal that lists them."""
    found = policy.schedules.get(name.strip().lower())
    if found is None:
        known = sorted(policy.schedules)
        problem = (
            f"there is no schedule called {name.strip()!r}"
            if known
            else "no on-call schedules are configured (app.yaml's `schedules`)"
        )
        raise InvalidInput(field=Field.SCHEDULE, problem=problem, choices=known or None)
    return found


def as_override(row: ScheduleOverride) -> rota.Override:
    return rota.Override(
        id=row.id, user=row.user, starts_at=row.starts_at, ends_at=row.ends_at, created_at=row.created_at
    )


async def rows(
    session: AsyncSession, *, schedules: Iterable[str], ending_after: datetime
) -> list[ScheduleOverride]:
    """The overrides of these schedules that are not removed and end after `ending_after`, in the order
    they were created."""
    query = (
        select(ScheduleOverride)
        .where(
            ScheduleOverride.schedule.in_(list(schedules)),
            ScheduleOverride.removed_at.is_(None),
            ScheduleOverride.ends_at > ending_after,
        )
        .order_by(ScheduleOverride.created_at, ScheduleOverride.id)
    )
    return list(await session.scalars(query))


async def of(
    session: AsyncSession, schedules: Iterable[str], *, now: datetime
) -> dict[str, list[rota.Override]]:
    """What rota needs to say who is on call of each schedule from `now` on (and since when)."""
    names = list(schedules)
    found: dict[str, list[rota.Override]] = {name: [] for name in names}
    for row in await rows(session, schedules=names, ending_after=now - LOOK_BACK):
        found[row.schedule].append(as_override(row))
    return found


async def on_call(session: AsyncSession, schedule: rota.Schedule, *, at: datetime) -> rota.Shift:
    overrides = (await of(session, [schedule.name], now=at))[schedule.name]
    return rota.on_call(schedule, overrides, at)
