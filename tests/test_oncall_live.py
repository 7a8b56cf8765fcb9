"""Hand-offs of real `tocsin serve` processes, with second-scale shifts: two replicas make each hand-off
once (one notice, one user-group update), and a hand-off that fell due while every process was killed
happens when one starts again. Also the calendar feed and `tocsin oncall`, as a person reaches them."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import UTC, datetime

import aiohttp
import pytest
from icalendar import Calendar

from tests.conftest import shipped_config
from tests.processes import run
from tests.test_replicas import Replicas

pytestmark = pytest.mark.slow

ONCALL = "C0ONCALL"
GROUP = "S0PLATFORM"
PEOPLE = ["U0ALICE", "U0BOB", "U0CAROL"]


def live_config(shift: str) -> dict:
    config = shipped_config()
    config["scheduler"]["tick"] = "1s"
    config["schedules"] = {
        "platform": {
            "timezone": "UTC",
            "channel": ONCALL,
            "usergroup": GROUP,
            # from a midnight long past: shifts begin at whole multiples of `shift` since then
            "layers": [{"name": "fast", "participants": PEOPLE, "shift": shift, "start": "2026-01-01 00:00"}],
        }
    }
    return config


@pytest.fixture
def fake(fake):
    for user in PEOPLE:
        fake.add_user(user, user.lower())
    fake.add_channel(ONCALL, "platform-oncall")
    fake.add_usergroup(GROUP, "platform-oncall", ["U0ALICE"])
    return fake


def notices(fake) -> list:
    return [m for m in fake.messages if m.channel == ONCALL and m.event_type == "oncall_handoff"]


def group_updates(fake) -> list:
    return [c for c in fake.calls_of("usergroups.users.update") if c.ok]


async def test_two_replicas_hand_off_once_each_time(tmp_path, fake, database_url) -> None:
    replicas = Replicas(tmp_path, fake, database_url, config=live_config("2s"))
    try:
        await replicas.start("a")
        await replicas.start("b")
        await fake.wait_for(lambda: len(notices(fake)) >= 4, timeout=20)
        await asyncio.sleep(1.5)  # room for a duplicate to show up
    finally:
        await replicas.stop_all()
    seen = notices(fake)
    ends = Counter(m.payload["until"] for m in seen)
    assert all(n == 1 for n in ends.values()), ends
    for before, after in zip(seen, seen[1:], strict=False):
        assert after.payload["previous"] == before.payload["on_call"]
        assert after.payload["on_call"] == PEOPLE[(PEOPLE.index(before.payload["on_call"]) + 1) % 3]
    for notice in seen:
        assert notice.payload["on_call"] in fake.notified(notice)
        # a shift of two seconds from midnight: it ends on an even second
        assert datetime.fromisoformat(notice.payload["until"]).second % 2 == 0
    updates = group_updates(fake)
    assert len(updates) == len(seen), (len(updates), len(seen))
    assert fake.usergroups[GROUP]["users"] == [seen[-1].payload["on_call"]] or len(updates) > len(seen)


async def test_a_handoff_due_while_killed_happens_on_restart(tmp_path, fake, database_url) -> None:
    replicas = Replicas(tmp_path, fake, database_url, config=live_config("6s"))
    try:
        await replicas.start("a")
        first = await fake.wait_for(lambda: notices(fake), timeout=20)
        replicas.kill("a")
        ends = datetime.fromisoformat(first[0].payload["until"])
        await asyncio.sleep(max(0.0, (ends - datetime.now(UTC)).total_seconds()) + 0.5)
        assert len(notices(fake)) == 1, "nothing ran while it was due"
        restarted = time.time()
        await replicas.start("a")
        later = await fake.wait_for(lambda: notices(fake)[1:], timeout=10)
    finally:
        await replicas.stop_all()
    [handed] = later[:1]
    assert handed.payload["previous"] == first[0].payload["on_call"]
    assert handed.payload["on_call"] == PEOPLE[(PEOPLE.index(first[0].payload["on_call"]) + 1) % 3]
    assert float(handed.ts) >= restarted
    assert len({m.payload["until"] for m in notices(fake)}) == len(notices(fake))


async def test_the_calendar_feed_and_the_command_line(tmp_path, fake, database_url) -> None:
    token = "calendar-token-0123456789"
    replicas = Replicas(tmp_path, fake, database_url, config=live_config("1d"), TOCSIN_CALENDAR_TOKEN=token)
    try:
        await replicas.start("a")
        base = f"http://127.0.0.1:{replicas.ports['a']}/schedules"
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/platform.ics", params={"token": token}) as answer:
                assert answer.status == 200 and answer.content_type == "text/calendar"
                feed = Calendar.from_ical(await answer.read())
            async with http.get(f"{base}/platform.ics", params={"token": "wrong"}) as answer:
                assert answer.status == 403
            async with http.get(f"{base}/nope.ics", params={"token": token}) as answer:
                assert answer.status == 404
            async with http.get(f"{base}/platform.ics", params={"token": token, "user": "U0BOB"}) as answer:
                bobs = Calendar.from_ical(await answer.read())
        code, out, err = await run("oncall", "platform", "--at", "2026-12-08 10:00", env=replicas.env)
        assert code == 0, err
        assert "on call: U0CAROL  from Tue 2026-12-08 00:00 UTC  until Wed 2026-12-09 00:00 UTC" in out
        assert "next:    Wed 2026-12-09 00:00 UTC  ->  U0ALICE" in out
        code, out, err = await run("oncall", "--at", "2026-12-08T23:59", env=replicas.env)  # every schedule
        assert code == 0 and "on call: U0CAROL" in out and "platform (UTC) at Tue 2026-12-08 23:59 UTC" in out
        code, out, err = await run("timers", env=replicas.env)
        assert code == 0 and "-          handoff:platform" in out, out
        code, out, err = await run("oncall", "nope", env=replicas.env)
        assert code == 1 and "There is no schedule called 'nope'" in err and "Traceback" not in err
        code, out, err = await run("oncall", "platform", "--at", "someday", env=replicas.env)
        assert code == 1 and "--at:" in err and "Traceback" not in err
    finally:
        await replicas.stop_all()
    events = feed.walk("VEVENT")
    assert 56 <= len(events) <= 58  # eight weeks of daily shifts, from the one on now
    starts = [e.decoded("dtstart") for e in events]
    assert all(b - a == (b - a).__class__(days=1) for a, b in zip(starts, starts[1:], strict=False))
    assert {str(e["summary"]) for e in events} == {f"On call: {u.lower()} (platform)" for u in PEOPLE}
    assert {str(e["summary"]) for e in bobs.walk("VEVENT")} == {"On call: u0bob (platform)"}
