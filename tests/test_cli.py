"""The `tocsin` command: serve, socket, manifest and check-config, run as real processes."""

from __future__ import annotations

import asyncio
import json
import sqlite3

import aiohttp
import pytest
import yaml

from bot.slack import METHOD_SCOPES
from tests.conftest import ANNOUNCE, ROOT, SECRET, shipped_config
from tests.helpers import drained
from tests.processes import environment, free_port, run, start, terminate, wait_healthy
from tests.signed import SlackRequests, load_payload

pytestmark = pytest.mark.slow


async def test_serve_acks_signed_commands_and_stops_cleanly_on_sigterm(tmp_path, fake, database_url) -> None:
    port = free_port()
    env = environment(
        SLACK_BOT_TOKEN="xoxb-test",
        SLACK_SIGNING_SECRET=SECRET,
        SLACK_API_URL=fake.api_url,
        DATABASE_URL=database_url,
        TOCSIN_CONFIG=str(ROOT / "app.yaml"),
    )
    log = tmp_path / "serve.log"
    process = await start("serve", "--host", "127.0.0.1", "--port", str(port), env=env, log=log)
    try:
        await wait_healthy(f"http://127.0.0.1:{port}", process, log)
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}/healthz") as response,
        ):
            health = await response.json()
        assert health["status"] == "ok"
        assert health["timers"] == {"oldest_due_seconds": None}
        assert health["outbox"] == {
            "backlog": 0,
            "oldest_seconds": None,
            "failed": 0,
            "by_urgency": {},
            "most_urgent": None,
            "held": 0,
        }
        slack = SlackRequests(f"http://127.0.0.1:{port}/slack/events", SECRET, fake)
        reply = await slack.command("declare P2 Search index stale")
        assert "INC-1" in reply.body
        card = await fake.wait_for(
            lambda: [m for m in fake.posts(event_type="incident_declared") if m.channel.startswith("C0000")]
        )
        assert card[0].payload["incident_id"] == "INC-1"
        await slack.close()
    finally:
        code = await terminate(process)
    output = log.read_text()
    assert code == 0, output
    assert "Traceback" not in output
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert any(line.get("event") == "stopped" for line in lines)
    assert any(
        line.get("event") == "outbox_delivered" and line.get("incident_id") == "INC-1" for line in lines
    )


async def test_socket_mode_acks_envelopes_and_acts(tmp_path, fake, database_url) -> None:
    env = environment(
        SLACK_BOT_TOKEN="xoxb-test",
        SLACK_APP_TOKEN="xapp-1-test",
        SLACK_API_URL=fake.api_url,
        DATABASE_URL=database_url,
        TOCSIN_CONFIG=str(ROOT / "app.yaml"),
    )
    log = tmp_path / "socket.log"
    process = await start("socket", env=env, log=log)
    try:
        await fake.socket_connected(timeout=20)
        command = {
            "token": "x",
            "team_id": "T0001",
            "team_domain": "example",
            "channel_id": "C_GENERAL",
            "channel_name": "general",
            "user_id": "U_ALICE",
            "user_name": "alice",
            "command": "/incident",
            "text": "declare P1 Socket fire",
            "api_app_id": "A1",
            "is_enterprise_install": "false",
            "response_url": fake.new_response_url(),
            "trigger_id": fake.new_trigger_id(),
        }
        ack = await fake.socket_send("slash_commands", command, accepts_response_payload=True)
        assert "INC-1" in ack["payload"]["text"] and ack["payload"]["response_type"] == "ephemeral"
        card = await fake.wait_for(
            lambda: [m for m in fake.posts(event_type="incident_declared") if m.channel.startswith("C0000")]
        )
        click = {
            "type": "block_actions",
            "user": {"id": "U_BOB", "username": "bob", "team_id": "T0001"},
            "api_app_id": "A1",
            "team": {"id": "T0001", "domain": "example"},
            "container": {"type": "message", "message_ts": card[0].ts, "channel_id": card[0].channel},
            "channel": {"id": card[0].channel, "name": "inc"},
            "trigger_id": fake.new_trigger_id(),
            "response_url": fake.new_response_url(),
            "message": {"ts": card[0].ts, "text": card[0].text, "blocks": card[0].blocks},
            "actions": [
                {
                    "action_id": "incident_acknowledge",
                    "block_id": "incident_actions",
                    "value": "1",
                    "type": "button",
                    "action_ts": "1",
                }
            ],
        }
        await fake.socket_send("interactive", click)
        acked = await fake.wait_for(lambda: fake.posts(event_type="incident_acknowledged"))
        assert "<@U_BOB>" in acked[0].text
        # Events come over the socket too: a pushpin captures a message, and Tocsin confirms it.
        said = fake.add_message(card[0].channel, "U_ALICE", "The disk filled at 10:02")
        fake.react(card[0].channel, said.ts, "U_ALICE", "pushpin")
        envelope = load_payload("event_callback")
        envelope["event"] = {
            **load_payload("reaction_added"),
            "user": "U_ALICE",
            "reaction": "pushpin",
            "item": {"type": "message", "channel": card[0].channel, "ts": said.ts},
            "item_user": "U_ALICE",
        }
        await fake.socket_send("events_api", envelope)
        await fake.wait_for(
            lambda: fake.reactions(card[0].channel, said.ts).get("white_check_mark"), timeout=10
        )
    finally:
        code = await terminate(process)
    assert code == 0, log.read_text()


