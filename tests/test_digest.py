"""The weekly digest, end to end through the fake Slack: the figures message and the chart upload."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from tests.helpers import declare, drained

DIGEST = "C0123DIGEST"


@pytest.fixture
def config(config):
    config["scheduler"]["tick"] = "1h"
    config["reports"] = {"digest": {"channel": DIGEST, "cron": "0 9 * * MON"}}
    return config


def next_monday_nine(now: datetime) -> datetime:
    """The digest's next run after `now` (on a Monday before nine, that is today)."""
    monday = (now + timedelta(days=(7 - now.weekday()) % 7)).replace(
        hour=9, minute=0, second=0, microsecond=0
    )
    return monday if monday > now else monday + timedelta(days=7)


async def test_weekly_digest_posts_figures_and_chart_once(bot) -> None:
    fake = bot.fake
    fake.add_channel(DIGEST, "incident-digest")
    incident = await declare(bot, "P2 Login slow")
    await bot.slack.command("ack", channel=incident.channel.id, user="U_BOB")
    await bot.slack.command(
        "resolve Added capacity cause=capacity resolution=capacity-added",
        channel=incident.channel.id,
        user="U_BOB",
    )
    await bot.tocsin.sweeper.sweep()  # plans the next digest
    await drained(bot)
    monday = next_monday_nine(datetime.now(UTC))
    bot.clock.offset = monday - datetime.now(UTC) - timedelta(minutes=1)
    await bot.tocsin.sweeper.sweep()
    await drained(bot)
    assert fake.posts(channel=DIGEST) == []

    bot.clock.offset = monday - datetime.now(UTC) + timedelta(minutes=1)
    await asyncio.gather(*(bot.tocsin.sweeper.sweep() for _ in range(3)))  # replicas racing
    await drained(bot)
    posts = fake.posts(channel=DIGEST)
    assert [m.event_type for m in posts] == ["weekly_digest"]
    assert posts[0].payload["window_days"] == 7 and posts[0].payload["incidents"] == 1
    assert "Weekly incident digest" in posts[0].text and "MTTR" in posts[0].text
    charts = [f for f in fake.files if f["channel"] == DIGEST]
    assert len(charts) == 1 and charts[0]["filename"].endswith(".png")
    assert charts[0]["content"][:8] == b"\x89PNG\r\n\x1a\n"

    # the following Monday's digest is already planned
    bot.clock.offset += timedelta(days=1)
    await bot.tocsin.sweeper.sweep()
    await drained(bot)
    assert len(fake.posts(channel=DIGEST)) == 1
    bot.clock.offset += timedelta(days=6)
    await bot.tocsin.sweeper.sweep()
    await drained(bot)
    assert len(fake.posts(channel=DIGEST)) == 2
