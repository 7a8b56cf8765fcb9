"""Attach every handler to the Bolt app. The dependencies bot/ built reach them through Bolt's context:
one middleware puts them there as `deps`, and Bolt hands each listener the context keys it names."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from slack_bolt.async_app import AsyncApp
from slack_bolt.middleware.async_middleware import AsyncMiddleware
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from handlers import actions, commands, events, fallback, home, ids, oncall, shortcuts, views
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
    app.action(ids.TAKE_COVER)(oncall.on_action_take_cover)
    app.view(ids.DECLARE_VIEW)(views.on_view_declare)
    app.view(ids.RESOLVE_VIEW)(views.on_view_resolve)
    app.view(ids.UPDATE_VIEW)(views.on_view_update)
    register_events(app)
    register_fallbacks(app)


# The events Tocsin subscribes to (the manifest asks for exactly these), and their handlers.
EVENTS = {
    "reaction_added": events.on_reaction_added,
    "reaction_removed": events.on_reaction_removed,
    "pin_added": events.on_pin_added,
    "pin_removed": events.on_pin_removed,
    "app_home_opened": events.on_app_home_opened,
}
# Shortcuts as the manifest declares them: callback id -> (type, name, description).
SHORTCUTS = {
    shortcuts.ADD_TO_TIMELINE: (
        "message",
        "Add to incident timeline",
        "Capture this message into an incident's timeline",
    ),
    shortcuts.DECLARE_FROM_MESSAGE: (
        "message",
        "Declare incident from message",
        "Open the declare form filled in from this message",
    ),
    shortcuts.DECLARE: ("global", "Declare incident", "Open the declare form"),
}


def register_events(app: AsyncApp) -> None:
    for name, handler in EVENTS.items():
        app.event(name)(handler)
    app.shortcut(shortcuts.ADD_TO_TIMELINE)(shortcuts.on_shortcut_add_to_timeline)
    app.shortcut(shortcuts.DECLARE_FROM_MESSAGE)(shortcuts.on_shortcut_declare_from_message)
    app.shortcut(shortcuts.DECLARE)(shortcuts.on_shortcut_declare)
    app.view(shortcuts.PICK_VIEW)(shortcuts.on_view_pick)
    app.action(home.HOME_DECLARE)(home.on_action_home_declare)


def register_fallbacks(app: AsyncApp) -> None:
    """Registered after every other listener: Bolt runs the first listener that matches."""
    app.action(re.compile(".*"))(fallback.on_action_retired)
    app.view(re.compile(".*"))(fallback.on_view_unknown)
    app.error(fallback.on_error)
