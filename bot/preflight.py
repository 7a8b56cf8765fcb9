"""`tocsin check-config --live`: does Slack know the channels, users and user groups app.yaml names?

Read-only: conversations.info for each channel, users.info for each user, one usergroups.list for the
groups, all with the bot's token, so an id that is mistyped, deleted or out of the bot's reach is found
before the first page goes to it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.config import SlackReference
from bot.slack import SlackFacade, slack_error

# What auth.test answers for a token Slack does not accept: the operator must fix SLACK_BOT_TOKEN.
REFUSED = frozenset({"invalid_auth", "not_authed", "token_revoked", "token_expired", "account_inactive"})


class TokenRefused(Exception):
    """Slack refused SLACK_BOT_TOKEN; the argument is Slack's error code."""


class SlackUnreachable(Exception):
    """Slack could not be asked (network, DNS, a 5xx); nothing was checked."""


async def check(references: Sequence[SlackReference], *, token: str, base_url: str | None) -> list[str]:
    """One line per reference Slack does not know or the bot cannot use, naming its key path."""
    slack = SlackFacade(token=token, base_url=base_url)
    try:
        await _call(slack.client.auth_test())
        verdicts: dict[str, str | None] = {}
        groups: dict[str, Any] | str | None = None  # usergroups.list's groups by id, or its error
        for reference in references:
            if reference.id in verdicts:
                continue
            if reference.kind == "usergroup":
                if groups is None:
                    groups = await _usergroups(slack)
                verdicts[reference.id] = _group_verdict(reference.id, groups)
            else:
                verdicts[reference.id] = await _verdict(slack, reference)
        return [
            f'{reference.path}: "{reference.id}" {verdicts[reference.id]}'
            for reference in references
            if verdicts[reference.id]
        ]
    finally:
        await slack.aclose()


async def _verdict(slack: SlackFacade, reference: SlackReference) -> str | None:
    if reference.kind == "channel":
        answer = await _call(slack.client.conversations_info(channel=reference.id))
        if isinstance(answer, str):
            return _refusal(answer, "channel")
        return "is an archived channel" if answer.get("channel", {}).get("is_archived") else None
    answer = await _call(slack.client.users_info(user=reference.id))
    if isinstance(answer, str):
        return _refusal(answer, "user")
    return "is a deactivated user" if answer.get("user", {}).get("deleted") else None


async def _usergroups(slack: SlackFacade) -> dict[str, Any] | str:
    answer = await _call(slack.client.usergroups_list(include_disabled=True))
    if isinstance(answer, str):
        return answer
    return {group["id"]: group for group in answer.get("usergroups") or [] if "id" in group}


def _group_verdict(group_id: str, groups: dict[str, Any] | str) -> str | None:
    if isinstance(groups, str):
        return _refusal(groups, "user group")
    if group_id not in groups:
        return "is not a user group of this workspace (usergroups.list does not list it)"
    return "is a disabled user group" if groups[group_id].get("date_delete") else None


def _refusal(code: str, what: str) -> str:
    hint = {
        "channel_not_found": " (no such channel, or a private channel the bot is not a member of)",
        "user_not_found": " (no such user in this workspace)",
        "missing_scope": " (reinstall the app with the scopes `tocsin manifest` lists)",
    }.get(code, "")
    return f"cannot be checked as a {what}: Slack answers {code}{hint}"


async def _call(request: Awaitable[AsyncSlackResponse]) -> dict[str, Any] | str:
    """Slack's answer, or its error code when it answers ok: false. A refused token raises TokenRefused
    and an unreachable Slack SlackUnreachable: neither says anything about app.yaml's ids."""
    try:
        response = await request
    except SlackApiError as error:
        code = slack_error(error)
        if code in REFUSED:
            raise TokenRefused(code) from None
        if code.startswith("http_"):
            raise SlackUnreachable(f"Slack answered HTTP {code[5:]}") from None
        return code
    except (aiohttp.ClientError, TimeoutError, OSError) as error:
        raise SlackUnreachable(f"{type(error).__name__}: {error}") from None
    return dict(response.data) if isinstance(response.data, dict) else {}
