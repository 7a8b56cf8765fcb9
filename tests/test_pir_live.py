"""Action item reminders end to end: the real periodic sweep (tick 1s), second-scale repeats."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from tests.helpers import declare

pytestmark = pytest.mark.slow


@pytest.fixture
def config(config):
    config["scheduler"]["tick"] = "1s"
    config["pir"]["remind_every"] = "2s"
    return config


async def test_overdue_action_is_reminded_every_two_seconds_until_done(bot) -> None:
    fake = bot.fake
    incident = await declare(bot, "P3 Cron jobs piling up")
    channel = incident.channel.id
    await bot.slack.command("ack", channel=channel, user="U_BOB")
    today = bot.clock().date()
    await bot.slack.command(
        f"action <@U_DAVE> Add alerting on queue depth due={today.isoformat()}", channel=channel, user="U_BOB"
    )
    # move the clock to 1.5 s before the due day ends; from then on real time runs
    midnight = datetime.combine(today + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    bot.clock.offset = midnight - datetime.now(UTC) - timedelta(seconds=1.5)

    def reminders() -> list:
        return fake.posts(channel=channel, event_type="action_item_reminder")

    first = await fake.wait_for(reminders, timeout=5)
    assert first[0].payload["action"] == 1 and first[0].payload["due"] == today.isoformat()
    await fake.wait_for(lambda: len(reminders()) >= 2, timeout=5)
    calls = [
        c
        for c in fake.calls_of("chat.postMessage")
        if (c.args.get("metadata") or {}).get("event_type") == "action_item_reminder"
    ]
    gap = calls[1].at - calls[0].at
    assert 1.0 <= gap <= 4.0, gap  # every 2 s, within a tick
    reply = await bot.slack.command("action done 1", channel=channel, user="U_DAVE")
    assert "is done" in reply.body
    count = len(reminders())
    await asyncio.sleep(4)
    assert len(reminders()) == count
