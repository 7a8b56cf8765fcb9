"""Monitoring alerts over real HTTP: Alertmanager and the generic webhook open incidents as `/incident declare`
does, count repeats on one incident however many copies arrive at once, clear or resolve, and refuse bad
input having stored and posted nothing."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from sqlalchemy import func, select

from bot.config import ConfigError, load_settings, parse_policy
from store import alerts as store_alerts
from store import outbox
from store.db import Database
from store.models import AlertSource, Incident, OutboxMessage, State, TimelineEntry, Timer
from store.policy import AlertPolicy, AlertRoute
from tests.conftest import ANNOUNCE, LEADERS, ROOT, SECRET, RunningBot, shipped_config
from tests.helpers import drained, mrkdwn_texts
from tests.processes import environment, free_port, start, terminate, wait_healthy

PAYLOADS = Path(__file__).parent / "payloads"
TOKEN = "alert-token-for-tests-0123456789"
FIRING, RESOLVED, GROUPED = "alertmanager_firing", "alertmanager_resolved", "alertmanager_grouped"


def payload(name: str, *, key: str | None = None, starts: datetime | None = None) -> dict[str, Any]:
    """A fresh copy of tests/payloads/<name>.json, optionally with another key or start time."""
    data = json.loads((PAYLOADS / f"{name}.json").read_text())
    if key is not None:
        data["groupKey" if "groupKey" in data else "dedup_key"] = key
    if starts is not None:
        for alert in data.get("alerts", []):
            alert["startsAt"] = starts.isoformat().replace("+00:00", "Z")
        if "started_at" in data:
            data["started_at"] = starts.isoformat()
    return data


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def alerting(start_bot) -> RunningBot:
    """The bot with the alert endpoints on."""
    return await start_bot(TOCSIN_ALERT_TOKEN=TOKEN)


async def post(
    http: aiohttp.ClientSession,
    bot: RunningBot | str,
    path: str,
    body: Any,
    *,
    token: str | None = TOKEN,
) -> tuple[int, Any]:
    """POST to <bot>/alerts/<path> (`bot` is a running bot or a base URL): a dict is sent as JSON, bytes as
    they are. Returns (status, parsed body)."""
    base = bot if isinstance(bot, str) else bot.url
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with http.post(f"{base}/alerts/{path}", data=io.BytesIO(data), headers=headers) as response:
        text = await response.text()
        try:
            return response.status, json.loads(text)
        except json.JSONDecodeError:
            return response.status, text


async def count(bot: RunningBot, model: Any) -> int:
    async with bot.tocsin.db.read() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def incident(bot: RunningBot, number: int = 1) -> Incident:
    async with bot.tocsin.db.read() as session:
        found = await session.get(Incident, number)
        assert found is not None
        return found


async def timeline(bot: RunningBot, number: int = 1) -> list[TimelineEntry]:
    async with bot.tocsin.db.read() as session:
        query = (
            select(TimelineEntry).where(TimelineEntry.incident_number == number).order_by(TimelineEntry.id)
        )
        return list(await session.scalars(query))


def card(bot: RunningBot, number: int = 1):
    found = [
        m
        for m in bot.fake.posts(event_type="incident_declared")
        if m.channel != ANNOUNCE and m.payload["incident_id"] == f"INC-{number}"
    ]
    assert len(found) <= 1
    return found[0] if found else None


def card_says(bot: RunningBot, words: str, number: int = 1) -> bool:
    message = card(bot, number)
    return message is not None and words in json.dumps(message.blocks)


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


# Switched off and locked --------------------------------------------------------------------------


async def test_endpoints_do_not_exist_without_a_token(bot, http) -> None:
    for path in ("alertmanager", "webhook"):
        status, _ = await post(http, bot, path, payload(FIRING))
        assert status == 404
    assert await count(bot, Incident) == 0


@pytest.mark.parametrize(
    "header",
    [None, "Bearer wrong-token-0123456789abcdef", f"Basic {TOKEN}", f"Bearer {TOKEN}x", "Bearer"],
)
async def test_a_missing_or_wrong_token_gets_401_and_changes_nothing(alerting, http, header) -> None:
    headers = {"Authorization": header} if header else {}
    async with http.post(
        f"{alerting.url}/alerts/alertmanager", json=payload(FIRING), headers=headers
    ) as response:
        assert response.status == 401
        assert (await response.json())["error"] == "unauthorized"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert await count(alerting, Incident) == 0 and await count(alerting, AlertSource) == 0
    assert alerting.fake.messages == []


# Declaring ----------------------------------------------------------------------------------------


async def test_a_firing_alert_declares_an_incident_like_incident_declare(alerting, http) -> None:
    started = now() - timedelta(minutes=7)
    status, body = await post(http, alerting, "alertmanager", payload(FIRING, starts=started))
    assert status == 200
    assert body == {
        "ok": True,
        "result": "created",
        "incident_id": "INC-1",
        "state": "triage",
        "count": 1,
        "source": "alertmanager",
        "status": "firing",
    }
    fake = alerting.fake
    await fake.wait_for(lambda: fake.posts(event_type="alert_received"))
    await drained(alerting)

    channel = next(c for c in fake.channels.values() if c.name.startswith("inc-1-"))
    assert channel.name == "inc-1-checkout-5xx-error-rate-above-5"
    assert fake.calls_of("conversations.invite") == []  # "alertmanager" is no Slack user
    assert "reported by alertmanager" in channel.topic and "<@alertmanager>" not in channel.topic

    declared = card(alerting)
    assert declared.channel == channel.id and declared.ts in channel.pins
    assert declared.payload["priority"] == "P1"  # routes: severity=critical
    shown = json.dumps(declared.blocks)
    assert "alertmanager (alert)" in shown and "<@alertmanager>" not in shown
    assert "received 1 time" in shown and "12.4% of checkout requests" in shown

    assert [m.event_type for m in fake.posts(channel=ANNOUNCE)] == ["incident_declared"]
    assert [m.event_type for m in fake.posts(channel=LEADERS)] == ["incident_leadership_notice"]
    pages = fake.posts(channel=channel.id, event_type="escalation_page")
    assert len(pages) == 1 and "<!subteam^S0123TIER1>" in pages[0].text

    notice = fake.posts(channel=channel.id, event_type="alert_received")
    assert len(notice) == 1
    assert {k: notice[0].payload[k] for k in ("incident_id", "count", "source", "state")} == {
        "incident_id": "INC-1",
        "count": 1,
        "source": "alertmanager",
        "state": "triage",
    }
    assert "opened by an alert from alertmanager" in notice[0].text
    assert "CheckoutHighErrorRate" in notice[0].text and "instance=checkout-1.prod:9102" in notice[0].text

    row = await incident(alerting)
    assert row.reporter == "alertmanager" and row.alert_source == "alertmanager"
    assert row.detected_at == started  # feeds MTTD
    assert row.title == "Checkout 5xx error rate above 5%" and row.category == "other"
    assert await count(alerting, Timer) >= 4  # SLA clocks and pages, planned like any declare's
    for command in ("timeline", "show"):
        reply = await alerting.slack.command(command, channel=channel.id)
        assert "alertmanager" in reply.body and "<@alertmanager>" not in reply.body, reply.body
    assert fake.problems == []


async def test_detection_time_in_the_future_is_clamped_and_offsets_are_honoured(alerting, http) -> None:
    status, body = await post(
        http, alerting, "alertmanager", payload(FIRING, starts=now() + timedelta(hours=2))
    )
    assert status == 200 and body["result"] == "created"
    first = await incident(alerting, 1)
    assert first.detected_at == first.declared_at

    started = now() - timedelta(minutes=30)
    hook = payload("webhook_firing")
    hook["started_at"] = started.astimezone(timezone(timedelta(hours=5, minutes=30))).isoformat()
    assert hook["started_at"].endswith("+05:30")
    status, body = await post(http, alerting, "webhook", hook)
    assert status == 200 and body["incident_id"] == "INC-2"
    second = await incident(alerting, 2)
    assert second.detected_at == started


async def test_routes_pick_priority_and_category_first_match_wins(start_bot, config, http) -> None:
    config["alerts"]["routes"].insert(1, {"match": {"queue": "settlements"}, "priority": "P3"})
    config["alerts"]["default_priority"] = "P4"
    bot = await start_bot(TOCSIN_ALERT_TOKEN=TOKEN)
    # severity=warning, team=payments, queue=settlements: the queue route comes first and wins
    status, body = await post(http, bot, "alertmanager", payload(GROUPED))
    assert status == 200 and body["result"] == "created"
    grouped = await incident(bot, 1)
    assert (grouped.priority, grouped.category) == ("P3", "other")

    other_group = payload(GROUPED, key="other-group")
    for alert in other_group["alerts"]:
        del alert["labels"]["queue"]
    status, body = await post(http, bot, "alertmanager", other_group)
    second = await incident(bot, 2)
    assert (second.priority, second.category) == ("P2", "application")  # team=payments

    hook = payload("webhook_firing", key="no-route")
    del hook["severity"], hook["category"]
    status, body = await post(http, bot, "webhook", hook)
    third = await incident(bot, 3)
    assert (third.priority, third.category) == ("P4", "other")  # alerts.default_priority

    hook = payload("webhook_firing", key="explicit")
    hook["priority"] = "p2"
    status, body = await post(http, bot, "webhook", hook)
    fourth = await incident(bot, 4)
    assert (fourth.priority, fourth.category, fourth.reporter) == ("P2", "application", "grafana")


def test_routing_takes_the_most_urgent_alert_of_a_group() -> None:
    policy = AlertPolicy(
        routes=(
            AlertRoute(match={"severity": "critical"}, priority="P1"),
            AlertRoute(match={"team": "payments"}, priority="P2", category="application"),
            AlertRoute(match={"severity": "info"}, priority="P4"),
        ),
        default_priority="P3",
    )
    assert store_alerts.route(policy, ()) == ("P3", None)
    assert store_alerts.route(policy, ({"severity": "info"},)) == ("P4", None)
    assert store_alerts.route(policy, ({"severity": "info"}, {"x": "y"})) == ("P3", None)
    assert store_alerts.route(policy, ({"team": "payments", "severity": "critical"},)) == ("P1", None)
    assert store_alerts.route(policy, ({"team": "payments"}, {"severity": "info"})) == ("P2", "application")


async def test_the_grouped_payload_lists_its_alerts(alerting, http) -> None:
    status, body = await post(http, alerting, "alertmanager", payload(GROUPED))
    assert status == 200
    notice = await alerting.fake.wait_for(lambda: alerting.fake.posts(event_type="alert_received"))
    text = notice[0].text
    assert text.count("• *firing* PaymentsQueueBacklog") == 2 and text.count("• *resolved*") == 1
    assert "instance=payments-worker-0:9200" in text
    row = await incident(alerting)
    # the earliest start among the firing alerts
    assert row.detected_at == datetime(2026, 11, 22, 8, 39, 47, 902000, tzinfo=UTC)
    assert row.title == "Settlement queue backlog above 10,000 messages"


# Repeats ------------------------------------------------------------------------------------------


async def test_repeats_count_on_the_card_and_timeline_and_are_posted_first_then_every_five_minutes(
    alerting, http
) -> None:
    fake = alerting.fake
    results = [(await post(http, alerting, "alertmanager", payload(FIRING)))[1] for _ in range(3)]
    assert [(r["result"], r["incident_id"], r["count"]) for r in results] == [
        ("created", "INC-1", 1),
        ("deduplicated", "INC-1", 2),
        ("deduplicated", "INC-1", 3),
    ]
    await fake.wait_for(lambda: card_says(alerting, "received 3 times"))
    await drained(alerting)
    # the declare's notice and the first repeat's; the next repeat within 5 minutes is quiet
    assert [m.payload["count"] for m in fake.posts(event_type="alert_received")] == [1, 2]
    entries = await timeline(alerting)
    assert [e.kind for e in entries] == ["declared", "escalation", "alert", "alert"]
    assert [e.text for e in entries[2:]] == [
        "received again: 2 times in all",
        "received again: 3 times in all",
    ]

    alerting.clock.advance(timedelta(minutes=6))
    status, body = await post(http, alerting, "alertmanager", payload(FIRING))
    assert (status, body["result"], body["count"]) == (200, "deduplicated", 4)
    notices = await fake.wait_for(lambda: fake.posts(event_type="alert_received")[2:])
    assert notices[0].payload["count"] == 4
    assert "received again: 4 times in all, 2 since the last notice" in notices[0].text
    await fake.wait_for(lambda: card_says(alerting, "received 4 times"))
    entries = await timeline(alerting)
    assert (entries[-1].kind, entries[-1].actor, entries[-1].text) == (
        "alert",
        "alertmanager",
        "received again: 4 times in all",
    )
    assert await count(alerting, Incident) == 1 and fake.problems == []


async def test_a_storm_of_500_concurrent_copies_opens_one_incident(alerting, http) -> None:
    fake = alerting.fake
    body = payload(FIRING)
    replies = await asyncio.gather(*(post(http, alerting, "alertmanager", body) for _ in range(500)))
    assert {status for status, _ in replies} == {200}
    results = sorted(r["result"] for _, r in replies)
    assert results.count("created") == 1 and results.count("deduplicated") == 499
    assert sorted(r["count"] for _, r in replies) == list(range(1, 501))
    assert {r["incident_id"] for _, r in replies} == {"INC-1"}

    await fake.wait_for(lambda: card_says(alerting, "received 500 times"), timeout=20)
    await drained(alerting)
    assert await count(alerting, Incident) == 1 and await count(alerting, AlertSource) == 1
    assert len(fake.calls_of("conversations.create")) == 1
    assert len([m for m in fake.posts(event_type="incident_declared") if m.channel != ANNOUNCE]) == 1
    assert len(fake.posts(channel=ANNOUNCE)) == 1
    assert [m.payload["count"] for m in fake.posts(event_type="alert_received")] == [1, 2]
    assert len(fake.posts(event_type="escalation_page")) == 1
    # edits of the card coalesce, and one that would show what the card shows is not sent: a handful
    # of edits at most, not 499 (none when the card was posted after the last copy came in)
    edits = len(card(alerting).history)
    assert edits <= 60, edits
    entries = await timeline(alerting)
    assert len(entries) == 2 + 499 and entries[-1].text == "received again: 500 times in all"
    assert fake.problems == []


# Clearing -----------------------------------------------------------------------------------------


async def test_a_cleared_alert_tells_the_commander_and_leaves_the_incident_open(alerting, http) -> None:
    fake = alerting.fake
    await post(http, alerting, "alertmanager", payload(FIRING))
    declared = await fake.wait_for(lambda: card(alerting))
    await alerting.slack.command("ack", channel=declared.channel, user="U_BOB")
    resolved = payload(RESOLVED)
    status, body = await post(http, alerting, "alertmanager", resolved)
    assert (status, body["result"], body["state"], body["incident_id"]) == (
        200,
        "cleared",
        "investigating",
        "INC-1",
    )

    notice = await fake.wait_for(lambda: fake.posts(event_type="alert_resolved"))
    assert notice[0].channel == declared.channel
    assert notice[0].payload["auto_resolved"] is False and notice[0].payload["count"] == 1
    assert notice[0].text.startswith(
        ":white_check_mark: <@U_BOB> the alert from alertmanager for *INC-1* has cleared"
    )
    assert (await incident(alerting)).state is State.INVESTIGATING
    entry = (await timeline(alerting))[-1]
    assert (entry.kind, entry.from_value, entry.to_value) == ("alert", "firing", "resolved")
    assert entry.text == "alert resolved at 2026-11-22 10:21:43 UTC"  # the alerts' endsAt

    # A second copy of the resolve changes nothing; firing again is noticed at once.
    status, body = await post(http, alerting, "alertmanager", resolved)
    assert body["result"] == "duplicate"
    status, body = await post(http, alerting, "alertmanager", payload(FIRING))
    assert (body["result"], body["count"]) == ("deduplicated", 2)
    refired = await fake.wait_for(lambda: fake.posts(event_type="alert_received")[1:])
    assert "firing again after it cleared" in refired[0].text
    await drained(alerting)
    assert len(fake.posts(event_type="alert_resolved")) == 1 and fake.problems == []


async def test_a_cleared_alert_nobody_acknowledged_pages_the_level_without_auto_resolve(
    alerting, http
) -> None:
    await post(http, alerting, "alertmanager", payload(FIRING))
    status, body = await post(http, alerting, "alertmanager", payload(RESOLVED))
    assert body["result"] == "cleared" and body["state"] == "triage"
    notice = await alerting.fake.wait_for(lambda: alerting.fake.posts(event_type="alert_resolved"))
    assert "<!subteam^S0123TIER1>" in notice[0].text


async def test_auto_resolve_resolves_an_unacknowledged_incident_and_the_next_firing_opens_another(
    start_bot, config, http
) -> None:
    config["alerts"]["auto_resolve"] = True
    bot = await start_bot(TOCSIN_ALERT_TOKEN=TOKEN)
    fake = bot.fake
    await post(http, bot, "alertmanager", payload(FIRING))
    status, body = await post(http, bot, "alertmanager", payload(RESOLVED))
    assert (status, body["result"], body["state"]) == (200, "resolved", "resolved")
    notice = await fake.wait_for(lambda: fake.posts(event_type="alert_resolved"))
    assert notice[0].payload["auto_resolved"] is True and notice[0].payload["state"] == "resolved"
    assert "Nobody had acknowledged the incident, so Tocsin resolved it" in notice[0].text
    resolved = await fake.wait_for(lambda: fake.posts(event_type="incident_resolved"))
    assert "resolved by Tocsin" in resolved[0].text and "`unknown`" in resolved[0].text
    row = await incident(bot)
    assert (row.state, row.cause_code, row.resolution_code) == (State.RESOLVED, "unknown", "no-action")

    status, body = await post(http, bot, "alertmanager", payload(FIRING))
    assert (body["result"], body["incident_id"], body["count"]) == ("created", "INC-2", 1)
    status, body = await post(http, bot, "alertmanager", payload(RESOLVED, key="never-fired"))
    assert (status, body["result"], body["incident_id"]) == (200, "ignored", None)
    await drained(bot)
    assert fake.problems == []


async def test_auto_resolve_leaves_an_acknowledged_incident_to_its_commander(start_bot, config, http) -> None:
    config["alerts"]["auto_resolve"] = True
    bot = await start_bot(TOCSIN_ALERT_TOKEN=TOKEN)
    await post(http, bot, "alertmanager", payload(FIRING))
    declared = await bot.fake.wait_for(lambda: card(bot))
    await bot.slack.command("ack", channel=declared.channel, user="U_BOB")
    status, body = await post(http, bot, "alertmanager", payload(RESOLVED))
    assert (body["result"], body["state"]) == ("cleared", "investigating")
    notice = await bot.fake.wait_for(lambda: bot.fake.posts(event_type="alert_resolved"))
    assert notice[0].payload["auto_resolved"] is False and "<@U_BOB>" in notice[0].text


async def test_after_a_person_resolves_the_incident_the_next_firing_opens_a_new_one(alerting, http) -> None:
    await post(http, alerting, "webhook", payload("webhook_firing"))
    declared = await alerting.fake.wait_for(lambda: card(alerting))
    channel = declared.channel
    await alerting.slack.command("ack", channel=channel, user="U_BOB")
    await alerting.slack.command(
        "resolve Scaled out cause=capacity resolution=capacity-added", channel=channel, user="U_BOB"
    )
    assert (await incident(alerting)).state is State.RESOLVED
    status, body = await post(http, alerting, "webhook", payload("webhook_firing"))
    assert (body["result"], body["incident_id"]) == ("created", "INC-2")
    status, body = await post(http, alerting, "webhook", payload("webhook_firing"))
    assert (body["result"], body["incident_id"], body["count"]) == ("deduplicated", "INC-2", 2)
    async with alerting.tocsin.db.read() as session:
        claims = list(await session.scalars(select(AlertSource).order_by(AlertSource.id)))
    assert [(c.incident_number, c.released_at is not None) for c in claims] == [(1, True), (2, False)]


@pytest.mark.slow
async def test_two_replicas_open_one_incident_for_one_key(tmp_path, fake, database_url, http) -> None:
    """Real `tocsin serve` processes on one database, 200 concurrent copies split between them."""
    config = tmp_path / "app.yaml"
    config.write_text(yaml.safe_dump(shipped_config()))
    env = environment(
        SLACK_BOT_TOKEN="xoxb-test",
        SLACK_SIGNING_SECRET=SECRET,
        SLACK_API_URL=fake.api_url,
        DATABASE_URL=database_url,
        TOCSIN_CONFIG=str(config),
        TOCSIN_ALERT_TOKEN=TOKEN,
    )
    processes, urls = [], []

    def cards() -> list:
        return [m for m in fake.posts(event_type="incident_declared") if m.channel != ANNOUNCE]

    try:
        for name in ("a", "b"):
            port, log = free_port(), tmp_path / f"{name}.log"
            process = await start("serve", "--host", "127.0.0.1", "--port", str(port), env=env, log=log)
            processes.append(process)
            urls.append(f"http://127.0.0.1:{port}")
            await wait_healthy(urls[-1], process, log)
        body = payload(FIRING)
        replies = await asyncio.gather(*(post(http, urls[i % 2], "alertmanager", body) for i in range(200)))
        assert {status for status, _ in replies} == {200}, replies[:3]
        assert sorted(r["result"] for _, r in replies).count("created") == 1
        assert sorted(r["count"] for _, r in replies) == list(range(1, 201))
        assert {r["incident_id"] for _, r in replies} == {"INC-1"}

        await fake.wait_for(
            lambda: cards() and "received 200 times" in json.dumps(cards()[0].blocks), timeout=20
        )
        db = Database(database_url)
        try:
            for _ in range(250):  # a bounded poll: the last card refresh may still be on its way
                async with db.read() as session:
                    if not await outbox.undelivered(session, include_failed=True):
                        break
                await asyncio.sleep(0.02)
            async with db.read() as session:
                assert await outbox.undelivered(session, include_failed=True) == []
                assert await session.scalar(select(func.count()).select_from(Incident)) == 1
        finally:
            await db.dispose()
    finally:
        for process in processes:
            await terminate(process)
    assert len(cards()) == 1 and len(fake.posts(channel=ANNOUNCE)) == 1
    assert len(fake.calls_of("conversations.create")) == 1
    assert len(fake.posts(event_type="alert_received")) == 2 and fake.problems == []  # declare, first repeat


# The generic webhook and escaping -----------------------------------------------------------------


async def test_the_generic_webhook_declares_and_resolves(alerting, http) -> None:
    status, body = await post(http, alerting, "webhook", payload("webhook_firing"))
    assert (status, body["result"], body["source"]) == (200, "created", "grafana")
    row = await incident(alerting)
    assert (row.priority, row.category, row.reporter) == ("P1", "application", "grafana")
    assert row.detected_at == datetime(2026, 11, 22, 10, 2, tzinfo=UTC)
    # the key is scoped by source: the same dedup_key from another source is another alert
    other = payload("webhook_firing")
    other["source"] = "uptime-kuma"
    status, body = await post(http, alerting, "webhook", other)
    assert body["incident_id"] == "INC-2"
    status, body = await post(
        http,
        alerting,
        "webhook",
        {"dedup_key": "grafana/checkout-latency-p99", "status": "resolved", "source": "grafana"},
    )
    assert (body["result"], body["incident_id"]) == ("cleared", "INC-1")


async def test_alert_text_cannot_ping_or_forge_links(alerting, http) -> None:
    evil = "<!channel> & <@U999|boss> <https://evil.example|click>"
    hook = {
        "dedup_key": "evil",
        "status": "firing",
        "title": evil + " " + "x" * 200,
        "description": evil,
        "labels": {"who": evil},
    }
    status, body = await post(http, alerting, "webhook", hook)
    assert status == 200
    await alerting.fake.wait_for(lambda: alerting.fake.posts(event_type="alert_received"))
    await drained(alerting)
    assert len((await incident(alerting)).title) == 150  # clipped, not refused: an alert must not be lost
    for message in alerting.fake.messages:
        shown = (message.text or "") + " ".join(mrkdwn_texts(message.blocks or []))
        assert "<!channel>" not in shown and "<@U999" not in shown and "<https://evil" not in shown
    channel = next(c for c in alerting.fake.channels.values() if c.name.startswith("inc-1"))
    assert "<!channel>" not in channel.topic
    assert alerting.fake.problems == []


# Bad input ----------------------------------------------------------------------------------------


def _many_alerts() -> dict:
    data = payload(FIRING)
    data["alerts"] = data["alerts"] * 1001
    return data


def _without(name: str, *keys: str) -> dict:
    data = payload(name)
    for key in keys:
        data.pop(key)
    return data


def _with(name: str, **fields: Any) -> dict:
    return {**payload(name), **fields}


def _alert_with(**fields: Any) -> dict:
    data = payload(FIRING)
    data["alerts"][0].update(fields)
    return data


def _untitled() -> dict:
    data = _with(FIRING, commonAnnotations={}, commonLabels={})
    data["alerts"][0]["labels"].pop("alertname")
    data["alerts"][0]["annotations"].pop("summary")
    return data


BAD = [
    ("alertmanager", b"{not json", 400, "malformed_json", "not valid JSON (line 1, column 2)"),
    ("webhook", b"", 400, "malformed_json", "not valid JSON"),
    ("webhook", b"\xff\xfe", 400, "malformed_json", "not valid JSON"),
    ("alertmanager", [1, 2], 422, "invalid_alert", "the body: must be a JSON object, not a list"),
    ("alertmanager", _without(FIRING, "groupKey"), 422, "invalid_alert", "groupKey: is missing or empty"),
    ("alertmanager", _with(FIRING, groupKey="  "), 422, "invalid_alert", "groupKey: is missing or empty"),
    (
        "alertmanager",
        _with(FIRING, status="firingg"),
        422,
        "unknown_status",
        'status: "firingg" is not firing or resolved',
    ),
    ("alertmanager", _alert_with(status="pending"), 422, "unknown_status", 'alerts[0].status: "pending"'),
    ("alertmanager", _untitled(), 422, "invalid_alert", "no title"),
    ("alertmanager", _with(FIRING, alerts=[]), 422, "invalid_alert", "alerts: must be a non-empty list"),
    ("alertmanager", _many_alerts(), 413, "too_many_alerts", "1,001 alerts in one payload; at most 1,000"),
    ("alertmanager", _with(FIRING, version="5"), 422, "invalid_alert", 'version: "5" is not supported'),
    ("alertmanager", _alert_with(startsAt="yesterday"), 422, "invalid_alert", "alerts[0].startsAt"),
    (
        "alertmanager",
        _alert_with(labels={"severity": 1}),
        422,
        "invalid_alert",
        "alerts[0].labels: must be an object of strings",
    ),
    ("webhook", _without("webhook_firing", "title"), 422, "invalid_alert", "title: is missing or empty"),
    ("webhook", _with("webhook_firing", title="   "), 422, "invalid_alert", "title: is missing or empty"),
    (
        "webhook",
        _without("webhook_firing", "dedup_key"),
        422,
        "invalid_alert",
        "dedup_key: is missing or empty",
    ),
    (
        "webhook",
        _with("webhook_firing", dedup_key=""),
        422,
        "invalid_alert",
        "dedup_key: is missing or empty",
    ),
    ("webhook", _with("webhook_firing", status="open"), 422, "unknown_status", 'status: "open"'),
    ("webhook", _with("webhook_firing", prority="P1"), 422, "invalid_alert", "unknown field prority"),
    ("webhook", _with("webhook_firing", priority="P7"), 422, "invalid_alert", 'priority: "P7" is not one of'),
    ("webhook", _with("webhook_firing", category="weather"), 422, "invalid_alert", 'category: "weather"'),
    ("webhook", _with("webhook_firing", source="Bad Source"), 422, "invalid_alert", 'source: "Bad Source"'),
    ("webhook", _with("webhook_firing", source="tocsin"), 422, "invalid_alert", 'source: "tocsin"'),
    (
        "webhook",
        _with("webhook_firing", started_at="2026-11-22T10:00:00"),
        422,
        "invalid_alert",
        "has no UTC offset",
    ),
    (
        "webhook",
        _with("webhook_firing", labels=["a"]),
        422,
        "invalid_alert",
        "labels: must be an object of strings",
    ),
    (
        "webhook",
        _with("webhook_firing", description=7),
        422,
        "invalid_alert",
        "description: must be a string",
    ),
    ("webhook", b"{" + b'"pad": "' + b"x" * (1024 * 1024) + b'"}', 413, "too_large", "over 1,048,576 bytes"),
]


@pytest.mark.parametrize("path,body,status,error,problem", BAD, ids=[f"{b[0]}-{b[4][:30]}" for b in BAD])
async def test_bad_input_is_refused_and_changes_nothing(
    alerting, http, path, body, status, error, problem
) -> None:
    got, answer = await post(http, alerting, path, body)
    assert got == status, answer
    assert answer["ok"] is False and answer["error"] == error and problem in answer["problem"], answer
    await drained(alerting)
    assert await count(alerting, Incident) == 0 and await count(alerting, AlertSource) == 0
    assert await count(alerting, OutboxMessage) == 0 and alerting.fake.messages == []


async def test_a_body_over_the_limit_without_a_length_is_refused(alerting, http) -> None:
    async def chunks():
        yield b'{"pad": "'
        for _ in range(17):
            yield b"x" * 65536
        yield b'"}'

    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    async with http.post(f"{alerting.url}/alerts/webhook", data=chunks(), headers=headers) as response:
        assert response.status == 413
        assert (await response.json())["error"] == "too_large"
    assert await count(alerting, Incident) == 0


# Configuration ------------------------------------------------------------------------------------


def _problems(alerts: Any) -> list[str]:
    raw = shipped_config()
    raw["alerts"] = alerts
    with pytest.raises(ConfigError) as caught:
        parse_policy(raw)
    return caught.value.problems


def test_alerts_config_is_validated_with_key_paths() -> None:
    assert _problems({"routes": [{"match": {"severity": "critical"}, "priority": "P9"}]}) == [
        'alerts.routes[0].priority: "P9" is not one of P1-P4'
    ]
    assert _problems({"routes": [{"match": {"code": 500}, "priority": "P1"}]}) == [
        'alerts.routes[0].match.code: 500 is not a string (quote it: "500")'
    ]
    assert _problems({"routes": [{"match": {"team": "db"}, "priority": "P2", "category": "dba"}]}) == [
        'alerts.routes[0].category: "dba" is not one of the categories '
        "(application, database, network, hardware, security, other)"
    ]
    assert _problems({"routes": [{"priority": "P2"}]}) == ["alerts.routes[0].match: is required"]
    assert _problems({"routes": [{"match": {}, "priority": "P2"}]}) == [
        "alerts.routes[0].match: must name at least one label, e.g. {severity: critical}"
    ]
    assert _problems({"routes": [{"match": {"a": "b"}, "priority": "P2", "team": "x"}]}) == [
        "alerts.routes[0].team: unknown key (expected one of category, match, priority)"
    ]
    assert _problems({"routes": {"severity": "critical"}}) == [
        "alerts.routes: must be a list of routes, not {'severity': 'critical'}"
    ]
    assert _problems({"default_priority": "P0", "auto_resolve": "yes", "resolve": True}) == [
        "alerts.resolve: unknown key (expected one of auto_resolve, default_priority, routes)",
        'alerts.auto_resolve: "yes" is not true or false',
        'alerts.default_priority: "P0" is not one of P1-P4',
    ]


def test_auto_resolve_needs_its_codes() -> None:
    raw = shipped_config()
    raw["alerts"]["auto_resolve"] = True
    raw["codes"]["cause"].remove("unknown")
    with pytest.raises(ConfigError) as caught:
        parse_policy(raw)
    assert caught.value.problems == [
        'alerts.auto_resolve: needs cause code "unknown" in codes.cause and resolution code "no-action" in codes.resolution'
    ]


def test_without_an_alerts_section_alerts_use_the_default_priority() -> None:
    raw = shipped_config()
    del raw["alerts"]
    raw["default_priority"] = "P2"
    assert parse_policy(raw).alerts == AlertPolicy(default_priority="P2")


def test_the_alert_token_is_read_from_the_environment_and_checked() -> None:
    base = {
        "SLACK_BOT_TOKEN": "xoxb-1",
        "SLACK_SIGNING_SECRET": SECRET,
        "TOCSIN_CONFIG": str(ROOT / "app.yaml"),
    }
    assert load_settings(base).alert_token is None
    assert load_settings({**base, "TOCSIN_ALERT_TOKEN": "  "}).alert_token is None
    assert load_settings({**base, "TOCSIN_ALERT_TOKEN": TOKEN}).alert_token == TOKEN
    with pytest.raises(ConfigError) as caught:
        load_settings({**base, "TOCSIN_ALERT_TOKEN": "short"})
    assert caught.value.problems == [
        "TOCSIN_ALERT_TOKEN: must be at least 16 printable characters without spaces "
        "(a bearer token; e.g. the output of `openssl rand -hex 32`)"
    ]


async def test_an_alert_request_is_traffic_the_relay_gives_way_to(alerting, http) -> None:
    """A storm of alerts, like one of clicks, is answered first: the relay waits for a lull after it."""
    traffic = alerting.tocsin.traffic
    traffic.lull = 0.5  # long enough to see from here
    await traffic.quiet(at_most=2)  # whatever came before has settled
    status, _ = await post(http, alerting, "alertmanager", payload(FIRING))
    assert status == 200
    began = asyncio.get_running_loop().time()
    await traffic.quiet(at_most=2)
    assert asyncio.get_running_loop().time() - began >= 0.3  # the alert's request started a lull
