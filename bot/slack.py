"""The one outbound facade between Tocsin and slack_sdk's Web API client."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot import quota
from bot.quota import Quota

log = logging.getLogger("tocsin.slack")
T = TypeVar("T")

# The bot scope each Web API method the facade calls needs; the manifest asks for exactly these.
METHOD_SCOPES = {
    "chat.postMessage": "chat:write",
    "chat.update": "chat:write",
    "conversations.create": "channels:manage",
    "conversations.invite": "channels:manage",
    "conversations.setTopic": "channels:manage",
    "pins.add": "pins:write",
    "conversations.history": "channels:history",
    "files.getUploadURLExternal": "files:write",
    "files.completeUploadExternal": "files:write",
    "conversations.replies": "channels:history",
    "conversations.join": "channels:join",  # to read or invite into a channel the bot had not joined
    "conversations.list": "channels:read",
    "usergroups.users.list": "usergroups:read",
    "usergroups.users.update": "usergroups:write",  # an on-call schedule's group follows its hand-offs
    "users.info": "users:read",
    "conversations.info": "channels:read",  # tocsin check-config --live
    "usergroups.list": "usergroups:read",  # tocsin check-config --live
    "views.open": None,
    "views.publish": None,
    "reactions.add": "reactions:write",
    "chat.getPermalink": None,
    "auth.test": None,
    # Sign in with Slack (handlers/web): called with the app's client credentials and then the person's
    # own token, never the bot token; the person grants the user scopes openid and profile as they sign in.
    "openid.connect.token": None,
    "openid.connect.userInfo": None,
}
INVITE_BATCH = 1000  # conversations.invite takes up to 1000 users
# Errors with which Slack refuses a whole conversations.invite because of one of its users.
_CANNOT_INVITE_ONE = frozenset(
    {
        "cant_invite",
        "cant_invite_self",
        "user_not_found",
        "user_is_bot",
        "user_is_restricted",
        "user_is_ultra_restricted",
        "ura_max_channels",
        "user_disabled",
    }
)
_NO_SUCH_GROUP = frozenset({"no_such_subteam", "subteam_not_found"})
# The slash command and the shortcuts need `commands`; posting to announce/leadership/page channels the
# bot has not joined needs `chat:write.public`; the reaction and pin events that capture a message into
# the timeline need `reactions:read` and `pins:read`.
EXTRA_SCOPES = ("commands", "chat:write.public", "reactions:read", "pins:read")


def bot_scopes() -> list[str]:
    return sorted({scope for scope in METHOD_SCOPES.values() if scope} | set(EXTRA_SCOPES))


# Errors an operator fixes with a new token: nothing can be delivered until then.
TOKEN_ERRORS = frozenset({"invalid_auth", "token_revoked", "account_inactive", "not_authed"})
NAME_TTL = 3600.0  # seconds a display name is used before users.info is asked again
NAME_LOOKUPS_AT_ONCE = 8
# A page's invite and its DMs each ask for a paged group's members, moments apart; the method is Tier 2
# (about 20 calls a minute), so one answer serves both, and a storm's pages of the same group.
GROUP_TTL = 60.0
MAX_NAME_ATTEMPTS = 20  # a taken channel name gets a suffix: name, name-2, ... name-20


def make_client(
    *,
    token: str,
    base_url: str | None,
    session: aiohttp.ClientSession | None = None,
    resend_on_connection_error: bool = True,
    paced: PacedClient.Pacing | None = None,
) -> AsyncWebClient:
    """`resend_on_connection_error=False` for calls that must not be sent twice: after a dropped
    connection Slack may have carried the call out, and only the caller can check (bot/relay.py does).
    `paced`: every call takes its quota first (PacedClient), and a 429 is the caller's to reschedule,
    not slept through here; without it, a 429 is retried after its Retry-After."""
    resend = [AsyncConnectionErrorRetryHandler(max_retry_count=1)] if resend_on_connection_error else []
    options: dict[str, Any] = dict(
        token=token, base_url=base_url or AsyncWebClient.BASE_URL, session=session, timeout=10
    )
    if paced is not None:
        return PacedClient(paced, retry_handlers=resend, **options)
    return AsyncWebClient(
        retry_handlers=[*resend, AsyncRateLimitErrorRetryHandler(max_retry_count=2)], **options
    )


def retry_after(error: SlackApiError) -> float:
    """Seconds Slack asked to wait (its Retry-After header; 1 when it gave none)."""
    headers = error.response.headers or {}
    value = headers.get("Retry-After", headers.get("retry-after", 1))
    try:
        return max(1.0, float(value))
    except (TypeError, ValueError):
        return 1.0


def _nothing(_method: str, _result: str) -> None:
    pass


class PacedClient(AsyncWebClient):
    """slack_sdk's client, each Web API call first taking its quota tokens (bot/quota.py) and counted
    by method and result; a 429 empties its buckets until Retry-After and is raised to the caller."""

    @dataclass
    class Pacing:
        quota: Quota
        observe: Callable[[str, str], None] = _nothing  # (method, "ok" | "ratelimited" | error code)

    def __init__(self, pacing: PacedClient.Pacing, **options: Any) -> None:
        super().__init__(**options)
        self.pacing = pacing

    async def api_call(
        self, api_method: str, *, json: dict | None = None, params: dict | None = None, **rest: Any
    ) -> AsyncSlackResponse:
        args = [a for a in (json, params, rest.get("data")) if isinstance(a, dict)]
        channel = next((str(a["channel"]) for a in args if a.get("channel")), None)
        names = quota.keys(api_method, channel)
        pace = self.pacing.quota
        unpaid, paid = pace.still_to_pay(names)
        # The refill since each token was taken is taken back (Quota.answered), a prepaid one's included.
        taken = {**paid, **await pace.take(unpaid)}
        try:
            response = await super().api_call(api_method, json=json, params=params, **rest)
        except SlackApiError as error:
            limited = error.response.status_code == 429
            if limited:
                pace.refused(names, retry_after(error))
            else:
                for key, sent in taken.items():
                    pace.answered([key], sent=sent)
            self.pacing.observe(api_method, "ratelimited" if limited else slack_error(error))
            raise
        for key, sent in taken.items():
            pace.accepted([key], sent=sent)
        self.pacing.observe(api_method, "ok")
        return response


def slack_error(error: SlackApiError) -> str:
    """Slack's error code, or http_<status> when the body was not Slack's JSON (a 5xx page)."""
    data = error.response.data
    code = data.get("error") if isinstance(data, dict) else None
    return str(code or f"http_{error.response.status_code}")


def _refusal(error: SlackApiError) -> dict[str, Any]:
    """Slack's error answer as a dict, `ok` false and `error` its code (http_<status> for a 5xx page)."""
    data = error.response.data if isinstance(error.response.data, dict) else {}
    return {**data, "ok": False, "error": slack_error(error)}


