"""The Slack app manifest for this configuration: paste it into https://api.slack.com/apps."""

from __future__ import annotations

from typing import Any

import yaml

from bot.slack import bot_scopes
from handlers.routes import COMMAND, EVENTS, SHORTCUTS


def manifest(*, url: str | None, socket: bool) -> dict[str, Any]:
    events_url = f"{url.rstrip('/')}/slack/events" if url and not socket else None
    command: dict[str, Any] = {
        "command": COMMAND,
        "description": "Declare and run incidents",
        "usage_hint": "declare [P1-P4] <title> | ack | status | update | resolve | help",
        "should_escape": True,
    }
    interactivity: dict[str, Any] = {"is_enabled": True}
    events: dict[str, Any] = {"bot_events": sorted(EVENTS)}
    if events_url:
        command["url"] = events_url
        interactivity["request_url"] = events_url
        events["request_url"] = events_url
    return {
        "display_information": {
            "name": "Tocsin",
            "description": "Incident management where responders already are.",
            "background_color": "#8b1e1e",
        },
        "features": {
            "bot_user": {"display_name": "Tocsin", "always_online": True},
            # Pages reach people as DMs from the app, in its Messages tab; read-only, as Tocsin reads
            # nothing typed there.
            "app_home": {
                "home_tab_enabled": True,
                "messages_tab_enabled": True,
                "messages_tab_read_only_enabled": True,
            },
            "shortcuts": [
                {"name": name, "type": kind, "callback_id": callback_id, "description": description}
                for callback_id, (kind, name, description) in SHORTCUTS.items()
            ],
            "slash_commands": [command],
        },
        # Sign in with Slack for the web view: the person's id, name and workspace, nothing more.
        "oauth_config": {
            "scopes": {"bot": bot_scopes(), "user": ["openid", "profile"]},
            **({"redirect_urls": [f"{url.rstrip('/')}/auth/callback"]} if url else {}),
        },
        "settings": {
            "event_subscriptions": events,
            "interactivity": interactivity,
            "org_deploy_enabled": False,
            "socket_mode_enabled": socket,
            "token_rotation_enabled": False,
        },
    }


def render(*, url: str | None, socket: bool) -> str:
    return yaml.safe_dump(manifest(url=url, socket=socket), sort_keys=False)
