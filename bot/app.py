"""Wiring: `Tocsin(settings)` builds the store, the Slack facade, the relay and the Bolt app, and serves them."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_sdk.errors import SlackApiError

from bot.config import Settings
from bot.observe import CONTENT_TYPE, Metrics, slack_path
from bot.quota import Quota
from bot.relay import HELD, Relay, Traffic, pause_reason
from bot.scheduler import Sweeper, guarded, start_jobs
from bot.slack import TOKEN_ERRORS, SlackFacade, make_client, slack_error
from handlers import alerts, calendar
from handlers import web as web_view
from handlers.deps import Deps
from handlers.home import render_home
from handlers.messages import Composer
from handlers.render import Renderer
from handlers.routes import register
from handlers.web import pages
from handlers.web.live import Live
from store import dashboard, health, overrides, workers
from store.db import Database
from store.home import home_facts

log = logging.getLogger("tocsin")
HEARTBEAT = timedelta(seconds=2)  # how often each process says it is alive
# A button's work runs after its ack has gone (handlers/actions.py). While AFTER_ACK clicks' work is under
# way, the next click's ack waits for one to finish, so a storm of clicks queues at the door, in order,
# rather than in memory; never longer than AFTER_ACK_WAIT seconds, so Slack's 3 seconds are never at risk.
# Sixteen rather than eight: PostgreSQL's clicks under load were bound by round trips (docs/performance.md).
AFTER_ACK = 16
AFTER_ACK_WAIT = 1.0
TOKEN_CHECK_WAIT = 10.0  # seconds start-up waits for auth.test before carrying on without an answer
HEALTH_WAIT = 2.0  # seconds /healthz and /metrics wait for the database to answer a ping
# The `path` label of the request being answered (tocsin_ack_seconds): _counted times the request, and
# only the handler knows what kind of Slack request it was. A context variable rather than the request's
# own storage: aiohttp wants typed keys there, which the aiohttp versions Tocsin supports do not all have.
_ACK_PATH: ContextVar[str] = ContextVar("ack_path", default="other")


class TokenRefused(Exception):
    """Slack refused the bot token at start-up (auth.test): a configuration error."""

    def __init__(self, error: str) -> None:
        super().__init__(f"SLACK_BOT_TOKEN: Slack refuses it ({error}); set the app's Bot User OAuth Token")
        self.error = error


def utcnow() -> datetime:
    return datetime.now(UTC)


def _nobody() -> None:
    """No relay to wake in this process, and none to tell: a separate `tocsin worker` polls the outbox."""


class Tocsin:
    """One running bot: HTTP (`web_app()`), Socket Mode or a background worker.

    `background`: this process runs the relay, the scheduler and a heartbeat (a worker, or a bot that
    does everything itself). Without it, changes are announced through `wake`, which `tocsin serve`
    connects to the worker process it starts (bot/cli.py)."""

    def __init__(
        self,
        settings: Settings,
        *,
        mode: str = "http",
        clock: Callable[[], datetime] = utcnow,
        background: bool = True,
        wake: Callable[[], None] | None = None,
    ) -> None:
        policy = settings.policy
        self.settings, self.clock = settings, clock
        self.mode, self.background = mode, background
        self.db = Database(settings.database_url)
        self.metrics = Metrics()
        self.client = make_client(token=settings.bot_token, base_url=settings.slack_api_url)  # Bolt's own
        self.slack = SlackFacade(
            token=settings.bot_token,
            base_url=settings.slack_api_url,
            pacing=Quota(scale=settings.quota_scale),
        )
        self.slack.pacing.observe = self.metrics.slack_call  # every Web API call, by method and result
        self.renderer = Renderer(timezone=policy.timezone)
        self.composer = Composer(policy=policy, renderer=self.renderer)
        self.worker = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.traffic = Traffic()
        self.relay = Relay(
            traffic=self.traffic,
            db=self.db,
            slack=self.slack,
            composer=self.composer,
            clock=clock,
            worker=self.worker,
            dead_after=HEARTBEAT * 5,
            stale_after=HEARTBEAT * 1.5,  # a relay that missed a beat: its P1s' and P2s' rows are anyone's
            home=self._home_view,
            on_call=self._on_call,
        )
        self.sweeper = Sweeper(
            db=self.db,
            composer=self.composer,
            policy=policy,
            clock=clock,
            wake_relay=self.relay.wake,
            lag=self.metrics.timer_lag,
        )
        self._jobs: AsyncIOScheduler | None = None
        self._tasks: set[asyncio.Future[Any]] = set()
        self._after_ack = asyncio.Semaphore(AFTER_ACK)
        self._stopping = asyncio.Event()
        self._started = False
        self.deps = Deps(
            db=self.db,
            policy=policy,
            composer=self.composer,
            renderer=self.renderer,
            slack=self.slack,
            clock=clock,
            spawn=self.spawn,
            after_ack=self.after_ack,
            wake_relay=self.relay.wake if background else (wake or _nobody),
        )
        self.bolt = self._bolt()
        register(self.bolt, self.deps)
        templates = web_view.html_templates()
        self.live = Live(
            fingerprint=self._dashboard_fingerprint, render=lambda: pages.live_part(self.deps, templates)
        )

    async def _home_view(self, user: str) -> dict[str, Any]:
        """A user's App Home tab as it should show now: rendered when its views.publish is delivered."""
        async with self.db.read() as session:
            facts = await home_facts(session, user=user, now=self.clock(), policy=self.settings.policy)
        return render_home(self.composer, facts)

    async def _on_call(self, schedule: str) -> list[str] | None:
        """Who a schedule's user group should hold now: read when its update is delivered, so that a late
        or retried update sets the person on call then (None: a schedule app.yaml no longer has)."""
        found = self.settings.policy.schedules.get(schedule)
        if found is None:
            return None
        async with self.db.read() as session:
            shift = await overrides.on_call(session, found, at=self.clock())
        return [shift.user] if shift.user else []

    async def _dashboard_fingerprint(self) -> object:
        async with self.db.read() as session:
            return await dashboard.fingerprint(session)

    async def _close_live(self, _: web.Application) -> None:
        self.live.close()  # open dashboards would otherwise hold the shutdown until they time out

    def _bolt(self) -> AsyncApp:
        bolt_log = logging.getLogger("tocsin.bolt")
        bolt_log.setLevel(logging.ERROR)  # Bolt warns that the env token is unused: we authorize ourselves
        bolt = AsyncApp(
            client=self.client,
            signing_secret=self.settings.signing_secret or "socket-mode",
            authorize=self._authorizer(),
            process_before_response=True,
            request_verification_enabled=self.mode == "http",
            logger=bolt_log,
        )
        bolt_log.setLevel(logging.NOTSET)
        return bolt

    def _authorizer(self) -> Callable[..., Awaitable[AuthorizeResult]]:
        """The bot token is known; no auth.test on the request path, so acks never wait on Slack.
        (Bolt passes arguments by parameter name, so this is a plain function, not a method.)"""

        async def authorize(enterprise_id: str | None, team_id: str | None) -> AuthorizeResult:
            return AuthorizeResult(
                enterprise_id=enterprise_id,
                team_id=team_id,
                bot_token=self.settings.bot_token,
                bot_user_id=self.slack.known_identity.get("user_id"),
                bot_id=self.slack.known_identity.get("bot_id"),
            )

        return authorize

    def spawn(self, work: Awaitable[Any]) -> asyncio.Future[Any]:
        """Run `work` after the ack, tracked so shutdown can wait for it."""
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    async def after_ack(self, work: Coroutine[Any, Any, Any]) -> None:
        """Run a click's `work` once its ack has gone, waiting first while AFTER_ACK others run."""
        try:
            await asyncio.wait_for(self._after_ack.acquire(), timeout=AFTER_ACK_WAIT)
        except TimeoutError:  # the database is stalled: ack anyway, the work queues with the rest
            self.spawn(self._as_traffic(work))
            return
        except asyncio.CancelledError:  # no ack will go either: the click was not taken
            work.close()
            raise
        self.spawn(self._as_traffic(work)).add_done_callback(lambda _: self._after_ack.release())

    async def _as_traffic(self, work: Coroutine[Any, Any, Any]) -> None:
        with self.traffic:  # the relay gives way to a click's work as to a request
            await work

    def _finished(self, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background work failed", exc_info=task.exception(), extra={"event": "task_failed"})

    async def start(self) -> None:
        """Raises TokenRefused when Slack refuses the bot token."""
        token_accepted = await self._check_token()
        await self.db.upgrade()
        self._started = True
        if self.background:
            async with self.db.write() as session:
                await workers.register(
                    session,
                    worker_id=self.worker,
                    host=socket.gethostname(),
                    pid=os.getpid(),
                    now=self.clock(),
                )
            if token_accepted:  # messages held for a token Slack refused need not wait for their retry
                await self.relay.resume_held()
            self.spawn(self.relay.run(self._stopping))
            self._jobs = start_jobs(self.sweeper, tick=self.settings.policy.tick, running=self._tasks)
            # A missed heartbeat only lets other workers take over this one's leases sooner.
            self._jobs.add_job(
                guarded(self._beat, "heartbeat", self._tasks),
                "interval",
                seconds=HEARTBEAT.total_seconds(),
                id="heartbeat",
                max_instances=1,
                coalesce=True,
            )
        else:
            self._jobs = AsyncIOScheduler(timezone="UTC")
            self._jobs.start()
        log.info(
            "started",
            extra={
                "event": "started",
                "database": self.db.dialect,
                "mode": self.mode,
                "background": self.background,
            },
        )

    async def _beat(self) -> None:
        async with self.db.write() as session:
            now = self.clock()
            await workers.beat(session, worker_id=self.worker, now=now)
            await workers.prune(session, before=now - timedelta(days=1))

    async def _check_token(self) -> bool:
        """auth.test: whether Slack accepts the bot token (it also tells the bot its own user id). A token
        Slack refuses is a configuration error; Slack out of reach is not (delivery waits for it)."""
        try:
            await asyncio.wait_for(self.slack.identity(), timeout=TOKEN_CHECK_WAIT)
            return True
        except SlackApiError as error:
            if slack_error(error) in TOKEN_ERRORS:
                await self.slack.aclose()
                raise TokenRefused(slack_error(error)) from None
            problem = slack_error(error)
        except (OSError, TimeoutError, aiohttp.ClientError) as error:
            problem = f"{type(error).__name__}: {str(error)[:200]}"
        log.warning(
            "cannot ask Slack whether it accepts the bot token (auth.test); carrying on",
            extra={"event": "auth_test_failed", "error": problem},
        )
        return False

    async def stop(self, grace: float = 5.0) -> None:
        self._stopping.set()
        if not self._started:  # start() failed (its own error said why): nothing ran, nothing to log
            await self.slack.aclose()
            await self.db.dispose()
            return
        if self._jobs is not None:  # no new runs; runs just begun get to register in _tasks
            self._jobs.pause()
            await asyncio.sleep(0)
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._jobs is not None:
            self._jobs.shutdown(wait=False)
        await self.slack.aclose()
        if self.background:
            try:
                async with self.db.write() as session:
                    await workers.retire(session, worker_id=self.worker)
            except Exception:  # stopping anyway; others will see the heartbeat stop
                log.warning("could not retire worker", extra={"event": "retire_failed"})
        await self.db.dispose()
        log.info("stopped", extra={"event": "stopped"})

    # HTTP mode -----------------------------------------------------------------------------------

    def web_app(self) -> web.Application:
        app = web.Application(middlewares=[self._counted])
        app.router.add_post("/slack/events", self._on_slack)
        app.router.add_get("/healthz", self._on_health)
        app.router.add_get("/metrics", self._on_metrics)
        if self.settings.alert_token:  # unset: the alert endpoints do not exist (404)
            app.add_routes(alerts.routes(self.deps, token=self.settings.alert_token))
        if self.settings.calendar_token:  # unset: the calendar feeds do not exist (404)
            app.add_routes(calendar.routes(self.deps, token=self.settings.calendar_token))
        # Under /, behind Sign in with Slack; without its settings, / says the web view is off.
        policy = self.settings.policy
        web_view.install(
            app,
            settings=self.settings.web,
            slack=self.slack,
            clock=self.clock,
            pages=pages.routes(self.deps, self.live),
            public=["/status"] if policy.status_page_enabled and policy.status_page_public else [],
        )
        app.on_shutdown.append(self._close_live)

        async def on_startup(_: web.Application) -> None:
            await self.start()

        async def on_cleanup(_: web.Application) -> None:
            await self.stop()

        app.on_startup.append(on_startup)
        app.on_cleanup.append(on_cleanup)
        return app

    @web.middleware
    async def _counted(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Every POST (Slack's requests and alerts) is traffic the relay gives way to, and is timed by
        path until its answer (tocsin_ack_seconds); health checks and scrapes are neither."""
        if request.method != "POST":
            return await handler(request)
        began = time.perf_counter()
        path = _ACK_PATH.set("alert" if request.path.startswith("/alerts/") else "other")
        try:
            with self.traffic:
                return await handler(request)
        finally:
            self.metrics.acked(_ACK_PATH.get(), time.perf_counter() - began)
            _ACK_PATH.reset(path)

    async def _on_slack(self, request: web.Request) -> web.Response:
        bolt_request = await to_bolt_request(request)
        _ACK_PATH.set(slack_path(bolt_request.body))
        try:
            response = await self.bolt.async_dispatch(bolt_request)
        except Exception:  # Bolt itself fails on some malformed payloads (e.g. `actions: []`)
            log.exception("Slack request failed", extra={"event": "request_failed"})
            return web.Response(status=200)  # a 500 makes Slack retry and show an error marker
        return await to_aiohttp_response(response)

    async def _on_health(self, request: web.Request) -> web.Response:
        """200 "ok"; 200 "degraded" with the reason while messages wait for an operator (a token Slack
        refuses, a missing scope: read from the database, so every replica says so); 503 "unavailable"
        when the database does not answer."""
        try:
            report, cause = await self._health()
        except Exception as error:  # any failure to answer means unhealthy
            return web.json_response({"status": "unavailable", "database": type(error).__name__}, status=503)
        if cause is None:
            return web.json_response({"status": "ok", **report})
        return web.json_response({"status": "degraded", "reason": pause_reason(cause), **report})

    async def _on_metrics(self, request: web.Request) -> web.Response:
        """Prometheus's text format (bot/observe.py); the outbox and timer figures are /healthz's, read
        now. A database that does not answer is tocsin_database_up 0, not a failed scrape: the rest
        still tells what this process did."""
        try:
            report: dict[str, Any] | None = (await self._health())[0]
        except Exception:
            report = None
        return web.Response(body=self.metrics.render(health=report), headers={"Content-Type": CONTENT_TYPE})

    async def _health(self) -> tuple[dict[str, Any], str | None]:
        """store.health's report, with the number of messages held for an operator in its outbox part,
        and the error that holds them, if any."""
        await asyncio.wait_for(self.db.ping(), timeout=HEALTH_WAIT)
        async with self.db.read() as session:
            report = await health.report(session, now=self.clock(), held=HELD)
        held = report.pop("held")
        report["outbox"]["held"] = held["messages"]
        return report, held.get("token") or held.get("scope")
