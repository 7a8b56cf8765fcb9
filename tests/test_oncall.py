"""On-call schedules through Slack, on the bot's injected clock: `/incident oncall`, overrides, cover
requests and the I'll cover button, hand-offs (a notice in the schedule's channel that notifies the
incoming person, a DM, the user group's members), and a page to `schedule:<name>` resolved when it fires."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from store.models import CoverRequest, ScheduleOverride
from tests.helpers import declare, drained, mrkdwn_texts

ONCALL = "C0ONCALL"
GROUP = "S0PLATFORM"
PEOPLE = {
    "U0ALICE": "alice",
    "U0BOB": "bob",
    "U0CAROL": "carol",
    "U0DAVE": "dave",
    "U0SRE1": "sre1",
    "U0OUT": "outsider",
}
# 08:00 in London on a December Monday (GMT, so UTC too): Carol's shift, handed over from Saturday's
# and ending at 09:00, when the rota's first shift (Alice's) begins.
MONDAY_8 = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)


def schedule() -> dict:
    return {
        "timezone": "Europe/London",
        "channel": ONCALL,
        "usergroup": GROUP,
        "layers": [
            {
                "name": "daily",
                "participants": ["U0ALICE", "U0BOB", "U0CAROL"],
                "shift": "1d",
                "start": "2026-12-07 09:00",
            }
        ],
    }


@pytest.fixture
def config(config):
    config["scheduler"]["tick"] = "1h"  # the tests sweep by hand, on the bot's clock
    config["schedules"] = {"platform": schedule()}
    config["escalation"]["levels"] = [
        {"name": "SRE", "notify": ["U0SRE1"]},
        {"name": "Platform on call", "notify": ["schedule:platform"], "after": "15m"},
    ]
    return config


@pytest.fixture
def fake(fake):
    for user, name in PEOPLE.items():
        fake.add_user(user, name)
    fake.add_channel(ONCALL, "platform-oncall")
    fake.add_usergroup(GROUP, "platform-oncall", ["U0ALICE"])
    return fake


def at(bot, moment: datetime) -> None:
    """Set the bot's clock to `moment` (it runs on from there)."""
    bot.clock.offset = moment - datetime.now(UTC)


async def count(bot, model) -> int:
    async with bot.tocsin.db.read() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


def said(reply) -> str:
    """What the person reads in a private answer: its text and its blocks' text."""
    answer = reply.json
    return "\n".join([answer.get("text", ""), *mrkdwn_texts(answer.get("blocks") or [])])


def handoffs(fake) -> list:
    return fake.posts(channel=ONCALL, event_type="oncall_handoff")


async def test_oncall_shows_who_is_on_call_now_and_the_next_three_handoffs_privately(bot) -> None:
    at(bot, MONDAY_8)
    reply = await bot.slack.command("oncall platform", user="U0OUT")
    assert reply.json["response_type"] == "ephemeral"
    assert "<@U0CAROL> is on call now, until Mon 2026-12-07 09:00 GMT" in said(reply)
    assert "Mon 2026-12-07 09:00 GMT → <@U0ALICE>" in said(reply)
    assert "Tue 2026-12-08 09:00 GMT → <@U0BOB>" in said(reply)
    assert "Wed 2026-12-09 09:00 GMT → <@U0CAROL>" in said(reply)
    assert "Thu 2026-12-10" not in said(reply)
    everything = await bot.slack.command("oncall", user="U0OUT")
    assert "*platform* (Europe/London)" in said(everything)
    assert not bot.fake.posts(channel=ONCALL), "asking posts nothing"


