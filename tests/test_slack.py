"""The outbound facade (bot/slack.py) against the fake Slack, over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from slack_sdk.errors import SlackApiError

from bot.slack import METHOD_SCOPES, SlackFacade, slack_error
from tests.conftest import ANNOUNCE
from tests.fakeslack import NEEDED_SCOPES, FakeSlack

META = {"event_type": "incident_declared", "event_payload": {"incident_id": "INC-1", "delivery_id": 7}}


@pytest.fixture
async def facade(fake: FakeSlack) -> AsyncIterator[SlackFacade]:
    slack = SlackFacade(token="xoxb-test", base_url=fake.api_url)
    yield slack
    await slack.aclose()


async def test_a_post_in_a_channel_the_bot_never_joined_is_found_again(
    fake: FakeSlack, facade: SlackFacade
) -> None:
    """chat:write.public lets the bot post in #incidents without joining it, but a bot token reads only
    where it is a member: to tell whether an uncertain delivery already reached Slack, it joins first."""
    ts = await facade.post(channel=ANNOUNCE, text="INC-1 declared", blocks=None, metadata=META)
    assert "UBOT" not in fake.channels[ANNOUNCE].members

    found = await facade.find_posted(channel=ANNOUNCE, thread_ts=None, delivery_id=7, oldest=float(ts) - 60)
    assert found == ts
    assert [c.error for c in fake.calls_of("conversations.history")] == ["not_in_channel", None]
    assert "UBOT" in fake.channels[ANNOUNCE].members
    assert await facade.find_posted(channel=ANNOUNCE, thread_ts=None, delivery_id=8, oldest=0.0) is None


async def test_a_private_channel_it_cannot_join_means_posting_again(
    fake: FakeSlack, facade: SlackFacade
) -> None:
    fake.add_channel("C0SECRET", "leadership", members=["U0BOSS"], is_private=True)
    found = await facade.find_posted(channel="C0SECRET", thread_ts=None, delivery_id=7, oldest=0.0)
    assert found is None  # Slack will not say, so the relay posts
    assert [c.error for c in fake.calls_of("conversations.join")] == ["method_not_supported_for_channel_type"]


async def test_people_are_invited_into_a_public_channel_the_bot_joins_first(
    fake: FakeSlack, facade: SlackFacade
) -> None:
    """A schedule's hand-off channel is one people made: only a member invites, so the bot joins it."""
    fake.add_channel("C0ONCALL", "sre-oncall", members=["U0CAROL"])
    left_out = await facade.invite_members(channel="C0ONCALL", users=["U0DAN", "UBOT"])
    assert left_out == ["UBOT"] and {"UBOT", "U0DAN"} <= fake.channels["C0ONCALL"].members
    assert [c.error for c in fake.calls_of("conversations.join")] == [None]

    fake.add_channel("C0SECRET", "leadership", members=["U0BOSS"], is_private=True)
    with pytest.raises(SlackApiError) as refused:  # Slack's own answer, not the join's refusal
        await facade.invite_members(channel="C0SECRET", users=["U0DAN"])
    assert slack_error(refused.value) == "not_in_channel"


async def test_a_user_groups_new_members_are_those_it_answers_with_from_then_on(
    fake: FakeSlack, facade: SlackFacade
) -> None:
    fake.add_usergroup("S0ONCALL", "sre-oncall", ["U0CAROL"])
    assert await facade.usergroup_members(usergroup="S0ONCALL") == ["U0CAROL"]
    await facade.set_usergroup_members(usergroup="S0ONCALL", users=["U0DAN", "U0ERIN", "U0DAN"])
    assert fake.usergroups["S0ONCALL"]["users"] == ["U0DAN", "U0ERIN"]
    assert fake.calls_of("usergroups.users.update")[0].args["users"] == "U0DAN,U0ERIN"
    assert await facade.usergroup_members(usergroup="S0ONCALL") == ["U0DAN", "U0ERIN"]
    assert len(fake.calls_of("usergroups.users.list")) == 1  # from what the update answered


def test_the_facade_asks_for_the_scope_slack_needs_for_each_method_it_calls() -> None:
    """In a public channel, as Tocsin's are: the manifest asks for these (bot_scopes)."""
    for method, scope in METHOD_SCOPES.items():
        needed = NEEDED_SCOPES.get(method)
        assert scope == (needed if needed is None or isinstance(needed, str) else needed["public"]), method
