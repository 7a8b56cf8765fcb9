"""Durable timers: planned from an incident's row, fired exactly once.

`plan()` says which timers an incident should have right now; `replan()` makes the table agree
(cancelling what no longer applies, adding what is missing) and is called by every use case that
changes an incident. `due()` finds what has fallen due; `fire()` claims one timer with a conditional
UPDATE in the caller's transaction, under the incident's row lock, and applies its effect there too,
so a timer's message and its firing commit together or not at all, on any number of processes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from store import dialect, paging
from store.models import ActionItem, Incident, State, Timer, table_of
from store.policy import Policy
from store.timeline import SYSTEM_ACTOR, record

ACTION_REMINDER = "action_item_reminder"
AUTO_CLOSE = "auto_close"
MEETING_NOTICE = timedelta(hours=1)  # the review meeting's participants are reminded this long before
ACTIVE_STATES = frozenset({State.INVESTIGATING, State.IDENTIFIED, State.MONITORING})
CLOCKS = ("response", "resolution")


@dataclass(frozen=True)
class Planned:
    kind: str
    key: str
    due_at: datetime


@dataclass(frozen=True)
class Fired:
    """What a fired timer did, for the messages that tell people about it."""

    incident: Incident
    kind: str
    extra: dict[str, object]


def clock_due(incident: Incident, clock: str, *, policy: Policy) -> tuple[datetime, datetime]:
    """(warning time, due time) of the response or resolution clock, as the incident stands."""
    targets = policy.priorities[incident.priority]
    target = targets.response if clock == "response" else targets.resolution
    start = incident.declared_at
    if clock == "resolution":
        start += timedelta(seconds=incident.resolution_paused_seconds or 0)
    return start + target * policy.warn_at, start + target


def _clock_running(incident: Incident, clock: str) -> bool:
    if clock == "response":
        return incident.is_open and incident.acknowledged_at is None
    return incident.is_open


def review_owed(incident: Incident, policy: Policy) -> bool:
    return policy.priorities[incident.priority].pir_required and incident.pir_done_at is None


def auto_close_at(incident: Incident, policy: Policy) -> datetime | None:
    """When a resolved incident closes by itself (`closure.auto_close_after` after resolution); None while
    it must wait: its review is owed, or `closure.require_confirmation` and nobody has confirmed."""
    if (
        incident.state is not State.RESOLVED
        or incident.resolved_at is None
        or policy.auto_close_after is None
    ):
        return None
    if review_owed(incident, policy) or (policy.require_confirmation and incident.confirmed_at is None):
        return None
    return incident.resolved_at + policy.auto_close_after


def plan(incident: Incident, *, policy: Policy) -> list[Planned]:
    planned: list[Planned] = []
    for clock in CLOCKS:
        if not _clock_running(incident, clock):
            continue
        warn_at, due_at = clock_due(incident, clock, policy=policy)
        if getattr(incident, f"{clock}_breached_at") is None:
            if getattr(incident, f"{clock}_warned_at") is None:
                planned.append(Planned("sla_warning", clock, warn_at))
            planned.append(Planned("sla_breached", clock, due_at))

    levels = policy.escalation_levels
    if incident.is_open and incident.acknowledged_at is None and levels and incident.last_page_at:
        level = incident.escalation_level
        if level < len(levels) and incident.level_paged_at is not None:
            after = levels[level].after or timedelta(0)
            planned.append(Planned("escalation_page", str(level + 1), incident.level_paged_at + after))
        planned.append(Planned("escalation_repeat", str(level), incident.last_page_at + policy.repeat_every))

    if incident.state in ACTIVE_STATES:
        since = [t for t in (incident.active_since, incident.last_update_at, incident.last_nudge_at) if t]
        if since:
            every = policy.priorities[incident.priority].update_every
            planned.append(Planned("update_nudge", "", max(since) + every))

    if (
        incident.state is State.RESOLVED
        and incident.resolved_at
        and policy.priorities[incident.priority].pir_required
    ) and incident.pir_done_at is None:
        times = [t for t in (incident.resolved_at, incident.last_pir_reminder_at) if t is not None]
        planned.append(Planned("pir_reminder", "", max(times) + policy.pir_remind_every))
    if (closes := auto_close_at(incident, policy)) is not None:
        planned.append(Planned(AUTO_CLOSE, "", closes))
    if (
        incident.pir_meeting_at
        and incident.pir_meeting_reminded_at is None
        and incident.state is not State.CANCELLED
    ):
        planned.append(Planned("pir_meeting_reminder", "", incident.pir_meeting_at - MEETING_NOTICE))
    return planned


def overdue_from(item: ActionItem, *, policy: Policy) -> datetime:
    """The moment an item becomes overdue: the end of its due day, in app.yaml's timezone."""
    day_after = datetime.combine(item.due_on + timedelta(days=1), datetime.min.time(), tzinfo=policy.timezone)
    return day_after


