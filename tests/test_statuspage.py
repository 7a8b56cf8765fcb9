"""store/statuspage.py on both stores: keeping an incident off the status page and back (who may, the
timeline, the change), and what the page shows: open incidents not kept off it, their latest stakeholder
update, and nothing about people, channels or the timeline."""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.config import load_policy
from store import service, statuspage
from store.db import Database
from store.errors import Forbidden, InvalidInput
from store.machine import Action
from store.models import Incident, State
from store.statuspage import PublicIncident, StatusPageHidden, StatusPageShown

ROOT = Path(__file__).resolve().parent.parent
POLICY = load_policy(ROOT / "app.yaml")
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
ADMIN, ALICE, BOB, CAROL = "U0123ADMIN", "U_ALICE", "U_BOB", "U_CAROL"


async def declared(db: Database, title: str, *, priority: str = "P3", ago: timedelta = timedelta()) -> int:
    async with db.write() as session:
        change = await service.declare(
            session, policy=POLICY, title=title, priority=priority, reporter=ALICE, now=NOW - ago
        )
        await service.apply(session, change.incident, Action.ACK, policy=POLICY, actor=BOB, now=NOW - ago)
        return change.incident.number


async def hidden(
    db: Database, number: int, *, hide: bool = True, actor: str = BOB
) -> statuspage.StatusPageChange:
    async with db.write() as session:
        incident = await service.find(session, policy=POLICY, ref=f"INC-{number}", lock=True)
        return await statuspage.set_hidden(
            session, incident, hidden=hide, policy=POLICY, actor=actor, now=NOW
        )


async def shown(db: Database) -> list[PublicIncident]:
    async with db.read() as session:
        return await statuspage.public(session, now=NOW)


async def test_hiding_an_incident_keeps_it_off_the_page_until_it_is_shown_again(db: Database) -> None:
    number = await declared(db, "Checkout down", priority="P1")
    other = await declared(db, "Slow search")

    change = await hidden(db, number)
    assert isinstance(change, StatusPageHidden) and change.hidden and change.kind == "status_page_hidden"
    assert [row.number for row in await shown(db)] == [other]

    again = await hidden(db, number, hide=False, actor=ADMIN)
    assert isinstance(again, StatusPageShown) and not again.hidden and again.actor == ADMIN
    assert [row.number for row in await shown(db)] == [number, other]

    async with db.read() as session:
        incident = await session.get(Incident, number)
        assert incident is not None and incident.status_hidden is False
        timeline = await service.timeline(session, incident)
    assert [(e.kind, e.actor, e.from_value, e.to_value) for e in timeline[-2:]] == [
        ("status_page_hidden", BOB, "shown", "hidden"),
        ("status_page_shown", ADMIN, "hidden", "shown"),
    ]


async def test_only_the_commander_the_comms_lead_or_an_admin_may_hide_an_incident(db: Database) -> None:
    number = await declared(db, "Checkout down")
    with pytest.raises(Forbidden) as refused:
        await hidden(db, number, actor=CAROL)
    assert (refused.value.commander, refused.value.owner_role) == (BOB, "comms lead")

    async with db.write() as session:
        incident = await service.find(session, policy=POLICY, ref=f"INC-{number}", lock=True)
        await service.assign(session, incident, "comms", CAROL, policy=POLICY, actor=BOB, now=NOW)
    await hidden(db, number, actor=CAROL)

    with pytest.raises(InvalidInput) as twice:
        await hidden(db, number)
    assert twice.value.problem == f"INC-{number} is off the status page already"
    async with db.read() as session:
        incident = await session.get(Incident, number)
        assert incident is not None
        assert [e.kind for e in await service.timeline(session, incident)].count("status_page_hidden") == 1


async def test_the_page_shows_open_incidents_with_their_latest_update_and_nothing_else(db: Database) -> None:
    number = await declared(db, "Checkout down", priority="P1", ago=timedelta(hours=1))
    quiet = await declared(db, "Slow search", priority="P2")
    done = await declared(db, "Gone already", priority="P1")
    async with db.write() as session:
        incident = await service.find(session, policy=POLICY, ref=f"INC-{number}", lock=True)
        for minutes, text in (
            (40, "Looking into it"),
            (20, "<@U_BOB> rolled back in <#C123|inc-1> &amp; R&amp;D"),
        ):
            at = NOW - timedelta(minutes=minutes)
            await service.post_update(session, incident, text, policy=POLICY, actor=BOB, now=at)
        await service.add_note(session, incident, "private note", policy=POLICY, actor=BOB, now=NOW)
        gone = await service.find(session, policy=POLICY, ref=f"INC-{done}", lock=True)
        summary = {"summary": "Fixed", "cause": "capacity", "resolution": "restart"}
        await service.apply(session, gone, Action.RESOLVE, policy=POLICY, actor=BOB, now=NOW, **summary)

    rows = await shown(db)

    assert {f.name for f in fields(PublicIncident)} == {
        *("number", "title", "priority", "state", "declared_at", "update", "updated_at"),
    }
    assert rows == [
        PublicIncident(
            number=number,
            title="Checkout down",
            priority="P1",
            state=State.INVESTIGATING,
            declared_at=NOW - timedelta(hours=1),
            update="someone rolled back in a channel &amp; R&amp;D",
            updated_at=NOW - timedelta(minutes=20),
        ),
        PublicIncident(
            number=quiet,
            title="Slow search",
            priority="P2",
            state=State.INVESTIGATING,
            declared_at=NOW,
            update=None,
            updated_at=None,
        ),
    ]


def test_an_update_keeps_links_and_here_but_names_nobody() -> None:
    text = "<!subteam^S1|@sre> and <@U1|alice>: see <https://status.example/x?a=1&amp;b=2|the graph> <!here> 1 &lt; 2"
    assert statuspage.anonymous(text) == (
        "a team and someone: see <https://status.example/x?a=1&amp;b=2|the graph> <!here> 1 &lt; 2"
    )
