"""The outbox relay: delivers each outbox row to Slack once, in order within its incident.

Failures Slack will never accept (channel_not_found, invalid_blocks, ...) are recorded and logged, not
retried; rate limits wait for Retry-After; outages and 5xx back off and try again, holding back the
incident's later messages so they keep their order. Errors an operator can fix pause delivery instead:
a token Slack refuses (TOKEN_ERRORS) stops every delivery until auth.test accepts it again; a missing
scope holds the row that needs it (and its incident's later rows) and tries it again at the same pace.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.slack import (
    TOKEN_ERRORS,
    NoFreeChannelName,
    SlackFacade,
    failed_method,
    needed_scope,
    slack_error,
)
from handlers.messages import Composer
from store import lookup, outbox, service
from store.db import Database
from store.models import Incident, OutboxMessage

log = logging.getLogger("tocsin.relay")

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
HARMLESS = frozenset({"already_in_channel", "cant_invite_self", "already_pinned"})
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


# A paged user group's members are invited into the incident channel, this many at most per group: an
# on-call group has a handful; one of hundreds is a department, and Slack offers its own invite prompt.
GROUP_INVITES = 100
# Members of a paged user group get the page as a DM only if the group has at most this many: an
# on-call rota expects it, a broadcast group does not (its members still see the page in the channel).
GROUP_DMS = 25
_NO_DM = frozenset({"channel_not_found", "user_not_found", "cannot_dm_bot", "user_disabled", "is_archived"})


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


@dataclass
class Outcome:
    error: str | None = None
    retry_at: datetime | None = None
    saves: dict[str, Any] | None = None  # incident columns to store (channel id, card ts, ...)


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
        per_incident: int = 10,
        storm_batch: int = 10,
        token_check: float = 30.0,
    ) -> None:
        self.db, self.slack, self.composer, self.clock = db, slack, composer, clock
        self.lease, self.batch, self.idle_poll = lease, batch, idle_poll
        self.worker, self.dead_after = worker, dead_after
        self.traffic, self.give_way, self.per_incident = traffic or Traffic(), give_way, per_incident
        # In a storm (no lull within give_way) a round claims the heads of at most this many incidents'
        # queues: claiming 50 with the rows behind them (350 rows after a storm of declares) and loading
        # their incidents held the loop for 34 ms, every request in flight waiting behind it. Its messages
        # go one at a time in a storm anyway.
        self.storm_batch = storm_batch
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
        # lost), given back then too. Without this they would wait out the lease (120 s).
        self._unsettled: list[tuple[OutboxMessage, Outcome | None]] = []
        self._suspect = False

    def wake(self) -> None:
        self._wake.set()

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            if self.refused is not None:
                await self._await_token(stopping)
                continue
            lull = await self.traffic.quiet(at_most=self.give_way)
            try:
                delivered = await self.deliver_once(limit=self.batch if lull else self.storm_batch)
            except Exception:  # the relay must outlive any one bad row or database hiccup
                log.exception("relay pass failed", extra={"event": "relay_failed"})
                delivered = 0
            if delivered:
                continue
            self._wake.clear()
            waiters = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stopping.wait())]
            await asyncio.wait(waiters, timeout=self.idle_poll, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()

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
        """Claim what is deliverable now (the heads of up to `limit` incidents' queues, `batch` unless
        given) and deliver it: incidents in parallel, each in order, with one transaction to claim the
        batch and one to record how each delivery went."""
        if self._suspect:
            await self._settle_failed_round()
        self._suspect = True  # until this round has recorded everything it claimed
        async with self.db.write() as session:
            rows = await outbox.claim(
                session,
                now=self.clock(),
                lease=self.lease,
                worker=self.worker,
                dead_after=self.dead_after,
                limit=self.batch if limit is None else limit,
                per_incident=self.per_incident,
            )
        if not rows:
            self._suspect = False
            return 0
        incidents = await self._incidents({row.incident_number for row, _ in rows if row.incident_number})
        queues: dict[int, list[tuple[OutboxMessage, bool]]] = {}
        for row, uncertain in rows:  # an incident's rows in order; messages of no incident stand alone
            queues.setdefault(row.incident_number or -row.id, []).append((row, uncertain))
        results = await asyncio.gather(
            *(self._deliver_queue(queue, incidents.get(key)) for key, queue in queues.items())
        )
        self._unsettled = [result for queue in results for result in queue]
        await self._record(self._unsettled, incidents)
        self._unsettled, self._suspect = [], False
        return len(rows)

    async def _settle_failed_round(self) -> None:
        """The last round failed on the database: record what it delivered (or give back what it did not
        attempt), and give back any other lease this worker still holds, claimed by a round that never
        learnt so. Only rows still leased to this worker: another may have taken over the rest."""
        async with self.db.write() as session:
            held = await outbox.held_by(session, worker=self.worker)
            settle = [(row, outcome) for row, outcome in self._unsettled if row.id in held]
            await self._write_outcomes(session, settle, {})
            stray = sorted(held - {row.id for row, _ in settle})
            await outbox.release_all(session, message_ids=stray)
        if settle or stray:
            log.warning(
                "recorded the deliveries of a round that failed",
                extra={"event": "relay_recovered", "recorded": len(settle), "released": len(stray)},
            )
        self._unsettled, self._suspect = [], False

    async def _deliver_queue(
        self, queue: list[tuple[OutboxMessage, bool]], incident: Incident | None
    ) -> list[tuple[OutboxMessage, Outcome | None]]:
        """One incident's claimed rows, in order; the outcomes to record. A delivery that saves something
        (the channel, the card's ts) is recorded at once, so the bot knows the channel as soon as people
        can see it, and the rows after it see what it saved. After a row that must be retried, the
        rest wait (outcome None: released)."""
        results: list[tuple[OutboxMessage, Outcome | None]] = []
        waiting = False
        for row, uncertain in queue:
            if waiting or self.refused is not None:  # paused: Slack refuses the token
                results.append((row, None))
                continue
            # A request that came in goes first. In a storm (no lull within give_way), deliver one message
            # at a time, taking turns with the requests, not every queue's at once.
            lull = await self.traffic.quiet(at_most=self.give_way)
            async with contextlib.nullcontext() if lull else self._turn:
                outcome = await self._deliver(row, incident, uncertain)
            waiting = outcome.retry_at is not None
            if outcome.saves:
                try:
                    await self._record(
                        [(row, outcome)], {} if incident is None else {incident.number: incident}
                    )
                except Exception:  # the database failed: the round records it with the rest, later
                    log.warning("could not record a delivery yet", extra={"event": "record_failed"})
                    results.append((row, outcome))
                    waiting = True
                    continue
                if incident is not None:
                    for key, value in outcome.saves.items():
                        setattr(incident, key, value)
                continue
            results.append((row, outcome))
        return results

    async def _deliver(self, row: OutboxMessage, incident: Incident | None, uncertain: bool) -> Outcome:
        # After a dropped connection Slack may have done what was asked (the call is never re-sent
        # blindly: SlackFacade.once): check, as for a delivery whose process died.
        uncertain = uncertain or (row.last_error or "").startswith("connection")
        try:
            outcome = await self._perform(row, incident, uncertain)
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
        for row, outcome in results:
            if outcome is None:  # not attempted: an earlier row of its incident waits for a retry
                await outbox.release(session, message_id=row.id)
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

    async def _perform(self, row: OutboxMessage, incident: Incident | None, uncertain: bool) -> Outcome:
        payload = row.payload
        if row.op == "create_channel":
            return await self._create_channel(row, incident, uncertain)
        if row.op in ("invite", "topic", "pin", "refresh"):
            return await self._channel_op(row.op, payload, incident)
        if row.op == "dm":
            return await self._direct_message(payload, incident)
        if row.op == "post":
            return await self._post(row, incident, uncertain)
        if row.op == "upload":
            channel = payload.get("channel") or (incident.channel_id if incident else None)
            if not channel:
                return Outcome(error="no incident channel")
            content = (
                base64.b64decode(payload["content_b64"]) if "content_b64" in payload else payload["content"]
            )
            await self.slack.upload(
                channel=channel,
                filename=payload["filename"],
                title=payload["title"],
                content=content,
                comment=payload["comment"],
            )
            return Outcome()
        return Outcome(error=f"unknown outbox op {row.op!r}")

    async def _create_channel(
        self, row: OutboxMessage, incident: Incident | None, uncertain: bool
    ) -> Outcome:
        name = row.payload["name"]
        if uncertain:  # an earlier try may have made it, unrecorded (a kill, a lost answer, a database error)
            found = await self.slack.find_created_channel(name=name, since=row.created_at.timestamp() - 60)
            if found is not None:
                log.info(
                    "adopted the channel an earlier try made",
                    extra={"event": "channel_adopted", "outbox_id": row.id, "channel": found[0]},
                )
                return Outcome(saves={"channel_id": found[0], "channel_name": found[1]})
        try:
            channel_id, made = await self.slack.create_channel(name=name)
        except (SlackApiError, NoFreeChannelName) as error:
            outcome = (
                self._classify(row, error)
                if isinstance(error, SlackApiError)
                else Outcome(error=f"name_taken: {error}")
            )
            if outcome.retry_at is None and incident is not None and incident.origin_channel_id:
                # The channel can never be made: carry on in the channel the incident was declared in.
                outcome.saves = {"channel_id": incident.origin_channel_id}
            return outcome
        return Outcome(saves={"channel_id": channel_id, "channel_name": made})

    async def _channel_op(self, op: str, payload: dict[str, Any], incident: Incident | None) -> Outcome:
        if incident is not None and op == "refresh":
            await self._refresh(payload["target"], incident, payload)
            return Outcome()
        if incident is None or not incident.channel_id:
            return Outcome(error="no incident channel")
        if op in ("topic", "pin") and not _own_channel(incident):
            # The channel it was declared in (kept when a channel of its own could not be made, or with
            # per_incident off): its topic and pins belong to the people who use it for everything else.
            return Outcome()
        if op == "invite":
            if not _own_channel(incident):  # nobody is pulled into a shared channel (the page DMs them)
                return Outcome()
            users = list(payload["users"])
            for group in payload.get("groups", ()):  # expanded now: a group's members change
                users += (await self.slack.usergroup_members(usergroup=group))[:GROUP_INVITES]
            await self.slack.invite_members(channel=incident.channel_id, users=users)
        elif op == "topic":
            topic = self.composer.topic(incident)  # the incident as it is now, whichever change asked
            if topic == incident.topic:  # conversations.setTopic is Tier 2: only when the text changes
                return Outcome()
            await self.slack.set_topic(channel=incident.channel_id, topic=topic)
            return Outcome(saves={"topic": topic})
        elif op == "pin" and incident.card_ts:
            await self.slack.pin(channel=incident.channel_id, ts=incident.card_ts)
        return Outcome()

    async def _refresh(self, target: str, incident: Incident, payload: dict[str, Any]) -> None:
        if target == "confirmation":  # the reporter's prompt, settled: planned with what happened
            if incident.confirmation_ts and incident.channel_id:
                await self.slack.update(
                    channel=incident.channel_id,
                    ts=incident.confirmation_ts,
                    text=payload["text"],
                    blocks=payload["blocks"],
                    metadata=payload.get("metadata"),
                )
            return
        if target == "card" and incident.card_ts and incident.channel_id:
            message, channel, ts = self.composer.card(incident), incident.channel_id, incident.card_ts
        elif target == "announcement" and incident.announcement_ts and self.composer.policy.announce_channel:
            message, channel, ts = (
                self.composer.announcement(incident),
                self.composer.policy.announce_channel,
                incident.announcement_ts,
            )
        else:
            return
        metadata = self.composer.metadata("incident_declared", incident)
        await self.slack.update(
            channel=channel, ts=ts, text=message.text, blocks=message.blocks, metadata=metadata
        )

    async def _direct_message(self, payload: dict[str, Any], incident: Incident | None) -> Outcome:
        """A page, as a DM from the app to each paged user and each member of a paged user group of at
        most GROUP_DMS members, once each, rendered now so that it links the incident channel. Posted to
        the user's id: Slack delivers it in their DM with the app. Someone Slack will not DM is skipped
        (logged). A DM is not checked against history after an uncertain delivery (that would need
        im:history): at worst a crash mid-delivery sends a page twice."""
        if incident is None:
            return Outcome(error="no incident")
        people = list(payload["users"])
        for group in payload["groups"]:
            members = await self.slack.usergroup_members(usergroup=group)
            if len(members) > GROUP_DMS:
                log.info(
                    "user group too large for DMs",
                    extra={"event": "page_dm_skipped", "usergroup": group, "members": len(members)},
                )
                continue
            people += members
        message = self.composer.page_dm(incident, payload["page"])
        for user in dict.fromkeys(people):
            try:
                await self.slack.post(
                    channel=user, text=message.text, blocks=message.blocks, metadata=payload.get("metadata")
                )
            except SlackApiError as error:
                if slack_error(error) not in _NO_DM:
                    raise
                log.warning(  # one person Slack will not DM (deactivated, a bot) must not stop the rest
                    "page DM refused",
                    extra={"event": "page_dm_failed", "user": user, "error": slack_error(error)},
                )
        return Outcome()

    async def _post(self, row: OutboxMessage, incident: Incident | None, uncertain: bool) -> Outcome:
        payload = row.payload
        channel = payload.get("channel")
        if payload.get("to") == "incident":
            channel = incident.channel_id if incident else None
            if not channel:
                return Outcome(error="no incident channel")
        text, blocks = payload.get("text", ""), payload.get("blocks")
        if payload.get("render") and incident is not None:
            message = (
                self.composer.card(incident)
                if payload["render"] == "card"
                else self.composer.announcement(incident)
            )
            text, blocks = message.text, message.blocks
        thread_ts = incident.announcement_ts if payload.get("thread") == "announcement" and incident else None
        metadata = _tagged(payload.get("metadata"), row.id)
        ts = None
        if uncertain:  # a process died mid-delivery: Slack may have this message already
            ts = await self.slack.find_posted(
                channel=channel,
                thread_ts=thread_ts,
                delivery_id=row.id,
                oldest=row.created_at.timestamp() - 60,
            )
            if ts:
                log.info("already posted", extra={"event": "outbox_recovered", "outbox_id": row.id})
        if ts is None:
            ts = await self.slack.post(
                channel=channel, text=text, blocks=blocks, metadata=metadata, thread_ts=thread_ts
            )
        save_as = payload.get("save_as")
        return Outcome(saves={f"{save_as}_ts": ts} if save_as else None)


def _own_channel(incident: Incident) -> bool:
    """Whether the incident's channel is one Tocsin created (not the channel it was declared in, kept
    when a channel of its own could not be made or with `channels.per_incident: false`)."""
    return bool(incident.channel_name) and incident.channel_id != incident.origin_channel_id


def _tagged(metadata: dict[str, Any] | None, delivery_id: int) -> dict[str, Any] | None:
    """Message metadata carrying the outbox row's id, so a re-delivery can tell it was already posted."""
    if metadata is None:
        return None
    return {**metadata, "event_payload": {**metadata.get("event_payload", {}), "delivery_id": delivery_id}}