def plan_action(item: ActionItem, *, policy: Policy) -> Planned | None:
    """An open action item is reminded once overdue, then every `pir.remind_every` until done."""
    if item.done_at is not None:
        return None
    due = overdue_from(item, policy=policy)
    if item.last_reminded_at is not None:
        due = max(due, item.last_reminded_at + policy.pir_remind_every)
    return Planned(ACTION_REMINDER, str(item.number), due)


async def replan_action(
    session: AsyncSession,
    item: ActionItem,
    *,
    policy: Policy,
    now: datetime,
    existing: list[Timer] | None = None,
) -> None:
    """Make the item's pending reminder match plan_action()."""
    wanted = plan_action(item, policy=policy)
    if existing is None:
        existing = list(await session.scalars(_PENDING_OF, {"number": item.incident_number}))
    mine = [t for t in existing if t.kind == ACTION_REMINDER and t.key == str(item.number)]
    kept = False
    for timer in mine:
        if wanted is not None and not kept and timer.due_at == wanted.due_at:
            kept = True
        else:
            timer.cancelled_at = now
            existing.remove(timer)
    if wanted is not None and not kept:
        timer = Timer(
            incident_number=item.incident_number,
            kind=wanted.kind,
            key=wanted.key,
            due_at=wanted.due_at,
            created_at=now,
        )
        session.add(timer)
        existing.append(timer)


def _pending() -> ColumnElement[bool]:
    return and_(Timer.fired_at.is_(None), Timer.cancelled_at.is_(None))


# An incident's pending timers, asked on every change: built once, values bound per call.
_PENDING_OF = select(Timer).where(Timer.incident_number == bindparam("number"), _pending())
_PENDING_ROWS = select(Timer.id, Timer.kind, Timer.key, Timer.due_at).where(
    Timer.incident_number == bindparam("number"), _pending()
)
_CANCEL = (
    update(Timer)
    .where(Timer.id.in_(bindparam("ids", expanding=True)))
    .values(cancelled_at=bindparam("at"))
    .execution_options(synchronize_session=False)
)


_INSERT = insert(table_of(Timer))


async def replan(
    session: AsyncSession,
    incident: Incident,
    *,
    policy: Policy,
    now: datetime,
    existing: list[Timer] | None = None,
    fresh: bool = False,
) -> None:
    """Make the incident's pending timers match plan(); call it with the incident locked.

    `existing`, when given, is the incident's pending timers as already loaded; it is updated in place.
    `fresh`: the incident was declared in this transaction, so it has none yet."""
    wanted = {(p.kind, p.key, p.due_at): p for p in plan(incident, policy=policy)}
    if existing is not None:
        _replan_loaded(session, incident, wanted, existing, now=now)
        return
    # Nobody holds this incident's timers as objects: rows in, one UPDATE and one INSERT out.
    rows = [] if fresh else list(await session.execute(_PENDING_ROWS, {"number": incident.number}))
    have, cancel = set(), []
    for row in rows:
        if row.kind == ACTION_REMINDER:  # action items plan their own
            continue
        key = (row.kind, row.key, row.due_at)
        if key in wanted and key not in have:
            have.add(key)
        else:
            cancel.append(row.id)
    if cancel:
        await session.execute(_CANCEL, {"ids": cancel, "at": now})
    new = _missing(incident, wanted, have, now=now)
    if new:
        await session.execute(_INSERT, new)


