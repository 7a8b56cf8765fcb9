"""Use cases. Each takes the caller's session (one transaction) and keyword-only arguments."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from sqlalchemy import bindparam, func, inspect, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from store import actions, knowledge, machine, paging, timers
from store.change import (
    STATE_CHANGES,
    Declared,
    DetectedAt,
    Escalated,
    Note,
    OpenAction,
    PirDone,
    PirScheduled,
    PriorityChanged,
    RoleAssigned,
    StateChanged,
    StatusUpdate,
)
from store.errors import (
    AlreadyAcknowledged,
    AmbiguousChannel,
    Field,
    Forbidden,
    IllegalTransition,
    InvalidInput,
    NoIncidentHere,
    NotFound,
    PirRequired,
    TooLong,
)
from store.machine import Action
from store.models import OPEN_STATES, Incident, State, TimelineEntry, table_of
from store.policy import IMPACTS, PRIORITIES, ROLES, URGENCIES, Policy
from store.text import shown_length
from store.timeline import SYSTEM_ACTOR, record, visible

# Limits count characters as a person reads them (store/text.py): `R&amp;D` is three, a mention its name.
TITLE_MAX = 150
TITLE_STORED_MAX = 800  # the column: a title is kept as Slack encodes it, longer than it reads
TEXT_MAX = 2000
REASON_MAX = 500
LINK_MAX = 500  # and its column
STORED_TIMES = 5  # without a column's own limit, the stored form may be this many times the limit


def check_length(field: Field, text: str, limit: int, *, stored: int | None = None) -> str:
    """`text`, stripped, if it reads as at most `limit` characters and its stored form fits in `stored`."""
    text = text.strip()
    shown, room = shown_length(text), stored or STORED_TIMES * limit
    if shown > limit or len(text) > room:
        length, limit = (shown, limit) if shown > limit else (len(text), room)
        raise TooLong(field=field, length=length, limit=limit, text=text)
    return text


def parse_ref(ref: str, *, policy: Policy) -> int | None:
    match = re.fullmatch(rf"{re.escape(policy.incident_prefix)}-(\d{{1,9}})", ref, re.IGNORECASE)
    return int(match.group(1)) if match else None


# Built once, with the values bound per call: SQLAlchemy derives each statement's cache key once.
_BY_NUMBER = select(Incident).where(Incident.number == bindparam("number"))
_BY_CHANNEL = (
    select(Incident)
    .where(Incident.channel_id == bindparam("channel"))
    .order_by(Incident.number.desc())
    .limit(20)
)
_LOOKUPS = {
    False: (_BY_NUMBER, _BY_CHANNEL),
    # SELECT ... FOR UPDATE on PostgreSQL; SQLite's write transaction already holds the database's lock
    True: (_BY_NUMBER.with_for_update(), _BY_CHANNEL.with_for_update()),
}


async def find(
    session: AsyncSession,
    *,
    policy: Policy,
    ref: str | None = None,
    channel: str | None = None,
    lock: bool = False,
) -> Incident:
    """The incident named by `ref`, else the one whose channel this is."""
    by_number, by_channel = _LOOKUPS[lock]
    if ref is not None:
        number = parse_ref(ref, policy=policy)
        found = None if number is None else await session.scalar(by_number, {"number": number})
        if found is None:
            raise NotFound(ref=ref)
        return found
    if channel is None:
        raise NoIncidentHere()
    return _one_of(list(await session.scalars(by_channel, {"channel": channel})), policy=policy)


def _one_of(rows: list[Any], *, policy: Policy) -> Any:
    """A channel's incident: its only live one, else its latest."""
    if not rows:
        raise NoIncidentHere()
    live = [row for row in rows if row.state not in (State.CLOSED, State.CANCELLED)]
    if len(live) > 1:
        raise AmbiguousChannel(ids=[policy.public_id(row.number) for row in live])
    return live[0] if live else rows[0]


def require_commander(incident: Incident, action: str, actor: str, policy: Policy) -> None:
    if actor in (incident.commander, SYSTEM_ACTOR) or policy.is_admin(actor):  # Tocsin: a cleared alert
        return
    raise Forbidden(
        incident_id=policy.public_id(incident.number),
        action=action,
        commander=incident.commander,
        admins=sorted(policy.admins),
    )


