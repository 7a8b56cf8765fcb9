"""Attach every handler to the Bolt app, each closed over the dependencies bot/ built."""

from __future__ import annotations

import re
from typing import Any

from slack_bolt.async_app import AsyncApp

from handlers import actions, commands, fallback, ids, views
from handlers.deps import Deps

COMMAND = "/incident"


def register(app: AsyncApp, deps: Deps) -> None:
    async def on_command_incident(ack: Any, command: dict[str, Any]) -> None:
        await commands.on_command_incident(ack, command, deps)

    async def on_action_acknowledge(ack: Any, body: dict[str, Any]) -> None:
        await actions.on_action_acknowledge(ack, body, deps)

    async def on_action_update(ack: Any, body: dict[str, Any]) -> None:
        await actions.on_action_update(ack, body, deps)

    async def on_action_escalate(ack: Any, body: dict[str, Any]) -> None:
        await actions.on_action_escalate(ack, body, deps)

    async def on_action_resolve(ack: Any, body: dict[str, Any]) -> None:
        await actions.on_action_resolve(ack, body, deps)

    async def on_action_confirm_restored(ack: Any, body: dict[str, Any]) -> None:
        await actions.on_action_confirm_restored(ack, body, deps)

    async def on_action_still_broken(ack: Any, body: dict[str, Any]) -> None:
        await actions.on_action_still_broken(ack, body, deps)

    async def on_view_declare(ack: Any, body: dict[str, Any], view: dict[str, Any]) -> None:
        await views.on_view_declare(ack, body, view, deps)

    async def on_view_resolve(ack: Any, body: dict[str, Any], view: dict[str, Any]) -> None:
        await views.on_view_resolve(ack, body, view, deps)

    async def on_view_update(ack: Any, body: dict[str, Any], view: dict[str, Any]) -> None:
        await views.on_view_update(ack, body, view, deps)

    app.command(COMMAND)(on_command_incident)
    app.action(ids.ACKNOWLEDGE)(on_action_acknowledge)
    app.action(ids.UPDATE)(on_action_update)
    app.action(ids.ESCALATE)(on_action_escalate)
    app.action(ids.RESOLVE)(on_action_resolve)
    app.action(ids.CONFIRM_RESTORED)(on_action_confirm_restored)
    app.action(ids.STILL_BROKEN)(on_action_still_broken)
    app.view(ids.DECLARE_VIEW)(on_view_declare)
    app.view(ids.RESOLVE_VIEW)(on_view_resolve)
    app.view(ids.UPDATE_VIEW)(on_view_update)
    register_fallbacks(app, deps)


def register_fallbacks(app: AsyncApp, deps: Deps) -> None:
    """Registered after every other listener: Bolt runs the first listener that matches."""

    async def on_action_retired(ack: Any, body: dict[str, Any]) -> None:
        await fallback.on_action_retired(ack, body, deps)

    app.action(re.compile(".*"))(on_action_retired)
    app.view(re.compile(".*"))(fallback.on_view_unknown)
    app.error(fallback.on_error)
