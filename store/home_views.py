"""Who opened Tocsin's App Home tab: their tab is published again when what it shows changes.

Refreshes coalesce: a user whose refresh is still queued gets no second one, because the relay renders
the tab when it delivers the row, from what it shows then."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from store import outbox
from store.models import HomeView, OutboxMessage
from store.operations import PublishHome

KEPT_FRESH = timedelta(days=1)  # a tab opened this recently is refreshed when what it shows changes
_PENDING = (OutboxMessage.delivered_at.is_(None), OutboxMessage.failed_at.is_(None))


async def opened(session: AsyncSession, *, user: str, now: datetime) -> None:
    """`user` opened the tab: publish it for them now (unless a refresh is queued already)."""
    seen = await session.get(HomeView, user, with_for_update=True)
    if seen is None:
        session.add(HomeView(user_id=user, opened_at=now))
    else:
        seen.opened_at = now
    await _queue(session, [user], now=now)


async def changed(session: AsyncSession, *, now: datetime) -> None:
    """Something a Home tab shows changed: refresh the tabs opened in the last day."""
    users = list(
        await session.scalars(select(HomeView.user_id).where(HomeView.opened_at >= now - KEPT_FRESH))
    )
    if users:
        await _queue(session, users, now=now)


async def _queue(session: AsyncSession, users: list[str], *, now: datetime) -> None:
    waiting = await session.scalars(
        select(OutboxMessage.payload).where(OutboxMessage.op == "publish_home", *_PENDING)
    )
    queued = {payload.get("user") for payload in waiting if isinstance(payload, dict)}
    for user in users:
        if user not in queued:
            outbox.enqueue(session, PublishHome(user=user), now=now, incident_number=None)
