"""Who is looking at the web view: signed cookies, the session they carry, and its CSRF token.

A cookie's value is `<payload>.<signature>`: the payload is base64url JSON with the time it was issued,
the signature an HMAC-SHA256 over the cookie's purpose and the payload, under a key derived from
SLACK_CLIENT_SECRET. The purpose is signed too, so a sign-in cookie cannot pass for a session. Nothing
is kept on the server: a session ends when its cookie expires or the person signs out.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web
from markupsafe import Markup

SESSION_COOKIE = "tocsin_session"
SIGN_IN_COOKIE = "tocsin_sign_in"  # the state, nonce and next page of a sign-in under way
SESSION_LIFETIME = timedelta(hours=12)
SIGN_IN_LIFETIME = timedelta(minutes=10)  # as long as Slack's authorization code lives
CLOCK_SKEW = timedelta(minutes=1)  # replicas' clocks may differ by this much
CSRF_FIELD = "csrf_token"  # the form field
CSRF_HEADER = "X-CSRF-Token"  # or the header, for scripts
_KEY_LABEL = b"tocsin web view cookies v1"


@dataclass(frozen=True)
class Viewer:
    """The person signed in: their Slack user id, name and workspace (team) id."""

    user: str
    name: str
    team: str


@dataclass(frozen=True)
class Session:
    viewer: Viewer
    issued_at: datetime
    csrf: str  # the token each form that changes something must send back


def _request_key(name: str, kind: type) -> Any:
    """A key for the request's storage: aiohttp 3.14 and later warn about plain strings and offer typed
    keys; the versions before have only strings, so there the key is the plain name."""
    make = getattr(web, "RequestKey", None)
    return make(name, kind) if make is not None else name


VIEWER = _request_key("viewer", Viewer)  # request[VIEWER]: the Viewer, on every page behind the guard
SESSION = _request_key("session", Session)  # request[SESSION]: their Session


class Signer:
    """Signs and checks cookie values under one key, each for a purpose."""

    def __init__(self, secret: str) -> None:
        # A key of its own, so that a cookie's signature tells nothing about the client secret.
        self._key = hmac.new(secret.encode(), _KEY_LABEL, hashlib.sha256).digest()

    def sign(self, purpose: str, payload: dict[str, Any], *, now: datetime) -> str:
        body = _encode(json.dumps({**payload, "iat": int(now.timestamp())}, separators=(",", ":")).encode())
        return f"{body}.{self._signature(purpose, body)}"

    def unsign(self, purpose: str, value: str, *, max_age: timedelta, now: datetime) -> dict[str, Any] | None:
        """The payload, or None when the value is not one this signer made for `purpose`, or has expired."""
        body, _, signature = value.partition(".")
        if not body or not hmac.compare_digest(signature.encode(), self._signature(purpose, body).encode()):
            return None
        try:
            payload = json.loads(b64url_decode(body))
        except ValueError:
            return None
        issued = payload.get("iat") if isinstance(payload, dict) else None
        if not isinstance(issued, int) or isinstance(issued, bool):
            return None
        age = now.timestamp() - issued
        if age > max_age.total_seconds() or age < -CLOCK_SKEW.total_seconds():
            return None
        return payload

    def _signature(self, purpose: str, body: str) -> str:
        return _encode(hmac.new(self._key, f"{purpose}.{body}".encode(), hashlib.sha256).digest())


def _encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    """base64url without padding, as JWTs and these cookies write it; ValueError when it is not."""
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error as error:
        raise ValueError(str(error)) from None


def new_session(viewer: Viewer, *, now: datetime) -> Session:
    return Session(viewer=viewer, issued_at=now, csrf=secrets.token_urlsafe(32))


def session_cookie(signer: Signer, session: Session) -> str:
    viewer = session.viewer
    payload = {"user": viewer.user, "name": viewer.name, "team": viewer.team, "csrf": session.csrf}
    return signer.sign(SESSION_COOKIE, payload, now=session.issued_at)


def read_session(signer: Signer, value: str, *, now: datetime) -> Session | None:
    """The session a cookie holds, None when it is not a valid one of ours or is over 12 hours old."""
    payload = signer.unsign(SESSION_COOKIE, value, max_age=SESSION_LIFETIME, now=now)
    if payload is None:
        return None
    fields = {key: payload.get(key) for key in ("user", "name", "team", "csrf")}
    if not all(isinstance(field, str) and field for field in fields.values()):
        return None
    user, name, team, csrf = (str(field) for field in fields.values())
    issued_at = datetime.fromtimestamp(payload["iat"], tz=now.tzinfo)
    return Session(viewer=Viewer(user=user, name=name, team=team), issued_at=issued_at, csrf=csrf)


def set_cookie(
    response: web.StreamResponse, name: str, value: str, *, lifetime: timedelta, secure: bool
) -> None:
    """HttpOnly (no script reads it), SameSite=Lax (no other site's form or script sends it, though a
    link followed from elsewhere does), Secure behind HTTPS."""
    response.set_cookie(
        name,
        value,
        max_age=int(lifetime.total_seconds()),
        path="/",
        httponly=True,
        samesite="Lax",
        secure=secure,
    )


def clear_cookie(response: web.StreamResponse, name: str, *, secure: bool) -> None:
    set_cookie(response, name, "", lifetime=timedelta(0), secure=secure)


def viewer(request: web.Request) -> Viewer:
    """The person signed in, on a page behind the guard."""
    found = request.get(VIEWER)
    if not isinstance(found, Viewer):
        raise LookupError(f"{request.path} is not behind the web view's guard: nobody is signed in")
    return found


def csrf_token(request: web.Request) -> str:
    """The signed-in person's CSRF token ("" when nobody is), for a header a script sends."""
    session = request.get(SESSION)
    return session.csrf if isinstance(session, Session) else ""


def csrf_field(request: web.Request) -> Markup:
    """The hidden input every form that changes something carries (Markup: a str Jinja will not escape)."""
    return Markup('<input type="hidden" name="{}" value="{}">').format(CSRF_FIELD, csrf_token(request))


async def csrf_given(request: web.Request) -> str:
    """The token a request sends back: its X-CSRF-Token header, else its form's csrf_token field."""
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    if request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.post()  # aiohttp keeps the parsed form: the page's handler reads it again
        given = form.get(CSRF_FIELD)
        return given if isinstance(given, str) else ""
    return ""


def csrf_matches(session: Session, given: str) -> bool:
    return bool(given) and hmac.compare_digest(given.encode(), session.csrf.encode())
