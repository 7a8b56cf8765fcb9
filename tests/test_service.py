"""store/service.py: the use cases, on both stores, read back in a fresh session.

Every transition of the table is tried in tests/test_machine.py; here each use case's own contract: what
it writes to the incident row and the timeline, and what it refuses (leaving the row as it was)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.config import load_policy
from store import service
from store.db import Database
from store.errors import (
    AlreadyAcknowledged,
    AmbiguousChannel,
    Forbidden,
    IllegalTransition,
    InvalidInput,
    NoIncidentHere,
    NotFound,
    TooLong,
)
from store.machine import Action
from store.models import Incident, State, TimelineEntry
from store.policy import Policy

ROOT = Path(__file__).resolve().parent.parent
POLICY = load_policy(ROOT / "app.yaml")
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(minutes=5)
ADMIN, ALICE, BOB, CAROL = "U0123ADMIN", "U_ALICE", "U_BOB", "U_CAROL"
RESOLVE = {"summary": "Restarted the pool", "cause": "capacity", "resolution": "restart"}


async def declared(db: Database, title: str = "Disk full", *, policy: Policy = POLICY, **given) -> int:
    """Declare an incident (reported by Alice at NOW) and commit; its number."""
    async with db.write() as session:
        change = await service.declare(session, policy=policy, title=title, reporter=ALICE, now=NOW, **given)
        return change.incident.number


async def acknowledged(db: Database, *, by: str = BOB) -> int:
    """A declared incident, acknowledged by `by` (who becomes its commander) at LATER."""
    number = await declared(db)
    async with db.write() as session:
        incident = await service.find(session, policy=POLICY, ref=f"INC-{number}", lock=True)
        await service.apply(session, incident, Action.ACK, policy=POLICY, actor=by, now=LATER)
    return number


async def stored(db: Database, number: int) -> tuple[Incident, list[TimelineEntry]]:
    """The incident's row and its timeline, as a new session reads them."""
    async with db.read() as session:
        incident = await session.get(Incident, number)
        assert incident is not None
        return incident, await service.timeline(session, incident)


def entries(timeline: list[TimelineEntry], kind: str) -> list[tuple[str, str | None, str | None, str | None]]:
    return [(e.actor, e.from_value, e.to_value, e.text) for e in timeline if e.kind == kind]


async def open_incidents(db: Database) -> int:
    async with db.read() as session:
        return await service.count_open(session)


# declare


@pytest.mark.parametrize(
    ("impact", "urgency", "priority"),
    [
        ("extensive", "critical", "P1"),
        ("significant", "high", "P2"),
        ("moderate", "medium", "P3"),
        ("minor", "low", "P4"),
        ("extensive", "low", "P3"),
    ],
)
async def test_declare_takes_its_priority_from_the_impact_and_urgency_matrix(
    db: Database, impact: str, urgency: str, priority: str
) -> None:
    number = await declared(db, impact=impact, urgency=urgency)
    incident, _ = await stored(db, number)
    assert (incident.impact, incident.urgency, incident.priority) == (impact, urgency, priority)


async def test_declare_without_a_priority_gets_the_default_and_a_given_one_wins_over_the_matrix(
    db: Database,
) -> None:
    plain = await declared(db)
    given = await declared(db, priority="p2", impact="minor", urgency="low")  # the matrix says P4
    half = await declared(db, impact="extensive")  # no urgency: the matrix is not consulted
    assert [(await stored(db, n))[0].priority for n in (plain, given, half)] == ["P3", "P2", "P3"]


@pytest.mark.parametrize(
    "given", [{"priority": "P5"}, {"impact": "huge", "urgency": "high"}, {"category": "weather"}]
)
async def test_declare_refuses_an_unknown_priority_impact_or_category(db: Database, given: dict) -> None:
    with pytest.raises(InvalidInput) as refused:
        await declared(db, **given)
    assert refused.value.choices  # the choices a person could have made
    assert await open_incidents(db) == 0


