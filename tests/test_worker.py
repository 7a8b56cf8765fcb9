"""`tocsin worker` and `tocsin serve --worker process|none`: the relay and the scheduler in a process of
their own, restarted when it dies, and nothing delivered twice."""

from __future__ import annotations

import asyncio
import os
import signal
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import SECRET
from tests.processes import environment, free_port, start, terminate, wait_healthy
from tests.signed import SlackRequests

pytestmark = pytest.mark.slow


def workers_of(parent: int) -> list[int]:
    """Child processes of `parent` running `tocsin worker`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and b"worker" in command:
            found.append(int(entry.name))
    return found


def posted(fake, event: str) -> Counter:
    return Counter(m.payload.get("incident_id") for m in fake.messages if m.event_type == event)


async def declare(port: int, fake, title: str) -> None:
    slack = SlackRequests(f"http://127.0.0.1:{port}/slack/events", SECRET, fake)
    try:
        reply = await slack.command(f"declare P3 {title}")
    finally:
        await slack.close()
    assert "Declared" in reply.body, reply.body


def env(fake, database_url: str) -> dict[str, str]:
    return environment(
        SLACK_BOT_TOKEN="xoxb-test",
        SLACK_SIGNING_SECRET=SECRET,
        SLACK_API_URL=fake.api_url,
        DATABASE_URL=database_url,
    )


async def serve_with(port: int, worker: str, env: dict[str, str], log: Path) -> asyncio.subprocess.Process:
    return await start(
        "serve", "--host", "127.0.0.1", "--port", str(port), "--worker", worker, env=env, log=log
    )


async def test_serve_runs_its_worker_in_a_child_process_and_restarts_it(tmp_path, fake, database_url) -> None:
    port, log = free_port(), tmp_path / "serve.log"
    serve = await serve_with(port, "process", env(fake, database_url), log)
    try:
        await wait_healthy(f"http://127.0.0.1:{port}", serve, log)
        await fake.wait_for(lambda: len(workers_of(serve.pid)) == 1, timeout=20)
        await declare(port, fake, "Checkout returns 502")
        # the card and the announcement
        await fake.wait_for(lambda: posted(fake, "incident_declared") == Counter({"INC-1": 2}), timeout=20)

        first = workers_of(serve.pid)[0]
        os.kill(first, signal.SIGKILL)
        await fake.wait_for(lambda: workers_of(serve.pid) not in ([], [first]), timeout=20)  # restarted
        await declare(port, fake, "Search is slow")
        await fake.wait_for(lambda: posted(fake, "incident_declared")["INC-2"] == 2, timeout=20)
        await asyncio.sleep(1)
        assert posted(fake, "incident_declared") == Counter({"INC-1": 2, "INC-2": 2}), log.read_text()
    finally:
        code = await terminate(serve)
    assert code == 0, log.read_text()
    assert workers_of(serve.pid) == []
    assert '"worker_exited"' in log.read_text()


async def test_serve_without_a_worker_queues_and_a_separate_worker_delivers(
    tmp_path, fake, database_url
) -> None:
    port, serve_log, worker_log = free_port(), tmp_path / "serve.log", tmp_path / "worker.log"
    serve = await serve_with(port, "none", env(fake, database_url), serve_log)
    worker = None
    try:
        await wait_healthy(f"http://127.0.0.1:{port}", serve, serve_log)
        await declare(port, fake, "Checkout returns 502")
        await asyncio.sleep(1.5)
        assert posted(fake, "incident_declared") == Counter()  # nobody delivers: it waits in the outbox
        worker = await start("worker", env=env(fake, database_url), log=worker_log)
        await fake.wait_for(lambda: posted(fake, "incident_declared") == Counter({"INC-1": 2}), timeout=20)
        await asyncio.sleep(1)
        assert posted(fake, "incident_declared") == Counter({"INC-1": 2})
    finally:
        if worker is not None:
            assert await terminate(worker) == 0, worker_log.read_text()
        assert await terminate(serve) == 0, serve_log.read_text()
