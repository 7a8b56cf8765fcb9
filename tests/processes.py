"""Run the real `tocsin` command as a child process, the way an operator does."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def environment(**env: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "TOCSIN_", "DATABASE_URL"))}
    # As in conftest: the fake Slack enforces no quotas unless asked, so processes pace as if Slack's
    # were a hundred times larger.
    return {**base, "PYTHONUNBUFFERED": "1", "TOCSIN_SLACK_QUOTA_SCALE": "100", **env}


async def start(*args: str, env: Mapping[str, str], log: Path) -> asyncio.subprocess.Process:
    with log.open("wb") as handle:  # the child keeps its own copy of the descriptor
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.cli", *args, cwd=str(ROOT), env=dict(env), stdout=handle, stderr=handle
        )


async def run(*args: str, env: Mapping[str, str], timeout: float = 30) -> tuple[int, str, str]:  # noqa: ASYNC109
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.cli",
        *args,
        cwd=str(ROOT),
        env=dict(env),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout)
    return process.returncode or 0, out.decode(), err.decode()


async def wait_healthy(url: str, process: asyncio.subprocess.Process, log: Path, timeout: float = 20) -> None:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if process.returncode is not None:
                raise AssertionError(f"tocsin exited {process.returncode}:\n{log.read_text()}")
            try:
                async with session.get(f"{url}/healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"tocsin did not become healthy:\n{log.read_text()}")


async def terminate(process: asyncio.subprocess.Process, timeout: float = 15) -> int:  # noqa: ASYNC109
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
    return await asyncio.wait_for(process.wait(), timeout)
