"""Incidents by number, many at once: for the relay, the scheduler and the similar-incident search."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from store.models import Incident

# Built once: asked every relay round and every sweep (see store/service.py's _LOOKUPS).
_BY_NUMBERS = (
    select(Incident)
    .where(Incident.number.in_(bindparam("numbers", expanding=True)))
    .order_by(Incident.number)
)
_BY_NUMBERS_LOCKED = _BY_NUMBERS.with_for_update()


async def by_numbers(
    session: AsyncSession, numbers: Iterable[int], *, lock: bool = False
) -> dict[int, Incident]:
    """These incidents, by number; locked in number order, so two processes locking cannot deadlock."""
    wanted = sorted(set(numbers))
    if not wanted:
        return {}
    query = _BY_NUMBERS_LOCKED if lock else _BY_NUMBERS
    return {incident.number: incident for incident in await session.scalars(query, {"numbers": wanted})}
