"""Sign in with Slack (OpenID Connect), sign-out, and the guard every page of the web view passes.

`GET /login` sends the browser to Slack with a fresh `state` and `nonce`, kept in a short-lived signed
cookie; Slack sends it back to `GET /auth/callback` with a code, which is exchanged (openid.connect.token)
for the person's tokens; the nonce is checked in the id_token, the person read from
openid.connect.userInfo, and only a member of the workspace the app is installed in gets a session.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import secrets
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlencode

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Middleware
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from handlers.render import TEMPLATES
from handlers.web.sessions import (
    SESSION,
    SESSION_COOKIE,
    SESSION_LIFETIME,
    SIGN_IN_COOKIE,
    SIGN_IN_LIFETIME,
    VIEWER,
    Session,
    Signer,
    Viewer,
    b64url_decode,
    clear_cookie,
    csrf_field,
    csrf_given,
    csrf_matches,
    csrf_token,
    new_session,
    read_session,
    session_cookie,
    set_cookie,
)

log = logging.getLogger("tocsin.web")
DEFAULT_AUTHORIZE_URL = "https://slack.com/openid/connect/authorize"
SCOPE = "openid profile"  # who the person is and their name; no email
WEB_TEMPLATES = TEMPLATES / "web"
# Paths that need no session: Slack's and the monitors' endpoints, which carry their own credentials,
# and the sign-in pages themselves. `*` stands for one path segment's characters, a final `/*` for
# anything below.
OPEN_PATHS = (
    "/healthz",
    "/metrics",
    "/slack/events",
    "/alerts/*",
    "/schedules/*.ics",
    "/login",
    "/auth/callback",
    "/signed-out",
    "/static/*",
)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})  # methods that change nothing: no CSRF token asked
PAGE_HEADERS = {
    "Cache-Control": "no-store",  # each page is one person's, and may show what they alone may see
    "X-Frame-Options": "DENY",  # no other site frames a page to trick a click on its buttons
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class WebSettings:
    """SLACK_CLIENT_ID, SLACK_CLIENT_SECRET, TOCSIN_PUBLIC_URL (no trailing slash) and SLACK_AUTHORIZE_URL."""

    client_id: str
    client_secret: str
    public_url: str
    authorize_url: str = DEFAULT_AUTHORIZE_URL

    @property
    def redirect_uri(self) -> str:
        return f"{self.public_url}/auth/callback"

    @property
    def secure(self) -> bool:
        """Behind HTTPS, cookies are sent over HTTPS only."""
        return self.public_url.startswith("https://")


class SignInSlack(Protocol):
    """The part of the Slack facade sign-in uses. Slack's refusals come back as its answer, `ok` false."""

    async def openid_token(
        self, *, client_id: str, client_secret: str, code: str, redirect_uri: str
    ) -> dict[str, Any]: ...

    async def openid_user(self, *, access_token: str) -> dict[str, Any]: ...

    async def team_id(self) -> str | None: ...


class Refused(Exception):
    """A sign-in or a request refused, with the status and the sentence the person is shown."""

    def __init__(self, status: int, reason: str, *, sign_in_again: bool = True) -> None:
        super().__init__(reason)
        self.status, self.reason, self.sign_in_again = status, reason, sign_in_again


def html_templates(directory: Path = WEB_TEMPLATES) -> Environment:
    """The web view's HTML templates: escaped by default, unlike the mrkdwn of handlers/render.py."""
    return Environment(
        loader=FileSystemLoader(directory),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(
    templates: Environment, request: web.Request, name: str, *, status: int = 200, **context: Any
) -> web.Response:
    """An HTML page; every template gets `viewer` (None when nobody is signed in), `csrf_field` and
    `csrf_token`."""
    body = templates.get_template(name).render(
        viewer=request.get(VIEWER), csrf_field=csrf_field(request), csrf_token=csrf_token(request), **context
    )
    return web.Response(text=body, status=status, content_type="text/html", headers=PAGE_HEADERS)


class WebView:
    """What the web view's handlers share, built once by `handlers.web.install`."""

    def __init__(
        self,
        *,
        settings: WebSettings,
        slack: SignInSlack,
        clock: Callable[[], datetime],
        templates: Environment,
    ) -> None:
        self.settings, self.slack, self.clock, self.templates = settings, slack, clock, templates
        self.signer = Signer(settings.client_secret)

    def page(self, request: web.Request, name: str, *, status: int = 200, **context: Any) -> web.Response:
        return render(self.templates, request, name, status=status, **context)

    def refusal(self, request: web.Request, refused: Refused) -> web.Response:
        log.info(
            "web view refused", extra={"event": "web_refused", "status": refused.status, "path": request.path}
        )
        return self.page(
            request,
            "sign_in_refused.html.j2",
            status=refused.status,
            reason=refused.reason,
            sign_in_again=refused.sign_in_again,
        )

    async def installed_team(self) -> str:
        """The workspace the app is installed in (auth.test, kept by the facade once known)."""
        team = await self.slack.team_id()
        if team is None:
            raise Refused(
                503,
                "Tocsin cannot ask Slack which workspace it is installed in just now. Try again in a minute.",
            )
        return team

    async def session(self, request: web.Request) -> Session | None:
        """The request's session: None without one, with one that is not ours or expired, and with one
        from another workspace (the app may have been installed elsewhere since it was issued)."""
        value = request.cookies.get(SESSION_COOKIE)
        found = read_session(self.signer, value, now=self.clock()) if value else None
        if found is None or found.viewer.team != await self.installed_team():
            return None
        return found


def local_path(given: str) -> str:
    """`given` when it is a path on this site (`/incidents?state=open`), else `/`: never another site's
    address (`//evil.example`, `/\\evil.example`, `https://...`), which a crafted sign-in link could hold."""
    if not given.startswith("/") or given.startswith("//") or "\\" in given or len(given) > 2000:
        return "/"
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in given):
        return "/"
    return given


