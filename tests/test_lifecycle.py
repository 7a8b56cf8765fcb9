"""An incident from declare to closed, entirely through Slack: commands, buttons and modals."""

from __future__ import annotations

import asyncio

from tests.conftest import ADMIN, ANNOUNCE, LEADERS
from tests.helpers import declare, drained
from tests.signed import select, text_input


def buttons(message) -> list[str]:
    return [e["action_id"] for b in message.blocks or [] if b["type"] == "actions" for e in b["elements"]]


async def test_declare_to_closed(bot) -> None:
    fake = bot.fake
    incident = await declare(bot, "P1 API returns 500s", user="U_ALICE")
    channel = incident.channel.id
    await drained(bot)
    announcement = fake.posts(channel=ANNOUNCE)[0]

    # Acknowledge from the card: Bob becomes commander, paging stops, card and announcement change in place.
    reply = await bot.slack.click(
        "incident_acknowledge",
        incident.card.payload["incident_id"].split("-")[1],
        user="U_BOB",
        message_ts=incident.card.ts,
    )
    assert reply.status == 200
    acked = await fake.wait_for(lambda: fake.posts(channel=channel, event_type="incident_acknowledged"))
    assert "<@U_BOB>" in acked[0].text and acked[0].payload["incident_id"] == "INC-1"
    await drained(bot)
    assert "Commander: <@U_BOB>" in incident.card.text and "investigating" in incident.card.text
    assert "incident_acknowledge" not in buttons(incident.card)
    assert "investigating" in announcement.text and "<@U_BOB>" in announcement.text

    # A second Acknowledge tells the clicker, privately, who already did and when.
    await bot.slack.click("incident_acknowledge", "1", user="U_CAROL", message_ts=incident.card.ts)
    answer = await fake.wait_for(lambda: fake.responses)
    assert "already acknowledged by <@U_BOB>" in answer[0]["body"]["text"]
    assert answer[0]["body"]["response_type"] == "ephemeral"
    assert len(fake.posts(event_type="incident_acknowledged")) == 1

    # Status changes, typed in the incident channel.
    for status in ("identified", "monitoring"):
        reply = await bot.slack.command(f"status {status}", user="U_BOB", channel=channel)
        assert f"INC-1 is now *{status}*" in reply.body
    changed = await fake.wait_for(
        lambda: (
            len(fake.posts(channel=channel, event_type="incident_status_changed")) == 2
            and fake.posts(channel=channel, event_type="incident_status_changed")
        )
    )
    assert [m.payload["to"] for m in changed] == ["identified", "monitoring"]

    # A stakeholder update: in the channel and in the announcement's thread.
    reply = await bot.slack.command(
        "update Error rate back to normal, watching", user="U_BOB", channel=channel
    )
    assert reply.status == 200
    await drained(bot)
    in_thread = fake.posts(channel=ANNOUNCE, thread_ts=announcement.ts)
    assert [m.event_type for m in in_thread] == ["incident_status_update"]
    assert "Error rate back to normal" in in_thread[0].text
    assert (
        "Error rate back to normal"
        in fake.posts(channel=channel, event_type="incident_status_update")[0].text
    )

    # Resolve; P1 needs a PIR before it can close.
    reply = await bot.slack.command(
        "resolve Rolled back release 42 cause=application-error resolution=rollback",
        user="U_BOB",
        channel=channel,
    )
    assert "resolved" in reply.body
    reply = await bot.slack.command("close", user="U_BOB", channel=channel)
    assert "post-incident review" in reply.body and "pir done" in reply.body
    reply = await bot.slack.command(
        "pir done https://wiki.example.com/pir/inc-1", user="U_BOB", channel=channel
    )
    assert "marked done" in reply.body
    reply = await bot.slack.command("close", user="U_BOB", channel=channel)
    assert "INC-1 is now *closed*" in reply.body
    await drained(bot)

    events = [m.event_type for m in fake.posts(channel=channel)]
    assert events == [
        "incident_declared",
        "escalation_page",
        "incident_acknowledged",
        "incident_status_changed",
        "incident_status_changed",
        "incident_status_update",
        "incident_resolved",
        "closure_confirmation_requested",
        "incident_closed",
    ]
    resolved = fake.posts(channel=channel, event_type="incident_resolved")[0]
    assert (
        "Rolled back release 42" in resolved.text
        and "application-error" in resolved.text
        and "rollback" in resolved.text
    )
    assert "closed" in announcement.text and "closed" in incident.card.text
    assert "https://wiki.example.com/pir/inc-1" in str(incident.card.blocks)
    assert "https://wiki.example.com/pir/inc-1" in str(announcement.blocks)
    shown = await bot.slack.command("show", channel=channel)
    assert "https://wiki.example.com/pir/inc-1" in shown.body
    assert buttons(incident.card) == []
    assert all(m.payload.get("incident_id") == "INC-1" for m in fake.messages)
    assert fake.problems == []

    timeline = await bot.slack.command("timeline", channel=channel)
    for expected in (
        "declared",
        "ack",
        "status identified",
        "status monitoring",
        "update",
        "resolve",
        "post-incident review",
        "close",
    ):
        assert expected in timeline.body


