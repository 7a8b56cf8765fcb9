"""What the web view's incident list, incident pages and knowledge base read.

A listing is filtered in SQL and read a page at a time, each through an index: by state, by priority or
category with the declaration time, by declaration or resolution time alone, or through the full-text
search (see _Search). A page is its incident, its timeline, its action items and the review's facts.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, or_, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from store import actions, dialect, pir, service, timers
from store import knowledge as kb
from store.dashboard import Clock, clock, level_name
from store.errors import NotFound
from store.models import ActionItem, Incident, State, TimelineEntry
from store.policy import Policy
from store.text import decode

PER_PAGE_MAX = 200
EXPORT_BATCH = 1000  # rows read per statement while exporting
GATHERED = 2000  # a search with at most this many matches gathers them all, then orders them (_Search)
SIMILAR_SHOWN = 5
TIMELINE_SHOWN = 5000  # as the review's (store/pir.py)
DONE = (State.RESOLVED, State.CLOSED)
NOT_DONE = tuple(state for state in State if state not in DONE)
HEADER = [
    *("id", "title", "priority", "state", "category", "declared", "acknowledged", "resolved", "closed"),
    *("commander", "cause", "resolution", "MTTA seconds", "MTTR seconds"),
]
_FORMULA = ("=", "+", "-", "@", "\t", "\r")  # a spreadsheet runs a cell starting so as a formula


@dataclass(frozen=True)
class Filters:
    """What the list shows: every filter given narrows it (an empty one does not filter). `since` and
    `until` are days in app.yaml's timezone, both included."""

    states: tuple[State, ...] = ()
    priorities: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    since: date | None = None
    until: date | None = None
    words: str = ""
    page: int = 1
    per_page: int = 50


@dataclass(frozen=True)
class Listing:
    rows: list[Incident]
    total: int  # matching, on every page
    page: int
    pages: int  # at least 1


@dataclass(frozen=True)
class ActionState:
    item: ActionItem
    done: bool
    overdue: bool  # open past the end of its due day, in app.yaml's timezone


@dataclass(frozen=True)
class IncidentPage:
    incident: Incident
    level_name: str | None  # the escalation level paged, by policy.escalation_levels' name
    response: Clock
    resolution: Clock
    timeline: list[TimelineEntry]  # the visible timeline, in time order (store/timeline.py)
    actions: list[ActionState]
    milestones: list[pir.Milestone]
    sla: list[pir.SlaResult]
    review: pir.PirFacts | None  # the review draft's facts, once resolved or closed; None before


@dataclass(frozen=True)
class KbEntry:
    incident: Incident
    similar: list[Incident]  # other resolved or closed incidents like it, best match first
    review_done: bool
    pir_link: str | None
    actions: list[ActionState]


def _start_of(day: date, policy: Policy) -> datetime:
    return datetime.combine(day, datetime.min.time(), tzinfo=policy.timezone).astimezone(UTC)


@dataclass(frozen=True)
class _Search:
    """Which incidents a listing holds, and in which order (newest `by` first, then highest number).

    Words are looked up through the full-text index for resolved and closed incidents, the only ones it
    holds, and by substring for the others, found through the state index. Which plan is quick depends
    on how many incidents have the words, which the planners cannot tell: walking the list's order and
    testing each incident stops soon when many do, but reads the whole table when few do; gathering the
    matches first, then ordering them, costs as many as there are. A listing counts its matches first,
    so it knows which to ask for."""

    where: list[ColumnElement[bool]]
    terms: list[str]  # words each must have (store/knowledge.py's); none: no search
    by: str  # "declared_at" or "resolved_at"
    others: bool = True  # incidents neither resolved nor closed may match the words

    def source(
        self, session: AsyncSession, *columns: Any, gather: bool = False
    ) -> tuple[Select[Any], Any, Any]:
        """A SELECT of `columns` of the incidents found, and the two columns to order it by."""
        if not (self.terms and gather):
            query = select(*columns).where(*self.where, *self._words(session))
            return query, getattr(Incident, self.by), Incident.number
        found = self._found(session)
        query = select(*columns).join(found, found.c.number == Incident.number)
        return query, found.c[self.by], found.c.number

    def count(self, session: AsyncSession) -> Select[Any]:
        if not self.terms:
            return select(func.count()).select_from(Incident).where(*self.where)
        return select(func.count()).select_from(self._found(session))

    def _parts(self, session: AsyncSession) -> list[list[ColumnElement[bool]]]:
        """The conditions on done incidents (the full-text index) and on the others (substrings)."""
        parts = [[dialect.matches_done(session, self.terms)]]
        if self.others:
            substrings = [
                or_(
                    Incident.title.icontains(t, autoescape=True),
                    Incident.summary.icontains(t, autoescape=True),
                )
                for t in self.terms
            ]
            parts.append([Incident.state.in_(NOT_DONE), *substrings])
        return parts

    def _words(self, session: AsyncSession) -> list[ColumnElement[bool]]:
        return [or_(*(and_(*part) for part in self._parts(session)))] if self.terms else []

    def _found(self, session: AsyncSession) -> Any:
        """The matches, gathered by each part's index before anything orders them: MATERIALIZED keeps
        a planner from walking the list's order instead."""
        columns = (Incident.number, Incident.declared_at, Incident.resolved_at)
        parts = [select(*columns).where(*self.where, *part) for part in self._parts(session)]
        gathered = parts[0] if len(parts) == 1 else union_all(*parts)
        return gathered.cte("found").prefix_with("MATERIALIZED")