async def test_declare_opens_in_triage_with_its_facts_and_timeline(db: Database) -> None:
    async with db.write() as session:
        change = await service.declare(
            session,
            policy=POLICY,
            title="  Checkout is slow  ",
            reporter=ALICE,
            now=NOW,
            description="p99 at 4 s",
            category="application",
            origin_channel="C_GENERAL",
        )
        number = change.incident.number
    assert change.actor == ALICE
    incident, timeline = await stored(db, number)
    assert (incident.title, incident.description, incident.category) == (
        "Checkout is slow",
        "p99 at 4 s",
        "application",
    )
    assert (incident.state, incident.reporter, incident.commander) == (State.TRIAGE, ALICE, None)
    assert (incident.declared_at, incident.detected_at, incident.acknowledged_at) == (NOW, None, None)
    assert incident.origin_channel_id == "C_GENERAL" and incident.channel_id is None  # its own comes later
    assert incident.escalation_level == 1 and incident.level_paged_at == NOW  # level 1 is paged on declare
    assert [(e.kind, e.actor, e.to_value, e.text, e.at) for e in timeline] == [
        ("declared", ALICE, "triage", "Checkout is slow", NOW),
        ("escalation", "tocsin", "1", None, NOW),
    ]


async def test_numbers_follow_one_another(db: Database) -> None:
    assert [await declared(db) for _ in range(3)] == [1, 2, 3]


async def test_title_length_is_counted_as_a_person_reads_it(db: Database) -> None:
    entity = "&amp;" * 150  # reads as 150 ampersands; kept as Slack encodes it
    mention = "<@U0123ALICE|alice> " + "x" * 143  # a mention reads as its name, @alice
    for title in ("x" * 150, entity, mention):
        number = await declared(db, title)
        assert (await stored(db, number))[0].title == title
    for title in ("x" * 151, "&amp;" * 151, mention + "x"):
        with pytest.raises(TooLong) as refused:
            await declared(db, title)
        assert (refused.value.length, refused.value.limit) == (151, 150)
    assert await open_incidents(db) == 3


async def test_title_that_reads_short_but_is_stored_long_is_refused_at_the_columns_limit(
    db: Database,
) -> None:
    link = "<https://example.com/" + "a" * 800 + "|runbook>"  # reads as its label
    with pytest.raises(TooLong) as refused:
        await declared(db, link)
    assert refused.value.limit == service.TITLE_STORED_MAX and refused.value.length == len(link)
    assert await open_incidents(db) == 0


@pytest.mark.parametrize("title", ["", "   "])
async def test_declare_needs_a_title(db: Database, title: str) -> None:
    with pytest.raises(InvalidInput):
        await declared(db, title)
    assert await open_incidents(db) == 0


async def test_detection_time_is_local_to_the_policy_and_never_in_the_future(db: Database) -> None:
    number = await declared(db, detected="2026-11-22 11:30")
    assert (await stored(db, number))[0].detected_at == NOW - timedelta(minutes=30)
    berlin = replace(POLICY, timezone=ZoneInfo("Europe/Berlin"))  # UTC+1 in November
    number = await declared(db, policy=berlin, detected="2026-11-22 12:30")
    assert (await stored(db, number))[0].detected_at == NOW - timedelta(minutes=30)
    alert = await declared(db, detected_at=NOW - timedelta(hours=1))
    assert (await stored(db, alert))[0].detected_at == NOW - timedelta(hours=1)
    for given in (
        {"detected": "2026-11-22 12:01"},
        {"detected_at": NOW + timedelta(seconds=1)},
        {"detected_at": datetime(2026, 11, 22, 11, 0)},  # no time zone: refused, not guessed
        {"detected": "yesterday"},
    ):
        with pytest.raises(InvalidInput):
            await declared(db, **given)
    assert await open_incidents(db) == 3


# find


async def test_find_by_ref(db: Database) -> None:
    number = await declared(db, "Queue backed up")
    async with db.read() as session:
        for ref in (f"INC-{number}", f"inc-{number}"):
            assert (await service.find(session, policy=POLICY, ref=ref)).title == "Queue backed up"
        for ref in ("INC-99", "BUG-1", "INC-", "INC-1x"):
            with pytest.raises(NotFound) as missing:
                await service.find(session, policy=POLICY, ref=ref)
            assert missing.value.ref == ref
        shown = await service.find(session, policy=POLICY, ref=f"INC-{number}")
        assert (shown.number, shown.title, shown.state, shown.is_open) == (
            number,
            "Queue backed up",
            State.TRIAGE,
            True,
        )


async def test_find_by_channel(db: Database) -> None:
    number = await declared(db)
    async with db.write() as session:
        await service.save_slack_refs(
            session, number=number, channel_id="C_INC1", card_ts="1.1", nonsense="x"
        )
    async with db.read() as session:
        found = await service.find(session, policy=POLICY, channel="C_INC1")
        assert (found.number, found.card_ts) == (number, "1.1")
        for channel in ("C_ELSEWHERE", None):
            with pytest.raises(NoIncidentHere):
                await service.find(session, policy=POLICY, channel=channel)


