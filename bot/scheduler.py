"""The sweep: fires due timers, on every replica, exactly once between them.

APScheduler (in-memory job store, one per process) only says *when* to look; the database says
*what* is due and who fired it. Each batch runs in one transaction: lock the incidents concerned
(in id order, the same order handlers lock them in), claim each timer with a conditional UPDATE,
apply its effect and write its messages to the outbox, then commit.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import delete

from bot import digest
from handlers import reports
from handlers.messages import Composer, publish
from handlers.oncall import handoff_operations
from store import closure, lookup, metrics, oncall, outbox, timers
from store.change import Change, of_timer
from store.db import Database
from store.models import OutboxMessage
from store.operations import Post, Upload
from store.policy import Policy
from store.timeline import SYSTEM_ACTOR

log = logging.getLogger("tocsin.scheduler")
STATISTICS_EVERY = 60  # seconds between looks for stale PostgreSQL statistics


def _unobserved(seconds: float) -> None:
    """No metrics to tell of a timer's lag."""


class Sweeper:
    def __init__(
        self,
        *,
        db: Database,
        composer: Composer,
        policy: Policy,
        clock: Callable[[], datetime],
        wake_relay: Callable[[], None],
        batch: int = 50,
        hold: float = 0.015,
        lag: Callable[[float], None] = _unobserved,
    ) -> None:
        """`batch`: the most timers one transaction fires. `hold`: about how long one round may keep its
        write transaction open; rounds shrink below `batch` to fit it. `lag` is told, for each timer
        claimed, how many seconds past its due time it was (bot/observe.py's timer lag)."""
        self.db, self.composer, self.policy, self.clock = db, composer, policy, clock
        self.wake_relay, self.batch, self.hold, self.lag = wake_relay, batch, hold, lag
        self._size = batch  # this round's batch: fitted to `hold` from the last round's cost per timer

    async def sweep(self) -> int:
        """Fire everything due now, including timers that firing makes due; the number fired."""
        fired = await self._digests() + await self._handoffs()
        for _ in range(4000):  # each round fires or retires what it saw, so this ends long before
            began = time.perf_counter()
            claimed, posted = await self._round()
            fired += posted
            if claimed == 0:
                break
            # A round holds the incidents it fires (on SQLite, the one write lock): people's clicks on
            # those incidents wait for it, so a storm of overdue timers is fired in short rounds.
            each = (time.perf_counter() - began) / claimed
            self._size = max(1, min(self.batch, int(self.hold / each)))
        if fired:
            self.wake_relay()
        return fired

    async def _round(self) -> tuple[int, int]:
        now = self.clock()
        posted = 0
        lags: list[float] = []  # told once the round has committed: a round rolled back is claimed again
        async with self.db.write() as session:
            due = await timers.due(session, now=now, limit=self._size)
            if not due:
                return 0, 0
            incident_of = dict(due)  # timer id -> its incident's number
            numbers = sorted(set(incident_of.values()))
            incidents = await lookup.by_numbers(session, numbers, lock=True)
            claimed = await timers.claim(session, ids=list(incident_of), now=now)
            pending = await timers.pending_for(session, numbers=numbers)
            for timer in claimed:  # timers due that are not here were fired or cancelled by another process
                lags.append((now - timer.due_at).total_seconds())
                number = incident_of[timer.id]
                outcome = await timers.fire(
                    session, timer, incidents[number], policy=self.policy, now=now, pending=pending[number]
                )
                fields = {
                    "incident_id": self.policy.public_id(number),
                    "timer": timer.kind,
                    "key": timer.key,
                    "due_at": timer.due_at.isoformat(),
                    "late_seconds": round((now - timer.due_at).total_seconds(), 3),
                }
                if outcome is None:
                    log.info("timer retired", extra={"event": "timer_retired", **fields})
                    continue
                if outcome.kind == timers.AUTO_CLOSE:
                    change: Change = await closure.close_by_itself(
                        session, outcome.incident, policy=self.policy, now=now
                    )
                else:
                    change = of_timer(outcome.kind, outcome.incident, outcome.extra, actor=SYSTEM_ACTOR)
                await publish(session, change, composer=self.composer, now=now)
                posted += 1
                log.info("timer fired", extra={"event": "timer_fired", **fields})
        for seconds in lags:
            self.lag(seconds)
        return len(claimed), posted

    async def _digests(self) -> int:
        """Plan the next weekly digest, and post any that fell due (once, whichever replica claims it)."""
        if not self.policy.digest_cron or not self.policy.digest_channel:
            return 0
        now = self.clock()
        async with self.db.write() as session:
            upcoming = digest.next_due(self.policy, after=now)
            if upcoming is not None:
                await timers.plan_global(session, kind=digest.KIND, due_at=upcoming, now=now)
        async with self.db.read() as session:
            due = await timers.due_global(session, kind=digest.KIND, now=now)
            if not due:
                return 0
            # figures first, outside the write transaction: the report may take a moment
            figures = await metrics.report(session, policy=self.policy, now=now, days=7)
            days = await metrics.daily(session, now=now, days=7)
        message = reports.as_message(figures, renderer=self.composer.renderer, title="Weekly incident digest")
        png = digest.chart(days)
        posted = 0
        async with self.db.write() as session:
            claimed = await timers.claim(session, ids=[t.id for t in due], now=now)
            if claimed:  # several missed digests are posted once, with the current figures
                payload = {k: figures[k] for k in ("window_days", "reopen_rate", "escalation_rate")}
                payload["incidents"] = figures["incidents"]["total"]
                metadata = {"event_type": digest.KIND, "event_payload": payload}
                channel = self.policy.digest_channel
                post = Post(channel=channel, text=message.text, blocks=message.blocks, metadata=metadata)
                outbox.enqueue(session, post, now=now, incident_number=None)
                if png is not None:
                    upload = Upload(
                        channel=channel,
                        filename=f"incidents-{now:%Y-%m-%d}.png",
                        title="Incidents per day and MTTR, last 7 days",
                        content=png,
                        comment="",
                    )
                    outbox.enqueue(session, upload, now=now, incident_number=None)
                posted = 1
                log.info("digest queued", extra={"event": "digest_queued", "chart": png is not None})
        return posted

    async def _handoffs(self) -> int:
        """Plan the next hand-offs of every schedule, and make those that fell due, once whichever replica
        claims them: the notice, the DM and the user group's members are queued with the hand-off. Read
        first: most sweeps have nothing to write, and on SQLite a write transaction holds the one lock."""
        if not self.policy.schedules:
            return 0
        now = self.clock()
        async with self.db.read() as session:
            plan = await oncall.plan_handoffs(session, policy=self.policy, now=now)
        if not plan:
            return 0
        async with self.db.write() as session:
            await oncall.apply_plan(session, plan, now=now)
            handoffs = await oncall.fire_handoffs(session, policy=self.policy, now=now)
            for handoff in handoffs:
                ops = handoff_operations(handoff, renderer=self.composer.renderer, policy=self.policy)
                await outbox.enqueue_all(session, ops, now=now, incident_number=None)
        for handoff in handoffs:
            log.info(
                "hand-off",
                extra={
                    "event": "oncall_handoff",
                    "schedule": handoff.schedule.name,
                    "on_call": handoff.incoming.user,
                    "previous": handoff.outgoing,
                    "due_at": handoff.due_at.isoformat(),
                    "late_seconds": round((now - handoff.due_at).total_seconds(), 3),
                },
            )
        return len(handoffs)

    async def housekeeping(self, *, keep: timedelta = timedelta(days=14)) -> None:
        """Forget delivered outbox rows after two weeks; failed ones stay for `tocsin outbox`."""
        cutoff = self.clock() - keep
        async with self.db.write() as session:
            await session.execute(
                delete(OutboxMessage).where(
                    OutboxMessage.delivered_at.is_not(None), OutboxMessage.delivered_at < cutoff
                )
            )

    async def statistics(self) -> None:
        """Keep PostgreSQL's statistics of Tocsin's tables fresh (Database.refresh_statistics)."""
        analyzed = await self.db.refresh_statistics()
        if analyzed:
            log.info("statistics refreshed", extra={"event": "statistics_refreshed", "tables": analyzed})