def _search(filters: Filters, policy: Policy) -> _Search:
    where: list[ColumnElement[bool]] = []
    if filters.states:
        where.append(Incident.state.in_(filters.states))
    if filters.priorities:
        where.append(Incident.priority.in_(filters.priorities))
    if filters.categories:
        where.append(Incident.category.in_(filters.categories))
    if filters.since is not None:
        where.append(Incident.declared_at >= _start_of(filters.since, policy))
    if filters.until is not None and filters.until < date.max:
        where.append(Incident.declared_at < _start_of(filters.until + timedelta(days=1), policy))
    return _Search(where=where, terms=kb.words(filters.words), by="declared_at")


async def _listing(session: AsyncSession, search: _Search, page: int, per_page: int) -> Listing:
    """One page of what `search` finds, with the count of all it finds."""
    per_page = max(1, min(per_page, PER_PAGE_MAX))
    page = max(1, page)
    total = int(await session.scalar(search.count(session)) or 0)
    query, key, number = search.source(session, Incident, gather=total <= GATHERED)
    ordered = query.order_by(key.desc(), number.desc()).offset((page - 1) * per_page).limit(per_page)
    rows = list(await session.scalars(ordered))
    return Listing(rows=rows, total=total, page=page, pages=max(1, math.ceil(total / per_page)))


async def incidents(session: AsyncSession, filters: Filters, *, policy: Policy) -> Listing:
    """The incidents the filters leave, newest declared first."""
    return await _listing(session, _search(filters, policy), filters.page, filters.per_page)


_EXPORTED = (
    *(Incident.number, Incident.title, Incident.priority, Incident.state, Incident.category),
    *(Incident.declared_at, Incident.acknowledged_at, Incident.resolved_at, Incident.closed_at),
    *(Incident.commander, Incident.cause_code, Incident.resolution_code, Incident.resolution_paused_seconds),
)


async def export(session: AsyncSession, filters: Filters, *, policy: Policy) -> AsyncIterator[list[str]]:
    """Every incident the filters leave (all pages), newest first, as CSV rows after the HEADER row; read
    EXPORT_BATCH rows a statement, each batch after the last row of the one before."""
    yield HEADER
    search = _search(filters, policy)
    gather = bool(search.terms) and int(await session.scalar(search.count(session)) or 0) <= GATHERED
    query, key, number = search.source(session, *_EXPORTED, gather=gather)
    query = query.order_by(key.desc(), number.desc()).limit(EXPORT_BATCH)
    after: list[ColumnElement[bool]] = []
    while True:
        batch = list(await session.execute(query.where(*after)))
        for row in batch:
            yield _csv_row(row, policy)
        if len(batch) < EXPORT_BATCH:
            return
        last = batch[-1]
        moment = getattr(last, search.by)
        after = [or_(key < moment, and_(key == moment, number < last.number))]


