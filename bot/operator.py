"""Operator commands that read the store: `tocsin timers [INC-7]` and `tocsin outbox`."""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import TextIO

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from handlers import reports
from handlers.messages import Composer
from handlers.render import Renderer, local
from handlers.replies import describe
from store import metrics, oncall, outbox, overrides, pir, rota, service, timers
from store.db import Database
from store.errors import DomainError, NotFound
from store.models import OutboxMessage

# `--at 2026-12-24T20:00`: ISO 8601 without an offset, read on the schedule's clock
_NAIVE_ISO = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:00)?")


class OperatorError(Exception):
    pass


@contextlib.asynccontextmanager
async def _database(settings: Settings) -> AsyncIterator[Database]:
    """The database, migrated, for one operator command; its errors as one line for the operator."""
    db = Database(settings.database_url)
    try:
        await db.upgrade()
        yield db
    except (SQLAlchemyError, sqlite3.Error) as error:
        raise OperatorError(
            f"database error: {type(error).__name__}: {str(error).splitlines()[0][:200]}"
        ) from None
    except OSError as error:
        raise OperatorError(f"cannot reach the database: {error}") from None
    finally:
        await db.dispose()


async def run(
    command: str,
    settings: Settings,
    *,
    incident: str | None = None,
    days: int = 30,
    output: str = "text",
    schedule: str | None = None,
    at: str | None = None,
    out: TextIO = sys.stdout,
) -> int:
    if command == "report" and not 1 <= days <= 3660:
        raise OperatorError("--days must be between 1 and 3660")
    async with _database(settings) as db, db.read() as session:
        if command == "timers":
            await _timers(session, settings, incident, out)
        elif command == "report":
            figures = await metrics.report(session, policy=settings.policy, now=datetime.now(UTC), days=days)
            text = {"json": lambda r: json.dumps(r, indent=2) + "\n", "csv": reports.as_csv}.get(
                output, reports.as_text
            )(figures)
            out.write(text)
        elif command == "pir":
            await _pir(session, settings, incident or "", out)
        elif command == "oncall":
            await _oncall(session, settings, schedule, at, out)
        else:
            await _outbox(session, settings, out)
    return 0


def _when(moment: datetime | None, settings: Settings) -> str:
    if moment is None:
        return "-"
    return moment.astimezone(settings.policy.timezone).strftime("%Y-%m-%d %H:%M:%S %Z")


async def _timers(session: AsyncSession, settings: Settings, ref: str | None, out: TextIO) -> None:
    policy, number = settings.policy, None
    if ref is not None:
        try:
            number = (await service.find(session, policy=policy, ref=ref)).number
        except NotFound:
            raise OperatorError(f"{ref} not found") from None
    rows = await timers.pending(session, number=number, limit=1000)
    now = datetime.now(UTC)
    print(f"{'incident':<10} {'timer':<18} {'key':<11} {'due':<25} in", file=out)
    for timer in rows:
        left = int((timer.due_at - now).total_seconds())
        print(
            f"{policy.public_id(timer.incident_number) if timer.incident_number else '-':<10} "
            f"{timer.kind:<18} {timer.key or '-':<11} "
            f"{_when(timer.due_at, settings):<25} {'overdue ' if left < 0 else ''}{abs(left)}s",
            file=out,
        )
    print(f"{len(rows)} pending timer{'s' if len(rows) != 1 else ''}", file=out)


async def _pir(session: AsyncSession, settings: Settings, ref: str, out: TextIO) -> None:
    policy = settings.policy
    try:
        incident = await service.find(session, policy=policy, ref=ref)
        facts = await pir.gather(session, incident, policy=policy)
    except DomainError as error:
        raise OperatorError(_plain(describe(error, renderer=Renderer(timezone=policy.timezone)))) from None
    composer = Composer(policy=policy, renderer=Renderer(timezone=policy.timezone))
    out.write(composer.pir_document(facts))


async def _oncall(
    session: AsyncSession, settings: Settings, name: str | None, at: str | None, out: TextIO
) -> None:
    """`tocsin oncall [schedule] [--at TIME]`: who is on call, the next hand-offs, overrides and covers."""
    policy = settings.policy
    if not policy.schedules:
        raise OperatorError("no on-call schedules are configured (app.yaml's `schedules`)")
    try:
        names = [overrides.schedule_named(policy, name).name] if name else sorted(policy.schedules)
        for each in names:
            moment = _moment(at, policy.schedules[each])
            shown = await oncall.listing(session, policy=policy, schedule=each, now=moment)
            out.write(_oncall_text(shown, moment))
    except DomainError as error:
        raise OperatorError(_plain(describe(error, renderer=Renderer(timezone=policy.timezone)))) from None


