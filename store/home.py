"""What one person's App Home tab shows: their open incidents, every open incident with its SLA clocks,
their open action items, and how many of each there are in all (the first few of each are listed).

Four queries whatever the data: the counts, the person's incidents, the open incidents, their action
items; each list is read to at most a fixed number of rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Select, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from store import actions, timers
from store.models import OPEN_STATES, ActionItem, Incident
from store.policy import ROLES, Policy

# At most this many of each are read: what one Home tab lists, inside the 100 blocks Slack allows it.
MINE_LISTED = 10  # the person's own open incidents
OPEN_LISTED = 40  # all open incidents
ACTIONS_LISTED = 20  # their open action items
REPORTER = "reporter"  # besides the roles of store.policy.ROLES


@dataclass(frozen=True)
class Sla:
    """One SLA clock of an open incident, as the card and the timers see it (store.timers.clock_due and
    the incident's breach marks)."""

    clock: str  # "response" or "resolution"
    warn_at: datetime
    due_at: datetime
    took: timedelta | None  # how long it ran, once stopped (the response, by the acknowledgement)
    breached_at: datetime | None  # None: not breached

    def due_in(self, now: datetime) -> timedelta:
        return self.due_at - now


@dataclass(frozen=True)
class OpenIncident:
    incident: Incident
    response: Sla
    resolution: Sla
    roles: tuple[str, ...]  # what the person is in it: commander, comms, scribe, reporter


@dataclass(frozen=True)
class OwnedAction:
    item: ActionItem
    overdue: bool  # past the end of its due day, in app.yaml's timezone


@dataclass(frozen=True)
class HomeFacts:
    user: str
    now: datetime
    mine: list[OpenIncident]  # open incidents the person commands, holds a role in or reported
    mine_total: int
    open: list[OpenIncident]  # every open incident, P1 first, then oldest first
    open_total: int
    actions: list[OwnedAction]  # their open action items, soonest due first
    actions_total: int


def sla(incident: Incident, clock: str, *, policy: Policy, now: datetime) -> Sla:
    """A clock is breached once marked so by its timer, or once its due time has passed without it
    stopping (the timer fires on the scheduler's next tick), or when it stopped too late."""
    warn_at, due_at = timers.clock_due(incident, clock, policy=policy)
    stopped = incident.acknowledged_at if clock == "response" else incident.resolved_at
    marked = getattr(incident, f"{clock}_breached_at")
    late = due_at < stopped if stopped is not None else due_at <= now
    breached_at = None
    if marked is not None or late:
        # A clock re-timed after its breach (a reopened incident's paused time) keeps its breach.
        breached_at = due_at if due_at <= now else marked
    took = None if stopped is None else stopped - incident.declared_at
    return Sla(clock=clock, warn_at=warn_at, due_at=due_at, took=took, breached_at=breached_at)


def roles_of(incident: Incident, user: str) -> tuple[str, ...]:
    held = tuple(role for role in ROLES if getattr(incident, role) == user)
    return held + ((REPORTER,) if incident.reporter == user else ())


def _is_open() -> ColumnElement[bool]:
    return Incident.state.in_(list(OPEN_STATES))


def _involves(user: str) -> ColumnElement[bool]:
    return or_(*(getattr(Incident, role) == user for role in (*ROLES, REPORTER)))


def _by_priority_then_age(limit: int, *where: ColumnElement[bool]) -> Select[Incident]:
    return (
        select(Incident)
        .where(_is_open(), *where)
        .order_by(Incident.priority, Incident.declared_at, Incident.number)
        .limit(limit)
    )


async def _counts(session: AsyncSession, user: str) -> tuple[int, int, int]:
    """(open incidents, the person's open incidents, their open action items), in one query."""
    count = select(func.count()).select_from(Incident)
    owned = select(func.count()).select_from(ActionItem)
    row = (
        await session.execute(
            select(
                count.where(_is_open()).scalar_subquery(),
                count.where(_is_open(), _involves(user)).scalar_subquery(),
                owned.where(ActionItem.owner == user, ActionItem.done_at.is_(None)).scalar_subquery(),
            )
        )
    ).one()
    return int(row[0] or 0), int(row[1] or 0), int(row[2] or 0)


async def home_facts(session: AsyncSession, *, user: str, now: datetime, policy: Policy) -> HomeFacts:
    open_total, mine_total, actions_total = await _counts(session, user)
    mine = list(await session.scalars(_by_priority_then_age(MINE_LISTED, _involves(user))))
    every = list(await session.scalars(_by_priority_then_age(OPEN_LISTED)))
    items = await actions.open_of_owner(session, user, limit=ACTIONS_LISTED)

    def shown(incident: Incident) -> OpenIncident:
        return OpenIncident(
            incident=incident,
            response=sla(incident, "response", policy=policy, now=now),
            resolution=sla(incident, "resolution", policy=policy, now=now),
            roles=roles_of(incident, user),
        )

    return HomeFacts(
        user=user,
        now=now,
        mine=[shown(i) for i in mine],
        mine_total=mine_total,
        open=[shown(i) for i in every],
        open_total=open_total,
        actions=[OwnedAction(i, timers.overdue_from(i, policy=policy) <= now) for i in items],
        actions_total=actions_total,
    )
