"""store/outbox.py: messages queued in the change's own transaction, claimed most urgent first and in
order within each incident's lane, once what they need is there, settled once, and put back by
`tocsin outbox retry`; on SQLite and PostgreSQL.

How the relay delivers them to Slack is tests/test_relay.py's; what /healthz says of rows held for an
operator is tests/test_health.py's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.config import load_policy
from store import health, outbox, service, workers
from store.db import Database
from store.errors import IllegalTransition
from store.machine import Action
from store.models import Incident, State
from store.operations import CreateChannel, Dm, Page, Pin, Post, Refresh, Topic, decode, urgency_label

ROOT = Path(__file__).resolve().parent.parent
POLICY = load_policy(ROOT / "app.yaml")
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
S = timedelta(seconds=1)
LEASE, DEAD_AFTER = timedelta(minutes=5), timedelta(minutes=1)
RELAY, OTHER = "relay-a", "relay-b"


@pytest.fixture
async def relays(db: Database) -> Database:
    """The database, with two live relay processes."""
    async with db.write() as session:
        for worker in (RELAY, OTHER):
            await workers.register(session, worker_id=worker, host="test", pid=1, now=NOW)
    return db


async def declared(db: Database) -> int:
    async with db.write() as session:
        change = await service.declare(session, policy=POLICY, title="Disk full", reporter="U_ALICE", now=NOW)
        return change.incident.number


async def queued(db: Database, *incidents: int | None, at: datetime = NOW) -> list[int]:
    """One post per given incident (None: a message of no incident), in that order; their ids."""
    async with db.write() as session:
        rows = [
            outbox.enqueue(
                session, Post(channel="C_OPS", text=f"message {n}"), now=at, incident_number=number
            )
            for n, number in enumerate(incidents)
        ]
        await session.flush()
        return [row.id for row in rows]


async def claim(
    db: Database, *, at: datetime = NOW, worker: str = RELAY, limit: int = 50, admit=None
) -> list[tuple[int, bool]]:
    """What `worker` claims at `at`: (id, uncertain), most urgent first."""
    async with db.write() as session:
        claimed = await outbox.claim(
            session, now=at, lease=LEASE, worker=worker, dead_after=DEAD_AFTER, limit=limit, admit=admit
        )
        return [(row.id, uncertain) for row, uncertain in claimed]


async def planned(db: Database, number: int, ops: list, *, priority: str = "P3") -> list[int]:
    """Queue `ops` for incident `number` as the planner does; their ids."""
    async with db.write() as session:
        rows = [outbox.enqueue(session, op, now=NOW, incident_number=number, priority=priority) for op in ops]
        await session.flush()
        return [row.id for row in rows]


async def settle(db: Database, ids: list[int]) -> None:
    async with db.write() as session:
        await outbox.delivered(session, message_ids=ids, now=NOW)


async def rows(db: Database, ids: list[int]) -> list:
    async with db.read() as session:
        found = await outbox.by_ids(session, message_ids=ids)
    return [found[i] for i in ids]


async def undelivered(db: Database, **given) -> list[int]:
    async with db.read() as session:
        return [row.id for row in await outbox.undelivered(session, **given)]


async def test_a_message_is_queued_in_the_changes_transaction_and_rolled_back_with_it(db: Database) -> None:
    async with db.write() as session:
        change = await service.declare(session, policy=POLICY, title="Disk full", reporter="U_ALICE", now=NOW)
        number = change.incident.number
        await outbox.enqueue_all(session, [Post(text="declared"), Topic()], now=NOW, incident_number=number)
    queue = await rows(db, await undelivered(db))
    assert [(r.incident_number, decode(r.op, r.payload)) for r in queue] == [
        (number, Post(text="declared")),
        (number, Topic()),
    ]
    assert {(r.attempts, r.next_attempt_at, r.created_at) for r in queue} == {(0, NOW, NOW)}

    with pytest.raises(IllegalTransition):  # a use case that refuses: its message goes with it
        async with db.write() as session:
            incident = await service.find(session, policy=POLICY, ref=f"INC-{number}", lock=True)
            await outbox.enqueue_all(session, [Post(text="closing")], now=NOW, incident_number=number)
            await service.apply(session, incident, Action.CLOSE, policy=POLICY, actor="U0123ADMIN", now=NOW)
    with pytest.raises(RuntimeError):  # a change made, then a failure before commit: neither is kept
        async with db.write() as session:
            incident = await service.find(session, policy=POLICY, ref=f"INC-{number}", lock=True)
            await service.apply(session, incident, Action.ACK, policy=POLICY, actor="U_BOB", now=NOW)
            outbox.enqueue(session, Post(text="acknowledged"), now=NOW, incident_number=number)
            await session.flush()
            raise RuntimeError("the handler failed after queueing")
    assert await undelivered(db) == [row.id for row in queue]
    async with db.read() as session:
        incident = await session.get(Incident, number)
    assert (incident.state, incident.acknowledged_by) == (State.TRIAGE, None)


async def test_enqueue_queues_each_operation_as_one_row_in_order(db: Database) -> None:
    async with db.write() as session:
        row = outbox.enqueue(session, Topic(), now=NOW, incident_number=None)
        await outbox.enqueue_all(session, [Topic(), Post(text="x")], now=NOW, incident_number=None)
        await outbox.enqueue_all(session, [], now=NOW, incident_number=None)
        await session.flush()
        first = row.id
    assert [(r.op, r.payload) for r in await rows(db, await undelivered(db))] == [
        ("topic", {}),
        ("topic", {}),
        ("post", {"text": "x", "blocks": None, "to": "incident", "metadata": None}),
    ]
    assert (await undelivered(db))[0] == first


async def test_each_incidents_messages_are_claimed_one_at_a_time_in_order(relays: Database) -> None:
    db = relays
    one, two = await declared(db), await declared(db)
    a1, b1, a2, g1, b2, a3, g2 = await queued(db, one, two, one, None, two, one, None)
    # the head of each incident's queue, and every message of no incident, in id order
    assert await claim(db) == [(a1, False), (b1, False), (g1, False), (g2, False)]
    assert await claim(db, worker=OTHER) == []  # leased to a live relay
    async with db.write() as session:
        await outbox.delivered(session, message_ids=[a1, g1, g2], now=NOW + S)
    assert await claim(db, at=NOW + S, worker=OTHER) == [(a2, False)]  # b1 is still out
    async with db.write() as session:
        await outbox.delivered(session, message_ids=[a2, b1], now=NOW + 2 * S)
    assert await claim(db, at=NOW + 2 * S) == [(b2, False), (a3, False)]
    delivered = await rows(db, [a1, a2, g1])
    assert [(r.delivered_at, r.locked_by, r.attempts) for r in delivered] == [
        (NOW + S, None, 1),
        (NOW + 2 * S, None, 1),
        (NOW + S, None, 1),
    ]


async def test_order_is_kept_within_a_lane_and_nowhere_else(relays: Database) -> None:
    """Posts to one channel keep their order; the incident's other lanes (its DMs, its topic) do not wait
    behind them."""
    db = relays
    one = await declared(db)
    page = Page(level=1, repeat=False)
    first, second, dm, topic = await planned(
        db,
        one,
        [Post(channel="C_OPS", text="1"), Post(channel="C_OPS", text="2"), Dm(["U_BOB"], [], page), Topic()],
    )
    assert sorted(i for i, _ in await claim(db)) == [first, dm, topic]
    await settle(db, [first])
    assert await claim(db) == [(second, False)]


async def test_the_most_urgent_ready_message_is_claimed_first_across_incidents(relays: Database) -> None:
    """Twenty-seven P4 messages queued first, then a P1's page and its other message: the P1's page comes
    first, then its other message, then the P4s, oldest first; a P4's topic comes last."""
    db = relays
    quiet = [await declared(db) for _ in range(3)]
    p4 = [
        (await planned(db, number, [Post(channel=f"C_{number}", text="p4"), Topic()], priority="P4"))
        for number in quiet
    ]
    loud = await declared(db)
    update, page = await planned(
        db,
        loud,
        [Post(channel="C_OPS", text="note"), Post(channel="C_PAGE", text="page", urgent=True)],
        priority="P1",
    )
    order = [i for i, _ in await claim(db)]
    assert order == [page, update, *(ids[0] for ids in p4), *(ids[1] for ids in p4)]
    assert [i for i, _ in await claim(db, worker=OTHER, limit=1)] == []  # all leased
    async with db.read() as session:
        shown = {row.id: row.urgency for row in (await outbox.by_ids(session, message_ids=order)).values()}
    assert [urgency_label(shown[i]) for i in (page, update, p4[0][1])] == [
        "P1-alert",
        "P1-message",
        "P4-housekeeping",
    ]