async def test_missing_environment_exits_2_with_one_line_per_problem(tmp_path) -> None:
    code, out, err = await run("serve", env=environment(TOCSIN_CONFIG=str(ROOT / "app.yaml")))
    assert code == 2
    assert err.splitlines() == ["SLACK_BOT_TOKEN: is not set", "SLACK_SIGNING_SECRET: is not set"]
    code, out, err = await run(
        "socket", env=environment(SLACK_BOT_TOKEN="xoxb-1", TOCSIN_CONFIG=str(ROOT / "app.yaml"))
    )
    assert code == 2 and err.splitlines() == ["SLACK_APP_TOKEN: is not set"]


async def test_bad_app_yaml_names_each_key_and_exits_2(tmp_path) -> None:
    config = shipped_config()
    config["priorities"]["P1"]["response"] = "15 minutes"
    config["escalation"]["levels"][1]["notify"] = ["someone"]
    config["default_priority"] = "P9"
    config["colour"] = "red"
    path = tmp_path / "app.yaml"
    path.write_text(yaml.safe_dump(config))
    code, out, err = await run("check-config", str(path), env=environment())
    assert code == 2
    lines = err.splitlines()
    assert 'priorities.P1.response: "15 minutes" is not a duration (use 90s, 15m, 4h or 2d)' in lines
    assert any(line.startswith("escalation.levels[1].notify[0]:") for line in lines)
    assert any(line.startswith("default_priority:") for line in lines)
    assert any(line.startswith("colour: unknown key") for line in lines)
    assert "Traceback" not in err
    env = environment(SLACK_BOT_TOKEN="xoxb-1", SLACK_SIGNING_SECRET="s", TOCSIN_CONFIG=str(path))
    code, out, err = await run("serve", env=env)
    assert code == 2 and len(err.splitlines()) == 4 and "Traceback" not in err
    path.write_text("priorities: [unclosed")
    code, out, err = await run("check-config", str(path), env=environment())
    assert code == 2 and "is not valid YAML" in err and "Traceback" not in err
    code, out, err = await run("check-config", str(ROOT / "app.yaml"), env=environment())
    assert code == 0


