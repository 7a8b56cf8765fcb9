"""The fake Slack, driven through slack_sdk's real clients and slack_bolt's real AsyncApp."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.signature import SignatureVerifier
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.async_client import AsyncBaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from tests import slackspec
from tests.fakeslack import SLACK_TIERS, TIER_3, TIER_4, Answers, FakeSlack, Rate, RateLimits
from tests.signed import SlackRequests, load_payload, select, slack_encoded, text_input

ROOT = Path(__file__).resolve().parent.parent
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
META = {"event_type": "incident_declared", "event_payload": {"incident_id": 7}}
BLOCKS = [
    {"type": "header", "text": {"type": "plain_text", "text": "Incident #7"}},
    {"type": "section", "block_id": "summary", "text": {"type": "mrkdwn", "text": "*Database down*"}},
    {
        "type": "actions",
        "block_id": "incident_actions",
        "elements": [
            {
                "type": "button",
                "action_id": "acknowledge",
                "text": {"type": "plain_text", "text": "Acknowledge"},
                "value": "7",
                "style": "primary",
            }
        ],
    },
    {"type": "context", "elements": [{"type": "mrkdwn", "text": "declared by <@U_ALICE>"}]},
]
MODAL = {
    "type": "modal",
    "callback_id": "declare",
    "private_metadata": "C_GENERAL",
    "title": {"type": "plain_text", "text": "Declare incident"},
    "submit": {"type": "plain_text", "text": "Declare"},
    "blocks": [
        {
            "type": "input",
            "block_id": "title",
            "label": {"type": "plain_text", "text": "Title"},
            "element": {"type": "plain_text_input", "action_id": "value"},
        },
        {
            "type": "input",
            "block_id": "severity",
            "label": {"type": "plain_text", "text": "Severity"},
            "element": {
                "type": "static_select",
                "action_id": "value",
                "options": [
                    {"text": {"type": "plain_text", "text": s}, "value": s} for s in ("sev1", "sev2", "sev3")
                ],
            },
        },
    ],
}


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    """An empty fake Slack; as in conftest, a problem nobody asserted and cleared fails the test."""
    fake = FakeSlack()
    await fake.start()
    yield fake
    await fake.stop()
    if fake.problems:
        pytest.fail("unexpected fake Slack problems:\n" + "\n".join(fake.problems), pytrace=False)


@pytest.fixture
def client(fake: FakeSlack) -> AsyncWebClient:
    return AsyncWebClient(token="xoxb-test", base_url=fake.api_url)


async def error_of(call: Any) -> str:
    with pytest.raises(SlackApiError) as info:
        await call
    return info.value.response["error"]


async def succeeds(call: Any) -> bool:
    try:
        await call
    except SlackApiError:
        return False
    return True


# ---------------------------------------------------------------------- auth


async def test_auth_test_names_the_bot(fake: FakeSlack, client: AsyncWebClient) -> None:
    response = await client.auth_test()
    assert (response["user_id"], response["bot_id"], response["team_id"]) == ("UBOT", "BBOT", "T0001")
    assert fake.calls_of("auth.test")[0].ok


async def test_calls_without_a_bot_token_are_refused(fake: FakeSlack) -> None:
    assert await error_of(AsyncWebClient(base_url=fake.api_url).auth_test()) == "not_authed"
    app_level = AsyncWebClient(token="xapp-1-test", base_url=fake.api_url)
    assert await error_of(app_level.auth_test()) == "not_allowed_token_type"
    assert [c.error for c in fake.calls] == ["not_authed", "not_allowed_token_type"]


async def test_unknown_methods_are_a_problem(fake: FakeSlack, client: AsyncWebClient) -> None:
    assert await error_of(client.api_call("incidents.declare", json={"title": "x"})) == "unknown_method"
    assert fake.problems == ["incidents.declare: no such Web API method (unknown_method)"]
    fake.problems.clear()

    # a method Slack has but the fake does not model is answered unknown_method too, and named as such
    reaction = {"channel": "C_OPS", "timestamp": "1.000001", "name": "eyes"}
    assert await error_of(client.api_call("reactions.remove", json=reaction)) == "unknown_method"
    assert fake.problems == ["reactions.remove: not implemented by the fake (unknown_method)"]
    fake.problems.clear()


# ---------------------------------------------------------------------- messages


async def test_a_posted_message_is_kept_with_blocks_and_metadata(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    fake.add_channel("C_OPS", "ops")
    response = await client.chat_postMessage(
        channel="C_OPS", text="Incident #7", blocks=BLOCKS, metadata=META
    )

    [message] = fake.messages
    assert (response["channel"], response["ts"]) == ("C_OPS", message.ts)
    assert response["message"]["metadata"] == META
    assert (message.text, message.blocks, message.metadata) == ("Incident #7", BLOCKS, META)
    assert (message.event_type, message.payload) == ("incident_declared", {"incident_id": 7})
    assert fake.channels["C_OPS"].messages == [message]
    assert fake.posts(channel="C_OPS", event_type="incident_declared") == [message]
    assert fake.posts(event_type="incident_resolved") == []
    assert fake.calls_of("chat.postMessage")[0].args["blocks"] == BLOCKS
    assert fake.problems == []


async def test_timestamps_are_unique_and_increasing(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.add_channel("C_OPS", "ops")
    for n in range(5):
        await client.chat_postMessage(channel="C_OPS", text=f"update {n}", metadata=META)
    stamps = [m.ts for m in fake.messages]
    assert stamps == sorted(stamps, key=float) and len(set(stamps)) == 5
    assert all(len(ts.split(".")[1]) == 6 for ts in stamps)


async def test_form_encoded_calls_have_their_json_fields_decoded(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    fake.add_channel("C_OPS", "ops")
    form = {"channel": "C_OPS", "text": "t", "blocks": json.dumps(BLOCKS), "metadata": json.dumps(META)}
    await client.api_call("chat.postMessage", data=form)
    assert fake.messages[0].blocks == BLOCKS
    assert fake.calls[0].args["metadata"] == META


@pytest.mark.parametrize(
    "bad_block",
    [
        {"type": "sektion", "text": {"type": "mrkdwn", "text": "typo in the type"}},
        {"type": "header", "text": {"type": "plain_text", "text": "x" * 151}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}},
        {
            "type": "actions",
            "elements": [
                {"type": "button", "action_id": "a", "text": {"type": "plain_text", "text": "x" * 76}}
            ],
        },
    ],
    ids=["unknown-type", "long-header", "long-section", "long-button-text"],
)
async def test_invalid_blocks_are_refused(fake: FakeSlack, client: AsyncWebClient, bad_block: dict) -> None:
    fake.add_channel("C_OPS", "ops")
    call = client.chat_postMessage(channel="C_OPS", text="t", blocks=[*BLOCKS, bad_block], metadata=META)
    assert await error_of(call) == "invalid_blocks"
    assert fake.messages == []
    assert fake.calls[0].error == "invalid_blocks"


async def test_too_many_blocks_or_duplicate_block_ids_are_refused(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    fake.add_channel("C_OPS", "ops")
    divider = {"type": "divider"}
    assert (
        await error_of(client.chat_postMessage(channel="C_OPS", text="t", blocks=[divider] * 51))
        == "invalid_blocks"
    )
    twice = [BLOCKS[1], BLOCKS[1]]
    assert (
        await error_of(client.chat_postMessage(channel="C_OPS", text="t", blocks=twice)) == "invalid_blocks"
    )


async def test_message_errors_match_slack(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.add_channel("C_OPS", "ops")
    post = client.chat_postMessage
    assert await error_of(post(channel="C_NOPE", text="t", metadata=META)) == "channel_not_found"
    no_text = client.api_call(
        "chat.postMessage", json={"channel": "C_OPS", "metadata": META}
    )  # skips sdk's warning
    assert await error_of(no_text) == "no_text"
    assert await error_of(post(channel="C_OPS", text="x" * 40_001, metadata=META)) == "msg_too_long"
    bad_type = {"event_type": "Incident-Declared", "event_payload": {}}
    assert await error_of(post(channel="C_OPS", text="t", metadata=bad_type)) == "invalid_metadata_format"
    no_payload = {"event_type": "incident_declared"}
    assert await error_of(post(channel="C_OPS", text="t", metadata=no_payload)) == "invalid_metadata_format"
    assert await error_of(post(channel="C_OPS", text="t", thread_ts="1.000001")) == "thread_not_found"
    assert fake.messages == []


async def test_blocks_without_text_and_messages_without_metadata_are_problems(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    fake.add_channel("C_OPS", "ops")
    # api_call skips slack_sdk's own missing-text warning, which pytest would turn into an error
    await client.api_call("chat.postMessage", json={"channel": "C_OPS", "blocks": BLOCKS, "metadata": META})
    await client.chat_postMessage(channel="C_OPS", text="no metadata")
    assert len(fake.messages) == 2  # Slack accepts both
    assert "missing text fallback" in fake.problems[0]
    assert "without metadata" in fake.problems[1]
    fake.problems.clear()


async def test_thread_replies_and_direct_messages(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.add_channel("C_OPS", "ops")
    parent = await client.chat_postMessage(channel="C_OPS", text="Incident #7", metadata=META)
    await client.chat_postMessage(channel="C_OPS", text="update", thread_ts=parent["ts"], metadata=META)
    assert [m.text for m in fake.posts(thread_ts=parent["ts"])] == ["update"]

    dm = await client.chat_postMessage(channel="U_ALICE", text="you are commander")
    again = await client.chat_postMessage(channel="U_ALICE", text="still you")
    assert dm["channel"].startswith("D") and again["channel"] == dm["channel"]
    assert fake.channels[dm["channel"]].members == {"U_ALICE", "UBOT"}
    assert fake.problems == []  # DMs need no metadata


async def test_update_keeps_history(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.add_channel("C_OPS", "ops")
    posted = await client.chat_postMessage(channel="C_OPS", text="open", blocks=BLOCKS, metadata=META)
    resolved = {"event_type": "incident_resolved", "event_payload": {"incident_id": 7}}
    await client.chat_update(
        channel="C_OPS", ts=posted["ts"], text="resolved", blocks=BLOCKS[:2], metadata=resolved
    )
    await client.chat_update(channel="C_OPS", ts=posted["ts"], text="resolved!")

    [message] = fake.messages
    assert (message.text, message.blocks, message.event_type) == ("resolved!", None, "incident_resolved")
    assert [v["text"] for v in message.history] == ["open", "resolved"]
    assert message.history[0] == {"text": "open", "blocks": BLOCKS, "metadata": META}
    missing = client.chat_update(channel="C_OPS", ts="1.000001", text="x")
    assert await error_of(missing) == "message_not_found"
    bad = client.chat_update(channel="C_OPS", ts=posted["ts"], text="x", blocks=[{"type": "nope"}])
    assert await error_of(bad) == "invalid_blocks"


async def test_ephemerals_are_recorded_apart(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.add_channel("C_GENERAL", "general")
    response = await client.chat_postEphemeral(
        channel="C_GENERAL", user="U_ALICE", text="only you", blocks=BLOCKS
    )
    assert fake.ephemerals == [
        {
            "channel": "C_GENERAL",
            "user": "U_ALICE",
            "text": "only you",
            "blocks": BLOCKS,
            "thread_ts": None,
            "message_ts": response["message_ts"],
        }
    ]
    assert fake.messages == [] and fake.problems == []


async def test_pins(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.add_channel("C_OPS", "ops")
    posted = await client.chat_postMessage(channel="C_OPS", text="Incident #7", metadata=META)
    await client.pins_add(channel="C_OPS", timestamp=posted["ts"])
    assert fake.channels["C_OPS"].pins == [posted["ts"]]
    assert await error_of(client.pins_add(channel="C_OPS", timestamp=posted["ts"])) == "already_pinned"
    assert await error_of(client.pins_add(channel="C_OPS", timestamp="1.000001")) == "message_not_found"


# ---------------------------------------------------------------------- conversations


async def test_create_validates_names_like_slack(fake: FakeSlack, client: AsyncWebClient) -> None:
    created = await client.conversations_create(name="inc-7-db_down")
    channel = created["channel"]
    assert channel["id"].startswith("C") and channel["id"] == channel["id"].upper()
    assert (channel["name"], channel["is_channel"], channel["is_private"]) == ("inc-7-db_down", True, False)
    assert fake.channels[channel["id"]].members == {"UBOT"}

    assert await error_of(client.conversations_create(name="inc-7-db_down")) == "name_taken"
    assert await error_of(client.conversations_create(name="Inc 7!")) == "invalid_name_specials"
    assert await error_of(client.conversations_create(name="x" * 81)) == "invalid_name_maxlength"
    assert await error_of(client.conversations_create(name="")) == "invalid_name_required"
    private = await client.conversations_create(name="inc-8", is_private=True)
    assert private["channel"]["is_private"] is True
    assert private["channel"]["id"] != channel["id"]


async def test_invite_topic_info_join_archive(fake: FakeSlack, client: AsyncWebClient) -> None:
    channel_id = (await client.conversations_create(name="inc-7"))["channel"]["id"]
    await client.conversations_invite(channel=channel_id, users=["U_ALICE", "U_BOB"])
    assert fake.channels[channel_id].members == {"UBOT", "U_ALICE", "U_BOB"}
    assert (
        await error_of(client.conversations_invite(channel=channel_id, users="U_ALICE"))
        == "already_in_channel"
    )
    assert await error_of(client.conversations_invite(channel=channel_id, users="UBOT")) == "cant_invite_self"
    assert (
        await error_of(client.conversations_invite(channel="C_NOPE", users="U_ALICE")) == "channel_not_found"
    )

    topic = await client.conversations_setTopic(channel=channel_id, topic="SEV1 | commander @alice")
    assert topic["channel"]["topic"]["value"] == fake.channels[channel_id].topic == "SEV1 | commander @alice"
    assert (await client.conversations_info(channel=channel_id))["channel"]["num_members"] == 3

    fake.add_channel("C_GENERAL", "general", members=["U_ALICE"])
    await client.conversations_join(channel="C_GENERAL")
    assert "UBOT" in fake.channels["C_GENERAL"].members

    await client.conversations_archive(channel=channel_id)
    assert (
        await error_of(client.chat_postMessage(channel=channel_id, text="t", metadata=META)) == "is_archived"
    )
    assert await error_of(client.conversations_archive(channel=channel_id)) == "already_archived"


# ---------------------------------------------------------------------- people, membership, notifications


async def test_users_and_usergroups(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.add_user("U0CAROL", "carol", display_name="Carol D", real_name="Carol Danvers")
    fake.add_user("U0DAN", "dan")
    fake.add_usergroup("S0SRE", "sre", ["U0CAROL", "U0DAN"])

    carol = (await client.users_info(user="U0CAROL"))["user"]
    assert (carol["name"], carol["profile"]["display_name"], carol["profile"]["real_name"]) == (
        "carol",
        "Carol D",
        "Carol Danvers",
    )
    dan = (await client.users_info(user="U0DAN"))["user"]
    assert (dan["profile"]["display_name"], dan["profile"]["real_name"]) == ("", "dan")  # never chose one
    assert (await client.users_info(user="UBOT"))["user"]["is_bot"] is True
    assert await error_of(client.users_info(user="U0NOBODY")) == "user_not_found"

    assert (await client.usergroups_users_list(usergroup="S0SRE"))["users"] == ["U0CAROL", "U0DAN"]
    assert await error_of(client.usergroups_users_list(usergroup="S0NOPE")) == "no_such_subteam"
    [group] = (await client.usergroups_list())["usergroups"]
    assert (group["id"], group["handle"], group["user_count"], "users" in group) == ("S0SRE", "sre", 2, False)
    assert (await client.usergroups_list(include_users=True))["usergroups"][0]["users"] == [
        "U0CAROL",
        "U0DAN",
    ]


async def test_usergroup_members_are_replaced_as_strictly_as_slack(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    fake.add_user("U0CAROL", "carol")
    fake.add_user("U0DAN", "dan")
    fake.add_usergroup("S0ONCALL", "oncall", ["U0CAROL"])
    fake.add_channel("C_OPS", "ops", members=["UBOT", "U0CAROL", "U0DAN"])

    updated = await client.usergroups_users_update(usergroup="S0ONCALL", users=["U0DAN", "U0DAN"])
    assert (updated["usergroup"]["id"], updated["usergroup"]["users"]) == ("S0ONCALL", ["U0DAN"])
    assert (await client.usergroups_users_list(usergroup="S0ONCALL"))["users"] == ["U0DAN"]
    assert fake.usergroups["S0ONCALL"]["user_count"] == 1
    await client.chat_postMessage(channel="C_OPS", text="<!subteam^S0ONCALL> is on call", metadata=META)
    assert fake.notified(fake.messages[-1]) == {"U0DAN"}  # a mention reaches the members as they are now

    refused = {
        "no_such_subteam": client.usergroups_users_update(usergroup="S0NOPE", users="U0DAN"),
        "invalid_users": client.usergroups_users_update(usergroup="S0ONCALL", users="U0DAN,U0NOBODY"),
        "no_users_provided": client.usergroups_users_update(usergroup="S0ONCALL", users=" , "),
    }
    for error, call in refused.items():
        assert await error_of(call) == error
    assert fake.usergroups["S0ONCALL"]["users"] == ["U0DAN"]  # a refused update changes nothing
    assert [c.error for c in fake.calls_of("usergroups.users.update")] == [None, *refused]

    # An empty `users` is a required argument missing, to Slack's description: refused before all else
    assert await error_of(client.usergroups_users_update(usergroup="S0ONCALL", users="")) == (
        "invalid_arguments"
    )
    assert fake.problems == [
        "usergroups.users.update: missing required argument(s) users "
        "(https://api.slack.com/methods/usergroups.users.update)"
    ]
    fake.problems.clear()
    assert SLACK_TIERS["usergroups.users.update"] == SLACK_TIERS["usergroups.users.list"]


async def test_a_token_without_a_methods_scope_is_refused_it() -> None:
    """Only when the fake is told the token's scopes: each method needs its own, and a conversation's
    method the one for its kind (a DM's history needs im:history)."""
    fake = FakeSlack(scopes=["usergroups:read", "chat:write", "channels:history"])
    await fake.start()
    try:
        client = AsyncWebClient(token="xoxb-test", base_url=fake.api_url)
        fake.add_usergroup("S0ONCALL", "oncall", ["U0CAROL"])
        with pytest.raises(SlackApiError) as info:
            await client.usergroups_users_update(usergroup="S0ONCALL", users="U0DAN")
        assert (info.value.response["error"], info.value.response["needed"]) == (
            "missing_scope",
            "usergroups:write",
        )
        assert info.value.response["provided"] == "channels:history,chat:write,usergroups:read"
        assert fake.usergroups["S0ONCALL"]["users"] == ["U0CAROL"]

        fake.add_channel("C_OPS", "ops", members=["UBOT"])
        await client.chat_postMessage(channel="C_OPS", text="hello", metadata=META)
        assert (await client.conversations_history(channel="C_OPS"))["messages"]
        await client.chat_postMessage(channel="U0CAROL", text="you are on call")
        dm = fake.dm_id("U0CAROL")
        assert await error_of(client.conversations_history(channel=dm)) == "missing_scope"
        # Without chat:write.public the bot posts only where it is a member
        fake.add_channel("C_ELSEWHERE", "elsewhere")
        refused = client.chat_postMessage(channel="C_ELSEWHERE", text="hi", metadata=META)
        assert await error_of(refused) == "not_in_channel"
        fake.scopes = frozenset({*fake.scopes, "usergroups:write", "chat:write.public"})
        await client.usergroups_users_update(usergroup="S0ONCALL", users="U0DAN")
        await client.chat_postMessage(channel="C_ELSEWHERE", text="hi", metadata=META)
        assert fake.usergroups["S0ONCALL"]["users"] == ["U0DAN"] and fake.problems == []
    finally:
        await fake.stop()


async def test_a_message_keeps_who_was_a_member_when_it_was_posted(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    channel = (await client.conversations_create(name="inc-7"))["channel"]["id"]
    created = fake.channels[channel]
    assert (created.creator, created.members) == ("UBOT", {"UBOT"})
    await client.chat_postMessage(channel=channel, text="Paging <@U0CAROL>", metadata=META)
    await client.conversations_invite(channel=channel, users="U0CAROL")
    await client.chat_postMessage(channel=channel, text="Paging <@U0CAROL|carol> again", metadata=META)

    before, after = fake.messages
    assert before.members == frozenset({"UBOT"}) and after.members == frozenset({"UBOT", "U0CAROL"})
    assert fake.notified(before) == set()  # Slack does not notify a mentioned non-member
    assert fake.notified(after) == {"U0CAROL"}
    assert fake.reached("U0CAROL") == [after]


async def test_who_a_message_notifies(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.add_channel("C_OPS", "ops", members=["UBOT", "U0CAROL", "U0DAN", "U0ERIN", "U0FRED"])
    fake.add_usergroup("S0SRE", "sre", ["U0DAN", "U0OUTSIDER"])
    post = client.chat_postMessage

    in_blocks = [
        {"type": "section", "text": {"type": "mrkdwn", "text": "commander <@U0CAROL>"}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": "paged <!subteam^S0SRE|@sre>"}]},
        {"type": "section", "text": {"type": "plain_text", "text": "<@U0ERIN> in plain text is literal"}},
    ]
    blocks = await post(channel="C_OPS", text="Incident #7", blocks=in_blocks, metadata=META)
    inert = await post(
        channel="C_OPS", text="R&amp;D said &lt;!channel&gt; and &lt;@U0FRED&gt;", metadata=META
    )
    everyone = await post(channel="C_OPS", text="<!here> standup", metadata=META)

    notified = {m.ts: fake.notified(m) for m in fake.messages}
    assert notified[blocks["ts"]] == {"U0CAROL", "U0DAN"}  # a group pages its members who are in the channel
    assert notified[inert["ts"]] == set()  # escaped markup pings nobody
    assert notified[everyone["ts"]] == {"U0CAROL", "U0DAN", "U0ERIN", "U0FRED"}

    await client.chat_update(channel="C_OPS", ts=inert["ts"], text="now <@U0FRED>", metadata=META)
    assert fake.notified(fake.messages[1]) == set()  # an edit notifies nobody
    assert [m.ts for m in fake.reached("U0FRED")] == [everyone["ts"]]


async def test_invite_is_as_strict_as_slack(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.add_user("U0CAROL", "carol")
    fake.add_user("U0DAN", "dan")
    channel = (await client.conversations_create(name="inc-7"))["channel"]["id"]
    await client.conversations_invite(channel=channel, users="U0CAROL")

    # one user who cannot be invited fails the whole call: nobody is invited
    with pytest.raises(SlackApiError) as info:
        await client.conversations_invite(channel=channel, users=["U0CAROL", "U0DAN"])
    assert info.value.response["error"] == "already_in_channel"
    assert info.value.response["errors"] == [{"user": "U0CAROL", "ok": False, "error": "already_in_channel"}]
    assert fake.channels[channel].members == {"UBOT", "U0CAROL"}
    assert await error_of(client.conversations_invite(channel=channel, users="U0NOBODY")) == "user_not_found"

    # force invites whoever can be invited and lists the rest
    forced = await client.conversations_invite(channel=channel, users=["U0CAROL", "U0DAN"], force=True)
    assert forced["errors"] == [{"user": "U0CAROL", "ok": False, "error": "already_in_channel"}]
    assert fake.channels[channel].members == {"UBOT", "U0CAROL", "U0DAN"}
    first = await client.conversations_members(channel=channel, limit=2)
    rest = await client.conversations_members(
        channel=channel, cursor=first["response_metadata"]["next_cursor"]
    )
    assert first["members"] + rest["members"] == ["U0CAROL", "U0DAN", "UBOT"]
    assert rest["response_metadata"]["next_cursor"] == ""

    # the bot can only invite into, set the topic of and read channels it is a member of
    fake.add_channel("C_GENERAL", "general", members=["U0CAROL"])
    for call in (
        client.conversations_invite(channel="C_GENERAL", users="U0DAN"),
        client.conversations_setTopic(channel="C_GENERAL", topic="Incident #7"),
        client.conversations_history(channel="C_GENERAL"),
    ):
        assert await error_of(call) == "not_in_channel"
    assert fake.problems == []


async def test_direct_messages(fake: FakeSlack, client: AsyncWebClient) -> None:
    opened = await client.conversations_open(users="U0CAROL")
    dm = opened["channel"]["id"]
    again = await client.conversations_open(users="U0CAROL", return_im=True)
    assert dm.startswith("D") and again["channel"]["id"] == dm and again["already_open"] is True
    assert (again["channel"]["is_im"], again["channel"]["user"]) == (True, "U0CAROL")

    await client.chat_postMessage(channel=dm, text="You are paged for <#C0OPS|ops>")
    by_user = await client.chat_postMessage(channel="U0CAROL", text="Still paged")
    assert by_user["channel"] == dm
    assert [m.text for m in fake.dms("U0CAROL")] == ["You are paged for <#C0OPS|ops>", "Still paged"]
    assert all(fake.notified(m) == {"U0CAROL"} for m in fake.dms("U0CAROL"))
    assert fake.dms("U0DAN") == [] and fake.problems == []  # DMs need no metadata

    fake.add_user("U0CAROL", "carol")  # once the fake knows its people, others are not found
    assert await error_of(client.conversations_open(users="U0NOBODY")) == "user_not_found"
    assert await error_of(client.chat_postMessage(channel="U0NOBODY", text="hi")) == "channel_not_found"


# ---------------------------------------------------------------------- history and channel lists


async def test_history_returns_what_was_posted_with_metadata_when_asked(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    fake.add_channel("C_OPS", "ops", members=["UBOT"])
    posted = []
    for n in range(5):
        meta = {"event_type": "incident_updated", "event_payload": {"incident_id": 7, "n": n}}
        posted.append(
            (await client.chat_postMessage(channel="C_OPS", text=f"update {n}", metadata=meta))["ts"]
        )
    await client.chat_postMessage(channel="C_OPS", text="a reply", thread_ts=posted[0], metadata=META)

    plain = await client.conversations_history(channel="C_OPS")
    assert [m["text"] for m in plain["messages"]] == [f"update {n}" for n in (4, 3, 2, 1, 0)]  # newest first
    assert all("metadata" not in m for m in plain["messages"])
    assert plain["messages"][-1]["reply_count"] == 1

    rich = await client.conversations_history(channel="C_OPS", include_all_metadata=True)
    assert [m["metadata"]["event_payload"]["n"] for m in rich["messages"]] == [4, 3, 2, 1, 0]

    window = await client.conversations_history(channel="C_OPS", oldest=posted[1], latest=posted[4])
    assert [m["ts"] for m in window["messages"]] == [posted[3], posted[2]]  # both ends exclusive
    inclusive = await client.conversations_history(
        channel="C_OPS", oldest=posted[1], latest=posted[4], inclusive=True
    )
    assert [m["ts"] for m in inclusive["messages"]] == posted[4:0:-1]

    first = await client.conversations_history(channel="C_OPS", limit=2)
    assert first["has_more"] is True and [m["ts"] for m in first["messages"]] == [posted[4], posted[3]]
    cursor = first["response_metadata"]["next_cursor"]
    rest = await client.conversations_history(channel="C_OPS", limit=10, cursor=cursor)
    assert rest["has_more"] is False and [m["ts"] for m in rest["messages"]] == posted[2::-1]

    thread = await client.conversations_replies(channel="C_OPS", ts=posted[0], include_all_metadata=True)
    assert [m["text"] for m in thread["messages"]] == ["update 0", "a reply"]  # parent, then oldest first
    assert thread["messages"][1]["metadata"] == META
    assert await error_of(client.conversations_replies(channel="C_OPS", ts="1.000001")) == "thread_not_found"
    assert (
        await error_of(client.conversations_history(channel="C_OPS", cursor="bm9wZQ==")) == "invalid_cursor"
    )


async def test_conversations_list_and_info(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.add_channel("C_GENERAL", "general")
    fake.add_channel("C_SECRET", "secret", is_private=True)
    made = [(await client.conversations_create(name=f"inc-{n}"))["channel"]["id"] for n in range(3)]
    await client.conversations_archive(channel=made[0])
    await client.conversations_open(users="U0CAROL")

    seen, cursor = [], None
    while True:
        page = await client.conversations_list(limit=2, cursor=cursor)
        seen += page["channels"]
        cursor = page["response_metadata"]["next_cursor"]
        if not cursor:
            break
    assert [c["id"] for c in seen] == ["C_GENERAL", *made]  # not the private channel, nor DMs
    assert [(c["name"], c["creator"], c["is_archived"]) for c in seen] == [
        ("general", "U0ADMIN", False),
        ("inc-0", "UBOT", True),
        ("inc-1", "UBOT", False),
        ("inc-2", "UBOT", False),
    ]
    assert all(isinstance(c["created"], int) for c in seen)
    live = await client.conversations_list(exclude_archived=True, types="public_channel,im")
    assert [c["name"] for c in live["channels"]] == ["general", "inc-1", "inc-2", "U0CAROL"]

    info = (await client.conversations_info(channel=made[1]))["channel"]
    assert (info["id"], info["name"], info["creator"], info["is_member"]) == (made[1], "inc-1", "UBOT", True)
    assert await error_of(client.conversations_info(channel="C_NOPE")) == "channel_not_found"


# ---------------------------------------------------------------------- tokens and lost answers


async def test_a_revoked_token_fails_every_call_for_a_while(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.add_channel("C_OPS", "ops")
    fake.revoke_token()
    assert await error_of(client.auth_test()) == "token_revoked"
    assert (
        await error_of(client.chat_postMessage(channel="C_OPS", text="t", metadata=META)) == "token_revoked"
    )
    socket_mode = AsyncWebClient(token="xapp-1-test", base_url=fake.api_url)
    assert (await socket_mode.apps_connections_open(app_token="xapp-1-test"))["ok"]  # another token
    fake.restore_token()
    assert (await client.auth_test())["ok"]

    fake.revoke_token("invalid_auth", seconds=0.3)
    revoked_at = time.monotonic()
    assert await error_of(client.auth_test()) == "invalid_auth"
    while not await succeeds(client.auth_test()):  # a bounded poll: the window ends by itself
        assert time.monotonic() < revoked_at + 2, fake.summary()
        await asyncio.sleep(0.05)
    assert time.monotonic() - revoked_at >= 0.3
    errors = [c.error for c in fake.calls_of("auth.test")]
    assert errors[:2] == ["token_revoked", None] and set(errors[2:-1]) == {"invalid_auth"}
    assert errors[-1] is None and fake.messages == []


async def test_a_lost_answer_still_takes_effect(fake: FakeSlack, client: AsyncWebClient) -> None:
    once = AsyncWebClient(token="xoxb-test", base_url=fake.api_url, retry_handlers=[])
    fake.lose_answer("conversations.create")
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await once.conversations_create(name="inc-7")
    assert [c.name for c in fake.channels.values()] == ["inc-7"]  # Slack made it all the same
    [call] = fake.calls
    assert (call.method, call.ok, call.answered) == ("conversations.create", True, False)

    # a client that retries a dropped connection (slack_sdk's default, and bot/slack.py's) meets the
    # channel its first try made
    retrying = AsyncWebClient(
        token="xoxb-test", base_url=fake.api_url, retry_handlers=[AsyncConnectionErrorRetryHandler()]
    )
    fake.lose_answer("conversations.create")
    assert await error_of(retrying.conversations_create(name="inc-8")) == "name_taken"
    assert [c.name for c in fake.channels.values()] == ["inc-7", "inc-8"]
    assert (await client.auth_test())["ok"]  # only the scripted answers are lost


# ---------------------------------------------------------------------- Slack's description of its Web API


async def test_calls_are_held_against_slacks_description(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.add_channel("C_OPS", "ops", members=["UBOT"])
    unknown_arg = client.chat_postMessage(channel="C_OPS", text="t", metadata=META, colour="red")
    assert await error_of(unknown_arg) == "invalid_arguments"
    missing = client.api_call("chat.postMessage", json={"text": "to nowhere", "metadata": META})
    assert await error_of(missing) == "invalid_arguments"
    as_json = client.api_call("conversations.history", json={"channel": "C_OPS"})
    assert await error_of(as_json) == "invalid_arguments"
    assert await error_of(client.api_call("chat.postMessages", json={"channel": "C_OPS"})) == "unknown_method"
    assert await error_of(client.conversations_history(channel="C_OPS", limit="all")) == "invalid_arguments"
    assert fake.messages == []
    assert [p.split(" (")[0] for p in fake.problems] == [
        "chat.postMessage: unknown argument(s) colour; it takes as_user, attachments, blocks, channel, "
        "icon_emoji, icon_url, link_names, metadata, mrkdwn, parse, reply_broadcast, team_id, text, "
        "thread_ts, unfurl_links, unfurl_media, username",
        "chat.postMessage: missing required argument(s) channel",
        "conversations.history: sent as JSON, which this method does not read; send a form",
        "chat.postMessages: no such Web API method",
        "conversations.history: limit='all' is not an integer",
    ]
    fake.problems.clear()


def test_the_fake_fixture_fails_a_test_that_leaves_problems(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text("from tests.conftest import fake  # noqa: F401\n")
    (tmp_path / "test_left.py").write_text(
        "async def test_leaves_a_problem(fake):\n"
        "    fake.problems.append('chat.postMessage: unknown argument(s) colour')\n\n"
        "async def test_asserts_and_clears_it(fake):\n"
        "    fake.problems.append('chat.postMessage: unknown argument(s) colour')\n"
        "    fake.problems.clear()\n"
    )
    run = subprocess.run(
        [sys.executable, "-m", "pytest", str(tmp_path), "-q", "-p", "no:cacheprovider"]
        + ["-c", str(ROOT / "pyproject.toml"), "--rootdir", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert "2 passed, 1 error" in run.stdout, run.stdout + run.stderr  # the test ran; its teardown failed
    assert "ERROR at teardown of test_leaves_a_problem" in run.stdout
    assert "chat.postMessage: unknown argument(s) colour" in run.stdout


def test_later_additions_are_apart_from_the_2020_description() -> None:
    described = json.loads(slackspec.SPEC.read_text())["paths"]
    for name in slackspec.LATER_METHODS:
        assert f"/{name}" not in described
        assert slackspec.methods()[name].doc == f"https://api.slack.com/methods/{name}"
    for name, arguments in slackspec.LATER_ARGUMENTS.items():
        given = {p["name"] for op in described[f"/{name}"].values() for p in op["parameters"]}
        assert not given & set(arguments)
        assert all(url == f"https://api.slack.com/methods/{name}" for url in arguments.values())
    assert {"files.getUploadURLExternal", "files.completeUploadExternal", "openid.connect.token"} <= set(
        slackspec.LATER_METHODS
    )


# ---------------------------------------------------------------------- views


async def test_views_open_update_and_push(fake: FakeSlack, client: AsyncWebClient) -> None:
    trigger = fake.new_trigger_id()
    opened = (await client.views_open(trigger_id=trigger, view=MODAL))["view"]
    assert opened["id"].startswith("V") and opened["callback_id"] == "declare"
    assert fake.views == [
        {"method": "views.open", "trigger_id": trigger, "view": MODAL, "view_id": opened["id"]}
    ]

    changed = {**MODAL, "title": {"type": "plain_text", "text": "Declared"}, "external_id": "inc-7"}
    await client.views_update(view_id=opened["id"], view=changed, hash=opened["hash"])
    await client.views_update(external_id="inc-7", view=changed)
    assert [v["view_id"] for v in fake.views] == [opened["id"]] * 3
    stale = client.views_update(view_id=opened["id"], view=changed, hash=opened["hash"])
    assert await error_of(stale) == "hash_conflict"
    assert await error_of(client.views_update(view_id="V_NOPE", view=changed)) == "not_found"

    await client.views_push(trigger_id=fake.new_trigger_id(), view=MODAL)
    assert fake.views[-1]["method"] == "views.push"


async def test_views_are_validated_and_triggers_used_once(fake: FakeSlack, client: AsyncWebClient) -> None:
    too_long_title = {**MODAL, "title": {"type": "plain_text", "text": "x" * 25}}
    assert await error_of(client.views_open(trigger_id=fake.new_trigger_id(), view=too_long_title)) == (
        "invalid_arguments"
    )
    bad_block = {**MODAL, "blocks": [{"type": "input", "label": "no element"}]}
    assert await error_of(client.views_open(trigger_id=fake.new_trigger_id(), view=bad_block)) == (
        "invalid_arguments"
    )

    trigger = fake.new_trigger_id()
    await client.views_open(trigger_id=trigger, view=MODAL)
    assert await error_of(client.views_open(trigger_id=trigger, view=MODAL)) == "trigger_exchanged"

    late = fake.new_trigger_id(age=10)
    assert await error_of(client.views_open(trigger_id=late, view=MODAL)) == "expired_trigger_id"


# ---------------------------------------------------------------------- people, reactions, pins, home


async def test_people_post_messages_with_files_and_threads(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.add_channel("C_OPS", "ops", members=["UBOT", "U_ALICE", "U_BOB"])
    said = fake.add_message("C_OPS", "U_ALICE", "R&amp;D &lt;3 <@U_BOB>", files=[{"name": "graph.png"}])
    posted = await client.chat_postMessage(channel="C_OPS", text="noted", thread_ts=said.ts, metadata=META)
    fake.add_message("C_OPS", "U_BOB", "on it", thread_ts=said.ts)
    assert fake.messages == [fake.message("C_OPS", posted["ts"])]  # the bot's posts only

    [shown] = (await client.conversations_history(channel="C_OPS"))["messages"]
    assert (shown["user"], shown["text"], shown["ts"]) == ("U_ALICE", "R&amp;D &lt;3 <@U_BOB>", said.ts)
    assert "bot_id" not in shown and shown["client_msg_id"] == said.client_msg_id
    [file] = shown["files"]
    assert file["name"] == "graph.png" and file["id"].startswith("F") and file["user"] == "U_ALICE"
    assert (shown["thread_ts"], shown["reply_count"], shown["reply_users"]) == (said.ts, 2, ["UBOT", "U_BOB"])

    with pytest.raises(ValueError, match="not a member"):
        fake.add_message("C_OPS", "U_CAROL", "hello")
    with pytest.raises(LookupError):
        fake.add_message("C_OPS", "U_ALICE", "reply", thread_ts="1.000001")


async def test_history_is_read_only_by_a_member(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.add_channel("C_OPS", "ops", members=["U_ALICE"])
    fake.add_message("C_OPS", "U_ALICE", "anyone?")
    assert await error_of(client.conversations_history(channel="C_OPS")) == "not_in_channel"
    assert await error_of(client.conversations_replies(channel="C_OPS", ts="1.000001")) == "not_in_channel"
    assert await error_of(client.conversations_history(channel="C_NOPE")) == "channel_not_found"

    fake.channels["C_OPS"].members.add("UBOT")
    history = await client.conversations_history(channel="C_OPS")
    assert [m["text"] for m in history["messages"]] == ["anyone?"]
    assert (history["pin_count"], history["channel_actions_count"]) == (0, 0)


async def test_replies_of_a_thread(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.add_channel("C_OPS", "ops", members=["UBOT", "U_ALICE", "U_BOB"])
    parent = fake.add_message("C_OPS", "U_ALICE", "db is slow")
    replies = [fake.add_message("C_OPS", "U_BOB", f"reply {n}", thread_ts=parent.ts).ts for n in range(3)]
    fake.add_message("C_OPS", "U_ALICE", "unrelated")

    thread = (await client.conversations_replies(channel="C_OPS", ts=parent.ts))["messages"]
    assert [m["ts"] for m in thread] == [parent.ts, *replies]  # the parent, then oldest first
    assert all(m["thread_ts"] == parent.ts and m["parent_user_id"] == "U_ALICE" for m in thread[1:])
    window = await client.conversations_replies(channel="C_OPS", ts=parent.ts, oldest=replies[0])
    assert [m["ts"] for m in window["messages"]] == [parent.ts, *replies[1:]]
    page = await client.conversations_replies(channel="C_OPS", ts=parent.ts, limit=2)
    assert page["has_more"] and len(page["messages"]) == 2
    assert await error_of(client.conversations_replies(channel="C_OPS", ts="1.000001")) == "thread_not_found"


async def test_reactions_by_the_bot_and_by_people(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.add_channel("C_OPS", "ops", members=["UBOT", "U_ALICE"])
    said = fake.add_message("C_OPS", "U_ALICE", "db down")
    await client.reactions_add(channel="C_OPS", timestamp=said.ts, name="eyes")
    fake.react("C_OPS", said.ts, "U_ALICE", "eyes")
    fake.react("C_OPS", said.ts, "U_ALICE", "white_check_mark")
    assert fake.reactions("C_OPS", said.ts) == {"eyes": {"UBOT", "U_ALICE"}, "white_check_mark": {"U_ALICE"}}

    reaction = client.reactions_add(channel="C_OPS", timestamp=said.ts, name="eyes")
    assert await error_of(reaction) == "already_reacted"
    missing = client.reactions_add(channel="C_OPS", timestamp="1.000001", name="eyes")
    assert await error_of(missing) == "message_not_found"
    assert await error_of(client.reactions_add(channel="C_OPS", timestamp=said.ts, name=":eyes:")) == (
        "invalid_name"
    )
    assert await error_of(client.reactions_add(channel="C_NOPE", timestamp=said.ts, name="eyes")) == (
        "channel_not_found"
    )
    fake.add_channel("G_SECRET", "secret", members=["U_ALICE"], is_private=True)
    hidden = fake.add_message("G_SECRET", "U_ALICE", "psst")
    assert await error_of(client.reactions_add(channel="G_SECRET", timestamp=hidden.ts, name="eyes")) == (
        "channel_not_found"
    )

    [shown] = (await client.conversations_history(channel="C_OPS"))["messages"]
    assert shown["reactions"][0] == {"name": "eyes", "users": ["UBOT", "U_ALICE"], "count": 2}
    fake.unreact("C_OPS", said.ts, "U_ALICE", "white_check_mark")
    assert fake.reactions("C_OPS", said.ts) == {"eyes": {"UBOT", "U_ALICE"}}
    with pytest.raises(ValueError, match="already reacted"):
        fake.react("C_OPS", said.ts, "U_ALICE", "eyes")
    with pytest.raises(ValueError, match="no :tada: reaction"):
        fake.unreact("C_OPS", said.ts, "U_ALICE", "tada")


async def test_pins_by_people(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.add_channel("C_OPS", "ops", members=["UBOT", "U_ALICE"])
    said = fake.add_message("C_OPS", "U_ALICE", "root cause: expired cert")
    fake.pin_by("C_OPS", said.ts, "U_ALICE")
    assert fake.channels["C_OPS"].pins == [said.ts]
    history = await client.conversations_history(channel="C_OPS")
    assert history["pin_count"] == 1 and history["messages"][0]["pinned_to"] == ["C_OPS"]
    assert await error_of(client.pins_add(channel="C_OPS", timestamp=said.ts)) == "already_pinned"
    with pytest.raises(ValueError, match="already pinned"):
        fake.pin_by("C_OPS", said.ts, "U_ALICE")

    fake.unpin_by("C_OPS", said.ts, "U_ALICE")
    assert fake.channels["C_OPS"].pins == []
    assert fake.channels["C_OPS"].pinned_by[said.ts][0] == "U_ALICE"  # kept for pin_removed
    with pytest.raises(ValueError, match="not pinned"):
        fake.unpin_by("C_OPS", said.ts, "U_ALICE")


async def test_permalinks(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.add_channel("C_OPS", "ops", members=["UBOT", "U_ALICE"])
    said = fake.add_message("C_OPS", "U_ALICE", "db down")
    reply = fake.add_message("C_OPS", "U_ALICE", "still down", thread_ts=said.ts)

    link = await client.chat_getPermalink(channel="C_OPS", message_ts=said.ts)
    assert link["channel"] == "C_OPS"
    assert link["permalink"] == f"https://fake.slack.com/archives/C_OPS/p{said.ts.replace('.', '')}"
    threaded = (await client.chat_getPermalink(channel="C_OPS", message_ts=reply.ts))["permalink"]
    assert threaded.endswith(f"/p{reply.ts.replace('.', '')}?thread_ts={said.ts}&cid=C_OPS")
    assert await error_of(client.chat_getPermalink(channel="C_OPS", message_ts="1.000001")) == (
        "message_not_found"
    )
    assert await error_of(client.chat_getPermalink(channel="C_NOPE", message_ts=said.ts)) == (
        "channel_not_found"
    )


HOME = {
    "type": "home",
    "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "*No open incidents*"}}],
}


async def test_views_publish_keeps_each_persons_home_tab(fake: FakeSlack, client: AsyncWebClient) -> None:
    first = (await client.views_publish(user_id="U_ALICE", view=HOME))["view"]
    assert first["type"] == "home" and fake.home("U_ALICE") == first and fake.home("U_BOB") is None
    again = {**HOME, "blocks": [*HOME["blocks"], {"type": "divider"}]}
    second = (await client.views_publish(user_id="U_ALICE", view=again, hash=first["hash"]))["view"]
    assert second["id"] == first["id"] and fake.home("U_ALICE") == second
    assert (fake.publishes("U_ALICE"), fake.publishes("U_BOB")) == (2, 0)
    assert fake.views == []  # modals only: a Home tab is no view to submit or update

    stale = client.views_publish(user_id="U_ALICE", view=HOME, hash=first["hash"])
    assert await error_of(stale) == "hash_conflict"
    assert await error_of(client.views_publish(user_id="U_ALICE", view=MODAL)) == "invalid_arguments"
    with_submit = {**HOME, "submit": {"type": "plain_text", "text": "Go"}}
    assert await error_of(client.views_publish(user_id="U_ALICE", view=with_submit)) == "invalid_arguments"
    assert fake.publishes("U_ALICE") == 2
    fake.add_user("U_ALICE", "alice")
    assert await error_of(client.views_publish(user_id="U_NOBODY", view=HOME)) == "user_not_found"


async def test_a_home_tab_holds_at_most_100_blocks(fake: FakeSlack, client: AsyncWebClient) -> None:
    divider = {"type": "divider"}
    await client.views_publish(user_id="U_ALICE", view={"type": "home", "blocks": [divider] * 100})
    with pytest.raises(SlackApiError) as info:
        await client.views_publish(user_id="U_ALICE", view={"type": "home", "blocks": [divider] * 101})
    assert info.value.response["error"] == "invalid_arguments"
    assert "100 blocks" in info.value.response["response_metadata"]["messages"][0]  # slack_sdk's check
    assert fake.publishes("U_ALICE") == 1


def test_new_methods_have_slacks_tiers() -> None:
    assert SLACK_TIERS["views.publish"] == SLACK_TIERS["chat.getPermalink"] == TIER_4
    assert SLACK_TIERS["reactions.add"] == SLACK_TIERS["conversations.history"] == TIER_3
    assert SLACK_TIERS["conversations.replies"] == TIER_3
    assert set(SLACK_TIERS) <= set(slackspec.methods())


# ---------------------------------------------------------------------- files


async def test_files_upload_v2_end_to_end(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.add_channel("C_OPS", "ops")
    response = await client.files_upload_v2(
        channel="C_OPS",
        content="# Postmortem\n\nIt was DNS.\n",
        filename="postmortem.md",
        title="Postmortem #7",
        initial_comment="Postmortem draft",
    )
    [shared] = fake.files
    assert response["file"]["id"] == shared["id"]
    assert shared == {
        "id": shared["id"],
        "title": "Postmortem #7",
        "filename": "postmortem.md",
        "channel": "C_OPS",
        "content": b"# Postmortem\n\nIt was DNS.\n",
        "initial_comment": "Postmortem draft",
        "thread_ts": None,
    }
    assert [c.method for c in fake.calls] == ["files.getUploadURLExternal", "files.completeUploadExternal"]
    assert fake.problems == []


async def test_upload_url_takes_multipart_too(fake: FakeSlack, client: AsyncWebClient) -> None:
    issued = await client.files_getUploadURLExternal(filename="timeline.csv", length=8)
    form = aiohttp.FormData()
    form.add_field("file", b"at,what\n", filename="timeline.csv")
    async with aiohttp.ClientSession() as session, session.post(issued["upload_url"], data=form) as response:
        assert response.status == 200
    await client.files_completeUploadExternal(files=[{"id": issued["file_id"], "title": "Timeline"}])
    assert (fake.files[0]["content"], fake.files[0]["channel"]) == (b"at,what\n", None)
    unfinished = await client.files_getUploadURLExternal(filename="x.md", length=1)
    never_sent = client.files_completeUploadExternal(files=[{"id": unfinished["file_id"]}])
    assert await error_of(never_sent) == "file_not_found"


# ---------------------------------------------------------------------- scripted faults


async def test_rate_limit_is_answered_as_scripted(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.add_channel("C_OPS", "ops")
    fake.fail_next("chat.postMessage", status=429, retry_after=30)
    with pytest.raises(SlackApiError) as info:
        await client.chat_postMessage(channel="C_OPS", text="t", metadata=META)
    response = info.value.response
    assert (response.status_code, response.headers["Retry-After"], response["error"]) == (
        429,
        "30",
        "ratelimited",
    )

    await client.chat_postMessage(channel="C_OPS", text="t", metadata=META)  # only the next call failed
    assert [c.error for c in fake.calls] == ["ratelimited", None]
    assert len(fake.messages) == 1


async def test_slack_sdk_retry_handler_honours_retry_after(fake: FakeSlack) -> None:
    fake.add_channel("C_OPS", "ops")
    retrying = AsyncWebClient(
        token="xoxb-test",
        base_url=fake.api_url,
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=1)],
    )
    fake.fail_next("chat.postMessage", status=429, retry_after=1)
    await retrying.chat_postMessage(channel="C_OPS", text="t", metadata=META)
    first, second = fake.calls_of("chat.postMessage")
    assert (first.error, second.ok) == ("ratelimited", True)
    assert second.at - first.at >= 1.0
    assert len(fake.messages) == 1


async def test_scripted_errors_and_server_faults(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.add_channel("C_OPS", "ops")
    fake.fail_next("chat.postMessage", error="channel_not_found", times=2)
    for _ in range(2):
        assert (
            await error_of(client.chat_postMessage(channel="C_OPS", text="t", metadata=META))
            == "channel_not_found"
        )

    fake.fail_next("chat.postMessage", status=500)
    with pytest.raises(SlackApiError) as info:
        await client.chat_postMessage(channel="C_OPS", text="t", metadata=META)
    assert info.value.response.status_code == 500
    assert isinstance(info.value.response.data, str)  # a plain-text body, not Slack JSON

    retrying = AsyncWebClient(
        token="xoxb-test", base_url=fake.api_url, retry_handlers=[AsyncServerErrorRetryHandler()]
    )
    fake.fail_next("chat.postMessage", status=503)
    await retrying.chat_postMessage(channel="C_OPS", text="t", metadata=META)
    assert [c.error for c in fake.calls] == ["channel_not_found"] * 2 + ["http_500", "http_503", None]


async def test_outage(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.add_channel("C_OPS", "ops")
    fake.set_down(True)
    for call in (client.auth_test(), client.chat_postMessage(channel="C_OPS", text="t", metadata=META)):
        with pytest.raises(SlackApiError) as info:
            await call
        assert info.value.response.status_code == 503
    fake.set_down(False)
    await client.chat_postMessage(channel="C_OPS", text="t", metadata=META)
    assert [c.error for c in fake.calls] == ["http_503", "http_503", None]


# ---------------------------------------------------------------------- rate limits


@pytest.fixture
async def limited() -> AsyncIterator[FakeSlack]:
    """A fake Slack enforcing Slack's published quotas."""
    fake = FakeSlack(rate_limits=True)
    await fake.start()
    yield fake
    await fake.stop()
    assert fake.problems == []


async def limited_by(limits: RateLimits) -> FakeSlack:
    fake = FakeSlack(rate_limits=limits)
    await fake.start()
    return fake


async def test_a_burst_passes_and_the_next_call_waits(limited: FakeSlack) -> None:
    client = AsyncWebClient(token="xoxb-test", base_url=limited.api_url)
    for n in range(5):  # conversations.create is Tier 2: a burst of 5, then 20 a minute
        await client.conversations_create(name=f"inc-{n}")
    with pytest.raises(SlackApiError) as info:
        await client.conversations_create(name="inc-5")
    response = info.value.response
    assert (response.status_code, response.data) == (429, {"ok": False, "error": "ratelimited"})
    assert response.headers["Retry-After"] == "3"  # one call's worth of 20 a minute, in whole seconds
    assert "inc-5" not in {c.name for c in limited.channels.values()}  # refused, not carried out
    assert limited.answers()["conversations.create"] == Answers(ok=5, ratelimited=1)

    # Each method has its own bucket: Tier 4 still lets its burst of 20 through.
    for _ in range(20):
        await client.auth_test()
    assert await error_of(client.auth_test()) == "ratelimited"


async def test_a_refill_lets_the_next_call_through() -> None:
    fake = await limited_by(RateLimits(methods={"conversations.create": Rate(per_minute=600, burst=2)}))
    try:
        retrying = AsyncWebClient(
            token="xoxb-test",
            base_url=fake.api_url,
            retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=1)],
        )
        for n in range(3):  # the third is refused, waits its Retry-After and goes through
            await retrying.conversations_create(name=f"inc-{n}")
        first, second, refused, third = fake.calls
        assert [c.status for c in fake.calls] == [200, 200, 429, 200]
        assert third.at - refused.at >= 1.0  # Retry-After is at least a second, rounded up
        assert len(fake.channels) == 3

        client = AsyncWebClient(token="xoxb-test", base_url=fake.api_url)
        await client.conversations_create(name="inc-3")  # refilled at 10 a second while it waited
        assert await error_of(client.conversations_create(name="inc-4")) == "ratelimited"
        await asyncio.sleep(0.15)  # a tenth of a second refills one call
        await client.conversations_create(name="inc-4")
    finally:
        await fake.stop()


async def test_posts_are_paced_per_channel(limited: FakeSlack) -> None:
    client = AsyncWebClient(token="xoxb-test", base_url=limited.api_url)
    for channel in ("C_OPS", "C_PAGING"):
        limited.add_channel(channel, channel.lower().removeprefix("c_"))
    card = await client.chat_postMessage(channel="C_OPS", text="card", metadata=META)
    for _ in range(2):  # one a second with a burst of 3; thread replies count against the channel
        await client.chat_postMessage(channel="C_OPS", text="t", thread_ts=card["ts"], metadata=META)
    with pytest.raises(SlackApiError) as info:
        await client.chat_postMessage(channel="C_OPS", text="fourth", metadata=META)
    assert info.value.response.headers["Retry-After"] == "1"
    for _ in range(3):  # another channel has its own bucket
        await client.chat_postMessage(channel="C_PAGING", text="page", metadata=META)

    # A DM to a user id and a post to that DM's own id share one bucket.
    dm = await client.chat_postMessage(channel="U_ALICE", text="page 1")
    await client.chat_postMessage(channel=dm["channel"], text="page 2")
    await client.chat_postMessage(channel="U_ALICE", text="page 3")
    assert await error_of(client.chat_postMessage(channel=dm["channel"], text="page 4")) == "ratelimited"
    await client.chat_postMessage(channel="U_BOB", text="page 1")

    assert [m.text for m in limited.posts("C_OPS")] == ["card", "t", "t"]  # the fourth was not posted
    assert limited.answers()["chat.postMessage"] == Answers(ok=10, ratelimited=2)
    # Other methods draw on their own buckets, not the channel's.
    await client.chat_update(channel="C_OPS", ts=card["ts"], text="card, edited")


async def test_posts_share_a_workspace_ceiling() -> None:
    fake = await limited_by(RateLimits(posts=Rate(per_minute=60, burst=4)))
    try:
        client = AsyncWebClient(token="xoxb-test", base_url=fake.api_url)
        for n in range(5):
            fake.add_channel(f"C_{n}", f"room-{n}")
        for n in range(4):
            await client.chat_postMessage(channel=f"C_{n}", text="t", metadata=META)
        # C_4's own bucket is full, but the workspace's is empty.
        assert (
            await error_of(client.chat_postMessage(channel="C_4", text="t", metadata=META)) == "ratelimited"
        )
        assert len(fake.messages) == 4
    finally:
        await fake.stop()


async def test_a_refused_update_changes_nothing() -> None:
    fake = await limited_by(RateLimits(methods={"chat.update": Rate(per_minute=1, burst=1)}))
    try:
        client = AsyncWebClient(token="xoxb-test", base_url=fake.api_url)
        fake.add_channel("C_OPS", "ops")
        posted = await client.chat_postMessage(channel="C_OPS", text="open", metadata=META)
        await client.chat_update(channel="C_OPS", ts=posted["ts"], text="acknowledged")
        with pytest.raises(SlackApiError) as info:
            await client.chat_update(channel="C_OPS", ts=posted["ts"], text="resolved")
        assert info.value.response.headers["Retry-After"] == "60"
        [message] = fake.messages
        assert (message.text, len(message.history), len(message.edited_at)) == ("acknowledged", 1, 1)
    finally:
        await fake.stop()


async def test_without_the_model_nothing_is_refused(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.add_channel("C_OPS", "ops")
    for n in range(30):
        await client.conversations_create(name=f"inc-{n}")
        await client.chat_postMessage(channel="C_OPS", text="t", metadata=META)
    assert fake.quotas is None
    answers = fake.answers()
    assert (answers["conversations.create"], answers["chat.postMessage"]) == (Answers(ok=30), Answers(ok=30))


async def test_answers_are_counted_by_how_slack_answered(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.add_channel("C_OPS", "ops")
    fake.fail_next("chat.postMessage", status=429, retry_after=1)
    fake.fail_next("chat.postMessage", status=503)
    fake.fail_next("chat.postMessage", error="channel_not_found")
    for _ in range(4):
        with contextlib.suppress(SlackApiError):
            await client.chat_postMessage(channel="C_OPS", text="t", metadata=META)
    assert fake.answers() == {"chat.postMessage": Answers(ok=1, error=1, ratelimited=1, failed=1)}


async def test_updates_that_change_nothing_are_recorded(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.add_channel("C_OPS", "ops")
    posted = await client.chat_postMessage(channel="C_OPS", text="open", blocks=BLOCKS, metadata=META)
    ts = posted["ts"]
    await client.chat_update(channel="C_OPS", ts=ts, text="open", blocks=BLOCKS, metadata=META)
    await client.chat_update(channel="C_OPS", ts=ts, text="open", blocks=BLOCKS)  # metadata kept as is
    assert [(e.channel, e.ts, e.event_type) for e in fake.noop_updates] == [
        ("C_OPS", ts, "incident_declared")
    ] * 2

    resolved = {"event_type": "incident_declared", "event_payload": {"incident_id": 7, "state": "resolved"}}
    await client.chat_update(channel="C_OPS", ts=ts, text="open", blocks=BLOCKS, metadata=resolved)
    await client.chat_update(channel="C_OPS", ts=ts, text="resolved", blocks=BLOCKS, metadata=resolved)
    await client.chat_update(channel="C_OPS", ts=ts, text="resolved", blocks=BLOCKS[:2], metadata=resolved)
    assert len(fake.noop_updates) == 2  # each of the last three changed something
    assert [e.ts for e in fake.metadata_only_updates] == [ts]  # ... the first only what nobody sees


async def test_a_message_keeps_when_it_was_posted_and_edited(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.add_channel("C_OPS", "ops")
    before = time.time()
    posted = await client.chat_postMessage(channel="C_OPS", text="open", metadata=META)
    await client.chat_update(channel="C_OPS", ts=posted["ts"], text="acknowledged")
    [message] = fake.messages
    assert before <= message.posted_at <= message.edited_at[0] <= time.time()
    assert message.posted_monotonic <= time.monotonic()


async def test_the_bench_fake_enforces_quotas_when_asked() -> None:
    """bench/servers.py's `fake --rate-limits`: its /stats counts the answers by method."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "bench/servers.py", "fake", "--rate-limits", cwd=str(ROOT), stdout=subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        urls = json.loads(await asyncio.wait_for(process.stdout.readline(), 30))
        client = AsyncWebClient(token="xoxb-test", base_url=urls["api_url"])
        for n in range(5):
            await client.conversations_create(name=f"inc-{n}")
        assert await error_of(client.conversations_create(name="inc-5")) == "ratelimited"
        async with aiohttp.ClientSession() as session, session.get(urls["stats_url"]) as response:
            stats = await response.json()
        assert stats["answers"]["conversations.create"] == {
            "ok": 5,
            "error": 0,
            "ratelimited": 1,
            "failed": 0,
        }
        assert stats["noop_updates"] == 0
    finally:
        process.terminate()
        await process.wait()


# ---------------------------------------------------------------------- waiting and response urls


async def test_wait_for_polls_until_true(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.add_channel("C_OPS", "ops")

    async def post_later() -> None:
        await asyncio.sleep(0.05)
        await client.chat_postMessage(channel="C_OPS", text="late", metadata=META)

    task = asyncio.create_task(post_later())
    [message] = await fake.wait_for(lambda: fake.posts(channel="C_OPS"))
    await task
    assert message.text == "late"


async def test_wait_for_times_out_with_a_summary(fake: FakeSlack, client: AsyncWebClient) -> None:
    await client.auth_test()
    with pytest.raises(AssertionError, match=r"(?s)within 0.1s.*auth\.test ok"):
        await fake.wait_for(lambda: fake.messages, timeout=0.1)


async def test_response_url_posts_are_recorded(fake: FakeSlack) -> None:
    url = fake.new_response_url()
    response = await AsyncWebhookClient(url).send(text="Incident declared", response_type="in_channel")
    assert response.status_code == 200
    assert fake.responses == [
        {"url": url, "body": {"text": "Incident declared", "response_type": "in_channel"}}
    ]

    unknown = await AsyncWebhookClient(f"{fake.base_url}/response/nope").send(text="x")
    assert unknown.status_code == 404 and "never issued" in fake.problems[0]
    fake.problems.clear()


# ---------------------------------------------------------------------- socket mode


async def start_socket_client(fake: FakeSlack, ack_with: dict | None) -> SocketModeClient:
    socket = SocketModeClient(app_token="xapp-1-test", web_client=AsyncWebClient(base_url=fake.api_url))

    async def on_request(client: AsyncBaseSocketModeClient, request: SocketModeRequest) -> None:
        if ack_with is not None:
            payload = {key: value.format(**request.payload) for key, value in ack_with.items()}
            await client.send_socket_mode_response(SocketModeResponse(request.envelope_id, payload=payload))

    socket.socket_mode_request_listeners.append(on_request)
    await socket.connect()
    return socket


async def test_socket_mode_envelope_round_trip(fake: FakeSlack) -> None:
    socket = await start_socket_client(fake, ack_with={"text": "declaring {text}"})
    try:
        await fake.socket_connected()
        command = {**load_payload("slash_command"), "command": "/incident", "text": "db down"}
        ack = await fake.socket_send("slash_commands", command, accepts_response_payload=True)
    finally:
        await socket.close()
    assert set(ack) == {"envelope_id", "payload"}
    assert ack["payload"] == {"text": "declaring db down"}
    assert fake.calls_of("apps.connections.open")[0].ok
    assert fake.problems == []


async def test_socket_send_fails_without_an_ack(fake: FakeSlack) -> None:
    with pytest.raises(AssertionError, match="no Socket Mode client"):
        await fake.socket_send("events_api", {"type": "event_callback"})
    socket = await start_socket_client(fake, ack_with=None)
    try:
        await fake.socket_connected()
        with pytest.raises(AssertionError, match="no ack for interactive envelope"):
            await fake.socket_send("interactive", load_payload("block_actions"), timeout=0.2)
    finally:
        await socket.close()


# ---------------------------------------------------------------------- signed requests


def test_signatures_are_accepted_by_slack_sdk(fake: FakeSlack) -> None:
    requests = SlackRequests("http://127.0.0.1:9/slack/events", SECRET, fake)
    body = b"token=x&team_id=T0001&text=db+down"
    headers = requests.sign(body)
    assert headers["X-Slack-Signature"].startswith("v0=")
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert SignatureVerifier(SECRET).is_valid_request(body, headers)
    assert not SignatureVerifier("another-secret").is_valid_request(body, headers)
    assert not SignatureVerifier(SECRET).is_valid_request(body + b"&x=1", headers)
    assert not SignatureVerifier(SECRET).is_valid_request(body, requests.sign(body, int(time.time()) - 600))


def test_payload_files_have_slack_shapes() -> None:
    command = load_payload("slash_command")
    assert set(command) == {
        "token",
        "team_id",
        "team_domain",
        "channel_id",
        "channel_name",
        "user_id",
        "user_name",
        "command",
        "text",
        "api_app_id",
        "is_enterprise_install",
        "response_url",
        "trigger_id",
    }
    assert all(isinstance(v, str) for v in command.values())  # form fields
    for name in ("slash_command_markup", "slash_command_escaped"):
        typed = load_payload(name)
        assert set(typed) == set(command) and all(isinstance(v, str) for v in typed.values())
    assert load_payload("block_actions")["actions"][0]["type"] == "button"
    assert load_payload("view_submission")["view"]["state"]["values"]


@pytest.fixture
async def bolt(fake: FakeSlack) -> AsyncIterator[tuple[SlackRequests, dict[str, Any]]]:
    """A bare slack_bolt AsyncApp served over HTTP, recording what its listeners received."""
    seen: dict[str, Any] = {}
    app = AsyncApp(client=AsyncWebClient(token="xoxb-test", base_url=fake.api_url), signing_secret=SECRET)

    @app.command("/incident")
    async def on_command(ack: Any, body: dict, client: AsyncWebClient, respond: Any) -> None:
        await ack(f"declaring {body['text']}")
        seen["command"] = body
        await client.views_open(trigger_id=body["trigger_id"], view=MODAL)
        await respond("modal opened")

    @app.action("acknowledge")
    async def on_click(ack: Any, body: dict) -> None:
        await ack()
        seen["click"] = body

    @app.view("declare")
    async def on_submit(ack: Any, view: dict) -> None:
        await ack()
        seen["view"] = view

    async def on_event(body: dict, request: Any) -> None:
        seen.setdefault("events", []).append((body, request.headers))

    for kind in ("reaction_added", "reaction_removed", "pin_added", "pin_removed", "app_home_opened"):
        app.event(kind)(on_event)

    @app.shortcut("capture_message")
    async def on_message_shortcut(ack: Any, body: dict, client: AsyncWebClient) -> None:
        await ack()
        seen["message_shortcut"] = body
        await client.views_open(trigger_id=body["trigger_id"], view=MODAL)

    @app.shortcut("declare_incident")
    async def on_global_shortcut(ack: Any, body: dict, client: AsyncWebClient) -> None:
        await ack()
        seen["global_shortcut"] = body
        await client.views_open(trigger_id=body["trigger_id"], view=MODAL)

    runner = web.AppRunner(app.web_app(path="/slack/events"))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    requests = SlackRequests(f"http://127.0.0.1:{port}/slack/events", SECRET, fake)
    yield requests, seen
    await requests.close()
    await runner.cleanup()


async def test_bolt_handles_a_signed_command(fake: FakeSlack, bolt: tuple[SlackRequests, dict]) -> None:
    requests, seen = bolt
    fake.add_channel("C_GENERAL", "general")
    reply = await requests.command("db down")
    assert (reply.status, reply.body) == (200, "declaring db down")  # bolt acks text as text/plain

    await fake.wait_for(lambda: fake.responses)
    assert seen["command"]["channel_name"] == "general" and seen["command"]["user_name"] == "alice"
    assert fake.responses[0]["url"] == seen["command"]["response_url"]
    assert fake.responses[0]["body"]["text"] == "modal opened"
    assert fake.views[0]["trigger_id"] == seen["command"]["trigger_id"]
    assert fake.problems == []


@pytest.mark.parametrize(
    ("typed", "payload"),
    [
        (
            "update R&D is fixed, over to <@U0CAROL|carol> in <#C0OPS|ops>; see "
            "<https://status.example.com|status page> cc <!subteam^S0SRE|@sre>",
            "slash_command_markup",
        ),
        ("declare P2 Checkout <500ms> budget blown for EU & US <!channel> <!here>", "slash_command_escaped"),
    ],
    ids=["markup", "escaped"],
)
async def test_command_text_arrives_as_slack_sends_it(
    fake: FakeSlack, bolt: tuple[SlackRequests, dict], typed: str, payload: str
) -> None:
    requests, seen = bolt
    await requests.command(typed)
    await fake.wait_for(lambda: "command" in seen)
    assert seen["command"]["text"] == load_payload(payload)["text"]


@pytest.mark.parametrize(
    ("typed", "sent"),
    [
        ("R&D <b>", "R&amp;D &lt;b&gt;"),
        ("R&amp;D", "R&amp;amp;D"),  # typed literally, so encoded once more
        ("<https://a.example/?x=1&y=2>", "<https://a.example/?x=1&amp;y=2>"),
        ("<mailto:sre@example.com|sre@example.com>", "<mailto:sre@example.com|sre@example.com>"),
        ("<!everyone> <!here|here>", "<!everyone> <!here|here>"),
        (
            "<@carol> <!channelx> <#ops> <javascript:x|y>",
            "&lt;@carol&gt; &lt;!channelx&gt; &lt;#ops&gt; &lt;javascript:x|y&gt;",
        ),
        ("a > b", "a &gt; b"),
    ],
)
def test_slack_encoding_of_typed_text(typed: str, sent: str) -> None:
    assert slack_encoded(typed) == sent


async def test_bolt_refuses_a_bad_signature(bolt: tuple[SlackRequests, dict]) -> None:
    requests, seen = bolt
    body = b"command=%2Fincident&text=db+down"
    headers = {**requests.sign(body), "X-Slack-Signature": "v0=" + "0" * 64}
    reply = await requests.post(body, headers)
    assert reply.status == 401 and "command" not in seen


async def test_bolt_handles_a_click_on_a_posted_message(
    fake: FakeSlack, bolt: tuple[SlackRequests, dict]
) -> None:
    requests, seen = bolt
    fake.add_channel("C_OPS", "ops")
    ts = (
        await AsyncWebClient(token="xoxb-test", base_url=fake.api_url).chat_postMessage(
            channel="C_OPS", text="Incident #7", blocks=BLOCKS, metadata=META
        )
    )["ts"]

    reply = await requests.click("acknowledge", "7", message_ts=ts, user="U_BOB")
    assert reply.status == 200
    click = seen["click"]
    assert click["container"] == {
        "type": "message",
        "message_ts": ts,
        "channel_id": "C_OPS",
        "is_ephemeral": False,
    }
    assert click["actions"][0]["block_id"] == "incident_actions"
    assert click["actions"][0]["text"]["text"] == "Acknowledge"
    assert click["message"]["blocks"] == BLOCKS and click["user"]["id"] == "U_BOB"
    with pytest.raises(AssertionError, match="no button 'resolve'"):
        await requests.click("resolve", "7", message_ts=ts)


async def test_bolt_handles_a_modal_submission(fake: FakeSlack, bolt: tuple[SlackRequests, dict]) -> None:
    requests, seen = bolt
    fake.add_channel("C_GENERAL", "general")
    await requests.command("db down")
    await fake.wait_for(lambda: fake.views)

    reply = await requests.submit("declare", {"title": {"value": text_input("DB down")}})
    assert reply.status == 200
    view = seen["view"]
    assert view["id"] == fake.views[0]["view_id"] and view["private_metadata"] == "C_GENERAL"
    assert view["state"]["values"] == {
        "title": {"value": {"type": "plain_text_input", "value": "DB down"}},
        "severity": {
            "value": {"type": "static_select", "selected_option": None}
        },  # untouched, as Slack sends it
    }
    with pytest.raises(AssertionError, match="is a plain_text_input"):
        await requests.submit("declare", {"title": {"value": select("sev1")}})


# Slack's AsyncAPI description of the Events API (slackapi/slack-api-specs, MIT, as tests/spec/LICENSE)
EVENTS_SPEC = json.loads((ROOT / "tests" / "spec" / "slack-events-api.json").read_text())
EVENT_FIXTURES = ("reaction_added", "reaction_removed", "pin_added", "pin_removed", "app_home_opened")


def test_event_fixtures_meet_the_events_api_description() -> None:
    wrapper = EVENTS_SPEC["components"]["schemas"]["GenericEventWrapper"]
    envelope = load_payload("event_callback")
    assert set(wrapper["required"]) <= set(envelope) and envelope["type"] == "event_callback"
    assert isinstance(envelope["event_time"], int) and envelope["authorizations"][0]["is_bot"] is True
    for name in EVENT_FIXTURES:
        event = load_payload(name)
        assert set(wrapper["properties"]["event"]["required"]) <= set(event), name
        assert event["type"] == name and re.fullmatch(r"\d+\.\d{6}", event["event_ts"]), name
        topic = EVENTS_SPEC["topics"].get(name.replace("_", "."))
        if topic is not None:  # the description predates app_home_opened
            assert topic["subscribe"]["externalDocs"]["url"].endswith(f"/events/{name}")
    for name in ("reaction_added", "reaction_removed"):
        event = load_payload(name)
        assert set(event) == {"type", "user", "reaction", "item", "item_user", "event_ts"}
        assert set(event["item"]) == {"type", "channel", "ts"}
    for name in ("pin_added", "pin_removed"):
        event = load_payload(name)
        assert {"user", "channel_id", "item", "item_user", "pin_count", "pinned_info"} <= set(event)
        assert {"type", "created", "created_by", "channel", "message"} <= set(event["item"])
    assert "has_pins" in load_payload("pin_removed")
    assert load_payload("app_home_opened")["view"]["type"] == "home"
    assert set(load_payload("url_verification")) == {"token", "challenge", "type"}
    retry = load_payload("event_retry_headers")
    assert set(retry["headers"]) == {"X-Slack-Retry-Num", "X-Slack-Retry-Reason"}
    assert retry["headers"]["X-Slack-Retry-Reason"] in retry["reasons"]


def test_shortcut_fixtures_have_slack_shapes() -> None:
    action = load_payload("message_action")
    assert action["type"] == "message_action"
    assert {"callback_id", "trigger_id", "response_url", "message_ts", "message", "channel"} <= set(action)
    assert action["message"]["ts"] == action["message_ts"]
    shortcut = load_payload("shortcut")
    assert shortcut["type"] == "shortcut" and {"callback_id", "trigger_id", "user", "team"} <= set(shortcut)
    assert "channel" not in shortcut and "response_url" not in shortcut


def test_events_are_signed_as_json(fake: FakeSlack) -> None:
    requests = SlackRequests("http://127.0.0.1:9/slack/events", SECRET, fake)
    body = json.dumps(load_payload("event_callback")).encode()
    headers = requests.sign(body, content_type="application/json")
    assert headers["Content-Type"] == "application/json"
    assert SignatureVerifier(SECRET).is_valid_request(body, headers)


async def test_bolt_receives_events_and_their_retries(
    fake: FakeSlack, bolt: tuple[SlackRequests, dict]
) -> None:
    requests, seen = bolt
    fake.add_channel("C_OPS", "ops", members=["UBOT", "U_ALICE"])
    said = fake.add_message("C_OPS", "U_ALICE", "db down")
    fake.react("C_OPS", said.ts, "U_ALICE", "eyes")
    event = requests.reaction_added("C_OPS", said.ts, user="U_ALICE", name="eyes")
    assert event["item"] == {"type": "message", "channel": "C_OPS", "ts": said.ts}
    assert event["item_user"] == "U_ALICE"

    first = await requests.event(event)
    assert first.status == 200 and first.event_id and first.event_id.startswith("Ev")
    await fake.wait_for(lambda: len(seen.get("events", [])) == 1)
    body, headers = seen["events"][0]
    assert body["event"] == event and body["event_id"] == first.event_id
    assert body["team_id"] == "T0001" and body["authorizations"][0]["user_id"] == "UBOT"
    assert "x-slack-retry-num" not in headers

    again = await requests.event(event, retry_num=1, event_id=first.event_id)
    assert again.event_id == first.event_id
    await fake.wait_for(lambda: len(seen["events"]) == 2)
    retried, headers = seen["events"][1]
    assert retried == body  # the same envelope, event_time included
    assert (headers["x-slack-retry-num"], headers["x-slack-retry-reason"]) == (["1"], ["http_timeout"])
    with pytest.raises(AssertionError, match="no retry reason"):
        await requests.event(event, retry_num=2, retry_reason="bored", event_id=first.event_id)
    with pytest.raises(AssertionError, match="fake.react"):
        requests.reaction_added("C_OPS", said.ts, user="U_ALICE", name="tada")

    fake.unreact("C_OPS", said.ts, "U_ALICE", "eyes")
    removed = requests.reaction_removed("C_OPS", said.ts, user="U_ALICE", name="eyes")
    assert removed["type"] == "reaction_removed" and removed["reaction"] == "eyes"


async def test_pin_events_carry_the_message(fake: FakeSlack, bolt: tuple[SlackRequests, dict]) -> None:
    requests, seen = bolt
    fake.add_channel("C_OPS", "ops", members=["UBOT", "U_ALICE", "U_BOB"])
    said = fake.add_message("C_OPS", "U_ALICE", "root cause: expired cert", files=[{"name": "cert.txt"}])
    with pytest.raises(AssertionError, match="fake.pin_by"):
        requests.pin_added("C_OPS", said.ts, user="U_BOB")
    fake.pin_by("C_OPS", said.ts, "U_BOB")
    added = requests.pin_added("C_OPS", said.ts, user="U_BOB")
    assert (added["user"], added["channel_id"], added["item_user"], added["pin_count"]) == (
        "U_BOB",
        "C_OPS",
        "U_ALICE",
        1,
    )
    item = added["item"]
    assert (item["type"], item["channel"], item["created_by"]) == ("message", "C_OPS", "U_BOB")
    assert item["message"]["text"] == "root cause: expired cert" and item["message"]["ts"] == said.ts
    assert item["message"]["files"][0]["name"] == "cert.txt"
    assert item["message"]["permalink"] == fake.permalink("C_OPS", said.ts)
    assert added["pinned_info"] == {"channel": "C_OPS", "pinned_by": "U_BOB", "pinned_ts": item["created"]}
    await requests.event(added)
    await fake.wait_for(lambda: seen.get("events"))
    assert seen["events"][0][0]["event"]["type"] == "pin_added"

    fake.unpin_by("C_OPS", said.ts, "U_ALICE")
    removed = requests.pin_removed("C_OPS", said.ts, user="U_ALICE")
    assert (removed["has_pins"], removed["pin_count"], removed["item"]["created_by"]) == (False, 0, "U_BOB")
    assert "pinned_to" not in removed["item"]["message"]


async def test_app_home_opened_carries_the_published_home(
    fake: FakeSlack, client: AsyncWebClient, bolt: tuple[SlackRequests, dict]
) -> None:
    requests, _ = bolt
    before = requests.app_home_opened("U_ALICE")
    assert "view" not in before and before["tab"] == "home"
    assert before["channel"] == fake.dm_id("U_ALICE") and before["channel"].startswith("D")
    published = (await client.views_publish(user_id="U_ALICE", view=HOME))["view"]
    assert requests.app_home_opened("U_ALICE")["view"] == published
    assert "view" not in requests.app_home_opened("U_ALICE", tab="messages")


async def test_url_verification_is_answered_with_the_challenge(bolt: tuple[SlackRequests, dict]) -> None:
    requests, _ = bolt
    reply = await requests.url_verification("3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P")
    assert reply.status == 200
    assert reply.json == {"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}


async def test_bolt_handles_shortcuts(fake: FakeSlack, bolt: tuple[SlackRequests, dict]) -> None:
    requests, seen = bolt
    fake.add_channel("C_OPS", "ops", members=["UBOT", "U_ALICE"])
    said = fake.add_message("C_OPS", "U_ALICE", "db &lt;primary&gt; down <@U_BOB>")
    reply = await requests.message_shortcut("capture_message", channel="C_OPS", ts=said.ts, user="U_BOB")
    assert reply.status == 200
    shortcut = seen["message_shortcut"]
    assert (shortcut["type"], shortcut["callback_id"], shortcut["message_ts"]) == (
        "message_action",
        "capture_message",
        said.ts,
    )
    assert shortcut["message"]["text"] == "db &lt;primary&gt; down <@U_BOB>"
    assert shortcut["message"]["user"] == "U_ALICE" and shortcut["user"]["id"] == "U_BOB"
    assert shortcut["channel"] == {"id": "C_OPS", "name": "ops"}
    await fake.wait_for(lambda: fake.views)
    assert fake.views[0]["trigger_id"] == shortcut["trigger_id"]  # a trigger the fake issued

    reply = await requests.global_shortcut("declare_incident", user="U_ALICE")
    assert reply.status == 200
    assert (
        seen["global_shortcut"]["type"] == "shortcut" and seen["global_shortcut"]["user"]["id"] == "U_ALICE"
    )
    await fake.wait_for(lambda: len(fake.views) == 2)