async def test_a_message_waits_for_the_channel_card_or_announcement_it_needs(relays: Database) -> None:
    """Before the channel exists only its creation and posts to other channels go; the page's DM, the
    card and the announcement once it does; the pin after the card; a thread reply after the
    announcement; a page to a fixed channel at once."""
    db = relays
    one = await declared(db)
    page = Page(level=1, repeat=False)
    create, card, pin, announcement, reply, paging, dm = await planned(
        db,
        one,
        [
            CreateChannel("inc-1"),
            Post(render="card", save_as="card"),
            Pin("card"),
            Post(channel="C_ANN", render="announcement", save_as="announcement"),
            Post(channel="C_ANN", text="update", thread="announcement"),
            Post(channel="C_PAGE", text="page", urgent=True),
            Dm(["U_BOB"], [], page),
        ],
        priority="P1",
    )
    assert [i for i, _ in await claim(db)] == [paging, create]  # alerts first, then the creation
    await settle(db, [create])
    assert [i for i, _ in await claim(db)] == [dm, card, announcement]
    await settle(db, [card, announcement])
    assert [i for i, _ in await claim(db)] == [reply, pin]  # the pin is housekeeping: last


async def test_edits_of_one_message_coalesce_into_the_one_claimed(relays: Database) -> None:
    """Three edits of the card queued: one is claimed, the others are settled with it (the one sent is
    rendered from the incident as it is then). An edit queued while that one is out waits for it."""
    db = relays
    one = await declared(db)
    first, second, third = await planned(db, one, [Refresh("card"), Refresh("card"), Refresh("card")])
    assert await claim(db) == [(first, False)]
    assert await undelivered(db) == [first]
    assert [r.last_error for r in await rows(db, [second, third])] == ["coalesced", "coalesced"]
    (later,) = await planned(db, one, [Refresh("card")])
    assert await claim(db) == []  # behind the edit under way: it may have rendered before this change
    await settle(db, [first])
    assert await claim(db) == [(later, False)]


