"""`GET /schedules/<name>.ics?token=…`: a schedule's next weeks of shifts as iCalendar, for people to
subscribe to from their calendar. Calendar apps cannot send a header, so the token is in the URL."""

from __future__ import annotations

import hmac
import logging
from datetime import datetime

from aiohttp import web
from icalendar import Calendar, Event

from handlers.deps import Deps, names_in_time
from store import oncall, rota
from store.errors import InvalidInput

log = logging.getLogger("tocsin.calendar")
NAMES_WAIT = 2.0  # seconds the feed waits for display names before it shows ids
CACHE = "private, max-age=300"  # calendar apps poll; five minutes is fresher than any of them asks


def routes(deps: Deps, *, token: str) -> list[web.RouteDef]:
    """The feed, for bot/ to add when TOCSIN_CALENDAR_TOKEN is set (unset: it does not exist, 404)."""

    async def on_schedule_calendar(request: web.Request) -> web.Response:
        given = request.query.get("token", "")
        if not hmac.compare_digest(given.encode(), token.encode()):
            return web.Response(status=403, text="give ?token=<TOCSIN_CALENDAR_TOKEN>\n")
        name, user = request.match_info["name"], request.query.get("user")
        now = deps.clock()
        try:
            async with deps.db.read() as session:
                schedule, shifts = await oncall.feed(session, policy=deps.policy, schedule=name, now=now)
        except InvalidInput:
            return web.Response(status=404, text=f"no schedule called {name!r}\n")
        if user:  # one person's own shifts: "my on-call" in their calendar
            shifts = [shift for shift in shifts if shift.user == user]
        names = await names_in_time(deps.slack, (shift.user for shift in shifts), wait=NAMES_WAIT)
        body = as_ical(schedule, shifts, names=names, now=now)
        headers = {"Cache-Control": CACHE}
        return web.Response(body=body, content_type="text/calendar", charset="utf-8", headers=headers)

    return [web.get("/schedules/{name}.ics", on_schedule_calendar)]


def as_ical(
    schedule: rota.Schedule, shifts: list[rota.Shift], *, names: dict[str, str], now: datetime
) -> bytes:
    """One event per shift, each with a UID that stays the same while the shift does, so a calendar app
    updates it in place and drops it once an override replaces it."""
    calendar = Calendar()
    calendar.add("prodid", "-//Tocsin//on-call schedules//EN")
    calendar.add("version", "2.0")
    calendar.add("x-wr-calname", f"On call: {schedule.name}")
    calendar.add("x-wr-timezone", schedule.timezone.key)
    for shift in shifts:
        who = names.get(shift.user or "", shift.user or "")
        event = Event()
        event.add("uid", f"{schedule.name}-{int(shift.starts_at.timestamp())}-{shift.user}@tocsin")
        event.add("summary", f"On call: {who} ({schedule.name})")
        event.add("dtstart", shift.starts_at)
        event.add("dtend", shift.ends_at)
        event.add("dtstamp", now)
        by = f"override {shift.override}" if shift.override else f"layer {shift.layer}"
        event.add("description", f"{who} ({shift.user}) is on call for {schedule.name} ({by}).")
        calendar.add_component(event)
    return calendar.to_ical()