async def test_manifest_has_the_command_interactivity_and_exactly_the_scopes_used() -> None:
    code, out, err = await run("manifest", "--url", "https://bot.example.com", env=environment())
    assert code == 0, err
    manifest = yaml.safe_load(out)
    command = manifest["features"]["slash_commands"][0]
    assert command["command"] == "/incident" and command["should_escape"] is True
    assert command["url"] == "https://bot.example.com/slack/events"
    assert manifest["settings"]["interactivity"] == {
        "is_enabled": True,
        "request_url": "https://bot.example.com/slack/events",
    }
    used = {scope for scope in METHOD_SCOPES.values() if scope}
    # the events that capture a message need reactions:read and pins:read; shortcuts need commands
    events = {"reactions:read", "pins:read"}
    assert set(manifest["oauth_config"]["scopes"]["bot"]) == used | {"commands", "chat:write.public"} | events
    assert manifest["settings"]["event_subscriptions"] == {
        "bot_events": ["app_home_opened", "pin_added", "pin_removed", "reaction_added", "reaction_removed"],
        "request_url": "https://bot.example.com/slack/events",
    }
    assert manifest["features"]["app_home"]["home_tab_enabled"] is True
    assert {(s["type"], s["callback_id"]) for s in manifest["features"]["shortcuts"]} == {
        ("message", "timeline_add"),
        ("message", "declare_from_message"),
        ("global", "declare_incident"),
    }
    code, out, err = await run("manifest", "--socket", env=environment())
    socket = yaml.safe_load(out)
    assert (
        socket["settings"]["socket_mode_enabled"] is True
        and "url" not in socket["features"]["slash_commands"][0]
    )


async def test_timers_and_outbox_commands_read_the_store(tmp_path, database_url, bot) -> None:
    await bot.slack.command("declare P1 Storage array degraded")
    await bot.fake.wait_for(lambda: bot.fake.posts(event_type="escalation_page"))
    env = environment(DATABASE_URL=database_url, TOCSIN_CONFIG=str(ROOT / "app.yaml"))
    code, out, err = await run("timers", "INC-1", env=env)
    assert code == 0, err
    lines = out.splitlines()
    kinds = {line.split()[1] for line in lines[1:-1]}
    assert kinds == {"sla_warning", "sla_breached", "escalation_page", "escalation_repeat"}
    assert lines[-1] == "6 pending timers"  # two clocks x (warning, breach), next level, re-page
    code, out, err = await run("timers", "INC-99", env=env)
    assert code == 1 and "INC-99 not found" in err
    code, out, err = await run("outbox", env=env)
    assert code == 0 and out.splitlines()[-1].endswith("0 failed")


