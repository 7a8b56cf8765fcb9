"""Paging that notifies: everyone a page or a role assignment mentions is a member of the incident channel
before the message is posted (Slack notifies a mentioned user only if they are in the channel), and a
paged person also gets the page as a DM from the app, linking the channel."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from bot.config import ConfigError, load_settings
from bot.manifest import manifest
from bot.slack import METHOD_SCOPES
from tests.conftest import GENERAL, shipped_config
from tests.helpers import declare, drained

SRE = ["U0SRE1", "U0SRE2"]
PEOPLE = {
    "U_ALICE": "alice",
    "U_BOB": "bob",
    "U0CAROL": "carol",
    "U0SRE1": "sre1",
    "U0SRE2": "sre2",
    "U0ONCALL2": "oncall2",
}


def levels(first: list[str]) -> list[dict]:
    return [
        {"name": "SRE on-call", "notify": first},
        {"name": "Platform on-call", "notify": ["U0ONCALL2"], "after": "15m"},
        {"name": "Incident manager", "notify": ["U0CAROL"], "after": "30m"},
    ]


@pytest.fixture
def config(config):
    config["scheduler"]["tick"] = "1h"  # the tests sweep by hand, on the bot's clock
    config["escalation"]["levels"] = levels(["S0SRE"])
    return config


@pytest.fixture
def fake(fake):
    for user, name in PEOPLE.items():
        fake.add_user(user, name)
    fake.add_usergroup("S0SRE", "sre-oncall", SRE)
    return fake


def pages(fake, channel: str) -> list:
    return fake.posts(channel=channel, event_type="escalation_page")


async def test_a_paged_group_is_asked_for_its_members_once_a_page(bot) -> None:
    """The page's invite and its DMs both need the group's members: usergroups.users.list is Tier 2."""
    incident = await declare(bot, "P1 Payments down")
    await drained(bot)
    assert incident.channel.members >= set(SRE) and all(bot.fake.dms(user) for user in SRE)
    assert len(bot.fake.calls_of("usergroups.users.list")) == 1


async def test_a_paged_person_acknowledges_from_the_dm(bot) -> None:
    fake = bot.fake
    incident = await declare(bot, "P1 Payments down")
    await drained(bot)
    [dm] = fake.dms("U0SRE1")
    assert any(b["type"] == "actions" for b in dm.blocks), "a page DM offers Acknowledge"
    reply = await bot.slack.click("incident_acknowledge", "1", user="U0SRE1", message_ts=dm.ts)
    assert reply.status == 200
    acked = await fake.wait_for(
        lambda: fake.posts(channel=incident.channel.id, event_type="incident_acknowledged")
    )
    assert "<@U0SRE1>" in acked[0].text
    await drained(bot)
    assert "U0SRE1" in incident.channel.members  # the new commander is in the room
    bot.clock.advance(timedelta(minutes=11))
    await bot.tocsin.sweeper.sweep()
    await drained(bot)
    assert len(fake.dms("U0SRE1")) == 1  # acknowledged: no repeat page
    assert len(pages(fake, incident.channel.id)) == 1


async def test_a_page_reaches_each_paged_person_in_the_channel_and_by_dm(bot) -> None:
    fake = bot.fake
    incident = await declare(bot, "P1 Payments down", user="U_ALICE")
    channel = incident.channel.id
    await drained(bot)

    # Level 1 is a user group: its members were invited before the page, so its mention notified them.
    first = pages(fake, channel)
    assert len(first) == 1 and "<!subteam^S0SRE>" in first[0].text
    assert fake.notified(first[0]) == set(SRE)
    for user in SRE:
        [dm] = fake.dms(user)
        assert dm.text == (
            ":pager: You are paged for *INC-1* [P1] Payments down (level 1, SRE on-call). "
            f"Join the response in <#{channel}>."
        )
        assert fake.notified(dm) == {user}

    # Escalating by hand pages level 2: U0ONCALL2 was in no channel, and is now in the room when paged.
    assert "U0ONCALL2" not in incident.channel.members
    reply = await bot.slack.command("escalate nobody from SRE answers", channel=channel, user="U_ALICE")
    assert "Paging level 2" in reply.body
    await fake.wait_for(lambda: len(pages(fake, channel)) == 2)
    await drained(bot)
    second = pages(fake, channel)[1]
    assert "<@U0ONCALL2>" in second.text
    assert fake.notified(second) == {"U0ONCALL2", "U_ALICE"}  # "escalated by <@U_ALICE>"
    assert second in fake.reached("U0ONCALL2")  # (with the DM, which does not wait for the channel's turn)
    [dm] = fake.dms("U0ONCALL2")
    assert dm.text == (
        ":pager: You are paged for *INC-1* [P1] Payments down (level 2, Platform on-call), "
        f"escalated by <@U_ALICE>: nobody from SRE answers. Join the response in <#{channel}>."
    )
    assert dm.event_type == "escalation_page_dm" and dm.payload["level"] == 2

    # Nobody acknowledges: the repeat reaches them directly again.
    bot.clock.advance(timedelta(minutes=11))
    await bot.tocsin.sweeper.sweep()
    await fake.wait_for(lambda: len(fake.dms("U0ONCALL2")) == 2)
    await drained(bot)
    repeat = fake.dms("U0ONCALL2")[1]
    assert repeat.text.startswith(":pager: You are paged again for *INC-1*")
    assert "nobody has acknowledged it yet" in repeat.text and f"<#{channel}>" in repeat.text
    assert fake.notified(pages(fake, channel)[2]) == {"U0ONCALL2"}
    assert len(fake.dms("U0SRE1")) == 1  # only the level paged hears it again

    # The manifest asks for the scope of every method this took, and shows the DMs in the Messages tab.
    app = manifest(url=None, socket=True)
    called = {call.method for call in fake.calls}
    assert (
        {"usergroups.users.list", "conversations.invite", "chat.postMessage"}
        <= called
        <= METHOD_SCOPES.keys()
    )
    assert {METHOD_SCOPES[m] for m in called} - {None} <= set(app["oauth_config"]["scopes"]["bot"])
    assert app["features"]["app_home"]["messages_tab_enabled"] is True


async def test_a_new_commander_is_in_the_channel_before_the_assignment(bot) -> None:
    fake = bot.fake
    incident = await declare(bot, "P2 Queue backlog", user="U_ALICE")
    channel = incident.channel.id
    await drained(bot)
    assert "U_BOB" not in incident.channel.members

    # Acknowledging from the announcement makes Bob commander: he is invited before the message naming him.
    await bot.slack.command("INC-1 ack", channel=GENERAL, user="U_BOB")
    acked = await fake.wait_for(lambda: fake.posts(channel=channel, event_type="incident_acknowledged"))
    assert fake.notified(acked[0]) == {"U_BOB"}

    assert "U0CAROL" not in incident.channel.members
    reply = await bot.slack.command("assign commander <@U0CAROL|carol>", channel=channel, user="U_BOB")
    assert "is now commander" in reply.body
    [assigned] = await fake.wait_for(lambda: fake.posts(channel=channel, event_type="incident_role_assigned"))
    assert "U0CAROL" in assigned.members
    assert fake.notified(assigned) == {"U0CAROL", "U_BOB"}  # the new commander, and the one before

    await bot.slack.command("assign scribe <@U0SRE2|sre2>", channel=channel, user="U0CAROL")
    scribe = await fake.wait_for(
        lambda: [
            m for m in fake.posts(channel=channel, event_type="incident_role_assigned") if "U0SRE2" in m.text
        ]
    )
    assert "U0SRE2" in fake.notified(scribe[0])


async def test_one_id_slack_cannot_invite_does_not_lose_the_page(start_bot, config, fake) -> None:
    config["escalation"]["levels"] = [levels([])[1], {**levels([])[0], "notify": ["S0SRE"], "after": "15m"}]
    fake.add_usergroup("S0SRE", "sre-oncall", ["U0SRE1", "U0GONE", "U0SRE2"])  # U0GONE left the workspace
    bot = await start_bot()
    incident = await declare(bot, "P1 Payments down", user="U_ALICE")
    await drained(bot)
    # Even if Slack refuses the whole invite for that one id (as it does without `force`), the batch is
    # split until it stands alone and everyone else is invited.
    fake.fail_next("conversations.invite", error="user_not_found")
    await bot.slack.command("escalate", channel=incident.channel.id, user="U_ALICE")
    await fake.wait_for(lambda: len(pages(fake, incident.channel.id)) == 2)
    await drained(bot)
    invites = [call.args["users"] for call in fake.calls_of("conversations.invite")]
    assert invites[-3:] == ["U0SRE1,U0GONE,U0SRE2", "U0SRE1", "U0GONE,U0SRE2"]
    page = pages(fake, incident.channel.id)[1]
    assert fake.notified(page) == {*SRE, "U_ALICE"}  # "escalated by <@U_ALICE>"
    assert "U0GONE" not in incident.channel.members
    assert [len(fake.dms(user)) for user in SRE] == [1, 1]
    assert fake.dms("U0GONE") == []


async def test_members_of_a_large_group_are_invited_but_not_sent_dms(bot) -> None:
    fake = bot.fake
    department = [f"U0ENG{n:02d}" for n in range(30)]
    for user in department:
        fake.add_user(user, user.lower())
    fake.add_usergroup("S0SRE", "engineering", department)
    incident = await declare(bot, "P1 Payments down", user="U_ALICE")
    await drained(bot)
    assert fake.notified(pages(fake, incident.channel.id)[0]) == set(department)
    assert all(fake.dms(user) == [] for user in department)


async def test_someone_paged_by_name_and_in_a_paged_group_gets_one_dm(start_bot, config) -> None:
    config["escalation"]["levels"] = levels(["U0SRE1", "S0SRE", "U0GONE"])  # U0GONE: no such user
    bot = await start_bot()
    incident = await declare(bot, "P1 Payments down", user="U_ALICE")
    await drained(bot)
    assert bot.fake.notified(pages(bot.fake, incident.channel.id)[0]) == set(SRE)
    assert [len(bot.fake.dms(user)) for user in SRE] == [1, 1]
    assert bot.fake.dms("U0GONE") == []


async def test_direct_messages_can_be_turned_off(start_bot, config) -> None:
    config["escalation"]["direct_message"] = False
    config["escalation"]["levels"] = levels(["U0SRE1", "S0SRE"])
    bot = await start_bot()
    incident = await declare(bot, "P1 Payments down", user="U_ALICE")
    await drained(bot)
    assert bot.fake.notified(pages(bot.fake, incident.channel.id)[0]) == set(SRE)
    assert bot.fake.calls_of("chat.postMessage")
    assert all(bot.fake.dms(user) == [] for user in SRE)


async def test_no_one_is_pulled_into_the_channel_an_incident_falls_back_to(bot) -> None:
    """Without a channel of its own (Slack refused to make one), the incident runs in the channel it was
    declared in: a shared channel, where Tocsin invites nobody. The page still reaches each paged
    person directly."""
    fake = bot.fake
    fake.fail_next("conversations.create", error="restricted_action")
    await bot.slack.command("declare P1 Payments down", channel=GENERAL, user="U_ALICE")
    await fake.wait_for(lambda: pages(fake, GENERAL))
    await drained(bot)
    assert fake.calls_of("conversations.invite") == []
    assert fake.channels[GENERAL].members.isdisjoint(SRE)
    for user in SRE:
        [dm] = fake.dms(user)
        assert f"Join the response in <#{GENERAL}>." in dm.text


def test_direct_message_must_be_true_or_false(tmp_path: Path) -> None:
    config = shipped_config()
    config["escalation"]["direct_message"] = "sometimes"
    path = tmp_path / "app.yaml"
    path.write_text(yaml.safe_dump(config))
    environ = {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s", "TOCSIN_CONFIG": str(path)}
    with pytest.raises(ConfigError) as caught:
        load_settings(environ)
    assert 'escalation.direct_message: "sometimes" is not true or false' in caught.value.problems
    del config["escalation"]["direct_message"]
    path.write_text(yaml.safe_dump(config))
    assert load_settings(environ).policy.direct_message is True