async def test_an_override_beats_the_rota_is_listed_and_can_be_removed(bot) -> None:
    at(bot, MONDAY_8)
    reply = await bot.slack.command(
        "override platform <@U0DAVE|dave> 2026-12-07 12:00 2026-12-07 18:00", user="U0ALICE"
    )
    assert (
        "Override 1: <@U0DAVE> is on call of platform from Mon 2026-12-07 12:00 GMT to Mon 2026-12-07 18:00 GMT"
        in said(reply)
    )
    shown = said(await bot.slack.command("oncall platform"))
    assert "Mon 2026-12-07 12:00 GMT → <@U0DAVE>" in shown
    assert "Mon 2026-12-07 18:00 GMT → <@U0ALICE>" in shown  # back to the rota when it ends
    assert "Override *1*: <@U0DAVE>" in shown and "`/incident override remove 1`" in shown
    await drained(bot)
    [told] = bot.fake.dms("U0DAVE")
    assert told.text.startswith(
        ":calendar: <@U0ALICE> put you on call for *platform* from Mon 2026-12-07 12:00 GMT"
    )
    removed = await bot.slack.command("override remove 1", user="U0DAVE")  # its own person may
    assert "Override 1 of platform" in said(removed) and "is removed" in said(removed)
    shown = said(await bot.slack.command("oncall platform"))
    assert "U0DAVE" not in shown and "Tue 2026-12-08 09:00 GMT → <@U0BOB>" in shown
    await drained(bot)
    assert len(bot.fake.dms("U0DAVE")) == 1, "removing your own override tells nobody"


@pytest.mark.parametrize(
    ("typed", "says"),
    [
        (
            "override nope <@U0DAVE|dave> 2026-12-07 12:00 2026-12-07 18:00",
            "There is no schedule called 'nope'. Choose one of: `platform`",
        ),
        ("override platform <@U0DAVE|dave> 2026-12-07 25:00 2026-12-07 18:00", "is not a time"),
        ("override platform <@U0DAVE|dave> 2026-12-07 18:00 2026-12-07 12:00", "is not after the start"),
        ("override platform <@U0DAVE|dave> 2026-12-06 12:00 2026-12-06 18:00", "is in the past"),
        (
            "override platform <@U0DAVE|dave> 2026-12-07 12:00",
            "give the start and the end as YYYY-MM-DD HH:MM",
        ),
        (
            "override platform dave 2026-12-07 12:00 2026-12-07 18:00",
            "name the person on call instead with @",
        ),
        (
            "override platform <@U0DAVE|dave>",
            "usage: `/incident override &lt;schedule&gt; @person &lt;from&gt; &lt;to&gt;`",
        ),
        ("cover platform 2026-12-07 12:00 tomorrow 18:00", "is not a time"),
    ],
)
async def test_bad_input_is_answered_privately_and_changes_nothing(bot, typed: str, says: str) -> None:
    at(bot, MONDAY_8)
    reply = await bot.slack.command(typed, user="U0ALICE")
    assert reply.json["response_type"] == "ephemeral" and says.lower() in said(reply).lower(), said(reply)
    assert await count(bot, ScheduleOverride) == 0 and await count(bot, CoverRequest) == 0
    await drained(bot)
    assert not bot.fake.posts(channel=ONCALL)


async def test_only_the_rota_and_admins_may_change_it(bot) -> None:
    at(bot, MONDAY_8)
    reply = await bot.slack.command("override platform <@U0OUT|me> now 2026-12-07 18:00", user="U0OUT")
    assert said(reply).startswith(":lock: Only the people on the platform rota")
    assert "may override platform" in said(reply)
    assert await count(bot, ScheduleOverride) == 0


async def test_a_handoff_notifies_the_incoming_person_dms_them_and_sets_the_user_group(bot) -> None:
    fake = bot.fake
    at(bot, MONDAY_8)
    await bot.tocsin.sweeper.sweep()  # first sight: Carol was on call before Tocsin knew; no notice
    await drained(bot)
    assert not handoffs(fake)
    at(bot, MONDAY_8 + timedelta(hours=1, seconds=1))
    await bot.tocsin.sweeper.sweep()
    await drained(bot)
    [notice] = handoffs(fake)
    assert "<@U0ALICE> is now on call for *platform*, until Tue 2026-12-08 09:00 GMT" in notice.text
    assert "Handed over from <@U0CAROL>" in notice.text
    assert "U0ALICE" in fake.notified(notice), "she was invited before the notice mentioned her"
    assert notice.payload["on_call"] == "U0ALICE" and notice.payload["previous"] == "U0CAROL"
    [dm] = fake.dms("U0ALICE")
    assert "You are now on call for *platform*" in dm.text
    assert fake.usergroups[GROUP]["users"] == ["U0ALICE"]
    await bot.tocsin.sweeper.sweep()  # the same moment again: nothing more
    await drained(bot)
    assert len(handoffs(fake)) == 1 and len(fake.calls_of("usergroups.users.update")) == 1