def require_state(incident: Incident, allowed: frozenset[State], action: str, policy: Policy) -> None:
    if incident.state not in allowed:
        raise IllegalTransition(
            incident_id=policy.public_id(incident.number),
            state=incident.state.value,
            action=action,
            allowed=[a.value for a in machine.allowed_actions(incident.state)],
        )


def choose(field: Field, value: str, choices: tuple[str, ...] | list[str]) -> str:
    if value not in choices:
        raise InvalidInput(field=field, problem=f"unknown {field.value} {value!r}", choices=list(choices))
    return value


def default_category(policy: Policy) -> str:
    return "other" if "other" in policy.categories else policy.categories[-1]


async def declare(
    session: AsyncSession,
    *,
    policy: Policy,
    title: str,
    reporter: str,
    now: datetime,
    description: str = "",
    category: str | None = None,
    priority: str | None = None,
    impact: str | None = None,
    urgency: str | None = None,
    origin_channel: str | None = None,
    detected: str | None = None,
    detected_at: datetime | None = None,
    alert_source: str | None = None,
) -> Declared:
    """Open an incident. `detected` is a local time typed by a person, `detected_at` an aware datetime (an
    alert's start); `alert_source` names the monitoring source when it, not a person, is the reporter."""
    title = check_length(Field.TITLE, title, TITLE_MAX, stored=TITLE_STORED_MAX)
    detected_at = _detection(detected, detected_at, policy=policy, now=now)
    if not title:
        raise InvalidInput(field=Field.TITLE, problem="a title is required")
    description = check_length(Field.DESCRIPTION, description, TEXT_MAX)
    category = choose(Field.CATEGORY, category or default_category(policy), policy.categories)
    priority = _priority(priority, impact, urgency, policy=policy)
    earlier = await knowledge.similar(session, title, limit=3)  # done incidents: never this one
    pages = bool(policy.escalation_levels)
    incident = Incident(
        title=title,
        description=description,
        category=category,
        impact=impact,
        urgency=urgency,
        priority=priority,
        state=State.TRIAGE,
        reporter=reporter,
        origin_channel_id=origin_channel,
        channel_id=None if policy.per_incident else origin_channel,
        declared_at=now,
        detected_at=detected_at,
        escalation_level=1 if pages else 0,
        level_paged_at=now if pages else None,
        last_page_at=now if pages else None,
        reopen_count=0,
        resolution_paused_seconds=0,
        alert_source=alert_source,
        alert_count=1 if alert_source else 0,
        similar=[knowledge.summary_of(i, policy=policy) for i in earlier] or None,
    )
    await _insert(session, incident)
    await record(
        session, incident, at=now, actor=reporter, kind="declared", after=State.TRIAGE.value, text=title
    )
    if pages:
        await record(session, incident, at=now, actor=SYSTEM_ACTOR, kind="escalation", after="1")
        await paging.resolve(session, incident, policy=policy, level=1, now=now)
    await timers.replan(session, incident, policy=policy, now=now, fresh=True)
    return Declared(incident=incident, actor=reporter)


def _detection(
    detected: str | None, detected_at: datetime | None, *, policy: Policy, now: datetime
) -> datetime | None:
    """When the incident began: `detected` as typed, else `detected_at`; aware and not in the future."""
    if detected:
        detected_at = parse_local_time(detected, policy=policy)
    if detected_at is not None and detected_at.tzinfo is None:
        raise InvalidInput(field=Field.DETECTED, problem="the detection time has no time zone")
    if detected_at is not None and detected_at > now:
        shown = detected.strip() if detected else detected_at.isoformat()
        raise InvalidInput(field=Field.DETECTED, problem=f"{shown} is in the future")
    return detected_at


def _priority(priority: str | None, impact: str | None, urgency: str | None, *, policy: Policy) -> str:
    """The priority given, else the one the policy's matrix gives impact and urgency, else the default."""
    if impact is not None:
        choose(Field.IMPACT, impact, IMPACTS)
    if urgency is not None:
        choose(Field.URGENCY, urgency, URGENCIES)
    if priority is None and impact is not None and urgency is not None:
        priority = policy.priority_for(impact, urgency)
    return choose(Field.PRIORITY, (priority or policy.default_priority).upper(), PRIORITIES)


