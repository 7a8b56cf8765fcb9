"""`tocsin serve | worker | socket | manifest | check-config | timers | outbox | report | pir`."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from aiohttp import web

from bot import logs, operator, preflight
from bot.app import Tocsin, TokenRefused
from bot.config import (
    DEFAULT_CONFIG,
    ConfigError,
    Settings,
    find_config,
    load_settings,
    parse_policy,
    placeholders,
    read_document,
    slack_references,
)
from bot.manifest import render
from bot.worker import WorkerProcess
from bot.worker import wake_on_stdin as wake_on_stdin_pipe
from handlers.render import TemplatesMissing, check_templates
from store.db import in_memory

log = logging.getLogger("tocsin")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "manifest":
        return _manifest(args.url, socket=args.socket)
    if args.command == "check-config":
        return _check_config(args.path, live=args.live)
    subcommand = SUBCOMMANDS[args.command]
    try:
        settings = load_settings(os.environ, mode=subcommand.mode)
    except ConfigError as error:
        for line in error.problems:
            print(line, file=sys.stderr)
        return 2
    try:
        check_templates()
    except TemplatesMissing as error:
        print(f"tocsin: {error}", file=sys.stderr)
        return 1
    return subcommand.run(settings, args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tocsin", description="Incident management in Slack.")
    parser.add_argument("--version", action="version", version=f"tocsin {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve Slack's HTTP requests at /slack/events")
    serve.add_argument("--host", default="0.0.0.0")
    serve.add_argument("--port", type=int, default=3000)
    serve.add_argument(
        "--worker",
        choices=["process", "inline", "none"],
        default="inline",
        help="where the relay and the scheduler run: this process (inline, the default), a `tocsin worker` "
        "child process at lower CPU priority (process: for PostgreSQL on a machine with cores to spare), or "
        "elsewhere (none: run `tocsin worker` yourself)",
    )
    worker = commands.add_parser("worker", help="run the relay and the scheduler only (no Slack requests)")
    worker.add_argument("--nice", type=int, default=0, help="lower this process's CPU priority by N")
    worker.add_argument("--wake-on-stdin", action="store_true", help=argparse.SUPPRESS)
    commands.add_parser("socket", help="connect to Slack over Socket Mode (needs SLACK_APP_TOKEN)")
    manifest = commands.add_parser("manifest", help="print the Slack app manifest")
    manifest.add_argument("--url", help="public base URL of `tocsin serve`, e.g. https://bot.example.com")
    manifest.add_argument("--socket", action="store_true", help="for Socket Mode (no public URL)")
    timers_cmd = commands.add_parser("timers", help="list pending timers and their due times")
    timers_cmd.add_argument("incident", nargs="?", help="only this incident, e.g. INC-7")
    outbox_cmd = commands.add_parser("outbox", help="list undelivered and failed Slack messages")
    outbox_actions = outbox_cmd.add_subparsers(dest="outbox_action")
    retry = outbox_actions.add_parser("retry", help="put failed messages back in the queue, in order")
    retry.add_argument(
        "ids", nargs="*", type=int, metavar="ID", help="message ids, as `tocsin outbox` lists them"
    )
    retry.add_argument("--all", action="store_true", help="every failed message")
    report = commands.add_parser("report", help="incident figures: MTTA, MTTR, SLA compliance, ...")
    report.add_argument("--days", type=int, default=30)
    report.add_argument("--format", choices=["text", "json", "csv"], default="text")
    pir_cmd = commands.add_parser("pir", help="print an incident's post-incident review draft (Markdown)")
    pir_cmd.add_argument("incident", help="e.g. INC-7")
    oncall_cmd = commands.add_parser("oncall", help="who is on call now (or --at), and the next hand-offs")
    oncall_cmd.add_argument("schedule", nargs="?", help="one schedule (default: every schedule)")
    oncall_cmd.add_argument(
        "--at", help="a moment: YYYY-MM-DD HH:MM on the schedule's clock, or ISO 8601 with an offset"
    )
    check = commands.add_parser("check-config", help="validate app.yaml")
    check.add_argument("path", nargs="?", help=f"default: $TOCSIN_CONFIG or {DEFAULT_CONFIG}")
    check.add_argument(
        "--live",
        action="store_true",
        help="also ask Slack, with SLACK_BOT_TOKEN, whether it knows each channel, user and user group id",
    )
    return parser


def _manifest(url: str | None, *, socket: bool) -> int:
    if not socket and not url:
        print("manifest: give --url https://your-host (HTTP mode) or --socket", file=sys.stderr)
        return 2
    print(render(url=url, socket=socket), end="")
    return 0


def _operator(settings: Settings, args: argparse.Namespace) -> int:
    """timers, outbox, report, pir and oncall: read the database and print."""
    if getattr(args, "outbox_action", None) == "retry":
        return _outbox_retry(settings, args.ids, every=args.all)
    try:
        return asyncio.run(
            operator.run(
                args.command,
                settings,
                incident=getattr(args, "incident", None),
                days=getattr(args, "days", 30),
                output=getattr(args, "format", "text"),
                schedule=getattr(args, "schedule", None),
                at=getattr(args, "at", None),
            )
        )
    except operator.OperatorError as error:
        print(f"tocsin {args.command}: {error}", file=sys.stderr)
        return 1


def _run_serve(settings: Settings, args: argparse.Namespace) -> int:
    return _run(settings, lambda: _serve(settings, args.host, args.port, worker=args.worker))


def _run_worker(settings: Settings, args: argparse.Namespace) -> int:
    def start() -> Coroutine[Any, Any, None]:
        if args.nice:
            os.nice(args.nice)
        return _worker(settings, wake_on_stdin=args.wake_on_stdin)

    return _run(settings, start)


def _run_socket(settings: Settings, args: argparse.Namespace) -> int:
    return _run(settings, lambda: _socket(settings))


def _run(settings: Settings, start: Callable[[], Coroutine[Any, Any, None]]) -> int:
    """Run a long-lived mode until it is stopped; a failed start is one line on stderr, not a traceback."""
    logs.configure(settings.log_level)
    try:
        asyncio.run(start())
    except StartupError as error:
        print(f"tocsin: {error}", file=sys.stderr)
        return 1
    except TokenRefused as error:
        print(error, file=sys.stderr)
        return 2
    return 0


@dataclass(frozen=True)
class Subcommand:
    """A subcommand that runs with settings: the mode load_settings checks them for, and what it runs."""

    mode: str
    run: Callable[[Settings, argparse.Namespace], int]


# manifest and check-config are not here: they run without settings (check-config reads app.yaml
# itself, to name its problems).
SUBCOMMANDS = {
    "serve": Subcommand("http", _run_serve),
    "worker": Subcommand("worker", _run_worker),
    "socket": Subcommand("socket", _run_socket),
    "timers": Subcommand("store", _operator),
    "outbox": Subcommand("store", _operator),
    "report": Subcommand("store", _operator),
    "pir": Subcommand("store", _operator),
    "oncall": Subcommand("store", _operator),
}


class StartupError(Exception):
    pass


def _outbox_retry(settings: Settings, ids: list[int], *, every: bool) -> int:
    if every == bool(ids):
        print("tocsin outbox retry: give message ids or --all (not both)", file=sys.stderr)
        return 2
    try:
        requeued = asyncio.run(operator.retry_outbox(settings, ids=None if every else ids))
    except operator.OperatorError as error:
        print(f"tocsin outbox retry: {error}", file=sys.stderr)
        return 1
    return 0 if requeued or every else 2


def _version() -> str:
    try:
        return version("tocsin")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "(version unknown: not installed)"


def _check_config(given: str | None, *, live: bool) -> int:
    """Exit 0 when app.yaml is usable (placeholder ids are warnings), 2 when it, or with --live an id in
    it or SLACK_BOT_TOKEN, needs fixing, and 1 when --live could not reach Slack to check."""
    try:
        path = find_config(os.environ, given)
        document = read_document(path)
        parse_policy(document)
    except ConfigError as error:
        print("\n".join(error.problems), file=sys.stderr)
        return 2
    references = slack_references(document)
    for line in placeholders(references):
        print(f"warning: {line}", file=sys.stderr)
    if not live:
        print(f"{path}: ok")
        return 0
    try:
        settings = load_settings({**os.environ, "TOCSIN_CONFIG": str(path)}, mode="worker")
    except ConfigError as error:
        print("\n".join(error.problems), file=sys.stderr)
        return 2
    try:
        problems = asyncio.run(
            preflight.check(references, token=settings.bot_token, base_url=settings.slack_api_url)
        )
    except preflight.TokenRefused as error:
        print(
            f"SLACK_BOT_TOKEN: Slack refuses it ({error}); set the app's Bot User OAuth Token",
            file=sys.stderr,
        )
        return 2
    except preflight.SlackUnreachable as error:
        print(f"check-config --live: cannot reach Slack to check ({error})", file=sys.stderr)
        return 1
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 2
    print(f"{path}: ok, and Slack knows all {len({r.id for r in references})} ids it names")
    return 0


def _settle_heap() -> None:
    """After start-up, move what the process has built so far (modules, the app, compiled statements and
    templates) out of the garbage collector's sight. Its full collections then scan only what requests
    create, and no longer pause every request in flight long enough to show in p99 latency."""
    gc.collect()
    gc.freeze()


def _stop_event() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def _serve(settings: Settings, host: str, port: int, *, worker: str = "inline") -> None:
    if worker == "process" and in_memory(settings.database_url):
        worker = "inline"  # another process cannot see this database
    child = WorkerProcess() if worker == "process" else None
    tocsin = Tocsin(settings, mode="http", background=worker == "inline", wake=child.wake if child else None)
    runner = web.AppRunner(tocsin.web_app(), access_log=None)
    try:
        await runner.setup()  # upgrades the schema before the worker starts
        if child is not None:
            await child.start()
    except TokenRefused:
        await runner.cleanup()
        raise
    except Exception as error:
        await runner.cleanup()
        raise StartupError(f"cannot start: {type(error).__name__}: {str(error)[:300]}") from None
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
    except OSError as error:
        if child is not None:
            await child.stop()
        await runner.cleanup()
        raise StartupError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None
    _settle_heap()
    log.info("listening", extra={"event": "listening", "host": host, "port": port, "worker": worker})
    await _stop_event().wait()
    log.info("shutting down", extra={"event": "shutdown"})
    await runner.cleanup()  # finishes the requests in flight; their messages are in the outbox
    if child is not None:
        await child.stop()


async def _worker(settings: Settings, *, wake_on_stdin: bool) -> None:
    tocsin = Tocsin(settings, mode="worker")
    try:
        await tocsin.start()
    except TokenRefused:
        await tocsin.stop()
        raise
    except Exception as error:
        raise StartupError(f"cannot start: {type(error).__name__}: {str(error)[:300]}") from None
    stop = _stop_event()
    if wake_on_stdin:
        tocsin.spawn(wake_on_stdin_pipe(tocsin.relay.wake, stop.set))
    _settle_heap()
    log.info("worker running", extra={"event": "worker_running"})
    await stop.wait()
    await tocsin.stop()


async def _socket(settings: Settings) -> None:
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

    tocsin = Tocsin(settings, mode="socket")
    try:
        await tocsin.start()
    except TokenRefused:
        await tocsin.stop()
        raise
    except Exception as error:
        raise StartupError(f"cannot start: {type(error).__name__}: {str(error)[:300]}") from None
    handler = AsyncSocketModeHandler(tocsin.bolt, settings.app_token, web_client=tocsin.client)
    stop = _stop_event()
    try:
        await handler.connect_async()
        _settle_heap()
        log.info("connected over Socket Mode", extra={"event": "socket_connected"})
        await stop.wait()
    finally:
        await handler.close_async()
        await tocsin.stop()


if __name__ == "__main__":
    sys.exit(main())
