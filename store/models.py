"""Tables. Every time is timezone-aware UTC in Python, whatever the database keeps."""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Stores UTC; always returns an aware UTC datetime (SQLite drops offsets)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class State(enum.StrEnum):
    TRIAGE = "triage"
    INVESTIGATING = "investigating"
    IDENTIFIED = "identified"
    MONITORING = "monitoring"
    RESOLVED = "resolved"
    CLOSED = "closed"
    CANCELLED = "cancelled"


OPEN_STATES = frozenset({State.TRIAGE, State.INVESTIGATING, State.IDENTIFIED, State.MONITORING})


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def table_of(entity: type[Base]) -> Table:
    """The Table behind a mapped class, for Core statements (the ORM types `__table__` more loosely)."""
    return Base.metadata.tables[entity.__tablename__]


class Incident(Base):
    __tablename__ = "incidents"
    __table_args__ = (
        Index("ix_incidents_state", "state"),
        Index("ix_incidents_channel_id", "channel_id"),
        Index("ix_incidents_declared_at", "declared_at"),
        # The web view's list filtered by priority or category, newest first, and its knowledge base,
        # most recently resolved first (store/browse.py).
        Index("ix_incidents_priority_declared_at", "priority", "declared_at"),
        Index("ix_incidents_category_declared_at", "category", "declared_at"),
        Index("ix_incidents_resolved_at", "resolved_at"),
        {"sqlite_autoincrement": True},
    )

    number: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    # Kept as Slack encodes it, so longer than the 150 characters it reads as (migration 0014); SQLite
    # enforces no length, and its column keeps the length it was made with.
    title: Mapped[str] = mapped_column(String(150).with_variant(String(800), "postgresql"))
    description: Mapped[str] = mapped_column(Text, default="")
    category: Mapped[str] = mapped_column(String(64))
    impact: Mapped[str | None] = mapped_column(String(32))
    urgency: Mapped[str | None] = mapped_column(String(32))
    priority: Mapped[str] = mapped_column(String(2))
    state: Mapped[State] = mapped_column(
        Enum(State, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e])
    )
    reporter: Mapped[str] = mapped_column(String(32))
    commander: Mapped[str | None] = mapped_column(String(32))
    comms: Mapped[str | None] = mapped_column(String(32))
    scribe: Mapped[str | None] = mapped_column(String(32))

    origin_channel_id: Mapped[str | None] = mapped_column(String(32))
    channel_id: Mapped[str | None] = mapped_column(String(32))
    channel_name: Mapped[str | None] = mapped_column(String(80))
    card_ts: Mapped[str | None] = mapped_column(String(32))
    announcement_ts: Mapped[str | None] = mapped_column(String(32))
    confirmation_ts: Mapped[str | None] = mapped_column(String(32))  # the current resolution's prompt
    topic: Mapped[str | None] = mapped_column(String(250))  # the channel topic last asked for
    # sha256 of the card and the announcement as last delivered: an edit that would show the same is not sent
    card_digest: Mapped[str | None] = mapped_column(String(64))
    announcement_digest: Mapped[str | None] = mapped_column(String(64))

    declared_at: Mapped[datetime] = mapped_column(UTCDateTime)
    detected_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # when it began, if before declaring
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acknowledged_by: Mapped[str | None] = mapped_column(String(32))
    identified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    mitigated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_update_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    summary: Mapped[str | None] = mapped_column(Text)
    cause_code: Mapped[str | None] = mapped_column(String(64))
    resolution_code: Mapped[str | None] = mapped_column(String(64))
    reopen_count: Mapped[int] = mapped_column(Integer, default=0)
    escalation_level: Mapped[int] = mapped_column(Integer, default=0)
    pir_link: Mapped[str | None] = mapped_column(String(500))
    pir_done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    # Clocks and paging, kept so the scheduler can plan from the row alone.
    response_warned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    response_breached_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolution_warned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolution_breached_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolution_paused_seconds: Mapped[int] = mapped_column(
        Integer, default=0, server_default="0"
    )  # time spent resolved
    level_paged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # current level first paged
    # Who each level's schedules resolved to when it last paged ({"1": ["U..."]}): the people a reminder
    # speaks to and who was invited are those it paged, not whoever is on call by the time it is read.
    on_call_paged: Mapped[dict[str, list[str]] | None] = mapped_column(JSON)
    last_page_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # current level last paged
    active_since: Mapped[datetime | None] = mapped_column(UTCDateTime)  # acknowledged or reopened
    last_nudge_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_pir_reminder_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    # Learning: the review meeting, the problem record, and earlier incidents like this one.
    pir_meeting_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    pir_meeting_reminded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    problem_key: Mapped[str | None] = mapped_column(String(200))
    similar: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)

    # Detection: the monitoring source that declared it (then `reporter` is that source, not a person),
    # and how many times its alert has been received.
    # Closure: who confirmed that service is restored (the reporter, the commander or an admin), and when.
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    confirmed_by: Mapped[str | None] = mapped_column(String(32))
    alert_source: Mapped[str | None] = mapped_column(String(32))
    alert_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Kept off the stakeholders' status page (store/statuspage.py) by its commander, comms lead or an admin.
    status_hidden: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    timeline: Mapped[list[TimelineEntry]] = relationship(
        back_populates="incident", order_by="TimelineEntry.id", lazy="raise"
    )

    __mapper_args__ = {"version_id_col": version}

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES


