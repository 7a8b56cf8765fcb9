"""What a person sees when nothing else answers: a button Tocsin no longer has, a form it does not know,
or an error nobody expected. Slack shows an error marker for anything but a 200, and the person would
not know whether their click or command did anything; so each of these gets a 200 and, where there is
someone to tell, a private sentence."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.response import BoltResponse

from handlers.deps import Deps
from handlers.replies import INTERNAL, RETIRED_BUTTON

Ack = Callable[..., Awaitable[None]]
log = logging.getLogger("tocsin.handlers")


async def on_action_retired(ack: Ack, body: dict[str, Any], deps: Deps) -> None:
    """A click on a button no handler knows: one from an older Tocsin, or a payload someone made up."""
    await ack()
    response_url = body.get("response_url")
    if isinstance(response_url, str) and response_url:
        deps.spawn(deps.slack.respond(response_url=response_url, text=RETIRED_BUTTON))


async def on_view_unknown(ack: Ack) -> None:
    """A form Tocsin no longer has: close it rather than show Slack's error."""
    await ack()


async def on_error(error: Exception, body: dict[str, Any]) -> BoltResponse:
    """The last resort, for an exception no handler caught (Bolt would answer 500)."""
    log.error("request failed", exc_info=error, extra={"event": "request_failed", "type": _kind(body)})
    kind = _kind(body)
    if kind == "slash_command":
        return BoltResponse(status=200, body={"response_type": "ephemeral", "text": INTERNAL})
    if kind == "view_submission":
        block = _first_input(body)
        if block:
            return BoltResponse(status=200, body={"response_action": "errors", "errors": {block: INTERNAL}})
    return BoltResponse(status=200, body="")


def _kind(body: Any) -> str:
    if not isinstance(body, dict):
        return "unknown"
    if "command" in body:
        return "slash_command"
    kind = body.get("type")
    return kind if isinstance(kind, str) else "unknown"


def _first_input(body: dict[str, Any]) -> str | None:
    view = body.get("view")
    blocks = view.get("blocks") if isinstance(view, dict) else None
    for block in blocks if isinstance(blocks, list) else []:
        if (
            isinstance(block, dict)
            and block.get("type") == "input"
            and isinstance(block.get("block_id"), str)
        ):
            return block["block_id"]
    return None