# A new row's columns the use case leaves unset, with their defaults: set on the object before the INSERT,
# so that after it every column is loaded and nothing is fetched again behind the caller's back.
_UNSET = {
    column.key: getattr(column.default, "arg", None)
    for column in table_of(Incident).columns
    if not column.primary_key
}


async def _insert(session: AsyncSession, incident: Incident) -> None:
    """INSERT the new incident now (the ORM's unit of work), so that its number is known."""
    unset = inspect(incident).unloaded
    for key, default in _UNSET.items():
        if key in unset:
            setattr(incident, key, default)
    session.add(incident)
    await session.flush()


Extra = dict[str, Any]  # facts of the action's own StateChanged type (store/change.py), by field


@dataclass(frozen=True)
class Request:
    """What `apply` was asked to do, besides which incident: the input its action's effect reads."""

    action: Action
    policy: Policy
    actor: str
    now: datetime
    reason: str | None = None
    summary: str | None = None
    cause: str | None = None
    resolution: str | None = None


@dataclass(frozen=True)
class Effect:
    """What an action does besides moving the state.

    `check` runs before anything changes: it refuses bad input or a missing precondition with a domain
    error, and gives the text the timeline and the Change carry. `change` runs once the incident is in its
    new state: it sets the fields the action stamps and gives the Change's extra facts."""

    check: Callable[[Incident, Request], str | None]
    change: Callable[[AsyncSession, Incident, Request, str | None], Awaitable[Extra]]


def _no_input(incident: Incident, request: Request) -> None:
    return None


def _summary_and_codes(incident: Incident, request: Request) -> str:
    text = check_length(Field.SUMMARY, request.summary or "", TEXT_MAX)
    if not text:
        raise InvalidInput(field=Field.SUMMARY, problem="a resolution summary is required")
    choose(Field.CAUSE_CODE, request.cause or "", request.policy.cause_codes)
    choose(Field.RESOLUTION_CODE, request.resolution or "", request.policy.resolution_codes)
    return text


def _reason(incident: Incident, request: Request) -> str:
    text = check_length(Field.REASON, request.reason or "", REASON_MAX)
    if not text:
        raise InvalidInput(field=Field.REASON, problem=f"a reason is required to {request.action.value}")
    return text


def _review_if_required(incident: Incident, request: Request) -> None:
    """A priority that requires a post-incident review closes only once it is done."""
    if request.policy.priorities[incident.priority].pir_required and not incident.pir_done_at:
        raise PirRequired(incident_id=request.policy.public_id(incident.number), priority=incident.priority)


async def _nothing(session: AsyncSession, incident: Incident, request: Request, text: str | None) -> Extra:
    return {}


async def _acknowledge(
    session: AsyncSession, incident: Incident, request: Request, text: str | None
) -> Extra:
    incident.acknowledged_at, incident.acknowledged_by = request.now, request.actor
    incident.commander = incident.commander or request.actor
    incident.active_since = request.now
    return {}


async def _identify(session: AsyncSession, incident: Incident, request: Request, text: str | None) -> Extra:
    incident.identified_at = incident.identified_at or request.now
    return {}


async def _monitor(session: AsyncSession, incident: Incident, request: Request, text: str | None) -> Extra:
    incident.mitigated_at = request.now
    return {}


async def _resolve(session: AsyncSession, incident: Incident, request: Request, text: str | None) -> Extra:
    incident.cause_code = request.cause or ""  # as checked against the policy's codes
    incident.resolution_code = request.resolution or ""
    incident.summary = text
    incident.resolved_at = request.now
    return {}


async def _reopen(session: AsyncSession, incident: Incident, request: Request, text: str | None) -> Extra:
    now = request.now
    incident.reopen_count += 1
    if incident.resolved_at is not None:  # time spent resolved does not count against resolution
        paused = int((now - incident.resolved_at).total_seconds())
        incident.resolution_paused_seconds = (incident.resolution_paused_seconds or 0) + max(paused, 0)
    incident.resolved_at = None
    incident.active_since, incident.last_nudge_at, incident.last_pir_reminder_at = now, None, None
    incident.confirmed_at = incident.confirmed_by = None  # it was not restored after all
    return {}