class TimelineEntry(Base):
    """One audit row per change: who did what, when, from what to what.

    A message captured from the incident's channel (kind "captured") keeps the message's own time
    (`occurred_at`), its ts, channel, permalink and file names, and the reactions and pin that capture
    it (`marks`); an entry taken off the visible timeline keeps its row (`removed_at`), and the change
    that removed or edited it is a row of its own, holding the original."""

    __tablename__ = "timeline"
    __table_args__ = (
        Index("ix_timeline_incident", "incident_number", "id"),
        Index("uq_timeline_message", "incident_number", "message_ts", unique=True),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_number: Mapped[int] = mapped_column(ForeignKey("incidents.number"))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(32))
    from_value: Mapped[str | None] = mapped_column(String(64))
    to_value: Mapped[str | None] = mapped_column(String(64))
    text: Mapped[str | None] = mapped_column(Text)
    occurred_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    message_ts: Mapped[str | None] = mapped_column(String(32))
    message_channel: Mapped[str | None] = mapped_column(String(32))
    permalink: Mapped[str | None] = mapped_column(Text)
    files: Mapped[list[str] | None] = mapped_column(JSON)
    marks: Mapped[list[str] | None] = mapped_column(JSON)
    edited_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    incident: Mapped[Incident] = relationship(back_populates="timeline", lazy="raise")


