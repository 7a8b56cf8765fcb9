"""SLA clocks, escalation paging, update nudges and PIR reminders, with the clock moved by hand.

The real bot runs as in production, but its periodic sweep is set an hour apart so that only the
test's own `sweep()` calls fire timers, at clock times the test chooses."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest

from store.models import Incident
from tests.conftest import ANNOUNCE, LEADERS
from tests.helpers import declare, drained

M = timedelta(minutes=1)


@pytest.fixture
def config(config):
    config["scheduler"]["tick"] = "1h"
    return config


async def at(bot, offset: timedelta) -> int:
    """Move the bot's clock to `offset` after the start of the test and sweep once."""
    bot.clock.offset = offset
    fired = await bot.tocsin.sweeper.sweep()
    await drained(bot)
    return fired


def events(bot, channel: str, *kinds: str) -> list:
    return [m for m in bot.fake.posts(channel=channel) if m.event_type in kinds]


async def incident_row(bot, number: int = 1) -> Incident:
    async with bot.tocsin.db.read() as session:
        return await session.get(Incident, number)


async def test_response_warning_then_breach_mention_the_paged_level_and_reach_leadership(bot) -> None:
    incident = await declare(bot, "P1 Payments down")  # response 15m, warn at 75% = 11m15s
    channel = incident.channel.id
    assert await at(bot, 11 * M) == 1  # level 1 re-paged at 10m, nothing else yet
    assert events(bot, channel, "sla_warning") == []
    await at(bot, 11 * M + timedelta(seconds=16))
    warning = events(bot, channel, "sla_warning")
    assert [m.payload["clock"] for m in warning] == ["response"]
    assert "<!subteam^S0123TIER1>" in warning[0].text and "please acknowledge" in warning[0].text
    await at(bot, 15 * M + timedelta(seconds=1))
    breach = events(bot, channel, "sla_breached")
    assert [m.payload["clock"] for m in breach] == ["response"]
    leaders = [m for m in bot.fake.posts(channel=LEADERS) if m.event_type == "sla_breached"]
    assert len(leaders) == 1 and leaders[0].payload["incident_id"] == "INC-1"
    assert "BREACHED" in incident.card.text
    assert "BREACHED" in str(bot.fake.posts(channel=ANNOUNCE)[0].blocks)
    assert (await incident_row(bot)).response_breached_at is not None
    # Nothing fires twice.
    await at(bot, 15 * M + timedelta(seconds=2))
    assert len(events(bot, channel, "sla_warning", "sla_breached")) == 2


async def test_paging_climbs_levels_repeats_and_stops_on_acknowledge(bot) -> None:
    incident = await declare(bot, "P3 Backups failing")  # level 2 after 15m, level 3 30m later, repeat 10m
    channel = incident.channel.id
    for minute in (10, 15, 25, 35, 45, 55):
        await at(bot, minute * M)
    pages = events(bot, channel, "escalation_page")
    assert [(p.payload["level"], p.payload["repeat"]) for p in pages] == [
        (1, False),  # on declare
        (1, True),  # 10m
        (2, False),  # 15m
        (2, True),  # 25m
        (2, True),  # 35m
        (3, False),  # 45m: 30m after level 2
        (3, True),  # 55m
    ]
    assert "<@U0123ONCALL>" in pages[2].text and "<@U0123MANAGER>" in pages[5].text
    assert "not acknowledged" in pages[1].text
    await bot.slack.command("ack", channel=channel, user="U_BOB")
    for minute in (70, 120, 200):
        await at(bot, minute * M)
    assert len(events(bot, channel, "escalation_page")) == 7
    assert events(bot, channel, "sla_warning", "sla_breached") == []  # P3 response is 2h; acked in time


async def test_manual_escalate_after_acknowledge_pages_next_level_once(bot) -> None:
    incident = await declare(bot, "P3 Odd latency")
    channel = incident.channel.id
    await bot.slack.command("ack", channel=channel, user="U_BOB")
    await bot.slack.command("escalate need DBA", channel=channel, user="U_BOB")
    await at(bot, 60 * M)
    pages = events(bot, channel, "escalation_page")
    assert [(p.payload["level"], p.payload["repeat"]) for p in pages] == [(1, False), (2, False)]


async def test_stale_warning_is_skipped_when_its_breach_is_due_and_missed_levels_come_in_order(bot) -> None:
    incident = await declare(bot, "P1 Everything is on fire")
    channel = incident.channel.id
    await at(bot, 50 * M)  # as if no process had run for 50 minutes
    assert [m.payload["clock"] for m in events(bot, channel, "sla_breached")] == ["response"]
    assert events(bot, channel, "sla_warning") == []
    pages = [(p.payload["level"], p.payload["repeat"]) for p in events(bot, channel, "escalation_page")]
    # the level 1 repeat was due at 10m, level 2 at 15m, level 3 at 45m; each posted once, in order,
    # and the repeats missed in between are not replayed as a burst
    assert pages == [(1, False), (1, True), (2, False), (3, False)]


