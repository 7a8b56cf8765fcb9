"""Slack events and shortcuts, end to end: signed as Slack signs them, over real HTTP, against the fake
Slack; a reaction or a pin captures a message into its incident's timeline, once, whatever Slack
retries; removing it removes the entry; shortcuts capture from any channel and declare from a message;
the Home tab is published when opened and again when what it shows changes."""

from __future__ import annotations

import json

from sqlalchemy import select

from store.models import Incident, TimelineEntry
from tests.conftest import GENERAL
from tests.helpers import declare, drained
from tests.signed import select as chosen
from tests.signed import slack_encoded

BOB = "U_BOB"
SAID = "Error rate <https://grafana.example/d/x|dashboard> <!channel> & <@U_ALICE> look"


async def entries(bot, number: int = 1) -> list[TimelineEntry]:
    async with bot.tocsin.db.read() as session:
        query = (
            select(TimelineEntry).where(TimelineEntry.incident_number == number).order_by(TimelineEntry.id)
        )
        return list(await session.scalars(query))


def captured(rows: list[TimelineEntry]) -> list[TimelineEntry]:
    return [row for row in rows if row.kind == "captured" and row.removed_at is None]


async def timeline_text(bot, channel: str) -> str:
    reply = await bot.slack.command("timeline", channel=channel, user="U_ALICE")
    assert reply.status == 200
    return reply.body


async def test_a_reaction_captures_a_message_once_despite_retries_and_tocsin_confirms(bot) -> None:
    fake = bot.fake
    incident = await declare(bot, "P2 Checkout errors")
    channel = incident.channel.id
    fake.channels[channel].members.add(BOB)
    message = fake.add_message(channel, BOB, slack_encoded(SAID), files=[{"name": "errors.png"}])
    fake.react(channel, message.ts, BOB, "pushpin")
    first = await bot.slack.event(bot.slack.reaction_added(channel, message.ts, user=BOB, name="pushpin"))
    assert first.status == 200
    retried = await bot.slack.event(
        bot.slack.reaction_added(channel, message.ts, user=BOB, name="pushpin"),
        retry_num=1,
        event_id=first.event_id,
    )
    assert retried.status == 200
    fake.react(channel, message.ts, "U_ALICE", "memo")  # a second capturing reaction: still one entry
    await bot.slack.event(bot.slack.reaction_added(channel, message.ts, user="U_ALICE", name="memo"))
    await fake.wait_for(lambda: fake.reactions(channel, message.ts).get("white_check_mark"), timeout=5)
    await drained(bot)
    assert fake.reactions(channel, message.ts)["white_check_mark"] == {fake.bot_user_id}
    assert len(fake.calls_of("reactions.add")) == 1
    [entry] = captured(await entries(bot))
    assert entry.actor == BOB and entry.text == slack_encoded(SAID) and entry.files == ["errors.png"]
    assert entry.occurred_at is not None and abs(entry.occurred_at.timestamp() - float(message.ts)) < 1e-3
    assert entry.permalink == fake.permalink(channel, message.ts)
    shown = await timeline_text(bot, channel)
    assert "dashboard" in shown and "errors.png" in shown
    assert "<!channel>" not in shown  # the person's broadcast does not ping when Tocsin shows it


async def test_removing_the_last_capturing_reaction_or_the_pin_removes_the_entry(bot) -> None:
    fake = bot.fake
    incident = await declare(bot, "P3 Slow search")
    channel = incident.channel.id
    message = fake.add_message(channel, "U_ALICE", "Found it: the index was dropped")
    fake.react(channel, message.ts, "U_ALICE", "pushpin")
    await bot.slack.event(bot.slack.reaction_added(channel, message.ts, user="U_ALICE", name="pushpin"))
    fake.pin_by(channel, message.ts, "U_ALICE")
    await bot.slack.event(bot.slack.pin_added(channel, message.ts, user="U_ALICE"))
    await fake.wait_for(lambda: fake.reactions(channel, message.ts).get("white_check_mark"), timeout=5)
    assert len(captured(await entries(bot))) == 1
    fake.unreact(channel, message.ts, "U_ALICE", "pushpin")
    await bot.slack.event(bot.slack.reaction_removed(channel, message.ts, user="U_ALICE", name="pushpin"))
    assert len(captured(await entries(bot))) == 1  # the pin still captures it
    fake.unpin_by(channel, message.ts, "U_ALICE")
    await bot.slack.event(bot.slack.pin_removed(channel, message.ts, user="U_ALICE"))
    rows = await entries(bot)
    assert captured(rows) == []
    [audit] = [row for row in rows if row.kind == "capture_removed"]
    assert audit.actor == "U_ALICE" and audit.text == "Found it: the index was dropped"
    assert "the index was dropped" not in await timeline_text(bot, channel)


