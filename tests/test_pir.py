"""Post-incident review: the draft document, the review meeting, action items, problems, similar
incidents. Driven through Slack; time moved by hand (the periodic sweep is an hour apart)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import ROOT
from tests.helpers import declare, drained
from tests.processes import environment, run

M = timedelta(minutes=1)
D = timedelta(days=1)


@pytest.fixture
def config(config):
    config["scheduler"]["tick"] = "1h"
    return config


async def at(bot, offset: timedelta) -> None:
    bot.clock.offset = offset
    await bot.tocsin.sweeper.sweep()
    await drained(bot)


async def known_incident(bot) -> str:
    """INC-1 with a known timeline: acked at 3m, identified 10m, monitoring 20m, resolved 45m."""
    incident = await declare(bot, "P2 Checkout <!channel> *fails* for EU & US")
    channel = incident.channel.id
    steps = [
        (3, "U_BOB", "ack"),
        (5, "U_BOB", "assign comms <@U_CAROL>"),
        (8, "U_BOB", "note Error rate 40% on checkout-api; suspect release 7.2 <https://evil|x>"),
        (10, "U_BOB", "status identified"),
        (12, "U_BOB", "update Cause found: bad config in 7.2, rolling back"),
        (15, "U_BOB", "priority P1"),
        (20, "U_BOB", "status monitoring"),
        (
            45,
            "U_BOB",
            "resolve Rolled back to 7.1 and fixed the config cause=configuration-error resolution=rollback",
        ),
    ]
    for minute, user, command in steps:
        bot.clock.offset = minute * M
        reply = await bot.slack.command(command, channel=channel, user=user)
        assert "warning" not in reply.body and "no_entry" not in reply.body, (command, reply.body)
    await drained(bot)
    return channel


async def test_pir_draft_is_uploaded_with_every_section_and_exact_figures(bot, database_url) -> None:
    channel = await known_incident(bot)
    bot.clock.offset = 50 * M
    reply = await bot.slack.command(
        "action <@U_DAVE> Add a config linter to CI due=2099-01-31", channel=channel, user="U_BOB"
    )
    assert "Action 1 of INC-1 added" in reply.body
    reply = await bot.slack.command("pir", channel=channel, user="U_BOB")
    assert "being uploaded" in reply.body
    upload = await bot.fake.wait_for(lambda: bot.fake.files)
    assert upload[0]["channel"] == channel and upload[0]["filename"] == "inc-1-post-incident-review.md"
    assert "pir done" in upload[0]["initial_comment"]
    document = upload[0]["content"].decode()

    for section in (
        "# Post-incident review: INC-1",
        "## Impact",
        "## SLA results",
        "## Milestones",
        "## Resolution",
        "## Timeline",
        "## Review",
        "## Open action items",
    ):
        assert section in document, section
    for question in (
        "What happened?",
        "What was the impact?",
        "How was it detected?",
        "How was it resolved?",
        "What went well?",
        "What could have gone better?",
        "What was the root cause (5 Whys)?",
        "What will we do to prevent it?",
    ):
        assert f"### {question}" in document
    assert "| Priority | P1 |" in document and "| Category | other |" in document
    assert "| Commander | U\\_BOB |" in document and "| Communications | U\\_CAROL |" in document
    # milestones and durations, exactly
    assert "- Time to acknowledge: 3m" in document
    assert "- Time to mitigate: 20m" in document
    assert "- Time to resolve: 45m" in document
    assert re.search(r"\| Identified \| \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \| 10m \|", document), document
    # SLA: P1 targets 15m response (met in 3m), 4h resolution (met in 45m)
    assert "| response | 15m | 3m |" in document and "| resolution | 4h | 45m |" in document
    assert document.count("| met |") == 2
    # every kind of change in the timeline, with who
    for what in (
        "declared:",
        "ack (triage → investigating)",  # in the words of the command that did it
        "comms → @U\\_CAROL",  # user text in the timeline is Markdown-escaped
        "note: Error rate 40%",
        "status identified (investigating → identified)",
        "stakeholder update: Cause found",
        "priority P2 → P1",
        "status monitoring (identified → monitoring)",
        "resolve (monitoring → resolved)",
        "paged level 1",
        "action 1 added",
    ):
        assert what in document, what
    assert (
        "Rolled back to 7.1" in document and "`configuration-error`" in document and "`rollback`" in document
    )
    assert "| 1 | U\\_DAVE | 2099-01-31 | Add a config linter to CI |" in document
    # user text escaped: no HTML, no mentions, no markdown emphasis; a link typed in Slack stays a link
    assert "<!channel>" not in document and "<https://evil" not in document
    assert "Checkout @channel \\*fails\\* for EU & US" in document
    assert "suspect release 7.2 [x](https://evil)" in document

    # `tocsin pir INC-1` prints the same document
    code, out, err = await run(
        "pir", "INC-1", env=environment(DATABASE_URL=database_url, TOCSIN_CONFIG=str(ROOT / "app.yaml"))
    )
    assert code == 0, err
    assert out == document


async def test_pir_before_resolution_is_refused(bot, database_url) -> None:
    incident = await declare(bot, "P3 Still burning")
    reply = await bot.slack.command("pir", channel=incident.channel.id)
    assert "INC-1 is *triage*, so `pir` is not possible now" in reply.body
    await drained(bot)
    assert bot.fake.files == []
    code, out, err = await run(
        "pir", "INC-1", env=environment(DATABASE_URL=database_url, TOCSIN_CONFIG=str(ROOT / "app.yaml"))
    )
    assert code == 1 and "INC-1 is triage" in err and out == ""


async def test_review_meeting_is_announced_and_participants_reminded_an_hour_before(bot) -> None:
    channel = await known_incident(bot)
    bad = await bot.slack.command("pir schedule tomorrow at ten", channel=channel, user="U_BOB")
    assert "is not a time like 2026-12-01 14:30" in bad.body
    past = await bot.slack.command("pir schedule 2001-01-01 10:00", channel=channel, user="U_BOB")
    assert "2001-01-01 10:00 is in the past" in past.body
    meeting = (datetime.now(UTC) + 3 * D).replace(hour=14, minute=30, second=0, microsecond=0)
    reply = await bot.slack.command(f"pir schedule {meeting:%Y-%m-%d %H:%M}", channel=channel, user="U_BOB")
    assert "Review meeting for INC-1 set for" in reply.body
    await drained(bot)
    announced = bot.fake.posts(channel=channel, event_type="pir_meeting_scheduled")
    assert len(announced) == 1 and datetime.fromisoformat(announced[0].payload["meeting_at"]) == meeting
    start = datetime.now(UTC)  # the clock reads start + offset
    await at(bot, meeting - start - 61 * M)
    assert bot.fake.posts(channel=channel, event_type="pir_meeting_reminder") == []
    await at(bot, meeting - start - 59 * M)
    reminder = bot.fake.posts(channel=channel, event_type="pir_meeting_reminder")
    assert len(reminder) == 1
    assert all(who in reminder[0].text for who in ("<@U_BOB>", "<@U_CAROL>", "<@U_ALICE>"))
    await at(bot, meeting - start + 10 * M)
    assert len(bot.fake.posts(channel=channel, event_type="pir_meeting_reminder")) == 1


async def test_action_items_added_listed_reminded_and_done(bot) -> None:
    fake = bot.fake
    channel = await known_incident(bot)
    today = bot.clock().date()  # the bot's day: known_incident moved its clock 45 minutes on
    reply = await bot.slack.command(
        f"action <@U_DAVE> Rotate the leaked key due={today.isoformat()}", channel=channel, user="U_BOB"
    )
    assert "Action 1 of INC-1 added for <@U_DAVE>" in reply.body
    reply = await bot.slack.command("action <@U_ERIN> Write the runbook", channel=channel, user="U_BOB")
    assert f"due {(today + 5 * D).isoformat()}" in reply.body  # pir.due_after from now
    added = await fake.wait_for(
        lambda: (
            len(fake.posts(channel=channel, event_type="action_item_added")) == 2
            and fake.posts(channel=channel, event_type="action_item_added")
        )
    )
    assert [(m.payload["action"], m.payload["owner"]) for m in added] == [(1, "U_DAVE"), (2, "U_ERIN")]

    listing = await bot.slack.command("actions", channel=channel)
    assert "#1" in listing.body and "Rotate the leaked key" in listing.body and "#2" in listing.body

    # bad input: unknown number, bad and past dates, missing owner
    for command, expected in (
        ("action done 9", "Action 9 of INC-1 not found"),
        ("action <@U_DAVE> Fix it due=31/12/2099", "is not a date like"),
        ("action <@U_DAVE> Fix it due=2001-01-01", "2001-01-01 is in the past"),
        ("action Fix it", "Usage: `/incident action @owner"),
    ):
        reply = await bot.slack.command(command, channel=channel, user="U_BOB")
        assert expected in reply.body, (command, reply.body)

    # overdue after the due day ends: reminded to the owner every pir.remind_every (1d) until done
    midnight = datetime.combine(today + D, datetime.min.time(), tzinfo=UTC)
    start = datetime.now(UTC)  # the clock reads start + offset
    await at(bot, midnight - start - M)
    assert fake.posts(channel=channel, event_type="action_item_reminder") == []
    await at(bot, midnight - start + M)
    await at(bot, midnight - start + D + 2 * M)
    reminders = fake.posts(channel=channel, event_type="action_item_reminder")
    assert len(reminders) == 2
    assert reminders[0].payload["action"] == 1 and reminders[0].payload["due"] == today.isoformat()
    assert reminders[0].payload["incident_id"] == "INC-1" and "<@U_DAVE>" in reminders[0].text

    mine = await bot.slack.command("actions mine", user="U_DAVE")
    assert "INC-1 #1" in mine.body and "overdue" in mine.body and "Write the runbook" not in mine.body

    refused = await bot.slack.command("action done 1", channel=channel, user="U_MALLORY")
    assert "Only its owner (<@U_DAVE>), the commander (<@U_BOB>) or an admin" in refused.body
    done = await bot.slack.command("action done 1", channel=channel, user="U_DAVE")
    assert "Action 1 of INC-1 is done" in done.body
    again = await bot.slack.command("action done 1", channel=channel, user="U_DAVE")
    assert "already done" in again.body
    await at(bot, midnight - start + 4 * D)
    ones = [
        m for m in fake.posts(channel=channel, event_type="action_item_reminder") if m.payload["action"] == 1
    ]
    assert len(ones) == 2  # none since it was done
    assert fake.posts(channel=channel, event_type="action_item_done")[0].payload["action"] == 1


async def test_closing_with_open_actions_warns_and_lists_them(bot) -> None:
    channel = await known_incident(bot)
    await bot.slack.command(
        "action <@U_ERIN> Write the runbook due=2099-02-01", channel=channel, user="U_BOB"
    )
    await bot.slack.command("pir done https://wiki.example.com/pir/1", channel=channel, user="U_BOB")
    reply = await bot.slack.command("close", channel=channel, user="U_BOB")
    assert "INC-1 is now *closed*" in reply.body and "1 open action item" in reply.body
    closed = await bot.fake.wait_for(lambda: bot.fake.posts(channel=channel, event_type="incident_closed"))
    assert (
        "still open" in closed[0].text
        and "<@U_ERIN>" in closed[0].text
        and "Write the runbook" in closed[0].text
    )


async def test_problem_links_and_lists(bot) -> None:
    first = await declare(bot, "P3 Disk full on db-1")
    second = await declare(bot, "P3 Disk full on db-2")
    for incident in (first, second):
        reply = await bot.slack.command("problem PRB-42", channel=incident.channel.id, user="U0123ADMIN")
        assert "linked to problem PRB-42" in reply.body
    listing = await bot.slack.command("list problem=PRB-42")
    assert (
        "2 incidents linked to problem PRB-42" in listing.body
        and "INC-1" in listing.body
        and "INC-2" in listing.body
    )
    too_long = await bot.slack.command("problem " + "x" * 201, channel=first.channel.id)
    assert "201 characters long; the limit is 200" in too_long.body
    await drained(bot)
    assert "PRB-42" in str(first.card.blocks)
    shown = await bot.slack.command("show", channel=first.channel.id)
    assert "PRB-42" in shown.body


async def test_similar_finds_earlier_fixes_and_the_card_shows_them(bot) -> None:
    fixed = await declare(bot, "P3 Payment gateway timeouts")
    await bot.slack.command("ack", channel=fixed.channel.id, user="U_BOB")
    await bot.slack.command(
        "resolve Raised the gateway connection pool cause=capacity resolution=capacity-added",
        channel=fixed.channel.id,
        user="U_BOB",
    )
    unrelated = await declare(bot, "P4 Office printer jammed")
    await bot.slack.command("ack", channel=unrelated.channel.id, user="U_BOB")
    await bot.slack.command(
        "resolve Cleared the jam cause=hardware-failure resolution=restart",
        channel=unrelated.channel.id,
        user="U_BOB",
    )
    still_open = await declare(bot, "P3 Gateway errors again")

    reply = await bot.slack.command("similar gateway timeouts")
    assert "INC-1" in reply.body and "capacity-added" in reply.body
    assert "INC-2" not in reply.body and "INC-3" not in reply.body  # unrelated; still open
    reply = await bot.slack.command("similar connection pool")
    assert "INC-1" in reply.body  # the resolution summary is searched too
    reply = await bot.slack.command("similar quantum entanglement")
    assert "none found" in reply.body
    reply = await bot.slack.command("similar")
    assert "Usage" in reply.body

    await drained(bot)
    card_text = str(still_open.card.blocks)
    assert "Similar past incidents" in card_text and "INC-1" in card_text and "INC-2" not in card_text

    # Only done incidents are searched: reopened, INC-1 drops out; resolved again, it is back.
    await bot.slack.command("reopen Timeouts are back", channel=fixed.channel.id, user="U_BOB")
    assert "INC-1" not in (await bot.slack.command("similar gateway timeouts")).body
    await bot.slack.command(
        "resolve Raised the pool again cause=capacity resolution=capacity-added",
        channel=fixed.channel.id,
        user="U_BOB",
    )
    reply = await bot.slack.command("similar gateway timeouts")
    assert json.loads(reply.body)["text"].count("INC-1") == 1 and "Raised the pool again" in reply.body
