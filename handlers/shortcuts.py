"""Shortcuts: add a message to an incident's timeline from any channel, and declare an incident from a
message or from anywhere.

A shortcut's trigger is good for three seconds, so the ack goes first and the modal follows it; a
message is read again from Slack only where its payload is not enough (a capture from a modal)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from handlers import events, text, views
from handlers.deps import Deps
from store import capture, service
from store.models import Incident

Ack = Callable[..., Awaitable[None]]

ADD_TO_TIMELINE = "timeline_add"  # message shortcut: Add to incident timeline
DECLARE_FROM_MESSAGE = "declare_from_message"  # message shortcut: Declare incident from message
DECLARE = "declare_incident"  # global shortcut: Declare incident
PICK_VIEW = "timeline_add_pick"  # the modal that asks which open incident
PICK = "incident"  # its select's block and action id
TITLE_MAX = 150  # the declare form's title field


def _who(body: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    """The user, the channel and the message of a message shortcut."""
    user = (body.get("user") or {}).get("id") or ""
    channel = (body.get("channel") or {}).get("id") or ""
    message = body.get("message")
    return str(user), str(channel), message if isinstance(message, dict) else {}


async def on_shortcut_add_to_timeline(ack: Ack, body: dict[str, Any], deps: Deps) -> None:
    await ack()
    user, channel, message = _who(body)
    ts, answer_to = str(message.get("ts") or ""), str(body.get("response_url") or "")
    here = await events.incident_of(deps, channel)
    async with deps.db.read() as session:
        choices = [] if here else await service.list_open(session, limit=100)
    if here is not None:
        deps.spawn(
            events.captured(
                deps, channel, ts, mark=capture.shortcut_mark(user), by=user, message=message, incident=here
            )
        )
        await _tell(deps, answer_to, f"Added to {deps.policy.public_id(here.number)}'s timeline.")
    elif not choices:
        await _tell(deps, answer_to, "There is no open incident to add this message to.")
    else:
        view = _pick_view(deps, choices, channel=channel, ts=ts, answer_to=answer_to)
        await deps.slack.open_view(trigger_id=str(body.get("trigger_id") or ""), view=view)


async def on_view_pick(ack: Ack, body: dict[str, Any], view: dict[str, Any], deps: Deps) -> None:
    """The incident chosen for a message captured from another channel."""
    meta, chosen = views.metadata(view), views.values(view).get(PICK)
    number = int(chosen) if chosen and chosen.isdigit() else None
    async with deps.db.read() as session:
        incident = await _open(session, number)
    if incident is None:
        await ack(response_action="errors", errors={PICK: "Choose one of the open incidents."})
        return
    await ack()
    user = (body.get("user") or {}).get("id") or ""
    channel, ts = str(meta.get("channel") or ""), str(meta.get("ts") or "")
    deps.spawn(
        _capture_and_tell(
            deps, incident, channel, ts, user=str(user), answer_to=str(meta.get("response_url") or "")
        )
    )


async def on_shortcut_declare_from_message(ack: Ack, body: dict[str, Any], deps: Deps) -> None:
    await ack()
    _, channel, message = _who(body)
    said = text.to_plain(str(message.get("text") or "")).strip()
    link = await deps.slack.permalink(channel=channel, ts=str(message.get("ts") or ""))
    title = (said.splitlines() or [""])[0][:TITLE_MAX]
    description = "\n\n".join(part for part in (said, f"From {link}" if link else "") if part)[:2000]
    view = views.declare_view(deps, origin_channel=channel, title=title, description=description)
    await deps.slack.open_view(trigger_id=str(body.get("trigger_id") or ""), view=view)


async def on_shortcut_declare(ack: Ack, body: dict[str, Any], deps: Deps) -> None:
    await ack()
    await deps.slack.open_view(
        trigger_id=str(body.get("trigger_id") or ""), view=views.declare_view(deps, origin_channel="")
    )


async def _open(session: Any, number: int | None) -> Incident | None:
    incident = None if number is None else await session.get(Incident, number)
    return incident if incident is not None and incident.is_open else None


async def _capture_and_tell(
    deps: Deps, incident: Incident, channel: str, ts: str, *, user: str, answer_to: str
) -> None:
    done = await events.captured(
        deps, channel, ts, mark=capture.shortcut_mark(user), by=user, incident=incident
    )
    public_id = deps.policy.public_id(incident.number)
    await _tell(
        deps,
        answer_to,
        f"Added to {public_id}'s timeline."
        if done
        else f"Could not read that message to add it to {public_id}'s timeline: Tocsin may not see that channel.",
    )


async def _tell(deps: Deps, response_url: str, said: str) -> None:
    if response_url:
        await deps.slack.respond(response_url=response_url, text=said)


def _pick_view(
    deps: Deps, choices: list[Incident], *, channel: str, ts: str, answer_to: str
) -> dict[str, Any]:
    return deps.renderer.json(
        "timeline_pick_modal.json.j2",
        incidents=[
            (str(i.number), deps.policy.public_id(i.number), i.priority, text.to_plain(i.title))
            for i in choices
        ],
        callback_id=PICK_VIEW,
        pick=PICK,
        metadata=json.dumps({"channel": channel, "ts": ts, "response_url": answer_to}),
    )