async def test_resolution_clock_pauses_while_resolved_and_resumes_on_reopen(bot) -> None:
    incident = await declare(bot, "P1 Login broken")  # resolution 4h, warning at 3h
    channel = incident.channel.id
    await bot.slack.command("ack", channel=channel, user="U_BOB")
    bot.clock.offset = 60 * M
    await bot.slack.command(
        "resolve Restarted auth cause=unknown resolution=restart", channel=channel, user="U_BOB"
    )
    await bot.slack.command("pir done https://wiki/pir", channel=channel, user="U_BOB")
    await at(bot, 300 * M)  # four hours resolved: the clock is stopped
    assert events(bot, channel, "sla_warning", "sla_breached") == []
    await bot.slack.command("reopen It broke again", channel=channel, user="U_BOB")
    await at(bot, 300 * M + 119 * M)  # 60m open before + 119m since reopening = 2h59m running
    assert events(bot, channel, "sla_warning") == []
    await at(bot, 300 * M + 121 * M)
    warning = events(bot, channel, "sla_warning")
    assert [m.payload["clock"] for m in warning] == ["resolution"]
    declared = (await incident_row(bot)).declared_at
    assert datetime.fromisoformat(warning[0].payload["due_at"]) == declared + timedelta(hours=8)


async def test_priority_change_replans_clocks_from_declaration(bot) -> None:
    incident = await declare(bot, "P3 Reports slow")  # P3 response 2h
    channel = incident.channel.id
    bot.clock.offset = 20 * M
    await bot.slack.command(
        "priority P1", channel=channel, user="U0123ADMIN"
    )  # P1 response 15m: already late
    await at(bot, 20 * M + timedelta(seconds=1))
    assert [m.payload["clock"] for m in events(bot, channel, "sla_breached")] == ["response"]
    assert events(bot, channel, "sla_warning") == []
    await bot.slack.command("priority P4", channel=channel, user="U0123ADMIN")  # P4 response 8h: not breached
    assert (await incident_row(bot)).response_breached_at is None
    await at(bot, 6 * 60 * M + 1 * M)  # 75% of 8h
    assert [m.payload["clock"] for m in events(bot, channel, "sla_warning")] == ["response"]


async def test_update_nudges_until_an_update_is_posted(bot) -> None:
    incident = await declare(bot, "P1 Checkout errors")  # update every 30m
    channel = incident.channel.id
    await bot.slack.command("ack", channel=channel, user="U_BOB")
    await at(bot, 29 * M)
    assert events(bot, channel, "update_nudge") == []
    await at(bot, 31 * M)
    await at(bot, 61 * M)
    nudges = events(bot, channel, "update_nudge")
    assert len(nudges) == 2 and "<@U_BOB>" in nudges[0].text
    bot.clock.offset = 70 * M
    await bot.slack.command("update Fix deploying", channel=channel, user="U_BOB")
    await at(bot, 99 * M)
    assert len(events(bot, channel, "update_nudge")) == 2
    await at(bot, 101 * M)
    assert len(events(bot, channel, "update_nudge")) == 3
    await bot.slack.command(
        "resolve Deployed fix cause=application-error resolution=bug-fix", channel=channel, user="U_BOB"
    )
    await at(bot, 300 * M)
    assert len(events(bot, channel, "update_nudge")) == 3


async def test_pir_reminders_until_done_and_then_overdue(bot) -> None:
    incident = await declare(bot, "P2 Search down")  # pir_required; remind every 1d; due 5d after resolution
    channel = incident.channel.id
    await bot.slack.command("ack", channel=channel, user="U_BOB")
    await bot.slack.command(
        "resolve Reindexed cause=capacity resolution=capacity-added", channel=channel, user="U_BOB"
    )
    day = timedelta(days=1)
    await at(bot, day + M)
    reminders = events(bot, channel, "pir_reminder")
    assert len(reminders) == 1 and "<@U_BOB>" in reminders[0].text and "is due" in reminders[0].text
    for n in range(2, 7):
        await at(bot, n * day + n * M)
    reminders = events(bot, channel, "pir_reminder")
    assert len(reminders) == 6
    assert "overdue" in reminders[-1].text and "overdue" not in reminders[3].text
    assert len({m.payload["due_at"] for m in reminders}) == 1
    await bot.slack.command("pir done https://wiki/pir/2", channel=channel, user="U_BOB")
    await at(bot, 10 * day)
    assert len(events(bot, channel, "pir_reminder")) == 6


async def test_concurrent_sweeps_fire_each_timer_once(bot) -> None:
    for n in range(5):
        await declare(bot, f"P1 Outage {n}")
    bot.clock.offset = 20 * M
    counts = await asyncio.gather(*(bot.tocsin.sweeper.sweep() for _ in range(6)))
    await drained(bot)
    # per incident: the breach (+ leadership copy), the level 1 repeat (10m) and the level 2 page (15m);
    # the stale warning is skipped
    assert sum(counts) == 5 * 3
    for n in range(1, 6):
        breaches = [
            m
            for m in bot.fake.messages
            if m.event_type == "sla_breached" and m.payload["incident_id"] == f"INC-{n}"
        ]
        assert len(breaches) == 2  # incident channel and leadership
        pages = [
            m
            for m in bot.fake.messages
            if m.event_type == "escalation_page" and m.payload["incident_id"] == f"INC-{n}"
        ]
        assert [(p.payload["level"], p.payload["repeat"]) for p in pages] == [
            (1, False),
            (1, True),
            (2, False),
        ]
