"""What handlers are given by bot/: built once, and put into each request's Bolt context by
handlers/routes.py, where listeners take it as their `deps` argument. Handlers never import bot/."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from handlers.messages import Composer
from handlers.render import Renderer
from handlers.text import USER_ID
from store.db import Database
from store.policy import Policy


class Slack(Protocol):
    """The part of the outbound facade handlers use directly: modals, private answers, display names,
    and reading a message to capture (everything that changes Slack goes through the outbox)."""

    async def open_view(self, *, trigger_id: str, view: dict[str, Any]) -> None: ...

    async def respond(
        self, *, response_url: str, text: str, blocks: list[dict[str, Any]] | None = None
    ) -> None: ...

    async def display_names(self, users: Iterable[str]) -> dict[str, str]: ...

    async def read_message(self, *, channel: str, ts: str) -> dict[str, Any] | None: ...

    async def permalink(self, *, channel: str, ts: str) -> str | None: ...


async def names_in_time(slack: Slack, users: Iterable[str | None], *, wait: float) -> dict[str, str]:
    """Display names for what is answered now (an ack, a page, a feed): what Slack tells within `wait`
    seconds (the facade keeps names a while); anyone not known in time is shown by their id."""
    wanted = sorted({user for user in users if user and USER_ID.fullmatch(user)})
    if not wanted:
        return {}
    try:
        return await asyncio.wait_for(slack.display_names(wanted), timeout=wait)
    except TimeoutError:
        return {}


@dataclass(frozen=True)
class Deps:
    db: Database
    policy: Policy
    composer: Composer
    renderer: Renderer
    slack: Slack
    clock: Callable[[], datetime]
    spawn: Callable[[Awaitable[Any]], object]
    # a click's work, run once its ack has gone (bot/app.py `after_ack`)
    after_ack: Callable[[Coroutine[Any, Any, Any]], Awaitable[None]]
    wake_relay: Callable[[], None]