async def test_a_shared_channel_means_its_only_live_incident_else_asks_which(db: Database) -> None:
    shared = replace(POLICY, per_incident=False)  # incidents live in the channel they were declared in
    first = await declared(db, policy=shared, origin_channel="C_OPS")
    second = await declared(db, policy=shared, origin_channel="C_OPS")
    async with db.read() as session:
        with pytest.raises(AmbiguousChannel) as ambiguous:
            await service.find(session, policy=shared, channel="C_OPS")
    assert ambiguous.value.ids == [f"INC-{second}", f"INC-{first}"]
    async with db.write() as session:
        incident = await service.find(session, policy=shared, ref=f"INC-{second}", lock=True)
        await service.apply(
            session, incident, Action.CANCEL, policy=shared, actor=ADMIN, now=LATER, reason="duplicate"
        )
    async with db.read() as session:
        assert (await service.find(session, policy=shared, channel="C_OPS")).number == first  # the live one
    async with db.write() as session:
        incident = await service.find(session, policy=shared, ref=f"INC-{first}", lock=True)
        await service.apply(
            session, incident, Action.CANCEL, policy=shared, actor=ADMIN, now=LATER, reason="x"
        )
    async with db.read() as session:  # none live: the latest
        assert (await service.find(session, policy=shared, channel="C_OPS")).number == second


# apply


async def test_acknowledge_makes_the_first_responder_commander_and_a_second_ack_is_refused(
    db: Database,
) -> None:
    number = await acknowledged(db, by=BOB)
    incident, timeline = await stored(db, number)
    assert (incident.state, incident.acknowledged_by, incident.acknowledged_at) == (
        State.INVESTIGATING,
        BOB,
        LATER,
    )
    assert (incident.commander, incident.active_since) == (BOB, LATER)
    assert entries(timeline, "ack") == [(BOB, "triage", "investigating", None)]
    async with db.write() as session:
        incident = await service.find(session, policy=POLICY, ref=f"INC-{number}", lock=True)
        with pytest.raises(AlreadyAcknowledged) as again:
            await service.apply(session, incident, Action.ACK, policy=POLICY, actor=CAROL, now=LATER)
    assert (again.value.incident_id, again.value.by, again.value.at) == (f"INC-{number}", BOB, LATER)
    incident, timeline = await stored(db, number)
    assert incident.acknowledged_by == BOB and len(entries(timeline, "ack")) == 1


async def test_an_illegal_transition_names_the_state_and_the_actions_allowed_and_changes_nothing(
    db: Database,
) -> None:
    number = await declared(db)
    async with db.write() as session:  # the refusal is caught and the transaction commits
        incident = await service.find(session, policy=POLICY, ref=f"INC-{number}", lock=True)
        with pytest.raises(IllegalTransition) as refused:
            await service.apply(session, incident, Action.CLOSE, policy=POLICY, actor=ADMIN, now=LATER)
    assert (refused.value.incident_id, refused.value.state) == (f"INC-{number}", "triage")
    assert refused.value.allowed == ["ack", "resolve", "cancel"]
    incident, timeline = await stored(db, number)
    assert (incident.state, incident.closed_at) == (State.TRIAGE, None)
    assert [e.kind for e in timeline] == ["declared", "escalation"]


async def test_only_the_commander_or_an_admin_takes_the_commanders_actions(db: Database) -> None:
    number = await acknowledged(db, by=BOB)
    async with db.write() as session:
        incident = await service.find(session, policy=POLICY, ref=f"INC-{number}", lock=True)
        for action, given in ((Action.RESOLVE, RESOLVE), (Action.CANCEL, {"reason": "false alarm"})):
            with pytest.raises(Forbidden) as refused:
                await service.apply(session, incident, action, policy=POLICY, actor=CAROL, now=LATER, **given)
            assert (refused.value.commander, refused.value.admins) == (BOB, [ADMIN])
        # anyone working on it moves it along the investigation
        await service.apply(session, incident, Action.IDENTIFY, policy=POLICY, actor=CAROL, now=LATER)
    incident, timeline = await stored(db, number)
    assert (incident.state, incident.identified_at, incident.resolved_at) == (State.IDENTIFIED, LATER, None)
    assert [e.kind for e in timeline][-1] == "identify"
    async with db.write() as session:
        incident = await service.find(session, policy=POLICY, ref=f"INC-{number}", lock=True)
        change = await service.apply(
            session, incident, Action.RESOLVE, policy=POLICY, actor=ADMIN, now=LATER, **RESOLVE
        )
    assert change.incident.state is State.RESOLVED and change.actor == ADMIN
    incident, timeline = await stored(db, number)
    assert (incident.state, incident.summary, incident.cause_code, incident.resolution_code) == (
        State.RESOLVED,
        "Restarted the pool",
        "capacity",
        "restart",
    )
    assert entries(timeline, "resolve") == [(ADMIN, "identified", "resolved", "Restarted the pool")]


