"""The outbound facade (bot/slack.py) against the fake Slack, over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.slack import SlackFacade
from tests.conftest import ANNOUNCE
from tests.fakeslack import FakeSlack

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
