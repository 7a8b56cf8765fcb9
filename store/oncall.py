"""On-call use cases: overrides, cover requests, who is on call, and the hand-offs between people.

Who is on call is computed (store/rota.py) from app.yaml's schedules and the overrides kept here. A
hand-off is a durable timer (kind `handoff:<schedule>`, one per moment), planned ahead by the sweep and
claimed once; what it announces is checked against `schedule_states`, the person last announced, under
that row's lock, so that a hand-off happens once whichever replica fires it, and one that fell due while
no process ran happens when one starts again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from store import dialect, overrides, rota, timers
from store.errors import CoverTaken, Field, InvalidInput, NotOnRota
from store.models import CoverRequest, ScheduleOverride, ScheduleState, Timer
from store.policy import Policy

HANDOFF = "handoff:"  # a hand-off timer's kind is this and the schedule's name
LONGEST = timedelta(days=366)  # an override or a cover longer than this is a mistyped year
UPCOMING = 3  # hand-offs `/incident oncall` and `tocsin oncall` show


@dataclass(frozen=True)
class OnCall:
    """A schedule as `/incident oncall` shows it: who is on call, the next hand-offs, and the overrides
    and cover requests still to come."""

    schedule: rota.Schedule
    now: rota.Shift
    next: list[rota.Shift]
    overrides: list[ScheduleOverride]
    covers: list[CoverRequest]


@dataclass(frozen=True)
class Handoff:
    """The person on call of `schedule` changed: `incoming` is on call now (its user None: nobody is)."""

    schedule: rota.Schedule
    outgoing: str | None
    incoming: rota.Shift
    due_at: datetime


def span(typed: str, schedule: rota.Schedule, *, now: datetime) -> tuple[datetime, datetime]:
    """`YYYY-MM-DD HH:MM YYYY-MM-DD HH:MM` (or `now` for the first), on the schedule's clock, as UTC: a
    start already past is now, since who was on call then cannot change."""
    words = typed.split()
    zone = schedule.timezone.key
    if words[:1] == ["now"]:
        words = [*now.astimezone(schedule.timezone).strftime("%Y-%m-%d %H:%M").split(), *words[1:]]
        starts_now = True
    else:
        starts_now = False
    if len(words) != 4:
        raise InvalidInput(
            field=Field.WHEN,
            problem=f"give the start and the end as YYYY-MM-DD HH:MM, in {zone}: e.g. 2026-12-10 09:00 2026-12-10 18:00",
        )
    try:
        start = rota.parse_local(" ".join(words[:2]), schedule.timezone)
        end = rota.parse_local(" ".join(words[2:]), schedule.timezone)
    except ValueError as error:
        raise InvalidInput(field=Field.WHEN, problem=str(error)) from None
    start = now if starts_now else start
    if end <= start:
        raise InvalidInput(
            field=Field.WHEN,
            problem=f"the end ({' '.join(words[2:])}) is not after the start ({' '.join(words[:2])})",
        )
    if end <= now:
        raise InvalidInput(field=Field.WHEN, problem=f"{' '.join(words[2:])} ({zone}) is in the past")
    if end - start > LONGEST:
        raise InvalidInput(field=Field.WHEN, problem="that is longer than a year: check the dates")
    return max(start, now), end


R = TypeVar("R", ScheduleOverride, CoverRequest)


async def _locked(
    session: AsyncSession, model: type[R], number: int, policy: Policy
) -> tuple[R | None, rota.Schedule | None]:
    """Row `number`, locked, and its schedule (None for one app.yaml no longer has)."""
    row = await session.get(model, number, with_for_update=True)
    return row, policy.schedules.get(row.schedule) if row is not None else None


def _may_change(schedule: rota.Schedule, actor: str, policy: Policy, action: str) -> None:
    if actor not in schedule.participants and not policy.is_admin(actor):
        raise NotOnRota(schedule=schedule.name, action=action, admins=sorted(policy.admins))


async def add_override(
    session: AsyncSession, *, policy: Policy, schedule: str, user: str, when: str, actor: str, now: datetime
) -> tuple[rota.Schedule, ScheduleOverride]:
    """`user` on call of `schedule` for the span typed in `when`; it beats the rota and earlier overrides."""
    found = overrides.schedule_named(policy, schedule)
    _may_change(found, actor, policy, "override")
    starts_at, ends_at = span(when, found, now=now)
    row = ScheduleOverride(
        schedule=found.name, user=user, starts_at=starts_at, ends_at=ends_at, created_at=now, created_by=actor
    )
    session.add(row)
    await session.flush()
    return found, row


async def remove_override(
    session: AsyncSession, *, policy: Policy, number: int, actor: str, now: datetime
) -> tuple[rota.Schedule, ScheduleOverride]:
    row, schedule = await _locked(session, ScheduleOverride, number, policy)
    if row is None or schedule is None or row.removed_at is not None or row.ends_at <= now:
        raise InvalidInput(
            field=Field.OVERRIDE,
            problem=f"there is no override {number} to remove (`/incident oncall <schedule>` lists them)",
        )
    if actor != row.user:
        _may_change(schedule, actor, policy, "remove overrides of")
    row.removed_at, row.removed_by = now, actor
    return schedule, row


async def request_cover(
    session: AsyncSession, *, policy: Policy, schedule: str, when: str, actor: str, now: datetime
) -> tuple[rota.Schedule, CoverRequest]:
    """Ask the schedule's channel for someone to be on call instead, for the span typed in `when`."""
    found = overrides.schedule_named(policy, schedule)
    _may_change(found, actor, policy, "ask for cover on")
    if found.channel is None:
        raise InvalidInput(
            field=Field.SCHEDULE,
            problem=f"{found.name} has no channel to ask in (set schedules.{found.name}.channel in app.yaml)",
        )
    starts_at, ends_at = span(when, found, now=now)
    row = CoverRequest(
        schedule=found.name, starts_at=starts_at, ends_at=ends_at, requested_by=actor, created_at=now
    )
    session.add(row)
    await session.flush()
    return found, row