async def test_operator_command_waits_for_another_process_holding_the_sqlite_write_lock(tmp_path) -> None:
    """The bot writes every second or so (heartbeats, leases, sweeps); a CLI command that starts in one
    of those moments waits for the lock instead of failing with `database is locked`."""
    database = tmp_path / "tocsin.db"
    env = environment(DATABASE_URL=f"sqlite:///{database}", TOCSIN_CONFIG=str(ROOT / "app.yaml"))
    code, out, err = await run("timers", env=env)  # creates and migrates the database
    assert code == 0 and out.splitlines()[-1] == "0 pending timers", err
    holder = sqlite3.connect(database, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")  # another process's write transaction
        command = asyncio.ensure_future(run("timers", env=env))
        await asyncio.sleep(1.5)  # longer than the CLI takes to start and reach the database
        assert not command.done()
        holder.execute("COMMIT")
        code, out, err = await command
    finally:
        holder.close()
    assert code == 0 and out.splitlines()[-1] == "0 pending timers", err


def _serving(api_url: str, database_url: str) -> dict[str, str]:
    return environment(
        SLACK_BOT_TOKEN="xoxb-test",
        SLACK_SIGNING_SECRET=SECRET,
        SLACK_API_URL=api_url,
        DATABASE_URL=database_url,
        TOCSIN_CONFIG=str(ROOT / "app.yaml"),
    )


async def test_a_token_slack_refuses_at_start_up_exits_2_naming_slack_bot_token(
    tmp_path, fake, database_url
) -> None:
    """auth.test answers invalid_auth: serve and the worker stop at once with one line, no traceback."""
    fake.revoke_token("invalid_auth")
    env = _serving(fake.api_url, database_url)
    for command in (["serve", "--port", str(free_port())], ["worker"]):
        code, out, err = await run(*command, env=env)
        assert code == 2, (command, err)
        assert err.splitlines() == [
            "SLACK_BOT_TOKEN: Slack refuses it (invalid_auth); set the app's Bot User OAuth Token"
        ], (command, err)
    assert {c.method for c in fake.calls} == {"auth.test"}


async def test_slack_out_of_reach_at_start_up_is_a_warning_and_serve_goes_on(tmp_path, database_url) -> None:
    """Slack cannot be reached when the bot starts: it says so and serves; delivery waits for Slack."""
    port = free_port()
    env = _serving(f"http://127.0.0.1:{free_port()}/api/", database_url)  # nothing listens there
    log = tmp_path / "serve.log"
    process = await start("serve", "--host", "127.0.0.1", "--port", str(port), env=env, log=log)
    try:
        await wait_healthy(f"http://127.0.0.1:{port}", process, log)
    finally:
        code = await terminate(process)
    output = log.read_text()
    assert code == 0 and "Traceback" not in output, output
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    warned = [line for line in lines if line.get("event") == "auth_test_failed"]
    assert len(warned) == 1 and warned[0]["level"] == "warning", output


async def test_outbox_retry_puts_failed_messages_back_in_order(tmp_path, database_url, bot) -> None:
    """Two messages Slack refused for good (the card and the announcement): `tocsin outbox retry` with
    their ids (or --all) re-queues them, names each, and they go out in their order; ids that are not
    failed messages are named, and nothing matched exits 2."""
    fake = bot.fake
    fake.fail_next("chat.postMessage", error="channel_not_found", times=2)  # the card, the announcement
    await bot.slack.command("declare P3 Printer jam")
    await fake.wait_for(lambda: fake.posts(event_type="escalation_page"))
    await drained(bot)
    assert not fake.posts(event_type="incident_declared")
    env = environment(DATABASE_URL=database_url, TOCSIN_CONFIG=str(ROOT / "app.yaml"))
    code, out, err = await run("outbox", env=env)
    failed = [line.split() for line in out.splitlines()[1:-1] if " failed " in line]
    assert [(row[2], row[-1]) for row in failed] == [("post:incident_declared", "channel_not_found")] * 2
    card_id, announcement_id = (int(row[0]) for row in failed)

    code, out, err = await run("outbox", "retry", str(announcement_id), str(card_id), "9999", env=env)
    assert code == 0, err
    assert out.splitlines() == [
        f"re-queued {card_id:>6} INC-1      post:incident_declared (failed: channel_not_found)",
        f"re-queued {announcement_id:>6} INC-1      post:incident_declared (failed: channel_not_found)",
        "2 messages re-queued",
    ]
    assert err.splitlines() == ["tocsin outbox retry: 9999: no such message"]
    announcement = await fake.wait_for(lambda: fake.posts(channel=ANNOUNCE, event_type="incident_declared"))
    await drained(bot)
    card = [m for m in fake.posts(event_type="incident_declared") if m.channel != ANNOUNCE]
    assert len(card) == 1 and len(announcement) == 1 and card[0].ts < announcement[0].ts

    code, out, err = await run("outbox", "retry", str(card_id), "9999", env=env)
    assert code == 2 and out == ""
    assert err.splitlines() == [
        f"tocsin outbox retry: {card_id}: delivered already",
        "tocsin outbox retry: 9999: no such message",
    ]
    code, out, err = await run("outbox", "retry", "--all", env=env)
    assert (code, out.splitlines()) == (0, ["0 messages re-queued"])
    code, out, err = await run("outbox", "retry", env=env)
    assert code == 2 and err.splitlines() == ["tocsin outbox retry: give message ids or --all (not both)"]
    code, out, err = await run("outbox", "retry", "seven", env=env)
    assert code == 2 and "invalid int value: 'seven'" in err and "Traceback" not in err