async def test_update_and_resolve_through_buttons_and_modals(bot) -> None:
    fake = bot.fake
    incident = await declare(bot, "P2 Queue backlog")
    await bot.slack.command("ack", user="U_BOB", channel=incident.channel.id)

    await bot.slack.click("incident_update", "1", user="U_BOB", message_ts=incident.card.ts)
    view = await fake.wait_for(
        lambda: [v for v in fake.views if v["view"]["callback_id"] == "incident_update"]
    )
    reply = await bot.slack.submit(
        "incident_update",
        {"update_text": {"update_text": text_input("Consumers scaled to 20")}},
        user="U_BOB",
    )
    assert reply.body == "", reply.body
    update = await fake.wait_for(
        lambda: fake.posts(channel=incident.channel.id, event_type="incident_status_update")
    )
    assert "Consumers scaled to 20" in update[0].text
    assert view

    # Someone who is not the commander is refused before the form opens.
    await bot.slack.click("incident_resolve", "1", user="U_MALLORY", message_ts=incident.card.ts)
    refusal = await fake.wait_for(lambda: fake.responses)
    assert (
        "Only the commander (<@U_BOB>) or an admin (<@U0123ADMIN>) may resolve INC-1"
        in refusal[0]["body"]["text"]
    )
    assert not [v for v in fake.views if v["view"]["callback_id"] == "incident_resolve"]

    await bot.slack.click("incident_resolve", "1", user="U_BOB", message_ts=incident.card.ts)
    await fake.wait_for(lambda: [v for v in fake.views if v["view"]["callback_id"] == "incident_resolve"])
    missing = await bot.slack.submit(
        "incident_resolve",
        {
            "summary": {"summary": text_input("Scaled consumers")},
            "cause": {"cause": select("capacity")},
            "resolution": {"resolution": select(None)},
        },
        user="U_BOB",
    )
    assert missing.json["response_action"] == "errors" and "resolution" in missing.json["errors"]
    done = await bot.slack.submit(
        "incident_resolve",
        {
            "summary": {"summary": text_input("Scaled consumers")},
            "cause": {"cause": select("capacity")},
            "resolution": {"resolution": select("capacity-added")},
        },
        user="U_BOB",
    )
    assert done.body == ""
    resolved = await fake.wait_for(
        lambda: fake.posts(channel=incident.channel.id, event_type="incident_resolved")
    )
    assert "capacity-added" in resolved[0].text


async def test_escalate_pages_next_level_then_repeats_the_last(bot) -> None:
    fake = bot.fake
    incident = await declare(bot, "P3 Disk filling")
    channel = incident.channel.id
    reply = await bot.slack.command("escalate DBA needed", channel=channel, user="U_CAROL")
    assert "Paging level 2 (Platform on-call)" in reply.body
    await bot.slack.click("incident_escalate", "1", user="U_CAROL", message_ts=incident.card.ts)
    await bot.slack.command("escalate", channel=channel)
    pages = await fake.wait_for(
        lambda: (
            len(fake.posts(channel=channel, event_type="escalation_page")) == 4
            and fake.posts(channel=channel, event_type="escalation_page")
        )
    )
    assert [(p.payload["level"], p.payload["repeat"]) for p in pages] == [
        (1, False),
        (2, False),
        (3, False),
        (3, True),
    ]
    assert "<@U0123ONCALL>" in pages[1].text and "DBA needed" in pages[1].text
    assert "<@U0123MANAGER>" in pages[2].text