def _moment(at: str | None, schedule: rota.Schedule) -> datetime:
    """--at: `YYYY-MM-DD HH:MM` on the schedule's clock, or ISO 8601 with its offset; now without it."""
    if not at:
        return datetime.now(UTC)
    try:
        return rota.parse_local(
            at.replace("T", " ", 1)[:16] if _NAIVE_ISO.fullmatch(at) else at, schedule.timezone
        )
    except ValueError as local:
        try:
            given = datetime.fromisoformat(at)
        except ValueError:
            raise OperatorError(f"--at: {local}") from None
        if given.tzinfo is None:
            raise OperatorError(f"--at: {local}") from None
        return given.astimezone(UTC)


def _oncall_text(shown: oncall.OnCall, moment: datetime) -> str:
    zone = shown.schedule.timezone
    now = shown.now
    why = f"override {now.override}" if now.override else f"layer {now.layer}" if now.layer else "no layer"
    lines = [
        f"{shown.schedule.name} ({zone.key}) at {local(moment, zone)}",
        f"  on call: {now.user or 'nobody'}  from {local(now.starts_at, zone)}  until {local(now.ends_at, zone)}  [{why}]",
    ]
    lines += [f"  next:    {local(h.starts_at, zone)}  ->  {h.user or 'nobody'}" for h in shown.next]
    lines += [
        f"  override {o.id}: {o.user}  {local(o.starts_at, zone)} -> {local(o.ends_at, zone)}  (by {o.created_by})"
        for o in shown.overrides
    ]
    lines += [
        f"  cover request {c.id}: {local(c.starts_at, zone)} -> {local(c.ends_at, zone)}  asked by {c.requested_by}, not taken"
        for c in shown.covers
    ]
    return "\n".join(lines) + "\n"


def _plain(sentence: str) -> str:
    """A private answer's sentence for a terminal: without its emoji and mrkdwn's bold."""
    return sentence.split(" ", 1)[1].replace("*", "") if sentence.startswith(":") else sentence


async def _outbox(session: AsyncSession, settings: Settings, out: TextIO) -> None:
    rows = await outbox.undelivered(session, limit=1000, include_failed=True)
    print(
        f"{'id':>6} {'incident':<10} {'op':<15} {'state':<8} {'attempts':>8}  {'created':<25} last error",
        file=out,
    )
    for row in rows:
        state = "failed" if row.failed_at else "pending"
        target = settings.policy.public_id(row.incident_number) if row.incident_number else "-"
        op = _op(row)
        print(
            f"{row.id:>6} {target:<10} {op[:40]:<15} {state:<8} {row.attempts:>8}  {_when(row.created_at, settings):<25} "
            f"{row.last_error or ''}",
            file=out,
        )
    pending = sum(1 for row in rows if row.failed_at is None)
    print(f"{pending} undelivered, {len(rows) - pending} failed", file=out)


def _op(row: OutboxMessage) -> str:
    """The row's operation, with the event a post carries: post:incident_declared."""
    event = (row.payload.get("metadata") or {}).get("event_type") if row.op == "post" else None
    return f"{row.op}:{event}" if event else row.op


async def retry_outbox(
    settings: Settings, *, ids: list[int] | None, out: TextIO = sys.stdout, err: TextIO = sys.stderr
) -> int:
    """`tocsin outbox retry [ID…|--all]`: failed messages back in the queue, due now, in their places
    (they keep their ids); each named as it is re-queued, and each given id that is not a failed
    message named on `err`. Returns how many were re-queued."""
    async with _database(settings) as db, db.write() as session:
        rows = await outbox.requeue_failed(session, message_ids=ids, now=datetime.now(UTC))
        others = await outbox.by_ids(session, message_ids=set(ids or ()) - {row.id for row in rows})
    for row in rows:
        target = settings.policy.public_id(row.incident_number) if row.incident_number else "-"
        print(
            f"re-queued {row.id:>6} {target:<10} {_op(row):<15} (failed: {row.last_error or '?'})", file=out
        )
    for wanted in sorted(set(ids or ()) - {row.id for row in rows}):
        print(f"tocsin outbox retry: {wanted}: {_not_failed(others.get(wanted))}", file=err)
    if rows or ids is None:
        print(f"{len(rows)} message{'s' if len(rows) != 1 else ''} re-queued", file=out)
    return len(rows)


def _not_failed(row: OutboxMessage | None) -> str:
    if row is None:
        return "no such message"
    return "delivered already" if row.delivered_at else "not failed (still pending)"
