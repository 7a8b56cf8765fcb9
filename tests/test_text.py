"""Text in, text out, as Slack does it (handlers/text.py), and words users know: what a person types
reaches the channel as they meant it, escaped once, with their mentions live and broadcasts inert; plain
text reads as they read it; answers speak in `/incident` commands."""

from __future__ import annotations

from typing import Any

import pytest

from handlers import text
from tests.conftest import ANNOUNCE
from tests.helpers import declare, drained, mrkdwn_texts
from tests.signed import text_input

JOINER = "\u2060"  # between @ and channel: shown as `@channel`, never a ping


async def _answer(bot, typed: str, **where: Any) -> str:
    """Run a command; assert it posted and edited nothing, and answered privately; return the answer."""
    await drained(bot)
    before = (len(bot.fake.messages), sum(len(m.history) for m in bot.fake.messages))
    reply = await bot.slack.command(typed, **where)
    await drained(bot)
    assert (len(bot.fake.messages), sum(len(m.history) for m in bot.fake.messages)) == before
    assert reply.status == 200 and reply.json["response_type"] == "ephemeral", reply.body
    return reply.json["text"]


async def _timeline(bot, channel: str) -> list[str]:
    reply = await bot.slack.command("timeline", channel=channel)
    return [line for block in reply.json["blocks"][1:] for line in block["text"]["text"].splitlines()]


# Text in, text out ----------------------------------------------------------------------------------


async def test_an_update_reaches_the_channel_escaped_once_with_its_mention_live(bot) -> None:
    bot.fake.add_user("U_ALICE", "alice")
    bot.fake.add_user("U_BOB", "bob")
    bot.fake.add_user("U0CAROL", "carol", display_name="Carol")
    incident = await declare(bot, "P3 Checkout is slow")
    channel = incident.channel.id
    await bot.slack.command("ack", channel=channel, user="U_BOB")
    bot.fake.channels[channel].members.add("U0CAROL")  # Carol has joined the incident channel
    await bot.slack.command(
        "update R&D fixed, handing over to <@U0CAROL|carol>", channel=channel, user="U_BOB"
    )
    await drained(bot)
    said = "R&amp;D fixed, handing over to <@U0CAROL|carol>"
    update = bot.fake.posts(channel=channel, event_type="incident_status_update")[0]
    assert update.text == f"Update on INC-1 (investigating) from <@U_BOB>: {said}"
    assert mrkdwn_texts(update.blocks)[0].endswith(f"· P3\n{said}")
    assert "U0CAROL" in bot.fake.notified(update)  # the mention she was handed over with reaches her
    thread = bot.fake.posts(channel=ANNOUNCE, event_type="incident_status_update")[0]
    assert thread.text == update.text


async def test_broadcasts_typed_by_a_person_are_shown_inert_and_ping_nobody(bot) -> None:
    bot.fake.add_usergroup("S0SRE", "sre", ["U_ALICE", "U_BOB"])
    incident = await declare(bot, "P3 Checkout is slow")
    channel = incident.channel.id
    await bot.slack.command("ack", channel=channel, user="U_BOB")
    await bot.slack.command(
        "update <!channel> <!here> <!everyone> <!subteam^S0SRE|@sre> please look",
        channel=channel,
        user="U_BOB",
    )
    await drained(bot)
    update = bot.fake.posts(channel=channel, event_type="incident_status_update")[0]
    inert = f"@{JOINER}channel @{JOINER}here @{JOINER}everyone @{JOINER}sre please look"
    assert update.text == f"Update on INC-1 (investigating) from <@U_BOB>: {inert}"
    assert mrkdwn_texts(update.blocks)[0].endswith("\n" + inert)
    assert bot.fake.notified(update) == {"U_BOB"}  # Tocsin names its poster; Alice, a member, is not pinged
    assert bot.fake.problems == []


async def test_a_declared_title_reads_as_typed_in_its_channel_name_header_and_topic(bot) -> None:
    incident = await declare(bot, "P3 R&D <#C0OPS|ops> is down")
    assert incident.channel.name == "inc-1-r-d-ops-is-down"
    header = next(b for b in incident.card.blocks if b["type"] == "header")["text"]
    assert header == {
        "type": "plain_text",
        "text": ":large_yellow_circle: INC-1 · R&D #ops is down",
        "emoji": True,
    }
    assert incident.card.text.startswith("INC-1 [P3] R&amp;D <#C0OPS|ops> is down is triage.")
    await drained(bot)
    assert incident.channel.topic.startswith(
        "INC-1 [P3] R&amp;D <#C0OPS|ops> is down | triage"
    )  # shows mentions