async def _close(session: AsyncSession, incident: Incident, request: Request, text: str | None) -> Extra:
    """Closed, with the action items still open, for the messages that list them."""
    incident.closed_at = request.now
    items = await actions.of_incident(session, incident)
    return {
        "open_actions": tuple(
            OpenAction(number=i.number, owner=i.owner, text=i.text, due=i.due_on)
            for i in items
            if i.done_at is None
        )
    }


async def _cancel(session: AsyncSession, incident: Incident, request: Request, text: str | None) -> Extra:
    incident.cancelled_at = request.now
    return {}


# Each action's effect, beside machine.TRANSITIONS (which says where it may be taken and where it leads).
EFFECTS: Mapping[Action, Effect] = MappingProxyType(
    {
        Action.ACK: Effect(_no_input, _acknowledge),
        Action.INVESTIGATE: Effect(_no_input, _nothing),
        Action.IDENTIFY: Effect(_no_input, _identify),
        Action.MONITOR: Effect(_no_input, _monitor),
        Action.RESOLVE: Effect(_summary_and_codes, _resolve),
        Action.REOPEN: Effect(_reason, _reopen),
        Action.CLOSE: Effect(_review_if_required, _close),
        Action.CANCEL: Effect(_reason, _cancel),
    }
)


def _permitted_target(
    incident: Incident, action: Action, *, policy: Policy, actor: str, permitted: bool
) -> State:
    """The state `action` leads to from the incident's, if the table allows it there and `actor` may."""
    if action is Action.ACK and incident.acknowledged_at is not None:
        raise AlreadyAcknowledged(
            policy.public_id(incident.number), incident.acknowledged_by, incident.acknowledged_at
        )
    after = machine.target(incident.state, action)
    if after is None:
        raise IllegalTransition(
            incident_id=policy.public_id(incident.number),
            state=incident.state.value,
            action=action.value,
            allowed=[a.value for a in machine.allowed_actions(incident.state)],
        )
    if action in machine.COMMANDER_ACTIONS and not permitted:
        require_commander(incident, action.value, actor, policy)
    return after


async def apply(
    session: AsyncSession,
    incident: Incident,
    action: Action,
    *,
    policy: Policy,
    actor: str,
    now: datetime,
    reason: str | None = None,
    summary: str | None = None,
    cause: str | None = None,
    resolution: str | None = None,
    permitted: bool = False,
) -> StateChanged:
    """Move the incident along the transition table, or refuse and change nothing.

    `permitted`: the caller has already checked that `actor` may (store/closure.py lets the reporter
    reopen and, by confirming, close).

    The statements, given the incident locked by `find(lock=True)` (SELECT ... FOR UPDATE): the action's
    own (a close reads the open action items), then UPDATE incidents SET <the changed columns>, version
    WHERE number AND version (the flush below), INSERT INTO timeline, and `timers.replan`'s SELECT of the
    pending timers with an UPDATE of those cancelled and an INSERT of those due."""
    after = _permitted_target(incident, action, policy=policy, actor=actor, permitted=permitted)
    request = Request(
        action=action,
        policy=policy,
        actor=actor,
        now=now,
        reason=reason,
        summary=summary,
        cause=cause,
        resolution=resolution,
    )
    effect = EFFECTS[action]
    text = effect.check(incident, request)
    before, incident.state = incident.state, after
    extra = await effect.change(session, incident, request, text)
    await session.flush()  # the incident's UPDATE, refused if its version moved on (StaleDataError)
    await record(
        session,
        incident,
        at=now,
        actor=actor,
        kind=action.value,
        before=before.value,
        after=after.value,
        text=text,
    )
    await timers.replan(session, incident, policy=policy, now=now)
    return STATE_CHANGES[action](
        incident=incident, actor=actor, before=before.value, after=after.value, text=text, **extra
    )