async def test_an_override_starting_now_hands_off_at_once(bot) -> None:
    fake = bot.fake
    at(bot, MONDAY_8)
    await bot.tocsin.sweeper.sweep()
    await bot.slack.command("override platform <@U0DAVE|dave> now 2026-12-07 08:30", user="U0CAROL")
    await bot.tocsin.sweeper.sweep()
    await drained(bot)
    [notice] = handoffs(fake)
    assert (
        "<@U0DAVE> is now on call for *platform*, until Mon 2026-12-07 08:30 GMT (override 1)" in notice.text
    )
    assert fake.usergroups[GROUP]["users"] == ["U0DAVE"]
    at(bot, MONDAY_8 + timedelta(minutes=30, seconds=1))
    await bot.tocsin.sweeper.sweep()
    await drained(bot)
    assert [n.payload["on_call"] for n in handoffs(fake)] == ["U0DAVE", "U0CAROL"]


async def test_a_page_reaches_whoever_is_on_call_when_it_fires(bot) -> None:
    """The level-2 page was planned at declaration, when Carol was on call; Dave's override, made in
    between, is who it reaches."""
    fake = bot.fake
    at(bot, MONDAY_8)
    incident = await declare(bot, "P1 Payments down")
    await bot.slack.command("override platform <@U0DAVE|dave> now 2026-12-07 10:00", user="U0ALICE")
    at(bot, MONDAY_8 + timedelta(minutes=16))
    await bot.tocsin.sweeper.sweep()
    await drained(bot)
    [page] = [
        p
        for p in fake.posts(channel=incident.channel.id, event_type="escalation_page")
        if p.payload.get("level") == 2
    ]
    assert "<@U0DAVE>" in page.text and "U0CAROL" not in page.text
    assert "U0DAVE" in fake.notified(page) and fake.dms("U0DAVE")
    timeline = await bot.slack.command(f"{incident.id} timeline")
    assert "paged <@U0DAVE>, on call for platform" in said(timeline)


async def test_a_cover_request_is_taken_by_whoever_presses_first(bot) -> None:
    fake = bot.fake
    at(bot, MONDAY_8)
    reply = await bot.slack.command("cover platform 2026-12-07 12:00 2026-12-07 18:00", user="U0CAROL")
    assert "Cover request 1 is posted in <#C0ONCALL>" in said(reply)
    await drained(bot)
    [request] = fake.posts(channel=ONCALL, event_type="oncall_cover_request")
    assert "<@U0CAROL> asks for someone to cover *platform*" in request.text
    mine = await bot.slack.click("oncall_take_cover", "1", user="U0CAROL", message_ts=request.ts)
    assert mine.status == 200
    await fake.wait_for(lambda: fake.responses)
    assert "you asked for this cover" in fake.responses[-1]["body"]["text"].lower()
    await bot.slack.click("oncall_take_cover", "1", user="U0BOB", message_ts=request.ts)
    await fake.wait_for(lambda: len(fake.responses) == 2)
    assert (
        "You cover platform from Mon 2026-12-07 12:00 GMT to Mon 2026-12-07 18:00 GMT"
        in fake.responses[-1]["body"]["text"]
    )
    await drained(bot)
    edited = fake.message(ONCALL, request.ts)
    assert "<@U0BOB> covers *platform*" in edited.text
    assert not any(b["type"] == "actions" for b in edited.blocks), "the button is gone"
    await bot.slack.click("oncall_take_cover", "1", user="U0ALICE", message_ts=request.ts)
    await fake.wait_for(lambda: len(fake.responses) == 3)
    assert "<@U0BOB> already covers this stretch of platform" in fake.responses[-1]["body"]["text"]
    shown = said(await bot.slack.command("oncall platform"))
    assert "Mon 2026-12-07 12:00 GMT → <@U0BOB>" in shown and "(covering)" in shown
