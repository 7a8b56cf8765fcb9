"""Live pages: one look a second at whether what the dashboard shows changed, shared by every open
dashboard of the process, and the new part of the page pushed to each as a server-sent event.

An open page costs the server nothing while nothing changes (a keep-alive comment now and then), and
one queue write when something does: the database is asked once a second however many pages are open,
and the part is rendered once for all of them. Seconds left on an SLA clock tick in the browser, from
the due times the part carries, so they need no event at all."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

log = logging.getLogger("tocsin.web")
KEEP_ALIVE = 15.0  # seconds between comments that keep proxies from closing a quiet stream
REFRESH = 30.0  # seconds after which the part is rendered again even if nothing changed (ages, "ago")


class Live:
    def __init__(
        self,
        *,
        fingerprint: Callable[[], Awaitable[Any]],
        render: Callable[[], Awaitable[str]],
        every: float = 1.0,
    ) -> None:
        self.fingerprint, self.render, self.every = fingerprint, render, every
        self.pages: set[asyncio.Queue[bytes | None]] = set()
        self.latest: bytes | None = None  # the last part, as the event every page is sent
        self._seen: Any = object()
        self._rendered_at = 0.0
        self._task: asyncio.Task[None] | None = None

    async def stream(self, request: web.Request) -> web.StreamResponse:
        """`GET` of an EventSource: the part now, then each time it changes, until the page goes."""
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-store",
                "X-Accel-Buffering": "no",
            }
        )
        await response.prepare(request)
        queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=1)
        self.pages.add(queue)
        self._start()
        try:
            await response.write(self.latest if self.latest is not None else await self._fresh())
            while (event := await _next(queue)) is not None:
                await response.write(event or b": keep-alive\n\n")
        except (ConnectionResetError, asyncio.CancelledError):
            pass  # the page was closed or reloaded
        finally:
            self.pages.discard(queue)
        return response

    def close(self) -> None:
        """Let every open stream end, so that a stopping server does not wait for browsers."""
        for queue in list(self.pages):
            _replace(queue, None)
        if self._task is not None:
            self._task.cancel()

    def _start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._watch())

    async def _fresh(self) -> bytes:
        """The part rendered now, encoded once as the event for every page."""
        self.latest, self._rendered_at = _event(await self.render()), time.monotonic()
        return self.latest

    async def _watch(self) -> None:
        while self.pages:
            try:
                seen = await self.fingerprint()
                if seen != self._seen or time.monotonic() - self._rendered_at > REFRESH:
                    self._seen = seen
                    event = await self._fresh()
                    for queue in list(self.pages):
                        _replace(queue, event)
            except Exception:  # a database hiccup: the pages keep what they show, and we look again
                log.exception("live update failed", extra={"event": "web_live_failed"})
            await asyncio.sleep(self.every)


async def _next(queue: asyncio.Queue[bytes | None]) -> bytes | None:
    """The next event, b"" when it is time for a keep-alive, None when the stream should end."""
    try:
        return await asyncio.wait_for(queue.get(), timeout=KEEP_ALIVE)
    except TimeoutError:
        return b""


def _replace(queue: asyncio.Queue[bytes | None], event: bytes | None) -> None:
    """Only the newest part matters to a page that has not read the last one yet."""
    with contextlib.suppress(asyncio.QueueEmpty):
        queue.get_nowait()
    queue.put_nowait(event)


def _event(part: str) -> bytes:
    lines = "".join(f"data: {line}\n" for line in part.splitlines() or [""])
    return (lines + "\n").encode()