def failed_method(error: SlackApiError) -> str:
    """The Web API method Slack refused, e.g. chat.postMessage."""
    return str(error.response.api_url or "").rstrip("/").rsplit("/", 1)[-1]


def needed_scope(error: SlackApiError) -> str | None:
    """For missing_scope: the scope Slack says the call needs, or the one the facade knows it needs."""
    data = error.response.data
    needed = data.get("needed") if isinstance(data, dict) else None
    return str(needed) if needed else METHOD_SCOPES.get(failed_method(error))


class NoFreeChannelName(Exception):
    """Every name create_channel tries (the name and its numbered variants) is taken."""

    def __init__(self, name: str) -> None:
        super().__init__(
            f"every channel name from {name} to {candidate_name(name, MAX_NAME_ATTEMPTS)} is taken"
        )
        self.name = name


def candidate_name(name: str, attempt: int) -> str:
    """The name create_channel tries at `attempt` (1: the name itself), within Slack's 80 characters."""
    return name if attempt == 1 else f"{name[: 80 - len(str(attempt)) - 1]}-{attempt}"


def candidate_names(name: str) -> Iterator[str]:
    return (candidate_name(name, attempt) for attempt in range(1, MAX_NAME_ATTEMPTS + 1))


class SlackFacade:
    """Every outbound Web API call goes through here, over one pooled HTTP session."""

    def __init__(self, *, token: str, base_url: str | None, pacing: Quota | None = None) -> None:
        self._token, self._base_url = token, base_url
        # Every Web API call takes its quota tokens first; observe(method, result) counts each call.
        self.pacing = PacedClient.Pacing(quota=pacing or Quota())
        self._session: aiohttp.ClientSession | None = None
        self._client: AsyncWebClient | None = None
        self._once: AsyncWebClient | None = None
        self.known_identity: dict[str, Any] = {}  # auth.test's last answer (user_id, bot_id, ...)
        self._names: dict[str, tuple[str, float]] = {}  # display_names(): name and expiry, by user id
        self._groups: dict[str, tuple[list[str], float]] = {}  # usergroup_members(): members and expiry

    @property
    def client(self) -> AsyncWebClient:
        """Created on first use, inside the running event loop that will use it."""
        if self._client is None:
            self._connect()
        assert self._client is not None
        return self._client

    @property
    def once(self) -> AsyncWebClient:
        """For calls that make something (a channel, a message): never re-sent after a dropped connection,
        which would make it twice. The relay treats such a delivery as uncertain and checks Slack first."""
        if self._once is None:
            self._connect()
        assert self._once is not None
        return self._once

    def _connect(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        self._client = make_client(
            token=self._token, base_url=self._base_url, session=self._session, paced=self.pacing
        )
        self._once = make_client(
            token=self._token,
            base_url=self._base_url,
            session=self._session,
            resend_on_connection_error=False,
            paced=self.pacing,
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
        self._session = self._client = self._once = None

    async def identity(self) -> dict[str, Any]:
        """auth.test: who the token belongs to (raises SlackApiError when Slack refuses the token)."""
        response = await self.client.auth_test()
        self.known_identity = dict(response.data) if isinstance(response.data, dict) else {}
        return self.known_identity

    async def team_id(self) -> str | None:
        """The workspace the bot token is installed in (auth.test's team_id, asked once and kept); None
        while Slack cannot say (logged)."""
        if not self.known_identity.get("team_id"):
            try:
                await self.identity()
            except (SlackApiError, aiohttp.ClientError, TimeoutError) as error:
                code = slack_error(error) if isinstance(error, SlackApiError) else type(error).__name__
                log.warning(
                    "cannot ask Slack for the workspace", extra={"event": "team_unknown", "error": code}
                )
                return None
        team = self.known_identity.get("team_id")
        return str(team) if team else None

    async def openid_token(
        self, *, client_id: str, client_secret: str, code: str, redirect_uri: str
    ) -> dict[str, Any]:
        """openid.connect.token: a Sign in with Slack code exchanged for the person's access token and
        id_token, authorized by the app's client credentials. Slack's refusal (invalid_code,
        bad_redirect_uri...) is returned as its answer, `ok` false: it is the person's to see, not an
        operator's. Never sent twice: a code is good for one exchange."""
        client = self._client_for(token="", resend_on_connection_error=False)
        # The credentials go in the form, which Slack reads as well as HTTP Basic: slack_sdk's
        # openid_connect_token sends Basic through aiohttp's BasicAuth, deprecated since aiohttp 3.14.
        form = {
            "client_id": client_id,
            "client_secret": client_secret,
            "code": code,
            "redirect_uri": redirect_uri,
        }
        try:
            response = await client.api_call("openid.connect.token", data=form)
        except SlackApiError as error:
            return _refusal(error)
        return dict(response.data) if isinstance(response.data, dict) else {}

    async def openid_user(self, *, access_token: str) -> dict[str, Any]:
        """openid.connect.userInfo with the person's access token: who they are (`sub`, `name`,
        `https://slack.com/team_id`); Slack's refusal is returned as its answer, `ok` false."""
        try:
            response = await self._client_for(token=access_token).openid_connect_userInfo()
        except SlackApiError as error:
            return _refusal(error)
        return dict(response.data) if isinstance(response.data, dict) else {}

    def _client_for(self, *, token: str, resend_on_connection_error: bool = True) -> AsyncWebClient:
        """A client for a token other than the bot's ("" for none), on the facade's session and quota."""
        if self._session is None:
            self._connect()
        return make_client(
            token=token,
            base_url=self._base_url,
            session=self._session,
            resend_on_connection_error=resend_on_connection_error,
            paced=self.pacing,
        )

    async def bot_user_id(self) -> str | None:
        if not self.known_identity.get("user_id"):
            await self.identity()
        user_id = self.known_identity.get("user_id")
        return str(user_id) if user_id else None

    async def open_view(self, *, trigger_id: str, view: dict[str, Any]) -> None:
        try:
            await self.client.views_open(trigger_id=trigger_id, view=view)
        except SlackApiError as error:
            log.warning(
                "views.open failed", extra={"event": "views_open_failed", "error": slack_error(error)}
            )

    async def respond(
        self, *, response_url: str, text: str, blocks: list[dict[str, Any]] | None = None
    ) -> None:
        webhook = AsyncWebhookClient(
            response_url, timeout=10, retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=2)]
        )
        response = await webhook.send(
            text=text, blocks=blocks, response_type="ephemeral", replace_original=False
        )
        if response.status_code != 200:
            log.warning(
                "response_url answer failed",
                extra={"event": "respond_failed", "status": response.status_code},
            )

    async def post(
        self,
        *,
        channel: str,
        text: str,
        blocks: list[dict[str, Any]] | None,
        metadata: dict[str, Any] | None,
        thread_ts: str | None = None,
    ) -> str:
        response = await self.once.chat_postMessage(
            channel=channel,
            text=text,
            blocks=blocks or None,
            metadata=metadata,
            thread_ts=thread_ts,
            unfurl_links=False,
        )
        return str(response["ts"])

    async def upload(
        self, *, channel: str, filename: str, title: str, content: str | bytes, comment: str
    ) -> None:
        """A text file shared in the channel (files.getUploadURLExternal + files.completeUploadExternal)."""
        data = {"content": content} if isinstance(content, str) else {"file": content}
        await self.client.files_upload_v2(
            channel=channel, filename=filename, title=title, initial_comment=comment or None, **data
        )

    async def find_posted(
        self, *, channel: str, thread_ts: str | None, delivery_id: int, oldest: float
    ) -> str | None:
        """The ts of a message this bot already posted with `delivery_id` in its metadata, if any."""

        async def read() -> Any:
            if thread_ts:
                return await self.client.conversations_replies(
                    channel=channel, ts=thread_ts, include_all_metadata=True, limit=200
                )
            return await self.client.conversations_history(
                channel=channel, oldest=f"{oldest:.6f}", include_all_metadata=True, limit=200
            )

        try:
            response = await self._as_member(channel, read)
        except SlackApiError as error:
            log.warning(
                "cannot check for a duplicate; posting",
                extra={"event": "history_failed", "error": slack_error(error)},
            )
            return None
        for message in response.get("messages") or []:
            payload = (message.get("metadata") or {}).get("event_payload") or {}
            if payload.get("delivery_id") == delivery_id:
                return str(message["ts"])
        return None

    async def _as_member(self, channel: str, call: Callable[[], Awaitable[T]]) -> T:
        """`call()`, joining the public channel first when Slack says the bot is not in it:
        chat:write.public posts where the bot is no member, but only a member reads history or invites
        people. A private channel cannot be joined: Slack's not_in_channel is raised as it was."""
        try:
            return await call()
        except SlackApiError as error:
            if slack_error(error) != "not_in_channel":
                raise
            outside = error
        try:
            await self.client.conversations_join(channel=channel)
        except SlackApiError as error:
            if slack_error(error) == "method_not_supported_for_channel_type":  # only an invitation lets it in
                raise outside from error
            raise
        return await call()

    async def read_message(self, *, channel: str, ts: str) -> dict[str, Any] | None:
        """The message `ts` of `channel` as Slack keeps it (a thread's reply too), None when Slack has
        none; the bot joins a public channel it must read and is not in."""

        async def read() -> list[dict[str, Any]]:
            found = await self.client.conversations_history(
                channel=channel, latest=ts, inclusive=True, limit=1
            )
            messages = list(found.get("messages") or [])
            if not any(message.get("ts") == ts for message in messages):  # a reply, in its thread
                found = await self.client.conversations_replies(channel=channel, ts=ts, limit=200)
                messages = list(found.get("messages") or [])
            return messages

        try:
            messages = await self._as_member(channel, read)
        except SlackApiError as error:
            log.warning(
                "cannot read a message to capture",
                extra={"event": "capture_read_failed", "error": slack_error(error), "channel": channel},
            )
            return None
        return next((message for message in messages if message.get("ts") == ts), None)

    async def permalink(self, *, channel: str, ts: str) -> str | None:
        try:
            response = await self.client.chat_getPermalink(channel=channel, message_ts=ts)
        except SlackApiError as error:
            log.warning("no permalink", extra={"event": "permalink_failed", "error": slack_error(error)})
            return None
        return str(response.get("permalink") or "") or None

    async def react(self, *, channel: str, ts: str, name: str) -> None:
        await self.client.reactions_add(channel=channel, timestamp=ts, name=name)

    async def publish_home(self, *, user: str, view: dict[str, Any]) -> None:
        await self.client.views_publish(user_id=user, view=view)

    async def update(
        self,
        *,
        channel: str,
        ts: str,
        text: str,
        blocks: list[dict[str, Any]] | None,
        metadata: dict[str, Any] | None,
    ) -> None:
        await self.client.chat_update(
            channel=channel, ts=ts, text=text, blocks=blocks or None, metadata=metadata
        )

    async def create_channel(self, *, name: str) -> tuple[str, str]:
        """Create a public channel; a taken name gets a numbered suffix. Returns (id, name); raises
        NoFreeChannelName when every candidate is taken."""
        for candidate in candidate_names(name):
            try:
                response = await self.once.conversations_create(name=candidate, is_private=False)
            except SlackApiError as error:
                if slack_error(error) == "name_taken":
                    continue
                raise
            channel = response["channel"]
            return str(channel["id"]), str(channel["name"])
        raise NoFreeChannelName(name)

    async def find_created_channel(self, *, name: str, since: float) -> tuple[str, str] | None:
        """The public channel create_channel(name=name) may already have made: one of its candidate names,
        created by this bot at `since` (a Unix time) or later, not archived. Returns (id, name), the
        earliest candidate's if several; None if there is none."""
        me = await self.bot_user_id()  # raises SlackApiError when Slack refuses the token
        order = {candidate: rank for rank, candidate in enumerate(candidate_names(name))}
        found: dict[str, tuple[str, str]] = {}
        cursor: str | None = None
        while True:
            try:
                response = await self.client.conversations_list(
                    types="public_channel", exclude_archived=True, limit=999, cursor=cursor
                )
            except SlackApiError as error:  # e.g. an install without channels:read yet
                log.warning(
                    "cannot look for a channel made already; creating",
                    extra={"event": "channel_list_failed", "error": slack_error(error)},
                )
                return None
            for channel in response.get("channels") or []:
                if (
                    channel.get("name") in order
                    and channel.get("creator") == me
                    and not channel.get("is_archived")
                    and float(channel.get("created") or 0) >= since
                ):
                    found[str(channel["name"])] = (str(channel["id"]), str(channel["name"]))
            cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                break
        return found[min(found, key=order.__getitem__)] if found else None

    async def set_topic(self, *, channel: str, topic: str) -> None:
        await self.client.conversations_setTopic(channel=channel, topic=topic)

    async def pin(self, *, channel: str, ts: str) -> None:
        await self.client.pins_add(channel=channel, timestamp=ts)

    async def usergroup_members(self, *, usergroup: str) -> list[str]:
        """Who is in a user group now (as Slack said within GROUP_TTL seconds); nobody for a group Slack
        does not know (logged)."""
        members, until = self._groups.get(usergroup, ([], 0.0))
        if until > time.monotonic():
            return list(members)
        try:
            response = await self.client.usergroups_users_list(usergroup=usergroup)
        except SlackApiError as error:
            if slack_error(error) not in _NO_SUCH_GROUP:
                raise
            log.warning(
                "user group not found",
                extra={"event": "usergroup_not_found", "usergroup": usergroup, "error": slack_error(error)},
            )
            return []
        members = [str(user) for user in response.get("users") or []]
        self._groups[usergroup] = (members, time.monotonic() + GROUP_TTL)
        return list(members)

    async def set_usergroup_members(self, *, usergroup: str, users: list[str]) -> None:
        """Make `users` the user group's members (the whole list, not a change, so sending it twice does
        no harm); usergroup_members() answers with them from now on."""
        people = list(dict.fromkeys(users))
        response = await self.client.usergroups_users_update(usergroup=usergroup, users=",".join(people))
        group = response.get("usergroup") or {}
        members = [str(user) for user in group.get("users") or people]
        self._groups[usergroup] = (members, time.monotonic() + GROUP_TTL)

    async def invite_members(self, *, channel: str, users: list[str]) -> list[str]:
        """Invite users into a channel, as many as Slack allows; returns those it would not take.

        Slack fails a whole conversations.invite when one of its ids cannot be invited (unknown, a guest,
        the bot itself, already a member) and invites nobody. `force` asks it to invite the others; should
        a batch still be refused for one id, it is split in halves until the bad id stands alone. Only a
        member invites: in a public channel the bot is not in (one an on-call schedule's hand-offs are
        posted to), it joins and tries again."""
        left_out: list[str] = []

        async def attempt(batch: list[str]) -> None:
            try:
                await self.client.conversations_invite(channel=channel, users=",".join(batch), force=True)
            except SlackApiError as error:
                code = slack_error(error)
                if code == "already_in_channel":  # with force, only when every one of them is a member
                    return
                if code not in _CANNOT_INVITE_ONE:
                    raise
                if len(batch) == 1:
                    left_out.append(batch[0])
                    return
                await attempt(batch[: len(batch) // 2])
                await attempt(batch[len(batch) // 2 :])

        async def invite_all() -> None:
            left_out.clear()  # tried again once the bot has joined: only that try's refusals count
            for start in range(0, len(people), INVITE_BATCH):
                await attempt(people[start : start + INVITE_BATCH])

        people = list(dict.fromkeys(users))
        await self._as_member(channel, invite_all)
        if left_out:
            log.warning(
                "could not invite", extra={"event": "invite_left_out", "channel": channel, "users": left_out}
            )
        return left_out

    async def display_names(self, users: Iterable[str]) -> dict[str, str]:
        """Each user's Slack display name (else real name, else user name) by id, from users.info, kept for
        NAME_TTL seconds. An id Slack does not answer for keeps its last known name, or shows as itself."""
        wanted = list(dict.fromkeys(users))
        now = time.monotonic()
        missing = [user for user in wanted if self._names.get(user, ("", 0.0))[1] <= now]
        at_once = asyncio.Semaphore(NAME_LOOKUPS_AT_ONCE)

        async def look_up(user: str) -> None:
            async with at_once:
                try:
                    response = await self.client.users_info(user=user)
                except (SlackApiError, aiohttp.ClientError, TimeoutError) as error:
                    code = slack_error(error) if isinstance(error, SlackApiError) else type(error).__name__
                    log.info(
                        "no display name", extra={"event": "users_info_failed", "user": user, "error": code}
                    )
                    return
            found = response.get("user") or {}
            profile = found.get("profile") or {}
            name = profile.get("display_name") or profile.get("real_name") or found.get("real_name")
            name = name or found.get("name")
            if isinstance(name, str) and name.strip():
                self._names[user] = (name.strip(), time.monotonic() + NAME_TTL)

        await asyncio.gather(*(look_up(user) for user in missing))
        return {user: self._names.get(user, (user, 0.0))[0] for user in wanted}