async def test_form_text_arrives_raw_and_is_escaped_once(bot) -> None:
    incident = await declare(bot, "P3 Checkout is slow")
    channel = incident.channel.id
    await bot.slack.command("ack", channel=channel, user="U_BOB")
    await bot.slack.command("update", channel=channel, user="U_BOB")
    await bot.fake.wait_for(lambda: bot.fake.views)
    typed = "a < b & c, not <@U0CAROL> nor <!here>"  # in a form, markup is only text
    reply = await bot.slack.submit(
        "incident_update", {"update_text": {"update_text": text_input(typed)}}, user="U_BOB"
    )
    assert reply.status == 200 and reply.body == ""
    await drained(bot)
    update = bot.fake.posts(channel=channel, event_type="incident_status_update")[0]
    assert update.text.endswith(": a &lt; b &amp; c, not &lt;@U0CAROL&gt; nor &lt;!here&gt;")
    assert bot.fake.notified(update) == {"U_BOB"}  # Tocsin names its poster; Alice, a member, is not pinged


async def test_a_monitoring_alert_is_text_not_markup(start_bot) -> None:
    import aiohttp

    bot = await start_bot(TOCSIN_ALERT_TOKEN="alert-token-for-tests-0123456789")
    alert = {"dedup_key": "disk", "status": "firing", "title": "disk < 10% & <!channel>", "source": "grafana"}
    async with aiohttp.ClientSession() as http:
        response = await http.post(
            f"{bot.url}/alerts/webhook",
            json=alert,
            headers={"Authorization": "Bearer alert-token-for-tests-0123456789"},
        )
        assert response.status == 200
    card = await bot.fake.wait_for(
        lambda: [m for m in bot.fake.posts(event_type="incident_declared") if m.channel != ANNOUNCE]
    )
    assert card[0].text.startswith("INC-1 [P")
    assert "] disk &lt; 10% &amp; &lt;!channel&gt; is triage." in card[0].text
    header = next(b for b in card[0].blocks if b["type"] == "header")["text"]["text"]
    assert header.endswith("INC-1 · disk < 10% & <!channel>")
    assert bot.fake.channels[card[0].channel].name == "inc-1-disk-10-channel"


async def test_similar_searches_the_words_a_person_reads(bot) -> None:
    incident = await declare(bot, "P3 Cache & DB outage")
    channel = incident.channel.id
    await bot.slack.command("ack", channel=channel, user="U_BOB")
    await bot.slack.command("resolve Warmed cause=capacity resolution=restart", channel=channel, user="U_BOB")
    reply = await bot.slack.command("similar R&D failover")  # sent as R&amp;D: no search for "amp"
    assert reply.json["text"] == 'Past incidents like "R&amp;D failover": none found'
    reply = await bot.slack.command("similar DB & cache")
    assert reply.json["text"].startswith(
        'Past incidents like "DB &amp; cache": *INC-1* [P3] Cache &amp; DB outage'
    )


async def test_help_shows_its_placeholders_as_text(bot) -> None:
    reply = await bot.slack.command("help")
    (shown,) = mrkdwn_texts(reply.json["blocks"])
    assert "`assign commander|comms|scribe @person`" in shown
    assert "`update &lt;text&gt;` post a stakeholder update" in shown
    assert "`resolve &lt;summary&gt; cause=&lt;code&gt; resolution=&lt;code&gt;`" in shown
    assert "<" not in shown and ">" not in shown  # no raw placeholder that Slack would take for markup


# Words users know ---------------------------------------------------------------------------------


async def test_a_refusal_lists_what_can_be_done_as_commands(bot) -> None:
    incident = await declare(bot, "P3 Cache cold")
    channel = incident.channel.id
    answer = await _answer(bot, "status monitoring", channel=channel, user="U_BOB")
    assert answer == (
        ":no_entry: INC-1 is *triage*, so `status monitoring` is not possible now. "
        "Allowed now: `ack`, `resolve`, `cancel`."
    )
    await bot.slack.command("ack", channel=channel, user="U_BOB")
    await bot.slack.command("status identified", channel=channel, user="U_BOB")
    answer = await _answer(bot, "status identified", channel=channel, user="U_BOB")
    assert answer == (
        ":no_entry: INC-1 is *identified*, so `status identified` is not possible now. "
        "Allowed now: `status investigating`, `status monitoring`, `resolve`."
    )


