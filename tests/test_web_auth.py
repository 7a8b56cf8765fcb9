"""handlers/web: Sign in with Slack, sessions, the guard and CSRF, driven over HTTP against the running
bot and the fake Slack's OpenID endpoints, with a browser that follows redirects one at a time."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.cookies import Morsel
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.config import ConfigError, load_settings
from handlers.web.auth import OPEN_PATHS, _open_paths, id_token_claims, local_path
from handlers.web.sessions import SESSION_COOKIE, SIGN_IN_COOKIE, Signer, Viewer, new_session, session_cookie
from tests.conftest import ROOT, RunningBot
from tests.fakeslack import FakeSlack
from tests.processes import environment, run

PUBLIC = "http://tocsin.test"  # TOCSIN_PUBLIC_URL; the browser reaches it at the bot's own address
OFF = "The web view is off: set SLACK_CLIENT_ID, SLACK_CLIENT_SECRET and TOCSIN_PUBLIC_URL"
HTML = {"Accept": "text/html,application/xhtml+xml"}


def web_env(fake: FakeSlack, public_url: str = PUBLIC) -> dict[str, str]:
    return {
        "SLACK_CLIENT_ID": fake.client_id,
        "SLACK_CLIENT_SECRET": fake.client_secret,
        "TOCSIN_PUBLIC_URL": public_url,
        "SLACK_AUTHORIZE_URL": fake.authorize_url,
    }


@dataclass
class Page:
    status: int
    url: str
    headers: Any
    text: str

    @property
    def location(self) -> str:
        return str(self.headers.get("Location", ""))


@dataclass
class Browser:
    """Keeps its cookies by hand, as aiohttp's jar would hold back Secure ones over the tests' plain HTTP,
    and sees every Set-Cookie (`seen`); the public URL is the bot's own address."""

    http: aiohttp.ClientSession
    bot_url: str
    public_url: str = PUBLIC
    cookies: dict[str, str] = field(default_factory=dict)
    seen: dict[str, Morsel[str]] = field(default_factory=dict)

    def _to_bot(self, url: str) -> tuple[str, bool]:
        """(the address to fetch, whether it is the bot's, so gets the bot's cookies)."""
        if url.startswith("/"):
            return self.bot_url + url, True
        if url.startswith(self.public_url):
            return self.bot_url + url[len(self.public_url) :], True
        return url, url.startswith(self.bot_url)

    async def request(
        self, method: str, url: str, *, headers: dict[str, str] | None = None, **rest: Any
    ) -> Page:
        target, ours = self._to_bot(url)
        sent = {**HTML, **(headers or {})}
        if ours and self.cookies:
            sent["Cookie"] = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        async with self.http.request(method, target, headers=sent, allow_redirects=False, **rest) as response:
            text = await response.text()
            if ours:
                for name, morsel in response.cookies.items():
                    self.seen[name] = morsel
                    if morsel["max-age"] == "0":
                        self.cookies.pop(name, None)
                    else:
                        self.cookies[name] = morsel.value
            return Page(status=response.status, url=url, headers=response.headers, text=text)

    async def get(self, url: str, **rest: Any) -> Page:
        return await self.request("GET", url, **rest)

    async def follow(self, url: str, *, until: Callable[[str], bool] = lambda _: False) -> list[Page]:
        """GET `url` and each redirect after it, until a page that is no redirect or whose address
        `until` accepts (not fetched)."""
        pages = [await self.get(url)]
        while pages[-1].status in (301, 302, 303, 307) and len(pages) < 10:
            if until(pages[-1].location):
                break
            pages.append(await self.get(pages[-1].location))
        return pages


@pytest.fixture
async def web_bot(start_bot: Callable[..., Any], fake: FakeSlack) -> RunningBot:
    running: RunningBot = await start_bot(**web_env(fake))
    return running


