"""Requests to the bot shaped and signed the way Slack sends them, over real HTTP.

Payloads start from the real Slack JSON in ``tests/payloads/`` and are filled in from the fake: a
click carries the message the fake holds, a submission carries the view the bot opened, and
response URLs and trigger ids are issued by the fake so it can check how the bot uses them.

Events go as Slack's Events API sends them: an ``event_callback`` envelope in a JSON body, signed, with
Slack's retry headers when it sends one again. The builders (``reaction_added`` ...) make an event from
what the fake holds, so change the fake first (``fake.react``, ``fake.pin_by``) and send the event after,
as Slack does.

A command's text goes over the wire encoded as Slack encodes what a person typed (`slack_encoded`);
modal values go raw, as Slack sends them.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp

from tests.fakeslack import FakeSlack, Message

PAYLOADS = Path(__file__).parent / "payloads"

# Markup a person's Slack client makes of what they typed (a mention, a channel, a user group, a
# broadcast, a link), which Slack passes on as it is; with should_escape, mentions carry the name.
MARKUP = re.compile(
    r"<(?:@[UW][A-Z0-9_]+(?:\|[^<>|]+)?"
    r"|#C[A-Z0-9_]+(?:\|[^<>|]*)?"
    r"|!(?:channel|here|everyone)(?:\|[^<>|]+)?"
    r"|!subteam\^S[A-Z0-9_]+(?:\|[^<>|]+)?"
    r"|(?:https?://|mailto:)[^<>|\s]+(?:\|[^<>]+)?)>"
)

# The empty state Slack reports for an input the user left untouched, by element type.
_EMPTY_STATE: dict[str, dict[str, Any]] = {
    "plain_text_input": {"value": None},
    "number_input": {"value": None},
    "email_text_input": {"value": None},
    "url_text_input": {"value": None},
    "static_select": {"selected_option": None},
    "external_select": {"selected_option": None},
    "radio_buttons": {"selected_option": None},
    "users_select": {"selected_user": None},
    "conversations_select": {"selected_conversation": None},
    "channels_select": {"selected_channel": None},
    "datepicker": {"selected_date": None},
    "timepicker": {"selected_time": None},
    "checkboxes": {"selected_options": []},
    "multi_static_select": {"selected_options": []},
    "multi_external_select": {"selected_options": []},
    "multi_users_select": {"selected_users": []},
    "multi_conversations_select": {"selected_conversations": []},
    "multi_channels_select": {"selected_channels": []},
}


FORM = "application/x-www-form-urlencoded"


@dataclass
class Reply:
    status: int
    body: str
    json: Any | None  # parsed when the body is JSON
    event_id: str | None = None  # the envelope's event_id, for an event (send it again to retry)


def slack_encoded(text: str) -> str:
    """`text` as Slack sends a typed slash command: `&`, `<` and `>` become `&amp;`, `&lt;` and `&gt;`,
    except the brackets of well-formed markup (MARKUP), which goes through as is (an `&` inside it, as in
    a link's query string, is still `&amp;`)."""
    parts, at = [], 0
    for markup in MARKUP.finditer(text):
        parts += [_escaped(text[at : markup.start()]), markup.group().replace("&", "&amp;")]
        at = markup.end()
    parts.append(_escaped(text[at:]))
    return "".join(parts)


def _escaped(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def load_payload(name: str) -> dict:
    """A fresh copy of ``tests/payloads/<name>.json``."""
    return json.loads((PAYLOADS / f"{name}.json").read_text())


def text_input(value: str | None) -> dict:
    return {"type": "plain_text_input", "value": value}


def select(value: str | None) -> dict:
    option = (
        None
        if value is None
        else {"text": {"type": "plain_text", "text": value, "emoji": True}, "value": value}
    )
    return {"type": "static_select", "selected_option": option}


class SlackRequests:
    """Sends requests to the bot the way Slack does: form-encoded, signed with v0 HMAC-SHA256."""

    def __init__(
        self,
        bot_url: str,
        signing_secret: str,
        fake: FakeSlack,
        *,
        team_id: str = "T0001",
        api_app_id: str = "A1",
    ) -> None:
        self.bot_url = bot_url
        self.signing_secret = signing_secret
        self.fake = fake
        self.team_id = team_id
        self.team_domain = "tocsin-test"
        self.api_app_id = api_app_id
        self._session: aiohttp.ClientSession | None = None
        self._events: dict[str, dict] = {}  # event_id -> the envelope sent, for retries

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def command(
        self,
        text: str,
        *,
        user: str = "U_ALICE",
        channel: str = "C_GENERAL",
        command: str = "/incident",
    ) -> Reply:
        """`/incident <text>` typed by `user` in `channel`: `text` is what the person typed, and goes
        over the wire encoded as Slack encodes it (`R&D` arrives as `R&amp;D`, `<@U0CAROL|carol>` as is)."""
        fields = load_payload("slash_command")
        fields.update(
            team_id=self.team_id,
            team_domain=self.team_domain,
            channel_id=channel,
            channel_name=self._channel_name(channel),
            user_id=user,
            user_name=_user_name(user),
            command=command,
            text=slack_encoded(text),
            api_app_id=self.api_app_id,
            response_url=self.fake.new_response_url(),
            trigger_id=self.fake.new_trigger_id(),
        )
        return await self._send(urlencode(fields).encode())

    async def click(
        self,
        action_id: str,
        value: str,
        *,
        user: str = "U_ALICE",
        channel: str = "C_GENERAL",
        message_ts: str | None = None,
        block_id: str = "actions",
    ) -> Reply:
        """A button click. With `message_ts`, the click comes from that message as the fake holds it
        (channel and, when the button is found there, block_id and text are taken from it)."""
        payload = load_payload("block_actions")
        if message_ts is None:
            message = self._made_up_message(action_id, value, block_id)
            channel_id, versions, is_ephemeral = channel, [message["blocks"]], False
        else:
            channel_id, message, versions, is_ephemeral = self._clicked_message(message_ts)
        found = _find_button(versions, action_id)
        if found is None:
            raise AssertionError(
                f"no button {action_id!r} on message {message_ts} (nor its earlier versions)"
            )
        block_id = found[0] or block_id
        text = found[1].get("text") or {"type": "plain_text", "text": value, "emoji": True}
        payload.update(
            user=self._user(user),
            api_app_id=self.api_app_id,
            container={
                "type": "message",
                "message_ts": message["ts"],
                "channel_id": channel_id,
                "is_ephemeral": is_ephemeral,
            },
            trigger_id=self.fake.new_trigger_id(),
            team={"id": self.team_id, "domain": self.team_domain},
            channel={"id": channel_id, "name": self._channel_name(channel_id)},
            message=message,
            state={"values": {}},
            response_url=self.fake.new_response_url(),
            actions=[
                {
                    "action_id": action_id,
                    "block_id": block_id,
                    "text": text,
                    "value": value,
                    "type": "button",
                    "action_ts": f"{time.time():.6f}",
                }
            ],
        )
        return await self._send(urlencode({"payload": json.dumps(payload)}).encode())

    async def submit(
        self,
        callback_id: str,
        values: dict,
        *,
        user: str = "U_ALICE",
        private_metadata: str | None = None,
    ) -> Reply:
        """A modal submission. `values` is view.state.values (block_id -> action_id -> value object).

        When the bot opened a view with this callback_id, the submission carries that view (id, blocks,
        private_metadata) and the untouched inputs Slack would also report; `values` must match its inputs.
        `private_metadata=None` means "what the bot put in the view"."""
        payload = load_payload("view_submission")
        opened = next(
            (v for v in reversed(self.fake.views) if v["view"].get("callback_id") == callback_id), None
        )
        view = payload["view"]
        if opened is None:
            view_id, blocks, shown = f"V{secrets.token_hex(5).upper()}", [], {}
            state = values
        else:
            view_id, blocks, shown = opened["view_id"], opened["view"].get("blocks", []), opened["view"]
            state = _full_state(blocks, values)
        view.update(
            id=view_id,
            team_id=self.team_id,
            blocks=blocks,
            private_metadata=shown.get("private_metadata", "")
            if private_metadata is None
            else private_metadata,
            callback_id=callback_id,
            state={"values": state},
            title=shown.get("title", view["title"]),
            close=shown.get("close"),
            submit=shown.get("submit", view["submit"]),
            root_view_id=view_id,
            app_id=self.api_app_id,
            external_id=shown.get("external_id", ""),
            app_installed_team_id=self.team_id,
            bot_id=self.fake.bot_id,
        )
        payload.update(
            team={"id": self.team_id, "domain": self.team_domain},
            user=self._user(user),
            api_app_id=self.api_app_id,
            trigger_id=self.fake.new_trigger_id(),
        )
        return await self._send(urlencode({"payload": json.dumps(payload)}).encode())

    # ------------------------------------------------------------------ Events API

    async def event(
        self,
        event: dict,
        *,
        retry_num: int | None = None,
        retry_reason: str = "http_timeout",
        event_id: str | None = None,
    ) -> Reply:
        """`event` in Slack's event_callback envelope, as a signed JSON body; the Reply's `event_id` is
        the envelope's. Slack sends an event again when the app did not answer 200 within 3 s: to send
        such a retry, pass the first Reply's `event_id` and `retry_num` (1 to 3). The same envelope goes
        (event_time too), with X-Slack-Retry-Num and X-Slack-Retry-Reason. A new `event_id` names a
        fresh envelope."""
        retries = load_payload("event_retry_headers")
        if retry_num is not None and not 1 <= retry_num <= retries["most_retries"]:
            raise AssertionError(f"Slack numbers retries 1 to {retries['most_retries']}, not {retry_num}")
        if retry_reason not in retries["reasons"]:
            raise AssertionError(
                f"Slack gives no retry reason {retry_reason!r}; it gives {retries['reasons']}"
            )
        envelope = self._events.get(event_id or "") or self._envelope(event_id)
        envelope = {**envelope, "event": event}
        self._events[envelope["event_id"]] = envelope
        body = json.dumps(envelope).encode()
        headers = self.sign(body, content_type="application/json")
        if retry_num is not None:
            headers.update({"X-Slack-Retry-Num": str(retry_num), "X-Slack-Retry-Reason": retry_reason})
        reply = await self.post(body, headers)
        reply.event_id = envelope["event_id"]
        return reply

    async def url_verification(self, challenge: str) -> Reply:
        """The handshake Slack sends when a Request URL is saved: the app must answer the challenge."""
        payload = load_payload("url_verification")
        payload["challenge"] = challenge
        body = json.dumps(payload).encode()
        return await self.post(body, self.sign(body, content_type="application/json"))

    def reaction_added(self, channel: str, ts: str, *, user: str, name: str) -> dict:
        """The reaction_added event for `user`'s :`name`: on a message, which fake.react() made."""
        if user not in self.fake.reactions(channel, ts).get(name, set()):
            raise AssertionError(f"{user} has no :{name}: on {channel}/{ts}: fake.react() it first")
        return self._reaction_event("reaction_added", channel, ts, user=user, name=name)

    def reaction_removed(self, channel: str, ts: str, *, user: str, name: str) -> dict:
        """The reaction_removed event, once fake.unreact() has taken the reaction off."""
        if user in self.fake.reactions(channel, ts).get(name, set()):
            raise AssertionError(f"{user} still has :{name}: on {channel}/{ts}: fake.unreact() it first")
        return self._reaction_event("reaction_removed", channel, ts, user=user, name=name)

    def pin_added(self, channel: str, ts: str, *, user: str) -> dict:
        """The pin_added event for `user`'s pin of a message, which fake.pin_by() made."""
        room = self.fake.channels[channel]
        if ts not in room.pins or room.pinned_by[ts][0] != user:
            raise AssertionError(f"{user} has not pinned {channel}/{ts}: fake.pin_by() it first")
        return self._pin_event("pin_added", channel, ts, user=user)

    def pin_removed(self, channel: str, ts: str, *, user: str) -> dict:
        """The pin_removed event for `user` unpinning a message, once fake.unpin_by() has."""
        room = self.fake.channels[channel]
        if ts in room.pins or ts not in room.pinned_by:
            raise AssertionError(f"{channel}/{ts} is pinned or never was: fake.unpin_by() it first")
        event = self._pin_event("pin_removed", channel, ts, user=user)
        event["has_pins"] = bool(room.pins)
        return event

    def app_home_opened(self, user: str, *, tab: str = "home") -> dict:
        """`user` opens the app's Home (or Messages) tab; a Home tab published before comes with it."""
        event = load_payload("app_home_opened")
        event.update(user=user, channel=self.fake.dm_id(user), tab=tab, event_ts=_event_ts())
        view = self.fake.home(user) if tab == "home" else None
        if view is None:
            del event["view"]  # Slack sends a view only once the app has published one
        else:
            event["view"] = view
        return event

    # ------------------------------------------------------------------ shortcuts

    async def message_shortcut(self, callback_id: str, *, channel: str, ts: str, user: str) -> Reply:
        """A message shortcut on the message `ts` the fake holds (a person's or the bot's), by `user`."""
        payload = load_payload("message_action")
        message = self.fake.message_json(self.fake.message(channel, ts))
        message.pop("metadata", None)
        payload.update(
            action_ts=_event_ts(),
            team={"id": self.team_id, "domain": self.team_domain},
            user=self._user(user),
            channel={"id": channel, "name": self._channel_name(channel)},
            callback_id=callback_id,
            trigger_id=self.fake.new_trigger_id(),
            response_url=self.fake.new_response_url(),
            message_ts=ts,
            message=message,
        )
        return await self._send(urlencode({"payload": json.dumps(payload)}).encode())

    async def global_shortcut(self, callback_id: str, *, user: str) -> Reply:
        """A global shortcut (the lightning menu) by `user`: no channel, no response_url."""
        payload = load_payload("shortcut")
        user_json = self._user(user)
        del user_json["name"]  # a global shortcut's user has id, username and team_id only
        payload.update(
            action_ts=_event_ts(),
            team={"id": self.team_id, "domain": self.team_domain},
            user=user_json,
            callback_id=callback_id,
            trigger_id=self.fake.new_trigger_id(),
        )
        return await self._send(urlencode({"payload": json.dumps(payload)}).encode())

    async def post(self, body: bytes, headers: dict) -> Reply:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        async with self._session.post(self.bot_url, data=body, headers=headers) as response:
            text = await response.text()
            is_json = response.content_type == "application/json"
        return Reply(status=response.status, body=text, json=json.loads(text) if is_json and text else None)

    def sign(self, body: bytes, timestamp: int | None = None, *, content_type: str = FORM) -> dict:
        timestamp = int(time.time()) if timestamp is None else timestamp
        base = f"v0:{timestamp}:".encode() + body
        digest = hmac.new(self.signing_secret.encode(), base, hashlib.sha256).hexdigest()
        return {
            "X-Slack-Request-Timestamp": str(timestamp),
            "X-Slack-Signature": f"v0={digest}",
            "Content-Type": content_type,
        }

    async def _send(self, body: bytes) -> Reply:
        return await self.post(body, self.sign(body))

    def _envelope(self, event_id: str | None) -> dict:
        """A fresh event_callback envelope from this workspace to the app, seen by its bot user."""
        envelope = load_payload("event_callback")
        envelope.update(
            team_id=self.team_id,
            context_team_id=self.team_id,
            api_app_id=self.api_app_id,
            event_id=event_id or f"Ev{secrets.token_hex(5).upper()}",
            event_time=int(time.time()),
            authed_users=[self.fake.bot_user_id],
            event_context=f"4-{secrets.token_urlsafe(48)}",
        )
        envelope["authorizations"][0].update(team_id=self.team_id, user_id=self.fake.bot_user_id)
        return envelope

    def _reaction_event(self, kind: str, channel: str, ts: str, *, user: str, name: str) -> dict:
        event = load_payload(kind)
        event.update(
            user=user,
            reaction=name,
            item={"type": "message", "channel": channel, "ts": ts},
            item_user=self.fake.message_json(self.fake.message(channel, ts))["user"],
            event_ts=_event_ts(),
        )
        return event

    def _pin_event(self, kind: str, channel: str, ts: str, *, user: str) -> dict:
        """pin_added or pin_removed: `user` did it; the item is the pin (who made it, when)."""
        room = self.fake.channels[channel]
        pinner, pinned_at = room.pinned_by[ts]
        message = self.fake.message_json(self.fake.message(channel, ts))
        message.pop("metadata", None)
        message["permalink"] = self.fake.permalink(channel, ts)
        event = load_payload(kind)
        event.update(
            user=user,
            channel_id=channel,
            item={
                "type": "message",
                "created": pinned_at,
                "created_by": pinner,
                "channel": channel,
                "message": message,
            },
            item_user=message["user"],
            pin_count=len(room.pins),
            pinned_info={"channel": channel, "pinned_by": pinner, "pinned_ts": pinned_at},
            event_ts=_event_ts(),
        )
        return event

    def _user(self, user: str) -> dict:
        name = _user_name(user)
        return {"id": user, "username": name, "name": name, "team_id": self.team_id}

    def _channel_name(self, channel: str) -> str:
        known = self.fake.channels.get(channel)
        return known.name if known is not None else channel.removeprefix("C_").lower()

    def _clicked_message(self, ts: str) -> tuple[str, dict, list[list], bool]:
        """(channel, message as the payload shows it, its block versions newest first, is_ephemeral)."""
        for message in self.fake.messages:
            if message.ts == ts:
                versions = [message.blocks or [], *(v.get("blocks") or [] for v in reversed(message.history))]
                return message.channel, _as_payload_message(self.fake, message), versions, False
        for ephemeral in self.fake.ephemerals:
            if ephemeral["message_ts"] == ts:
                blocks = ephemeral["blocks"] or []
                shown = {"type": "message", "text": ephemeral["text"] or "", "ts": ts, "blocks": blocks}
                return ephemeral["channel"], shown, [blocks], True
        raise AssertionError(f"the fake holds no message or ephemeral with ts {ts}")

    def _made_up_message(self, action_id: str, value: str, block_id: str) -> dict:
        button = {
            "type": "button",
            "action_id": action_id,
            "text": {"type": "plain_text", "text": value, "emoji": True},
            "value": value,
        }
        return {
            "type": "message",
            "user": self.fake.bot_user_id,
            "bot_id": self.fake.bot_id,
            "app_id": self.api_app_id,
            "text": "",
            "ts": f"{time.time():.6f}",
            "team": self.team_id,
            "blocks": [{"type": "actions", "block_id": block_id, "elements": [button]}],
        }


def _event_ts() -> str:
    return f"{time.time():.6f}"


def _user_name(user: str) -> str:
    return user.removeprefix("U_").lower()


def _as_payload_message(fake: FakeSlack, message: Message) -> dict:
    shown: dict[str, Any] = {
        "type": "message",
        "user": fake.bot_user_id,
        "bot_id": fake.bot_id,
        "app_id": fake.app_id,
        "text": message.text or "",
        "ts": message.ts,
        "team": fake.team_id,
        "blocks": message.blocks or [],
    }
    if message.thread_ts:
        shown["thread_ts"] = message.thread_ts
    return shown


def _find_button(versions: list[list], action_id: str) -> tuple[str | None, dict] | None:
    """(block_id, element) of the button in any version of a message: a user may click a stale render."""
    for blocks in versions:
        for block in blocks:
            elements = [*(block.get("elements") or []), block.get("accessory")]
            for element in elements:
                if isinstance(element, dict) and element.get("action_id") == action_id:
                    return block.get("block_id"), element
    return None


def _full_state(blocks: list, values: dict) -> dict:
    """view.state.values as Slack sends it: every input of the view, with `values` filled in."""
    inputs: dict[tuple[str, str], str] = {}
    state: dict[str, dict] = {}
    for block in blocks:
        element = block.get("element") or {}
        if block.get("type") == "input" and block.get("block_id") and element.get("action_id"):
            inputs[(block["block_id"], element["action_id"])] = element["type"]
            empty = {"type": element["type"], **_EMPTY_STATE.get(element["type"], {})}
            state.setdefault(block["block_id"], {})[element["action_id"]] = copy.deepcopy(empty)
    for block_id, actions in values.items():
        for action_id, value in actions.items():
            kind = inputs.get((block_id, action_id))
            if kind is None:
                raise AssertionError(
                    f"the opened view has no input {block_id}/{action_id}; inputs: {sorted(inputs)}"
                )
            if value.get("type") != kind:
                raise AssertionError(
                    f"input {block_id}/{action_id} is a {kind}, the test sent a {value.get('type')}"
                )
            state[block_id][action_id] = value
    return state
