"""bot/quota.py: Slack's quotas kept on Tocsin's side, on a clock the test moves."""

from __future__ import annotations

import asyncio

import pytest

from bot import quota
from bot.quota import Quota
from bot.slack import METHOD_SCOPES
from tests.fakeslack import SLACK_TIERS, TIER_3


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_tier_2_method_allows_its_burst_then_one_call_every_three_seconds() -> None:
    clock = Clock()
    pace = Quota(clock=clock)
    keys = quota.keys("conversations.create")
    assert pace.room("conversations.create", horizon=1.0) == 5
    bucket = pace.bucket("conversations.create")
    for _ in range(5):
        assert pace.delay(keys) == 0
        bucket.tokens -= 1
    assert round(pace.delay(keys), 3) == 3.0
    assert pace.room("conversations.create", horizon=1.0) == 1  # one waits at the head
    pace.reserve("conversations.create", urgency=14)
    assert pace.room("conversations.create", horizon=1.0) == 0
    assert pace.overtakes("conversations.create", urgency=4)  # a P1's creation goes before the P4's
    assert not pace.overtakes("conversations.create", urgency=14)
    clock.now += 3.0
    assert pace.delay(keys) == 0


def test_each_method_the_facade_calls_is_paced_at_slacks_tier() -> None:
    """The fake Slack's tiers are Slack's published ones; a post is paced per channel instead."""
    for method in METHOD_SCOPES.keys() - {"chat.postMessage"}:
        ours, slacks = quota.limit_of(method), SLACK_TIERS.get(method, TIER_3)
        assert (ours.per_minute, ours.burst) == (slacks.per_minute, slacks.burst), method
    assert quota.limit_of("usergroups.users.update") == quota.TIER_2


def test_posts_are_paced_per_channel_and_for_the_workspace() -> None:
    assert quota.keys("chat.postMessage", "C1") == ["chat.postMessage", "post:C1"]
    assert quota.keys("chat.update", "C1") == ["chat.update"]
    clock = Clock()
    pace = Quota(clock=clock)
    for _ in range(3):
        pace.bucket("post:C1").tokens -= 1
    assert round(pace.delay(quota.keys("chat.postMessage", "C1")), 3) == 1.0
    assert pace.delay(quota.keys("chat.postMessage", "C2")) == 0


def test_a_429_stops_the_bucket_until_retry_after_and_slows_it() -> None:
    clock = Clock()
    pace = Quota(clock=clock)
    keys = quota.keys("chat.update")
    published = pace.bucket("chat.update").published
    pace.refused(keys, retry_after=7)
    assert round(pace.delay(keys), 3) == 7.0
    assert pace.room("chat.update", horizon=1.0) == 0  # no row is claimed to wait out the Retry-After
    clock.now += 7
    assert pace.bucket("chat.update").rate < published
    assert pace.delay(keys) == 0  # Slack takes calls again after Retry-After, at a lower pace here
    for _ in range(200):
        pace.accepted(keys, sent=clock.now)
    assert pace.bucket("chat.update").rate == published


def test_replicas_share_the_quota_and_a_scale_multiplies_it() -> None:
    pace = Quota(clock=Clock())
    alone = pace.bucket("pins.add").published
    pace.divide(0.5)
    assert pace.bucket("pins.add").published == alone / 2
    assert Quota(scale=10, clock=Clock()).bucket("pins.add").published == pytest.approx(alone * 10)


async def test_the_most_urgent_waiter_gets_the_next_token() -> None:
    pace = Quota()
    bucket = pace.bucket("pins.add")
    bucket.tokens = 0.0
    bucket.rate = 20.0  # a token every 50 ms, so the test is quick
    bucket.limit = quota.Limit(per_minute=1200, burst=1)
    order: list[str] = []

    async def call(name: str, urgency: int) -> None:
        quota.URGENCY.set(urgency)
        await pace.take(["pins.add"])
        order.append(name)

    await asyncio.gather(call("P4 topic", 14), call("P3 card", 10), call("P1 page", 3))
    assert order == ["P1 page", "P3 card", "P4 topic"]


async def test_a_token_taken_ahead_of_a_call_is_spent_by_it_or_given_back() -> None:
    """The relay takes a row's token while the row waits its turn; the row's call spends that one, and
    a delivery that made no call (an edit that would change nothing) gives it back."""
    pace = Quota(clock=Clock())
    bucket = pace.bucket("chat.update")
    full = bucket.tokens
    await pace.prepay(["chat.update"])
    assert bucket.tokens == full - 1
    assert pace.still_to_pay(["chat.update"])[0] == []  # spent already
    assert pace.still_to_pay(["chat.update"])[0] == ["chat.update"]  # the next call pays its own
    await pace.prepay(["chat.update"])
    pace.refund()
    assert bucket.tokens == full - 1


async def test_a_post_takes_its_channels_token_and_the_workspaces_ahead_each_timed_on_its_own() -> None:
    """A post waits for its channel's token first (the scarce one), then the workspace's; the refill
    taken back after the call counts from when each was taken, so a wait for one bucket does not
    charge the other twice."""
    clock = Clock()
    pace = Quota(clock=clock)
    channel, workspace = pace.bucket("post:C1"), pace.bucket("chat.postMessage")
    channel.tokens, full = 1.0, workspace.tokens
    quota.URGENCY.set(0)
    await pace.prepay(quota.keys("chat.postMessage", "C1"))
    assert channel.tokens == pytest.approx(0.0) and workspace.tokens == pytest.approx(full - 1)
    clock.now += 0.5
    left, paid = pace.still_to_pay(quota.keys("chat.postMessage", "C1"))
    assert left == [] and set(paid) == {"post:C1", "chat.postMessage"}


def test_part_of_each_burst_is_kept_for_a_p1s_or_p2s_calls() -> None:
    """A storm of P4 pages to one paging channel spends its refill, never the burst that a P1's pages
    declared a moment later need: the P4s still get one post a second."""
    clock = Clock()
    pace = Quota(clock=clock)
    keys = quota.keys("chat.postMessage", "CPAGING")
    channel = pace.bucket("post:CPAGING")
    assert channel.delay(clock.now, urgent=False) == 0  # a full bucket: a P4 may post
    channel.tokens -= 1
    assert round(channel.delay(clock.now, urgent=False), 3) == 1.0  # the next P4 waits a second
    clock.now += 1.0
    assert channel.delay(clock.now, urgent=False) == 0
    channel.tokens -= 1  # one P4 post a second: the refill rate, as without the kept tokens
    assert channel.tokens == pytest.approx(2.0)
    for _ in range(2):  # and a P1's two pages go at once, a third a second later
        assert pace.delay(keys) == 0
        channel.tokens -= 1
    assert round(channel.delay(clock.now, urgent=True), 3) == 1.0


async def test_a_p4s_call_waits_for_the_kept_tokens_and_a_p1s_does_not() -> None:
    clock = Clock()
    pace = Quota(clock=clock)
    channel = pace.bucket("post:CPAGING")
    channel.tokens = 2.0
    quota.URGENCY.set(quota.URGENT_UP_TO)  # a P2's message
    await pace.take(["post:CPAGING"])
    assert channel.tokens == pytest.approx(1.0)
    quota.URGENCY.set(quota.URGENT_UP_TO + 1)  # a P3's page
    with pytest.raises(TimeoutError):  # the clock stands still: the kept tokens never come back
        await asyncio.wait_for(pace.take(["post:CPAGING"]), timeout=0.1)
    assert channel.tokens == pytest.approx(1.0)
