"""The durable outbox: Slack operations written in the same transaction as the change that caused them.

A row is delivered once. Each row has an urgency (the most urgent ready row goes first, across
incidents) and a lane: order is kept among an incident's rows of one lane (a card's edits, its thread's
replies, the posts in its channel), and a row that needs the incident's channel, card or announcement
waits for the row that provides it (store/operations.py `route`). Relays on any number of processes
claim rows with a lease; on PostgreSQL the claim skips rows another relay holds.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql.elements import BindParameter

from store.models import OutboxMessage, Worker, table_of
from store.operations import COALESCED, Operation, encode, route


def _row(operation: Operation, *, now: datetime, incident_number: int | None, priority: str | None) -> dict:
    op, payload = encode(operation)
    way = route(operation, priority=priority)
    lane = way.lane if incident_number is not None else "alone"
    return dict(
        incident_number=incident_number,
        created_at=now,
        op=op,
        payload=payload,
        attempts=0,
        next_attempt_at=now,
        urgency=way.urgency,
        lane=lane,
        needs=way.needs if incident_number is not None else None,
        provides=way.provides if incident_number is not None else None,
        bucket=way.bucket,
    )


def enqueue(
    session: AsyncSession,
    operation: Operation,
    *,
    now: datetime,
    incident_number: int | None,
    priority: str | None = None,
) -> OutboxMessage:
    """Queue one operation (of an incident of `priority`); the row, to be flushed with the session."""
    row = OutboxMessage(**_row(operation, now=now, incident_number=incident_number, priority=priority))
    session.add(row)
    return row


_INSERT = insert(table_of(OutboxMessage))


async def enqueue_all(
    session: AsyncSession,
    ops: Sequence[Operation],
    *,
    now: datetime,
    incident_number: int | None,
    priority: str | None = None,
) -> None:
    """Queue several operations, in order, with one INSERT (no ORM objects: nobody reads them back)."""
    if ops:
        rows = [_row(op, now=now, incident_number=incident_number, priority=priority) for op in ops]
        await session.execute(_INSERT, rows)


# A page's DM links the incident's channel, so it waits for the channel, but only this long: in a storm,
# channel creations queue at Slack's 20 a minute, and a page that says "it has no channel yet" now beats
# one with a link in a minute.
PAGE_PATIENCE = timedelta(seconds=2)


def _pending(row: Any = OutboxMessage) -> Any:
    return and_(row.delivered_at.is_(None), row.failed_at.is_(None))


def _claimable() -> Any:
    """Deliverable rows, most urgent first, locked (skipping rows others hold): the head of each lane of
    each incident (earlier rows of the lane block later ones), once no earlier row of its incident that
    provides what it needs is pending. A row of no incident stands alone.

    Both tests are correlated index seeks (ix_outbox_lane, ix_outbox_provides), whatever the planner's
    statistics say: a NOT EXISTS over the whole queue was once planned as a full index scan per row on
    PostgreSQL when the table grew faster than ANALYZE ran (docs/performance.md)."""
    earlier, provider = aliased(OutboxMessage), aliased(OutboxMessage)
    head = (
        select(func.min(earlier.id))
        .where(
            earlier.incident_number == OutboxMessage.incident_number,
            earlier.lane == OutboxMessage.lane,
            _pending(earlier),
        )
        .scalar_subquery()
    )
    unprovided = (
        select(provider.id)
        .where(
            provider.incident_number == OutboxMessage.incident_number,
            provider.provides == OutboxMessage.needs,
            provider.id < OutboxMessage.id,
            _pending(provider),
        )
        .exists()
    )
    now: BindParameter[datetime] = bindparam("now")
    live_workers = select(Worker.id).where(Worker.seen_at >= bindparam("alive_since"))
    return (
        select(OutboxMessage)
        .where(
            _pending(),
            OutboxMessage.next_attempt_at <= now,
            or_(
                OutboxMessage.locked_until.is_(None),
                OutboxMessage.locked_until < now,
                OutboxMessage.locked_by.not_in(live_workers),
            ),
            or_(OutboxMessage.incident_number.is_(None), OutboxMessage.id == head),
            or_(
                OutboxMessage.needs.is_(None),
                ~unprovided,
                and_(OutboxMessage.lane == "dm", OutboxMessage.created_at <= bindparam("impatient")),
            ),
        )
        .order_by(OutboxMessage.urgency, OutboxMessage.id)
        .limit(bindparam("limit"))
        .with_for_update(skip_locked=True, of=OutboxMessage)
    )


# The relay asks these every round: built once, with the values bound per call, so SQLAlchemy derives
# each one's cache key once.
_CLAIMABLE = _claimable()
_IDS = OutboxMessage.id.in_(bindparam("ids", expanding=True))
_LEASE = (
    update(OutboxMessage)
    .where(_IDS)
    .values(
        locked_until=bindparam("until"), locked_by=bindparam("worker"), attempts=OutboxMessage.attempts + 1
    )
    .execution_options(synchronize_session=False)
)
# The rows queued behind a claimed head of a coalesced lane, not held by anyone: the head is rendered
# from the incident as it is when delivered, after they were committed, so it shows what they would.
_COALESCE = (
    update(OutboxMessage)
    .where(
        OutboxMessage.incident_number == bindparam("number"),
        OutboxMessage.lane == bindparam("in_lane"),
        OutboxMessage.id > bindparam("head"),
        _pending(),
        or_(OutboxMessage.locked_until.is_(None), OutboxMessage.locked_until < bindparam("now")),
    )
    .values(delivered_at=bindparam("now"), last_error="coalesced")
    .execution_options(synchronize_session=False)
)
_SETTLED: dict[str, dict[str, Any]] = {  # how a claimed row ended; each also gives up the lease
    "released": {"attempts": OutboxMessage.attempts - 1},
    "delivered": {"delivered_at": bindparam("at"), "last_error": None},
    "retry": {"next_attempt_at": bindparam("at"), "last_error": bindparam("error")},
    "failed": {"failed_at": bindparam("at"), "last_error": bindparam("error")},
}
_SETTLE = {
    outcome: update(OutboxMessage)
    .where(_IDS)
    .values(locked_until=None, locked_by=None, **values)
    .execution_options(synchronize_session=False)
    for outcome, values in _SETTLED.items()
}


async def claim(
    session: AsyncSession,
    *,
    now: datetime,
    lease: timedelta,
    worker: str,
    dead_after: timedelta,
    limit: int = 50,
    admit: Callable[[OutboxMessage], bool] | None = None,
    scan: int | None = None,
) -> list[tuple[OutboxMessage, bool]]:
    """Claim up to `limit` deliverable rows, most urgent first (see _claimable), looking at `scan` of
    them (default `limit`) and keeping those `admit` lets through (the relay admits what Slack's quotas
    let it send soon). Rows queued behind a claimed row of a coalesced lane are settled with it.

    Each row comes with `uncertain`: True when an earlier claim ended without a recorded outcome (its
    process died or stalled mid-delivery), so Slack may already have the message."""
    found = await session.scalars(
        _CLAIMABLE,
        {
            "now": now,
            "alive_since": now - dead_after,
            "impatient": now - PAGE_PATIENCE,
            "limit": scan or limit,
        },
    )
    rows = [row for row in found if admit is None or admit(row)][:limit]
    if not rows:
        return []
    claimed = [(row, row.locked_by is not None) for row in rows]
    until = now + lease
    await session.execute(_LEASE, {"ids": [row.id for row in rows], "until": until, "worker": worker})
    for row in rows:  # as the UPDATE left them, for the caller (not changes for the session to flush)
        set_committed_value(row, "locked_until", until)
        set_committed_value(row, "locked_by", worker)
        set_committed_value(row, "attempts", row.attempts + 1)
        if row.lane in COALESCED and row.incident_number is not None:
            values = {"number": row.incident_number, "in_lane": row.lane, "head": row.id, "now": now}
            await session.execute(_COALESCE, values)
    return claimed


async def _settle(session: AsyncSession, outcome: str, message_ids: list[int], **values: Any) -> None:
    """Record how claimed rows ended, and give up their lease."""
    await session.execute(_SETTLE[outcome], {"ids": message_ids, **values})


async def release(session: AsyncSession, *, message_ids: list[int]) -> None:
    """Give back claimed rows that were not attempted (the row before one has to be retried first, or
    a failed round never got to it)."""
    if message_ids:
        await _settle(session, "released", message_ids)


async def delivered(session: AsyncSession, *, message_ids: list[int], now: datetime) -> None:
    """Rows delivered, in one statement."""
    if message_ids:
        await _settle(session, "delivered", message_ids, at=now)


async def retry_later(session: AsyncSession, *, message_id: int, error: str, at: datetime) -> None:
    await _settle(session, "retry", [message_id], at=at, error=error)


async def failed(session: AsyncSession, *, message_id: int, error: str, now: datetime) -> None:
    await _settle(session, "failed", [message_id], at=now, error=error)


async def undelivered(
    session: AsyncSession, *, limit: int = 200, include_failed: bool = False
) -> list[OutboxMessage]:
    """Messages not yet delivered (and, with include_failed, those given up on), oldest first."""
    condition = OutboxMessage.delivered_at.is_(None) if include_failed else _pending()
    query = select(OutboxMessage).where(condition).order_by(OutboxMessage.id).limit(limit)
    return list(await session.scalars(query))


async def held_by(session: AsyncSession, *, worker: str) -> set[int]:
    """Pending rows `worker` holds a lease on, locked: after a round that failed, those it still has to
    settle (or give back)."""
    query = (
        select(OutboxMessage.id)
        .where(_pending(), OutboxMessage.locked_by == worker)
        .with_for_update(of=OutboxMessage)
    )
    return set(await session.scalars(query))


async def due_now(session: AsyncSession, *, errors: Collection[str], now: datetime) -> int:
    """Pending rows waiting after one of `errors` become due at once (their cause was fixed); how many."""
    result = await session.execute(
        update(OutboxMessage)
        .where(_pending(), OutboxMessage.last_error.in_(list(errors)), OutboxMessage.next_attempt_at > now)
        .values(next_attempt_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def requeue_failed(
    session: AsyncSession, *, message_ids: Collection[int] | None, now: datetime
) -> list[OutboxMessage]:
    """Put given-up rows back in the queue (all of them when `message_ids` is None), due now and with a
    fresh count of attempts; the rows as they were, oldest first. They keep their ids, so each goes out
    in its place among its incident's messages."""
    query = select(OutboxMessage).where(
        OutboxMessage.failed_at.is_not(None), OutboxMessage.delivered_at.is_(None)
    )
    if message_ids is not None:
        query = query.where(OutboxMessage.id.in_(list(message_ids)))
    rows = list(await session.scalars(query.order_by(OutboxMessage.id).with_for_update(of=OutboxMessage)))
    if rows:
        await session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_([row.id for row in rows]))
            .values(
                failed_at=None,
                last_error=None,
                next_attempt_at=now,
                attempts=0,
                locked_until=None,
                locked_by=None,
            )
            .execution_options(synchronize_session=False)
        )
    return rows


async def by_ids(session: AsyncSession, *, message_ids: Collection[int]) -> dict[int, OutboxMessage]:
    query = select(OutboxMessage).where(OutboxMessage.id.in_(list(message_ids)))
    return {row.id: row for row in await session.scalars(query)}