@pytest.mark.parametrize(
    "given",
    [
        {**RESOLVE, "summary": "  "},
        {**RESOLVE, "cause": "gremlins"},
        {**RESOLVE, "resolution": None},
        {**RESOLVE, "summary": "x" * (service.TEXT_MAX + 1)},
    ],
)
async def test_resolve_needs_a_summary_and_known_codes(db: Database, given: dict) -> None:
    number = await acknowledged(db, by=BOB)
    async with db.write() as session:
        incident = await service.find(session, policy=POLICY, ref=f"INC-{number}", lock=True)
        with pytest.raises((InvalidInput, TooLong)):
            await service.apply(
                session, incident, Action.RESOLVE, policy=POLICY, actor=BOB, now=LATER, **given
            )
    incident, timeline = await stored(db, number)
    assert (incident.state, incident.summary) == (State.INVESTIGATING, None)
    assert entries(timeline, "resolve") == []


async def test_reopen_counts_and_keeps_time_spent_resolved_off_the_resolution_clock(db: Database) -> None:
    number = await acknowledged(db, by=BOB)
    async with db.write() as session:
        incident = await service.find(session, policy=POLICY, ref=f"INC-{number}", lock=True)
        await service.apply(session, incident, Action.RESOLVE, policy=POLICY, actor=BOB, now=LATER, **RESOLVE)
    async with db.write() as session:
        incident = await service.find(session, policy=POLICY, ref=f"INC-{number}", lock=True)
        with pytest.raises(InvalidInput):
            await service.apply(session, incident, Action.REOPEN, policy=POLICY, actor=BOB, now=LATER)
        await service.apply(
            session,
            incident,
            Action.REOPEN,
            policy=POLICY,
            actor=BOB,
            now=LATER + timedelta(hours=2),
            reason="errors are back",
        )
    incident, timeline = await stored(db, number)
    assert (incident.state, incident.resolved_at, incident.reopen_count) == (State.INVESTIGATING, None, 1)
    assert incident.resolution_paused_seconds == 2 * 3600
    assert entries(timeline, "reopen") == [(BOB, "resolved", "investigating", "errors are back")]


# priority, roles, updates and notes


async def test_priority_change_by_the_commander_is_recorded(db: Database) -> None:
    number = await acknowledged(db, by=BOB)
    async with db.write() as session:
        incident = await service.find(session, policy=POLICY, ref=f"INC-{number}", lock=True)
        with pytest.raises(Forbidden):
            await service.change_priority(session, incident, "P1", policy=POLICY, actor=CAROL, now=LATER)
        with pytest.raises(InvalidInput):
            await service.change_priority(session, incident, "P3", policy=POLICY, actor=BOB, now=LATER)
        with pytest.raises(InvalidInput):
            await service.change_priority(session, incident, "P0", policy=POLICY, actor=BOB, now=LATER)
        change = await service.change_priority(session, incident, "p1", policy=POLICY, actor=BOB, now=LATER)
    assert change.incident.priority == "P1"
    incident, timeline = await stored(db, number)
    assert incident.priority == "P1"
    assert entries(timeline, "priority") == [(BOB, "P3", "P1", None)]


async def test_priority_is_fixed_once_resolved(db: Database) -> None:
    number = await acknowledged(db, by=BOB)
    async with db.write() as session:
        incident = await service.find(session, policy=POLICY, ref=f"INC-{number}", lock=True)
        await service.apply(session, incident, Action.RESOLVE, policy=POLICY, actor=BOB, now=LATER, **RESOLVE)
        with pytest.raises(IllegalTransition) as refused:
            await service.change_priority(session, incident, "P1", policy=POLICY, actor=BOB, now=LATER)
    assert refused.value.state == "resolved"
    assert (await stored(db, number))[0].priority == "P3"


