"""The web view's pages: the dashboard, incidents, reports, the knowledge base and the status page.
Each reads the store in one read transaction and renders one template of templates/web; user text is
escaped there (autoescape), after being turned from Slack's encoding into what a person reads."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Awaitable, Callable, Iterable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from jinja2 import Environment
from markdown_it import MarkdownIt
from markupsafe import Markup

from handlers import reports, text
from handlers.deps import Deps, names_in_time
from handlers.render import describe_entry, duration
from handlers.web import WEB, render
from handlers.web.auth import WEB_TEMPLATES
from handlers.web.charts import Series, bar_chart, line_chart, time_unit
from handlers.web.live import Live
from store import browse, dashboard, health, metrics, statuspage
from store.errors import NotFound
from store.models import State
from store.policy import PRIORITIES

STATIC = WEB_TEMPLATES / "static"
WINDOWS = (7, 30, 90)  # the report page's windows, in days
LONGEST = 3660  # days: a chosen range longer than this is a typo
NAMES_WAIT = 1.0  # seconds a page waits for display names before it shows ids
_MARKDOWN = MarkdownIt("commonmark", {"html": False}).enable("table")  # raw HTML in a draft is shown as text
_REF = re.compile(r"([A-Za-z][A-Za-z0-9]*)-(\d{1,9})")
_STATIC_TYPES = {".css": "text/css", ".js": "text/javascript"}


def routes(deps: Deps, live: Live) -> list[web.RouteDef]:
    """Every page, for handlers.web.install to put behind the sign-in guard."""

    def page(handler: Callable[[Deps, web.Request], Awaitable[web.StreamResponse]]) -> Any:
        async def run(request: web.Request) -> web.StreamResponse:
            return await handler(deps, request)

        return run

    return [
        web.get("/", page(on_dashboard)),
        web.get("/live/dashboard", live.stream),
        web.get("/incidents", page(on_incidents)),
        web.get("/incidents.csv", page(on_incidents_csv)),
        web.get("/incidents/{ref}", page(on_incident)),
        web.get("/reports", page(on_reports)),
        web.get("/reports.{format}", page(on_report_download)),
        web.get("/kb", page(on_kb)),
        web.get("/kb/{ref}", page(on_kb_entry)),
        web.get("/status", page(on_status)),
        web.get("/static/{name}", static()),
    ]


def show(
    deps: Deps,
    request: web.Request,
    name: str,
    *,
    status: int = 200,
    names: dict[str, str] | None = None,
    **context: Any,
) -> web.Response:
    """A page, with what every template uses to show stored text, times, people and ids."""
    return render(request, name, status=status, **helpers(deps, names or {}), **context)


async def names_of(deps: Deps, users: Iterable[str | None]) -> dict[str, str]:
    return await names_in_time(deps.slack, users, wait=NAMES_WAIT)


def helpers(deps: Deps, names: dict[str, str]) -> dict[str, Any]:
    zone = deps.policy.timezone

    def when(moment: datetime | None) -> str:
        return f"{moment.astimezone(zone):%Y-%m-%d %H:%M %Z}" if moment else "-"

    return {
        "plain": plain,
        "when": when,
        "public_id": deps.policy.public_id,
        "duration": duration,
        "duration_seconds": lambda seconds: duration(timedelta(seconds=seconds or 0)),
        "person": lambda user: (names.get(user) or plain(f"<@{user}>")) if user else "-",
        "policy": deps.policy,
        "at": _ms,
    }


def plain(value: str | None) -> str:
    """Stored Slack text as a person reads it (`R&amp;D <@U1|ann>` → `R&D @ann`), for HTML to escape."""
    return text.to_plain(value or "")


async def on_dashboard(deps: Deps, request: web.Request) -> web.Response:
    now = deps.clock()
    async with deps.db.read() as session:
        trend = await dashboard.trend(session, policy=deps.policy, now=now, days=30)
    part = await live_part(deps, request.app[WEB].templates)
    return show(deps, request, "dashboard.html.j2", part=Markup(part), charts=trend_charts(trend), active="/")


async def live_part(deps: Deps, templates: Environment) -> str:
    """The part of the dashboard that changes: rendered once for every open dashboard (handlers/web/live.py)."""
    now = deps.clock()
    async with deps.db.read() as session:
        found = await dashboard.open_incidents(session, policy=deps.policy, now=now)
        state = await health.report(session, now=now)
    names = await names_of(deps, [row.commander for row in found.rows])
    template = templates.get_template("_dashboard_live.html.j2")
    return template.render(open=found, health=state, now=now, **helpers(deps, names))


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def trend_charts(days: list[dashboard.Day]) -> list[Markup]:
    labels = [f"{d.day:%d %b}" for d in days]
    mtta, mttr = [d.mtta_seconds for d in days], [d.mttr_seconds for d in days]
    unit, size = time_unit([*mtta, *mttr])
    times = [Series("MTTA", _in(mtta, size)), Series("MTTR", _in(mttr, size))]
    compliance = [None if d.sla_compliance is None else d.sla_compliance * 100 for d in days]
    return [
        line_chart(f"MTTA and MTTR by day declared ({unit})", labels, times, unit=unit),
        line_chart("SLA compliance, % of clocks met", labels, [Series("SLA met", compliance)], unit="%"),
        bar_chart("Incidents declared per day", labels, [float(d.declared) for d in days]),
    ]


def _in(seconds: list[float | None], size: float) -> list[float | None]:
    return [None if value is None else value / size for value in seconds]


def filters_of(request: web.Request, policy: Any) -> browse.Filters:
    """The list's filters from its query string; a value that means nothing is left out, not refused:
    a link someone edited by hand still shows a list."""
    query = request.query
    states = tuple(State(s) for s in query.getall("state", []) if s in {m.value for m in State})
    priorities = tuple(p for p in query.getall("priority", []) if p in PRIORITIES)
    categories = tuple(c for c in query.getall("category", []) if c in policy.categories)
    return browse.Filters(
        states=states,
        priorities=priorities,
        categories=categories,
        since=_day(query.get("since")),
        until=_day(query.get("until")),
        words=query.get("q", "").strip()[:200],
        page=_number(query.get("page"), 1),
    )


def _day(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def _number(value: str | None, default: int) -> int:
    return (
        int(value) if value and value.isascii() and value.isdigit() and 0 < int(value) < 100_000 else default
    )


async def on_incidents(deps: Deps, request: web.Request) -> web.Response:
    filters = filters_of(request, deps.policy)
    async with deps.db.read() as session:
        listing = await browse.incidents(session, filters, policy=deps.policy)
    return show(
        deps,
        request,
        "incidents.html.j2",
        names=await names_of(deps, [row.commander for row in listing.rows]),
        listing=listing,
        page_query=lambda n: urlencode(
            [*((k, v) for k, v in request.query.items() if k != "page"), ("page", n)]
        ),
        filters=filters,
        query=request.query_string,
        states=[s.value for s in State],
        priorities=PRIORITIES,
        categories=deps.policy.categories,
        active="/incidents",
    )


async def on_incidents_csv(deps: Deps, request: web.Request) -> web.StreamResponse:
    filters = filters_of(request, deps.policy)
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": 'attachment; filename="incidents.csv"',
            "Cache-Control": "no-store",
        }
    )
    await response.prepare(request)
    async with deps.db.read() as session:
        async for row in browse.export(session, filters, policy=deps.policy):
            buffer = io.StringIO()
            csv.writer(buffer, lineterminator="\r\n").writerow(row)
            await response.write(buffer.getvalue().encode())
    await response.write_eof()
    return response


def number_of(ref: str, deps: Deps) -> int:
    found = _REF.fullmatch(ref)
    if found is None or found.group(1).upper() != deps.policy.incident_prefix.upper():
        raise web.HTTPNotFound(text=f"no incident {ref}")
    return int(found.group(2))


async def on_incident(deps: Deps, request: web.Request) -> web.Response:
    number = number_of(request.match_info["ref"], deps)
    now = deps.clock()
    try:
        async with deps.db.read() as session:
            shown = await browse.incident_page(session, number, policy=deps.policy, now=now)
    except NotFound:
        return show(deps, request, "not_found.html.j2", status=404, what=request.match_info["ref"])
    i = shown.incident
    people = [i.commander, i.comms, i.scribe, i.reporter, *(e.actor for e in shown.timeline)]
    people += [a.item.owner for a in shown.actions]
    if shown.review is not None:
        people += [e.actor for e in shown.review.updates]
    names = await names_of(deps, people)
    review = None
    if shown.review is not None:
        review = Markup(_MARKDOWN.render(deps.composer.pir_document(shown.review, names)))
    return show(
        deps,
        request,
        "incident.html.j2",
        names=names,
        page=shown,
        i=shown.incident,
        id=deps.policy.public_id(number),
        review=review,
        describe=describe,
        active="/incidents",
    )


def describe(entry: Any) -> str:
    """A timeline entry as the timeline command words it, as plain text (mentions as @names)."""
    return plain(describe_entry(entry))


def report_window(request: web.Request, now: datetime, policy: Any) -> tuple[datetime, int, str]:
    """(the window's end, its length in days, how the page names it): `days=7|30|90`, or `since` and
    `until` (days in app.yaml's timezone, both included)."""
    since, until = _day(request.query.get("since")), _day(request.query.get("until"))
    if since and until and since <= until and (until - since).days < LONGEST:
        end = datetime.combine(until + timedelta(days=1), datetime.min.time(), tzinfo=policy.timezone)
        return min(end, now), (until - since).days + 1, f"{since} to {until}"
    days = _number(request.query.get("days"), 30)
    days = days if days in WINDOWS else 30
    return now, days, f"the last {days} days"


async def _report(deps: Deps, request: web.Request) -> tuple[dict[str, Any], list[dict[str, Any]], str]:
    end, days, named = report_window(request, deps.clock(), deps.policy)
    async with deps.db.read() as session:
        figures = await metrics.report(session, policy=deps.policy, now=end, days=days)
        weeks = await metrics.weekly(session, policy=deps.policy, now=end, days=days)
    return figures, weeks, named


async def on_reports(deps: Deps, request: web.Request) -> web.Response:
    figures, weeks, named = await _report(deps, request)
    return show(
        deps,
        request,
        "reports.html.j2",
        figures=figures,
        named=named,
        lines=reports.lines(figures),
        charts=report_charts(figures, weeks),
        query=request.query_string,
        windows=WINDOWS,
        active="/reports",
    )


def report_charts(figures: dict[str, Any], weeks: list[dict[str, Any]]) -> list[Markup]:
    labels = [str(w.get("week", "")) for w in weeks]
    mtta, mttr = [w.get("mtta_seconds") for w in weeks], [w.get("mttr_seconds") for w in weeks]
    unit, size = time_unit([*mtta, *mttr])
    by_priority = figures["incidents"]["by_priority"]
    sla = figures["sla"]
    return [
        bar_chart("Incidents per week", labels, [float(w.get("incidents") or 0) for w in weeks]),
        line_chart(
            f"MTTA and MTTR by week ({unit})",
            labels,
            [Series("MTTA", _in(mtta, size)), Series("MTTR", _in(mttr, size))],
            unit=unit,
        ),
        line_chart(
            "SLA compliance by week, %",
            labels,
            [Series("SLA met", [_percent(w.get("sla_compliance")) for w in weeks])],
            unit="%",
        ),
        bar_chart("Incidents by priority", list(by_priority), [float(v) for v in by_priority.values()]),
        *_times_by_priority(figures["times_by_priority"]),
        bar_chart(
            "Resolution SLA met by priority, %",
            list(sla),
            [_percent(v["resolution_met"]) for v in sla.values()],
            unit="%",
        ),
    ]


def _times_by_priority(means: dict[str, dict[str, float | None]]) -> list[Markup]:
    charts = []
    for name, label in (("mtta_seconds", "MTTA"), ("mttr_seconds", "MTTR")):
        values = [means[p][name] for p in means]
        unit, size = time_unit(values)
        charts.append(bar_chart(f"{label} by priority ({unit})", list(means), _in(values, size), unit=unit))
    return charts


def _percent(share: float | None) -> float | None:
    return None if share is None else share * 100


async def on_report_download(deps: Deps, request: web.Request) -> web.Response:
    kind = request.match_info["format"]
    if kind not in ("csv", "json"):
        raise web.HTTPNotFound(text="reports are downloaded as .csv or .json")
    figures, weeks, _ = await _report(deps, request)
    if kind == "json":
        body = json.dumps({**figures, "weeks": weeks}, indent=2, default=str)
        return web.Response(text=body, content_type="application/json", headers=_download("report.json"))
    return web.Response(
        text=reports.as_csv(figures), content_type="text/csv", headers=_download("report.csv")
    )


def _download(name: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"}


async def on_kb(deps: Deps, request: web.Request) -> web.Response:
    query = request.query
    cause = query.get("cause") if query.get("cause") in deps.policy.cause_codes else None
    resolution = query.get("resolution") if query.get("resolution") in deps.policy.resolution_codes else None
    category = query.get("category") if query.get("category") in deps.policy.categories else None
    words = query.get("q", "").strip()[:200]
    async with deps.db.read() as session:
        listing = await browse.knowledge(
            session,
            words=words,
            cause=cause,
            resolution=resolution,
            category=category,
            page=_number(query.get("page"), 1),
        )
    return show(
        deps,
        request,
        "kb.html.j2",
        listing=listing,
        words=words,
        chosen={"cause": cause, "resolution": resolution, "category": category},
        query=request.query_string,
        active="/kb",
    )


async def on_kb_entry(deps: Deps, request: web.Request) -> web.Response:
    number = number_of(request.match_info["ref"], deps)
    try:
        async with deps.db.read() as session:
            entry = await browse.kb_entry(session, number, policy=deps.policy, now=deps.clock())
    except NotFound:
        return show(deps, request, "not_found.html.j2", status=404, what=request.match_info["ref"])
    return show(
        deps,
        request,
        "kb_entry.html.j2",
        entry=entry,
        i=entry.incident,
        id=deps.policy.public_id(number),
        active="/kb",
    )


async def on_status(deps: Deps, request: web.Request) -> web.Response:
    if not deps.policy.status_page_enabled:
        return show(
            deps,
            request,
            "not_found.html.j2",
            status=404,
            what="the status page (status_page.enabled is off)",
        )
    async with deps.db.read() as session:
        shown = await statuspage.public(session, now=deps.clock())
    return show(deps, request, "status.html.j2", incidents=shown, active="/status")


def static(directory: Path = STATIC) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The stylesheet and the live script, read once: there are two, and they change only on upgrade."""
    assets = {path.name: path.read_bytes() for path in directory.iterdir() if path.suffix in _STATIC_TYPES}

    async def on_static(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in assets:
            raise web.HTTPNotFound()
        return web.Response(
            body=assets[name],
            content_type=_STATIC_TYPES[Path(name).suffix],
            headers={"Cache-Control": "public, max-age=300"},
        )

    return on_static