async def test_priority_raise_notifies_leadership_and_roles_are_assigned(bot) -> None:
    fake = bot.fake
    incident = await declare(bot, "P3 Partner API flaky")
    channel = incident.channel.id
    await bot.slack.command("ack", channel=channel, user="U_BOB")
    reply = await bot.slack.command("priority P1", channel=channel, user="U_BOB")
    assert "INC-1 is now P1" in reply.body
    notice = await fake.wait_for(lambda: fake.posts(channel=LEADERS))
    assert notice[0].event_type == "incident_leadership_notice" and notice[0].payload["priority"] == "P1"
    # (the leadership notice is urgent: it may reach Slack before the post in the incident channel)
    changed = await fake.wait_for(lambda: fake.posts(channel=channel, event_type="incident_priority_changed"))
    assert changed[0].payload["from"] == "P3" and changed[0].payload["to"] == "P1"

    reply = await bot.slack.command("assign comms <@U_DAVE|dave>", channel=channel, user="U_BOB")
    assert "<@U_DAVE> is now comms" in reply.body
    reply = await bot.slack.command("assign commander <@U_ERIN>", channel=channel, user="U_BOB")
    assigned = await fake.wait_for(
        lambda: (
            len(fake.posts(channel=channel, event_type="incident_role_assigned")) == 2
            and fake.posts(channel=channel, event_type="incident_role_assigned")
        )
    )
    assert [(m.payload["role"], m.payload["user"]) for m in assigned] == [
        ("comms", "U_DAVE"),
        ("commander", "U_ERIN"),
    ]
    # Bob handed over command: now only Erin or an admin may change priority.
    reply = await bot.slack.command("priority P2", channel=channel, user="U_BOB")
    assert "Only the commander (<@U_ERIN>)" in reply.body
    reply = await bot.slack.command("priority P2", channel=channel, user=ADMIN)
    assert "INC-1 is now P2" in reply.body


async def test_reopen_and_cancel(bot) -> None:
    fake = bot.fake
    first = await declare(bot, "P3 VPN drops", user="U_ALICE")
    await bot.slack.command("ack", channel=first.channel.id, user="U_BOB")
    await bot.slack.command(
        "resolve Router rebooted cause=hardware-failure resolution=restart",
        channel=first.channel.id,
        user="U_BOB",
    )
    reply = await bot.slack.command("reopen", channel=first.channel.id, user="U_BOB")
    assert "reason is required" in reply.body
    reply = await bot.slack.command("reopen Drops again since 10:00", channel=first.channel.id, user="U_BOB")
    assert "investigating" in reply.body
    reopened = await fake.wait_for(
        lambda: fake.posts(channel=first.channel.id, event_type="incident_reopened")
    )
    assert "Drops again since 10:00" in reopened[0].text and "1 time" in reopened[0].text

    second = await declare(bot, "P4 Duplicate of INC-1")
    reply = await bot.slack.command("cancel duplicate of INC-1", channel=second.channel.id, user=ADMIN)
    assert "cancelled" in reply.body
    cancelled = await fake.wait_for(
        lambda: fake.posts(channel=second.channel.id, event_type="incident_cancelled")
    )
    assert cancelled[0].payload["incident_id"] == "INC-2"

    listing = await bot.slack.command("list")
    assert "INC-1" in listing.body and "INC-2" not in listing.body and "1 open incident" in listing.body
    shown = await bot.slack.command("INC-2 show")
    assert "cancelled" in shown.body


async def test_concurrent_acknowledge_clicks_make_one_commander(bot) -> None:
    fake = bot.fake
    incident = await declare(bot, "P2 Everyone clicks at once")
    users = [f"U_CLICKER{n}" for n in range(10)]
    replies = await asyncio.gather(
        *(bot.slack.click("incident_acknowledge", "1", user=u, message_ts=incident.card.ts) for u in users)
    )
    assert all(r.status == 200 for r in replies)
    await fake.wait_for(lambda: len(fake.responses) == 9)
    await drained(bot)
    acked = fake.posts(event_type="incident_acknowledged")
    assert len(acked) == 1
    winner = next(u for u in users if f"<@{u}>" in acked[0].text)
    assert all(f"already acknowledged by <@{winner}>" in r["body"]["text"] for r in fake.responses)


async def test_resolve_without_text_opens_the_form(bot) -> None:
    incident = await declare(bot, "P4 Typo on status page")
    await bot.slack.command("ack", channel=incident.channel.id, user="U_BOB")
    reply = await bot.slack.command("resolve", channel=incident.channel.id, user="U_BOB")
    assert reply.body == ""
    view = await bot.fake.wait_for(
        lambda: [v for v in bot.fake.views if v["view"]["callback_id"] == "incident_resolve"]
    )
    options = {
        b["block_id"]: [o["value"] for o in b["element"].get("options", [])]
        for b in view[0]["view"]["blocks"]
        if b["type"] == "input"
    }
    assert "application-error" in options["cause"] and "rollback" in options["resolution"]