async def test_the_timeline_speaks_in_command_words_and_names_people(bot) -> None:
    incident = await declare(bot, "P3 Cache cold")
    channel = incident.channel.id
    for typed in ("ack", "status identified", "status monitoring", "assign scribe <@U0CAROL|carol>"):
        await bot.slack.command(typed, channel=channel, user="U_BOB")
    await bot.slack.command("action <@U0CAROL|carol> Warm the cache & check", channel=channel, user="U_BOB")
    rows = [row.split("` ", 1)[1] for row in await _timeline(bot, channel)]
    assert rows[2:] == [
        "<@U_BOB> ack (triage → investigating)",
        "<@U_BOB> status identified (investigating → identified)",
        "<@U_BOB> status monitoring (identified → monitoring)",
        "<@U_BOB> scribe → <@U0CAROL>",
        "<@U_BOB> action 1 added: <@U0CAROL>: Warm the cache &amp; check (due "
        + rows[6].rsplit("(due ", 1)[1],
    ]


async def test_a_mistyped_subcommand_is_named_in_the_blocks_with_the_closest_command(bot) -> None:
    reply = await bot.slack.command("decalre P3 Checkout is slow")
    warning = (
        ":warning: Unknown subcommand `decalre`. Did you mean `declare`? Here is what `/incident` can do:"
    )
    assert reply.json["blocks"][0] == {"type": "section", "text": {"type": "mrkdwn", "text": warning}}
    assert reply.json["blocks"][1]["text"]["text"].startswith("*`/incident` commands*")
    assert reply.json["text"].startswith(warning)
    assert bot.fake.messages == []


async def test_the_unknown_subcommand_echo_is_escaped(bot) -> None:
    reply = await bot.slack.command("<!channel>&<b>`x` now")
    warning = reply.json["blocks"][0]["text"]["text"]
    assert (
        warning
        == f":warning: Unknown subcommand `@{JOINER}channel&amp;&lt;b&gt;'x'`. Here is what `/incident` can do:"
    )


# Inputs that used to crash ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "answer"),
    [
        (
            "action <@U_BOB|bob> Renew the cert due=9999-12-31",
            ":warning: Due date 9999-12-31 is more than a hundred years away.",
        ),
        (
            "action done ²",
            ":warning: Usage: `/incident action done &lt;number&gt;`; `/incident actions` lists the numbers.",
        ),
        (
            "action done 12345678901234567890",
            ":warning: Usage: `/incident action done &lt;number&gt;`; `/incident actions` lists the numbers.",
        ),
    ],
)
async def test_out_of_range_dates_and_odd_digits_get_a_private_answer(bot, typed: str, answer: str) -> None:
    incident = await declare(bot, "P3 Cache cold")
    channel = incident.channel.id
    await bot.slack.command("ack", channel=channel, user="U_BOB")
    before = await _timeline(bot, channel)
    assert await _answer(bot, typed, channel=channel, user="U_BOB") == answer
    assert await _timeline(bot, channel) == before


@pytest.mark.parametrize(
    ("zone", "typed", "answer"),
    [
        ("Asia/Tokyo", "detected 0001-01-01 00:30", ":warning: 0001-01-01 00:30 is beyond the calendar."),
        (
            "America/New_York",
            "pir schedule 9999-12-31 23:30",
            ":warning: 9999-12-31 23:30 is beyond the calendar.",
        ),
    ],
)
async def test_times_beyond_the_calendar_get_a_private_answer(start_bot, config, zone, typed, answer) -> None:
    config["timezone"] = zone
    bot = await start_bot()
    incident = await declare(bot, "P3 Cache cold")
    assert await _answer(bot, typed, channel=incident.channel.id) == answer


# The review document ------------------------------------------------------------------------------


