"""Modals: the declare, resolve and update forms, and what happens when they are submitted."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from handlers import flows, ids, text
from handlers.deps import Deps
from handlers.flows import UseCaseContext
from handlers.replies import answer
from store import service
from store.errors import DomainError, Field, Forbidden, InvalidInput, TooLong
from store.machine import Action
from store.models import Incident
from store.policy import IMPACTS, PRIORITIES, URGENCIES

Ack = Callable[..., Awaitable[None]]

# Which modal block shows the error for a field the store names.
_FIELD_BLOCKS = {
    "title": ids.TITLE,
    "description": ids.DESCRIPTION,
    "category": ids.CATEGORY,
    "priority": ids.PRIORITY,
    "impact": ids.IMPACT,
    "urgency": ids.URGENCY,
    "summary": ids.SUMMARY,
    "cause code": ids.CAUSE,
    "resolution code": ids.RESOLUTION,
    "update": ids.UPDATE_TEXT,
    "detected": ids.DETECTED,
    "when": ids.DETECTED,
}


def declare_view(
    deps: Deps, *, origin_channel: str, title: str = "", description: str = ""
) -> dict[str, Any]:
    """The declare form; `title` and `description` fill it in (from a message), as a person reads them."""
    return deps.renderer.json(
        "declare_modal.json.j2",
        ids=ids,
        title=title,
        description=description,
        policy=deps.policy,
        impacts=IMPACTS,
        urgencies=URGENCIES,
        priorities=PRIORITIES,
        metadata=json.dumps({"channel": origin_channel}),
    )


def resolve_view(deps: Deps, incident: Incident) -> dict[str, Any]:
    return deps.renderer.json(
        "resolve_modal.json.j2",
        **deps.composer.context(incident),
        metadata=json.dumps({"incident": incident.number}),
    )


def update_view(deps: Deps, incident: Incident) -> dict[str, Any]:
    return deps.renderer.json(
        "update_modal.json.j2",
        **deps.composer.context(incident),
        metadata=json.dumps({"incident": incident.number}),
    )


def check_resolvable(incident: Incident, *, actor: str, deps: Deps) -> None:
    """Refuse before opening the resolve form, rather than after someone has filled it in."""
    if actor != incident.commander and not deps.policy.is_admin(actor):
        raise Forbidden(
            incident_id=deps.policy.public_id(incident.number),
            action="resolve",
            commander=incident.commander,
            admins=sorted(deps.policy.admins),
        )
    if not incident.is_open:
        service.ensure_open(incident, action="resolve", policy=deps.policy)


def values(view: dict[str, Any]) -> dict[str, str | None]:
    """Flatten view.state.values to {block_id: value}; block and action ids are the same here.
    Anything that is not a string where Slack puts one counts as left empty, so the store's own
    checks answer it in the form."""
    found: dict[str, str | None] = {}
    state = view.get("state")
    blocks = state.get("values") if isinstance(state, dict) else None
    for block_id, actions in (blocks if isinstance(blocks, dict) else {}).items():
        for element in actions.values() if isinstance(actions, dict) else ():
            if not isinstance(element, dict):
                continue
            option = element.get("selected_option")
            value = option.get("value") if isinstance(option, dict) else element.get("value")
            found[block_id] = value if isinstance(value, str) else None
    return found


def metadata(view: dict[str, Any]) -> dict[str, Any]:
    raw = view.get("private_metadata")
    try:
        data = json.loads(raw) if isinstance(raw, str) and raw else {}
    except (ValueError, RecursionError):  # Slack returns what we set; anything else was made up
        return {}
    return data if isinstance(data, dict) else {}


def _user(body: dict[str, Any]) -> str:
    user = body.get("user")
    user_id = user.get("id") if isinstance(user, dict) else None
    if not isinstance(user_id, str) or not user_id:
        raise InvalidInput(field=Field.USER, problem="Slack did not say who submitted this form")
    return user_id


async def _answer(ack: Ack, error: Exception, *, deps: Deps, default_block: str) -> None:
    """The answer shown in the form, beside the field the store names; too long a text is answered with
    its length alone, since the person still has their text in the field."""
    field = getattr(error, "field", None) if isinstance(error, DomainError) else None
    block = _FIELD_BLOCKS.get(field or "", default_block)
    if isinstance(error, TooLong):
        message = f"{error.length:,} characters; the limit is {error.limit:,}."
    else:
        message = answer(error, source="view", renderer=deps.renderer)
    await ack(response_action="errors", errors={block: message[:2000]})


async def on_view_declare(ack: Ack, body: dict[str, Any], view: dict[str, Any], deps: Deps) -> None:
    form = values(view)
    try:
        await flows.declare(
            deps,
            title=text.from_input(form.get(ids.TITLE)),  # form values arrive raw: encoded once
            description=text.from_input(form.get(ids.DESCRIPTION)),
            impact=form.get(ids.IMPACT),
            urgency=form.get(ids.URGENCY),
            category=form.get(ids.CATEGORY),
            priority=form.get(ids.PRIORITY),
            detected=form.get(ids.DETECTED) or None,
            reporter=_user(body),
            origin_channel=_channel(view),
        )
    except Exception as error:  # whatever failed, the answer is shown in the form
        await _answer(ack, error, deps=deps, default_block=ids.TITLE)
        return
    await ack()


async def on_view_resolve(ack: Ack, body: dict[str, Any], view: dict[str, Any], deps: Deps) -> None:
    form = values(view)
    try:
        await flows.change(
            deps,
            UseCaseContext.of(deps, actor=_user(body)),
            _ref(view, deps),
            service.apply,
            Action.RESOLVE,
            summary=text.from_input(form.get(ids.SUMMARY)),
            cause=form.get(ids.CAUSE),
            resolution=form.get(ids.RESOLUTION),
        )
    except Exception as error:  # whatever failed, the answer is shown in the form
        await _answer(ack, error, deps=deps, default_block=ids.SUMMARY)
        return
    await ack()


async def on_view_update(ack: Ack, body: dict[str, Any], view: dict[str, Any], deps: Deps) -> None:
    form = values(view)
    try:
        await flows.change(
            deps,
            UseCaseContext.of(deps, actor=_user(body)),
            _ref(view, deps),
            service.post_update,
            text.from_input(form.get(ids.UPDATE_TEXT)),
        )
    except Exception as error:  # whatever failed, the answer is shown in the form
        await _answer(ack, error, deps=deps, default_block=ids.UPDATE_TEXT)
        return
    await ack()


def _ref(view: dict[str, Any], deps: Deps) -> str:
    number = metadata(view).get("incident")
    if not isinstance(number, int) or isinstance(number, bool):
        raise InvalidInput(field=Field.INCIDENT, problem="this form has lost its incident; open it again")
    return deps.policy.public_id(number)


def _channel(view: dict[str, Any]) -> str | None:
    channel = metadata(view).get("channel")
    return channel if isinstance(channel, str) and channel else None