def browser_for(bot: RunningBot, http: aiohttp.ClientSession, public_url: str = PUBLIC) -> Browser:
    return Browser(http=http, bot_url=bot.url, public_url=public_url)


async def sign_in(browser: Browser, start: str = "/") -> list[Page]:
    return await browser.follow(start)


def csrf_of(page: Page) -> str:
    found = re.search(r'<input type="hidden" name="csrf_token" value="([^"]+)">', page.text)
    assert found, page.text
    return found.group(1)


def as_someone_else(cookie: str, user: str) -> str:
    """The cookie with another user in its payload and its signature kept."""
    body, signature = cookie.split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    forged = base64.urlsafe_b64encode(json.dumps({**payload, "user": user}).encode()).rstrip(b"=").decode()
    return f"{forged}.{signature}"


def query_of(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


# ---------------------------------------------------------------------- signing in


async def test_signing_in_with_slack_takes_the_person_to_the_page_they_asked_for(
    web_bot: RunningBot, http: aiohttp.ClientSession
) -> None:
    fake = web_bot.fake
    fake.sign_in_as(user="U0ALICE", name="Alice <b>Admin</b>")
    browser = browser_for(web_bot, http)
    pages = await sign_in(browser, "/incidents?state=open")
    asked, login, slack, callback, arrived = pages
    assert (asked.status, asked.location) == (302, "/login?" + urlencode({"next": "/incidents?state=open"}))
    assert login.status == 302 and login.location.startswith(fake.authorize_url + "?")
    sent = query_of(login.location)
    assert sent.keys() == {"response_type", "scope", "client_id", "redirect_uri", "state", "nonce", "team"}
    assert sent["response_type"] == "code" and sent["scope"] == "openid profile"
    assert (sent["client_id"], sent["team"]) == (fake.client_id, fake.team_id)
    assert sent["redirect_uri"] == f"{PUBLIC}/auth/callback"
    assert sent["state"] != sent["nonce"] and len(sent["state"]) >= 32
    assert slack.location.startswith(f"{PUBLIC}/auth/callback?")
    assert query_of(slack.location)["state"] == sent["state"]
    assert (callback.status, callback.location) == (302, "/incidents?state=open")
    assert SESSION_COOKIE in browser.cookies and SIGN_IN_COOKIE not in browser.cookies
    assert (
        arrived.status == 200 and arrived.url == "/incidents?state=open"
    )  # the guard let the person through

    (exchange,) = fake.calls_of("openid.connect.token")
    assert exchange.args["redirect_uri"] == f"{PUBLIC}/auth/callback" and exchange.args["code"]
    assert [call.ok for call in fake.calls_of("openid.connect.userInfo")] == [True]
    home = await browser.get("/")
    assert home.status == 200 and "Signed in as Alice &lt;b&gt;Admin&lt;/b&gt;" in home.text
    assert "<b>Admin" not in home.text
    assert home.headers["X-Frame-Options"] == "DENY" and home.headers["Cache-Control"] == "no-store"


async def test_a_next_page_on_another_site_is_not_followed(
    web_bot: RunningBot, http: aiohttp.ClientSession
) -> None:
    web_bot.fake.sign_in_as(user="U0ALICE", name="Alice")
    pages = await sign_in(browser_for(web_bot, http), "/login?next=//evil.example/steal")
    assert pages[-2].location == "/" and pages[-1].status == 200


async def test_a_callback_with_another_state_or_without_the_sign_in_cookie_is_refused(
    web_bot: RunningBot, http: aiohttp.ClientSession
) -> None:
    fake = web_bot.fake
    fake.sign_in_as(user="U0ALICE", name="Alice")
    browser = browser_for(web_bot, http)
    *_, back = await browser.follow("/login", until=lambda url: url.startswith(PUBLIC))
    callback = back.location
    forged = callback.replace(f"state={query_of(callback)['state']}", "state=someone-elses")
    refused = await browser.get(forged)
    assert refused.status == 400 and "not begun in this browser" in refused.text
    assert "set-cookie" not in {name.lower() for name in refused.headers}
    elsewhere = browser_for(web_bot, http)  # another browser, without the sign-in cookie
    refused = await elsewhere.get(callback)
    assert refused.status == 400 and not elsewhere.cookies
    assert fake.calls_of("openid.connect.token") == []  # no code is exchanged for a sign-in not begun here
    assert (await browser.get(callback)).status == 302 and SESSION_COOKIE in browser.cookies


async def test_a_code_issued_with_another_nonce_is_refused(
    web_bot: RunningBot, http: aiohttp.ClientSession
) -> None:
    web_bot.fake.sign_in_as(user="U0ALICE", name="Alice")
    browser = browser_for(web_bot, http)
    (login,) = await browser.follow("/login", until=lambda _: True)
    tampered = login.location.replace(f"nonce={query_of(login.location)['nonce']}", "nonce=replayed")
    slack = await browser.get(tampered)
    refused = await browser.get(slack.location)
    assert refused.status == 400 and "nonce differs" in refused.text
    assert SESSION_COOKIE not in browser.cookies
    assert web_bot.fake.calls_of("openid.connect.userInfo") == []


async def test_slacks_refusal_of_the_code_is_a_page_not_a_traceback(
    web_bot: RunningBot, http: aiohttp.ClientSession
) -> None:
    web_bot.fake.sign_in_as(user="U0ALICE", name="Alice")
    web_bot.fake.fail_next("openid.connect.token", error="invalid_code")
    pages = await sign_in(browser_for(web_bot, http))
    assert pages[-1].status == 400 and "Slack refused this sign-in (invalid_code)" in pages[-1].text
    assert "Traceback" not in pages[-1].text and "/login" in pages[-1].text


async def test_the_person_who_declines_on_slacks_page_is_told(
    web_bot: RunningBot, http: aiohttp.ClientSession
) -> None:
    browser = browser_for(web_bot, http)
    (login,) = await browser.follow("/login", until=lambda _: True)
    state = query_of(login.location)["state"]
    page = await browser.get(f"/auth/callback?error=access_denied&state={state}")
    assert page.status == 400 and "Slack did not sign you in (access_denied)" in page.text


# ---------------------------------------------------------------------- the workspace


async def test_a_member_of_another_workspace_is_refused_and_its_session_cookie_too(
    web_bot: RunningBot, http: aiohttp.ClientSession
) -> None:
    fake = web_bot.fake
    fake.sign_in_as(user="U0MALLORY", team="T0OTHER", name="Mallory")
    browser = browser_for(web_bot, http)
    pages = await sign_in(browser)
    assert pages[-1].status == 403 and "another Slack workspace" in pages[-1].text
    assert SESSION_COOKIE not in browser.cookies

    # A session issued while the app was installed in T0OTHER, say, signed with the same secret.
    old = session_cookie(
        Signer(fake.client_secret),
        new_session(Viewer(user="U0MALLORY", name="Mallory", team="T0OTHER"), now=datetime.now(UTC)),
    )
    browser.cookies[SESSION_COOKIE] = old
    page = await browser.get("/")
    assert (page.status, page.location) == (302, "/login?next=%2F")
    assert browser.seen[SESSION_COOKIE]["max-age"] == "0"  # cleared
    browser.cookies[SESSION_COOKIE] = old
    assert (await browser.get("/", headers={"Accept": "application/json"})).status == 401


async def test_a_forged_or_expired_session_cookie_is_refused(
    web_bot: RunningBot, http: aiohttp.ClientSession
) -> None:
    fake = web_bot.fake
    member = Viewer(user="U0ALICE", name="Alice", team=fake.team_id)
    browser = browser_for(web_bot, http)
    browser.cookies[SESSION_COOKIE] = session_cookie(
        Signer(fake.client_secret), new_session(member, now=web_bot.clock())
    )
    assert (await browser.get("/")).status == 200  # as the sign-in would have made it
    for forged in (
        session_cookie(Signer("another-secret"), new_session(member, now=web_bot.clock())),
        as_someone_else(browser.cookies[SESSION_COOKIE], "U0ADMIN"),
        "garbage",
    ):
        browser.cookies[SESSION_COOKIE] = forged
        assert (await browser.get("/")).status == 302, forged
    fake.sign_in_as(user="U0ALICE", name="Alice")
    await sign_in(browser)
    assert (await browser.get("/")).status == 200
    web_bot.clock.advance(timedelta(hours=12, minutes=1))
    assert (await browser.get("/", headers={"Accept": "application/json"})).status == 401


# ---------------------------------------------------------------------- cookies


async def test_cookies_are_httponly_samesite_lax_and_secure_behind_https(
    start_bot: Callable[..., Any], fake: FakeSlack, http: aiohttp.ClientSession
) -> None:
    public = "https://tocsin.example.com"
    bot = await start_bot(**web_env(fake, public))
    fake.sign_in_as(user="U0ALICE", name="Alice")
    browser = browser_for(bot, http, public)
    pages = await sign_in(browser)
    assert query_of(pages[1].location)["redirect_uri"] == f"{public}/auth/callback"
    assert pages[-1].status == 200
    for name in (SIGN_IN_COOKIE, SESSION_COOKIE):
        cookie = browser.seen[name]
        assert cookie["httponly"] and cookie["secure"] and cookie["samesite"] == "Lax", (name, cookie)
        assert cookie["path"] == "/"
    assert browser.seen[SESSION_COOKIE]["max-age"] == str(12 * 3600)
    assert browser.seen[SIGN_IN_COOKIE]["max-age"] == "0"  # spent once signed in


async def test_over_plain_http_cookies_are_not_marked_secure(
    web_bot: RunningBot, http: aiohttp.ClientSession
) -> None:
    web_bot.fake.sign_in_as(user="U0ALICE", name="Alice")
    browser = browser_for(web_bot, http)
    await sign_in(browser)
    cookie = browser.seen[SESSION_COOKIE]
    assert cookie["httponly"] and cookie["samesite"] == "Lax" and not cookie["secure"]


# ---------------------------------------------------------------------- CSRF and signing out


async def test_a_form_without_its_csrf_token_is_refused_and_with_it_signs_out(
    web_bot: RunningBot, http: aiohttp.ClientSession
) -> None:
    web_bot.fake.sign_in_as(user="U0ALICE", name="Alice")
    browser = browser_for(web_bot, http)
    *_, home = await sign_in(browser)
    token = csrf_of(home)
    assert f'<meta name="csrf-token" content="{token}">' in home.text
    for data, headers in (({}, {}), ({"csrf_token": "guessed"}, {}), ({}, {"X-CSRF-Token": token[:-1]})):
        refused = await browser.request("POST", "/logout", data=data, headers=headers)
        assert refused.status == 403 and "security token" in refused.text, (data, headers)
        assert SESSION_COOKIE in browser.cookies
    out = await browser.request("POST", "/logout", data={"csrf_token": token})
    assert (out.status, out.location) == (303, "/signed-out")
    assert SESSION_COOKIE not in browser.cookies
    page = await browser.get("/signed-out")
    assert page.status == 200 and "signed out" in page.text and 'href="/login"' in page.text
    assert (await browser.get("/")).location == "/login?next=%2F"


async def test_a_script_sends_the_csrf_token_in_a_header(
    web_bot: RunningBot, http: aiohttp.ClientSession
) -> None:
    web_bot.fake.sign_in_as(user="U0ALICE", name="Alice")
    browser = browser_for(web_bot, http)
    *_, home = await sign_in(browser)
    out = await browser.request("POST", "/logout", headers={"X-CSRF-Token": csrf_of(home)})
    assert out.status == 303


async def test_a_post_without_a_session_is_401(web_bot: RunningBot, http: aiohttp.ClientSession) -> None:
    assert (await browser_for(web_bot, http).request("POST", "/logout")).status == 401


# ---------------------------------------------------------------------- the guard


async def test_pages_need_a_session_and_the_service_endpoints_do_not(
    web_bot: RunningBot, http: aiohttp.ClientSession
) -> None:
    browser = browser_for(web_bot, http)
    page = await browser.get("/incidents/INC-7?tab=timeline")
    assert (page.status, page.location) == (
        302,
        "/login?" + urlencode({"next": "/incidents/INC-7?tab=timeline"}),
    )
    page = await browser.get("/incidents", headers={"Accept": "application/json"})
    assert page.status == 401 and "sign in" in page.text
    assert (await browser.get("/healthz")).status == 200
    assert (await browser.get("/metrics")).status == 200
    assert (await web_bot.slack.command("help")).status == 200
    assert (await browser.get("/static/missing.css")).status == 404  # open, and not there


def test_which_paths_need_no_session() -> None:
    is_open = _open_paths((*OPEN_PATHS, "/status"))
    assert all(
        is_open(path) for path in ("/healthz", "/alerts/webhook", "/schedules/platform.ics", "/status")
    )
    assert all(is_open(path) for path in ("/static/app.css", "/static/fonts/a.woff2", "/login"))
    refused = ("/", "/incidents", "/status/x", "/schedules/platform", "/schedules/a/b.ics", "/static/../kb")
    assert not any(is_open(path) for path in refused)
    assert not _open_paths(OPEN_PATHS)("/status")


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("/incidents?state=open", "/incidents?state=open"),
        ("/", "/"),
        ("", "/"),
        ("//evil.example", "/"),
        ("/\\evil.example", "/"),
        ("https://evil.example/", "/"),
        ("incidents", "/"),
        ("/a\r\nSet-Cookie: x=1", "/"),
    ],
)
def test_only_a_local_path_is_kept_as_the_next_page(given: str, kept: str) -> None:
    assert local_path(given) == kept