async def change_priority(
    session: AsyncSession,
    incident: Incident,
    priority: str,
    *,
    policy: Policy,
    actor: str,
    now: datetime,
) -> PriorityChanged:
    priority = choose(Field.PRIORITY, priority.upper(), PRIORITIES)
    require_state(incident, machine.PRIORITY_STATES, "priority", policy)
    require_commander(incident, "change priority", actor, policy)
    before = incident.priority
    if before == priority:
        raise InvalidInput(
            field=Field.PRIORITY, problem=f"{policy.public_id(incident.number)} is already {priority}"
        )
    incident.priority = priority
    timers.reset_clocks_for_priority(incident, policy=policy, now=now)
    await record(session, incident, at=now, actor=actor, kind="priority", before=before, after=priority)
    await timers.replan(session, incident, policy=policy, now=now)
    return PriorityChanged(incident=incident, actor=actor, before=before, after=priority)


async def assign(
    session: AsyncSession,
    incident: Incident,
    role: str,
    user: str,
    *,
    policy: Policy,
    actor: str,
    now: datetime,
) -> RoleAssigned:
    role = choose(Field.ROLE, role.lower(), ROLES)
    require_state(incident, machine.ASSIGN_STATES, "assign", policy)
    require_commander(incident, "assign roles", actor, policy)
    before = getattr(incident, role)
    setattr(incident, role, user)
    await record(session, incident, at=now, actor=actor, kind="role", before=before, after=user, text=role)
    await session.flush()
    return RoleAssigned(incident=incident, actor=actor, role=role, before=before, after=user)


async def post_update(
    session: AsyncSession,
    incident: Incident,
    text: str,
    *,
    policy: Policy,
    actor: str,
    now: datetime,
) -> StatusUpdate:
    text = check_length(Field.UPDATE, text, TEXT_MAX)
    if not text:
        raise InvalidInput(field=Field.UPDATE, problem="the update has no text")
    require_state(incident, machine.UPDATE_STATES, "update", policy)
    incident.last_update_at = now
    await record(session, incident, at=now, actor=actor, kind="update", text=text)
    await timers.replan(session, incident, policy=policy, now=now)
    return StatusUpdate(incident=incident, actor=actor, text=text)


async def add_note(
    session: AsyncSession,
    incident: Incident,
    text: str,
    *,
    policy: Policy,
    actor: str,
    now: datetime,
) -> Note:
    text = check_length(Field.NOTE, text, TEXT_MAX)
    if not text:
        raise InvalidInput(field=Field.NOTE, problem="the note has no text")
    await record(session, incident, at=now, actor=actor, kind="note", text=text)
    return Note(incident=incident, actor=actor, text=text)


async def escalate(
    session: AsyncSession,
    incident: Incident,
    *,
    policy: Policy,
    actor: str,
    now: datetime,
    reason: str = "",
) -> Escalated:
    """Page the next escalation level now; at the last level, page it again."""
    reason = check_length(Field.REASON, reason, REASON_MAX)
    require_state(incident, machine.ESCALATE_STATES, "escalate", policy)
    if not policy.escalation_levels:
        raise InvalidInput(field=Field.ESCALATION, problem="no escalation levels are configured")
    before = incident.escalation_level
    level = min(before + 1, len(policy.escalation_levels))
    incident.escalation_level, incident.level_paged_at, incident.last_page_at = level, now, now
    await record(
        session,
        incident,
        at=now,
        actor=actor,
        kind="escalation",
        before=str(before),
        after=str(level),
        text=reason or None,
    )
    await paging.resolve(session, incident, policy=policy, level=level, now=now)
    await timers.replan(session, incident, policy=policy, now=now)
    return Escalated(
        incident=incident, actor=actor, level=level, repeat=level == before, reason=reason or None
    )


async def pir_done(
    session: AsyncSession,
    incident: Incident,
    link: str,
    *,
    policy: Policy,
    actor: str,
    now: datetime,
) -> PirDone:
    link = check_length(Field.LINK, link, LINK_MAX, stored=LINK_MAX)
    if not re.fullmatch(r"<?https?://[^\s<>|]+(\|[^>]*)?>?", link):
        raise InvalidInput(field=Field.LINK, problem="give the PIR's link, starting with https://")
    link = link.strip("<>").split("|", 1)[0]
    require_state(incident, machine.PIR_STATES, "pir done", policy)
    incident.pir_link, incident.pir_done_at = link, now
    await record(session, incident, at=now, actor=actor, kind="pir", after="done", text=link)
    await timers.replan(session, incident, policy=policy, now=now)
    return PirDone(incident=incident, actor=actor, link=link)