async def test_a_reaction_outside_an_incident_channel_or_with_another_emoji_captures_nothing(bot) -> None:
    fake = bot.fake
    incident = await declare(bot, "P3 Flaky login")
    fake.channels[GENERAL].members.add("U_ALICE")
    elsewhere = fake.add_message(GENERAL, "U_ALICE", "lunch?")
    fake.react(GENERAL, elsewhere.ts, "U_ALICE", "pushpin")
    await bot.slack.event(bot.slack.reaction_added(GENERAL, elsewhere.ts, user="U_ALICE", name="pushpin"))
    here = fake.add_message(incident.channel.id, "U_ALICE", "+1")
    fake.react(incident.channel.id, here.ts, "U_ALICE", "thumbsup")
    await bot.slack.event(
        bot.slack.reaction_added(incident.channel.id, here.ts, user="U_ALICE", name="thumbsup")
    )
    await drained(bot)
    assert captured(await entries(bot)) == [] and fake.calls_of("reactions.add") == []


async def test_the_shortcut_adds_a_message_from_another_channel_to_the_chosen_incident(bot) -> None:
    fake = bot.fake
    await declare(bot, "P2 Payments failing")
    fake.channels[GENERAL].members.add("U_ALICE")  # not the bot: it joins to read the message
    message = fake.add_message(GENERAL, "U_ALICE", "Vendor says their API is down")
    reply = await bot.slack.message_shortcut("timeline_add", channel=GENERAL, ts=message.ts, user="U_ALICE")
    assert reply.status == 200
    picker = await fake.wait_for(
        lambda: next((v for v in fake.views if v["view"].get("callback_id") == "timeline_add_pick"), None)
    )
    options = picker["view"]["blocks"][0]["element"]["options"]
    assert [o["value"] for o in options] == ["1"] and options[0]["text"]["text"].startswith("INC-1 [P2]")
    submitted = await bot.slack.submit("timeline_add_pick", {"incident": {"incident": chosen("1")}})
    assert submitted.status == 200
    await fake.wait_for(lambda: fake.responses, timeout=5)
    assert "Added to INC-1's timeline." in json.dumps(fake.responses[-1]["body"])
    [entry] = captured(await entries(bot))
    assert entry.text == "Vendor says their API is down" and entry.message_channel == GENERAL
    await fake.wait_for(lambda: fake.reactions(GENERAL, message.ts).get("white_check_mark"), timeout=5)


async def test_declare_from_a_message_opens_the_form_filled_in_with_its_text_and_link(bot) -> None:
    fake = bot.fake
    fake.channels[GENERAL].members.add("U_ALICE")
    message = fake.add_message(GENERAL, "U_ALICE", slack_encoded("Checkout returns 500 & <b>\nsince 10:02"))
    reply = await bot.slack.message_shortcut(
        "declare_from_message", channel=GENERAL, ts=message.ts, user="U_ALICE"
    )
    assert reply.status == 200
    opened = await fake.wait_for(
        lambda: next((v for v in fake.views if v["view"].get("callback_id") == "incident_declare"), None)
    )
    inputs = {b["block_id"]: b["element"].get("initial_value") for b in opened["view"]["blocks"]}
    assert inputs["title"] == "Checkout returns 500 & <b>"  # plain text, as the person wrote it
    assert fake.permalink(GENERAL, message.ts) in inputs["description"]
    reply = await bot.slack.global_shortcut("declare_incident", user="U_ALICE")
    assert reply.status == 200
    await fake.wait_for(
        lambda: len([v for v in fake.views if v["view"].get("callback_id") == "incident_declare"]) == 2
    )


async def test_the_home_tab_is_published_when_opened_and_again_when_it_changes(bot) -> None:
    fake = bot.fake
    incident = await declare(bot, "P1 Database down")
    reply = await bot.slack.event(bot.slack.app_home_opened("U_ALICE"))
    assert reply.status == 200
    await fake.wait_for(lambda: fake.home("U_ALICE"), timeout=5)
    shown = json.dumps(fake.home("U_ALICE"))
    assert "INC-1" in shown and "Database down" in shown
    published = fake.publishes("U_ALICE")
    await bot.slack.command("ack", channel=incident.channel.id, user="U_ALICE")
    await fake.wait_for(lambda: fake.publishes("U_ALICE") > published, timeout=5)
    await drained(bot)
    assert "commander" in json.dumps(fake.home("U_ALICE")).lower()
    assert fake.home("U_BOB") is None  # nobody else opened it: nothing published for them
    async with bot.tocsin.db.read() as session:
        assert (await session.get(Incident, 1)).commander == "U_ALICE"


async def test_url_verification_answers_the_challenge(bot) -> None:
    reply = await bot.slack.url_verification("3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P")
    assert reply.status == 200 and "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P" in reply.body
