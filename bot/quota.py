"""Slack's Web API quotas, kept on our side: a token bucket per method, and per channel for posts.

Slack limits each method per workspace by tier, and chat.postMessage to about one message a second per
channel, and answers 429 with Retry-After beyond that. Waiting before a call costs nothing; being
refused costs a round trip and, in a storm, the most urgent message's place. So every call through the
Slack facade takes a token first, the most urgent waiter first, and a 429 empties the bucket until its
Retry-After and lowers the bucket's rate for a while (Slack's published figures are approximate and
other apps of the workspace spend the same quota).

Several replicas share the workspace's quota: each runs at `share` (1/n of n live relays) of it, but
at all of the buckets it spends alone: the relay gives each family() of buckets to one replica (every
post to one, every channel creation to one...), so that a burst, and the part of it kept for urgent
calls, is not split, nor the workspace's posts shared out evenly between replicas that post unevenly.

Part of each bucket's burst is kept for urgent calls (a P1's or P2's, and a person's request): a less
urgent call waits until the bucket holds that much more than its own token. That costs the less urgent
nothing over a minute (the refill rate is the same), but a P1's three pages, declared just after a
storm of P4s spent the paging channel's burst, need not wait a second each for it to refill.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from store.operations import HOUSEKEEPING, urgency


@dataclass(frozen=True)
class Limit:
    per_minute: float
    burst: int


TIER_2 = Limit(20, 5)
TIER_3 = Limit(50, 10)
TIER_4 = Limit(100, 20)
POST_PER_CHANNEL = Limit(60, 3)  # about one a second per channel, short bursts allowed
POST_PER_WORKSPACE = Limit(300, 50)  # Slack gives no figure ("several hundred a minute"): a safe one

METHOD_LIMITS: dict[str, Limit] = {
    **dict.fromkeys(
        (
            "conversations.create",
            "conversations.setTopic",
            "pins.add",
            "usergroups.users.list",
            "usergroups.users.update",
            "usergroups.list",
            "conversations.list",
            "files.completeUploadExternal",
        ),
        TIER_2,
    ),
    **dict.fromkeys(
        (
            "conversations.invite",
            "chat.update",
            "conversations.history",
            "conversations.replies",
            "conversations.members",
            "conversations.info",
            "conversations.join",
            "reactions.add",
        ),
        TIER_3,
    ),
    **dict.fromkeys(
        (
            "chat.postEphemeral",
            "views.open",
            "views.update",
            "users.info",
            "auth.test",
            "files.getUploadURLExternal",
            "views.publish",
            "chat.getPermalink",
        ),
        TIER_4,
    ),
    "chat.postMessage": POST_PER_WORKSPACE,
}

# How urgent the call being made is (store/operations.py's urgency of the outbox row being delivered);
# a call made outside a delivery answers a person now, so it goes first.
URGENCY: contextvars.ContextVar[int] = contextvars.ContextVar("urgency", default=-1)
# Buckets whose token the outbox row being delivered took before its call, with when each was taken (the
# relay takes them while the row waits its turn, most urgent first); the row's call spends them instead
# of taking others.
PREPAID: contextvars.ContextVar[dict[str, float] | None] = contextvars.ContextVar("prepaid", default=None)
LEARN_FLOOR = 0.25  # a bucket slowed by 429s keeps at least this share of its published rate
SLOW_DOWN = 0.7  # each 429 multiplies the bucket's rate by this
RECOVER = 1.02  # each call Slack accepts multiplies it back by this, up to the published rate
KEPT_FOR_URGENT = 2.0  # tokens of a bucket's burst (less its own one) that only urgent calls may spend
URGENT_UP_TO = urgency("P2", HOUSEKEEPING)  # every call of a P1 or a P2 is urgent


def keys(method: str, channel: str | None = None) -> list[str]:
    """The buckets a call spends: its method's, and for a post its channel's."""
    if method == "chat.postMessage" and channel:
        return [method, f"post:{channel}"]
    return [method]


def family(key: str) -> str:
    """The buckets one replica spends alone, named by one of them: every post spends the workspace's
    chat.postMessage bucket as well as its channel's, so all of them go together."""
    return "chat.postMessage" if key.startswith("post:") else key


