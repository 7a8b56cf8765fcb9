"""The outbox relay: delivers each outbox row to Slack once, in order within its incident.

Failures Slack will never accept (channel_not_found, invalid_blocks, ...) are recorded and logged, not
retried; rate limits wait for Retry-After; outages and 5xx back off and try again, holding back the
incident's later messages so they keep their order. Errors an operator can fix pause delivery instead:
a token Slack refuses (TOKEN_ERRORS) stops every delivery until auth.test accepts it again; a missing
scope holds the row that needs it (and its incident's later rows) and tries it again at the same pace.
What each operation does in Slack is bot/delivery.py's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import zlib
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from sqlalchemy.ext.asyncio import AsyncSession

from bot import quota
from bot.delivery import Courier, Outcome
from bot.slack import TOKEN_ERRORS, SlackFacade, failed_method, needed_scope, slack_error
from handlers.messages import Composer
from store import health, lookup, outbox, service, workers
from store.db import Database
from store.models import Incident, OutboxMessage
from store.operations import ALERT, urgency

log = logging.getLogger("tocsin.relay")

SKIPS_TURN = urgency("P2", ALERT)  # rows this urgent or more never wait for a turn with requests

PERMANENT = frozenset(
    {
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "invalid_blocks",
        "invalid_blocks_format",
        "msg_too_long",
        "no_text",
        "invalid_metadata_format",
        "invalid_metadata_schema",
        "message_not_found",
        "cant_update_message",
        "edit_window_closed",
        "restricted_action",
        "no_permission",
        "invalid_name",
        "invalid_name_specials",
        "invalid_name_maxlength",
        "invalid_name_required",
        "name_taken",
        "user_not_found",
        "user_is_restricted",
        "too_many_attachments",
        "invalid_arguments",
        "unknown_method",
        "thread_not_found",
        "channel_is_archived",
        "not_allowed_token_type",
        "ekm_access_denied",
    }
)
HARMLESS = frozenset({"already_in_channel", "cant_invite_self", "already_pinned", "already_reacted"})
MISSING_SCOPE = "missing_scope"  # a row's last_error: "missing_scope: chat.postMessage needs chat:write"
# Rows held for an operator, by kind of pause: their last_error, exactly or up to a `*` (for /healthz).
HELD = {"token": tuple(sorted(TOKEN_ERRORS)), "scope": (f"{MISSING_SCOPE}: *",)}


def is_held(error: str | None) -> bool:
    """Whether a row with this last_error waits for an operator (see HELD)."""
    return error in TOKEN_ERRORS or (error or "").startswith(f"{MISSING_SCOPE}: ")


def pause_reason(error: str) -> str:
    """What an operator must do about a row held with `error` (its last_error), in a sentence."""
    if error in TOKEN_ERRORS:
        return f"Slack refused the bot token ({error}): set SLACK_BOT_TOKEN to a valid token"
    method, _, scope = error.removeprefix(f"{MISSING_SCOPE}: ").partition(" needs ")
    return (
        f"Slack refused {method}: the app lacks the {scope or 'needed'} scope ({MISSING_SCOPE}): add it to "
        "the app's bot token scopes (`tocsin manifest` lists them) and reinstall the app"
    )


def _missing_scope(error: SlackApiError) -> str:
    return f"{MISSING_SCOPE}: {failed_method(error)} needs {needed_scope(error) or 'another scope'}"


def _scope_method(last_error: str | None) -> str | None:
    """The method a row held for a missing scope was refused (from its last_error), else None."""
    if not (last_error or "").startswith(f"{MISSING_SCOPE}: "):
        return None
    return (last_error or "").removeprefix(f"{MISSING_SCOPE}: ").split(" needs ")[0]


class Traffic:
    """Requests being answered: Slack's and alerts (bot/app.py counts every POST). The relay gives way
    to them: each delivery round, and each Slack call within it, waits until none is in flight and none
    has come or gone for `lull` seconds, or `give_way` seconds at most, so a storm of commands, clicks or
    alerts is answered first and its messages follow (Slack allows about one message per second per
    channel anyway).

    In flight alone is not enough: a handler runs without yielding the loop, so between two queued
    requests none is in flight, and a relay that only waited for that would take its turn between every
    two acks. A lull of a few milliseconds tells a stream of requests from people clicking now and then."""

    def __init__(self, *, lull: float = 0.005) -> None:
        self.in_flight = 0
        self.lull = lull
        self._last = float("-inf")  # loop time a request last came or went
        self._quiet = asyncio.Event()
        self._quiet.set()

    def __enter__(self) -> None:
        self.in_flight += 1
        self._quiet.clear()

    def __exit__(self, *_: object) -> None:
        self.in_flight -= 1
        self._last = asyncio.get_running_loop().time()
        if not self.in_flight:
            self._quiet.set()

    async def quiet(self, *, at_most: float) -> bool:
        """Wait for a lull, `at_most` seconds; whether there was one (False: requests are still coming)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + at_most
        while (left := deadline - loop.time()) > 0:
            if self.in_flight:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._quiet.wait(), timeout=left)
                continue
            since = loop.time() - self._last
            if since >= self.lull:
                return True
            await asyncio.sleep(min(self.lull - since, left))
        return not self.in_flight and loop.time() - self._last >= self.lull


