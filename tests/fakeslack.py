"""A fake Slack: the Web API, response URLs, file uploads and Socket Mode, on a real aiohttp server.

Tests reach it through slack_sdk's own clients (``AsyncWebClient(base_url=fake.api_url)``) and then
assert on what it recorded: ``calls``, ``messages``, ``ephemerals``, ``views``, ``files``,
``responses``, and ``problems`` (protocol mistakes: calls Slack's own description of its Web API does not
allow, see ``tests/slackspec.py``, and mistakes Slack would let pass or silently drop).

It keeps what a person in Slack would see: who is in each channel (``Message.members`` is the membership
when a message was posted), who a message notified (``notified``, ``reached``), direct messages (``dms``),
what people do there (``add_message``, ``react``, ``pin_by``: the test sends the matching event itself, see
``tests/signed.py``), and each person's Home tab (``home``, ``publishes``).
Faults are scripted: ``fail_next``, ``set_down``, ``revoke_token``, ``lose_answer``.

Sign in with Slack: a browser sent to ``authorize_url`` comes back to the redirect_uri with a code for the
person ``sign_in_as`` named (``authorizations`` records each visit's query); ``openid.connect.token``
exchanges the code, once, for an access token and an id_token carrying the nonce, checking the app's
credentials (``client_id``, ``client_secret``) and the redirect_uri as Slack does; ``openid.connect.userInfo``
answers for that person.

The bot token's scopes are checked only when given (``FakeSlack(scopes=...)``): a method the token lacks
the scope for (NEEDED_SCOPES) is answered ``missing_scope``, naming the scope ``needed``, and without
``chat:write.public`` the bot posts only where it is a member.

Slack's quotas are modelled only when asked (``FakeSlack(rate_limits=True)``, or a ``RateLimits`` of
one's own): a token bucket per method, and for chat.postMessage one per channel under a workspace-wide
one; a call that finds its bucket empty is answered 429 with ``Retry-After`` and not carried out.
``answers()`` counts each method's calls by how they were answered; ``noop_updates`` records each
chat.update that changed nothing, ``metadata_only_updates`` each that changed nothing a person sees.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import hmac
import itertools
import json
import math
import re
import secrets
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TypeVar
from urllib.parse import urlencode

from aiohttp import WSCloseCode, WSMsgType, web
from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.basic_objects import JsonObject
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from tests import slackspec

T = TypeVar("T")

JSON_STRING_FIELDS = ("blocks", "metadata", "view", "files", "attachments")
CHANNEL_NAME = re.compile(r"^[a-z0-9_-]+$")
EMOJI_NAME = re.compile(r"^[a-z0-9_+'-]+(::skin-tone-[2-6])?$")  # a name without its colons
EVENT_TYPE = re.compile(r"^[a-z0-9_]+$")
MAX_CHANNEL_NAME = 80
MAX_TOPIC = 250
MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
MAX_TEXT = 40_000
TRIGGER_LIFETIME = 3.0  # seconds a trigger_id stays usable
OPENID_CODE_LIFETIME = 600.0  # seconds a Sign in with Slack code can be exchanged
# Methods authorized by other credentials than the bot token, which their handlers check: the app's
# client id and secret, or the token of the person who signed in.
OPENID_METHODS = frozenset({"openid.connect.token", "openid.connect.userInfo"})
RESPONSE_URL_USES = 5  # Slack accepts five posts per response_url
MODEL_ERRORS = (SlackObjectFormationError, TypeError, ValueError, KeyError, AttributeError)
HISTORY_LIMIT = 999  # the most conversations.history and .replies return at once
LIST_LIMIT = 1000  # the most conversations.list returns at once
# Mention markup as Slack reads it in mrkdwn: a user, a user group, or everyone in the channel.
USER_MENTION = re.compile(r"<@([UW][A-Z0-9_]+)(?:\|[^>]*)?>")
GROUP_MENTION = re.compile(r"<!subteam\^([A-Z0-9_]+)(?:\|[^>]*)?>")
CHANNEL_MENTION = re.compile(r"<!(?:channel|here|everyone)(?:\|[^>]*)?>")


@dataclass(frozen=True)
class Rate:
    """A token bucket's shape: `burst` calls at once, refilled continuously at `per_minute`."""

    per_minute: float
    burst: int

    @property
    def per_second(self) -> float:
        return self.per_minute / 60


TIER_2 = Rate(20, 5)
TIER_3 = Rate(50, 10)
TIER_4 = Rate(100, 20)
# Slack's published tier of each method (its rate-limit page); a method not named here is Tier 3.
SLACK_TIERS: Mapping[str, Rate] = MappingProxyType(
    {
        **dict.fromkeys(
            (
                "conversations.create",
                "conversations.setTopic",
                "pins.add",
                "usergroups.users.list",
                "usergroups.users.update",
                "usergroups.list",
                "conversations.list",
                "files.completeUploadExternal",
                "files.upload",
            ),
            TIER_2,
        ),
        **dict.fromkeys(
            (
                "conversations.invite",
                "chat.update",
                "conversations.history",
                "conversations.replies",
                "conversations.members",
                "conversations.info",
                "conversations.open",
                "conversations.join",
                "reactions.add",
            ),
            TIER_3,
        ),
        **dict.fromkeys(
            (
                "chat.postEphemeral",
                "views.open",
                "views.update",
                "views.push",
                "users.info",
                "auth.test",
                "files.getUploadURLExternal",
                "views.publish",
                "chat.getPermalink",  # Slack calls its tier "special"; it allows at least Tier 4
            ),
            TIER_4,
        ),
    }
)
POST = "chat.postMessage"  # paced per channel, under a workspace-wide ceiling, instead of by tier

# The bot token scope each method needs, as Slack's page for it says (the 2020 description names older,
# user-token scopes). A method on a conversation needs its kind's: public channel, private channel, DM.
READ = MappingProxyType({"public": "channels:read", "private": "groups:read", "im": "im:read"})
HISTORY = MappingProxyType({"public": "channels:history", "private": "groups:history", "im": "im:history"})
MANAGE = MappingProxyType({"public": "channels:manage", "private": "groups:write", "im": "im:write"})
# Methods not named need no scope (auth.test, chat.getPermalink, views.*).
NEEDED_SCOPES: Mapping[str, str | Mapping[str, str]] = MappingProxyType(
    {
        "users.info": "users:read",
        "usergroups.list": "usergroups:read",
        "usergroups.users.list": "usergroups:read",
        "usergroups.users.update": "usergroups:write",
        "conversations.open": "im:write",
        "conversations.list": READ,  # each kind its `types` asks for
        "conversations.members": READ,
        "conversations.info": READ,
        "conversations.create": MANAGE,  # by `is_private`
        "conversations.invite": MANAGE,
        "conversations.setTopic": MANAGE,
        "conversations.archive": MANAGE,
        "conversations.join": "channels:join",
        "conversations.history": HISTORY,
        "conversations.replies": HISTORY,
        "chat.postMessage": "chat:write",
        "chat.update": "chat:write",
        "chat.postEphemeral": "chat:write",
        "pins.add": "pins:write",
        "reactions.add": "reactions:write",
        "files.getUploadURLExternal": "files:write",
        "files.completeUploadExternal": "files:write",
    }
)
LIST_TYPES = {"public_channel": "public", "private_channel": "private", "im": "im"}


@dataclass(frozen=True)
class RateLimits:
    """Slack's quotas, as the fake enforces them: one bucket per method (`methods`, else `default`) for
    the workspace; chat.postMessage instead takes from its channel's bucket (`per_channel`; a DM posted
    to a user id counts against that user's DM) and from the workspace's (`posts`)."""

    methods: Mapping[str, Rate] = field(default_factory=lambda: SLACK_TIERS)
    default: Rate = TIER_3
    per_channel: Rate = Rate(60, 3)
    posts: Rate = Rate(600, 100)

    def rate(self, method: str) -> Rate:
        return self.methods.get(method, self.default)


class _Bucket:
    """Tokens refilled continuously up to the burst; a call takes one."""

    def __init__(self, rate: Rate, now: float) -> None:
        self.rate = rate
        self.tokens = float(rate.burst)
        self.at = now

    def wait(self, now: float) -> float:
        """Seconds until a token is there (0: one is there now)."""
        self.tokens = min(float(self.rate.burst), self.tokens + (now - self.at) * self.rate.per_second)
        self.at = now
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate.per_second


class Quotas:
    """The buckets of one workspace under `limits`, made as calls first need them."""

    def __init__(self, limits: RateLimits) -> None:
        self.limits = limits
        self._buckets: dict[str, _Bucket] = {}

    def admit(self, method: str, channel: str | None, now: float) -> float:
        """Take a token from each bucket the call draws on, and return 0; or, when any is empty, take
        none and return the seconds until all have one. `channel`: the post's channel (or `@user`)."""
        if method == POST:
            keys = [("post", self.limits.posts)]
            if channel:
                keys.append((f"post {channel}", self.limits.per_channel))
        else:
            keys = [(method, self.limits.rate(method))]
        buckets = [self._bucket(key, rate, now) for key, rate in keys]
        wait = max(bucket.wait(now) for bucket in buckets)
        if wait == 0:
            for bucket in buckets:
                bucket.tokens -= 1
        return wait

    def _bucket(self, key: str, rate: Rate, now: float) -> _Bucket:
        if key not in self._buckets:
            self._buckets[key] = _Bucket(rate, now)
        return self._buckets[key]