def limit_of(key: str) -> Limit:
    if key.startswith("post:"):
        return POST_PER_CHANNEL
    return METHOD_LIMITS.get(key, TIER_3)


@dataclass
class Bucket:
    limit: Limit
    share: float
    tokens: float
    updated: float
    rate: float = 0.0  # tokens a second as learnt; 0 until the first refill sets the published one
    blocked_until: float = 0.0
    waiting: list[tuple[int, int]] = field(default_factory=list)  # (urgency, arrival) of waiters
    claimed: list[int] = field(default_factory=list)  # urgencies of rows claimed for it, not yet delivered

    @property
    def reserved(self) -> int:
        return len(self.claimed)

    @property
    def published(self) -> float:
        return self.limit.per_minute / 60.0 * self.share

    @property
    def capacity(self) -> float:
        return max(1.0, self.limit.burst * self.share)

    def refill(self, now: float) -> None:
        self.rate = self.rate or self.published
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now

    @property
    def kept(self) -> float:
        """The tokens kept for urgent calls: as many as the burst has beyond one call, up to
        KEPT_FOR_URGENT."""
        return min(KEPT_FOR_URGENT, self.capacity - 1.0)

    def delay(self, now: float, *, urgent: bool = True) -> float:
        """Seconds until a call may take a token: one is here, and for a less urgent call, the kept ones
        too."""
        self.refill(now)
        blocked = max(0.0, self.blocked_until - now)
        need = 1.0 if urgent else 1.0 + self.kept
        return max(blocked, 0.0 if self.tokens >= need else (need - self.tokens) / self.rate)


