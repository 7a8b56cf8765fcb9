"""Buttons on the incident card. Acked at once, before their work: a click's answer is the card Slack
shows changed, or a private answer through the response_url, never the ack."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from handlers import flows, views
from handlers.deps import Deps
from handlers.replies import INTERNAL, UNAVAILABLE, describe
from store import closure, service
from store.errors import DomainError
from store.machine import Action

Ack = Callable[..., Awaitable[None]]
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


async def _run(
    ack: Ack, body: dict[str, Any], deps: Deps, work: Callable[[str, str], Awaitable[str | None]]
) -> None:
    await ack()
    await deps.after_ack(_answer(body, deps, work))


async def _answer(
    body: dict[str, Any], deps: Deps, work: Callable[[str, str], Awaitable[str | None]]
) -> None:
    target = _target(body, deps)
    if target is None:
        log.warning("a click without its incident or user", extra={"event": "click_malformed"})
        return
    ref, user = target
    try:
        answer = await work(ref, user)
    except DomainError as error:
        answer = describe(error, renderer=deps.renderer)
    except (SQLAlchemyError, OSError):
        log.exception("click failed", extra={"event": "click_failed", "incident_id": ref})
        answer = UNAVAILABLE
    except Exception:  # the person must hear that nothing happened, whatever went wrong
        log.exception("click failed", extra={"event": "click_crashed", "incident_id": ref})
        answer = INTERNAL
    if answer and isinstance(body.get("response_url"), str):
        await deps.slack.respond(response_url=body["response_url"], text=answer)


async def on_action_acknowledge(ack: Ack, body: dict[str, Any], deps: Deps) -> None:
    async def work(ref: str, user: str) -> str | None:
        await flows.change_incident(
            deps,
            ref=ref,
            channel=None,
            use_case=lambda s, i: service.apply(
                s, i, Action.ACK, policy=deps.policy, actor=user, now=deps.clock()
            ),
        )
        return None

    await _run(ack, body, deps, work)


async def on_action_escalate(ack: Ack, body: dict[str, Any], deps: Deps) -> None:
    async def work(ref: str, user: str) -> str | None:
        change = await flows.change_incident(
            deps,
            ref=ref,
            channel=None,
            use_case=lambda s, i: service.escalate(s, i, policy=deps.policy, actor=user, now=deps.clock()),
        )
        return (
            ":pager: That was already the last level; it has been paged again."
            if change.extra["repeat"]
            else None
        )

    await _run(ack, body, deps, work)


async def on_action_update(ack: Ack, body: dict[str, Any], deps: Deps) -> None:
    async def work(ref: str, user: str) -> str | None:
        incident = await flows.read_incident(deps, ref=ref, channel=None)
        service.ensure_state_allows_update(incident, policy=deps.policy)
        await deps.slack.open_view(trigger_id=body["trigger_id"], view=views.update_view(deps, incident))
        return None

    await _run(ack, body, deps, work)


async def on_action_resolve(ack: Ack, body: dict[str, Any], deps: Deps) -> None:
    async def work(ref: str, user: str) -> str | None:
        incident = await flows.read_incident(deps, ref=ref, channel=None)
        views.check_resolvable(incident, actor=user, deps=deps)
        await deps.slack.open_view(trigger_id=body["trigger_id"], view=views.resolve_view(deps, incident))
        return None

    await _run(ack, body, deps, work)


async def on_action_confirm_restored(ack: Ack, body: dict[str, Any], deps: Deps) -> None:
    async def work(ref: str, user: str) -> str | None:
        await flows.change_incident(
            deps,
            ref=ref,
            channel=None,
            use_case=lambda s, i: closure.confirm(
                s, i, policy=deps.policy, actor=user, now=deps.clock(), prompt=_prompt(body)
            ),
        )
        return None

    await _run(ack, body, deps, work)


async def on_action_still_broken(ack: Ack, body: dict[str, Any], deps: Deps) -> None:
    async def work(ref: str, user: str) -> str | None:
        await flows.change_incident(
            deps,
            ref=ref,
            channel=None,
            use_case=lambda s, i: closure.still_broken(
                s, i, "", policy=deps.policy, actor=user, now=deps.clock(), prompt=_prompt(body)
            ),
        )
        return None

    await _run(ack, body, deps, work)
