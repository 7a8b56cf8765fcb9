"""store/browse.py on both stores: the incident list (each filter narrowing it, words through the
full-text index and in open incidents, days in app.yaml's timezone, pages), the CSV export, an incident's
page, and the knowledge base (its filters, an entry's similar incidents)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.config import load_policy
from store import actions, browse, service
from store.browse import Filters
from store.db import Database
from store.errors import NotFound
from store.machine import Action
from store.models import State
from store.policy import Policy

ROOT = Path(__file__).resolve().parent.parent
POLICY = load_policy(ROOT / "app.yaml")
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
ADMIN, ALICE, BOB = "U0123ADMIN", "U_ALICE", "U_BOB"


async def declared(db: Database, title: str, *, at: datetime, **given: Any) -> int:
    async with db.write() as session:
        change = await service.declare(session, policy=POLICY, title=title, reporter=ALICE, now=at, **given)
        return change.incident.number


async def applied(db: Database, number: int, action: Action, *, at: datetime, **given: Any) -> None:
    """`action` by Bob, who becomes the commander by acknowledging (the admin cancels)."""
    actor = ADMIN if action is Action.CANCEL else BOB
    async with db.write() as session:
        incident = await service.find(session, policy=POLICY, ref=f"INC-{number}", lock=True)
        await service.apply(session, incident, action, policy=POLICY, actor=actor, now=at, **given)


async def resolved(
    db: Database, number: int, *, at: datetime, summary: str, cause: str, resolution: str
) -> None:
    await applied(db, number, Action.ACK, at=at + timedelta(minutes=5))
    await applied(
        db,
        number,
        Action.RESOLVE,
        at=at + timedelta(hours=1),
        summary=summary,
        cause=cause,
        resolution=resolution,
    )


@dataclass
class Seen:
    disk: int  # P1 database, resolved
    checkout: int  # P3 application, closed
    latency: int  # P3 hardware, open
    network: int  # P4 network, cancelled


@pytest.fixture
async def seen(db: Database) -> Seen:
    disk = await declared(
        db, "Database disk full", at=NOW - timedelta(days=3), priority="P1", category="database"
    )
    await resolved(
        db,
        disk,
        at=NOW - timedelta(days=3),
        summary="Grew the volume",
        cause="capacity",
        resolution="capacity-added",
    )
    checkout = await declared(
        db, "Checkout 502 errors", at=NOW - timedelta(days=2), priority="P3", category="application"
    )
    await resolved(
        db,
        checkout,
        at=NOW - timedelta(days=2),
        summary="Rolled back the deploy",
        cause="application-error",
        resolution="rollback",
    )
    await applied(db, checkout, Action.CLOSE, at=NOW - timedelta(days=1))
    latency = await declared(
        db, "Disk latency on search", at=NOW - timedelta(days=1), priority="P3", category="hardware"
    )
    network = await declared(db, "Network flaps", at=NOW, priority="P4", category="network")
    await applied(db, network, Action.CANCEL, at=NOW, reason="monitoring glitch")
    return Seen(disk=disk, checkout=checkout, latency=latency, network=network)


async def listed(db: Database, policy: Policy = POLICY, **given: Any) -> list[int]:
    async with db.read() as session:
        listing = await browse.incidents(session, Filters(**given), policy=policy)
    assert listing.total == len(listing.rows)
    return [incident.number for incident in listing.rows]


async def test_every_incident_newest_first_without_filters(db: Database, seen: Seen) -> None:
    assert await listed(db) == [seen.network, seen.latency, seen.checkout, seen.disk]


async def test_each_filter_narrows_the_list(db: Database, seen: Seen) -> None:
    assert await listed(db, states=(State.RESOLVED, State.CLOSED)) == [seen.checkout, seen.disk]
    assert await listed(db, priorities=("P3",)) == [seen.latency, seen.checkout]
    assert await listed(db, categories=("network", "database")) == [seen.network, seen.disk]
    assert await listed(db, since=(NOW - timedelta(days=2)).date()) == [
        seen.network,
        seen.latency,
        seen.checkout,
    ]
    assert await listed(db, until=(NOW - timedelta(days=2)).date()) == [seen.checkout, seen.disk]
    assert await listed(db, since=date(2026, 11, 20), until=date(2026, 11, 20)) == [seen.checkout]
    assert await listed(db, priorities=("P3",), states=(State.TRIAGE,)) == [seen.latency]
    assert await listed(db, priorities=("P2",)) == []


async def test_words_match_the_title_and_summary_of_every_state(db: Database, seen: Seen) -> None:
    assert await listed(db, words="disk") == [seen.latency, seen.disk]  # open, and resolved (indexed)
    assert await listed(db, words="DISK full") == [seen.disk]  # every word
    assert await listed(db, words="rolled") == [seen.checkout]  # a summary
    assert await listed(db, words="glitch") == []  # a cancel's reason is no summary
    assert await listed(db, words="flaps") == [seen.network]
    assert await listed(db, words="disk", states=(State.TRIAGE,)) == [seen.latency]
    assert [row[0] for row in (await exported(db, Filters(words="disk")))[1:]] == [
        f"INC-{seen.latency}",
        f"INC-{seen.disk}",
    ]
    assert await listed(db, words="% _ !") == [
        seen.network,
        seen.latency,
        seen.checkout,
        seen.disk,
    ]  # no words


async def test_words_find_the_same_when_many_incidents_have_them(
    db: Database, seen: Seen, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(browse, "GATHERED", 0)  # walked in the list's order, each incident tested

    assert await listed(db, words="disk") == [seen.latency, seen.disk]
    assert await listed(db, words="DISK full") == [seen.disk]
    assert await kb(db, words="volume") == [seen.disk]
    assert [row[0] for row in (await exported(db, Filters(words="disk")))[1:]] == [
        f"INC-{seen.latency}",
        f"INC-{seen.disk}",
    ]


async def test_days_are_app_yamls_timezones(db: Database) -> None:
    late_evening = await declared(db, "Late in New York", at=datetime(2026, 11, 20, 3, 0, tzinfo=UTC))
    new_york = replace(POLICY, timezone=ZoneInfo("America/New_York"))
    that_day = {"since": date(2026, 11, 19), "until": date(2026, 11, 19)}

    assert await listed(db, new_york, **that_day) == [late_evening]
    assert await listed(db, **that_day) == []  # in UTC it was the 20th
    assert await listed(db, since=date(2026, 11, 20)) == [late_evening]


async def test_pages(db: Database, seen: Seen) -> None:
    async def page(number: int) -> browse.Listing:
        async with db.read() as session:
            return await browse.incidents(session, Filters(page=number, per_page=3), policy=POLICY)

    first, second, beyond = await page(1), await page(2), await page(3)

    assert [i.number for i in first.rows] == [seen.network, seen.latency, seen.checkout]
    assert [i.number for i in second.rows] == [seen.disk]
    assert (first.total, first.page, first.pages) == (4, 1, 2)
    assert (second.page, beyond.rows, beyond.total) == (2, [], 4)
    async with db.read() as session:
        odd = await browse.incidents(session, Filters(page=0, per_page=10_000), policy=POLICY)
    assert (odd.page, odd.pages, len(odd.rows)) == (1, 1, 4)


async def exported(db: Database, filters: Filters | None = None) -> list[list[str]]:
    async with db.read() as session:
        return [row async for row in browse.export(session, filters or Filters(), policy=POLICY)]


async def test_the_export_has_its_header_then_a_row_per_incident(db: Database, seen: Seen) -> None:
    rows = await exported(db, Filters(states=(State.RESOLVED,), page=2, per_page=1))  # every page

    assert rows[0] == [
        *("id", "title", "priority", "state", "category", "declared", "acknowledged", "resolved", "closed"),
        *("commander", "cause", "resolution", "MTTA seconds", "MTTR seconds"),
    ]
    declared_at = NOW - timedelta(days=3)
    assert rows[1:] == [
        [
            f"INC-{seen.disk}",
            "Database disk full",
            "P1",
            "resolved",
            "database",
            declared_at.isoformat(),
            (declared_at + timedelta(minutes=5)).isoformat(),
            (declared_at + timedelta(hours=1)).isoformat(),
            "",
            BOB,
            "capacity",
            "capacity-added",
            "300.0",
            "3600.0",
        ]
    ]


async def test_export_cells_read_as_people_read_them_and_are_never_formulas(db: Database) -> None:
    await declared(db, "=HYPERLINK(&quot;x&quot;) R&amp;D", at=NOW)

    (row,) = (await exported(db))[1:]

    assert row[1] == "'=HYPERLINK(&quot;x&quot;) R&D"
    assert row[7:9] == ["", ""] and row[12:] == ["", ""]


async def test_the_export_reads_in_batches_in_the_lists_order(
    db: Database, seen: Seen, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(browse, "EXPORT_BATCH", 2)
    same_moment = await declared(db, "Same moment", at=NOW)  # ties with the cancelled one: by number

    ids = [row[0] for row in (await exported(db))[1:]]

    numbers = [same_moment, seen.network, seen.latency, seen.checkout, seen.disk]
    assert ids == [f"INC-{n}" for n in numbers]


async def test_an_open_incidents_page(db: Database, seen: Seen) -> None:
    async with db.write() as session:
        incident = await service.find(session, policy=POLICY, ref=f"INC-{seen.latency}", lock=True)
        await service.add_note(session, incident, "iostat shows 100%", policy=POLICY, actor=BOB, now=NOW)
        await actions.add(
            session,
            incident,
            owner=BOB,
            text="Add a disk alert",
            due=date(2026, 11, 21),
            policy=POLICY,
            actor=BOB,
            now=NOW - timedelta(days=1),
        )

    async with db.read() as session:
        page = await browse.incident_page(session, seen.latency, policy=POLICY, now=NOW - timedelta(hours=1))

    assert page.incident.title == "Disk latency on search"
    assert [e.kind for e in page.timeline] == ["declared", "escalation", "action", "note"]
    assert [(a.item.text, a.done, a.overdue) for a in page.actions] == [("Add a disk alert", False, True)]
    assert page.level_name == "Service desk"
    assert (page.response.state, page.resolution.state) == ("breached", "at_risk")  # 2h and 24h, 23h on
    assert [m.name for m in page.milestones] == ["Declared"]
    assert [r.clock for r in page.sla] == ["response", "resolution"]
    assert page.review is None  # not resolved yet


async def test_a_resolved_incidents_page_carries_the_review(db: Database, seen: Seen) -> None:
    async with db.read() as session:
        page = await browse.incident_page(session, seen.disk, policy=POLICY, now=NOW)
        with pytest.raises(NotFound):
            await browse.incident_page(session, 999, policy=POLICY, now=NOW)

    assert page.review is not None
    assert [m.name for m in page.review.milestones] == ["Declared", "Acknowledged", "Resolved"]
    assert page.timeline == page.review.timeline
    assert [r.met for r in page.sla] == [True, True]
    assert (page.response.state, page.resolution.state) == ("met", "met")


async def kb(db: Database, **given: Any) -> list[int]:
    async with db.read() as session:
        return [incident.number for incident in (await browse.knowledge(session, **given)).rows]


async def test_the_knowledge_base_lists_resolved_and_closed_incidents_by_its_filters(
    db: Database, seen: Seen
) -> None:
    assert await kb(db) == [seen.checkout, seen.disk]  # most recently resolved first
    assert await kb(db, words="volume") == [seen.disk]
    assert await kb(db, words="disk") == [seen.disk]  # never the open one
    assert await kb(db, cause="application-error") == [seen.checkout]
    assert await kb(db, resolution="capacity-added") == [seen.disk]
    assert await kb(db, category="application") == [seen.checkout]
    assert await kb(db, category="application", cause="capacity") == []
    async with db.read() as session:
        second = await browse.knowledge(session, page=2, per_page=1)
    assert ([i.number for i in second.rows], second.total, second.pages) == ([seen.disk], 2, 2)


async def test_a_knowledge_base_entry_shows_similar_incidents_but_itself(db: Database, seen: Seen) -> None:
    again = await declared(db, "Database disk full again", at=NOW - timedelta(hours=5), category="database")
    await resolved(
        db,
        again,
        at=NOW - timedelta(hours=5),
        summary="Grew it more",
        cause="capacity",
        resolution="capacity-added",
    )
    async with db.write() as session:
        incident = await service.find(session, policy=POLICY, ref=f"INC-{seen.disk}", lock=True)
        await service.pir_done(
            session, incident, "https://wiki.example/pir-1", policy=POLICY, actor=BOB, now=NOW
        )

    async with db.read() as session:
        entry = await browse.kb_entry(session, seen.disk, policy=POLICY, now=NOW)
        with pytest.raises(NotFound):
            await browse.kb_entry(session, seen.latency, policy=POLICY, now=NOW)  # still open

    assert [i.number for i in entry.similar] == [again]
    assert (entry.review_done, entry.pir_link) == (True, "https://wiki.example/pir-1")
    assert entry.incident.summary == "Grew the volume"
    assert entry.actions == []