class Relay:
    def __init__(
        self,
        *,
        db: Database,
        slack: SlackFacade,
        composer: Composer,
        clock: Callable[[], datetime],
        worker: str = "relay",
        lease: timedelta = timedelta(seconds=120),
        dead_after: timedelta = timedelta(seconds=10),
        batch: int = 50,
        idle_poll: float = 1.0,
        traffic: Traffic | None = None,
        give_way: float = 1.0,
        storm_batch: int = 10,
        token_check: float = 30.0,
        horizon: float = 1.0,
        stale_after: timedelta = timedelta(seconds=3),
        home: Callable[[str], Awaitable[dict[str, Any]]] | None = None,
        on_call: Callable[[str], Awaitable[list[str] | None]] | None = None,
    ) -> None:
        self.db, self.slack, self.composer, self.clock = db, slack, composer, clock
        self.courier = Courier(
            slack=slack, composer=composer, classify=self._classify, home=home, on_call=on_call
        )
        self.lease, self.batch, self.idle_poll = lease, batch, idle_poll
        self.worker, self.dead_after = worker, dead_after
        self.traffic, self.give_way = traffic or Traffic(), give_way
        # In a storm of requests (no lull within give_way) a round claims at most this many rows: loading
        # a full batch's incidents holds the loop, every request in flight waiting behind it.
        self.storm_batch = storm_batch
        # Slack's quotas (bot/quota.py): a row is claimed only when its bucket has room within `horizon`
        # seconds, so the rows that wait for Slack wait in the queue, where a more urgent one can still
        # pass them, not in this process.
        self.quota, self.horizon = slack.pacing.quota, horizon
        self.stale_after = stale_after  # see _left_waiting()
        self._flying: dict[int, asyncio.Task[None]] = {}  # deliveries under way, by outbox id
        self._landed = asyncio.Event()  # a delivery finished: the rows behind it may be deliverable
        self.backlog_log, self._backlog_logged = 60.0, float("-inf")
        # While Slack refuses the token (self.refused: its error), nothing is delivered; auth.test is asked
        # every token_check seconds, and a row missing a scope is tried again at the same pace.
        self.token_check = token_check
        self.refused: str | None = None
        self._scopes_missing: set[str] = set()  # methods logged as refused for a scope, until one works
        self._wake = asyncio.Event()
        self._turn = asyncio.Lock()
        # A round that failed on the database after claiming: what it had delivered (or not attempted)
        # but could not record, settled at the start of the next round; self._suspect: the last round
        # failed, so this worker may hold leases it knows nothing of (a claim whose commit's answer was
        # lost), given back then too. Without this they would wait out the lease.
        self._unsettled: list[tuple[OutboxMessage, Outcome | None]] = []
        self._suspect = False  # a round or a delivery failed to record: settle before claiming again

    def wake(self) -> None:
        self._wake.set()

    async def run(self, stopping: asyncio.Event) -> None:
        """Claim what Slack will take soon, most urgent first, and deliver each row as its own task;
        claim again when one lands (the rows behind it may be next), when woken, or every idle_poll."""
        while not stopping.is_set():
            if self.refused is not None:
                await self._await_token(stopping)
                continue
            lull = await self.traffic.quiet(at_most=self.give_way)
            # Cleared before the claim: a wake or a landing while it runs makes the wait below return
            # at once, where clearing after would lose it and wait out idle_poll.
            self._wake.clear()
            self._landed.clear()
            try:
                await self._log_backlog()
                started = await self.start_deliveries(limit=self.batch if lull else self.storm_batch)
            except Exception:  # the relay must outlive any one bad row or database hiccup
                log.exception("relay pass failed", extra={"event": "relay_failed"})
                started = []
            if started:
                continue
            waiters = [asyncio.ensure_future(event.wait()) for event in (self._wake, self._landed, stopping)]
            await asyncio.wait(waiters, timeout=self.idle_poll, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()
        await asyncio.gather(*self._flying.values(), return_exceptions=True)

    async def _log_backlog(self) -> None:
        """Every backlog_log seconds, while messages wait, the backlog by urgency in the log: in a storm
        the operator sees what waits and for how long, as /healthz and /metrics show it."""
        now = asyncio.get_running_loop().time()
        if now < self._backlog_logged + self.backlog_log:
            return
        self._backlog_logged = now
        async with self.db.read() as session:
            waiting = await health.backlog_by_urgency(session, now=self.clock())
        if waiting:
            label, first = next(iter(waiting.items()))
            log.info(
                f"outbox backlog: {sum(row['count'] for row in waiting.values())} messages; the most urgent "
                f"({label}) has waited {first['oldest_seconds']}s",
                extra={"event": "outbox_backlog", "by_urgency": waiting},
            )

    async def _await_token(self, stopping: asyncio.Event) -> None:
        """Paused: every token_check seconds ask auth.test whether Slack accepts the token again; when
        it does, resume, with the rows held for the token due at once."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), timeout=self.token_check)
        if stopping.is_set():
            return
        try:
            await self.slack.identity()
        except SlackApiError as error:
            if slack_error(error) in TOKEN_ERRORS:
                self.refused = slack_error(error)
            return  # refused still, or Slack answers with something else: ask again later
        except (TimeoutError, aiohttp.ClientError, OSError):
            return
        log.warning(
            "Slack accepts the bot token again; delivery resumed",
            extra={"event": "delivery_resumed", "error": self.refused},
        )
        self.refused = None
        await self.resume_held()

    async def resume_held(self) -> None:
        """Rows held for a token Slack now accepts become due at once (best effort: else in token_check)."""
        try:
            async with self.db.write() as session:
                await outbox.due_now(session, errors=TOKEN_ERRORS, now=self.clock())
        except Exception:  # they come due by themselves within token_check
            log.warning("could not resume held messages now", extra={"event": "resume_failed"})
        self.wake()

    def _pause(self, error: str) -> None:
        if self.refused is None:
            log.error(
                f"delivery paused: {pause_reason(error)}; asking Slack again every {self.token_check:g}s",
                extra={"event": "delivery_paused", "error": error},
            )
        self.refused = error

    async def deliver_once(self, *, limit: int | None = None) -> int:
        """Claim what is deliverable now and deliver it; how many rows were claimed."""
        started = await self.start_deliveries(limit=limit)
        await asyncio.gather(*started, return_exceptions=True)
        return len(started)

    async def start_deliveries(self, *, limit: int | None = None) -> list[asyncio.Task[None]]:
        """Claim rows until `limit` (`batch` unless given) are being delivered, each the head of its lane,
        most urgent first, as Slack's quotas have room for them, and start delivering each; the
        deliveries started."""
        if self._suspect:
            await self._settle_failed_round()
        room = max(0, (self.batch if limit is None else limit) - len(self._flying))
        try:
            rows = await self._claim(room)
        except Exception:  # its commit may have taken leases that nobody here knows of
            self._suspect = True
            raise
        if not rows:
            return []
        incidents = await self._incidents({row.incident_number for row, _ in rows if row.incident_number})
        started = []
        for row, uncertain in rows:
            task = asyncio.ensure_future(self._carry(row, incidents.get(row.incident_number or 0), uncertain))
            self._flying[row.id] = task
            started.append(task)
        return started

    async def _settle_failed_round(self) -> None:
        """A round or a delivery failed on the database: record what was delivered (or give back what was
        not attempted), and give back any other lease this worker holds and is not delivering now,
        claimed by a round that never learnt so. Only rows still leased to this worker: another may
        have taken over the rest."""
        async with self.db.write() as session:
            held = await outbox.held_by(session, worker=self.worker)
            settle = [(row, outcome) for row, outcome in self._unsettled if row.id in held]
            await self._write_outcomes(session, settle, {})
            stray = sorted(held - {row.id for row, _ in settle} - set(self._flying))
            await outbox.release(session, message_ids=stray)
        if settle or stray:
            log.warning(
                "recorded the deliveries of a round that failed",
                extra={"event": "relay_recovered", "recorded": len(settle), "released": len(stray)},
            )
        self._unsettled, self._suspect = [], False

    async def _claim(self, limit: int) -> list[tuple[OutboxMessage, bool]]:
        if limit <= 0:
            return []
        now = self.clock()
        rooms: dict[str, int] = {}
        relays: dict[str, datetime] = {}  # live relays, and when each last beat
        owner = self._owner([])

        def admit(row: OutboxMessage) -> bool:
            if row.id in self._flying:  # this process holds it (its lease looks stale when beats lag)
                return False
            key = row.bucket or row.op
            if (by := owner(key)) != self.worker and not self._left_waiting(row, relays.get(by), now):
                return False
            if key not in rooms:
                rooms[key] = self.quota.room(key, self.horizon)
            if rooms[key] <= 0 and not self.quota.overtakes(key, row.urgency):
                return False
            rooms[key] -= 1
            return True

        async with self.db.write() as session:
            relays = await workers.alive(session, since=now - self.dead_after)
            owner = self._owner(list(relays))
            self.quota.divide(1 / max(1, len(relays)), alone=lambda key: owner(key) == self.worker)
            rows = await outbox.claim(
                session,
                now=now,
                lease=self.lease,
                worker=self.worker,
                dead_after=self.dead_after,
                limit=limit,
                admit=admit,
                scan=limit * 4 * max(1, len(relays)),
            )
        for row, _ in rows:
            self.quota.reserve(row.bucket or row.op, row.urgency)
        return rows

    def _left_waiting(self, row: OutboxMessage, seen: datetime | None, now: datetime) -> bool:
        """Whether a P1's or P2's row is another relay's that has not beaten (`seen`) for `stale_after`:
        a relay that died is known dead only after dead_after, and its pages must not wait that long.
        This relay takes them, at its own share of their buckets."""
        return row.urgency <= quota.URGENT_UP_TO and (seen is None or now - seen >= self.stale_after)

    def _owner(self, relays: list[str]) -> Callable[[str], str]:
        """Which live relay delivers the rows spending a bucket: one per quota.family(), by a hash of its
        name, which then spends those buckets alone. Split between n relays, a bucket's burst and the
        part kept for urgent calls would be split too (a P1's three pages claimed by one relay would go
        n seconds apart), and the workspace's posts would be shared evenly between relays posting
        unevenly."""
        everyone = sorted({*relays, self.worker})

        def owner(key: str) -> str:
            return everyone[zlib.crc32(quota.family(key).encode()) % len(everyone)]

        return owner

    async def _carry(self, row: OutboxMessage, incident: Incident | None, uncertain: bool) -> None:
        """Deliver one claimed row and record how it went (at once: the rows behind it wait for that)."""
        bucket, waiting = row.bucket or row.op, True
        try:
            quota.URGENCY.set(row.urgency)
            outcome: Outcome | None = None
            if self.refused is None:  # paused (Slack refuses the token): given back, not attempted
                # Wait for Slack's quota, most urgent row first, and outside the turn below: one delivery
                # waiting for its method's next token must not hold back the others.
                await self.quota.prepay(self.courier.buckets(row, incident))
                # Its token is spent: the bucket's tokens count it from now, and the next row may be
                # claimed while this one is delivered and recorded.
                self.quota.release(bucket, row.urgency)
                waiting = False
                lull = await self.traffic.quiet(at_most=self.give_way)
                # A request that came in goes first. In a storm of requests (no lull within give_way),
                # deliver one message at a time, taking turns with the requests; but a P1's or P2's page,
                # breach or leadership notice does not queue behind other messages for its turn.
                async with contextlib.nullcontext() if lull or row.urgency <= SKIPS_TURN else self._turn:
                    outcome = await self._deliver(row, incident, uncertain)
                self.quota.refund()
            incidents = {} if incident is None else {incident.number: incident}
            try:
                await self._record([(row, outcome)], incidents)
            except Exception:  # the database failed: settled at the start of the next round
                log.warning("could not record a delivery yet", extra={"event": "record_failed"})
                self._unsettled.append((row, outcome))
                self._suspect = True
                return
            if outcome is not None and outcome.saves and incident is not None:
                for key, value in outcome.saves.items():
                    setattr(incident, key, value)
        finally:
            if waiting:
                self.quota.release(bucket, row.urgency)
            self._flying.pop(row.id, None)
            self._landed.set()

    async def _deliver(self, row: OutboxMessage, incident: Incident | None, uncertain: bool) -> Outcome:
        # After a dropped connection Slack may have done what was asked (the call is never re-sent
        # blindly: SlackFacade.once): check, as for a delivery whose process died.
        uncertain = uncertain or (row.last_error or "").startswith("connection")
        try:
            outcome = await self.courier.perform(row, incident, uncertain)
        except SlackApiError as error:
            return self._classify(row, error)
        except (TimeoutError, aiohttp.ClientError, OSError) as error:
            return Outcome(error=f"connection: {type(error).__name__}", retry_at=self._backoff(row))
        except Exception as error:  # a bug in one message must not hold back the others
            log.exception("delivery failed", extra={"event": "outbox_crashed", "outbox_id": row.id})
            return Outcome(error=f"internal: {type(error).__name__}", retry_at=self._backoff(row))
        method = _scope_method(row.last_error)
        if method in self._scopes_missing and not (outcome.error or "").startswith(MISSING_SCOPE):
            self._scopes_missing.discard(method)
            log.warning(f"Slack accepts {method} again", extra={"event": "scope_granted", "method": method})
        return outcome

    def _classify(self, row: OutboxMessage, error: SlackApiError) -> Outcome:
        code, status = slack_error(error), error.response.status_code
        if code in HARMLESS:
            return Outcome()
        if code in TOKEN_ERRORS:  # the token is global: hold this row in its place and pause everything
            self._pause(code)
            return Outcome(error=code, retry_at=self.clock() + timedelta(seconds=self.token_check))
        if code == MISSING_SCOPE:  # per method: hold this row (and its incident's later ones), ask again
            error_text = _missing_scope(error)
            method = failed_method(error)
            if method not in self._scopes_missing:
                self._scopes_missing.add(method)
                log.error(
                    f"{pause_reason(error_text)}; holding its messages, trying again every "
                    f"{self.token_check:g}s",
                    extra={"event": "scope_missing", "method": method, "scope": needed_scope(error)},
                )
            return Outcome(error=error_text, retry_at=self.clock() + timedelta(seconds=self.token_check))
        if status == 429 or code == "ratelimited":
            headers = error.response.headers or {}
            wait = int(headers.get("Retry-After", headers.get("retry-after", 1)) or 1)
            return Outcome(
                error=f"rate limited; retry after {wait}s", retry_at=self.clock() + timedelta(seconds=wait)
            )
        if code in PERMANENT:
            return Outcome(error=code)
        return Outcome(error=code, retry_at=self._backoff(row))

    def _backoff(self, row: OutboxMessage) -> datetime:
        return self.clock() + timedelta(seconds=min(2 ** max(row.attempts - 1, 0), 60))

    async def _incidents(self, numbers: set[int]) -> dict[int, Incident]:
        if not numbers:
            return {}
        async with self.db.read() as session:
            return await lookup.by_numbers(session, numbers)

    async def _record(
        self, results: list[tuple[OutboxMessage, Outcome | None]], incidents: dict[int, Incident]
    ) -> None:
        async with self.db.write() as session:
            await self._write_outcomes(session, results, incidents)

    async def _write_outcomes(
        self,
        session: AsyncSession,
        results: list[tuple[OutboxMessage, Outcome | None]],
        incidents: dict[int, Incident],
    ) -> None:
        now = self.clock()
        await outbox.delivered(
            session,
            message_ids=[row.id for row, outcome in results if outcome and outcome.error is None],
            now=now,
        )
        # Not attempted: an earlier row of its incident waits for a retry.
        await outbox.release(session, message_ids=[row.id for row, outcome in results if outcome is None])
        for row, outcome in results:
            if outcome is None:
                continue
            incident = incidents.get(row.incident_number or 0)
            fields = {
                "incident_id": self.composer.public_id(incident) if incident else None,
                "op": row.op,
                "outbox_id": row.id,
            }
            if outcome.error is None:  # recorded above, with the round's other deliveries
                log.info("delivered", extra={"event": "outbox_delivered", **fields})
            elif outcome.retry_at is not None:
                await outbox.retry_later(session, message_id=row.id, error=outcome.error, at=outcome.retry_at)
                # A row held for an operator was logged when the pause began, not on each try.
                again = outcome.error == row.last_error and is_held(outcome.error)
                log.log(
                    logging.DEBUG if again else logging.WARNING,
                    "will retry",
                    extra={
                        "event": "outbox_retry",
                        "error": outcome.error,
                        "attempts": row.attempts,
                        **fields,
                    },
                )
            else:
                await outbox.failed(session, message_id=row.id, error=outcome.error, now=now)
                log.error("gave up", extra={"event": "outbox_failed", "error": outcome.error, **fields})
            if outcome.saves and row.incident_number is not None:
                await service.save_slack_refs(session, number=row.incident_number, **outcome.saves)
