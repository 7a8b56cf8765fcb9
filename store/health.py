"""What an operator (and /healthz) needs to see: overdue timers and the outbox backlog."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from store import timers
from store.models import OutboxMessage


async def report(session: AsyncSession, *, now: datetime) -> dict[str, Any]:
    oldest_timer = await timers.oldest_due(session, now=now)
    pending = (OutboxMessage.delivered_at.is_(None), OutboxMessage.failed_at.is_(None))
    backlog, oldest_message = (
        await session.execute(select(func.count(), func.min(OutboxMessage.created_at)).where(*pending))
    ).one()
    failed = await session.scalar(
        select(func.count()).select_from(OutboxMessage).where(OutboxMessage.failed_at.is_not(None))
    )
    return {
        "timers": {"oldest_due_seconds": _age(oldest_timer, now)},
        "outbox": {
            "backlog": int(backlog or 0),
            "oldest_seconds": _age(oldest_message, now),
            "failed": int(failed or 0),
        },
    }


def _age(moment: datetime | None, now: datetime) -> float | None:
    if moment is None:
        return None
    if moment.tzinfo is None:  # min() over SQLite text comes back without the type's conversion
        moment = datetime.fromisoformat(str(moment)).replace(tzinfo=now.tzinfo)
    return round(max((now - moment).total_seconds(), 0.0), 3)
