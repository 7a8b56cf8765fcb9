"""Bad input gets a clear private answer, changes nothing and loses nothing."""

from __future__ import annotations

import time

from tests.conftest import ANNOUNCE, SECRET
from tests.helpers import declare, drained, mrkdwn_texts


async def _quiet(bot, action) -> str:
    """Run `action`; assert it posted nothing anywhere and changed no incident; return the private answer."""
    await drained(bot)
    before = (len(bot.fake.messages), sum(len(m.history) for m in bot.fake.messages))
    reply = await action()
    await drained(bot)
    assert (len(bot.fake.messages), sum(len(m.history) for m in bot.fake.messages)) == before
    assert reply.status == 200
    if reply.json is not None:
        assert reply.json.get("response_type") == "ephemeral"
        return reply.json["text"]
    return reply.body


async def test_unknown_subcommand_answers_with_help(bot) -> None:
    text = await _quiet(bot, lambda: bot.slack.command("frobnicate now"))
    assert "Unknown subcommand `frobnicate`" in text and "declare" in text


async def test_unknown_id(bot) -> None:
    assert "INC-9999 not found" in await _quiet(bot, lambda: bot.slack.command("INC-9999 ack"))
    assert "INC-9999 not found" in await _quiet(bot, lambda: bot.slack.command("show INC-9999"))


async def test_command_for_an_incident_outside_an_incident_channel(bot) -> None:
    text = await _quiet(bot, lambda: bot.slack.command("ack", channel="C_GENERAL"))
    assert "not an incident channel" in text


async def test_illegal_transition_names_state_and_what_is_allowed(bot) -> None:
    incident = await declare(bot, "P3 Cache cold")
    text = await _quiet(bot, lambda: bot.slack.command("status monitoring", channel=incident.channel.id))
    assert "INC-1 is *triage*" in text and "`status monitoring` is not possible" in text
    assert "`ack`" in text and "`resolve`" in text and "`cancel`" in text


async def test_unknown_priority_code_role_and_status(bot) -> None:
    incident = await declare(bot, "P3 Cache cold")
    channel = incident.channel.id
    await bot.slack.command("ack", channel=channel, user="U_BOB")
    text = await _quiet(bot, lambda: bot.slack.command("declare P7 Something"))
    assert "Unknown priority P7" in text and "`P1`" in text
    text = await _quiet(bot, lambda: bot.slack.command("priority P9", channel=channel, user="U_BOB"))
    assert "Unknown priority 'P9'" in text
    text = await _quiet(
        bot,
        lambda: bot.slack.command(
            "resolve Fixed it cause=gremlins resolution=restart", channel=channel, user="U_BOB"
        ),
    )
    assert "Unknown cause code 'gremlins'" in text and "`capacity`" in text
    text = await _quiet(bot, lambda: bot.slack.command("resolve Fixed it", channel=channel, user="U_BOB"))
    assert "cause=&lt;code&gt;" in text  # shown by Slack as cause=<code>
    text = await _quiet(
        bot, lambda: bot.slack.command("assign boss <@U_DAVE>", channel=channel, user="U_BOB")
    )
    assert "Unknown role 'boss'" in text and "`commander`" in text
    text = await _quiet(bot, lambda: bot.slack.command("status sleeping", channel=channel, user="U_BOB"))
    assert "Unknown status 'sleeping'" in text


async def test_missing_permission_names_who_can(bot) -> None:
    incident = await declare(bot, "P3 Cache cold")
    channel = incident.channel.id
    await bot.slack.command("ack", channel=channel, user="U_BOB")
    for command in (
        "resolve x cause=capacity resolution=restart",
        "cancel no",
        "priority P1",
        "assign scribe <@U_X>",
    ):
        text = await _quiet(bot, lambda c=command: bot.slack.command(c, channel=channel, user="U_MALLORY"))
        assert "Only the commander (<@U_BOB>) or an admin (<@U0123ADMIN>)" in text


async def test_over_long_text_is_refused_and_given_back(bot) -> None:
    incident = await declare(bot, "P3 Cache cold")
    long_note = "word " * 500
    text = await _quiet(bot, lambda: bot.slack.command(f"note {long_note}", channel=incident.channel.id))
    assert "2,499 characters long; the limit is 2,000" in text
    assert long_note.strip() in text  # nothing lost: the text comes back to copy
    text = await _quiet(bot, lambda: bot.slack.command("declare P3 " + "t" * 151))
    assert "title is 151 characters long; the limit is 150" in text


async def test_user_text_cannot_ping_channel_or_forge_links(bot) -> None:
    """A broadcast typed in a command is shown inert; a link the person typed stays the link they typed
    (as Slack shows it in their own message); text that only looks like markup stays text."""
    fake = bot.fake
    incident = await declare(bot, "P3 <!channel> look & see <https://status.example|here>")
    channel = incident.channel.id
    await bot.slack.command("ack", channel=channel, user="U_BOB")
    await bot.slack.command(
        "update <!here> all good <https://status.example|x> & done <https://evil.example|x",
        channel=channel,
        user="U_BOB",
    )
    await drained(bot)
    for message in fake.messages:
        shown = (message.text or "") + " ".join(mrkdwn_texts(message.blocks))
        assert "<!channel>" not in shown and "<!here>" not in shown and "<https://evil" not in shown
    update = fake.posts(channel=channel, event_type="incident_status_update")[0]
    assert (
        "@\u2060here all good <https://status.example|x> &amp; done &lt;https://evil.example|x" in update.text
    )
    assert (
        "@\u2060channel look &amp; see <https://status.example|here>" in fake.posts(channel=ANNOUNCE)[0].text
    )


async def test_bad_or_stale_signature_is_refused(bot) -> None:
    body = b"command=%2Fincident&text=declare+P1+forged&user_id=U_EVE&channel_id=C_GENERAL"
    headers = bot.slack.sign(body)
    headers["X-Slack-Signature"] = "v0=" + "0" * 64
    assert (await bot.slack.post(body, headers)).status == 401
    stale = bot.slack.sign(body, timestamp=int(time.time()) - 600)
    assert (await bot.slack.post(body, stale)).status == 401
    assert SECRET and bot.fake.messages == []