def _replan_loaded(
    session: AsyncSession,
    incident: Incident,
    wanted: dict[Any, Planned],
    existing: list[Timer],
    *,
    now: datetime,
) -> None:
    have = set()
    for timer in [t for t in existing if t.kind != ACTION_REMINDER]:
        key = (timer.kind, timer.key, timer.due_at)
        if key in wanted and key not in have:
            have.add(key)
        else:
            timer.cancelled_at = now
            existing.remove(timer)
    for values in _missing(incident, wanted, have, now=now):
        timer = Timer(**values)
        session.add(timer)
        existing.append(timer)


def _missing(
    incident: Incident, wanted: dict[Any, Planned], have: set[Any], *, now: datetime
) -> list[dict[str, Any]]:
    return [
        dict(incident_number=incident.number, kind=p.kind, key=p.key, due_at=p.due_at, created_at=now)
        for key, p in wanted.items()
        if key not in have
    ]


async def pending_for(session: AsyncSession, *, numbers: list[int]) -> dict[int, list[Timer]]:
    """Pending timers of these incidents, by incident."""
    found: dict[int, list[Timer]] = {number: [] for number in numbers}
    query = select(Timer).where(Timer.incident_number.in_(numbers), _pending())
    for timer in await session.scalars(query):
        if timer.incident_number is not None:
            found[timer.incident_number].append(timer)
    return found


async def due(session: AsyncSession, *, now: datetime, limit: int) -> list[tuple[int, int]]:
    """(timer id, incident number) of pending timers due by `now`, oldest first (uses ix_timers_due)."""
    query = (
        select(Timer.id, Timer.incident_number)
        .where(_pending(), Timer.due_at <= now, Timer.incident_number.is_not(None))
        .order_by(Timer.due_at, Timer.id)
        .limit(limit)
    )
    rows = await session.execute(query)
    return [(row.id, row.incident_number) for row in rows if row.incident_number is not None]


@dataclass(frozen=True)
class Claimed:
    id: int
    incident_number: int | None  # None: a timer of no incident (the weekly digest)
    kind: str
    key: str
    due_at: datetime


async def claim(session: AsyncSession, *, ids: list[int], now: datetime) -> list[Claimed]:
    """Mark these timers fired, except those someone already fired or cancelled: one UPDATE ... RETURNING.
    Returns what this caller claimed, oldest first; under the caller's transaction, nobody else can."""
    result = await session.execute(
        update(Timer)
        .where(Timer.id.in_(ids), _pending())
        .values(fired_at=now)
        .returning(Timer.id, Timer.incident_number, Timer.kind, Timer.key, Timer.due_at)
        .execution_options(synchronize_session=False)
    )
    claimed = [Claimed(r.id, r.incident_number, r.kind, r.key, r.due_at) for r in result]
    return sorted(claimed, key=lambda c: (c.due_at, c.id))