def id_token_claims(id_token: str) -> dict[str, Any]:
    """The claims of an id_token, its signature not checked: it comes straight from Slack's token
    endpoint, over TLS, in answer to a call made with the app's client secret, so no one else could have
    written it (OpenID Connect Core 3.1.3.7 allows this). ValueError when it is not a JWT."""
    parts = id_token.split(".")
    if len(parts) != 3:
        raise ValueError("an id_token has three parts")
    claims = json.loads(b64url_decode(parts[1]))
    if not isinstance(claims, dict):
        raise ValueError("an id_token's payload is a JSON object")
    return claims


def _redirect(location: str, status: int = 302) -> web.Response:
    return web.Response(status=status, headers={"Location": location, "Cache-Control": "no-store"})


def _open_paths(patterns: Iterable[str]) -> Callable[[str], bool]:
    """Whether a path needs no session. A path with a dot segment (`/static/../incidents`) is never open."""

    def as_regex(pattern: str) -> str:
        head, below = (pattern[:-1], ".+") if pattern.endswith("/*") else (pattern, "")
        return (
            "".join("[^/]*" if part == "*" else re.escape(part) for part in re.split(r"(\*)", head)) + below
        )

    matcher = re.compile("|".join(f"(?:{as_regex(pattern)})" for pattern in patterns))
    dots = re.compile(r"(^|/)\.\.?(/|$)")
    return lambda path: matcher.fullmatch(path) is not None and dots.search(path) is None


def guard(view: WebView, *, open_paths: Iterable[str]) -> Middleware:
    """The middleware every request passes: a page outside `open_paths` needs a session of the installed
    workspace (a browser is sent to sign in, anything else gets 401), and a request that may change
    something must send back the session's CSRF token (403 otherwise). Puts the Viewer in
    request[VIEWER] and the Session in request[SESSION]."""
    is_open = _open_paths(open_paths)

    @web.middleware
    async def web_view_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if is_open(request.path):
            return await handler(request)
        try:
            session = await view.session(request)
        except Refused as refused:
            return view.refusal(request, refused)
        if session is None:
            return _sign_in_first(request, view)
        request[VIEWER], request[SESSION] = session.viewer, session
        if request.method not in SAFE_METHODS and not csrf_matches(session, await csrf_given(request)):
            reason = "This form was sent without its security token (or from another site). Go back, reload the page and send it again."
            return view.refusal(request, Refused(403, reason, sign_in_again=False))
        return await handler(request)

    return web_view_guard


def _sign_in_first(request: web.Request, view: WebView) -> web.Response:
    browser = request.method in ("GET", "HEAD") and "text/html" in request.headers.get("Accept", "")
    if browser:
        response = _redirect(f"/login?{urlencode({'next': request.path_qs})}")
    else:
        response = web.Response(status=401, text="sign in first: open /login in a browser\n")
    if SESSION_COOKIE in request.cookies:  # expired, forged, or of another workspace: of no more use
        clear_cookie(response, SESSION_COOKIE, secure=view.settings.secure)
    return response


def routes(view: WebView) -> list[web.RouteDef]:
    """Sign-in, its callback, sign-out and the page that says so."""

    async def on_login(request: web.Request) -> web.Response:
        return await _begin_sign_in(view, next_page=local_path(request.query.get("next", "")))

    async def on_auth_callback(request: web.Request) -> web.Response:
        try:
            return await _finish_sign_in(view, request)
        except Refused as refused:
            return view.refusal(request, refused)

    async def on_logout(request: web.Request) -> web.Response:  # the guard checked its CSRF token
        response = _redirect("/signed-out", status=303)
        clear_cookie(response, SESSION_COOKIE, secure=view.settings.secure)
        return response

    async def on_signed_out(request: web.Request) -> web.Response:
        return view.page(request, "signed_out.html.j2")

    return [
        web.get("/login", on_login),
        web.get("/auth/callback", on_auth_callback),
        web.post("/logout", on_logout),
        web.get("/signed-out", on_signed_out),
    ]


