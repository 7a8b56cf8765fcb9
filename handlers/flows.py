"""The one shape every write takes: find the incident under a lock, apply one use case, publish, commit."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from handlers.deps import Deps
from handlers.messages import publish
from store import service
from store.change import Change
from store.models import Incident
from store.policy import Policy

C = TypeVar("C", bound=Change)  # the kind of change a use case makes, handed back as it made it


@dataclass(frozen=True)
class UseCaseContext:
    """What one request's use cases are given besides the incident: who acts, from which channel (the
    incident of that channel, when no id is given; None for buttons and forms, which name theirs), under
    which policy, and the clock their `now` is read from."""

    actor: str
    channel: str | None
    policy: Policy
    clock: Callable[[], datetime]

    @classmethod
    def of(cls, deps: Deps, *, actor: str, channel: str | None = None) -> UseCaseContext:
        return cls(actor=actor, channel=channel, policy=deps.policy, clock=deps.clock)

    def given(self) -> dict[str, Any]:
        """The keywords every store use case takes. `now` is read as the use case starts, under the
        incident's lock, so a request that waited for the lock is stamped when its change is made."""
        return {"policy": self.policy, "actor": self.actor, "now": self.clock()}


async def change(
    deps: Deps,
    ctx: UseCaseContext,
    ref: str | None,
    use_case: Callable[..., Awaitable[C]],
    *args: Any,
    **kwargs: Any,
) -> C:
    """`use_case(session, incident, *args, policy=, actor=, now=, **kwargs)` on the incident `ref` names
    (or the incident of `ctx.channel`): store/ use cases all take that shape."""
    return await change_incident(
        deps,
        ref=ref,
        channel=ctx.channel,
        use_case=lambda session, incident: use_case(session, incident, *args, **ctx.given(), **kwargs),
    )


async def change_incident(
    deps: Deps,
    *,
    ref: str | None,
    channel: str | None,
    use_case: Callable[[AsyncSession, Incident], Awaitable[C]],
) -> C:
    """Run `use_case` on the incident named by `ref` (or this channel's) in one transaction, with its
    messages: BEGIN (IMMEDIATE on SQLite), SELECT the incident FOR UPDATE, the use case's statements, one
    INSERT INTO outbox of the messages planned for its change, COMMIT."""
    async with deps.db.write() as session:
        incident = await service.find(session, policy=deps.policy, ref=ref, channel=channel, lock=True)
        change = await use_case(session, incident)
        await publish(session, change, composer=deps.composer, now=deps.clock())
    deps.wake_relay()
    return change


async def declare(deps: Deps, **fields: Any) -> Change:
    async with deps.db.write() as session:
        change = await service.declare(session, policy=deps.policy, now=deps.clock(), **fields)
        await publish(session, change, composer=deps.composer, now=deps.clock())
    deps.wake_relay()
    return change


async def read_incident(deps: Deps, ctx: UseCaseContext, ref: str | None) -> Incident:
    async with deps.db.read() as session:
        return await service.find(session, policy=deps.policy, ref=ref, channel=ctx.channel)
