"""Modals: the declare, resolve and update forms, and what happens when they are submitted."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from handlers import flows, ids
from handlers.deps import Deps
from handlers.replies import describe
from store import service
from store.errors import DomainError, Forbidden, InvalidInput, TooLong
from store.machine import Action
from store.models import Incident
from store.policy import IMPACTS, PRIORITIES, URGENCIES

Ack = Callable[..., Awaitable[None]]
log = logging.getLogger("tocsin.handlers")

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


def declare_view(deps: Deps, *, origin_channel: str) -> dict[str, Any]:
    return deps.renderer.json(
        "declare_modal.json.j2",
        ids=ids,
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
    """Flatten view.state.values to {block_id: value}; block and action ids are the same here."""
    found: dict[str, str | None] = {}
    for block_id, actions in view.get("state", {}).get("values", {}).items():
        for element in actions.values():
            if "selected_option" in element:
                option = element["selected_option"]
                found[block_id] = option["value"] if option else None
            else:
                found[block_id] = element.get("value")
    return found


def _metadata(view: dict[str, Any]) -> dict[str, Any]:
    try:
        data = json.loads(view.get("private_metadata") or "{}")
    except json.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


async def _answer(ack: Ack, error: DomainError, *, deps: Deps, default_block: str) -> None:
    field = getattr(error, "field", None)
    block = _FIELD_BLOCKS.get(field or "", default_block)
    message = (
        describe(error, renderer=deps.renderer)
        if not isinstance(error, TooLong)
        else f"{error.length:,} characters; the limit is {error.limit:,}."
    )
    await ack(response_action="errors", errors={block: message[:2000]})


async def on_view_declare(ack: Ack, body: dict[str, Any], view: dict[str, Any], deps: Deps) -> None:
    form = values(view)
    try:
        await flows.declare(
            deps,
            title=form.get(ids.TITLE) or "",
            description=form.get(ids.DESCRIPTION) or "",
            impact=form.get(ids.IMPACT),
            urgency=form.get(ids.URGENCY),
            category=form.get(ids.CATEGORY),
            priority=form.get(ids.PRIORITY),
            detected=form.get(ids.DETECTED) or None,
            reporter=body["user"]["id"],
            origin_channel=_metadata(view).get("channel"),
        )
    except (DomainError, SQLAlchemyError, OSError) as error:
        await _answer(ack, error, deps=deps, default_block=ids.TITLE)
        return
    await ack()


async def on_view_resolve(ack: Ack, body: dict[str, Any], view: dict[str, Any], deps: Deps) -> None:
    form, actor = values(view), body["user"]["id"]
    try:
        await flows.change_incident(
            deps,
            ref=_ref(view, deps),
            channel=None,
            use_case=lambda s, i: service.apply(
                s,
                i,
                Action.RESOLVE,
                policy=deps.policy,
                actor=actor,
                now=deps.clock(),
                summary=form.get(ids.SUMMARY) or "",
                cause=form.get(ids.CAUSE),
                resolution=form.get(ids.RESOLUTION),
            ),
        )
    except (DomainError, SQLAlchemyError, OSError) as error:
        await _answer(ack, error, deps=deps, default_block=ids.SUMMARY)
        return
    await ack()


async def on_view_update(ack: Ack, body: dict[str, Any], view: dict[str, Any], deps: Deps) -> None:
    form, actor = values(view), body["user"]["id"]
    try:
        await flows.change_incident(
            deps,
            ref=_ref(view, deps),
            channel=None,
            use_case=lambda s, i: service.post_update(
                s, i, form.get(ids.UPDATE_TEXT) or "", policy=deps.policy, actor=actor, now=deps.clock()
            ),
        )
    except (DomainError, SQLAlchemyError, OSError) as error:
        await _answer(ack, error, deps=deps, default_block=ids.UPDATE_TEXT)
        return
    await ack()


def _ref(view: dict[str, Any], deps: Deps) -> str:
    number = _metadata(view).get("incident")
    if not isinstance(number, int):
        raise InvalidInput(field="incident", problem="this form has lost its incident; open it again")
    return deps.policy.public_id(number)