def test_an_id_token_that_is_no_jwt_is_a_value_error() -> None:
    for token in ("", "a.b", "a.!!!.c", "a.bnVsbA.c"):  # bnVsbA: "null", no object
        with pytest.raises(ValueError):
            id_token_claims(token)


# ---------------------------------------------------------------------- configuration


async def test_without_the_settings_the_web_view_is_off_and_says_so(
    bot: RunningBot, http: aiohttp.ClientSession
) -> None:
    browser = browser_for(bot, http)
    page = await browser.get("/")
    assert page.status == 200 and OFF in page.text
    assert (await browser.get("/login")).status == 404
    assert (await browser.get("/healthz")).status == 200


BASE = {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s", "TOCSIN_CONFIG": str(ROOT / "app.yaml")}


def test_some_of_the_web_settings_are_a_problem_naming_the_missing_ones() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(BASE | {"SLACK_CLIENT_ID": "1.2"})
    assert [line.split(":")[0] for line in caught.value.problems] == [
        "SLACK_CLIENT_SECRET",
        "TOCSIN_PUBLIC_URL",
    ]
    assert "set all three, or none" in caught.value.problems[0]
    assert load_settings(BASE).web is None


@pytest.mark.parametrize(
    "url", ["tocsin.example.com", "ftp://tocsin.example.com", "https://x.example/tocsin"]
)
def test_the_public_url_must_be_a_sites_http_address(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(BASE | {"SLACK_CLIENT_ID": "1.2", "SLACK_CLIENT_SECRET": "s", "TOCSIN_PUBLIC_URL": url})
    assert caught.value.problems[0].startswith(f'TOCSIN_PUBLIC_URL: "{url}"')


def test_the_web_settings_as_read() -> None:
    env = BASE | {
        "SLACK_CLIENT_ID": "1.2",
        "SLACK_CLIENT_SECRET": "s",
        "TOCSIN_PUBLIC_URL": "https://t.example/",
    }
    web = load_settings(env).web
    assert web is not None and web.redirect_uri == "https://t.example/auth/callback" and web.secure
    assert web.authorize_url == "https://slack.com/openid/connect/authorize"


@pytest.mark.slow
async def test_serve_with_some_of_the_web_settings_exits_2_naming_them() -> None:
    env = environment(
        SLACK_BOT_TOKEN="xoxb-1",
        SLACK_SIGNING_SECRET="s",
        TOCSIN_CONFIG=str(ROOT / "app.yaml"),
        SLACK_CLIENT_ID="1.2",
        TOCSIN_PUBLIC_URL="https://tocsin.example.com",
    )
    code, _, err = await run("serve", env=env)
    assert code == 2 and err.splitlines()[0].startswith("SLACK_CLIENT_SECRET: is not set")
    assert len(err.splitlines()) == 1 and "Traceback" not in err


# ---------------------------------------------------------------------- the fake's OpenID endpoints


async def test_the_fake_exchanges_a_code_once_with_the_apps_credentials_and_redirect_uri(
    fake: FakeSlack, http: aiohttp.ClientSession
) -> None:
    fake.sign_in_as(user="U0ALICE", name="Alice")
    redirect_uri = "https://tocsin.example.com/auth/callback"

    async def code() -> str:
        query = {"response_type": "code", "scope": "openid profile", "client_id": fake.client_id}
        query |= {"redirect_uri": redirect_uri, "state": "s", "nonce": "n"}
        async with http.get(fake.authorize_url, params=query, allow_redirects=False) as response:
            assert response.status == 302
            return query_of(response.headers["Location"])["code"]

    client = AsyncWebClient(base_url=fake.api_url)
    credentials = {"client_id": fake.client_id, "client_secret": fake.client_secret}

    async def exchange(**args: str) -> Any:
        return await client.api_call("openid.connect.token", data=args)

    for wrong, error in (
        ({"client_secret": "nope"}, "bad_client_secret"),
        ({"redirect_uri": "https://elsewhere.example/cb"}, "bad_redirect_uri"),
    ):
        with pytest.raises(SlackApiError) as caught:
            await exchange(**(credentials | {"code": await code(), "redirect_uri": redirect_uri} | wrong))
        assert caught.value.response["error"] == error
    # HTTP Basic, as slack_sdk's openid_connect_token sends the credentials.
    basic = base64.b64encode(f"{fake.client_id}:{fake.client_secret}".encode()).decode()
    form = {"code": await code(), "redirect_uri": redirect_uri}
    async with http.post(
        f"{fake.api_url}openid.connect.token", data=form, headers={"Authorization": f"Basic {basic}"}
    ) as response:
        assert (await response.json())["ok"] is True
    given = await code()
    answer = await exchange(**credentials, code=given, redirect_uri=redirect_uri)
    claims = id_token_claims(answer["id_token"])
    assert (claims["nonce"], claims["sub"], claims["https://slack.com/team_id"]) == (
        "n",
        "U0ALICE",
        fake.team_id,
    )
    assert claims["aud"] == fake.client_id and claims["exp"] > claims["iat"]
    with pytest.raises(SlackApiError) as caught:
        await exchange(**credentials, code=given, redirect_uri=redirect_uri)
    assert caught.value.response["error"] == "invalid_code"
    person = await AsyncWebClient(
        base_url=fake.api_url, token=answer["access_token"]
    ).openid_connect_userInfo()
    assert (person["sub"], person["name"], person["https://slack.com/team_id"]) == (
        "U0ALICE",
        "Alice",
        "T0001",
    )
    with pytest.raises(SlackApiError) as caught:
        await AsyncWebClient(base_url=fake.api_url, token="xoxp-unknown").openid_connect_userInfo()
    assert caught.value.response["error"] == "invalid_auth"
