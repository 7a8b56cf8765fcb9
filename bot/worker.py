"""`tocsin serve`'s worker process: the relay and the scheduler, beside the process that answers Slack.

Acks have three seconds; channel messages do not (Slack lets a channel have about one a second anyway).
So `tocsin serve` answers requests in one process and starts `tocsin worker` for the rest, at a lower
CPU priority: in a storm the operating system gives the acks the CPU first, and when the storm passes
the worker catches up. The worker learns of each queued message through its stdin (one byte per wake,
at most one in flight), stops when that pipe closes (its parent has gone), and is restarted if it dies.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable

log = logging.getLogger("tocsin")
NICE = 10  # the worker's CPU priority below the web process (os.nice)


class WorkerProcess:
    def __init__(self, *, nice: int = NICE, restart_after: float = 1.0) -> None:
        self.nice, self.restart_after = nice, restart_after
        self._process: asyncio.subprocess.Process | None = None
        self._stopping = asyncio.Event()
        self._supervisor: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._spawn()
        self._supervisor = asyncio.create_task(self._supervise())

    async def _spawn(self) -> None:
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot.cli",
            "worker",
            "--wake-on-stdin",
            "--nice",
            str(self.nice),
            stdin=asyncio.subprocess.PIPE,
            env=dict(os.environ),
        )
        log.info("worker started", extra={"event": "worker_started", "pid": self._process.pid})

    async def _supervise(self) -> None:
        delay = self.restart_after
        while self._process is not None:
            code = await self._process.wait()
            if self._stopping.is_set():
                return
            log.error("worker exited; restarting", extra={"event": "worker_exited", "code": code})
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)
            if self._stopping.is_set():
                return
            await self._spawn()

    def wake(self) -> None:
        """Tell the worker a message is queued (dropped when one wake is still unread: it covers both)."""
        pipe = self._process.stdin if self._process is not None else None
        if pipe is None or pipe.is_closing() or pipe.transport.get_write_buffer_size():
            return
        pipe.write(b"\n")

    async def stop(self, grace: float = 10.0) -> None:
        self._stopping.set()
        process = self._process
        if process is not None and process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), grace)
            except TimeoutError:
                process.kill()
                await process.wait()
        if self._supervisor is not None:
            await self._supervisor


async def wake_on_stdin(wake: Callable[[], None], gone: Callable[[], None]) -> None:
    """In the worker: call `wake` for each byte read from stdin, and `gone` when the parent closes it."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while await reader.read(4096):
        wake()
    gone()
