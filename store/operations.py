"""What the outbox asks Slack to do: one dataclass per operation, with one encoder and one decoder.

A row stores an operation as its name (the `op` column) and a JSON payload. The names and payload keys
are those of every earlier release, so rows queued by a running one still deliver after an upgrade.
A post or upload whose `channel` is None goes to the incident's own channel (stored as
`"to": "incident"`), resolved by the relay when it delivers, once that channel exists. A post whose
`channel` is a user id (U... or W...) is a DM: Slack delivers it in that person's DM with the app.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any, Literal

Rendered = Literal["card", "announcement"]  # a message the relay renders from the incident as it is then
Target = Literal["card", "announcement", "confirmation"]  # a message Tocsin keeps and edits in place


class UnknownOperation(ValueError):
    """A row names an operation this release does not know."""

    def __init__(self, name: str) -> None:
        super().__init__(f"unknown outbox op {name!r}")
        self.name = name


@dataclass(frozen=True)
class CreateChannel:
    """Make the incident's channel (saved as its channel_id and channel_name)."""

    name: str


@dataclass(frozen=True)
class Invite:
    """Bring people into the incident channel; a user group is expanded when it is delivered."""

    users: list[str]
    groups: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Topic:
    """Set the channel topic from the incident as it is when delivered (only if the text changed)."""


@dataclass(frozen=True)
class Pin:
    target: Target = "card"


@dataclass(frozen=True)
class Refresh:
    """Edit a kept message: the card and the announcement are rendered when delivered; the reporter's
    confirmation prompt carries the text it was planned with."""

    target: Target
    text: str | None = None
    blocks: list[dict[str, Any]] | None = None
    metadata: dict[str, Any] | None = None


@dataclass(frozen=True)
class Post:
    """Post a message, given (text and blocks) or rendered when delivered (`render`); `save_as` keeps
    its ts on the incident (as `<save_as>_ts`); `thread` answers in the thread of a kept message;
    `invite` brings people into the channel first: Slack notifies a mentioned user only if they are a
    member (an on-call hand-off's notice mentions the incoming person)."""

    channel: str | None = None  # None: the incident's channel
    text: str = ""
    blocks: list[dict[str, Any]] | None = None
    metadata: dict[str, Any] | None = None
    render: Rendered | None = None
    thread: Literal["announcement"] | None = None
    save_as: Target | None = None
    urgent: bool = False  # a page, an SLA breach or a leadership notice: goes before the rest
    invite: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Page:
    """The facts a page was planned with, for the DM rendered when it is delivered."""

    level: int
    repeat: bool
    by: str | None = None  # who escalated by hand; None when the schedule did
    reason: str | None = None


@dataclass(frozen=True)
class Dm:
    """The page as a DM to each paged user and each member of a small paged group, once each."""

    users: list[str]
    groups: list[str]
    page: Page
    metadata: dict[str, Any] | None = None


@dataclass(frozen=True)
class Upload:
    channel: str | None  # None: the incident's channel
    filename: str
    title: str
    content: str | bytes  # bytes are stored base64-encoded
    comment: str


@dataclass(frozen=True)
class React:
    """Tocsin's own reaction on a person's message: it confirms the message was captured."""

    channel: str
    ts: str
    name: str


@dataclass(frozen=True)
class Edit:
    """Edit a message of no incident that Tocsin posted, where a click on it was made (a cover request,
    once taken): the click names its channel and ts."""

    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]] | None = None
    metadata: dict[str, Any] | None = None


@dataclass(frozen=True)
class SetUsergroup:
    """Make a schedule's user group hold who is on call of it: `users`, as planned at the hand-off, unless
    the relay can ask who is on call when it delivers (bot/delivery.py's `on_call`)."""

    usergroup: str
    schedule: str
    users: list[str]


@dataclass(frozen=True)
class PublishHome:
    """A user's App Home tab, rendered when delivered from what it shows then: rows queued for one user
    while one waits are not queued again (store/home_views.py), so only the latest rendering is sent."""

    user: str


Operation = (
    CreateChannel
    | Invite
    | Topic
    | Pin
    | Refresh
    | Post
    | Dm
    | Upload
    | React
    | PublishHome
    | SetUsergroup
    | Edit
)