class Quota:
    def __init__(
        self,
        *,
        scale: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        urgent_up_to: int = URGENT_UP_TO,
    ) -> None:
        """`scale`: times Slack's published quotas (TOCSIN_SLACK_QUOTA_SCALE); `urgent_up_to`: the least
        urgent URGENCY that may spend a bucket's kept tokens."""
        self.clock, self.scale, self.urgent_up_to = clock, scale, urgent_up_to
        self._share = 1.0
        self._alone: Callable[[str], bool] = lambda key: False
        self._buckets: dict[str, Bucket] = {}
        self._arrivals = itertools.count()

    @property
    def share(self) -> float:
        return self._share

    def divide(self, share: float, alone: Callable[[str], bool] | None = None) -> None:
        """This replica's part of the workspace's quota (1/n of n live relays), for every bucket but those
        it spends `alone`, of which it has all; buckets keep what they learnt."""
        self._share = min(1.0, max(0.01, share))
        self._alone = alone or (lambda key: False)
        for key, bucket in self._buckets.items():
            _resize(bucket, self._share_of(key))

    def _share_of(self, key: str) -> float:
        return 1.0 if self._alone(key) else self._share

    def bucket(self, key: str) -> Bucket:
        found = self._buckets.get(key)
        if found is None:
            published = limit_of(key)
            limit = Limit(published.per_minute * self.scale, max(1, round(published.burst * self.scale)))
            share = self._share_of(key)
            found = Bucket(limit, share, tokens=max(1.0, limit.burst * share), updated=self.clock())
            self._buckets[key] = found
        return found

    def delay(self, names: Iterable[str]) -> float:
        """Seconds until a call spending these buckets could go, if nobody else waits."""
        now = self.clock()
        return max((self.bucket(key).delay(now) for key in names), default=0.0)

    async def prepay(self, names: list[str]) -> None:
        """Take a token of each of `names` for the call the current task is about to make (see PREPAID):
        all the buckets the call spends, so that it goes as soon as it is made."""
        PREPAID.set(await self.take(names))

    def still_to_pay(self, names: list[str]) -> tuple[list[str], dict[str, float]]:
        """The buckets a call has yet to take tokens from, and when each prepaid one was taken (spent by
        this call): the refill since then is not Slack's to give (answered())."""
        prepaid = PREPAID.get() or {}
        paid = {key: prepaid.pop(key) for key in names if key in prepaid}
        return [key for key in names if key not in paid], paid

    def refund(self) -> None:
        """The current task's delivery made no call for its prepaid tokens: give them back."""
        for key in PREPAID.get() or {}:
            bucket = self.bucket(key)
            bucket.tokens = min(bucket.capacity, bucket.tokens + 1)
        PREPAID.set(None)

    def room(self, key: str, horizon: float) -> int:
        """How many more rows spending this bucket the relay may claim now: the calls that could start
        within `horizon` seconds, less the rows already claimed for it; one at least while none is
        claimed, so a slow bucket always has its next call waiting."""
        bucket, now = self.bucket(key), self.clock()
        bucket.refill(now)
        if bucket.blocked_until - now > horizon:  # after a 429: nothing is claimed to wait out a lease
            return 0
        open_for = horizon - max(0.0, bucket.blocked_until - now)
        soon = int(bucket.tokens + open_for * bucket.rate) if open_for > 0 else 0
        free = soon - bucket.reserved
        return free if free > 0 else (0 if bucket.reserved else 1)

    def overtakes(self, key: str, urgency: int) -> bool:
        """Whether a row of `urgency` is more urgent than every row claimed for this bucket: it may be
        claimed although the bucket has no room, and takes the next token before them."""
        claimed = self.bucket(key).claimed
        return bool(claimed) and urgency < min(claimed)

    def reserve(self, key: str, urgency: int) -> None:
        """A row spending this bucket was claimed (release() once it has taken its token, or is given
        back)."""
        self.bucket(key).claimed.append(urgency)

    def release(self, key: str, urgency: int) -> None:
        claimed = self.bucket(key).claimed
        if urgency in claimed:
            claimed.remove(urgency)

    async def take(self, names: list[str]) -> dict[str, float]:
        """Wait for a token of every bucket in `names` (the most urgent waiter first), spend them, and
        say when each was taken.

        One bucket at a time, the one with the smallest burst (a channel's) first: a call waiting for
        its channel must not stand, as the first waiter, in the workspace's bucket too, where every
        other channel's posts would queue behind it."""
        me, taken = (URGENCY.get(), next(self._arrivals)), {}
        for bucket, key in self._scarcest_first(names):
            await self._take_one(bucket, me)
            taken[key] = self.clock()
        return taken

    def _scarcest_first(self, names: Iterable[str]) -> list[tuple[Bucket, str]]:
        return sorted(((self.bucket(key), key) for key in names), key=lambda pair: pair[0].capacity)

    async def _take_one(self, bucket: Bucket, me: tuple[int, int]) -> None:
        urgent = me[0] <= self.urgent_up_to
        bucket.waiting.append(me)
        try:
            while True:
                wait = bucket.delay(self.clock(), urgent=urgent)
                if wait <= 0 and min(bucket.waiting) == me:
                    bucket.tokens -= 1
                    return
                # Not first: a more urgent waiter spends the next token; look again once it could have.
                await asyncio.sleep(max(wait, 0.02))
        finally:
            bucket.waiting.remove(me)

    def refused(self, names: Iterable[str], retry_after: float) -> None:
        """Slack answered 429: nothing more until Retry-After, and slower after it."""
        now = self.clock()
        for key in names:
            bucket = self.bucket(key)
            bucket.refill(now)
            bucket.tokens = 0.0
            bucket.blocked_until = max(bucket.blocked_until, now + retry_after)
            bucket.rate = max(bucket.published * LEARN_FLOOR, bucket.rate * SLOW_DOWN)

    def answered(self, names: Iterable[str], *, sent: float) -> None:
        """A call taken at `sent` (this clock) was answered: Slack counted it when it arrived, after
        this process did, and a call queued behind others arrives later still. The refill credited
        while it was on its way is taken back, so this side's bucket never runs ahead of Slack's."""
        now = self.clock()
        for key in names:
            bucket = self.bucket(key)
            bucket.refill(now)
            bucket.tokens -= min(1.0, (now - sent) * bucket.rate)

    def accepted(self, names: Iterable[str], *, sent: float) -> None:
        self.answered(names, sent=sent)
        for key in names:
            bucket = self.bucket(key)
            bucket.rate = min(bucket.published, (bucket.rate or bucket.published) * RECOVER)


def _resize(bucket: Bucket, share: float) -> None:
    if share != bucket.share:
        bucket.rate = bucket.rate * share / bucket.share
        bucket.share = share
        bucket.tokens = min(bucket.tokens, bucket.capacity)
