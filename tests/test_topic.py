"""The incident channel's topic follows its state, priority and commander, and is set only when its text
changes (conversations.setTopic is a Tier 2 method: about 20 calls a minute)."""

from __future__ import annotations

from tests.helpers import declare, drained


async def test_the_topic_follows_state_priority_and_commander(bot) -> None:
    fake = bot.fake
    incident = await declare(bot, "P2 Queue backlog", user="U_ALICE")
    channel = incident.channel
    await drained(bot)
    assert channel.topic == "INC-1 [P2] Queue backlog | triage | commander: none yet | reported by <@U_ALICE>"

    async def after(command: str, user: str = "U_BOB") -> str:
        reply = await bot.slack.command(command, channel=channel.id, user=user)
        assert reply.status == 200 and ":warning:" not in reply.body, reply.body
        await drained(bot)
        return channel.topic

    assert await after("ack") == (
        "INC-1 [P2] Queue backlog | investigating | commander: <@U_BOB> | reported by <@U_ALICE>"
    )
    assert await after("status identified") == (
        "INC-1 [P2] Queue backlog | identified | commander: <@U_BOB> | reported by <@U_ALICE>"
    )
    assert await after("priority P1") == (
        "INC-1 [P1] Queue backlog | identified | commander: <@U_BOB> | reported by <@U_ALICE>"
    )
    assert await after("assign commander <@U_CAROL|carol>") == (
        "INC-1 [P1] Queue backlog | identified | commander: <@U_CAROL> | reported by <@U_ALICE>"
    )
    topics = [call.args["topic"] for call in fake.calls_of("conversations.setTopic")]
    assert len(topics) == 5 == len(set(topics))

    # Changes that leave the topic as it is cost no call to Slack, even one that asks for it to be checked.
    await after("assign commander <@U_CAROL|carol>", user="U_CAROL")
    await after("assign scribe <@U_DAVE|dave>", user="U_CAROL")
    await after("update Rolling back the consumer", user="U_CAROL")
    await after("escalate", user="U_CAROL")
    assert len(fake.calls_of("conversations.setTopic")) == 5
    assert await after("status monitoring", user="U_CAROL") == (
        "INC-1 [P1] Queue backlog | monitoring | commander: <@U_CAROL> | reported by <@U_ALICE>"
    )
    assert len(fake.calls_of("conversations.setTopic")) == 6


async def test_changes_in_a_burst_leave_the_topic_saying_the_latest(bot) -> None:
    """Changes made faster than the relay delivers: each topic is rendered from the incident as it is when
    delivered, so the last one Slack gets tells the truth even when a change undoes an earlier one."""
    incident = await declare(bot, "P2 Queue backlog", user="U_ALICE")
    channel = incident.channel
    await bot.slack.command("ack", channel=channel.id, user="U_BOB")
    for priority in ("P1", "P3", "P2"):
        await bot.slack.command(f"priority {priority}", channel=channel.id, user="U_BOB")
    await drained(bot)
    topics = [call.args["topic"] for call in bot.fake.calls_of("conversations.setTopic")]
    assert len(topics) == len(set(topics))  # never the same text twice in a row
    assert channel.topic == (
        "INC-1 [P2] Queue backlog | investigating | commander: <@U_BOB> | reported by <@U_ALICE>"
    )