async def _begin_sign_in(view: WebView, *, next_page: str) -> web.Response:
    settings, now = view.settings, view.clock()
    state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    query = {
        "response_type": "code",
        "scope": SCOPE,
        "client_id": settings.client_id,
        "redirect_uri": settings.redirect_uri,
        "state": state,
        "nonce": nonce,
    }
    # Slack then signs the person in to this workspace. A hint only: the person can take it out of the
    # address, so the callback checks the workspace itself.
    team = await view.slack.team_id()
    if team:
        query["team"] = team
    joiner = "&" if "?" in settings.authorize_url else "?"
    response = _redirect(f"{settings.authorize_url}{joiner}{urlencode(query)}")
    pending = view.signer.sign(SIGN_IN_COOKIE, {"state": state, "nonce": nonce, "next": next_page}, now=now)
    set_cookie(response, SIGN_IN_COOKIE, pending, lifetime=SIGN_IN_LIFETIME, secure=settings.secure)
    return response


async def _finish_sign_in(view: WebView, request: web.Request) -> web.Response:
    """The callback: raises Refused (400, 403, 503) without setting anything when the sign-in fails."""
    settings, now = view.settings, view.clock()
    cookie = request.cookies.get(SIGN_IN_COOKIE, "")
    pending = (
        view.signer.unsign(SIGN_IN_COOKIE, cookie, max_age=SIGN_IN_LIFETIME, now=now) if cookie else None
    )
    state = request.query.get("state", "")
    expected = str((pending or {}).get("state") or "")
    if not state or not expected or not hmac.compare_digest(state.encode(), expected.encode()):
        raise Refused(
            400,
            "This sign-in was not begun in this browser, a newer one replaced it, or it took over 10 minutes. Sign in again.",
        )
    if request.query.get("error"):  # e.g. access_denied: the person did not allow it
        raise Refused(400, f"Slack did not sign you in ({request.query['error']}). Sign in again.")
    code = request.query.get("code", "")
    if not code:
        raise Refused(400, "Slack sent no sign-in code. Sign in again.")
    person = await _person(view, code=code, nonce=str((pending or {}).get("nonce") or ""))
    if person.team != await view.installed_team():
        log.warning(
            "sign-in from another workspace", extra={"event": "web_other_workspace", "team": person.team}
        )
        raise Refused(
            403,
            "You signed in to another Slack workspace: only members of the workspace Tocsin is installed in may use it.",
        )
    response = _redirect(local_path(str((pending or {}).get("next") or "/")))
    session = new_session(person, now=now)
    secure = settings.secure
    set_cookie(
        response,
        SESSION_COOKIE,
        session_cookie(view.signer, session),
        lifetime=SESSION_LIFETIME,
        secure=secure,
    )
    clear_cookie(response, SIGN_IN_COOKIE, secure=secure)
    log.info("signed in", extra={"event": "web_signed_in", "user": person.user})
    return response


async def _person(view: WebView, *, code: str, nonce: str) -> Viewer:
    """Who Slack signed in: the code exchanged, the nonce checked in the id_token, the person read."""
    settings = view.settings
    try:
        tokens = await view.slack.openid_token(
            client_id=settings.client_id,
            client_secret=settings.client_secret,
            code=code,
            redirect_uri=settings.redirect_uri,
        )
        _check_answer(tokens)
        try:
            claims = id_token_claims(str(tokens.get("id_token") or ""))
        except ValueError:
            raise Refused(400, "Slack's answer held no id_token Tocsin could read. Sign in again.") from None
        if not nonce or not hmac.compare_digest(str(claims.get("nonce") or "").encode(), nonce.encode()):
            raise Refused(
                400, "This sign-in's code was issued for another sign-in (its nonce differs). Sign in again."
            )
        info = await view.slack.openid_user(access_token=str(tokens.get("access_token") or ""))
        _check_answer(info)
    except (aiohttp.ClientError, TimeoutError, OSError) as error:
        log.warning(
            "cannot reach Slack to sign in",
            extra={"event": "web_slack_unreachable", "error": type(error).__name__},
        )
        raise Refused(503, "Tocsin cannot reach Slack just now. Try again in a minute.") from None
    user, team = info.get("sub"), info.get("https://slack.com/team_id")
    if (
        not isinstance(user, str)
        or not user
        or not isinstance(team, str)
        or not team
        or claims.get("sub") != user
    ):
        raise Refused(400, "Slack's answer did not say who signed in. Sign in again.")
    name = info.get("name")
    return Viewer(user=user, name=name if isinstance(name, str) and name.strip() else user, team=team)


def _check_answer(answer: dict[str, Any]) -> None:
    """A Slack error answer (invalid_code, bad_redirect_uri...) is the person's 400 page, not a traceback."""
    if not answer.get("ok"):
        error = str(answer.get("error") or "no answer")
        log.info("Slack refused a sign-in", extra={"event": "web_sign_in_refused", "error": error})
        raise Refused(400, f"Slack refused this sign-in ({error}). Sign in again.")