async def take_cover(
    session: AsyncSession, *, policy: Policy, number: int, actor: str, now: datetime
) -> tuple[rota.Schedule, CoverRequest, ScheduleOverride]:
    """`actor` takes cover request `number`: the first to press becomes the override, once."""
    row, schedule = await _locked(session, CoverRequest, number, policy)
    if row is None or schedule is None:
        raise InvalidInput(field=Field.COVER, problem="this cover request is no longer open")
    if row.covered_by is not None:
        raise CoverTaken(schedule=row.schedule, by=row.covered_by, actor=actor)
    if row.cancelled_at is not None or row.ends_at <= now:
        raise InvalidInput(field=Field.COVER, problem="this cover request was cancelled or has ended")
    if row.requested_by == actor:
        raise InvalidInput(field=Field.COVER, problem="you asked for this cover: someone else must take it")
    claimed = await session.execute(
        update(CoverRequest)
        .where(CoverRequest.id == number, CoverRequest.covered_by.is_(None))
        .values(covered_by=actor, covered_at=now)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        raise InvalidInput(field=Field.COVER, problem="someone else took it a moment ago")
    row.covered_by, row.covered_at = actor, now
    override = ScheduleOverride(
        schedule=row.schedule,
        user=actor,
        starts_at=max(row.starts_at, now),
        ends_at=row.ends_at,
        created_at=now,
        created_by=actor,
        cover_id=row.id,
    )
    session.add(override)
    await session.flush()
    return schedule, row, override


async def cancel_cover(
    session: AsyncSession, *, policy: Policy, number: int, actor: str, now: datetime
) -> tuple[rota.Schedule, CoverRequest]:
    row, schedule = await _locked(session, CoverRequest, number, policy)
    if row is None or schedule is None or row.cancelled_at is not None or row.ends_at <= now:
        raise InvalidInput(field=Field.COVER, problem=f"there is no open cover request {number}")
    if row.covered_by is not None:
        raise CoverTaken(schedule=row.schedule, by=row.covered_by, actor=actor)
    if actor != row.requested_by:
        _may_change(schedule, actor, policy, "cancel cover requests of")
    row.cancelled_at = now
    return schedule, row


async def listing(session: AsyncSession, *, policy: Policy, schedule: str, now: datetime) -> OnCall:
    found = overrides.schedule_named(policy, schedule)
    rows = await overrides.rows(session, schedules=[found.name], ending_after=now - overrides.LOOK_BACK)
    given = [overrides.as_override(row) for row in rows]
    covers = await session.scalars(
        select(CoverRequest)
        .where(
            CoverRequest.schedule == found.name,
            CoverRequest.cancelled_at.is_(None),
            CoverRequest.covered_by.is_(None),
            CoverRequest.ends_at > now,
        )
        .order_by(CoverRequest.starts_at, CoverRequest.id)
    )
    return OnCall(
        schedule=found,
        now=rota.on_call(found, given, now),
        next=rota.handoffs(found, given, after=now, count=UPCOMING),
        overrides=[row for row in rows if row.ends_at > now],
        covers=list(covers),
    )


@dataclass(frozen=True)
class Plan:
    """What a sweep must write about hand-offs: timers to add, schedules seen for the first time (and
    who is on call of each), and whether any hand-off timer is due. Empty: the sweep writes nothing."""

    timers: list[tuple[str, datetime]]
    first_sight: dict[str, str | None]
    due: bool

    def __bool__(self) -> bool:
        return bool(self.timers or self.first_sight or self.due)


async def plan_handoffs(session: AsyncSession, *, policy: Policy, now: datetime) -> Plan:
    """Read what is missing: the next two hand-offs of every schedule as timers, and a hand-off now for a
    schedule whose person on call differs from the one last announced (an override taken off, app.yaml
    edited). A schedule seen for the first time records who is on call without a notice: they were on
    call before Tocsin knew."""
    if not policy.schedules:
        return Plan([], {}, False)
    found = await overrides.of(session, policy.schedules, now=now)
    states = {s.schedule: s for s in await session.scalars(select(ScheduleState))}
    pending = await session.execute(select(Timer.kind, Timer.key, Timer.due_at).where(*_PENDING_HANDOFFS))
    have, due = set(), False
    for kind, key, due_at in pending:
        have.add((kind, key))
        due = due or due_at <= now
    wanted: list[tuple[str, datetime]] = []
    first: dict[str, str | None] = {}
    for name, schedule in policy.schedules.items():
        moments = [shift.starts_at for shift in rota.handoffs(schedule, found[name], after=now, count=2)]
        current = rota.on_call(schedule, found[name], now).user
        state = states.get(name)
        if state is None:
            first[name] = current
        elif state.on_call != current:
            moments.append(now)
            due = True
        wanted += [(HANDOFF + name, at) for at in moments if (HANDOFF + name, at.isoformat()) not in have]
    return Plan(wanted, first, due)


async def apply_plan(session: AsyncSession, plan: Plan, *, now: datetime) -> None:
    for name, user in plan.first_sight.items():
        values = {"schedule": name, "on_call": user, "since": now}
        await session.execute(
            dialect.insert_or_ignore(session, ScheduleState, values, unique=["schedule"], where=None)
        )
    for kind, at in plan.timers:
        await timers.plan_global(session, kind=kind, due_at=at, now=now)


async def fire_handoffs(session: AsyncSession, *, policy: Policy, now: datetime) -> list[Handoff]:
    """Claim the hand-off timers due, and hand off each schedule whose person on call is no longer the
    one last announced. Several timers of a schedule due at once (a process was down) make one hand-off,
    to whoever is on call now; a timer whose moment changed nothing (an override moved it) retires."""
    due = await session.scalars(select(Timer.id).where(*_PENDING_HANDOFFS, Timer.due_at <= now))
    ids = list(due)
    if not ids:
        return []
    claimed = await timers.claim(session, ids=ids, now=now)
    due_at: dict[str, datetime] = {}
    for timer in claimed:  # oldest first: a schedule's hand-off is dated by its first missed moment
        due_at.setdefault(timer.kind.removeprefix(HANDOFF), timer.due_at)
    names = sorted(name for name in due_at if name in policy.schedules)
    found = await overrides.of(session, names, now=now)
    handoffs: list[Handoff] = []
    for name in names:  # in name order, as every process locks them, so two sweeps never deadlock
        incoming = rota.on_call(policy.schedules[name], found[name], now)
        state = await session.get(ScheduleState, name, with_for_update=True, populate_existing=True)
        if state is None:  # planned before its first sight was recorded: nobody was announced yet
            state = ScheduleState(schedule=name, on_call=None, since=now)
            session.add(state)
        if state.on_call == incoming.user:
            continue
        outgoing, state.on_call, state.since = state.on_call, incoming.user, now
        handoffs.append(Handoff(policy.schedules[name], outgoing, incoming, due_at[name]))
    return handoffs


_PENDING_HANDOFFS = (
    Timer.incident_number.is_(None),
    Timer.kind.startswith(HANDOFF),
    Timer.fired_at.is_(None),
    Timer.cancelled_at.is_(None),
)


FEED = timedelta(weeks=8)  # how far ahead a schedule's calendar feed reaches


async def feed(
    session: AsyncSession, *, policy: Policy, schedule: str, now: datetime
) -> tuple[rota.Schedule, list[rota.Shift]]:
    """The shifts of `schedule` from the one on now (from its start) to FEED ahead, overrides applied;
    stretches when nobody is on call are left out."""
    found = overrides.schedule_named(policy, schedule)
    given = (await overrides.of(session, [found.name], now=now))[found.name]
    start = rota.on_call(found, given, now).starts_at
    return found, [shift for shift in rota.shifts(found, given, start=start, end=now + FEED) if shift.user]
