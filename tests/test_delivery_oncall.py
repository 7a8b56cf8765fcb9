"""What an on-call hand-off queues, delivered by the real relay to the fake Slack: a notice that invites
the incoming person before it mentions them, a DM to them, and the schedule's user group set to who is on
call. Rows of no incident, each standing alone in the outbox."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select

from bot.slack import bot_scopes
from store import outbox
from store.models import OutboxMessage
from store.operations import MESSAGE, Operation, Post, SetUsergroup, decode, encode, route, urgency
from tests.conftest import RunningBot
from tests.helpers import drained

HANDOFF = {"event_type": "oncall_handoff", "event_payload": {"schedule": "sre", "on_call": "U0DAN"}}
ONCALL_CHANNEL = "C0ONCALL"


async def _deliver(bot: RunningBot, *operations: Operation) -> list[OutboxMessage]:
    """Queue each operation as a row of no incident and wait until the relay has delivered them all."""
    async with bot.tocsin.db.write() as session:
        rows = [outbox.enqueue(session, op, now=bot.clock(), incident_number=None) for op in operations]
    bot.tocsin.relay.wake()
    await drained(bot)
    return rows


async def _failed(bot: RunningBot) -> list[tuple[str, str | None]]:
    async with bot.tocsin.db.read() as session:
        rows = await session.scalars(select(OutboxMessage).where(OutboxMessage.failed_at.is_not(None)))
        return [(row.op, row.last_error) for row in rows]


async def test_a_handoff_notice_brings_the_incoming_person_in_before_it_mentions_them(bot) -> None:
    """The schedule's channel is one people made: the bot joins it to invite, then posts, and the mention
    notifies the incoming person. The manifest's scopes are all it takes."""
    fake = bot.fake
    fake.scopes = frozenset(bot_scopes())
    fake.add_channel(ONCALL_CHANNEL, "sre-oncall", members=["U0CAROL"])
    notice = Post(
        channel=ONCALL_CHANNEL,
        text="<@U0DAN> is on call of SRE, taking over from <@U0CAROL>",
        metadata=HANDOFF,
        invite=["U0DAN"],
    )
    await _deliver(bot, notice)

    [message] = fake.posts(channel=ONCALL_CHANNEL)
    assert "U0DAN" in fake.channels[ONCALL_CHANNEL].members and "U0DAN" in message.members
    assert fake.notified(message) == {"U0DAN", "U0CAROL"} and fake.reached("U0DAN") == [message]
    methods = [c.method for c in fake.calls if c.method != "auth.test" and c.ok]
    assert methods == ["conversations.join", "conversations.invite", "chat.postMessage"]
    assert await _failed(bot) == []


async def test_someone_slack_will_not_invite_does_not_hold_back_the_notice(bot) -> None:
    fake = bot.fake
    for user, name in (("U0CAROL", "carol"), ("U0DAN", "dan")):
        fake.add_user(user, name)
    fake.add_channel(ONCALL_CHANNEL, "sre-oncall", members=["UBOT", "U0CAROL"])
    notice = Post(
        channel=ONCALL_CHANNEL, text="<@U0DAN> on call", metadata=HANDOFF, invite=["U0GONE", "U0DAN"]
    )
    await _deliver(bot, notice)
    [message] = fake.posts(channel=ONCALL_CHANNEL)
    assert fake.notified(message) == {"U0DAN"}
    assert "U0GONE" not in fake.channels[ONCALL_CHANNEL].members and await _failed(bot) == []


async def test_a_notice_waits_for_its_invitation_while_slack_fails(bot) -> None:
    """Slack down for the invitation: the row is tried again, invitation first, and posts once."""
    fake = bot.fake
    fake.add_channel(ONCALL_CHANNEL, "sre-oncall", members=["UBOT"])
    fake.fail_next("conversations.invite", status=500)
    await _deliver(
        bot, Post(channel=ONCALL_CHANNEL, text="<@U0DAN> on call", metadata=HANDOFF, invite=["U0DAN"])
    )
    assert [c.status for c in fake.calls_of("conversations.invite")] == [500, 200]
    [message] = fake.posts(channel=ONCALL_CHANNEL)
    assert fake.notified(message) == {"U0DAN"}
    assert fake.calls_of("chat.postMessage")[0].at > fake.calls_of("conversations.invite")[1].at


