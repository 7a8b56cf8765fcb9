"""Buttons on the incident card. Acked at once, before their work: a click's answer is the card Slack
shows changed, or a private answer through the response_url, never the ack."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from handlers import flows, views
from handlers.deps import Deps
from handlers.flows import UseCaseContext
from handlers.replies import answer
from store import closure, service
from store.machine import Action

Ack = Callable[..., Awaitable[None]]
# A button's work: given who clicked, the incident's id and the payload; returns the private answer, if any.
Work = Callable[[Deps, UseCaseContext, str, dict[str, Any]], Awaitable[str | None]]
log = logging.getLogger("tocsin.handlers")


def _target(body: dict[str, Any], deps: Deps) -> tuple[str, str] | None:
    """(incident ref, clicking user) from a block_actions payload; None when it names neither (Slack
    always sends both: only a made-up payload lacks them)."""
    actions, user = body.get("actions"), body.get("user")
    action = actions[0] if isinstance(actions, list) and actions and isinstance(actions[0], dict) else {}
    value, user_id = action.get("value"), user.get("id") if isinstance(user, dict) else None
    if not isinstance(value, str) or not value or not isinstance(user_id, str) or not user_id:
        return None
    number = value.partition("/")[0]  # a confirmation prompt's value is `<number>/<resolution>`
    ref = deps.policy.public_id(int(number)) if number.isascii() and number.isdigit() else value
    return ref, user_id


def _prompt(body: dict[str, Any]) -> int | None:
    """Which resolution a clicked confirmation prompt belongs to (None for a prompt from before prompts
    said so: it is taken to be the current one)."""
    resolution = str(body["actions"][0].get("value", "")).partition("/")[2]
    return int(resolution) if resolution.isascii() and resolution.isdigit() else None


async def _run(ack: Ack, body: dict[str, Any], deps: Deps, work: Work) -> None:
    await ack()
    await deps.after_ack(_answer(body, deps, work))


async def _answer(body: dict[str, Any], deps: Deps, work: Work) -> None:
    target = _target(body, deps)
    if target is None:
        log.warning("a click without its incident or user", extra={"event": "click_malformed"})
        return
    ref, user = target
    try:
        said = await work(deps, UseCaseContext.of(deps, actor=user), ref, body)
    except Exception as error:  # the person must hear that nothing happened, whatever went wrong
        said = answer(error, source="click", renderer=deps.renderer, incident_id=ref)
    if said and isinstance(body.get("response_url"), str):
        await deps.slack.respond(response_url=body["response_url"], text=said)


async def on_action_acknowledge(ack: Ack, body: dict[str, Any], deps: Deps) -> None:
    await _run(ack, body, deps, _acknowledge)


async def on_action_escalate(ack: Ack, body: dict[str, Any], deps: Deps) -> None:
    await _run(ack, body, deps, _escalate)


async def on_action_update(ack: Ack, body: dict[str, Any], deps: Deps) -> None:
    await _run(ack, body, deps, _open_update)


async def on_action_resolve(ack: Ack, body: dict[str, Any], deps: Deps) -> None:
    await _run(ack, body, deps, _open_resolve)


async def on_action_confirm_restored(ack: Ack, body: dict[str, Any], deps: Deps) -> None:
    await _run(ack, body, deps, _confirm_restored)


async def on_action_still_broken(ack: Ack, body: dict[str, Any], deps: Deps) -> None:
    await _run(ack, body, deps, _still_broken)


async def _acknowledge(deps: Deps, ctx: UseCaseContext, ref: str, body: dict[str, Any]) -> str | None:
    await flows.change(deps, ctx, ref, service.apply, Action.ACK)
    return None


async def _escalate(deps: Deps, ctx: UseCaseContext, ref: str, body: dict[str, Any]) -> str | None:
    change = await flows.change(deps, ctx, ref, service.escalate)
    return ":pager: That was already the last level; it has been paged again." if change.repeat else None


async def _open_update(deps: Deps, ctx: UseCaseContext, ref: str, body: dict[str, Any]) -> str | None:
    incident = await flows.read_incident(deps, ctx, ref)
    service.ensure_state_allows_update(incident, policy=deps.policy)
    await deps.slack.open_view(trigger_id=body["trigger_id"], view=views.update_view(deps, incident))
    return None


async def _open_resolve(deps: Deps, ctx: UseCaseContext, ref: str, body: dict[str, Any]) -> str | None:
    incident = await flows.read_incident(deps, ctx, ref)
    views.check_resolvable(incident, actor=ctx.actor, deps=deps)
    await deps.slack.open_view(trigger_id=body["trigger_id"], view=views.resolve_view(deps, incident))
    return None


async def _confirm_restored(deps: Deps, ctx: UseCaseContext, ref: str, body: dict[str, Any]) -> str | None:
    await flows.change(deps, ctx, ref, closure.confirm, prompt=_prompt(body))
    return None


async def _still_broken(deps: Deps, ctx: UseCaseContext, ref: str, body: dict[str, Any]) -> str | None:
    await flows.change(deps, ctx, ref, closure.still_broken, "", prompt=_prompt(body))
    return None