def start_jobs(sweeper: Sweeper, *, tick: timedelta, running: set[asyncio.Future[Any]]) -> AsyncIOScheduler:
    scheduler = AsyncIOScheduler(timezone="UTC")
    scheduler.add_job(
        guarded(sweeper.sweep, "sweep", running),
        "interval",
        seconds=tick.total_seconds(),
        id="sweep",
        max_instances=1,
        coalesce=True,
        next_run_time=datetime.now().astimezone(),
        misfire_grace_time=None,
    )
    scheduler.add_job(
        guarded(sweeper.housekeeping, "housekeeping", running),
        "interval",
        hours=1,
        id="housekeeping",
        max_instances=1,
        coalesce=True,
    )
    scheduler.add_job(
        guarded(sweeper.statistics, "statistics", running),
        "interval",
        seconds=STATISTICS_EVERY,
        id="statistics",
        max_instances=1,
        coalesce=True,
    )
    scheduler.start()
    return scheduler


def guarded(
    job: Callable[[], Awaitable[object]], name: str, running: set[asyncio.Future[Any]]
) -> Callable[[], Awaitable[None]]:
    """`job` as a scheduler job: a failed run is logged and the next one tries again. While it runs, its
    task is in `running`, so a stopping process can let it finish (Tocsin.stop) rather than have the
    scheduler cancel it mid-transaction."""

    async def run() -> None:
        task = asyncio.current_task()
        assert task is not None
        running.add(task)
        try:
            await job()
        except Exception:
            log.exception("job failed", extra={"event": "job_failed", "job": name})
        finally:
            running.discard(task)

    return run
