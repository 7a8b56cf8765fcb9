"""POST /alerts/alertmanager and /alerts/webhook: monitoring alerts open, count and clear incidents.

Each request: check the bearer token, read at most MAX_BODY bytes, parse into an `Alert`, make one call
into store/alerts.py in one transaction with its messages written to the outbox, answer JSON."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from handlers import alert_payloads
from handlers.alert_payloads import BadAlert
from handlers.deps import Deps
from handlers.messages import publish
from store import alerts
from store.alerts import Alert
from store.errors import DomainError
from store.policy import Policy

log = logging.getLogger("tocsin.alerts")
MAX_BODY = 1024 * 1024  # bytes; larger bodies get 413

Parser = Callable[..., Alert]


def routes(deps: Deps, *, token: str) -> list[web.RouteDef]:
    """The two endpoints, for bot/ to add when TOCSIN_ALERT_TOKEN is set."""

    async def on_alert_alertmanager(request: web.Request) -> web.Response:
        return await receive(request, deps, token=token, parse=alert_payloads.from_alertmanager)

    async def on_alert_webhook(request: web.Request) -> web.Response:
        return await receive(request, deps, token=token, parse=alert_payloads.from_webhook)

    return [
        web.post("/alerts/alertmanager", on_alert_alertmanager),
        web.post("/alerts/webhook", on_alert_webhook),
    ]


async def receive(request: web.Request, deps: Deps, *, token: str, parse: Parser) -> web.Response:
    if not _authorized(request, token):
        return _refusal(
            BadAlert(
                "send the header Authorization: Bearer <TOCSIN_ALERT_TOKEN>", status=401, error="unauthorized"
            ),
            headers={"WWW-Authenticate": 'Bearer realm="tocsin"'},
        )
    try:
        alert = parse(alert_payloads.decode(await _body(request)), policy=deps.policy)
        async with deps.db.write() as session:
            receipt = await alerts.receive(session, alert, policy=deps.policy, now=deps.clock())
            for change in receipt.changes:
                await publish(session, change, composer=deps.composer, now=deps.clock())
    except BadAlert as bad:
        return _refusal(bad)
    except DomainError as error:  # the parsers check what the store would refuse; this is a safety net
        return _refusal(BadAlert(f"refused: {error!r}"))
    except (SQLAlchemyError, OSError):  # nothing was stored; Alertmanager retries a 5xx
        log.exception("alert not stored", extra={"event": "alert_failed"})
        return _refusal(
            BadAlert(
                "the database is unavailable; nothing was stored, send it again",
                status=503,
                error="unavailable",
            )
        )
    deps.wake_relay()
    answer = _answer(receipt, alert, deps.policy)
    log.info("alert", extra={"event": "alert", **answer})
    return web.json_response(answer)


def _authorized(request: web.Request, token: str) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


async def _body(request: web.Request) -> bytes:
    too_big = BadAlert(f"the body is over {MAX_BODY:,} bytes", status=413, error="too_large")
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise too_big
    body = bytearray()
    while chunk := await request.content.read(64 * 1024):
        body += chunk
        if len(body) > MAX_BODY:
            raise too_big
    return bytes(body)


def _answer(receipt: alerts.Receipt, alert: Alert, policy: Policy) -> dict[str, Any]:
    incident = receipt.incident
    return {
        "ok": True,
        "result": receipt.result,
        "incident_id": policy.public_id(incident.number) if incident else None,
        "state": incident.state.value if incident else None,
        "count": receipt.count,
        "source": alert.source,
        "status": "firing" if alert.firing else "resolved",
    }


def _refusal(bad: BadAlert, headers: dict[str, str] | None = None) -> web.Response:
    body = {"ok": False, "error": bad.error, "problem": bad.problem}
    log.warning("alert refused", extra={"event": "alert_refused", "status": bad.status, **body})
    return web.json_response(body, status=bad.status, headers=headers)
