"""What an operator (and /healthz) needs to see: overdue timers and the outbox backlog."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from store import timers
from store.models import OutboxMessage


async def report(
    session: AsyncSession, *, now: datetime, held: Mapping[str, Sequence[str]] | None = None
) -> dict[str, Any]:
    """`held`: kinds of pause, each with the last_error of the pending rows it holds (the caller knows which
    errors wait for an operator): exactly, or up to a final `*`. The report's "held" gives, for each kind
    with such rows, the greatest of their errors, and how many rows are held in all."""
    oldest_timer = await timers.oldest_due(session, now=now)
    pending = (OutboxMessage.delivered_at.is_(None), OutboxMessage.failed_at.is_(None))
    kinds = {kind: _matching(errors) for kind, errors in (held or {}).items() if errors}
    columns: list[Any] = [func.count(), func.min(OutboxMessage.created_at)]
    if kinds:  # in the same statement: the pending rows are read once, through their index
        columns.append(func.count().filter(or_(*kinds.values())))
        columns += [func.max(OutboxMessage.last_error).filter(condition) for condition in kinds.values()]
    backlog, oldest_message, *holding = (await session.execute(select(*columns).where(*pending))).one()
    failed = await session.scalar(
        select(func.count()).select_from(OutboxMessage).where(OutboxMessage.failed_at.is_not(None))
    )
    result: dict[str, Any] = {
        "timers": {"oldest_due_seconds": _age(oldest_timer, now)},
        "outbox": {
            "backlog": int(backlog or 0),
            "oldest_seconds": _age(oldest_message, now),
            "failed": int(failed or 0),
        },
    }
    if kinds:
        count, *errors = holding
        result["held"] = {
            "messages": int(count or 0),
            **{kind: error for kind, error in zip(kinds, errors, strict=True) if error},
        }
    return result


def _matching(errors: Sequence[str]) -> Any:
    exact = [error for error in errors if not error.endswith("*")]
    prefixes = [error.removesuffix("*") for error in errors if error.endswith("*")]
    return or_(
        *([OutboxMessage.last_error.in_(exact)] if exact else []),
        *(OutboxMessage.last_error.startswith(prefix, autoescape=True) for prefix in prefixes),
    )


def _age(moment: datetime | None, now: datetime) -> float | None:
    if moment is None:
        return None
    if moment.tzinfo is None:  # min() over SQLite text comes back without the type's conversion
        moment = datetime.fromisoformat(str(moment)).replace(tzinfo=now.tzinfo)
    return round(max((now - moment).total_seconds(), 0.0), 3)