async def test_the_review_names_people_by_display_name_with_their_id(bot) -> None:
    fake = bot.fake
    fake.add_user("U_ALICE", "alice", real_name="Alice Liddell")
    fake.add_user("U_BOB", "bob", display_name="Bob B")
    fake.add_user("U0CAROL", "carol", display_name="Carol")
    incident = await declare(bot, "P3 Checkout is slow")
    channel = incident.channel.id
    for typed in (
        "ack",
        "assign scribe <@U0CAROL|carol>",
        "note handing the logs to <@U0CAROL|carol> & R&D",
        "resolve Rolled back cause=application-error resolution=rollback",
        "pir",
    ):
        await bot.slack.command(typed, channel=channel, user="U_BOB")
    await fake.wait_for(lambda: fake.files)
    document = fake.files[0]["content"].decode()
    assert "| Commander | Bob B (U\\_BOB) |" in document
    assert "| Scribe | Carol (U0CAROL) |" in document
    assert "| Reporter | Alice Liddell (U\\_ALICE) |" in document
    assert "| Bob B (U\\_BOB) | scribe → @Carol (U0CAROL) |" in document
    assert "note: handing the logs to @Carol (U0CAROL) & R&D |" in document
    assert "resolve (investigating → resolved): Rolled back |" in document
    looked_up = [c.args["user"] for c in fake.calls_of("users.info")]
    assert sorted(looked_up) == ["U0CAROL", "U_ALICE", "U_BOB"]  # each person once
    await bot.slack.command("pir", channel=channel, user="U_BOB")
    await fake.wait_for(lambda: len(fake.files) == 2)
    assert len(fake.calls_of("users.info")) == 3  # the names are remembered


async def test_the_timeline_names_people_by_display_name(bot) -> None:
    fake = bot.fake
    fake.add_user("U_ALICE", "alice", real_name="Alice Liddell")
    fake.add_user("U_BOB", "bob", display_name="Bob <B> & co")
    incident = await declare(bot, "P3 Checkout is slow")
    await bot.slack.command("ack", channel=incident.channel.id, user="U_BOB")
    reply = await bot.slack.command("timeline", channel=incident.channel.id, user="U_BOB")
    shown = "\n".join(mrkdwn_texts(reply.json["blocks"]))
    assert "<@U_ALICE|Alice Liddell> declared" in shown
    assert "<@U_BOB|Bob &lt;B&gt; &amp; co> ack (triage → investigating)" in shown
    await bot.slack.command("timeline", channel=incident.channel.id, user="U_BOB")
    assert len(fake.calls_of("users.info")) == 2  # each person once, then remembered


# The rule itself ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stored", "mrkdwn", "plain"),
    [
        ("R&amp;D fixed", "R&amp;D fixed", "R&D fixed"),
        ("a < b & c", "a &lt; b &amp; c", "a < b & c"),  # raw, from an older row
        ("<@U0CAROL|carol> and <@U0DAVE>", "<@U0CAROL|carol> and <@U0DAVE>", "@carol and @U0DAVE"),
        ("<#C0OPS|ops>", "<#C0OPS|ops>", "#ops"),
        (
            "<https://status.example.com/?a=1&amp;b=2|status page>",
            "<https://status.example.com/?a=1&amp;b=2|status page>",
            "status page (https://status.example.com/?a=1&b=2)",
        ),
        (
            "<!channel> <!here|here> <!subteam^S0SRE|@sre>",
            f"@{JOINER}channel @{JOINER}here @{JOINER}sre",
            "@channel @here @sre",
        ),
        ("&lt;@U1&gt; &amp;lt;", "&lt;@U1&gt; &amp;lt;", "<@U1> &lt;"),  # typed literally: stays text
        ("<foo> <javascript:x|y>", "&lt;foo&gt; &lt;javascript:x|y&gt;", "<foo> <javascript:x|y>"),
    ],
)
def test_one_rule_for_mrkdwn_and_plain_text(stored: str, mrkdwn: str, plain: str) -> None:
    assert text.to_mrkdwn(stored) == mrkdwn
    assert text.to_mrkdwn(mrkdwn) == mrkdwn  # idempotent: nothing is escaped twice
    assert text.to_plain(stored) == plain
    assert "<" not in text.to_mrkdwn(text.from_input(plain))  # typed in a form, it is only text


def test_clipping_never_cuts_an_entity_or_a_mention() -> None:
    assert text.to_mrkdwn("abcdef <@U0CAROL|carol> x", 10) == "abcdef …"
    assert text.to_mrkdwn("ab&amp;&amp;cdefgh", 10) == "ab&amp;…"
    assert text.to_mrkdwn("abcdefghij", 10) == "abcdefghij"
