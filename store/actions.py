"""Action items: follow-ups from the review, numbered within their incident and tracked to done."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from store import timers
from store.change import ActionAdded, ActionDone
from store.errors import Field, Forbidden, InvalidInput, NotFound, TooLong
from store.models import ActionItem, Incident, State
from store.policy import Policy
from store.text import shown_length
from store.timeline import record

TEXT_MAX = 500
DUE_WITHIN = timedelta(days=36525)  # a hundred years


def due_date(text: str | None, *, policy: Policy, now: datetime) -> date:
    """`YYYY-MM-DD` (not in the past, in app.yaml's timezone), or `pir.due_after` from now."""
    today = now.astimezone(policy.timezone).date()
    if text is None:
        return (now + policy.pir_due_after).astimezone(policy.timezone).date()
    try:
        due = date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(
            field=Field.DUE, problem=f"due date {text!r} is not a date like 2026-12-01"
        ) from None
    if due < today:
        raise InvalidInput(field=Field.DUE, problem=f"due date {due.isoformat()} is in the past")
    if due > today + DUE_WITHIN:  # also keeps its reminders inside what a datetime can hold
        raise InvalidInput(
            field=Field.DUE, problem=f"due date {due.isoformat()} is more than a hundred years away"
        )
    return due


async def add(
    session: AsyncSession,
    incident: Incident,
    *,
    owner: str,
    text: str,
    due: date,
    policy: Policy,
    actor: str,
    now: datetime,
) -> ActionAdded:
    text = text.strip()
    if not text:
        raise InvalidInput(field=Field.ACTION, problem="say what is to be done")
    if shown_length(text) > TEXT_MAX:  # as a person reads it (store/text.py)
        raise TooLong(field=Field.ACTION, length=shown_length(text), limit=TEXT_MAX, text=text)
    if incident.state is State.CANCELLED:
        raise InvalidInput(field=Field.ACTION, problem=f"{policy.public_id(incident.number)} was cancelled")
    number = (
        int(
            await session.scalar(
                select(func.coalesce(func.max(ActionItem.number), 0)).where(
                    ActionItem.incident_number == incident.number
                )
            )
            or 0
        )
        + 1
    )
    item = ActionItem(
        incident_number=incident.number,
        number=number,
        owner=owner,
        text=text,
        due_on=due,
        created_at=now,
        created_by=actor,
    )
    session.add(item)
    await record(
        session,
        incident,
        at=now,
        actor=actor,
        kind="action",
        after=str(number),
        text=f"{owner}: {text} (due {due.isoformat()})",
    )
    await session.flush()
    await timers.replan_action(session, item, policy=policy, now=now)
    return ActionAdded(
        incident=incident, actor=actor, number=item.number, owner=item.owner, text=item.text, due=item.due_on
    )


async def get(session: AsyncSession, incident: Incident, number: int, *, policy: Policy) -> ActionItem:
    item = await session.scalar(
        select(ActionItem).where(ActionItem.incident_number == incident.number, ActionItem.number == number)
    )
    if item is None:
        raise NotFound(ref=f"Action {number} of {policy.public_id(incident.number)}")
    return item


async def complete(
    session: AsyncSession, incident: Incident, number: int, *, policy: Policy, actor: str, now: datetime
) -> ActionDone:
    item = await get(session, incident, number, policy=policy)
    if actor not in (item.owner, incident.commander) and not policy.is_admin(actor):
        raise Forbidden(
            incident_id=policy.public_id(incident.number),
            action=f"close action {number} of",
            commander=incident.commander,
            admins=sorted(policy.admins),
            owner=item.owner,
        )
    if item.done_at is not None:
        raise InvalidInput(field=Field.ACTION, problem=f"action {number} is already done")
    item.done_at, item.done_by = now, actor
    await timers.replan_action(session, item, policy=policy, now=now)
    await record(
        session, incident, at=now, actor=actor, kind="action_done", after=str(number), text=item.text
    )
    await session.flush()
    return ActionDone(
        incident=incident, actor=actor, number=item.number, owner=item.owner, text=item.text, due=item.due_on
    )


async def of_incident(session: AsyncSession, incident: Incident) -> list[ActionItem]:
    query = (
        select(ActionItem).where(ActionItem.incident_number == incident.number).order_by(ActionItem.number)
    )
    return list(await session.scalars(query))


async def open_of_owner(session: AsyncSession, owner: str, *, limit: int = 50) -> list[ActionItem]:
    query = (
        select(ActionItem)
        .where(ActionItem.owner == owner, ActionItem.done_at.is_(None))
        .order_by(ActionItem.due_on, ActionItem.incident_number, ActionItem.number)
        .limit(limit)
    )
    return list(await session.scalars(query))
