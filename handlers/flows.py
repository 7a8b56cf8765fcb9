"""The one shape every write takes: find the incident under a lock, apply one use case, publish, commit."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession

from handlers.deps import Deps
from handlers.messages import publish
from store import service
from store.change import Change
from store.models import Incident

UseCase = Callable[[AsyncSession, Incident], Awaitable[Change]]


async def change_incident(deps: Deps, *, ref: str | None, channel: str | None, use_case: UseCase) -> Change:
    """Run `use_case` on the incident named by `ref` (or this channel's) in one transaction, with its messages."""
    async with deps.db.write() as session:
        incident = await service.find(session, policy=deps.policy, ref=ref, channel=channel, lock=True)
        change = await use_case(session, incident)
        await publish(session, change, composer=deps.composer, now=deps.clock())
    deps.wake_relay()
    return change


async def declare(deps: Deps, **fields: str | None) -> Change:
    async with deps.db.write() as session:
        change = await service.declare(session, policy=deps.policy, now=deps.clock(), **fields)  # type: ignore[arg-type]
        await publish(session, change, composer=deps.composer, now=deps.clock())
    deps.wake_relay()
    return change


async def read_incident(deps: Deps, *, ref: str | None, channel: str | None) -> Incident:
    async with deps.db.read() as session:
        return await service.find(session, policy=deps.policy, ref=ref, channel=channel)