class HomeView(Base):
    """Who opened Tocsin's App Home tab, and when last: their tab is refreshed when what it shows
    changes, for a day after."""

    __tablename__ = "home_views"

    user_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class ScheduleOverride(Base):
    """Someone on call of a schedule instead of its rota, from `starts_at` to `ends_at`; of overlapping
    overrides the later created wins. `cover`: the cover request it answered, if any."""

    __tablename__ = "schedule_overrides"
    __table_args__ = (Index("ix_schedule_overrides_schedule_ends", "schedule", "ends_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    schedule: Mapped[str] = mapped_column(String(32))
    user: Mapped[str] = mapped_column(String(32))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(String(32))
    cover_id: Mapped[int | None] = mapped_column(Integer)
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    removed_by: Mapped[str | None] = mapped_column(String(32))


class ScheduleState(Base):
    """Who was last announced on call of a schedule: a hand-off happens when that is no longer who is,
    once, by whichever process changes this row first."""

    __tablename__ = "schedule_states"

    schedule: Mapped[str] = mapped_column(String(32), primary_key=True)
    on_call: Mapped[str | None] = mapped_column(String(32))
    since: Mapped[datetime] = mapped_column(UTCDateTime)


class CoverRequest(Base):
    """A call in a schedule's channel for someone to take a stretch of it; whoever presses I'll cover
    first becomes the override (`covered_by`), once."""

    __tablename__ = "schedule_covers"
    __table_args__ = (Index("ix_schedule_covers_schedule_ends", "schedule", "ends_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    schedule: Mapped[str] = mapped_column(String(32))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    requested_by: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    covered_by: Mapped[str | None] = mapped_column(String(32))
    covered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ActionItem(Base):
    """A follow-up from the review, numbered 1, 2, ... within its incident, tracked until done."""

    __tablename__ = "action_items"
    __table_args__ = (
        UniqueConstraint("incident_number", "number"),
        Index(
            "ix_action_items_owner_open",
            "owner",
            sqlite_where=text("done_at IS NULL"),
            postgresql_where=text("done_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_number: Mapped[int] = mapped_column(ForeignKey("incidents.number"))
    number: Mapped[int] = mapped_column(Integer)
    owner: Mapped[str] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(Text)
    due_on: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(String(32))
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    done_by: Mapped[str | None] = mapped_column(String(32))
    last_reminded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Timer(Base):
    """Something due at a moment: an SLA warning or breach, a page, a nudge, a reminder.

    Planned from the incident's row whenever it changes (store.timers.replan); fired once by
    whichever process claims it first (fired_at is set in the transaction that posts its message)."""

    __tablename__ = "timers"
    __table_args__ = (
        Index(
            "ix_timers_due",
            "due_at",
            sqlite_where=text("fired_at IS NULL AND cancelled_at IS NULL"),
            postgresql_where=text("fired_at IS NULL AND cancelled_at IS NULL"),
        ),
        Index(  # one row per (kind, moment) of the timers that belong to no incident, such as the digest
            "ix_timers_global",
            "kind",
            "key",
            unique=True,
            sqlite_where=text("incident_number IS NULL"),
            postgresql_where=text("incident_number IS NULL"),
        ),
        Index(
            "ix_timers_incident_pending",
            "incident_number",
            sqlite_where=text("fired_at IS NULL AND cancelled_at IS NULL"),
            postgresql_where=text("fired_at IS NULL AND cancelled_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_number: Mapped[int | None] = mapped_column(
        ForeignKey("incidents.number")
    )  # None: not an incident's
    kind: Mapped[str] = mapped_column(String(32))
    key: Mapped[str] = mapped_column(String(32), default="")
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    fired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class OutboxMessage(Base):
    """A Slack operation waiting for delivery, written in the transaction that caused it."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index(
            "ix_outbox_pending",
            "incident_number",
            "id",
            sqlite_where=text("delivered_at IS NULL AND failed_at IS NULL"),
            postgresql_where=text("delivered_at IS NULL AND failed_at IS NULL"),
        ),
        Index(  # the relay's claim: pending rows, most urgent first
            "ix_outbox_ready",
            "urgency",
            "id",
            sqlite_where=text("delivered_at IS NULL AND failed_at IS NULL"),
            postgresql_where=text("delivered_at IS NULL AND failed_at IS NULL"),
        ),
        Index(  # the head of each incident's lane, and what an earlier row still has to provide
            "ix_outbox_lane",
            "incident_number",
            "lane",
            "id",
            sqlite_where=text("delivered_at IS NULL AND failed_at IS NULL"),
            postgresql_where=text("delivered_at IS NULL AND failed_at IS NULL"),
        ),
        Index(  # what an earlier row of the incident has still to provide (few rows provide anything)
            "ix_outbox_provides",
            "incident_number",
            "provides",
            "id",
            sqlite_where=text("delivered_at IS NULL AND failed_at IS NULL AND provides IS NOT NULL"),
            postgresql_where=text("delivered_at IS NULL AND failed_at IS NULL AND provides IS NOT NULL"),
        ),
        Index(  # /healthz counts the failed messages on every call; delivered ones are most of the table
            "ix_outbox_failed",
            "failed_at",
            sqlite_where=text("failed_at IS NOT NULL"),
            postgresql_where=text("failed_at IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_number: Mapped[int | None] = mapped_column(ForeignKey("incidents.number"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    op: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    locked_by: Mapped[str | None] = mapped_column(String(64))
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    urgency: Mapped[int] = mapped_column(Integer, default=9)  # lower goes first (operations.route)
    lane: Mapped[str] = mapped_column(String(64), default="main")  # order is kept within a lane
    needs: Mapped[str | None] = mapped_column(String(16))  # channel, card, announcement, confirmation
    provides: Mapped[str | None] = mapped_column(String(16))
    bucket: Mapped[str | None] = mapped_column(String(96))  # the Slack quota its main call spends


class AlertSource(Base):
    """A monitoring alert key's claim on the incident it opened (store/alerts.py).

    At most one row per (source, key) is unreleased: the unique index below is what makes concurrent
    deliveries of one alert, on any number of processes, open exactly one incident. A row is released
    once its incident is no longer open, so the key's next firing opens a new incident."""

    __tablename__ = "alert_sources"
    __table_args__ = (
        Index(
            "ix_alert_sources_open",
            "source",
            "key_hash",
            unique=True,
            sqlite_where=text("released_at IS NULL"),
            postgresql_where=text("released_at IS NULL"),
        ),
        Index("ix_alert_sources_incident", "incident_number"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(32))  # "alertmanager", or the webhook's `source`
    key: Mapped[str] = mapped_column(Text)  # Alertmanager's groupKey, or the webhook's dedup_key
    key_hash: Mapped[str] = mapped_column(String(64))  # sha256 of key: indexable whatever its length
    incident_number: Mapped[int | None] = mapped_column(ForeignKey("incidents.number"))  # set on claim
    first_received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    noticed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # last alert_received message
    noticed_count: Mapped[int] = mapped_column(Integer, default=0)  # the incident's alert_count then
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # the alert cleared (None: firing)
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # the claim ended


class Worker(Base):
    """A running Tocsin process. A claim held by a worker that stopped beating is free to take."""

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