@dataclass
class Call:
    """One recorded Web API call; `status` is the HTTP status it was answered with."""

    method: str
    args: dict
    ok: bool
    error: str | None
    at: float
    answered: bool = True  # False when lose_answer() dropped the connection instead of answering
    status: int = 200


@dataclass
class Answers:
    """How Slack answered one method's calls: 200 ok, 200 with an error, 429, another HTTP status."""

    ok: int = 0
    error: int = 0
    ratelimited: int = 0
    failed: int = 0


@dataclass(frozen=True)
class Edit:
    """One chat.update, of the message `ts` in `channel` (its metadata's event type), at wall time `at`."""

    channel: str
    ts: str
    event_type: str | None
    at: float


@dataclass
class Message:
    """A message in a channel: the bot's post (`user` None) or a person's (``FakeSlack.add_message``);
    `history` holds the versions chat.update replaced.

    `members` is who was in the channel when it was posted: Slack notifies only mentioned members."""

    channel: str
    ts: str
    text: str | None
    blocks: list | None
    metadata: dict | None
    thread_ts: str | None
    history: list[dict] = field(default_factory=list)
    members: frozenset[str] = frozenset()
    replies: list[str] = field(default_factory=list)  # the ts of each reply in its thread
    posted_at: float = field(default_factory=time.time)  # wall-clock time it reached the channel
    posted_monotonic: float = field(default_factory=time.monotonic)
    edited_at: list[float] = field(default_factory=list)  # wall-clock time of each chat.update
    user: str | None = None  # the person who posted it; None for the bot
    files: list[dict] = field(default_factory=list)  # file objects shared with it, as Slack shows them
    reactions: dict[str, list[str]] = field(default_factory=dict)  # emoji name -> who, in order
    client_msg_id: str | None = None  # the id a person's Slack client gives what they send

    @property
    def posted(self) -> tuple[str | None, list | None]:
        """(text, blocks) as first posted: an edit notifies nobody."""
        if self.history:
            return self.history[0]["text"], self.history[0]["blocks"]
        return self.text, self.blocks

    @property
    def event_type(self) -> str | None:
        return (self.metadata or {}).get("event_type")

    @property
    def payload(self) -> dict:
        return (self.metadata or {}).get("event_payload") or {}


@dataclass
class Channel:
    id: str
    name: str
    topic: str = ""
    members: set[str] = field(default_factory=set)
    messages: list[Message] = field(default_factory=list)
    pins: list[str] = field(default_factory=list)
    # ts -> (who, when) of its latest pin; kept once unpinned, as pin_removed reports the pin it ended
    pinned_by: dict[str, tuple[str, int]] = field(default_factory=dict)
    is_private: bool = False
    is_archived: bool = False
    created: int = field(default_factory=lambda: int(time.time()))
    creator: str = "U0ADMIN"
    user: str | None = None  # for a DM (D...): the person it is with


@dataclass(frozen=True)
class SignedIn:
    """The person the fake's Sign in with Slack signs in (``FakeSlack.sign_in_as``)."""

    user: str
    team: str
    name: str


@dataclass(frozen=True)
class _Grant:
    """An authorization code the fake issued, for whom, with the nonce and redirect_uri it was asked for."""

    person: SignedIn
    nonce: str | None
    redirect_uri: str
    at: float  # monotonic


@dataclass
class _Fault:
    status: int
    error: str | None
    retry_after: int | None


class SlackError(Exception):
    """Raised by a method handler to answer ``{"ok": false, "error": error, **extra}``."""

    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra


