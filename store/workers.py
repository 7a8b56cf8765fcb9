"""Running processes and their heartbeats, so work claimed by a process that died is taken over
in seconds, not when its lease runs out."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from store.models import Worker


async def register(session: AsyncSession, *, worker_id: str, host: str, pid: int, now: datetime) -> None:
    session.add(Worker(id=worker_id, host=host[:255], pid=pid, started_at=now, seen_at=now))


async def beat(session: AsyncSession, *, worker_id: str, now: datetime) -> None:
    seen = await session.scalar(
        update(Worker).where(Worker.id == worker_id).values(seen_at=now).returning(Worker.id)
    )
    if seen is None:  # pruned while we were stalled: come back
        session.add(Worker(id=worker_id, host="", pid=0, started_at=now, seen_at=now))


async def retire(session: AsyncSession, *, worker_id: str) -> None:
    await session.execute(delete(Worker).where(Worker.id == worker_id))


async def prune(session: AsyncSession, *, before: datetime) -> None:
    await session.execute(delete(Worker).where(Worker.seen_at < before))


async def alive(session: AsyncSession, *, since: datetime) -> dict[str, datetime]:
    """The workers (processes running a relay) that beat at `since` or later: when each last did, by id."""
    found = await session.execute(select(Worker.id, Worker.seen_at).where(Worker.seen_at >= since))
    return {worker: seen for worker, seen in found}