async def test_a_page_dm_waits_for_the_channel_it_links_only_briefly(relays: Database) -> None:
    db = relays
    one = await declared(db)
    create, dm = await planned(
        db, one, [CreateChannel("inc-1"), Dm(["U_BOB"], [], Page(level=1, repeat=False))]
    )
    assert await claim(db) == [(create, False)]
    assert await claim(db, at=NOW + outbox.PAGE_PATIENCE) == [(dm, False)]  # the channel is still coming


async def test_a_row_not_admitted_is_left_in_the_queue_unleased(relays: Database) -> None:
    """The relay admits only what Slack's quotas have room for: the rest stays queued, free for later."""
    db = relays
    one = await declared(db)
    a, b = await planned(db, one, [Post(channel="C_A", text="a"), Post(channel="C_B", text="b")])
    assert await claim(db, admit=lambda row: row.bucket != "post:C_A") == [(b, False)]
    assert [(r.locked_by, r.attempts) for r in await rows(db, [a])] == [(None, 0)]
    assert await claim(db, worker=OTHER) == [(a, False)]


async def test_a_claim_whose_relay_died_or_whose_lease_ran_out_is_taken_over_as_uncertain(
    relays: Database,
) -> None:
    db = relays
    one, two = await declared(db), await declared(db)
    a1, b1 = await queued(db, one, two)
    assert await claim(db, worker="ghost") == [(a1, False), (b1, False)]  # a process that never beat
    assert await claim(db, worker=OTHER) == [(a1, True), (b1, True)]  # Slack may have them already
    assert [r.attempts for r in await rows(db, [a1, b1])] == [2, 2]
    async with db.write() as session:  # OTHER keeps beating: its lease holds until it runs out
        await workers.beat(session, worker_id=OTHER, now=NOW + LEASE - 2 * S)
    assert await claim(db, at=NOW + LEASE - S) == []
    assert await claim(db, at=NOW + LEASE + S) == [(a1, True), (b1, True)]


async def test_retry_later_holds_the_incidents_queue_and_failed_lets_it_go_on(relays: Database) -> None:
    db = relays
    number = await declared(db)
    first, second = await queued(db, number, number)
    assert await claim(db) == [(first, False)]
    async with db.write() as session:
        await outbox.retry_later(session, message_id=first, error="http_503", at=NOW + 30 * S)
    assert await claim(db, at=NOW + 29 * S) == []  # the second waits behind the first
    assert await claim(db, at=NOW + 30 * S) == [(first, False)]
    async with db.write() as session:
        await outbox.failed(session, message_id=first, error="channel_not_found", now=NOW + 31 * S)
    (row,) = await rows(db, [first])
    assert (row.failed_at, row.last_error, row.attempts, row.locked_by) == (
        NOW + 31 * S,
        "channel_not_found",
        2,
        None,
    )
    assert await claim(db, at=NOW + 31 * S) == [(second, False)]
    assert await undelivered(db) == [second]
    assert await undelivered(db, include_failed=True) == [first, second]


