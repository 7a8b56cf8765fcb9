"""Closure: the reporter confirms restoration (or says it is still broken), codes are corrected after the
fact, and resolved incidents close by themselves; all through Slack, as a user drives it."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.conftest import ADMIN
from tests.helpers import declare, drained

RESOLVE = "resolve Rolled back the release cause=configuration-error resolution=rollback"


@pytest.fixture
def config(config):
    config["scheduler"]["tick"] = "1h"  # the tests sweep by hand, on the bot's clock
    config["closure"] = {"auto_close_after": "3d", "require_confirmation": False}
    return config


async def at(bot, offset: timedelta) -> None:
    bot.clock.offset = offset
    await bot.tocsin.sweeper.sweep()
    await drained(bot)


async def resolved(bot, text: str = "P3 Checkout is slow", *, reporter: str = "U_ALICE"):
    incident = await declare(bot, text, user=reporter)
    channel = incident.channel.id
    await bot.slack.command("ack", channel=channel, user="U_BOB")
    reply = await bot.slack.command(RESOLVE, channel=channel, user="U_BOB")
    assert "is resolved" in reply.body, reply.body
    request = await bot.fake.wait_for(
        lambda: bot.fake.posts(channel=channel, event_type="closure_confirmation_requested")
    )
    await drained(bot)
    return incident, request[0]


def buttons(message) -> list[str]:
    return [e["action_id"] for b in message.blocks or [] if b["type"] == "actions" for e in b["elements"]]


async def test_resolving_asks_the_reporter_and_confirm_restored_closes(bot) -> None:
    fake = bot.fake
    incident, request = await resolved(bot)
    channel = incident.channel.id
    assert "<@U_ALICE>" in request.text and "INC-1" in request.text
    assert buttons(request) == ["closure_confirm_restored", "closure_still_broken"]
    assert request.payload["incident_id"] == "INC-1" and request.payload["state"] == "resolved"
    assert request.payload["reporter"] == "U_ALICE"

    # Someone who is neither reporter, commander nor admin is refused, privately; nothing changes.
    await bot.slack.click("closure_confirm_restored", "1", user="U_MALLORY", message_ts=request.ts)
    refusal = await fake.wait_for(lambda: fake.responses)
    assert refusal[0]["body"]["response_type"] == "ephemeral"
    assert "Only its reporter (<@U_ALICE>)" in refusal[0]["body"]["text"]
    await bot.slack.click("closure_still_broken", "1", user="U_MALLORY", message_ts=request.ts)
    await fake.wait_for(lambda: len(fake.responses) == 2)
    await drained(bot)
    assert fake.posts(channel=channel, event_type="incident_confirmed") == []
    assert fake.posts(channel=channel, event_type="incident_reopened") == []

    # The reporter confirms: recorded, shown on the card, and (P3 needs no review) closed at once.
    await bot.slack.click("closure_confirm_restored", "1", user="U_ALICE", message_ts=request.ts)
    confirmed = await fake.wait_for(lambda: fake.posts(channel=channel, event_type="incident_confirmed"))
    assert "<@U_ALICE>" in confirmed[0].text
    closed = await fake.wait_for(lambda: fake.posts(channel=channel, event_type="incident_closed"))
    assert closed[0].payload["auto"] is False and closed[0].payload["to"] == "closed"
    await drained(bot)
    assert "Confirmed restored" in str(incident.card.blocks) and "<@U_ALICE>" in str(incident.card.blocks)

    # The closing message carries the final record.
    record = str(closed[0].blocks)
    for expected in (
        "*Priority* P3",
        "*Category*",
        "`configuration-error`",
        "`rollback`",
        "confirmed restored by <@U_ALICE>",
        "*Post-incident review* not required",
        "*Acknowledged*",
        "*Resolved*",
        "*Closed*",
    ):
        assert expected in record, expected

    # A second confirmation changes nothing and says why.
    shown = await bot.slack.command("INC-1 show", user="U_CAROL")
    assert "confirmed restored by <@U_ALICE>" in shown.body and "closed" in shown.body
    again = await bot.slack.command("INC-1 confirm", user="U_ALICE")
    assert "is *closed*, so `confirm` is not possible" in again.body
    assert len(fake.posts(channel=channel, event_type="incident_confirmed")) == 1


async def test_still_broken_reopens_as_a_reopen(bot) -> None:
    fake = bot.fake
    incident, request = await resolved(bot)
    channel = incident.channel.id
    await bot.slack.click("closure_still_broken", "1", user="U_ALICE", message_ts=request.ts)
    reopened = await fake.wait_for(lambda: fake.posts(channel=channel, event_type="incident_reopened"))
    assert "reporter says still broken" in reopened[0].text
    assert reopened[0].payload["from"] == "resolved" and reopened[0].payload["to"] == "investigating"
    await drained(bot)
    assert "Reopened" in str(incident.card.blocks)
    shown = await bot.slack.command("INC-1 show", user="U_CAROL")
    assert "*Reopened* 1\\u00d7" in shown.body and "investigating" in shown.body  # JSON-escaped ×

    # From the keyboard too, with a reason; the commander may, the reporter may.
    await bot.slack.command(RESOLVE, channel=channel, user="U_BOB")
    reply = await bot.slack.command(
        "still-broken checkout still times out in EU", channel=channel, user="U_ALICE"
    )
    assert "reopened" in reply.body
    second = await fake.wait_for(
        lambda: (
            len(fake.posts(channel=channel, event_type="incident_reopened")) == 2
            and fake.posts(channel=channel, event_type="incident_reopened")
        )
    )
    assert "reporter says still broken: checkout still times out in EU" in second[1].text
    refused = await bot.slack.command("still-broken", channel=channel, user="U_MALLORY")
    assert ":no_entry:" in refused.body or ":lock:" in refused.body  # not resolved now, and not theirs


async def test_confirm_waits_for_a_required_review_then_auto_close(bot) -> None:
    fake = bot.fake
    incident, _ = await resolved(bot, "P1 Payments down")
    channel = incident.channel.id
    reply = await bot.slack.command("confirm", channel=channel, user="U_ALICE")
    assert "confirmed restored; it closes once its post-incident review is required" in reply.body
    await drained(bot)
    assert fake.posts(channel=channel, event_type="incident_closed") == []

    # The review gate holds the auto-close past auto_close_after ...
    await at(bot, timedelta(days=4))
    assert fake.posts(channel=channel, event_type="incident_closed") == []
    # ... and once the review is done, the overdue auto-close happens at the next sweep.
    await bot.slack.command("pir done https://wiki.example.com/pir/1", channel=channel, user="U_BOB")
    await at(bot, timedelta(days=4, minutes=1))
    closed = await fake.wait_for(lambda: fake.posts(channel=channel, event_type="incident_closed"))
    assert (
        closed[0].payload["auto"] is True and "resolved more than 3 days ago" in closed[0].payload["reason"]
    )
    assert "closed by itself" in closed[0].text
    await at(bot, timedelta(days=9))
    assert len(fake.posts(channel=channel, event_type="incident_closed")) == 1


async def test_auto_close_after_resolution_and_require_confirmation(start_bot, config) -> None:
    config["closure"] = {"auto_close_after": "2h", "require_confirmation": True}
    bot = await start_bot()
    fake = bot.fake
    first, _ = await resolved(bot, "P3 Search is slow")
    await at(bot, timedelta(hours=3))
    assert fake.posts(channel=first.channel.id, event_type="incident_closed") == []  # nobody confirmed

    # The commander confirms (the reporter may be away): P3, so it closes at once.
    reply = await bot.slack.command("confirm", channel=first.channel.id, user="U_BOB")
    assert "now closed" in reply.body

    # A second bot on the same database: the first one's relay keeps running, so once its own messages
    # are out its clock goes back to agree with the new one's, as replicas' clocks do (three hours ahead,
    # it took the second bot's live leases for stale and delivered its messages too: two channels for
    # one incident).
    await drained(bot)
    bot.clock.offset = timedelta(0)
    config["closure"] = {"auto_close_after": "2h", "require_confirmation": False}
    other = await start_bot()
    second, _ = await resolved(other, "P4 Typo on the status page")
    channel = second.channel.id
    await at(other, timedelta(hours=1, minutes=59))
    assert fake.posts(channel=channel, event_type="incident_closed") == []
    await at(other, timedelta(hours=2, minutes=1))
    closed = await fake.wait_for(lambda: fake.posts(channel=channel, event_type="incident_closed"))
    assert closed[0].payload["auto"] is True and closed[0].payload["incident_id"] == second.id


async def test_recode_after_resolution(bot) -> None:
    fake = bot.fake
    incident, _ = await resolved(bot)
    channel = incident.channel.id
    refused = await bot.slack.command("recode cause=hardware-failure", channel=channel, user="U_ALICE")
    assert ":lock: Only" in refused.body and "may recode INC-1" in refused.body
    unknown = await bot.slack.command("recode cause=gremlins", channel=channel, user="U_BOB")
    assert "Unknown cause code" in unknown.body or "unknown cause code" in unknown.body
    empty = await bot.slack.command("recode", channel=channel, user="U_BOB")
    assert "Usage: `/incident recode" in empty.body

    reply = await bot.slack.command("recode cause=hardware-failure", channel=channel, user=ADMIN)
    assert "cause `hardware-failure` and resolution `rollback`" in reply.body
    recoded = await fake.wait_for(lambda: fake.posts(channel=channel, event_type="incident_recoded"))
    assert recoded[0].payload["from"] == "configuration-error/rollback"
    assert recoded[0].payload["to"] == "hardware-failure/rollback"
    timeline = await bot.slack.command("timeline", channel=channel, user="U_BOB")
    assert "configuration-error/rollback" in timeline.body and "hardware-failure/rollback" in timeline.body

    open_one = await declare(bot, "P3 Another one")
    not_yet = await bot.slack.command(
        "recode cause=hardware-failure", channel=open_one.channel.id, user=ADMIN
    )
    assert "is *triage*, so `recode` is not possible" in not_yet.body


def value(message, action_id: str) -> str:
    """The value of a button as the message was first posted (a person may click a stale render)."""
    _, blocks = message.posted
    return next(
        e["value"]
        for b in blocks or []
        if b["type"] == "actions"
        for e in b["elements"]
        if e["action_id"] == action_id
    )


def settled(message) -> str:
    """What an answered prompt now says below its question; it has no buttons left."""
    assert buttons(message) == [], message.blocks
    return message.blocks[-1]["elements"][0]["text"]


async def test_an_old_prompt_cannot_reopen_a_second_resolution(bot) -> None:
    fake = bot.fake
    incident, first = await resolved(bot)
    channel = incident.channel.id
    assert value(first, "closure_still_broken") == "1/1"

    # Still broken on the first prompt reopens, and that prompt now says so, without buttons.
    await bot.slack.click("closure_still_broken", "1/1", user="U_ALICE", message_ts=first.ts)
    await fake.wait_for(lambda: fake.posts(channel=channel, event_type="incident_reopened"))
    await drained(bot)
    assert (
        settled(first)
        == ":repeat: Reopened by <@U_ALICE>: reporter says still broken, so this question is closed."
    )
    assert first.text.endswith("so this question is closed.")

    # Resolved a second time: a new prompt, for the second resolution.
    await bot.slack.command(RESOLVE, channel=channel, user="U_BOB")
    second = (
        await fake.wait_for(
            lambda: (
                len(fake.posts(channel=channel, event_type="closure_confirmation_requested")) == 2
                and fake.posts(channel=channel, event_type="closure_confirmation_requested")
            )
        )
    )[1]
    await drained(bot)
    assert value(second, "closure_still_broken") == "1/2"

    # Still broken pressed on the first prompt (an old render, still on someone's screen) is refused.
    await bot.slack.click("closure_still_broken", "1/1", user="U_ALICE", message_ts=first.ts)
    [refusal] = await fake.wait_for(lambda: fake.responses)
    assert refusal["body"]["response_type"] == "ephemeral"
    assert refusal["body"]["text"] == (
        ":information_source: This prompt belongs to an earlier resolution of INC-1: it was reopened and "
        "resolved again since, so nothing was changed. Answer the latest prompt, or type `/incident INC-1 confirm`."
    )
    await drained(bot)
    assert len(fake.posts(channel=channel, event_type="incident_reopened")) == 1
    shown = await bot.slack.command("INC-1 show", user="U_CAROL")
    assert "resolved" in shown.body and "*Reopened* 1\\u00d7" in shown.body

    # The current prompt answers; once closed, it says so and its own buttons are refused too.
    await bot.slack.click("closure_confirm_restored", "1/2", user="U_ALICE", message_ts=second.ts)
    await fake.wait_for(lambda: fake.posts(channel=channel, event_type="incident_closed"))
    await drained(bot)
    assert settled(second) == ":white_check_mark: Confirmed restored by <@U_ALICE>, and closed."
    assert settled(first).startswith(":repeat: Reopened")  # the first prompt keeps its own story
    await bot.slack.click("closure_still_broken", "1/2", user="U_ALICE", message_ts=second.ts)
    await fake.wait_for(lambda: len(fake.responses) == 2)
    assert fake.responses[1]["body"]["text"] == (
        ":information_source: This prompt no longer applies: INC-1 is *closed* now, so nothing was changed."
    )
    # A card button from before the close (the card has none now) is refused privately with the reason.
    await bot.slack.click("incident_escalate", "1", user="U_BOB", message_ts=incident.card.ts)
    await fake.wait_for(lambda: len(fake.responses) == 3)
    assert fake.responses[2]["body"]["response_type"] == "ephemeral"
    assert "INC-1 is *closed*" in fake.responses[2]["body"]["text"]
    await drained(bot)
    assert len(fake.posts(channel=channel, event_type="incident_reopened")) == 1


async def test_a_prompt_says_how_the_incident_left_resolved(bot) -> None:
    fake = bot.fake
    # Reopened by the commander, from the keyboard.
    incident, prompt = await resolved(bot)
    await bot.slack.command("reopen the fix did not hold", channel=incident.channel.id, user="U_BOB")
    await fake.wait_for(lambda: buttons(prompt) == [])
    assert (
        settled(prompt) == ":repeat: Reopened by <@U_BOB>: the fix did not hold, so this question is closed."
    )

    # Confirmed while its review is still owed: answered, though still resolved; Still broken is refused.
    incident, prompt = await resolved(bot, "P1 Payments down")
    await bot.slack.command("confirm", channel=incident.channel.id, user="U_ALICE")
    await fake.wait_for(lambda: buttons(prompt) == [])
    assert settled(prompt) == (
        ":white_check_mark: Confirmed restored by <@U_ALICE>. It closes once its post-incident review is done."
    )
    await bot.slack.click(
        "closure_still_broken", value(prompt, "closure_still_broken"), user="U_ALICE", message_ts=prompt.ts
    )
    [refusal] = await fake.wait_for(lambda: fake.responses)
    assert refusal["body"]["text"].startswith(
        ":information_source: INC-2 was already confirmed restored by <@U_ALICE>, so this prompt is answered"
    )
    assert fake.posts(channel=incident.channel.id, event_type="incident_reopened") == []

    # Closed by itself, after closure.auto_close_after.
    incident, prompt = await resolved(bot, "P3 Search is slow")
    await at(bot, timedelta(days=4))
    await fake.wait_for(lambda: buttons(prompt) == [])
    assert settled(prompt) == ":lock: Closed by itself: resolved more than 3 days ago."

    # Closed by hand, unconfirmed.
    bot.clock.offset = timedelta(0)
    incident, prompt = await resolved(bot, "P4 Typo")
    await bot.slack.command("close", channel=incident.channel.id, user="U_BOB")
    await fake.wait_for(lambda: buttons(prompt) == [])
    assert settled(prompt) == ":lock: Closed by <@U_BOB>."