async def fire(
    session: AsyncSession,
    timer: Claimed,
    incident: Incident,
    *,
    policy: Policy,
    now: datetime,
    pending: list[Timer] | None = None,
) -> Fired | None:
    """Apply a claimed timer's effect to the (locked) incident. None when it had nothing to say."""
    if timer.kind == ACTION_REMINDER:
        return await _fire_action(session, timer, incident, policy=policy, now=now, pending=pending)
    if Planned(timer.kind, timer.key, timer.due_at) not in plan(incident, policy=policy):
        return None  # the incident moved on since it was planned; replan has its successor
    if timer.kind == AUTO_CLOSE:  # the caller closes it (store/closure.py), which replans
        return Fired(incident, AUTO_CLOSE, {})
    fired: Fired | None = None
    if timer.kind == "sla_warning":
        warn_at, due_at = clock_due(incident, timer.key, policy=policy)
        setattr(incident, f"{timer.key}_warned_at", now)
        if now < due_at:  # a warning whose breach is due too is stale: the breach says it all
            fired = Fired(incident, "sla_warning", {"clock": timer.key, "due_at": due_at.isoformat()})
    elif timer.kind == "sla_breached":
        _, due_at = clock_due(incident, timer.key, policy=policy)
        setattr(incident, f"{timer.key}_breached_at", now)
        await record(
            session, incident, at=now, actor=SYSTEM_ACTOR, kind="sla_breached", before=None, after=timer.key
        )
        fired = Fired(incident, "sla_breached", {"clock": timer.key, "due_at": due_at.isoformat()})
    elif timer.kind in ("escalation_page", "escalation_repeat"):
        repeat = timer.kind == "escalation_repeat"
        before = incident.escalation_level
        level = before if repeat else int(timer.key)
        if not repeat:
            # The next level counts from when this one was due, so pages missed while no process ran
            # still come in order; repeats count from now, so a late page is not followed by a burst.
            incident.escalation_level, incident.level_paged_at = level, timer.due_at
        incident.last_page_at = now
        await record(
            session,
            incident,
            at=now,
            actor=SYSTEM_ACTOR,
            kind="escalation",
            before=str(before),
            after=str(level),
        )
        await paging.resolve(session, incident, policy=policy, level=level, now=now)
        fired = Fired(incident, "escalation", {"level": level, "repeat": repeat})
    elif timer.kind == "update_nudge":
        incident.last_nudge_at = now
        fired = Fired(incident, "update_nudge", {})
    elif timer.kind == "pir_meeting_reminder" and incident.pir_meeting_at is not None:
        incident.pir_meeting_reminded_at = now
        fired = Fired(incident, "pir_meeting_reminder", {"meeting_at": incident.pir_meeting_at.isoformat()})
    elif timer.kind == "pir_reminder":
        incident.last_pir_reminder_at = now
        due_at = (incident.resolved_at or now) + policy.pir_due_after
        fired = Fired(incident, "pir_reminder", {"due_at": due_at.isoformat(), "overdue": now >= due_at})
    await replan(session, incident, policy=policy, now=now, existing=pending)
    return fired


async def _fire_action(
    session: AsyncSession,
    timer: Claimed,
    incident: Incident,
    *,
    policy: Policy,
    now: datetime,
    pending: list[Timer] | None,
) -> Fired | None:
    item = await session.scalar(
        select(ActionItem).where(
            ActionItem.incident_number == incident.number, ActionItem.number == int(timer.key)
        )
    )
    if item is None or plan_action(item, policy=policy) != Planned(timer.kind, timer.key, timer.due_at):
        return None
    item.last_reminded_at = now
    await replan_action(session, item, policy=policy, now=now, existing=pending)
    extra = {"action": item.number, "due": item.due_on.isoformat(), "owner": item.owner, "text": item.text}
    return Fired(incident, ACTION_REMINDER, extra)


def reset_clocks_for_priority(incident: Incident, *, policy: Policy, now: datetime) -> None:
    """A priority change re-plans every clock from the declaration with the new targets: warnings and
    breaches whose new moment is still ahead are forgotten, so they come again at the right time."""
    for clock in CLOCKS:
        warn_at, due_at = clock_due(incident, clock, policy=policy)
        if due_at > now:
            setattr(incident, f"{clock}_breached_at", None)
        if warn_at > now:
            setattr(incident, f"{clock}_warned_at", None)


async def pending(session: AsyncSession, *, number: int | None = None, limit: int = 500) -> list[Timer]:
    query = select(Timer).where(_pending()).order_by(Timer.due_at, Timer.id).limit(limit)
    if number is not None:
        query = query.where(Timer.incident_number == number)
    return list(await session.scalars(query))


async def oldest_due(session: AsyncSession, *, now: datetime) -> datetime | None:
    query = select(Timer.due_at).where(_pending(), Timer.due_at <= now).order_by(Timer.due_at).limit(1)
    return await session.scalar(query)


async def due_global(session: AsyncSession, *, kind: str, now: datetime) -> list[Timer]:
    """Pending timers of `kind` that belong to no incident and are due."""
    query = select(Timer).where(
        Timer.incident_number.is_(None), Timer.kind == kind, _pending(), Timer.due_at <= now
    )
    return list(await session.scalars(query.order_by(Timer.due_at)))


async def plan_global(session: AsyncSession, *, kind: str, due_at: datetime, now: datetime) -> None:
    """Make sure a timer of `kind` exists for `due_at`; a no-op if any process already made it."""
    values = dict(incident_number=None, kind=kind, key=due_at.isoformat(), due_at=due_at, created_at=now)
    await session.execute(
        dialect.insert_or_ignore(
            session, Timer, values, unique=["kind", "key"], where=Timer.incident_number.is_(None)
        )
    )
