"""Declaring: the channel, the card, the announcement, leadership and the first page."""

from __future__ import annotations

from tests.conftest import ANNOUNCE, GENERAL, LEADERS
from tests.helpers import declare, drained


async def test_declare_opens_channel_posts_card_announcement_leadership_and_pages_level_one(bot) -> None:
    reply = await bot.slack.command("declare P1 Database down", user="U_ALICE")
    assert reply.status == 200
    assert "INC-1" in reply.body and "P1" in reply.body

    fake = bot.fake
    await fake.wait_for(lambda: fake.posts(event_type="escalation_page"))
    await drained(bot)
    channel = next(c for c in fake.channels.values() if c.name == "inc-1-database-down")
    assert "U_ALICE" in channel.members
    assert "INC-1" in channel.topic and "Database down" in channel.topic

    card = fake.posts(channel=channel.id, event_type="incident_declared")[0]
    assert card.payload["incident_id"] == "INC-1"
    assert card.ts in channel.pins
    assert "Database down" in card.text and "P1" in card.text
    buttons = [e["action_id"] for b in card.blocks if b["type"] == "actions" for e in b["elements"]]
    assert buttons == ["incident_acknowledge", "incident_update", "incident_escalate", "incident_resolve"]
    assert "Response due" in card.text and "Resolution due" in card.text

    announcement = fake.posts(channel=ANNOUNCE)
    assert [m.event_type for m in announcement] == ["incident_declared"]
    assert announcement[0].payload["incident_id"] == "INC-1"

    leadership = fake.posts(channel=LEADERS)
    assert [m.event_type for m in leadership] == ["incident_leadership_notice"]
    assert "Database down" in leadership[0].text

    pages = fake.posts(channel=channel.id, event_type="escalation_page")
    assert len(pages) == 1
    assert pages[0].payload == {
        "delivery_id": pages[0].payload["delivery_id"],  # the outbox row's id, for de-duplication
        "incident_id": "INC-1",
        "priority": "P1",
        "state": "triage",
        "level": 1,
        "repeat": False,
    }
    assert "<!subteam^S0123TIER1>" in pages[0].text
    assert fake.problems == []


async def test_p3_declare_does_not_notify_leadership(bot) -> None:
    await declare(bot, "P3 Slow search")
    await drained(bot)
    assert bot.fake.posts(channel=LEADERS) == []


async def test_declare_without_priority_uses_the_default(bot) -> None:
    incident = await declare(bot, "Search is slow")
    assert incident.card.payload["priority"] == "P3"


async def test_taken_channel_name_gets_a_suffix(bot) -> None:
    bot.fake.add_channel("C_TAKEN", "inc-1-printer-on-fire")
    incident = await declare(bot, "P4 Printer on fire")
    assert incident.channel.name == "inc-1-printer-on-fire-2"


async def test_channel_name_is_slack_legal(bot) -> None:
    incident = await declare(bot, "P4 " + "Ünïcode & <Weird> Chars!! " * 5)
    name = incident.channel.name
    assert len(name) <= 80 and name.startswith("inc-1-unicode-weird-chars")
    assert set(name) <= set("abcdefghijklmnopqrstuvwxyz0123456789-_")


async def test_per_incident_false_posts_the_card_where_the_command_was_typed(start_bot, config) -> None:
    config["channels"]["per_incident"] = False
    bot = await start_bot()
    await bot.slack.command("declare P2 Payments failing", channel=GENERAL)
    card = await bot.fake.wait_for(lambda: bot.fake.posts(channel=GENERAL, event_type="incident_declared"))
    assert card[0].payload["incident_id"] == "INC-1"
    assert bot.fake.calls_of("conversations.create") == []
    reply = await bot.slack.command("ack", channel=GENERAL, user="U_BOB")
    assert "INC-1 is now *investigating*" in reply.body


async def test_declare_modal_takes_priority_from_the_matrix(bot) -> None:
    from tests.signed import select, text_input

    reply = await bot.slack.command("declare", channel=GENERAL)
    assert reply.status == 200 and reply.body == ""
    view = await bot.fake.wait_for(lambda: bot.fake.views)
    assert view[0]["view"]["callback_id"] == "incident_declare"
    reply = await bot.slack.submit(
        "incident_declare",
        {
            "title": {"title": text_input("Login fails for some users")},
            "description": {"description": text_input("Since 09:00, ~10% of logins fail")},
            "impact": {"impact": select("significant")},
            "urgency": {"urgency": select("high")},
            "category": {"category": select("application")},
        },
    )
    assert reply.status == 200 and reply.body == ""
    card = await bot.fake.wait_for(
        lambda: [m for m in bot.fake.posts(event_type="incident_declared") if m.channel != ANNOUNCE]
    )
    assert card[0].payload["priority"] == "P2"  # significant x high
    assert "significant impact, high urgency" in str(card[0].blocks)


async def test_declare_modal_override_and_errors_keep_the_form_open(bot) -> None:
    from tests.signed import select, text_input

    await bot.slack.command("declare", channel=GENERAL)
    await bot.fake.wait_for(lambda: bot.fake.views)
    values = {
        "title": {"title": text_input("x" * 151)},
        "impact": {"impact": select("minor")},
        "urgency": {"urgency": select("low")},
        "category": {"category": select("network")},
        "priority": {"priority": select("P1")},
    }
    reply = await bot.slack.submit("incident_declare", values)
    assert reply.json["response_action"] == "errors"
    assert "title" in reply.json["errors"]
    values["title"] = {"title": text_input("Core switch down")}
    reply = await bot.slack.submit("incident_declare", values)
    assert reply.body == ""
    card = await bot.fake.wait_for(
        lambda: [m for m in bot.fake.posts(event_type="incident_declared") if m.channel != ANNOUNCE]
    )
    assert card[0].payload["priority"] == "P1"
    await drained(bot)
    assert len(bot.fake.posts(event_type="incident_declared", channel=ANNOUNCE)) == 1