async def save_slack_refs(session: AsyncSession, *, number: int, **refs: str) -> None:
    """Remember where Slack put things: channel_id, channel_name, card_ts, announcement_ts, the
    confirmation prompt's ts, the channel topic last set, and the digests of the card and the
    announcement as last delivered."""
    allowed = {
        *("channel_id", "channel_name", "card_ts", "announcement_ts", "confirmation_ts", "topic"),
        *("card_digest", "announcement_digest"),
    }
    values = {key: value for key, value in refs.items() if key in allowed}
    if values:
        await session.execute(update(Incident).where(Incident.number == number).values(**values))


async def list_open(session: AsyncSession, *, limit: int = 50) -> list[Incident]:
    query = (
        select(Incident)
        .where(Incident.state.in_(list(OPEN_STATES)))
        .order_by(Incident.priority, Incident.number)
        .limit(limit)
    )
    return list(await session.scalars(query))


async def count_open(session: AsyncSession) -> int:
    query = select(func.count()).select_from(Incident).where(Incident.state.in_(list(OPEN_STATES)))
    return int(await session.scalar(query) or 0)


async def timeline(session: AsyncSession, incident: Incident, *, limit: int = 200) -> list[TimelineEntry]:
    """The visible timeline (store/timeline.py): in the time things happened, edited text as edited,
    without the entries removed from it and the rows that record those edits and removals."""
    return [entry for _, entry in await visible(session, incident, limit=limit)]


def ensure_open(incident: Incident, *, action: str, policy: Policy) -> None:
    """Refuse `action` unless the incident is still open."""
    require_state(incident, OPEN_STATES, action, policy)


def ensure_state_allows_update(incident: Incident, *, policy: Policy) -> None:
    require_state(incident, machine.UPDATE_STATES, "update", policy)


async def schedule_pir(
    session: AsyncSession, incident: Incident, when: str, *, policy: Policy, actor: str, now: datetime
) -> PirScheduled:
    """Record the review meeting at `YYYY-MM-DD HH:MM` in app.yaml's timezone."""
    at = parse_local_time(when, policy=policy)
    if at <= now:
        raise InvalidInput(field=Field.WHEN, problem=f"{when.strip()} is in the past")
    require_state(incident, machine.PIR_STATES, "pir schedule", policy)
    before = incident.pir_meeting_at
    incident.pir_meeting_at, incident.pir_meeting_reminded_at = at, None
    await record(session, incident, at=now, actor=actor, kind="pir_scheduled", after=at.isoformat()[:64])
    await timers.replan(session, incident, policy=policy, now=now)
    return PirScheduled(incident=incident, actor=actor, meeting_at=at, before=before)


async def set_detected(
    session: AsyncSession, incident: Incident, when: str, *, policy: Policy, actor: str, now: datetime
) -> DetectedAt:
    """When the incident really began, if before it was declared (`YYYY-MM-DD HH:MM`, app.yaml's timezone)."""
    at = parse_local_time(when, policy=policy)
    if at > incident.declared_at:
        raise InvalidInput(field=Field.DETECTED, problem=f"{when.strip()} is after the incident was declared")
    before = incident.detected_at
    incident.detected_at = at
    await record(session, incident, at=now, actor=actor, kind="detected", after=at.isoformat()[:64])
    return DetectedAt(incident=incident, actor=actor, detected_at=at, before=before)


def parse_local_time(when: str, *, policy: Policy) -> datetime:
    try:
        local = datetime.strptime(when.strip(), "%Y-%m-%d %H:%M")
    except ValueError:
        raise InvalidInput(
            field=Field.WHEN, problem=f"{when.strip()!r} is not a time like 2026-12-01 14:30"
        ) from None
    try:
        return local.replace(tzinfo=policy.timezone).astimezone(UTC)
    except OverflowError:  # year 1 or 9999, moved past what a datetime holds
        raise InvalidInput(field=Field.WHEN, problem=f"{when.strip()} is beyond the calendar") from None
