"""The web view, served under `/` by the same aiohttp application as Bolt (`/slack/events`).

bot/ calls `install(app, ...)` once. A page is an aiohttp route given in `pages`: behind the guard,
its handler finds the person signed in with `viewer(request)` (also `request[VIEWER]`), renders with
`render(request, "name.html.j2", ...)` (templates/web, HTML-escaped; each template gets `viewer`,
`csrf_field` and `csrf_token`), and puts `{{ csrf_field }}` in every form that changes something: the
guard refuses a POST without it (or without the X-CSRF-Token header) with 403.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from aiohttp import web

from handlers.web.auth import (
    DEFAULT_AUTHORIZE_URL,
    OPEN_PATHS,
    SignInSlack,
    WebSettings,
    WebView,
    guard,
    html_templates,
    routes,
)
from handlers.web.auth import render as render_with
from handlers.web.sessions import SESSION, VIEWER, Session, Viewer, csrf_field, csrf_token, viewer

__all__ = [
    "DEFAULT_AUTHORIZE_URL",
    "OPEN_PATHS",
    "SESSION",
    "VIEWER",
    "WEB",
    "Session",
    "SignInSlack",
    "Viewer",
    "WebSettings",
    "WebView",
    "csrf_field",
    "csrf_token",
    "install",
    "render",
    "viewer",
]

WEB = web.AppKey("web_view", WebView)  # app[WEB]: the web view's shared parts, once installed
OFF = "web_off.html.j2"
# Loaded at install, so that an installation without them fails at start-up rather than at a page.
OWN_TEMPLATES = ("_layout.html.j2", OFF, "signed_in.html.j2", "signed_out.html.j2", "sign_in_refused.html.j2")


def install(
    app: web.Application,
    *,
    settings: WebSettings | None,
    slack: SignInSlack,
    clock: Callable[[], datetime],
    pages: Iterable[web.AbstractRouteDef] = (),
    public: Iterable[str] = (),
) -> None:
    """Sign-in, sign-out, the guard and `pages` on `app`; `/` shows "Signed in as ..." unless a page
    takes it. `public`: more paths that need no session (e.g. "/status" when the status page is
    public; `*` stands for one path segment, a final `/*` for anything below). Without `settings` the
    web view is off: `/` says so and nothing else is served."""
    templates = html_templates()
    for name in OWN_TEMPLATES:
        templates.get_template(name)
    if settings is None:

        async def on_web_off(request: web.Request) -> web.Response:
            return render_with(templates, request, OFF)

        app.router.add_get("/", on_web_off)
        return
    view = WebView(settings=settings, slack=slack, clock=clock, templates=templates)
    app[WEB] = view
    app.middlewares.append(guard(view, open_paths=(*OPEN_PATHS, *public)))
    app.add_routes(routes(view))
    pages = list(pages)
    if not any(isinstance(page, web.RouteDef) and page.path == "/" for page in pages):

        async def on_signed_in(request: web.Request) -> web.Response:
            return view.page(request, "signed_in.html.j2")

        app.router.add_get("/", on_signed_in)
    app.add_routes(pages)


def render(request: web.Request, name: str, *, status: int = 200, **context: Any) -> web.Response:
    """A page of templates/web for a handler behind the guard."""
    return request.app[WEB].page(request, name, status=status, **context)
