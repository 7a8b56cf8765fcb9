"""store/outbox.py: messages queued in the change's own transaction, claimed in order per incident,
settled once, and put back by `tocsin outbox retry`; on SQLite and PostgreSQL.

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
from store.operations import Post, Topic, decode

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
    db: Database, *, at: datetime = NOW, worker: str = RELAY, per_incident: int = 1
) -> list[tuple[int, bool]]:
    """What `worker` claims at `at`: (id, uncertain) in id order."""
    async with db.write() as session:
        claimed = await outbox.claim(
            session, now=at, lease=LEASE, worker=worker, dead_after=DEAD_AFTER, per_incident=per_incident
        )
        return [(row.id, uncertain) for row, uncertain in claimed]


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


async def test_a_relay_may_take_the_rows_queued_behind_its_head(relays: Database) -> None:
    db = relays
    one, two = await declared(db), await declared(db)
    a1, b1, a2, b2, a3, a4 = await queued(db, one, two, one, two, one, one)
    assert [i for i, _ in await claim(db, per_incident=3)] == [a1, b1, a2, b2, a3]
    assert await claim(db, worker=OTHER, per_incident=3) == []  # a4 waits behind the run
    async with db.read() as session:
        assert await outbox.held_by(session, worker=RELAY) == {a1, b1, a2, b2, a3}
    async with db.write() as session:
        await outbox.delivered(session, message_ids=[a1, b1, b2], now=NOW)
        await outbox.release(session, message_ids=[a2, a3])  # not attempted: the round ended early
    async with db.read() as session:
        assert await outbox.held_by(session, worker=RELAY) == set()
    assert [(r.attempts, r.locked_by, r.locked_until) for r in await rows(db, [a2, a3])] == [
        (0, None, None)
    ] * 2
    assert await claim(db, worker=OTHER, per_incident=3) == [(a2, False), (a3, False), (a4, False)]


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
        await outbox.claim(session, now=NOW, lease=LEASE, worker=RELAY, dead_after=DEAD_AFTER, per_incident=3)
        await outbox.failed(session, message_id=first, error="channel_not_found", now=NOW)
        await outbox.delivered(session, message_ids=[second, other], now=NOW)
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
    assert report["outbox"] == {"backlog": 2, "oldest_seconds": 60.0, "failed": 1}
    assert await undelivered(db) == [waiting, newer]