async def test_outbox_retry_puts_failed_messages_back_in_their_place(relays: Database) -> None:
    db = relays
    number = await declared(db)
    first, second, third, other = await queued(db, number, number, number, None)
    async with db.write() as session:
        await outbox.claim(session, now=NOW, lease=LEASE, worker=RELAY, dead_after=DEAD_AFTER)
        await outbox.failed(session, message_id=first, error="channel_not_found", now=NOW)
    async with db.write() as session:  # the lane's next, in turn
        await outbox.claim(session, now=NOW, lease=LEASE, worker=RELAY, dead_after=DEAD_AFTER)
        await outbox.delivered(session, message_ids=[second, other], now=NOW)
    async with db.write() as session:
        await outbox.claim(session, now=NOW, lease=LEASE, worker=RELAY, dead_after=DEAD_AFTER)
        await outbox.release(session, message_ids=[third])
    later = NOW + timedelta(hours=1)
    async with db.write() as session:
        requeued = await outbox.requeue_failed(session, message_ids=[first, second, third, 999], now=later)
        others = await outbox.by_ids(session, message_ids=[second, third, 999])
    # the rows as they were, so the operator is told what had failed
    assert [(r.id, r.last_error) for r in requeued] == [(first, "channel_not_found")]
    assert (others[second].delivered_at, others[third].failed_at, 999 in others) == (NOW, None, False)
    (row,) = await rows(db, [first])
    assert (row.failed_at, row.last_error, row.attempts, row.next_attempt_at) == (None, None, 0, later)
    assert await claim(db, at=later) == [(first, False)]  # before the third, as it was queued
    async with db.write() as session:
        await outbox.failed(session, message_id=first, error="channel_not_found", now=later)
        assert await outbox.requeue_failed(session, message_ids=[], now=later) == []
        assert [r.id for r in await outbox.requeue_failed(session, message_ids=None, now=later)] == [first]
    assert await undelivered(db) == [first, third]


async def test_messages_waiting_after_a_fixed_error_become_due_at_once(relays: Database) -> None:
    db = relays
    token, slow, fine = await queued(db, None, None, None)
    await claim(db)
    async with db.write() as session:
        await outbox.retry_later(
            session, message_id=token, error="token_revoked", at=NOW + timedelta(hours=1)
        )
        await outbox.retry_later(session, message_id=slow, error="http_503", at=NOW + timedelta(hours=1))
        await outbox.delivered(session, message_ids=[fine], now=NOW)
    async with db.write() as session:
        assert await outbox.due_now(session, errors=["token_revoked", "invalid_auth"], now=NOW + S) == 1
    assert await claim(db, at=NOW + S) == [(token, False)]


async def test_the_backlog_figures_healthz_reports(relays: Database) -> None:
    db = relays
    async with db.read() as session:
        assert (await health.report(session, now=NOW))["outbox"] == {
            "backlog": 0,
            "oldest_seconds": None,
            "failed": 0,
            "by_urgency": {},
            "most_urgent": None,
        }
    done, gone, waiting = await queued(db, None, None, None, at=NOW)
    (newer,) = await queued(db, None, at=NOW + 30 * S)
    await claim(db)
    async with db.write() as session:
        await outbox.delivered(session, message_ids=[done], now=NOW)
        await outbox.failed(session, message_id=gone, error="channel_not_found", now=NOW)
        await outbox.retry_later(session, message_id=waiting, error="http_503", at=NOW + 90 * S)
    async with db.read() as session:
        report = await health.report(session, now=NOW + 60 * S)
    # pending rows, waiting ones too; the oldest is as old as the first still undelivered
    assert report["outbox"] == {
        "backlog": 2,
        "oldest_seconds": 60.0,
        "failed": 1,
        "by_urgency": {"none-message": {"count": 2, "oldest_seconds": 60.0}},
        "most_urgent": {"urgency": "none-message", "waiting_seconds": 60.0},
    }
    assert await undelivered(db) == [waiting, newer]
