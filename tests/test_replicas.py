"""Real `tocsin serve` processes sharing one database, with second-scale durations: every warning,
breach and page is posted once, on time, through SIGKILL and restarts."""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter

import pytest
import yaml

from tests.conftest import SECRET, shipped_config
from tests.processes import environment, free_port, run, start, terminate, wait_healthy
from tests.signed import SlackRequests

pytestmark = pytest.mark.slow

TICK = 1.0
# P1 timeline after declaring (nobody acknowledges): response warning 2s, level 2 page 3s,
# response breach 4s (+ leadership), level 3 page 6s, resolution warning 7s, resolution breach 14s.
SCHEDULE = {
    ("sla_warning", "response"): 2,
    ("escalation_page", 2): 3,
    ("sla_breached", "response"): 4,
    ("escalation_page", 3): 6,
    ("sla_warning", "resolution"): 7,
    ("sla_breached", "resolution"): 14,
}


def fast_config() -> dict:
    config = shipped_config()
    config["scheduler"]["tick"] = "1s"
    config["sla"]["warn_at"] = 0.5
    config["priorities"]["P1"].update(response="4s", resolution="14s", update_every="1h")
    config["escalation"]["repeat_every"] = "1h"
    config["escalation"]["levels"][1]["after"] = "3s"
    config["escalation"]["levels"][2]["after"] = "3s"
    return config


class Replicas:
    def __init__(self, tmp_path, fake, database_url, *, config: dict | None = None, **env: str) -> None:
        path = tmp_path / "app.yaml"
        path.write_text(yaml.safe_dump(config or fast_config()))
        self.tmp_path, self.fake = tmp_path, fake
        self.env = environment(
            SLACK_BOT_TOKEN="xoxb-test",
            SLACK_SIGNING_SECRET=SECRET,
            SLACK_API_URL=fake.api_url,
            DATABASE_URL=database_url,
            TOCSIN_CONFIG=str(path),
            **env,
        )
        self.processes: dict[str, asyncio.subprocess.Process] = {}
        self.ports: dict[str, int] = {}
        self.starts = 0

    async def start(self, name: str) -> None:
        self.starts += 1
        port = free_port()
        log = self.tmp_path / f"{name}-{self.starts}.log"
        process = await start("serve", "--host", "127.0.0.1", "--port", str(port), env=self.env, log=log)
        await wait_healthy(f"http://127.0.0.1:{port}", process, log)
        self.processes[name], self.ports[name] = process, port

    def kill(self, name: str) -> None:
        self.processes[name].send_signal(signal.SIGKILL)

    async def stop_all(self) -> None:
        for process in self.processes.values():
            if process.returncode is None:
                await terminate(process)

    def fired(self) -> Counter:
        """(event, key) -> how many channel messages; leadership copies counted apart."""
        seen: Counter = Counter()
        for m in self.fake.messages:
            key = m.payload.get("clock") or m.payload.get("level")
            if m.event_type in ("sla_warning", "sla_breached", "escalation_page"):
                seen[(m.event_type, key, m.channel == "C0123LEADERS")] += 1
        return seen


async def _declare(replicas: Replicas, via: str) -> float:
    slack = SlackRequests(f"http://127.0.0.1:{replicas.ports[via]}/slack/events", SECRET, replicas.fake)
    try:
        reply = await slack.command("declare P1 Primary database unreachable")
        assert "INC-1" in reply.body
    finally:
        await slack.close()
    return time.monotonic()


def _first_post(fake, event: str, key) -> float | None:
    for call in fake.calls_of("chat.postMessage"):
        meta = call.args.get("metadata") or {}
        payload = meta.get("event_payload", {})
        if (
            call.ok
            and meta.get("event_type") == event
            and (payload.get("clock") or payload.get("level")) == key
        ):
            return call.at
    return None


async def test_two_replicas_post_each_timer_once_and_on_time(tmp_path, fake, database_url) -> None:
    replicas = Replicas(tmp_path, fake, database_url)
    try:
        await replicas.start("a")
        await replicas.start("b")
        declared = await _declare(replicas, "a")
        await fake.wait_for(lambda: replicas.fired()[("sla_breached", "resolution", False)], timeout=30)
        await asyncio.sleep(2 * TICK)  # room for any duplicate to show up
    finally:
        await replicas.stop_all()
    fired = replicas.fired()
    for (event, key), _due in SCHEDULE.items():
        assert fired[(event, key, False)] == 1, (event, key, fired)
    assert fired[("sla_breached", "response", True)] == 1 and fired[("sla_breached", "resolution", True)] == 1
    assert fired[("escalation_page", 1, False)] == 1  # on declare
    assert sum(fired.values()) == len(SCHEDULE) + 3
    for (event, key), due in SCHEDULE.items():
        posted = _first_post(fake, event, key) - declared
        # within one tick of the due time (plus the relay's hop to Slack and CI jitter)
        assert due - 0.2 <= posted <= due + TICK + 1.0, (event, key, round(posted, 2))


async def test_sigkill_and_restart_lose_nothing_and_double_nothing(tmp_path, fake, database_url) -> None:
    replicas = Replicas(tmp_path, fake, database_url)
    try:
        await replicas.start("a")
        await replicas.start("b")
        declared = await _declare(replicas, "a")
        await asyncio.sleep(1.0)
        replicas.kill("a")  # b carries on alone
        # b takes a's pages after a second (a is known dead only after ten: its other messages wait)
        await fake.wait_for(lambda: replicas.fired()[("escalation_page", 2, False)], timeout=10)
        await asyncio.sleep(max(0.0, 4.6 - (time.monotonic() - declared)))
        replicas.kill("b")  # nothing runs while level 3 (6s) and the resolution warning (7s) fall due
        await asyncio.sleep(max(0.0, 9.0 - (time.monotonic() - declared)))
        assert replicas.fired()[("escalation_page", 3, False)] == 0
        await replicas.start("a")
        await fake.wait_for(lambda: replicas.fired()[("sla_warning", "resolution", False)], timeout=10)
        await fake.wait_for(lambda: replicas.fired()[("sla_breached", "resolution", False)], timeout=20)
        await asyncio.sleep(2 * TICK)
    finally:
        await replicas.stop_all()
    fired = replicas.fired()
    detail = [(m.channel, m.ts, m.payload) for m in fake.messages if m.event_type == "sla_breached"]
    detail += [(c.method, c.args, c.ok) for c in fake.calls if c.method.startswith("conversations.")]
    for event, key in SCHEDULE:
        assert fired[(event, key, False)] == 1, (event, key, fired, detail)
    assert fired[("escalation_page", 1, False)] == 1  # on declare
    assert sum(fired.values()) == len(SCHEDULE) + 3, detail
    code, out, _ = await run("timers", env=replicas.env)
    # everything due has fired; only the hourly re-page of level 3 is still ahead
    assert code == 0 and "1 pending timer\n" in out and "escalation_repeat  3" in out
    code, out, _ = await run("outbox", env=replicas.env)
    assert code == 0 and "0 undelivered, 0 failed" in out
