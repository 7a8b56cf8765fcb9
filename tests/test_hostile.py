"""Payloads only a holder of the signing secret could send, and buttons Tocsin no longer has: each gets
a 200 and, where there is a person to tell, a private answer; nothing changes and nothing is posted."""

from __future__ import annotations

import json
import time
from urllib.parse import urlencode

from handlers import ids
from tests.helpers import declare, drained
from tests.signed import load_payload


async def _send_payload(bot, payload: dict):
    body = urlencode({"payload": json.dumps(payload)}).encode()
    return await bot.slack.post(body, bot.slack.sign(body))


def _click_payload(bot, action_id: str, value: str, *, channel: str = "C_GENERAL") -> dict:
    payload = load_payload("block_actions")
    payload.update(
        user={"id": "U_ALICE", "username": "alice", "name": "alice", "team_id": "T0001"},
        api_app_id="A1",
        team={"id": "T0001", "domain": "tocsin-test"},
        channel={"id": channel, "name": "general"},
        container={"type": "message", "message_ts": "1.000001", "channel_id": channel, "is_ephemeral": False},
        trigger_id=bot.fake.new_trigger_id(),
        response_url=bot.fake.new_response_url(),
        actions=[
            {
                "action_id": action_id,
                "block_id": "actions",
                "text": {"type": "plain_text", "text": "Old", "emoji": True},
                "value": value,
                "type": "button",
                "action_ts": f"{time.time():.6f}",
            }
        ],
    )
    return payload


async def _unchanged(bot) -> tuple[int, int]:
    await drained(bot)
    return len(bot.fake.messages), sum(len(m.history) for m in bot.fake.messages)


async def test_a_button_tocsin_no_longer_has_is_answered_privately(bot) -> None:
    before = await _unchanged(bot)
    reply = await _send_payload(bot, _click_payload(bot, "incident_retired_button", "1"))
    assert reply.status == 200, reply.body
    answer = await bot.fake.wait_for(lambda: bot.fake.responses)
    assert "no longer in use" in answer[-1]["body"]["text"]
    assert answer[-1]["body"].get("response_type") == "ephemeral"
    assert await _unchanged(bot) == before


async def test_a_click_without_a_user_changes_nothing(bot) -> None:
    incident = await declare(bot, "P3 Cache cold")
    before = await _unchanged(bot)
    payload = _click_payload(bot, ids.ACKNOWLEDGE, "1", channel=incident.channel.id)
    del payload["user"]
    reply = await _send_payload(bot, payload)
    assert reply.status == 200, reply.body
    assert await _unchanged(bot) == before
    shown = await bot.slack.command("show", channel=incident.channel.id)
    assert "triage" in shown.json["text"].lower() or "triage" in json.dumps(shown.json["blocks"]).lower()


async def test_a_click_with_no_actions_or_an_odd_value_changes_nothing(bot) -> None:
    incident = await declare(bot, "P3 Cache cold")
    before = await _unchanged(bot)
    payload = _click_payload(bot, ids.ACKNOWLEDGE, "1", channel=incident.channel.id)
    payload["actions"] = []
    assert (await _send_payload(bot, payload)).status == 200
    payload = _click_payload(bot, ids.ACKNOWLEDGE, "²", channel=incident.channel.id)
    assert (await _send_payload(bot, payload)).status == 200
    payload = _click_payload(bot, ids.ACKNOWLEDGE, "1", channel=incident.channel.id)
    payload["actions"][0]["value"] = {"not": "a string"}
    assert (await _send_payload(bot, payload)).status == 200
    assert await _unchanged(bot) == before


async def test_a_slash_command_without_a_user_is_refused_privately(bot) -> None:
    fields = load_payload("slash_command")
    fields.update(
        command="/incident", text="declare P1 Nobody typed this", response_url=bot.fake.new_response_url()
    )
    fields.pop("user_id", None)
    body = urlencode(fields).encode()
    before = await _unchanged(bot)
    reply = await bot.slack.post(body, bot.slack.sign(body))
    assert reply.status == 200, reply.body
    assert reply.json["response_type"] == "ephemeral"
    assert "who" in reply.json["text"].lower()
    assert await _unchanged(bot) == before


async def test_deeply_nested_private_metadata_is_refused_in_the_form(bot) -> None:
    incident = await declare(bot, "P3 Cache cold")
    await bot.slack.command("ack", channel=incident.channel.id)
    before = await _unchanged(bot)
    nested = "[" * 2900 + "]" * 2900
    reply = await bot.slack.submit(
        ids.UPDATE_VIEW,
        {ids.UPDATE_TEXT: {ids.UPDATE_TEXT: {"type": "plain_text_input", "value": "All good"}}},
        private_metadata=nested,
    )
    assert reply.status == 200, reply.body
    assert reply.json["response_action"] == "errors"
    assert "open it again" in json.dumps(reply.json["errors"])
    assert await _unchanged(bot) == before


async def test_a_declare_form_without_its_fields_is_refused_in_the_form(bot) -> None:
    before = await _unchanged(bot)
    reply = await bot.slack.submit(ids.DECLARE_VIEW, {}, private_metadata='{"channel": "C_GENERAL"}')
    assert reply.status == 200, reply.body
    assert reply.json["response_action"] == "errors"
    assert ids.TITLE in reply.json["errors"]
    assert await _unchanged(bot) == before


async def test_a_declare_form_with_malformed_state_is_refused_in_the_form(bot) -> None:
    before = await _unchanged(bot)
    state = {
        ids.TITLE: {ids.TITLE: {"type": "plain_text_input", "value": ["not", "text"]}},
        ids.IMPACT: {ids.IMPACT: {"type": "static_select", "selected_option": {"text": "no value"}}},
        ids.CATEGORY: "not an object",
    }
    reply = await bot.slack.submit(ids.DECLARE_VIEW, state, private_metadata='{"channel": 5}')
    assert reply.status == 200, reply.body
    assert reply.json["response_action"] == "errors"
    assert await _unchanged(bot) == before