async def test_assign_sets_a_role_and_records_who_had_it(db: Database) -> None:
    number = await acknowledged(db, by=BOB)
    async with db.write() as session:
        incident = await service.find(session, policy=POLICY, ref=f"INC-{number}", lock=True)
        await service.assign(session, incident, "Comms", CAROL, policy=POLICY, actor=BOB, now=LATER)
        await service.assign(session, incident, "commander", CAROL, policy=POLICY, actor=ADMIN, now=LATER)
        with pytest.raises(Forbidden):  # Bob is no longer the commander
            await service.assign(session, incident, "scribe", BOB, policy=POLICY, actor=BOB, now=LATER)
        with pytest.raises(InvalidInput) as unknown:
            await service.assign(session, incident, "chef", BOB, policy=POLICY, actor=CAROL, now=LATER)
    assert unknown.value.choices == ["commander", "comms", "scribe"]
    incident, timeline = await stored(db, number)
    assert (incident.commander, incident.comms, incident.scribe) == (CAROL, CAROL, None)
    assert entries(timeline, "role") == [(BOB, None, CAROL, "comms"), (ADMIN, BOB, CAROL, "commander")]


async def test_updates_and_notes_go_on_the_timeline(db: Database) -> None:
    number = await acknowledged(db, by=BOB)
    async with db.write() as session:
        incident = await service.find(session, policy=POLICY, ref=f"INC-{number}", lock=True)
        await service.post_update(session, incident, " Fix deploying ", policy=POLICY, actor=BOB, now=LATER)
        await service.add_note(
            session, incident, "Saw it on the dashboard", policy=POLICY, actor=CAROL, now=LATER
        )
        for empty in (service.post_update, service.add_note):
            with pytest.raises(InvalidInput):
                await empty(session, incident, " ", policy=POLICY, actor=BOB, now=LATER)
        with pytest.raises(TooLong) as long:
            await service.post_update(session, incident, "x" * 2001, policy=POLICY, actor=BOB, now=LATER)
    assert (long.value.length, long.value.limit) == (2001, service.TEXT_MAX)
    incident, timeline = await stored(db, number)
    assert incident.last_update_at == LATER
    assert entries(timeline, "update") == [(BOB, None, None, "Fix deploying")]
    assert entries(timeline, "note") == [(CAROL, None, None, "Saw it on the dashboard")]


async def test_a_closed_incident_takes_notes_but_no_updates_or_roles(db: Database) -> None:
    number = await acknowledged(db, by=BOB)
    async with db.write() as session:
        incident = await service.find(session, policy=POLICY, ref=f"INC-{number}", lock=True)
        await service.apply(session, incident, Action.RESOLVE, policy=POLICY, actor=BOB, now=LATER, **RESOLVE)
        await service.apply(session, incident, Action.CLOSE, policy=POLICY, actor=BOB, now=LATER)
    async with db.write() as session:
        incident = await service.find(session, policy=POLICY, ref=f"INC-{number}", lock=True)
        with pytest.raises(IllegalTransition):
            await service.post_update(session, incident, "late news", policy=POLICY, actor=BOB, now=LATER)
        with pytest.raises(IllegalTransition):
            await service.assign(session, incident, "scribe", CAROL, policy=POLICY, actor=BOB, now=LATER)
        await service.add_note(session, incident, "Postmortem booked", policy=POLICY, actor=BOB, now=LATER)
    incident, timeline = await stored(db, number)
    assert (incident.state, incident.closed_at, incident.last_update_at, incident.scribe) == (
        State.CLOSED,
        LATER,
        None,
        None,
    )
    assert [e.kind for e in timeline] == ["declared", "escalation", "ack", "resolve", "close", "note"]


async def test_list_open_leaves_out_what_is_done(db: Database) -> None:
    low = await declared(db, priority="P4")
    high = await declared(db, priority="P1")
    done = await declared(db)
    async with db.write() as session:
        incident = await service.find(session, policy=POLICY, ref=f"INC-{done}", lock=True)
        await service.apply(
            session, incident, Action.CANCEL, policy=POLICY, actor=ADMIN, now=LATER, reason="test"
        )
    async with db.read() as session:
        assert [i.number for i in await service.list_open(session)] == [high, low]  # most urgent first
        assert await service.count_open(session) == 2