class FakeSlack:
    def __init__(
        self,
        *,
        bot_user_id: str = "UBOT",
        bot_id: str = "BBOT",
        team_id: str = "T0001",
        app_id: str = "A1",
        rate_limits: RateLimits | bool = False,
        scopes: Iterable[str] | None = None,
    ) -> None:
        """`rate_limits`: True for Slack's published quotas, a RateLimits for others, False for none.
        `scopes`: the bot token's (NEEDED_SCOPES); None checks none."""
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.team_id = team_id
        self.app_id = app_id
        self.scopes: frozenset[str] | None = None if scopes is None else frozenset(scopes)
        self.calls: list[Call] = []
        self.channels: dict[str, Channel] = {}
        self.messages: list[Message] = []
        self.ephemerals: list[dict] = []
        self.views: list[dict] = []
        self.files: list[dict] = []
        self.responses: list[dict] = []
        self.problems: list[str] = []
        self.users: dict[str, dict] = {}  # user id -> users.info's user object
        self.usergroups: dict[str, dict] = {}  # group id -> usergroups.list's usergroup object
        limits = RateLimits() if rate_limits is True else rate_limits
        self.quotas = Quotas(limits) if isinstance(limits, RateLimits) else None
        self.noop_updates: list[Edit] = []  # chat.update calls that changed nothing: text, blocks, metadata
        self.metadata_only_updates: list[Edit] = []  # ... that changed the metadata alone, nothing shown
        self._faults: dict[str, list[_Fault]] = {}
        self._down = False
        self._revoked: tuple[str, float | None] | None = None  # (error, monotonic end or None)
        self._lost: dict[str, int] = {}  # method -> answers still to lose
        self.latency = 0.0  # seconds each Web API call takes to answer, as Slack's take some
        self.in_flight = 0  # Web API calls being answered now
        self.most_in_flight = 0  # the most answered at once (reset it to watch a stretch of time)
        self._ids = itertools.count(1)
        self._last_ts = 0
        self._dms: dict[str, str] = {}  # user id -> implicit DM channel id
        self._open_views: dict[str, dict] = {}  # view id -> the view as Slack returns it
        self._homes: dict[str, list[dict]] = {}  # user id -> each Home tab views.publish gave them
        self._uploads: dict[str, dict] = {}  # file id -> {"filename", "length", "content"}
        self._response_urls: dict[str, int] = {}  # issued url -> times used
        self._triggers: dict[str, float] = {}  # issued trigger id -> monotonic time
        self.client_id = "1111.2222"  # the app's credentials for Sign in with Slack
        self.client_secret = "fake-client-secret"
        self.authorizations: list[dict[str, str]] = []  # each authorize visit's query
        self._signed_in: SignedIn | None = None
        self._grants: dict[str, _Grant] = {}  # authorization code -> its grant, until exchanged
        self._person_tokens: dict[str, SignedIn] = {}  # openid access token -> its person
        self._id_token_key = secrets.token_bytes(32)
        self._used_triggers: set[str] = set()
        self._sockets: list[web.WebSocketResponse] = []
        self._socket_open = asyncio.Event()
        self._acks: dict[str, asyncio.Future[dict]] = {}
        self._runner: web.AppRunner | None = None
        self._port = 0
        self._methods = self._method_table()

    def _method_table(self) -> dict[str, Callable[[dict], dict]]:
        """The Web API methods the fake answers, each by its handler."""
        return {
            "auth.test": self._auth_test,
            "openid.connect.token": self._openid_connect_token,
            "openid.connect.userInfo": self._openid_connect_user_info,
            "apps.connections.open": self._apps_connections_open,
            "users.info": self._users_info,
            "usergroups.list": self._usergroups_list,
            "usergroups.users.list": self._usergroups_users_list,
            "usergroups.users.update": self._usergroups_users_update,
            "conversations.open": self._conversations_open,
            "conversations.list": self._conversations_list,
            "conversations.members": self._conversations_members,
            "conversations.create": self._conversations_create,
            "conversations.invite": self._conversations_invite,
            "conversations.setTopic": self._conversations_set_topic,
            "conversations.info": self._conversations_info,
            "conversations.join": self._conversations_join,
            "conversations.archive": self._conversations_archive,
            "conversations.history": self._conversations_history,
            "conversations.replies": self._conversations_replies,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.getPermalink": self._chat_get_permalink,
            "pins.add": self._pins_add,
            "reactions.add": self._reactions_add,
            "views.open": self._views_open,
            "views.publish": self._views_publish,
            "views.push": self._views_push,
            "views.update": self._views_update,
            "files.getUploadURLExternal": self._files_get_upload_url_external,
            "files.completeUploadExternal": self._files_complete_upload_external,
        }

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/api/{method}", self._on_api)
        app.router.add_post("/upload/{file_id}", self._on_upload)
        app.router.add_post("/response/{key}", self._on_response_url)
        app.router.add_get("/socket", self._on_socket)
        app.router.add_get("/openid/connect/authorize", self._on_openid_authorize)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self._port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        for waiter in self._acks.values():
            waiter.cancel()
        for ws in list(self._sockets):
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"fake slack stopping")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def base_url(self) -> str:
        if not self._port:
            raise RuntimeError("FakeSlack.start() has not been awaited")
        return f"http://127.0.0.1:{self._port}"

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api/"

    @property
    def authorize_url(self) -> str:
        """Where Sign in with Slack sends the browser (SLACK_AUTHORIZE_URL)."""
        return f"{self.base_url}/openid/connect/authorize"

    # ------------------------------------------------------------------ test controls

    def add_channel(
        self,
        channel_id: str,
        name: str,
        members: Iterable[str] = (),
        *,
        is_private: bool = False,
        creator: str = "U0ADMIN",
    ) -> Channel:
        """A channel a person made; the bot is a member only when `members` names it."""
        channel = Channel(
            id=channel_id, name=name, members=set(members), is_private=is_private, creator=creator
        )
        self.channels[channel_id] = channel
        return channel

    def add_user(
        self, user_id: str, name: str, *, display_name: str | None = None, real_name: str | None = None
    ) -> dict:
        """A person in the workspace. Once any user is added, ids the fake does not know are
        `user_not_found` (invites, DMs); until then any U.../W... id is taken as a person.

        Like Slack, `profile.display_name` is empty unless the person chose one."""
        real = real_name if real_name is not None else name
        display = display_name or ""
        user = {
            "id": user_id,
            "team_id": self.team_id,
            "name": name,
            "deleted": False,
            "real_name": real,
            "tz": "Europe/London",
            "is_bot": False,
            "is_app_user": False,
            "profile": {
                "display_name": display,
                "display_name_normalized": display,
                "real_name": real,
                "real_name_normalized": real,
                "team": self.team_id,
            },
        }
        self.users[user_id] = user
        return user

    def add_usergroup(self, group_id: str, handle: str, users: Iterable[str]) -> dict:
        """A user group (mentioned as <!subteam^S...>); usergroups.users.list answers its members."""
        group = {
            "id": group_id,
            "team_id": self.team_id,
            "is_usergroup": True,
            "name": handle,
            "handle": handle,
            "description": "",
            "date_delete": 0,
            "users": list(users),
        }
        group["user_count"] = len(group["users"])
        self.usergroups[group_id] = group
        return group

    def add_message(
        self,
        channel: str,
        user: str,
        text: str,
        *,
        files: Iterable[Mapping[str, Any]] | None = None,
        thread_ts: str | None = None,
    ) -> Message:
        """A message `user` posted in `channel` (a reply when `thread_ts` names its parent). `text` is as
        Slack stores it: `&lt;`, `&gt;` and `&amp;` for what was typed, markup such as `<@U123>` as is
        (``tests.signed.slack_encoded`` makes it from what a person typed). `files`: {"name", ...} each,
        completed to the file objects Slack shows. People's messages are kept in their channel only:
        ``messages`` and ``posts()`` stay what the bot posted."""
        room = self._person_room(channel, user)
        parent = self.message(channel, thread_ts) if thread_ts is not None else None
        message = Message(
            room.id,
            self._new_ts(),
            text,
            None,
            None,
            thread_ts,
            members=frozenset(room.members),
            user=user,
            client_msg_id=str(uuid.uuid4()),
        )
        message.files = [self._shared_file(dict(f), user, message.ts) for f in files or ()]
        room.messages.append(message)
        if parent is not None:
            parent.replies.append(message.ts)
        return message

    def message(self, channel: str, ts: str | None) -> Message:
        """The message `ts` in `channel`, the bot's or a person's."""
        room = self.channels.get(channel)
        found = next((m for m in room.messages if m.ts == ts), None) if room is not None else None
        if found is None:
            raise LookupError(f"the fake holds no message {ts} in {channel}")
        return found

    def reactions(self, channel: str, ts: str) -> dict[str, set[str]]:
        """Who reacted to the message with each emoji name (the bot as `bot_user_id`)."""
        return {name: set(users) for name, users in self.message(channel, ts).reactions.items()}

    def react(self, channel: str, ts: str, user: str, name: str) -> None:
        """`user` adds the reaction `name` to a message, as in Slack's client; send the reaction_added
        event apart (``SlackRequests.reaction_added``)."""
        message = self._seen_by(channel, ts, user)
        if user in message.reactions.get(name, []):
            raise ValueError(f"{user} already reacted :{name}: to {channel}/{ts}")
        message.reactions.setdefault(name, []).append(user)

    def unreact(self, channel: str, ts: str, user: str, name: str) -> None:
        """`user` takes their reaction `name` off a message (the event is sent apart)."""
        message = self._seen_by(channel, ts, user)
        if user not in message.reactions.get(name, []):
            raise ValueError(f"{user} has no :{name}: reaction on {channel}/{ts}")
        message.reactions[name].remove(user)
        if not message.reactions[name]:
            del message.reactions[name]

    def pin_by(self, channel: str, ts: str, user: str) -> None:
        """`user` pins a message to its channel (the pin_added event is sent apart)."""
        self._seen_by(channel, ts, user)
        room = self.channels[channel]
        if ts in room.pins:
            raise ValueError(f"{channel}/{ts} is already pinned")
        room.pins.append(ts)
        room.pinned_by[ts] = (user, int(time.time()))

    def unpin_by(self, channel: str, ts: str, user: str) -> None:
        """`user` unpins a message (the pin_removed event is sent apart)."""
        self._seen_by(channel, ts, user)
        room = self.channels[channel]
        if ts not in room.pins:
            raise ValueError(f"{channel}/{ts} is not pinned")
        room.pins.remove(ts)

    def permalink(self, channel: str, ts: str) -> str:
        """The message's permalink as chat.getPermalink gives it; a reply's names its thread."""
        message = self.message(channel, ts)
        link = f"https://fake.slack.com/archives/{channel}/p{ts.replace('.', '')}"
        if message.thread_ts and message.thread_ts != ts:
            link += f"?thread_ts={message.thread_ts}&cid={channel}"
        return link

    def home(self, user_id: str) -> dict | None:
        """The Home tab views.publish last gave `user_id`, as Slack returned it; None before any."""
        published = self._homes.get(user_id)
        return published[-1] if published else None

    def publishes(self, user_id: str) -> int:
        """How many times views.publish gave `user_id` a Home tab."""
        return len(self._homes.get(user_id, []))

    def dm_id(self, user_id: str) -> str:
        """The id of the app's direct conversation with `user_id` (its App Home's Messages tab)."""
        return self._dm(user_id).id

    def new_response_url(self) -> str:
        url = f"{self.base_url}/response/{uuid.uuid4().hex}"
        self._response_urls[url] = 0
        return url

    def sign_in_as(self, *, user: str, team: str | None = None, name: str | None = None) -> SignedIn:
        """The person Sign in with Slack signs in from now on, as if they were signed in to Slack in the
        browser: a member of the app's workspace unless `team` says another."""
        self._signed_in = SignedIn(user=user, team=team or self.team_id, name=name or user)
        return self._signed_in

    def new_trigger_id(self, *, age: float = 0.0) -> str:
        """A trigger_id like Slack's; it is single use and expires three seconds after it was issued,
        `age` seconds ago."""
        trigger_id = f"{int(time.time() * 1000)}.{secrets.randbelow(10**10)}.{secrets.token_hex(16)}"
        self._triggers[trigger_id] = time.monotonic() - age
        return trigger_id

    def fail_next(
        self,
        method: str,
        *,
        status: int = 200,
        error: str | None = None,
        retry_after: int | None = None,
        times: int = 1,
    ) -> None:
        if status == 200 and error is None:
            raise ValueError("a status 200 fault needs an error, e.g. error='channel_not_found'")
        self._faults.setdefault(method, []).extend(_Fault(status, error, retry_after) for _ in range(times))

    def set_down(self, down: bool) -> None:
        self._down = down

    def revoke_token(self, error: str = "token_revoked", seconds: float | None = None) -> None:
        """Every Web API call made with the bot's token answers `{"ok": false, "error": error}`
        (auth.test too) until restore_token(), or for `seconds`. The app-level token used for Socket
        Mode is another token and stays valid."""
        self._revoked = (error, None if seconds is None else time.monotonic() + seconds)

    def restore_token(self) -> None:
        self._revoked = None

    def lose_answer(self, method: str, times: int = 1) -> None:
        """The next `times` calls of `method` are carried out, but the connection drops before the
        answer is sent: the client sees a disconnect and cannot know the call took effect."""
        self._lost[method] = self._lost.get(method, 0) + times

    def notified(self, message: Message) -> set[str]:
        """Who Slack notified of `message` when it was posted: mentioned users (<@U...>), members of
        mentioned user groups (<!subteam^S...>) and everyone for <!channel>/<!here>/<!everyone>, in
        its text or its mrkdwn blocks, who were members of the channel then. A DM notifies its person."""
        channel = self.channels.get(message.channel)
        if channel is not None and channel.user is not None:
            return {channel.user}
        text, blocks = message.posted
        mentioned: set[str] = set()
        for chunk in [text or "", *mrkdwn_texts(blocks)]:
            mentioned.update(USER_MENTION.findall(chunk))
            for group in GROUP_MENTION.findall(chunk):
                mentioned.update(self.usergroups.get(group, {}).get("users", []))
            if CHANNEL_MENTION.search(chunk):
                mentioned.update(message.members)
        mentioned.update(_rich_text_mentions(blocks, self.usergroups, message.members))
        return (mentioned & message.members) - {self.bot_user_id}

    def reached(self, user_id: str) -> list[Message]:
        """Every message that notified `user_id`, oldest first."""
        return [m for m in self.messages if user_id in self.notified(m)]

    def dms(self, user_id: str) -> list[Message]:
        """The messages the app sent `user_id` in their direct conversation with it."""
        dm = self._dms.get(user_id)
        return [m for m in self.messages if m.channel == dm] if dm else []

    def posts(
        self,
        channel: str | None = None,
        event_type: str | None = None,
        thread_ts: str | None = None,
    ) -> list[Message]:
        return [
            m
            for m in self.messages
            if (channel is None or m.channel == channel)
            and (event_type is None or m.event_type == event_type)
            and (thread_ts is None or m.thread_ts == thread_ts)
        ]

    def calls_of(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def answers(self) -> dict[str, Answers]:
        """For each method called, how its calls were answered (a lost answer counts as decided)."""
        counts: dict[str, Answers] = {}
        for call in self.calls:
            answers = counts.setdefault(call.method, Answers())
            if call.status == 429:
                answers.ratelimited += 1
            elif call.status != 200:
                answers.failed += 1
            elif call.ok:
                answers.ok += 1
            else:
                answers.error += 1
        return counts

    async def wait_for(
        self,
        predicate: Callable[[], T],
        timeout: float = 5.0,  # noqa: ASYNC109 - a bounded poll: the timeout is the point
        interval: float = 0.02,
    ) -> T:
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() >= deadline:
                raise AssertionError(f"condition not met within {timeout}s\n{self.summary()}")
            await asyncio.sleep(interval)

    def summary(self, last: int = 25) -> str:
        lines = [f"recorded calls ({len(self.calls)}, last {last} shown):"]
        for call in self.calls[-last:]:
            outcome = "ok" if call.ok else f"error={call.error}"
            lines.append(f"  {call.method} {outcome} {_shorten(call.args)}")
        lines.append(f"response_url posts: {len(self.responses)}; ephemerals: {len(self.ephemerals)}")
        lines.extend(f"problem: {p}" for p in self.problems)
        return "\n".join(lines)

    # ------------------------------------------------------------------ socket mode

    async def socket_connected(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        try:
            await asyncio.wait_for(self._socket_open.wait(), timeout)
        except TimeoutError:
            raise AssertionError(
                f"no Socket Mode client connected within {timeout}s\n{self.summary()}"
            ) from None

    async def socket_send(
        self,
        type: str,
        payload: dict,
        *,
        accepts_response_payload: bool = False,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> dict:
        """Send one envelope to the connected client and return its ack."""
        if not self._sockets:
            raise AssertionError("no Socket Mode client is connected")
        envelope_id = str(uuid.uuid4())
        envelope: dict[str, Any] = {
            "envelope_id": envelope_id,
            "type": type,
            "payload": payload,
            "accepts_response_payload": accepts_response_payload,
        }
        if type == "events_api":
            envelope.update(retry_attempt=0, retry_reason="")
        waiter: asyncio.Future[dict] = asyncio.get_running_loop().create_future()
        self._acks[envelope_id] = waiter
        try:
            await self._sockets[-1].send_json(envelope)
            return await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            raise AssertionError(f"no ack for {type} envelope {envelope_id} within {timeout}s") from None
        finally:
            self._acks.pop(envelope_id, None)

    async def _on_socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(timeout=1.0)
        await ws.prepare(request)
        self._sockets.append(ws)
        await ws.send_json(
            {
                "type": "hello",
                "num_connections": len(self._sockets),
                "debug_info": {"host": "fakeslack", "build_number": 1, "approximate_connection_time": 18060},
                "connection_info": {"app_id": self.app_id},
            }
        )
        self._socket_open.set()
        try:
            async for frame in ws:
                if frame.type == WSMsgType.TEXT:
                    self._on_socket_text(frame.data)
        finally:
            self._sockets.remove(ws)
            if not self._sockets:
                self._socket_open.clear()
        return ws

    def _on_socket_text(self, data: str) -> None:
        try:
            message = json.loads(data)
        except ValueError:
            self.problems.append(f"socket: client sent non-JSON text {data[:200]!r}")
            return
        waiter = self._acks.pop(message.get("envelope_id"), None) if isinstance(message, dict) else None
        if waiter is None:
            self.problems.append(
                f"socket: message for no pending envelope (late or duplicate ack?): {data[:200]}"
            )
        elif not waiter.done():
            waiter.set_result(message)

    # ------------------------------------------------------------------ HTTP endpoints

    async def _on_api(self, request: web.Request) -> web.Response:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if self.latency:
                await asyncio.sleep(self.latency)
            return await self._answer_api(request)
        finally:
            self.in_flight -= 1

    async def _answer_api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        try:
            args, as_json = await _read_args(request)
        except ValueError:
            self._record(method, {}, ok=False, error="invalid_json")
            return web.json_response({"ok": False, "error": "invalid_json"})
        token = _bearer(request) or args.get("token")
        args.pop("token", None)
        client = _basic(request)
        if method == "openid.connect.token" and client is not None:  # HTTP Basic, or the form's fields
            args.setdefault("client_id", client[0])
            args.setdefault("client_secret", client[1])

        fault = _Fault(503, None, None) if self._down else self._next_fault(method)
        if fault is None and self.quotas is not None and token and method in slackspec.methods():
            wait = self.quotas.admit(method, self._post_key(method, args), time.monotonic())
            if wait:  # refused before it is carried out, as Slack does
                fault = _Fault(429, None, max(1, math.ceil(wait)))
        if fault is not None and fault.status != 200:
            error = "ratelimited" if fault.status == 429 else f"http_{fault.status}"
            self._record(method, args, ok=False, error=error, status=fault.status)
            return _fault_response(fault)
        against_spec = slackspec.problems(method, args, json_body=as_json)
        self.problems.extend(against_spec)
        try:
            if method not in slackspec.methods():
                raise SlackError("unknown_method")
            if method not in OPENID_METHODS:
                self._authorize(method, token)
            if fault is not None:
                raise SlackError(fault.error or "fatal_error")
            self._require_scopes(method, args)
            if against_spec:
                raise SlackError("invalid_arguments", response_metadata={"messages": against_spec})
            handler = self._methods.get(method)
            if handler is None:
                self.problems.append(f"{method}: not implemented by the fake (unknown_method)")
                raise SlackError("unknown_method")
            given = {**args, "token": token} if method == "openid.connect.userInfo" else args
            body = {"ok": True, **handler(given)}
        except SlackError as e:
            body = {"ok": False, "error": e.error, **e.extra}
        lost = self._lost.get(method, 0) > 0
        self._record(method, args, ok=body["ok"], error=body.get("error"), answered=not lost)
        if lost:
            self._lost[method] -= 1
            if request.transport is not None:
                request.transport.abort()  # done, but the answer never leaves
            raise web.HTTPServiceUnavailable()  # nothing reaches the client: its connection is gone
        return web.json_response(body)

    async def _on_upload(self, request: web.Request) -> web.Response:
        upload = self._uploads.get(request.match_info["file_id"])
        if upload is None:
            self.problems.append(f"upload to an unknown upload URL {request.path}")
            return web.Response(status=404, text="not found")
        if request.content_type.startswith("multipart/"):
            reader = await request.multipart()
            part = await reader.next()
            content = await part.read() if part is not None else b""  # type: ignore[union-attr]
        else:
            content = await request.read()
        if len(content) != upload["length"]:
            self.problems.append(
                f"upload {upload['filename']}: {len(content)} bytes sent, length said {upload['length']}"
            )
        upload["content"] = bytes(content)
        return web.Response(text=f"OK - {len(content)}")

    async def _on_response_url(self, request: web.Request) -> web.Response:
        url = f"{self.base_url}{request.path}"
        raw = await request.text()
        if url not in self._response_urls:
            self.problems.append(f"POST to a response_url the fake never issued: {url}")
            return web.Response(status=404, text="no_active_hooks")
        self._response_urls[url] += 1
        if self._response_urls[url] > RESPONSE_URL_USES:
            self.problems.append(f"response_url used more than {RESPONSE_URL_USES} times: {url}")
            return web.Response(status=404, text="used_url")
        try:
            body = json.loads(raw)
        except ValueError:
            self.problems.append(f"response_url body is not JSON: {raw[:200]!r}")
            body = raw
        self.responses.append({"url": url, "body": body})
        return web.Response(text="ok")

    # ------------------------------------------------------------------ plumbing

    def _record(
        self,
        method: str,
        args: dict,
        *,
        ok: bool,
        error: str | None,
        answered: bool = True,
        status: int = 200,
    ) -> None:
        self.calls.append(
            Call(
                method=method,
                args=args,
                ok=ok,
                error=error,
                at=time.monotonic(),
                answered=answered,
                status=status,
            )
        )

    def _post_key(self, method: str, args: dict) -> str | None:
        """The channel whose bucket a post draws on: a DM, to a user id or its D... id, is `@user`."""
        channel = args.get("channel")
        if method != POST or not isinstance(channel, str) or not channel:
            return None
        known = self.channels.get(channel)
        if known is not None and known.user is not None:
            return f"@{known.user}"
        return f"@{channel}" if channel.startswith(("U", "W")) else channel

    def _next_fault(self, method: str) -> _Fault | None:
        queue = self._faults.get(method)
        return queue.pop(0) if queue else None

    def _authorize(self, method: str, token: str | None) -> None:
        if not token:
            raise SlackError("not_authed")
        wanted = ("xapp-",) if method == "apps.connections.open" else ("xoxb-", "xoxp-")
        if not token.startswith(wanted):
            if token.startswith(("xapp-", "xoxb-", "xoxp-")):
                raise SlackError("not_allowed_token_type")
            raise SlackError("invalid_auth")
        if self._revoked is not None and not token.startswith("xapp-"):
            error, ends = self._revoked
            if ends is None or time.monotonic() < ends:
                raise SlackError(error)
            self._revoked = None

    def _require_scopes(self, method: str, args: dict) -> None:
        """missing_scope, as Slack answers it, when the token lacks a scope the call needs."""
        needed = NEEDED_SCOPES.get(method)
        if self.scopes is None or needed is None:
            return
        wanted = [needed] if isinstance(needed, str) else [needed[kind] for kind in self._kinds(method, args)]
        for scope in wanted:
            if scope not in self.scopes:
                raise SlackError("missing_scope", needed=scope, provided=",".join(sorted(self.scopes)))

    def _kinds(self, method: str, args: dict) -> list[str]:
        """The kinds of conversation a call is about: the channel's (public when the fake has none such:
        the method answers channel_not_found), a new channel's, or those conversations.list asks for."""
        if method == "conversations.list":
            asked = str(args.get("types") or "public_channel").split(",")
            return [LIST_TYPES[kind.strip()] for kind in asked if kind.strip() in LIST_TYPES]
        if method == "conversations.create":
            return ["private" if _flag(args.get("is_private")) else "public"]
        channel = self.channels.get(args["channel"]) if isinstance(args.get("channel"), str) else None
        if channel is None:
            return ["public"]
        return ["im" if channel.user is not None else "private" if channel.is_private else "public"]

    def granted(self, scope: str) -> bool:
        """Whether the bot token has `scope` (every one when the fake was given none)."""
        return self.scopes is None or scope in self.scopes

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):08X}"

    def _new_ts(self) -> str:
        """Slack-style "seconds.micros" timestamps: near wall-clock time, unique and increasing."""
        self._last_ts = max(int(time.time() * 1_000_000), self._last_ts + 100)
        return f"{self._last_ts // 1_000_000}.{self._last_ts % 1_000_000:06d}"

    def _channel(self, channel_id: Any) -> Channel:
        channel = self.channels.get(channel_id) if isinstance(channel_id, str) else None
        if channel is None:
            raise SlackError("channel_not_found")
        return channel

    def _destination(self, channel_id: Any) -> Channel:
        """A channel id, or a user id, which Slack treats as the bot's DM with that user."""
        if (
            isinstance(channel_id, str)
            and channel_id.startswith(("U", "W"))
            and channel_id not in self.channels
        ):
            if not self._is_person(channel_id):
                raise SlackError("channel_not_found")
            return self._dm(channel_id)
        return self._channel(channel_id)

    def _dm(self, user_id: str) -> Channel:
        """The app's direct conversation with `user_id`, opened on first use, with one stable id."""
        if user_id not in self._dms:
            dm = Channel(
                id=self._new_id("D"),
                name=user_id,
                members={user_id, self.bot_user_id},
                creator=self.bot_user_id,
                user=user_id,
            )
            self.channels[dm.id] = dm
            self._dms[user_id] = dm.id
        return self.channels[self._dms[user_id]]

    def _is_person(self, user_id: str) -> bool:
        """A user the workspace has: any U.../W... id until a test adds users, then only those."""
        if self.users:
            return user_id in self.users
        return user_id.startswith(("U", "W")) and user_id != self.bot_user_id

    def _channel_json(self, channel: Channel) -> dict:
        is_im = channel.id.startswith("D")
        return {
            "id": channel.id,
            "name": channel.name,
            "is_channel": not channel.is_private and not is_im,
            "is_group": channel.is_private,
            "is_im": is_im,
            "is_private": channel.is_private or is_im,
            "is_archived": channel.is_archived,
            "is_general": False,
            "is_member": self.bot_user_id in channel.members,
            "created": channel.created,
            "creator": channel.creator,
            "name_normalized": channel.name,
            "topic": {
                "value": channel.topic,
                "creator": self.bot_user_id if channel.topic else "",
                "last_set": 0,
            },
            "purpose": {"value": "", "creator": "", "last_set": 0},
            "num_members": len(channel.members),
            **({"user": channel.user} if channel.user else {}),
        }

    def message_json(self, message: Message) -> dict:
        """`message` as the Web API shows it (chat.postMessage, conversations.history, ...)."""
        body: dict[str, Any] = {"type": "message", "user": message.user or self.bot_user_id}
        if message.user is None:
            body.update(bot_id=self.bot_id, app_id=self.app_id)
        else:
            body["client_msg_id"] = message.client_msg_id
        body.update(team=self.team_id, ts=message.ts, text=message.text or "")
        if message.blocks:
            body["blocks"] = message.blocks
        if message.files:
            body.update(files=message.files, upload=False)
        if message.metadata:
            body["metadata"] = message.metadata
        if message.thread_ts:
            body["thread_ts"] = message.thread_ts
            if message.thread_ts != message.ts:
                body["parent_user_id"] = self._author(message.channel, message.thread_ts)
        if message.replies:
            who = list(dict.fromkeys(self._author(message.channel, ts) for ts in message.replies))
            body.update(
                thread_ts=message.ts,
                reply_count=len(message.replies),
                reply_users_count=len(who),
                reply_users=who,
                latest_reply=message.replies[-1],
            )
        if message.reactions:
            body["reactions"] = [
                {"name": name, "users": list(users), "count": len(users)}
                for name, users in message.reactions.items()
            ]
        if message.ts in self.channels[message.channel].pins:
            body["pinned_to"] = [message.channel]
        return body

    def _author(self, channel: str, ts: str) -> str:
        """Who posted the message `ts` (the bot as its user id)."""
        return self.message(channel, ts).user or self.bot_user_id

    def _content(self, args: dict, where: str) -> tuple[str | None, list | None, dict | None]:
        """Validate text/blocks/metadata the way chat.postMessage and chat.update do."""
        text, blocks, metadata = args.get("text") or None, args.get("blocks") or None, args.get("metadata")
        if text is None and blocks is None:
            raise SlackError("no_text")
        if blocks is not None:
            errors = _block_errors(blocks, MAX_MESSAGE_BLOCKS)
            if errors:
                raise SlackError("invalid_blocks", errors=errors)
        if text is not None and len(str(text)) > MAX_TEXT:
            raise SlackError("msg_too_long")
        if metadata is not None and not _valid_metadata(metadata):
            raise SlackError("invalid_metadata_format")
        if blocks is not None and text is None:
            self.problems.append(f"{where}: blocks without a text fallback (missing text fallback)")
        return text, blocks, metadata

    def _find_message(self, channel: Channel, ts: Any) -> Message:
        for message in channel.messages:
            if message.ts == ts:
                return message
        raise SlackError("message_not_found")

    def _person_room(self, channel_id: str, user: str) -> Channel:
        """The channel a person posts in: one that exists, is not archived and has them as a member."""
        room = self.channels.get(channel_id)
        if room is None:
            raise ValueError(f"no channel {channel_id}: add_channel() it first")
        if room.is_archived:
            raise ValueError(f"{channel_id} is archived: nobody can post in it")
        if user not in room.members:
            raise ValueError(
                f"{user} is not a member of {channel_id}: people post only where they are members"
            )
        return room

    def _seen_by(self, channel: str, ts: str, user: str) -> Message:
        """The message a person acts on (reacts, pins): it exists, in a channel they are a member of."""
        message = self.message(channel, ts)
        if user not in self.channels[channel].members:
            raise ValueError(f"{user} is not a member of {channel}, so cannot act on its messages")
        return message

    def _shared_file(self, given: dict, user: str, ts: str) -> dict:
        """A file object as a message shows it: `given` (at least a "name") completed as Slack would."""
        name = given.get("name") or "file"
        file_id = given.get("id") or self._new_id("F")
        kind = name.rsplit(".", 1)[-1].lower() if "." in name else "binary"
        created = int(float(ts))
        return {
            "id": file_id,
            "created": created,
            "timestamp": created,
            "name": name,
            "title": name,
            "mimetype": "application/octet-stream",
            "filetype": kind,
            "pretty_type": kind.upper(),
            "user": user,
            "user_team": self.team_id,
            "mode": "hosted",
            "is_external": False,
            "is_public": True,
            "size": 0,
            "url_private": f"https://files.fake.slack.com/files-pri/{self.team_id}-{file_id}/{name}",
            "permalink": f"https://fake.slack.com/files/{user}/{file_id}/{name}",
            **given,
        }

    def _use_trigger(self, trigger_id: Any) -> str:
        if not isinstance(trigger_id, str) or not trigger_id:
            raise SlackError("invalid_arguments", errors=["trigger_id is required"])
        if trigger_id in self._used_triggers:
            raise SlackError("trigger_exchanged")
        issued = self._triggers.get(trigger_id)
        if issued is not None and time.monotonic() - issued > TRIGGER_LIFETIME:
            raise SlackError("expired_trigger_id")
        self._used_triggers.add(trigger_id)
        return trigger_id

    def _store_view(self, view: dict, *, view_id: str | None = None, root_id: str | None = None) -> dict:
        """An open modal's view, as Slack returns it, kept for views.update and submissions."""
        stored = self._view_json(view, view_id=view_id, root_id=root_id)
        self._open_views[stored["id"]] = stored
        return stored

    def _view_json(self, view: dict, *, view_id: str | None = None, root_id: str | None = None) -> dict:
        view_id = view_id or self._new_id("V")
        return {
            "id": view_id,
            "team_id": self.team_id,
            "type": view["type"],
            "blocks": view.get("blocks", []),
            "private_metadata": view.get("private_metadata", ""),
            "callback_id": view.get("callback_id", ""),
            "state": {"values": {}},
            "hash": f"{int(time.time())}.{secrets.token_hex(4)}",
            "title": view.get("title"),
            "clear_on_close": bool(view.get("clear_on_close", False)),
            "notify_on_close": bool(view.get("notify_on_close", False)),
            "close": view.get("close"),
            "submit": view.get("submit"),
            "previous_view_id": None,
            "root_view_id": root_id or view_id,
            "app_id": self.app_id,
            "external_id": view.get("external_id", ""),
            "app_installed_team_id": self.team_id,
            "bot_id": self.bot_id,
        }

    def _checked_view(self, view: Any) -> dict:
        errors = _view_errors(view)
        if errors:
            raise SlackError("invalid_arguments", response_metadata={"messages": errors})
        return view

    # ------------------------------------------------------------------ Web API methods

    def _auth_test(self, args: dict) -> dict:
        return {
            "url": "https://tocsin-test.slack.com/",
            "team": "Tocsin Test",
            "user": "tocsin",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    async def _on_openid_authorize(self, request: web.Request) -> web.Response:
        """The page Sign in with Slack sends the browser to: back to the redirect_uri with a code and the
        state, for the person sign_in_as() named. Slack takes `team` as a hint the person may drop from
        the address, so the fake signs in whoever it was told, of whichever workspace."""
        query = dict(request.query)
        self.authorizations.append(query)
        redirect_uri = query.get("redirect_uri", "")
        mistakes = []
        if query.get("response_type") != "code":
            mistakes.append(f"response_type={query.get('response_type')!r}, not 'code'")
        if "openid" not in query.get("scope", "").split():
            mistakes.append(f"scope {query.get('scope')!r} lacks openid")
        if query.get("client_id") != self.client_id:
            mistakes.append(f"client_id {query.get('client_id')!r} is not the app's")
        if not re.match(r"https?://", redirect_uri):
            mistakes.append(f"redirect_uri {redirect_uri!r} is not an http(s) URL")
        if mistakes:
            self.problems.extend(f"openid/connect/authorize: {mistake}" for mistake in mistakes)
            return web.Response(status=400, text="; ".join(mistakes))
        if self._signed_in is None:
            return web.Response(status=400, text="nobody signs in to the fake Slack: call fake.sign_in_as()")
        code = secrets.token_urlsafe(24)
        self._grants[code] = _Grant(self._signed_in, query.get("nonce"), redirect_uri, time.monotonic())
        back = {"code": code, **({"state": query["state"]} if "state" in query else {})}
        joiner = "&" if "?" in redirect_uri else "?"
        return web.Response(status=302, headers={"Location": f"{redirect_uri}{joiner}{urlencode(back)}"})

    def _openid_connect_token(self, args: dict) -> dict:
        if args.get("client_id") != self.client_id:
            raise SlackError("invalid_client_id")
        if args.get("client_secret") != self.client_secret:
            raise SlackError("bad_client_secret")
        if (args.get("grant_type") or "authorization_code") != "authorization_code":
            raise SlackError("invalid_grant_type")  # refresh tokens are not modelled
        grant = self._grants.pop(str(args.get("code") or ""), None)  # a code is good for one exchange
        if grant is None or time.monotonic() - grant.at > OPENID_CODE_LIFETIME:
            raise SlackError("invalid_code")
        if args.get("redirect_uri") != grant.redirect_uri:
            raise SlackError("bad_redirect_uri")
        access_token = f"xoxp-openid-{secrets.token_hex(16)}"
        self._person_tokens[access_token] = grant.person
        return {"access_token": access_token, "token_type": "Bearer", "id_token": self._id_token(grant)}

    def _id_token(self, grant: _Grant) -> str:
        """A JWT as Slack's, signed with a key of the fake's own (HS256: the bot does not check it)."""
        now, person = int(time.time()), grant.person
        claims = {
            "iss": "https://slack.com",
            "sub": person.user,
            "aud": self.client_id,
            "exp": now + 3600,
            "iat": now,
            "auth_time": now,
            **({"nonce": grant.nonce} if grant.nonce is not None else {}),
            "https://slack.com/user_id": person.user,
            "https://slack.com/team_id": person.team,
            "name": person.name,
        }
        signed = f"{_jwt_part({'alg': 'HS256', 'typ': 'JWT'})}.{_jwt_part(claims)}"
        signature = hmac.new(self._id_token_key, signed.encode(), hashlib.sha256).digest()
        return f"{signed}.{_jwt_part(signature)}"

    def _openid_connect_user_info(self, args: dict) -> dict:
        token = args.get("token")
        if not token:
            raise SlackError("not_authed")
        person = self._person_tokens.get(token)
        if person is None:
            raise SlackError("invalid_auth")
        return {
            "sub": person.user,
            "https://slack.com/user_id": person.user,
            "https://slack.com/team_id": person.team,
            "name": person.name,
            "given_name": person.name.split(" ")[0],
            "locale": "en-US",
            "https://slack.com/team_name": "Tocsin Test" if person.team == self.team_id else "Elsewhere",
        }

    def _apps_connections_open(self, args: dict) -> dict:
        return {"url": f"ws://127.0.0.1:{self._port}/socket"}

    def _users_info(self, args: dict) -> dict:
        user_id = args.get("user")
        if user_id == self.bot_user_id:
            return {"user": self._bot_user()}
        user = self.users.get(user_id) if isinstance(user_id, str) else None
        if user is None:
            raise SlackError("user_not_found")
        return {"user": user}

    def _bot_user(self) -> dict:
        profile = {"display_name": "", "real_name": "tocsin", "bot_id": self.bot_id, "team": self.team_id}
        return {
            "id": self.bot_user_id,
            "team_id": self.team_id,
            "name": "tocsin",
            "deleted": False,
            "real_name": "tocsin",
            "is_bot": True,
            "is_app_user": False,
            "profile": profile,
        }

    def _usergroups_list(self, args: dict) -> dict:
        with_users = _flag(args.get("include_users"))
        return {
            "usergroups": [
                {k: v for k, v in g.items() if with_users or k != "users"} for g in self.usergroups.values()
            ]
        }

    def _usergroups_users_list(self, args: dict) -> dict:
        group = self.usergroups.get(args.get("usergroup"))  # type: ignore[arg-type]
        if group is None:
            raise SlackError("no_such_subteam")
        return {"users": list(group["users"])}

    def _usergroups_users_update(self, args: dict) -> dict:
        """The user group's members, replaced by `users` (comma-separated ids, each a person)."""
        group = self.usergroups.get(args.get("usergroup"))  # type: ignore[arg-type]
        if group is None:
            raise SlackError("no_such_subteam")
        users = list(dict.fromkeys(u.strip() for u in str(args.get("users") or "").split(",") if u.strip()))
        if not users:
            raise SlackError("no_users_provided")
        if not all(self._is_person(user) for user in users):
            raise SlackError("invalid_users")
        group.update(users=users, user_count=len(users), date_update=int(time.time()))
        return {"usergroup": dict(group)}

    def _conversations_open(self, args: dict) -> dict:
        """The app's DM with one person (`users`), or an existing DM by id (`channel`)."""
        if args.get("channel"):
            channel = self._channel(args["channel"])
            if channel.user is None:
                raise SlackError("channel_not_found")
            already = True
        else:
            users = [u.strip() for u in str(args.get("users") or "").split(",") if u.strip()]
            if not users:
                raise SlackError("users_list_not_supplied")
            if len(users) > 1:
                self.problems.append(f"conversations.open: group DMs are not modelled by the fake ({users})")
                raise SlackError("not_implemented")
            if not self._is_person(users[0]):
                raise SlackError("user_not_found")
            already = users[0] in self._dms
            channel = self._dm(users[0])
        shown = self._channel_json(channel) if _flag(args.get("return_im")) else {"id": channel.id}
        return {"channel": shown, **({"no_op": True, "already_open": True} if already else {})}

    def _conversations_list(self, args: dict) -> dict:
        """Channels by `types` (public_channel unless told), private ones only where the bot is a member,
        paginated: `cursor` is where the next page starts."""
        types = {t.strip() for t in str(args.get("types") or "public_channel").split(",") if t.strip()}
        unknown = types - {"public_channel", "private_channel", "mpim", "im"}
        if unknown:
            raise SlackError("invalid_types", needed=",".join(sorted(unknown)))
        limit = _limit(args, default=100, most=LIST_LIMIT)
        listed = [
            c
            for c in self.channels.values()
            if self._listed_as(c) in types
            and not (_flag(args.get("exclude_archived")) and c.is_archived)
            and (not c.is_private or self.bot_user_id in c.members)
        ]
        start = 0
        if args.get("cursor"):
            after = _decode_cursor(args["cursor"], "team:")
            start = next((i for i, c in enumerate(listed) if c.id == after), len(listed))
        page, rest = listed[start : start + limit], listed[start + limit :]
        next_cursor = _encode_cursor(f"team:{rest[0].id}") if rest else ""
        return {
            "channels": [self._channel_json(c) for c in page],
            "response_metadata": {"next_cursor": next_cursor},
        }

    def _conversations_members(self, args: dict) -> dict:
        """Who is in a channel now, by id, paginated like conversations.list."""
        channel = self._channel(args.get("channel"))
        if channel.is_private:
            self._require_member(channel)
        members = sorted(channel.members)
        limit = _limit(args, default=100, most=LIST_LIMIT)
        start = 0
        if args.get("cursor"):
            after = _decode_cursor(args["cursor"], "user:")
            start = members.index(after) if after in members else len(members)
        page, rest = members[start : start + limit], members[start + limit :]
        return {
            "members": page,
            "response_metadata": {"next_cursor": _encode_cursor(f"user:{rest[0]}") if rest else ""},
        }

    @staticmethod
    def _listed_as(channel: Channel) -> str:
        if channel.user is not None:
            return "im"
        return "private_channel" if channel.is_private else "public_channel"

    def _conversations_create(self, args: dict) -> dict:
        name = args.get("name") or ""
        if not name:
            raise SlackError("invalid_name_required")
        if len(name) > MAX_CHANNEL_NAME:
            raise SlackError("invalid_name_maxlength")
        if not CHANNEL_NAME.match(name):
            raise SlackError("invalid_name_specials")
        if any(c.name == name for c in self.channels.values()):
            raise SlackError("name_taken")
        channel = Channel(
            id=self._new_id("C"),
            name=name,
            members={self.bot_user_id},
            is_private=_flag(args.get("is_private")),
            creator=self.bot_user_id,
        )
        self.channels[channel.id] = channel
        return {"channel": self._channel_json(channel)}

    def _conversations_invite(self, args: dict) -> dict:
        """As Slack: the bot must be a member; unless `force` is set, one user who cannot be invited
        (already a member, unknown, the bot itself) fails the call and nobody is invited."""
        channel = self._channel(args.get("channel"))
        users = [u.strip() for u in str(args.get("users") or "").split(",") if u.strip()]
        if not users:
            raise SlackError("no_user")
        if channel.is_archived:
            raise SlackError("is_archived")
        self._require_member(channel)
        if self.bot_user_id in users:
            raise SlackError("cant_invite_self")
        errors = []
        for user in users:
            if not self._is_person(user):
                errors.append({"user": user, "ok": False, "error": "user_not_found"})
            elif user in channel.members:
                errors.append({"user": user, "ok": False, "error": "already_in_channel"})
        failed = {e["user"] for e in errors}
        invited = [u for u in users if u not in failed]
        if errors and not (_flag(args.get("force")) and invited):
            raise SlackError(errors[0]["error"], errors=errors)
        channel.members.update(invited)
        return {"channel": self._channel_json(channel), **({"errors": errors} if errors else {})}

    def _require_member(self, channel: Channel) -> None:
        if self.bot_user_id not in channel.members:
            raise SlackError("not_in_channel")

    def _conversations_set_topic(self, args: dict) -> dict:
        channel = self._channel(args.get("channel"))
        self._require_member(channel)
        topic = str(args.get("topic") or "")
        if len(topic) > MAX_TOPIC:
            raise SlackError("too_long")
        channel.topic = topic
        return {"channel": self._channel_json(channel)}

    def _conversations_info(self, args: dict) -> dict:
        return {"channel": self._channel_json(self._channel(args.get("channel")))}

    def _conversations_join(self, args: dict) -> dict:
        channel = self._channel(args.get("channel"))
        if channel.is_archived:
            raise SlackError("is_archived")
        if channel.is_private or channel.user is not None:  # only an invitation lets the bot in
            raise SlackError("method_not_supported_for_channel_type")
        already = self.bot_user_id in channel.members
        channel.members.add(self.bot_user_id)
        extra = {"warning": "already_in_channel"} if already else {}
        return {"channel": self._channel_json(channel), **extra}

    def _conversations_archive(self, args: dict) -> dict:
        channel = self._channel(args.get("channel"))
        if channel.is_archived:
            raise SlackError("already_archived")
        channel.is_archived = True
        return {}

    def _history_json(self, message: Message, args: dict) -> dict:
        body = self.message_json(message)
        if not _flag(args.get("include_all_metadata")):
            body.pop("metadata", None)  # Slack only returns metadata when asked
        return body

    def _readable(self, args: dict) -> Channel:
        """A channel whose messages the bot may read: a bot token reads only where it is a member."""
        channel = self._channel(args.get("channel"))
        self._require_member(channel)
        return channel

    def _conversations_history(self, args: dict) -> dict:
        """Top-level messages between `oldest` and `latest` (exclusive unless `inclusive`), newest first."""
        channel = self._readable(args)
        found = [
            m
            for m in reversed(channel.messages)
            if (m.thread_ts is None or m.thread_ts == m.ts) and _in_range(m.ts, args)
        ]
        page = self._page_of_messages(found, args)
        return {
            **page,
            "pin_count": len(channel.pins),
            "channel_actions_ts": None,
            "channel_actions_count": 0,
        }

    def _conversations_replies(self, args: dict) -> dict:
        """The thread's parent first, then its replies between `oldest` and `latest`, oldest first."""
        channel = self._readable(args)
        if not args.get("ts"):
            raise SlackError("thread_not_found")
        try:
            parent = self._find_message(channel, args.get("ts"))
        except SlackError:
            raise SlackError("thread_not_found") from None
        replies = [m for m in channel.messages if m.thread_ts == parent.ts and m is not parent]
        return self._page_of_messages([parent, *(m for m in replies if _in_range(m.ts, args))], args)

    def _page_of_messages(self, found: list[Message], args: dict) -> dict:
        """One page of `found`, continued by `cursor` (the ts the page starts at)."""
        limit = _limit(args, default=100, most=HISTORY_LIMIT)
        start = 0
        if args.get("cursor"):
            ts = _decode_cursor(args["cursor"], "next_ts:")
            start = next((i for i, m in enumerate(found) if m.ts == ts), len(found))
        page, rest = found[start : start + limit], found[start + limit :]
        body: dict[str, Any] = {
            "messages": [self._history_json(m, args) for m in page],
            "has_more": bool(rest),
        }
        if rest:
            body["response_metadata"] = {"next_cursor": _encode_cursor(f"next_ts:{rest[0].ts}")}
        return body

    def _chat_post_message(self, args: dict) -> dict:
        channel = self._destination(args.get("channel"))
        if channel.is_archived:
            raise SlackError("is_archived")
        if channel.is_private or not self.granted("chat:write.public"):  # public channels only, with it
            self._require_member(channel)
        text, blocks, metadata = self._content(args, f"chat.postMessage to {channel.id}")
        thread_ts = args.get("thread_ts") or None
        parent = None
        if thread_ts is not None:
            try:
                parent = self._find_message(channel, thread_ts)
            except SlackError:
                raise SlackError("thread_not_found") from None
        if metadata is None and not channel.id.startswith("D"):
            self.problems.append(
                f"chat.postMessage to {channel.id}: channel message without metadata ({text!r})"
            )
        message = Message(
            channel.id, self._new_ts(), text, blocks, metadata, thread_ts, members=frozenset(channel.members)
        )
        channel.messages.append(message)
        self.messages.append(message)
        if parent is not None:
            parent.replies.append(message.ts)
        return {"channel": channel.id, "ts": message.ts, "message": self.message_json(message)}

    def _chat_update(self, args: dict) -> dict:
        channel = self._channel(args.get("channel"))
        message = self._find_message(channel, args.get("ts"))
        text, blocks, metadata = self._content(args, f"chat.update of {channel.id}/{message.ts}")
        if (text, blocks) == (message.text, message.blocks):
            edit = Edit(channel.id, message.ts, message.event_type, time.time())
            unchanged = metadata is None or metadata == message.metadata
            (self.noop_updates if unchanged else self.metadata_only_updates).append(edit)
        message.history.append({"text": message.text, "blocks": message.blocks, "metadata": message.metadata})
        message.text, message.blocks = text, blocks
        message.edited_at.append(time.time())
        if metadata is not None:
            message.metadata = metadata
        return {
            "channel": channel.id,
            "ts": message.ts,
            "text": text or "",
            "message": self.message_json(message),
        }

    def _chat_post_ephemeral(self, args: dict) -> dict:
        channel = self._channel(args.get("channel"))
        user = args.get("user")
        if not user:
            raise SlackError("user_not_found")
        text, blocks, _ = self._content(args, f"chat.postEphemeral to {channel.id}")
        message_ts = self._new_ts()
        self.ephemerals.append(
            {
                "channel": channel.id,
                "user": user,
                "text": text,
                "blocks": blocks,
                "thread_ts": args.get("thread_ts"),
                "message_ts": message_ts,
            }
        )
        return {"message_ts": message_ts}

    def _pins_add(self, args: dict) -> dict:
        channel = self._channel(args.get("channel"))
        message = self._find_message(channel, args.get("timestamp"))
        if message.ts in channel.pins:
            raise SlackError("already_pinned")
        channel.pins.append(message.ts)
        channel.pinned_by[message.ts] = (self.bot_user_id, int(time.time()))
        return {}

    def _reactions_add(self, args: dict) -> dict:
        """The bot's reaction `name` on a message. A private channel the bot is not in is hidden from
        it (channel_not_found); Slack has no not_in_channel for reactions."""
        channel = self._channel(args.get("channel"))
        if channel.is_private and self.bot_user_id not in channel.members:
            raise SlackError("channel_not_found")
        if channel.is_archived:
            raise SlackError("is_archived")
        message = self._find_message(channel, args.get("timestamp"))
        name = str(args.get("name") or "")
        if not EMOJI_NAME.match(name):
            raise SlackError("invalid_name")
        reacted = message.reactions.setdefault(name, [])
        if self.bot_user_id in reacted:
            raise SlackError("already_reacted")
        reacted.append(self.bot_user_id)
        return {}

    def _chat_get_permalink(self, args: dict) -> dict:
        channel = self._channel(args.get("channel"))
        message = self._find_message(channel, args.get("message_ts"))
        return {"channel": channel.id, "permalink": self.permalink(channel.id, message.ts)}

    def _views_open(self, args: dict) -> dict:
        view = self._checked_view(args.get("view"))
        external_id = view.get("external_id")
        if external_id and any(v["external_id"] == external_id for v in self._open_views.values()):
            raise SlackError("duplicate_external_id")
        trigger_id = self._use_trigger(args.get("trigger_id"))
        stored = self._store_view(view)
        self.views.append(
            {"method": "views.open", "trigger_id": trigger_id, "view": view, "view_id": stored["id"]}
        )
        return {"view": stored}

    def _views_push(self, args: dict) -> dict:
        view = self._checked_view(args.get("view"))
        trigger_id = self._use_trigger(args.get("trigger_id"))
        stored = self._store_view(view)
        self.views.append(
            {"method": "views.push", "trigger_id": trigger_id, "view": view, "view_id": stored["id"]}
        )
        return {"view": stored}

    def _views_publish(self, args: dict) -> dict:
        """A person's Home tab: a "home" view, checked as views.open checks a modal; `hash` must be the
        current one's when given."""
        user_id = args.get("user_id")
        if not isinstance(user_id, str) or not self._is_person(user_id):
            raise SlackError("user_not_found")
        view = self._checked_view(args.get("view"))
        if view.get("type") != "home":
            messages = [f"[ERROR] must be 'home', not {view.get('type')!r} [json-pointer:/view/type]"]
            raise SlackError("invalid_arguments", response_metadata={"messages": messages})
        current = self.home(user_id)
        if args.get("hash") and (current is None or args["hash"] != current["hash"]):
            raise SlackError("hash_conflict")
        stored = self._view_json(view, view_id=current["id"] if current else None)
        self._homes.setdefault(user_id, []).append(stored)
        return {"view": stored}

    def _views_update(self, args: dict) -> dict:
        view_id, external_id = args.get("view_id"), args.get("external_id")
        if not view_id and not external_id:
            raise SlackError("invalid_arguments", errors=["view_id or external_id is required"])
        if view_id:
            current = self._open_views.get(view_id)
        else:
            current = next((v for v in self._open_views.values() if v["external_id"] == external_id), None)
        if current is None:
            raise SlackError("not_found")
        if args.get("hash") and args["hash"] != current["hash"]:
            raise SlackError("hash_conflict")
        view = self._checked_view(args.get("view"))
        stored = self._store_view(view, view_id=current["id"], root_id=current["root_view_id"])
        self.views.append(
            {"method": "views.update", "trigger_id": None, "view": view, "view_id": stored["id"]}
        )
        return {"view": stored}

    def _files_get_upload_url_external(self, args: dict) -> dict:
        filename = args.get("filename")
        try:
            length = int(args.get("length"))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise SlackError("invalid_arguments", errors=["length must be an integer"]) from None
        if not filename:
            raise SlackError("invalid_arguments", errors=["filename is required"])
        file_id = self._new_id("F")
        self._uploads[file_id] = {"filename": filename, "length": length, "content": None}
        return {"upload_url": f"{self.base_url}/upload/{file_id}", "file_id": file_id}

    def _files_complete_upload_external(self, args: dict) -> dict:
        items = args.get("files")
        if not isinstance(items, list) or not items or not all(isinstance(i, dict) for i in items):
            raise SlackError("invalid_arguments", errors=["files must be a JSON list of {id, title}"])
        channel_id = args.get("channel_id") or None
        if channel_id is not None:
            self._channel(channel_id)
        uploads = [self._uploads.get(item.get("id")) for item in items]
        if any(u is None or u["content"] is None for u in uploads):
            raise SlackError("file_not_found")
        shared = []
        for item, upload in zip(items, uploads, strict=True):
            assert upload is not None
            record = {
                "id": item["id"],
                "title": item.get("title") or upload["filename"],
                "filename": upload["filename"],
                "channel": channel_id,
                "content": upload["content"],
                "initial_comment": args.get("initial_comment"),
                "thread_ts": args.get("thread_ts"),
            }
            self.files.append(record)
            shared.append(
                {
                    "id": record["id"],
                    "name": record["filename"],
                    "title": record["title"],
                    "size": len(record["content"]),
                }
            )
        return {"files": shared}


# ---------------------------------------------------------------------- helpers


async def _read_args(request: web.Request) -> tuple[dict[str, Any], bool]:
    """(args, whether they came as JSON): query args merged with a JSON or form body, JSON-string fields
    (blocks, view, ...) decoded."""
    args: dict[str, Any] = dict(request.query)
    as_json = False
    if request.method == "POST" and request.can_read_body:
        if request.content_type == "application/json":
            as_json = True
            body = await request.json()
            if isinstance(body, dict):
                args.update(body)
        else:
            form = await request.post()
            args.update({k: v for k, v in form.items() if isinstance(v, str)})
    for key in JSON_STRING_FIELDS:
        value = args.get(key)
        if isinstance(value, str) and value.lstrip().startswith(("[", "{")):
            with contextlib.suppress(ValueError):  # a bad string stays; the method's validation rejects it
                args[key] = json.loads(value)
    return args, as_json


def mrkdwn_texts(node: Any) -> list[str]:
    """Every mrkdwn text object's text in a block tree (plain_text is shown literally: it pings nobody)."""
    if isinstance(node, list):
        return [t for item in node for t in mrkdwn_texts(item)]
    if isinstance(node, dict):
        own = [node["text"]] if node.get("type") == "mrkdwn" and isinstance(node.get("text"), str) else []
        return own + [t for value in node.values() for t in mrkdwn_texts(value)]
    return []


def _rich_text_mentions(node: Any, usergroups: dict[str, dict], members: frozenset[str]) -> set[str]:
    """Users a rich_text block mentions with its user, usergroup and broadcast elements."""
    found: set[str] = set()
    if isinstance(node, list):
        for item in node:
            found |= _rich_text_mentions(item, usergroups, members)
    elif isinstance(node, dict):
        kind = node.get("type")
        if kind == "user" and isinstance(node.get("user_id"), str):
            found.add(node["user_id"])
        elif kind == "usergroup":
            found.update(usergroups.get(node.get("usergroup_id"), {}).get("users", []))  # type: ignore[arg-type]
        elif kind == "broadcast":
            found |= members
        for value in node.values():
            if isinstance(value, list | dict):
                found |= _rich_text_mentions(value, usergroups, members)
    return found


def _in_range(ts: str, args: dict) -> bool:
    """Whether `ts` lies between args' `oldest` and `latest` (exclusive unless `inclusive` is set)."""
    try:
        oldest = float(args.get("oldest") or 0)
    except (TypeError, ValueError):
        raise SlackError("invalid_ts_oldest") from None
    try:
        latest = float(args["latest"]) if args.get("latest") else float("inf")
    except (TypeError, ValueError):
        raise SlackError("invalid_ts_latest") from None
    at = float(ts)
    if _flag(args.get("inclusive")):
        return oldest <= at <= latest
    return oldest < at < latest


def _limit(args: dict, *, default: int, most: int) -> int:
    try:
        limit = int(args.get("limit") or default)
    except (TypeError, ValueError):
        raise SlackError("invalid_limit") from None
    return max(1, min(limit, most))


def _encode_cursor(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


def _decode_cursor(cursor: Any, prefix: str) -> str:
    try:
        value = base64.b64decode(str(cursor), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise SlackError("invalid_cursor") from None
    if not value.startswith(prefix):
        raise SlackError("invalid_cursor")
    return value.removeprefix(prefix)


def _basic(request: web.Request) -> tuple[str, str] | None:
    """(user, password) of an HTTP Basic Authorization header, if the request has one."""
    scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


def _jwt_part(value: dict | bytes) -> str:
    raw = value if isinstance(value, bytes) else json.dumps(value, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        return None
    return header.removeprefix("Bearer ").strip() or None


def _fault_response(fault: _Fault) -> web.Response:
    if fault.status == 429:
        headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
        return web.json_response({"ok": False, "error": "ratelimited"}, status=429, headers=headers)
    return web.Response(status=fault.status, text=f"{fault.status} upstream error")


def _flag(value: Any) -> bool:
    return value in (True, 1, "1", "true", "True")


def _valid_metadata(metadata: Any) -> bool:
    return (
        isinstance(metadata, dict)
        and isinstance(metadata.get("event_type"), str)
        and EVENT_TYPE.match(metadata["event_type"]) is not None
        and isinstance(metadata.get("event_payload"), dict)
    )


def _block_errors(blocks: Any, limit: int) -> list[str]:
    """What Slack would reject in a list of blocks, checked with slack_sdk's own models."""
    if not isinstance(blocks, list):
        return ["blocks must be a JSON list"]
    errors = [f"no more than {limit} items allowed"] if len(blocks) > limit else []
    block_ids: set[str] = set()
    for i, raw in enumerate(blocks):
        where = f"[json-pointer:/blocks/{i}]"
        if not isinstance(raw, dict):
            errors.append(f"block must be an object {where}")
            continue
        try:
            block = Block.parse(raw)
            if block is None:
                errors.append(f"unsupported type {raw.get('type')!r} {where}")
                continue
            _validate_tree(block)
        except MODEL_ERRORS as e:
            errors.append(f"{e} {where}")
        block_id = raw.get("block_id")
        if block_id is not None:
            if block_id in block_ids:
                errors.append(f"duplicate block_id {block_id!r} {where}")
            block_ids.add(block_id)
    return errors


def _validate_tree(obj: JsonObject) -> None:
    """validate_json() on an object and on every model object nested in it (elements, texts, options)."""
    obj.validate_json()
    for name in obj.attributes:
        value = getattr(obj, name, None)
        for child in value if isinstance(value, list | tuple) else [value]:
            if isinstance(child, JsonObject):
                _validate_tree(child)


def _view_errors(view: Any) -> list[str]:
    if not isinstance(view, dict):
        return ["view must be a JSON object"]
    try:
        View(**view).validate_json()
    except MODEL_ERRORS as e:
        return [str(e)]
    if view.get("type") == "modal" and not view.get("title"):
        return ["a modal needs a title"]
    return _block_errors(view.get("blocks") or [], MAX_VIEW_BLOCKS)


def _shorten(args: dict, limit: int = 160) -> str:
    text = json.dumps(args, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."
