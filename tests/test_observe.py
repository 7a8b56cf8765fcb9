"""bot/observe.py and GET /metrics: what a Prometheus scrape of the running bot shows of its acks, its
outbox backlog, its timers and its calls to Slack.

The bot's periodic sweep is set an hour apart, so that only the test's own `sweep()` fires timers."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from bot.observe import Metrics, slack_path
from tests.conftest import RunningBot
from tests.helpers import declare, drained

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def config(config):
    config["scheduler"]["tick"] = "1h"
    return config


def parsed(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sample's value; 0 when the scrape does not have it (a counter never incremented)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def labelled(samples: Samples, name: str, label: str) -> dict[str, float]:
    return {dict(labels)[label]: v for (sample, labels), v in samples.items() if sample == name}


async def scrape(bot: RunningBot) -> Samples:
    async with aiohttp.ClientSession() as session, session.get(f"{bot.url}/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == CONTENT_TYPE_LATEST
        return parsed(await response.text())


async def healthz(bot: RunningBot) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session, session.get(f"{bot.url}/healthz") as response:
        return await response.json()


def backlog_of(health: dict[str, Any]) -> dict[str, float]:
    """/healthz's backlog by urgency, as the gauge labels it (`all` when /healthz does not split it)."""
    outbox = health["outbox"]
    if "by_urgency" not in outbox:
        return {"all": outbox["backlog"]}
    return {label: figures["count"] for label, figures in outbox["by_urgency"].items()}


# --- Through the running bot --------------------------------------------------------------------------


async def test_a_slash_command_is_timed_under_command_and_its_messages_show_as_backlog(bot) -> None:
    """Slack is down: the declare is answered, its messages wait, and the scrape shows the ack under
    path="command" and the waiting messages by urgency, the figures /healthz gives. Once Slack is back
    and the outbox drained, the backlog is gone from the scrape."""
    bot.fake.set_down(True)
    reply = await bot.slack.command("declare P2 Search is slow")
    assert reply.status == 200, reply.body
    samples = await scrape(bot)
    assert value(samples, "tocsin_ack_seconds_count", path="command") == 1
    assert 0 < value(samples, "tocsin_ack_seconds_sum", path="command") < 3
    assert value(samples, "tocsin_ack_seconds_bucket", path="command", le="3.0") == 1
    assert set(labelled(samples, "tocsin_ack_seconds_count", "path")) == {"command"}
    backlog = labelled(samples, "tocsin_outbox_backlog", "urgency")
    assert sum(backlog.values()) > 0
    assert backlog == backlog_of(await healthz(bot))  # nothing is delivered while Slack is down
    oldest = labelled(samples, "tocsin_outbox_oldest_seconds", "urgency")
    assert set(oldest) == set(backlog) and all(seconds >= 0 for seconds in oldest.values())
    assert value(samples, "tocsin_database_up") == 1
    assert value(samples, "tocsin_outbox_failed") == 0 and value(samples, "tocsin_outbox_held") == 0

    bot.fake.set_down(False)
    await bot.fake.wait_for(lambda: bot.fake.posts(event_type="incident_declared") or None, timeout=20)
    await drained(bot)
    after = await scrape(bot)
    assert sum(labelled(after, "tocsin_outbox_backlog", "urgency").values()) == 0
    assert value(after, "tocsin_ack_seconds_count", path="command") == 1  # a scrape is no POST


async def test_a_click_is_timed_under_action(bot) -> None:
    incident = await declare(bot, "P3 Checkout is slow")
    reply = await bot.slack.click("incident_acknowledge", "1", user="U_BOB", message_ts=incident.card.ts)
    assert reply.status == 200, reply.body
    samples = await scrape(bot)
    assert value(samples, "tocsin_ack_seconds_count", path="action") == 1
    assert value(samples, "tocsin_ack_seconds_count", path="command") == 1


async def test_alert_posts_and_posts_to_nowhere_are_timed_apart(start_bot) -> None:
    bot = await start_bot(TOCSIN_ALERT_TOKEN="alert-token-for-tests-0123456789")
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{bot.url}/alerts/webhook", json={}) as response:
            assert response.status == 401  # no token: refused, and timed all the same
        async with http.post(f"{bot.url}/nowhere", data=b"") as response:
            assert response.status == 404
    samples = await scrape(bot)
    assert labelled(samples, "tocsin_ack_seconds_count", "path") == {"alert": 1, "other": 1}


async def test_a_fired_timer_shows_its_lag(bot) -> None:
    """A P1's level-1 page repeats 10 minutes after the declare: swept at 11 minutes, it fires about a
    minute late, and the histogram says so."""
    await declare(bot, "P1 Payments down")
    await drained(bot)
    assert value(await scrape(bot), "tocsin_timer_lag_seconds_count") == 0
    bot.clock.advance(timedelta(minutes=11))
    assert await bot.tocsin.sweeper.sweep() == 1
    samples = await scrape(bot)
    assert value(samples, "tocsin_timer_lag_seconds_count") == 1
    assert 60 <= value(samples, "tocsin_timer_lag_seconds_sum") < 120
    assert value(samples, "tocsin_timer_lag_seconds_bucket", le="60.0") == 0
    assert value(samples, "tocsin_timer_lag_seconds_bucket", le="120.0") == 1
    # The warning at 11m15s is now the most overdue timer: the gauge reads it at scrape time.
    bot.clock.advance(timedelta(seconds=30))
    overdue = value(await scrape(bot), "tocsin_timers_oldest_due_seconds")
    assert 15 <= overdue < 60


