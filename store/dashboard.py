"""What the web view's dashboard shows: the open incidents with their SLA clocks, the last days' trend,
and a fingerprint that tells a live page whether any of it may have changed.

A clock's state follows store/home.py's `sla` (the card's and the App Home's reading of it), so every
view of an incident agrees on whether it is breached."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import load_only

from store import metrics
from store.home import sla
from store.models import OPEN_STATES, Incident, OutboxMessage, State, TimelineEntry, Timer
from store.policy import Policy

OPEN_LISTED = 500  # the dashboard lists at most this many open incidents
CLOCKS = ("response", "resolution")

ClockState = Literal["ok", "at_risk", "breached", "met", "paused"]


@dataclass(frozen=True)
class Clock:
    """One SLA clock. `seconds_left`: until it is due while it runs (negative once past), else None."""

    clock: str  # "response" or "resolution"
    state: ClockState
    warn_at: datetime  # at risk from then
    due_at: datetime
    seconds_left: float | None


@dataclass(frozen=True)
class OpenIncident:
    number: int
    title: str  # as Slack encodes it (store/text.py)
    priority: str
    state: State
    category: str
    commander: str | None
    escalation_level: int  # 0: no level paged (no escalation configured)
    level_name: str | None  # policy.escalation_levels' name of that level
    declared_at: datetime
    channel_id: str | None
    response: Clock
    resolution: Clock


@dataclass(frozen=True)
class OpenIncidents:
    rows: list[OpenIncident]  # by priority, then oldest first; at most OPEN_LISTED
    total: int  # how many are open in all


@dataclass(frozen=True)
class Day:
    """The incidents declared on one UTC day: times in seconds, None when none stopped that clock;
    `sla_compliance` is the share of their clocks that ran out and were met (response and resolution)."""

    day: date
    declared: int  # cancelled ones included
    cancelled: int
    mtta_seconds: float | None
    mttr_seconds: float | None
    sla_measured: int
    sla_met: int
    sla_compliance: float | None


def clock(incident: Incident, name: str, *, policy: Policy, now: datetime) -> Clock:
    """A stopped clock is met or breached. One whose incident ended without stopping it (cancelled
    unanswered) is paused, unless its timer had marked it breached. A running one is ok, at risk once
    past `sla.warn_at` of its target, and breached once due."""
    reading = sla(incident, name, policy=policy, now=now)
    running = reading.took is None and incident.is_open
    state: ClockState
    if reading.took is None and not incident.is_open:
        state = "breached" if getattr(incident, f"{name}_breached_at") is not None else "paused"
    elif reading.breached_at is not None:
        state = "breached"
    elif reading.took is not None:
        state = "met"
    else:
        state = "at_risk" if now >= reading.warn_at else "ok"
    left = (reading.due_at - now).total_seconds() if running else None
    return Clock(clock=name, state=state, warn_at=reading.warn_at, due_at=reading.due_at, seconds_left=left)


def level_name(level: int, policy: Policy) -> str | None:
    """The name app.yaml gives escalation level `level` (1-based); None for none."""
    return policy.escalation_levels[level - 1].name if 0 < level <= len(policy.escalation_levels) else None


# The columns a row and its clocks read (store/timers.py's clock_due, store/home.py's sla): loading whole
# incidents, hundreds of them, would read every other column for nothing.
_SHOWN = load_only(
    *(Incident.number, Incident.title, Incident.priority, Incident.state, Incident.category),
    *(Incident.commander, Incident.escalation_level, Incident.declared_at, Incident.channel_id),
    *(Incident.acknowledged_at, Incident.resolved_at, Incident.resolution_paused_seconds),
    *(Incident.response_breached_at, Incident.resolution_breached_at),
    raiseload=True,
)
_OPEN = (
    select(Incident, func.count().over().label("total"))
    .where(Incident.state.in_(list(OPEN_STATES)))
    .options(_SHOWN)
    .order_by(Incident.priority, Incident.declared_at, Incident.number)
    .limit(OPEN_LISTED)
)


async def open_incidents(session: AsyncSession, *, policy: Policy, now: datetime) -> OpenIncidents:
    """Every open incident, P1 first and oldest first within a priority, with its clocks: one query."""
    found = list(await session.execute(_OPEN))
    rows = [
        OpenIncident(
            number=incident.number,
            title=incident.title,
            priority=incident.priority,
            state=incident.state,
            category=incident.category,
            commander=incident.commander,
            escalation_level=incident.escalation_level,
            level_name=level_name(incident.escalation_level, policy),
            declared_at=incident.declared_at,
            channel_id=incident.channel_id,
            response=clock(incident, "response", policy=policy, now=now),
            resolution=clock(incident, "resolution", policy=policy, now=now),
        )
        for incident, _ in found
    ]
    return OpenIncidents(rows=rows, total=int(found[0][1]) if found else 0)


def next_change(rows: Iterable[OpenIncident], *, now: datetime) -> datetime | None:
    """The next moment a running clock of these becomes at risk or breached: a live page shows that
    without anything in the database changing first (the scheduler marks it a tick later)."""
    moments = [
        moment
        for row in rows
        for running in (row.response, row.resolution)
        if running.seconds_left is not None
        for moment in (running.warn_at, running.due_at)
        if moment > now
    ]
    return min(moments, default=None)


async def trend(session: AsyncSession, *, policy: Policy, now: datetime, days: int = 30) -> list[Day]:
    """Each UTC day of the last `days` (today the last), oldest first, each day present: the incidents
    declared that day, with their MTTA, MTTR and SLA compliance (store/metrics.py's figures)."""
    first = now.astimezone(UTC).date() - timedelta(days=days - 1)
    start = datetime.combine(first, datetime.min.time(), tzinfo=UTC)
    tallies = await metrics.by_day(session, policy=policy, start=start, end=now)
    shown = []
    for n in range(days):
        day = first + timedelta(days=n)
        tally = tallies.get(day, metrics.Tally())
        shown.append(
            Day(
                day=day,
                declared=tally.incidents,
                cancelled=tally.cancelled,
                mtta_seconds=tally.mtta_seconds,
                mttr_seconds=tally.mttr_seconds,
                sla_measured=tally.sla_measured,
                sla_met=tally.sla_met,
                sla_compliance=tally.sla_compliance,
            )
        )
    return shown


_PENDING_MESSAGE = (OutboxMessage.delivered_at.is_(None), OutboxMessage.failed_at.is_(None))
_PENDING_TIMER = (Timer.fired_at.is_(None), Timer.cancelled_at.is_(None))
# Each read through an index: the primary keys' last entries, the partial indexes of pending and failed
# messages (ix_outbox_ready, ix_outbox_failed) and of pending timers (ix_timers_due).
_FINGERPRINT = select(
    select(func.max(TimelineEntry.id)).scalar_subquery(),
    select(func.max(OutboxMessage.id)).scalar_subquery(),
    select(func.count()).select_from(OutboxMessage).where(*_PENDING_MESSAGE).scalar_subquery(),
    select(func.count())
    .select_from(OutboxMessage)
    .where(OutboxMessage.failed_at.is_not(None))
    .scalar_subquery(),
    select(func.min(Timer.due_at)).where(*_PENDING_TIMER).scalar_subquery(),
)


async def fingerprint(session: AsyncSession) -> tuple[object, ...]:
    """A value that changes whenever what the dashboard shows may have, read in one statement: every
    change to an incident writes a timeline row (store/timeline.py); Slack's replies (the channel, the
    card) arrive as outbox deliveries; the health figures are the outbox's and the timers' queues.
    What time alone changes (seconds left, a clock passing its warning) is `next_change`'s."""
    row = (await session.execute(_FINGERPRINT)).one()
    return tuple(str(value) if isinstance(value, datetime) else value for value in row)