def encode(operation: Operation) -> tuple[str, dict[str, Any]]:
    """The row's op name and JSON payload. Built field by field, not with dataclasses.asdict, which
    deep-copies the blocks that the row's JSON encoding copies anyway."""
    match operation:
        case CreateChannel(name=name):
            return "create_channel", {"name": name}
        case Invite(users=users, groups=groups):
            return "invite", {"users": users, "groups": groups} if groups else {"users": users}
        case Topic():
            return "topic", {}
        case Pin(target=target):
            return "pin", {"target": target}
        case Refresh(target=target, text=None):
            return "refresh", {"target": target}
        case Refresh(target=target, text=text, blocks=blocks, metadata=metadata):
            return "refresh", {"target": target, "text": text, "blocks": blocks, "metadata": metadata}
        case Post():
            return "post", _post(operation)
        case Dm(users=users, groups=groups, page=page, metadata=metadata):
            page_facts = {"level": page.level, "repeat": page.repeat, "by": page.by, "reason": page.reason}
            return "dm", {"users": users, "groups": groups, "page": page_facts, "metadata": metadata}
        case Upload():
            return "upload", _upload(operation)
        case React(channel=channel, ts=ts, name=name):
            return "react", {"channel": channel, "ts": ts, "name": name}
        case PublishHome(user=user):
            return "publish_home", {"user": user}
        case SetUsergroup(usergroup=usergroup, schedule=schedule, users=users):
            return "set_usergroup", {"usergroup": usergroup, "schedule": schedule, "users": users}
        case Edit(channel=channel, ts=ts, text=text, blocks=blocks, metadata=metadata):
            return "edit", {
                "channel": channel,
                "ts": ts,
                "text": text,
                "blocks": blocks,
                "metadata": metadata,
            }
    raise TypeError(f"not an outbox operation: {operation!r}")


def _where(channel: str | None) -> dict[str, Any]:
    return {"to": "incident"} if channel is None else {"channel": channel}


def _post(post: Post) -> dict[str, Any]:
    if post.render is not None:
        payload = {**_where(post.channel), "render": post.render}
    else:
        payload = {"text": post.text, "blocks": post.blocks, **_where(post.channel)}
    payload["metadata"] = post.metadata
    if post.thread is not None:
        payload["thread"] = post.thread
    if post.save_as is not None:
        payload["save_as"] = post.save_as
    if post.urgent:
        payload["urgent"] = True
    if post.invite:  # only when there is someone: rows queued before `invite` existed look the same
        payload["invite"] = post.invite
    return payload


def _upload(upload: Upload) -> dict[str, Any]:
    content = (
        {"content_b64": base64.b64encode(upload.content).decode()}
        if isinstance(upload.content, bytes)
        else {"content": upload.content}
    )
    return {
        **_where(upload.channel),
        "filename": upload.filename,
        "title": upload.title,
        **content,
        "comment": upload.comment,
    }


def decode(name: str, payload: dict[str, Any]) -> Operation:
    """The operation a row holds (UnknownOperation for a name this release does not know; KeyError for a
    payload missing what its operation needs)."""
    match name:
        case "create_channel":
            return CreateChannel(name=payload["name"])
        case "invite":
            return Invite(users=list(payload["users"]), groups=list(payload.get("groups", ())))
        case "topic":
            return Topic()
        case "pin":
            return Pin(target=payload.get("target", "card"))
        case "refresh":
            return Refresh(
                target=payload["target"],
                text=payload.get("text"),
                blocks=payload.get("blocks"),
                metadata=payload.get("metadata"),
            )
        case "post":
            return _decoded_post(payload)
        case "dm":
            return Dm(
                users=list(payload["users"]),
                groups=list(payload["groups"]),
                page=Page(
                    level=payload["page"]["level"],
                    repeat=payload["page"]["repeat"],
                    by=payload["page"]["by"],
                    reason=payload["page"]["reason"],
                ),
                metadata=payload.get("metadata"),
            )
        case "upload":
            return Upload(
                channel=payload.get("channel"),
                filename=payload["filename"],
                title=payload["title"],
                content=(
                    base64.b64decode(payload["content_b64"])
                    if "content_b64" in payload
                    else payload["content"]
                ),
                comment=payload["comment"],
            )
        case "react":
            return React(channel=payload["channel"], ts=payload["ts"], name=payload["name"])
        case "publish_home":
            return PublishHome(user=payload["user"])
        case "edit":
            return Edit(
                channel=payload["channel"],
                ts=payload["ts"],
                text=payload["text"],
                blocks=payload.get("blocks"),
                metadata=payload.get("metadata"),
            )
        case "set_usergroup":
            return SetUsergroup(
                usergroup=payload["usergroup"], schedule=payload["schedule"], users=list(payload["users"])
            )
    raise UnknownOperation(name)


