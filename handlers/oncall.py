"""On call, from Slack: `/incident oncall`, `override` and `cover`, the I'll cover button, and what a
hand-off posts. Each command makes one store call in one transaction; its messages go to the outbox in
that transaction (store/oncall.py decides who may, and what is refused)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from handlers import ids
from handlers.deps import Deps
from handlers.grammar import Call
from handlers.render import Message, Renderer
from handlers.replies import answer
from store import oncall, outbox
from store.models import ScheduleOverride
from store.operations import Edit, Operation, Post, SetUsergroup
from store.policy import Policy

log = logging.getLogger("tocsin.handlers")
HANDOFF_EVENT = "oncall_handoff"  # message metadata of a hand-off notice
COVER_EVENT = "oncall_cover_request"  # ... of a cover request
OVERRIDE_EVENT = "oncall_override"  # ... and of the DM telling someone of an override made for them


def _ok(text: str) -> Message:
    return Message(f":white_check_mark: {text}")


async def do_oncall(call: Call, *, schedule: str | None) -> Message:
    policy, now = call.deps.policy, call.deps.clock()
    names = [schedule] if schedule else sorted(policy.schedules)
    async with call.deps.db.read() as session:
        shown = [await oncall.listing(session, policy=policy, schedule=name, now=now) for name in names]
    return call.message("oncall_show.json.j2", schedules=shown, everything=schedule is None)


async def _change(call: Call, use_case: Callable[..., Awaitable[Any]], **given: Any) -> Any:
    """One store use case, in one write transaction, by who typed the command, now; an override that
    someone made or removed for another person is told to that person, in the same transaction."""
    deps, now, actor = call.deps, call.deps.clock(), call.invocation.user
    async with deps.db.write() as session:
        found, row = await use_case(session, policy=deps.policy, actor=actor, now=now, **given)
        if isinstance(row, ScheduleOverride) and row.user != actor:
            removed = row.removed_at is not None
            told = call.message(
                "oncall_override_notice.json.j2", schedule=found, override=row, actor=actor, removed=removed
            )
            metadata = {
                "event_type": OVERRIDE_EVENT,
                "event_payload": {"schedule": found.name, "override": row.id},
            }
            dm = Post(channel=row.user, text=told.text, blocks=told.blocks, metadata=metadata)
            outbox.enqueue(session, dm, now=now, incident_number=None)
    deps.wake_relay()
    return found, row


async def do_override(call: Call, *, schedule: str, person: str, when: str) -> Message:
    found, row = await _change(call, oncall.add_override, schedule=schedule, user=person, when=when)
    span = call.deps.renderer.span(row.starts_at, row.ends_at, found.timezone)
    return _ok(f"Override {row.id}: <@{person}> is on call of {found.name} {span}.")


async def do_override_remove(call: Call, *, number: int) -> Message:
    found, row = await _change(call, oncall.remove_override, number=number)
    span = call.deps.renderer.span(row.starts_at, row.ends_at, found.timezone)
    return _ok(f"Override {row.id} of {found.name} (<@{row.user}>, {span}) is removed.")


async def do_cover(call: Call, *, schedule: str, when: str) -> Message:
    deps, now = call.deps, call.deps.clock()
    async with deps.db.write() as session:
        found, row = await oncall.request_cover(
            session, policy=deps.policy, schedule=schedule, when=when, actor=call.invocation.user, now=now
        )
        message = call.message("oncall_cover_requested.json.j2", schedule=found, cover=row, ids=ids)
        metadata = {"event_type": COVER_EVENT, "event_payload": {"schedule": found.name, "cover": row.id}}
        request = Post(channel=found.channel, text=message.text, blocks=message.blocks, metadata=metadata)
        outbox.enqueue(session, request, now=now, incident_number=None)
    deps.wake_relay()
    span = deps.renderer.span(row.starts_at, row.ends_at, found.timezone)
    return _ok(f"Cover request {row.id} is posted in <#{found.channel}>: {found.name} {span}.")


async def do_cover_cancel(call: Call, *, number: int) -> Message:
    found, row = await _change(call, oncall.cancel_cover, number=number)
    return _ok(f"Cover request {row.id} of {found.name} is cancelled.")


Ack = Callable[..., Awaitable[None]]


async def on_action_take_cover(ack: Ack, body: dict[str, Any], deps: Deps) -> None:
    await ack()
    await deps.after_ack(_take_cover(body, deps))


async def _take_cover(body: dict[str, Any], deps: Deps) -> None:
    user, number, channel, ts = _cover_click(body)
    if user is None or number is None:
        log.warning("a cover click without its request or user", extra={"event": "click_malformed"})
        return
    try:
        said = await _cover(deps, user=user, number=number, message=(channel, ts))
    except Exception as error:  # the person must hear that nothing happened, whatever went wrong
        said = answer(error, source="click", renderer=deps.renderer, cover=number)
    if isinstance(body.get("response_url"), str):
        await deps.slack.respond(response_url=body["response_url"], text=said)


async def _cover(deps: Deps, *, user: str, number: int, message: tuple[str | None, str | None]) -> str:
    now = deps.clock()
    async with deps.db.write() as session:
        found, row, override = await oncall.take_cover(
            session, policy=deps.policy, number=number, actor=user, now=now
        )
        channel, ts = message
        if channel and ts:  # the request shows who took it, and loses its button
            taken = deps.renderer.message("oncall_cover_taken.json.j2", schedule=found, cover=row)
            metadata = {"event_type": COVER_EVENT, "event_payload": {"schedule": found.name, "cover": row.id}}
            edit = Edit(channel=channel, ts=ts, text=taken.text, blocks=taken.blocks, metadata=metadata)
            outbox.enqueue(session, edit, now=now, incident_number=None)
    deps.wake_relay()
    span = deps.renderer.span(override.starts_at, override.ends_at, found.timezone)
    return f":white_check_mark: You cover {found.name} {span} (override {override.id}). Thank you!"


def _cover_click(body: dict[str, Any]) -> tuple[str | None, int | None, str | None, str | None]:
    """(who clicked, the cover request's number, the request message's channel and ts)."""
    actions, user = body.get("actions"), body.get("user")
    action = actions[0] if isinstance(actions, list) and actions and isinstance(actions[0], dict) else {}
    value = action.get("value")
    number = int(value) if isinstance(value, str) and value.isascii() and value.isdigit() else None
    user_id = user.get("id") if isinstance(user, dict) and isinstance(user.get("id"), str) else None
    container = body.get("container")
    where: dict[str, Any] = container if isinstance(container, dict) else {}
    channel, ts = where.get("channel_id"), where.get("message_ts")
    return (
        user_id,
        number,
        channel if isinstance(channel, str) else None,
        ts if isinstance(ts, str) else None,
    )


def handoff_operations(handoff: oncall.Handoff, *, renderer: Renderer, policy: Policy) -> list[Operation]:
    """What a hand-off posts: a notice in the schedule's channel (the incoming person invited first, so
    the mention reaches them), a direct message to them, and the schedule's user group set to them."""
    schedule, incoming = handoff.schedule, handoff.incoming
    facts = {"schedule": schedule, "handoff": handoff, "policy": policy}
    payload = {"schedule": schedule.name, "on_call": incoming.user, "previous": handoff.outgoing}
    metadata = {"event_type": HANDOFF_EVENT, "event_payload": {**payload, "until": _iso(incoming.ends_at)}}
    ops: list[Operation] = []
    if schedule.channel:
        notice = renderer.message("oncall_handoff.json.j2", **facts)
        invite = [incoming.user] if incoming.user else []
        ops.append(
            Post(
                channel=schedule.channel,
                text=notice.text,
                blocks=notice.blocks,
                metadata=metadata,
                invite=invite,
            )
        )
    if incoming.user:
        dm = renderer.message("oncall_handoff_dm.json.j2", **facts)
        ops.append(Post(channel=incoming.user, text=dm.text, blocks=dm.blocks, metadata=metadata))
        if schedule.usergroup:
            ops.append(
                SetUsergroup(usergroup=schedule.usergroup, schedule=schedule.name, users=[incoming.user])
            )
    return ops


def _iso(moment: datetime) -> str:
    return moment.isoformat()
