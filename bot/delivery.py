"""What each outbox operation does in Slack, as the relay delivers it (bot/relay.py claims the rows,
orders them and records how each went)."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from slack_sdk.errors import SlackApiError

from bot import quota
from bot.slack import NoFreeChannelName, SlackFacade, slack_error
from handlers.messages import Composer
from store.models import Incident, OutboxMessage
from store.operations import (
    CreateChannel,
    Dm,
    Edit,
    Invite,
    Pin,
    Post,
    PublishHome,
    React,
    Refresh,
    SetUsergroup,
    Topic,
    UnknownOperation,
    Upload,
    decode,
)

log = logging.getLogger("tocsin.relay")

# A paged user group's members are invited into the incident channel, this many at most per group: an
# on-call group has a handful; one of hundreds is a department, and Slack offers its own invite prompt.
GROUP_INVITES = 100
# Members of a paged user group get the page as a DM only if the group has at most this many: an
# on-call rota expects it, a broadcast group does not (its members still see the page in the channel).
GROUP_DMS = 25
_NO_DM = frozenset({"channel_not_found", "user_not_found", "cannot_dm_bot", "user_disabled", "is_archived"})
# Errors with which Slack refuses a user group's members for good: the update is recorded as failed, not
# tried again (the schedule's next hand-off queues another).
_NO_GROUP_UPDATE = frozenset(
    {
        "no_such_subteam",
        "subteam_not_found",
        "invalid_users",
        "no_users_provided",
        "permission_denied",
        "plan_upgrade_required",
    }
)


@dataclass
class Outcome:
    error: str | None = None
    retry_at: datetime | None = None  # when to try again; None with an error: never
    saves: dict[str, Any] | None = None  # incident columns to store (channel id, card ts, ...)


class Courier:
    """Carries out one outbox row's operation in Slack, for the incident as it is now. Slack's errors
    propagate to the relay, which classifies them; `classify` is how, for the one operation that
    decides what to do after a refusal (a channel that cannot be made)."""

    def __init__(
        self,
        *,
        slack: SlackFacade,
        composer: Composer,
        classify: Callable[[OutboxMessage, SlackApiError], Outcome],
        home: Callable[[str], Awaitable[dict[str, Any]]] | None = None,
        on_call: Callable[[str], Awaitable[list[str] | None]] | None = None,
    ) -> None:
        """`home`: a user's App Home view, as it should show now (None: PublishHome rows are dropped).
        `on_call`: who is on call of a schedule now, by its name (None: a SetUsergroup sets the users it
        was queued with)."""
        self.slack, self.composer, self.classify, self.home = slack, composer, classify, home
        self.on_call = on_call

    def buckets(self, row: OutboxMessage, incident: Incident | None) -> list[str]:
        """The quota buckets (bot/quota.py) the row's first call spends, as far as they are known before
        it is made: a post's channel is known only now for the incident's channel, a DM's is its user;
        a post that invites people first spends an invitation too."""
        try:
            operation = decode(row.op, row.payload)
        except UnknownOperation:
            return [row.bucket or row.op]
        match operation:
            case Post(channel=channel, invite=invite):
                inviting = quota.keys("conversations.invite") if invite else []
                where = channel or (incident.channel_id if incident else None)
                return [*inviting, *quota.keys("chat.postMessage", where)]
            case Dm(users=[user, *_]):
                return quota.keys("chat.postMessage", user)
        return [row.bucket or row.op]

    async def perform(self, row: OutboxMessage, incident: Incident | None, uncertain: bool) -> Outcome:
        """`uncertain`: an earlier try may have done it already (its process died, its answer was lost)."""
        try:
            operation = decode(row.op, row.payload)
        except UnknownOperation as error:
            return Outcome(error=str(error))
        match operation:
            case CreateChannel():
                return await self._create_channel(operation, row, incident, uncertain)
            case Invite() | Topic() | Pin() | Refresh():
                return await self._edit_channel(operation, incident)
            case Dm():
                return await self._direct_message(operation, incident)
            case Post():
                return await self._post(operation, row, incident, uncertain)
            case Upload():
                return await self._upload(operation, incident)
            case React(channel=channel, ts=ts, name=name):
                await self.slack.react(channel=channel, ts=ts, name=name)
                return Outcome()
            case PublishHome(user=user):
                if self.home is not None:
                    await self.slack.publish_home(user=user, view=await self.home(user))
                return Outcome()
            case SetUsergroup():
                return await self._set_usergroup(operation)
            case Edit(channel=channel, ts=ts, text=text, blocks=blocks, metadata=metadata):
                await self.slack.update(channel=channel, ts=ts, text=text, blocks=blocks, metadata=metadata)
                return Outcome()

    async def _create_channel(
        self, operation: CreateChannel, row: OutboxMessage, incident: Incident | None, uncertain: bool
    ) -> Outcome:
        name = operation.name
        if uncertain:  # an earlier try may have made it, unrecorded (a kill, a lost answer, a database error)
            found = await self.slack.find_created_channel(name=name, since=row.created_at.timestamp() - 60)
            if found is not None:
                log.info(
                    "adopted the channel an earlier try made",
                    extra={"event": "channel_adopted", "outbox_id": row.id, "channel": found[0]},
                )
                return Outcome(saves={"channel_id": found[0], "channel_name": found[1]})
        try:
            channel_id, made = await self.slack.create_channel(name=name)
        except (SlackApiError, NoFreeChannelName) as error:
            outcome = (
                self.classify(row, error)
                if isinstance(error, SlackApiError)
                else Outcome(error=f"name_taken: {error}")
            )
            if outcome.retry_at is None and incident is not None and incident.origin_channel_id:
                # The channel can never be made: carry on in the channel the incident was declared in.
                outcome.saves = {"channel_id": incident.origin_channel_id}
            return outcome
        return Outcome(saves={"channel_id": channel_id, "channel_name": made})

    async def _edit_channel(
        self, operation: Invite | Topic | Pin | Refresh, incident: Incident | None
    ) -> Outcome:
        """Who is in the incident channel, its topic, its pin and the messages Tocsin keeps in it."""
        if incident is not None and isinstance(operation, Refresh):
            return await self._refresh(operation, incident)
        if incident is None or not incident.channel_id:
            return Outcome(error="no incident channel")
        if not _own_channel(incident):
            # The channel it was declared in (kept when a channel of its own could not be made, or with
            # per_incident off): its topic and pins belong to the people who use it for everything else,
            # and nobody is pulled into it (the page DMs them).
            return Outcome()
        match operation:
            case Invite():
                users = list(operation.users)
                for group in operation.groups:  # expanded now: a group's members change
                    users += (await self.slack.usergroup_members(usergroup=group))[:GROUP_INVITES]
                await self.slack.invite_members(channel=incident.channel_id, users=users)
            case Topic():
                topic = self.composer.topic(incident)  # the incident as it is now, whichever change asked
                if topic == incident.topic:  # conversations.setTopic is Tier 2: only when the text changes
                    return Outcome()
                await self.slack.set_topic(channel=incident.channel_id, topic=topic)
                return Outcome(saves={"topic": topic})
            case Pin() if incident.card_ts:
                await self.slack.pin(channel=incident.channel_id, ts=incident.card_ts)
        return Outcome()

    async def _refresh(self, operation: Refresh, incident: Incident) -> Outcome:
        """Edit a kept message. The card and the announcement are rendered from the incident as it is
        now, and sent only if that differs from what Slack shows (the digest of the last delivered)."""
        if operation.target == "confirmation":  # the reporter's prompt, settled: planned with what happened
            if incident.confirmation_ts and incident.channel_id:
                await self.slack.update(
                    channel=incident.channel_id,
                    ts=incident.confirmation_ts,
                    text=operation.text or "",
                    blocks=operation.blocks,
                    metadata=operation.metadata,
                )
            return Outcome()
        announce = self.composer.policy.announce_channel
        if operation.target == "card" and incident.card_ts and incident.channel_id:
            message, channel, ts = self.composer.card(incident), incident.channel_id, incident.card_ts
        elif operation.target == "announcement" and incident.announcement_ts and announce:
            message, channel, ts = self.composer.announcement(incident), announce, incident.announcement_ts
        else:
            return Outcome()
        metadata = self.composer.metadata("incident_declared", incident)
        shown = digest(message.text, message.blocks, metadata)
        if shown == getattr(incident, f"{operation.target}_digest"):
            return Outcome()  # Slack shows this already: chat.update is Tier 3, and an edit notifies nobody
        await self.slack.update(
            channel=channel, ts=ts, text=message.text, blocks=message.blocks, metadata=metadata
        )
        return Outcome(saves={f"{operation.target}_digest": shown})

    async def _direct_message(self, operation: Dm, incident: Incident | None) -> Outcome:
        """A page, as a DM from the app to each paged user and each member of a paged user group of at
        most GROUP_DMS members, once each, rendered now so that it links the incident channel. Posted to
        the user's id: Slack delivers it in their DM with the app. Someone Slack will not DM is skipped
        (logged). A DM is not checked against history after an uncertain delivery (that would need
        im:history): at worst a crash mid-delivery sends a page twice."""
        if incident is None:
            return Outcome(error="no incident")
        people = list(operation.users)
        for group in operation.groups:
            members = await self.slack.usergroup_members(usergroup=group)
            if len(members) > GROUP_DMS:
                log.info(
                    "user group too large for DMs",
                    extra={"event": "page_dm_skipped", "usergroup": group, "members": len(members)},
                )
                continue
            people += members
        message = self.composer.page_dm(incident, operation.page)
        for user in dict.fromkeys(people):
            try:
                await self.slack.post(
                    channel=user, text=message.text, blocks=message.blocks, metadata=operation.metadata
                )
            except SlackApiError as error:
                if slack_error(error) not in _NO_DM:
                    raise
                log.warning(  # one person Slack will not DM (deactivated, a bot) must not stop the rest
                    "page DM refused",
                    extra={"event": "page_dm_failed", "user": user, "error": slack_error(error)},
                )
        return Outcome()

    async def _post(
        self, operation: Post, row: OutboxMessage, incident: Incident | None, uncertain: bool
    ) -> Outcome:
        channel = operation.channel
        if channel is None:
            channel = incident.channel_id if incident else None
            if not channel:
                return Outcome(error="no incident channel")
        if operation.invite and (held := await self._invite_first(operation, row, channel)):
            return held
        text, blocks = operation.text, operation.blocks
        rendered = operation.render is not None and incident is not None
        if rendered and incident is not None:
            message = (
                self.composer.card(incident)
                if operation.render == "card"
                else self.composer.announcement(incident)
            )
            text, blocks = message.text, message.blocks
        thread_ts = incident.announcement_ts if operation.thread == "announcement" and incident else None
        metadata = _tagged(operation.metadata, row.id)
        # A process died mid-delivery, or its answer was lost: Slack may have this message already.
        ts = await self._posted_already(row, channel, thread_ts) if uncertain else None
        if ts is None:
            ts = await self.slack.post(
                channel=channel, text=text, blocks=blocks, metadata=metadata, thread_ts=thread_ts
            )
        save_as = operation.save_as
        saves = {f"{save_as}_ts": ts} if save_as else {}
        if rendered and save_as in ("card", "announcement"):  # what a later edit compares itself with
            saves[f"{save_as}_digest"] = digest(text, blocks, operation.metadata)
        return Outcome(saves=saves or None)

    async def _invite_first(self, operation: Post, row: OutboxMessage, channel: str) -> Outcome | None:
        """Bring the post's `invite` into its channel before it mentions them: Slack notifies a mentioned
        user only if they are a member. Whoever Slack will not take is left out (invite_members logs
        them), and a channel nobody can be invited into is posted to all the same: the notice matters
        more. The outcome to record instead of posting, only when the post must wait (Slack busy or down,
        a token or a scope for an operator to fix): it is tried again, invitation first."""
        try:
            await self.slack.invite_members(channel=channel, users=operation.invite)
        except SlackApiError as error:
            outcome = self.classify(row, error)
            if outcome.retry_at is not None:
                return outcome
            if outcome.error is not None:
                log.warning(
                    "could not invite before posting; posting anyway",
                    extra={"event": "post_invite_failed", "channel": channel, "error": slack_error(error)},
                )
        return None

    async def _posted_already(self, row: OutboxMessage, channel: str, thread_ts: str | None) -> str | None:
        """The ts of the message an earlier try of `row` posted, if Slack has it. A DM (`channel` a user
        id) is not looked for: reading it back would need im:history, which Tocsin does not ask for; at
        worst its person gets it twice, as a page's DM may (Dm)."""
        if channel.startswith(("U", "W")):
            return None
        ts = await self.slack.find_posted(
            channel=channel, thread_ts=thread_ts, delivery_id=row.id, oldest=row.created_at.timestamp() - 60
        )
        if ts:
            log.info("already posted", extra={"event": "outbox_recovered", "outbox_id": row.id})
        return ts

    async def _set_usergroup(self, operation: SetUsergroup) -> Outcome:
        """A schedule's user group, made to hold who is on call of it. With `on_call`, who is on call when
        this is delivered: rows of no incident keep no order between them, so a late or retried update
        must not bring back an earlier hand-off's people; a schedule it does not know (None: app.yaml
        no longer has it) sets the users queued. Nobody on call leaves the group as it is
        (Slack refuses an empty user group)."""
        now = await self.on_call(operation.schedule) if self.on_call else None
        users = list(operation.users) if now is None else now
        fields = {"usergroup": operation.usergroup, "schedule": operation.schedule}
        if not users:
            log.info("nobody on call: user group left as it is", extra={"event": "usergroup_kept", **fields})
            return Outcome()
        try:
            await self.slack.set_usergroup_members(usergroup=operation.usergroup, users=users)
        except SlackApiError as error:
            if slack_error(error) not in _NO_GROUP_UPDATE:
                raise
            return Outcome(error=slack_error(error))
        return Outcome()

    async def _upload(self, operation: Upload, incident: Incident | None) -> Outcome:
        channel = operation.channel or (incident.channel_id if incident else None)
        if not channel:
            return Outcome(error="no incident channel")
        await self.slack.upload(
            channel=channel,
            filename=operation.filename,
            title=operation.title,
            content=operation.content,
            comment=operation.comment,
        )
        return Outcome()


def digest(text: str, blocks: list[dict[str, Any]] | None, metadata: dict[str, Any] | None) -> str:
    """What a kept message shows, as a sha256: equal digests, equal messages."""
    shown = json.dumps([text, blocks or [], metadata], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(shown.encode()).hexdigest()


def _own_channel(incident: Incident) -> bool:
    """Whether the incident's channel is one Tocsin created (not the channel it was declared in, kept
    when a channel of its own could not be made or with `channels.per_incident: false`)."""
    return bool(incident.channel_name) and incident.channel_id != incident.origin_channel_id


def _tagged(metadata: dict[str, Any] | None, delivery_id: int) -> dict[str, Any] | None:
    """Message metadata carrying the outbox row's id, so a re-delivery can tell it was already posted."""
    if metadata is None:
        return None
    return {**metadata, "event_payload": {**metadata.get("event_payload", {}), "delivery_id": delivery_id}}