async def test_every_web_api_call_is_counted_by_method_and_result(bot) -> None:
    """The Slack facade counts each call it makes as Slack answered it, a 429 as `ratelimited`: the
    counts are the calls the fake Slack received."""
    bot.fake.fail_next("chat.postMessage", status=429, retry_after=1)
    await declare(bot, "P3 Checkout is slow")
    await drained(bot)
    samples = await scrape(bot)
    for method in ("conversations.create", "chat.postMessage"):
        counted = {
            dict(labels)["result"]: v
            for (name, labels), v in samples.items()
            if name == "tocsin_slack_calls_total" and dict(labels)["method"] == method
        }
        assert sum(counted.values()) == len(bot.fake.calls_of(method)), (method, counted)
    assert value(samples, "tocsin_slack_calls_total", method="conversations.create", result="ok") == 1
    assert value(samples, "tocsin_slack_calls_total", method="chat.postMessage", result="ratelimited") == 1
    assert value(samples, "tocsin_slack_calls_total", method="chat.postMessage", result="ok") >= 2


async def test_slack_call_adds_to_its_method_and_result(bot) -> None:
    await drained(bot)
    before = await scrape(bot)
    metrics = bot.tocsin.metrics
    metrics.slack_call("conversations.setTopic", "ratelimited")
    metrics.slack_call("conversations.setTopic", "ratelimited")
    metrics.slack_call("chat.postMessage", "channel_not_found")
    after = await scrape(bot)

    def added(method: str, result: str) -> float:
        return value(after, "tocsin_slack_calls_total", method=method, result=result) - value(
            before, "tocsin_slack_calls_total", method=method, result=result
        )

    assert added("conversations.setTopic", "ratelimited") == 2
    assert added("chat.postMessage", "channel_not_found") == 1


async def test_scrapes_at_once_each_get_the_whole_exposition(bot) -> None:
    """The health gauges are set for one render at a time: scrapes overlapping on the loop each see
    them all."""
    scrapes = await asyncio.gather(*(scrape(bot) for _ in range(8)))
    assert all(value(samples, "tocsin_database_up") == 1 for samples in scrapes)
    assert all(("tocsin_outbox_failed", frozenset()) in samples for samples in scrapes)


# --- The metrics on their own -------------------------------------------------------------------------


def test_each_bot_has_its_own_registry() -> None:
    one, other = Metrics(), Metrics()
    one.slack_call("chat.update", "ok")
    assert (
        value(
            parsed(one.render(health=None).decode()),
            "tocsin_slack_calls_total",
            method="chat.update",
            result="ok",
        )
        == 1
    )
    assert (
        value(
            parsed(other.render(health=None).decode()),
            "tocsin_slack_calls_total",
            method="chat.update",
            result="ok",
        )
        == 0
    )


def test_a_backlog_split_by_urgency_is_served_by_urgency() -> None:
    report = {
        "timers": {"oldest_due_seconds": 4.5},
        "outbox": {
            "backlog": 3,
            "oldest_seconds": 9.0,
            "failed": 1,
            "held": 2,
            "by_urgency": {
                "P1-alert": {"count": 1, "oldest_seconds": 2.0},
                "P4-topic": {"count": 2, "oldest_seconds": 9.0},
            },
        },
    }
    samples = parsed(Metrics().render(health=report).decode())
    assert labelled(samples, "tocsin_outbox_backlog", "urgency") == {"P1-alert": 1, "P4-topic": 2}
    assert labelled(samples, "tocsin_outbox_oldest_seconds", "urgency") == {"P1-alert": 2.0, "P4-topic": 9.0}
    assert value(samples, "tocsin_outbox_failed") == 1 and value(samples, "tocsin_outbox_held") == 2
    assert value(samples, "tocsin_timers_oldest_due_seconds") == 4.5


def test_a_backlog_not_split_is_served_whole_and_nothing_waiting_reads_zero() -> None:
    report = {
        "timers": {"oldest_due_seconds": None},
        "outbox": {"backlog": 0, "oldest_seconds": None, "failed": 0},
    }
    samples = parsed(Metrics().render(health=report).decode())
    assert labelled(samples, "tocsin_outbox_backlog", "urgency") == {"all": 0}
    assert labelled(samples, "tocsin_outbox_oldest_seconds", "urgency") == {"all": 0}
    assert value(samples, "tocsin_timers_oldest_due_seconds") == 0


def test_without_the_database_only_its_absence_and_the_process_figures_are_served() -> None:
    metrics = Metrics()
    metrics.acked("alert", 0.02)
    samples = parsed(metrics.render(health=None).decode())
    assert value(samples, "tocsin_database_up") == 0
    assert not labelled(samples, "tocsin_outbox_backlog", "urgency")
    assert value(samples, "tocsin_ack_seconds_count", path="alert") == 1


def test_a_request_parsed_by_bolt_is_labelled_by_its_type() -> None:
    assert slack_path({"command": "/incident", "text": "list"}) == "command"
    assert slack_path({"type": "block_actions"}) == "action"
    assert slack_path({"type": "view_submission"}) == "view"
    assert slack_path({"type": "block_suggestion"}) == "options"
    assert slack_path({"type": "event_callback"}) == "events"
    assert slack_path({}) == "other"
