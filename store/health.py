"""What an operator (and /healthz) needs to see: overdue timers and the outbox backlog."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from store import timers
from store.models import OutboxMessage
from store.operations import urgency_label


async def report(
    session: AsyncSession, *, now: datetime, held: Mapping[str, Sequence[str]] | None = None
) -> dict[str, Any]:
    """`held`: kinds of pause, each with the last_error of the pending rows it holds (the caller knows which
    errors wait for an operator): exactly, or up to a final `*`. The report's "held" gives, for each kind
    with such rows, the greatest of their errors, and how many rows are held in all."""
    oldest_timer = await timers.oldest_due(session, now=now)
    kinds = {kind: _matching(errors) for kind, errors in (held or {}).items() if errors}
    groups = await _pending_by_urgency(session, kinds=list(kinds.values()))
    by_urgency: dict[str, dict[str, Any]] = {
        urgency_label(urgency): {"count": int(count), "oldest_seconds": _age(oldest, now)}
        for urgency, count, oldest, *_ in groups
    }
    backlog = sum(row["count"] for row in by_urgency.values())
    ages = [row["oldest_seconds"] for row in by_urgency.values() if row["oldest_seconds"] is not None]
    failed = await session.scalar(
        select(func.count()).select_from(OutboxMessage).where(OutboxMessage.failed_at.is_not(None))
    )
    result: dict[str, Any] = {
        "timers": {"oldest_due_seconds": _age(oldest_timer, now)},
        "outbox": {
            "backlog": backlog,
            "oldest_seconds": max(ages) if ages else None,
            "failed": int(failed or 0),
            "by_urgency": by_urgency,
            "most_urgent": next(
                (
                    {"urgency": label, "waiting_seconds": row["oldest_seconds"]}
                    for label, row in by_urgency.items()
                ),
                None,
            ),
        },
    }
    if kinds:
        errors = [max((g[4 + n] for g in groups if g[4 + n]), default=None) for n in range(len(kinds))]
        result["held"] = {
            "messages": sum(int(g[3] or 0) for g in groups),
            **{kind: error for kind, error in zip(kinds, errors, strict=True) if error},
        }
    return result


async def backlog_by_urgency(session: AsyncSession, *, now: datetime) -> dict[str, dict[str, Any]]:
    """Pending messages by urgency, most urgent first: how many, and how long the oldest has waited
    (labels as operations.urgency_label: `P1-alert`, `P3-message`, ...)."""
    by_urgency: dict[str, dict[str, Any]] = (await report(session, now=now))["outbox"]["by_urgency"]
    return by_urgency


async def _pending_by_urgency(session: AsyncSession, *, kinds: list[Any]) -> list[Any]:
    """(urgency, count, oldest created_at[, held count, greatest error of each kind]) of the pending rows,
    by urgency: one statement, the pending rows read once through their index."""
    columns: list[Any] = [OutboxMessage.urgency, func.count(), func.min(OutboxMessage.created_at)]
    if kinds:
        columns.append(func.count().filter(or_(*kinds)))
        columns += [func.max(OutboxMessage.last_error).filter(condition) for condition in kinds]
    query = (
        select(*columns)
        .where(OutboxMessage.delivered_at.is_(None), OutboxMessage.failed_at.is_(None))
        .group_by(OutboxMessage.urgency)
        .order_by(OutboxMessage.urgency)
    )
    return list(await session.execute(query))


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