async def test_a_dm_delivered_again_after_a_crash_is_posted_again_without_reading_history(bot) -> None:
    """A process posted the hand-off DM and died before recording it: the relay that takes the row over
    cannot tell (reading a DM back needs im:history, which Tocsin does not ask for) and posts it again."""
    fake, tocsin = bot.fake, bot.tocsin
    fake.scopes = frozenset(bot_scopes())
    later = bot.clock() + timedelta(hours=1)
    dm = Post(channel="U0DAN", text="You are on call of SRE", metadata=HANDOFF)
    async with tocsin.db.write() as session:  # due an hour from now, so this process leaves it alone
        row = outbox.enqueue(session, dm, now=bot.clock(), incident_number=None)
        row.next_attempt_at = later
    async with tocsin.db.write() as session:  # another process claims it an hour on...
        claimed = await outbox.claim(
            session, now=later, lease=timedelta(minutes=5), worker="ghost", dead_after=timedelta(seconds=10)
        )
    assert [r.id for r, _ in claimed] == [row.id]
    await tocsin.slack.post(channel="U0DAN", text=dm.text, blocks=None, metadata=HANDOFF)  # ...and dies
    bot.clock.advance(timedelta(hours=1, seconds=1))
    tocsin.relay.wake()
    await fake.wait_for(lambda: len(fake.dms("U0DAN")) == 2)
    await drained(bot)
    assert [m.text for m in fake.dms("U0DAN")] == [dm.text, dm.text]
    assert not {"conversations.history", "conversations.replies", "conversations.join"} & {
        c.method for c in fake.calls
    }
    assert await _failed(bot) == []


async def test_a_usergroup_is_set_to_the_users_it_was_queued_with(bot, caplog) -> None:
    fake = bot.fake
    fake.scopes = frozenset(bot_scopes())
    fake.add_usergroup("S0ONCALL", "sre-oncall", ["U0CAROL"])
    caplog.set_level(logging.INFO, logger="tocsin.relay")
    await _deliver(bot, SetUsergroup(usergroup="S0ONCALL", schedule="sre", users=["U0DAN"]))
    assert fake.usergroups["S0ONCALL"]["users"] == ["U0DAN"]

    # Nobody to set (Slack refuses an empty group): left as it is, and said so
    await _deliver(bot, SetUsergroup(usergroup="S0ONCALL", schedule="sre", users=[]))
    assert fake.usergroups["S0ONCALL"]["users"] == ["U0DAN"]
    assert len(fake.calls_of("usergroups.users.update")) == 1
    assert [r.usergroup for r in caplog.records if getattr(r, "event", None) == "usergroup_kept"] == [
        "S0ONCALL"
    ]

    # A group Slack does not know is never accepted: recorded as failed, not tried again
    await _deliver(bot, SetUsergroup(usergroup="S0GONE", schedule="sre", users=["U0DAN"]))
    assert await _failed(bot) == [("set_usergroup", "no_such_subteam")]
    assert len(fake.calls_of("usergroups.users.update")) == 2


async def test_with_on_call_a_late_update_sets_who_is_on_call_when_it_is_delivered(bot) -> None:
    """Rows of no incident keep no order between them: an update queued at an earlier hand-off, delivered
    late, sets who is on call then, not who was."""
    fake = bot.fake
    fake.add_usergroup("S0ONCALL", "sre-oncall", ["U0CAROL"])
    on_call = {"sre": ["U0ERIN"]}
    asked: list[str] = []

    async def who_is_on_call(schedule: str) -> list[str]:
        asked.append(schedule)
        return on_call.get(schedule, [])

    bot.tocsin.relay.courier.on_call = who_is_on_call  # as bot/ wires it
    await _deliver(bot, SetUsergroup(usergroup="S0ONCALL", schedule="sre", users=["U0DAN"]))
    assert fake.usergroups["S0ONCALL"]["users"] == ["U0ERIN"] and asked == ["sre"]

    on_call["sre"] = []  # nobody on call now: the group keeps its members
    await _deliver(bot, SetUsergroup(usergroup="S0ONCALL", schedule="sre", users=["U0DAN"]))
    assert fake.usergroups["S0ONCALL"]["users"] == ["U0ERIN"]
    assert len(fake.calls_of("usergroups.users.update")) == 1


def test_the_new_fields_round_trip_and_rows_queued_before_them_decode() -> None:
    notice = Post(channel=ONCALL_CHANNEL, text="<@U0DAN> on call", metadata=HANDOFF, invite=["U0DAN"])
    group = SetUsergroup(usergroup="S0ONCALL", schedule="sre", users=["U0DAN", "U0ERIN"])
    for operation in (notice, group, Post(channel="U0DAN", text="You are on call")):
        assert decode(*encode(operation)) == operation
    assert encode(group) == (
        "set_usergroup",
        {"usergroup": "S0ONCALL", "schedule": "sre", "users": ["U0DAN", "U0ERIN"]},
    )
    assert "invite" not in encode(Post(channel=ONCALL_CHANNEL, text="no one to invite"))[1]
    before = {"text": "Half-way there", "blocks": None, "channel": "C1", "metadata": None}
    assert decode("post", before) == Post(channel="C1", text="Half-way there")

    way = route(group, priority=None)
    assert (way.lane, way.bucket, way.urgency) == (
        "usergroup:S0ONCALL",
        "usergroups.users.update",
        urgency(None, MESSAGE),
    )
