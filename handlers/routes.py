"""Attach every handler to the Bolt app. The dependencies bot/ built reach them through Bolt's context:
one middleware puts them there as `deps`, and Bolt hands each listener the context keys it names."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from slack_bolt.async_app import AsyncApp
from slack_bolt.middleware.async_middleware import AsyncMiddleware
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from handlers import actions, commands, fallback, ids, views
from handlers.deps import Deps

COMMAND = "/incident"


class ProvideDeps(AsyncMiddleware):
    """Puts `deps` into every request's context, where listeners that take a `deps` argument find it."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def async_process(
        self, *, req: AsyncBoltRequest, resp: BoltResponse, next: Callable[[], Awaitable[BoltResponse]]
    ) -> BoltResponse:
        req.context["deps"] = self.deps
        await next()
        return resp


def register(app: AsyncApp, deps: Deps) -> None:
    app.use(ProvideDeps(deps))
    app.command(COMMAND)(commands.on_command_incident)
    app.action(ids.ACKNOWLEDGE)(actions.on_action_acknowledge)
    app.action(ids.UPDATE)(actions.on_action_update)
    app.action(ids.ESCALATE)(actions.on_action_escalate)
    app.action(ids.RESOLVE)(actions.on_action_resolve)
    app.action(ids.CONFIRM_RESTORED)(actions.on_action_confirm_restored)
    app.action(ids.STILL_BROKEN)(actions.on_action_still_broken)
    app.view(ids.DECLARE_VIEW)(views.on_view_declare)
    app.view(ids.RESOLVE_VIEW)(views.on_view_resolve)
    app.view(ids.UPDATE_VIEW)(views.on_view_update)
    register_fallbacks(app)


def register_fallbacks(app: AsyncApp) -> None:
    """Registered after every other listener: Bolt runs the first listener that matches."""
    app.action(re.compile(".*"))(fallback.on_action_retired)
    app.view(re.compile(".*"))(fallback.on_view_unknown)
    app.error(fallback.on_error)