def _decoded_post(payload: dict[str, Any]) -> Post:
    return Post(
        channel=None if payload.get("to") == "incident" else payload.get("channel"),
        text=payload.get("text", ""),
        blocks=payload.get("blocks"),
        metadata=payload.get("metadata"),
        render=payload.get("render"),
        thread=payload.get("thread"),
        save_as=payload.get("save_as"),
        urgent=bool(payload.get("urgent", False)),
        invite=list(payload.get("invite", ())),
    )


# How urgent a message is: by its incident's priority first, then by its class within the priority.
ALERT, MESSAGE, HOUSEKEEPING = 0, 1, 2  # pages, breaches, leadership; the rest; topic and pin
CLASSES = ("alert", "message", "housekeeping")
NO_PRIORITY = 5  # the rank of a message of no incident (a digest), after every priority's
COALESCED = frozenset({"card", "announcement-edit", "topic"})  # lanes whose rows all render one thing


@dataclass(frozen=True)
class Route:
    """Where a row goes in the delivery order: `urgency` (lower first, across incidents), its `lane`
    (order is kept among one incident's rows of a lane, and only there), what it `needs` from an
    earlier row of its incident (the channel, the card, the announcement, the confirmation prompt) and
    what it `provides`, and the Slack quota `bucket` its main call spends."""

    urgency: int
    lane: str
    bucket: str
    needs: str | None = None
    provides: str | None = None


def urgency(priority: str | None, klass: int) -> int:
    rank = int(priority[1:]) if priority and priority[:1] == "P" and priority[1:].isdigit() else NO_PRIORITY
    return rank * len(CLASSES) + klass


def urgency_label(value: int) -> str:
    """`P1-alert`, `P3-message`, `none-housekeeping`: for /healthz and /metrics."""
    rank, klass = divmod(value, len(CLASSES))
    return f"{f'P{rank}' if rank < NO_PRIORITY else 'none'}-{CLASSES[min(klass, len(CLASSES) - 1)]}"


def route(operation: Operation, *, priority: str | None) -> Route:
    """The route of one operation of an incident of `priority` (None: of no incident)."""

    def at(klass: int) -> int:
        return urgency(priority, klass)

    match operation:
        case CreateChannel():
            return Route(at(MESSAGE), "create", "conversations.create", provides="channel")
        case Invite():
            return Route(at(MESSAGE), "channel", "conversations.invite", needs="channel")
        case Topic():
            return Route(at(HOUSEKEEPING), "topic", "conversations.setTopic", needs="channel")
        case Pin(target=target):
            return Route(at(HOUSEKEEPING), "pin", "pins.add", needs=target)
        case Refresh(target="announcement"):
            return Route(at(MESSAGE), "announcement-edit", "chat.update", needs="announcement")
        case Refresh(target=target):
            return Route(at(MESSAGE), target, "chat.update", needs=target)
        case Post():
            return _post_route(operation, at(ALERT if operation.urgent else MESSAGE))
        case Dm(users=users):
            # Rendered with a link to the incident's channel once it exists; the claim waits for it only
            # briefly (outbox.PAGE_PATIENCE): a page must not queue behind channel creations. Its bucket
            # is its first user's conversation, as a post's is its channel.
            bucket = f"post:{users[0]}" if users else "chat.postMessage"
            return Route(at(ALERT), "dm", bucket, needs="channel")
        case Upload(channel=None):
            return Route(at(MESSAGE), "channel", "files.completeUploadExternal", needs="channel")
        case Upload(channel=channel):
            return Route(at(MESSAGE), f"to:{channel}", "files.completeUploadExternal")
        case React():
            return Route(at(HOUSEKEEPING), "react", "reactions.add")
        case PublishHome():
            return Route(at(HOUSEKEEPING), "home", "views.publish")
        case SetUsergroup(usergroup=usergroup):
            return Route(at(MESSAGE), f"usergroup:{usergroup}", "usergroups.users.update")
        case Edit(channel=channel):
            return Route(at(MESSAGE), f"to:{channel}", "chat.update")
    raise TypeError(f"not an outbox operation: {operation!r}")


def _post_route(post: Post, urgency: int) -> Route:
    if post.channel is None:  # the incident's channel: after its channel exists, in order there
        return Route(urgency, "channel", "chat.postMessage", needs="channel", provides=post.save_as)
    if post.save_as == "announcement":  # it links the incident's channel: once there is one
        return Route(
            urgency, "announcement", f"post:{post.channel}", needs="channel", provides="announcement"
        )
    if post.thread == "announcement":  # a reply in its thread, in order
        return Route(urgency, "announcement", f"post:{post.channel}", needs="announcement")
    return Route(urgency, f"to:{post.channel}", f"post:{post.channel}")