def _csv_row(row: Any, policy: Policy) -> list[str]:
    """Cells as a person reads them (Slack's `&amp;` decoded); text that a spreadsheet would run as a
    formula is quoted with a leading apostrophe."""
    mtta = _seconds(row.acknowledged_at, row.declared_at)
    mttr = _seconds(row.resolved_at, row.declared_at, paused=row.resolution_paused_seconds)
    return [
        policy.public_id(row.number),
        _cell(decode(row.title)),
        row.priority,
        row.state.value,
        _cell(row.category),
        *(_time(row.declared_at), _time(row.acknowledged_at), _time(row.resolved_at), _time(row.closed_at)),
        row.commander or "",
        _cell(row.cause_code or ""),
        _cell(row.resolution_code or ""),
        "" if mtta is None else str(mtta),
        "" if mttr is None else str(mttr),
    ]


def _cell(text: str) -> str:
    return f"'{text}" if text.startswith(_FORMULA) else text


def _time(moment: datetime | None) -> str:
    return "" if moment is None else moment.isoformat()


def _seconds(later: datetime | None, earlier: datetime, *, paused: int | None = 0) -> float | None:
    """As store/metrics.py counts them: the resolution leaves out the time spent resolved before a reopen."""
    if later is None:
        return None
    return round((later - earlier).total_seconds() - (paused or 0), 1)


def _states(items: list[ActionItem], *, policy: Policy, now: datetime) -> list[ActionState]:
    return [
        ActionState(
            item=item,
            done=item.done_at is not None,
            overdue=item.done_at is None and timers.overdue_from(item, policy=policy) <= now,
        )
        for item in items
    ]


async def _incident(session: AsyncSession, number: int, *, policy: Policy) -> Incident:
    found = await session.get(Incident, number)
    if found is None:
        raise NotFound(ref=policy.public_id(number))
    return found


async def incident_page(session: AsyncSession, number: int, *, policy: Policy, now: datetime) -> IncidentPage:
    """Everything an incident's page shows; NotFound for a number no incident has."""
    incident = await _incident(session, number, policy=policy)
    review = None
    if incident.state in DONE:  # the review's facts hold the timeline and the action items already
        review = await pir.gather(session, incident, policy=policy)
        entries, items = review.timeline, review.actions
    else:
        entries = await service.timeline(session, incident, limit=TIMELINE_SHOWN)
        items = await actions.of_incident(session, incident)
    return IncidentPage(
        incident=incident,
        level_name=level_name(incident.escalation_level, policy),
        response=clock(incident, "response", policy=policy, now=now),
        resolution=clock(incident, "resolution", policy=policy, now=now),
        timeline=entries,
        actions=_states(items, policy=policy, now=now),
        milestones=pir.milestones(incident),
        sla=pir.sla_results(incident, policy=policy),
        review=review,
    )


async def knowledge(
    session: AsyncSession,
    *,
    words: str = "",
    cause: str | None = None,
    resolution: str | None = None,
    category: str | None = None,
    page: int = 1,
    per_page: int = 25,
) -> Listing:
    """Resolved and closed incidents, most recently resolved first: those whose title or resolution
    summary has every word of `words`, with these codes and category when given."""
    where: list[ColumnElement[bool]] = [Incident.state.in_(DONE)]
    for column, wanted in (
        (Incident.cause_code, cause),
        (Incident.resolution_code, resolution),
        (Incident.category, category),
    ):
        if wanted is not None:
            where.append(column == wanted)
    search = _Search(where=where, terms=kb.words(words), by="resolved_at", others=False)
    return await _listing(session, search, page, per_page)


async def kb_entry(session: AsyncSession, number: int, *, policy: Policy, now: datetime) -> KbEntry:
    """A resolved or closed incident as the knowledge base shows it; NotFound for any other number."""
    incident = await _incident(session, number, policy=policy)
    if incident.state not in DONE:
        raise NotFound(ref=policy.public_id(number))
    alike = await kb.similar(session, incident.title, limit=SIMILAR_SHOWN + 1)
    items = await actions.of_incident(session, incident)
    return KbEntry(
        incident=incident,
        similar=[other for other in alike if other.number != incident.number][:SIMILAR_SHOWN],
        review_done=incident.pir_done_at is not None,
        pir_link=incident.pir_link,
        actions=_states(items, policy=policy, now=now),
    )
