"""Outbox operations: each kind round-trips through its row, and rows queued by the previous release
(before operations were types) decode to what they meant and encode back unchanged."""

from __future__ import annotations

import base64

import pytest

from store.operations import (
    CreateChannel,
    Dm,
    Invite,
    Operation,
    Page,
    Pin,
    Post,
    Refresh,
    Topic,
    UnknownOperation,
    Upload,
    decode,
    encode,
)

METADATA = {"event_type": "incident_declared", "event_payload": {"incident_id": "INC-1", "priority": "P1"}}
BLOCKS = [{"type": "section", "text": {"type": "mrkdwn", "text": "R&amp;D *down*"}}]
PNG = b"\x89PNG\r\n\x1a\n\x00\xff"

OPERATIONS: list[Operation] = [
    CreateChannel("inc-1-db-down"),
    Invite(users=["U1", "W2"]),
    Invite(users=[], groups=["S1"]),
    Topic(),
    Pin("card"),
    Refresh("card"),
    Refresh("announcement"),
    Refresh("confirmation", text="Restored?", blocks=BLOCKS, metadata=METADATA),
    Post(render="card", save_as="card", metadata=METADATA),
    Post(channel="C_ANNOUNCE", render="announcement", save_as="announcement", metadata=METADATA),
    Post(text="Update", blocks=BLOCKS, metadata=METADATA),
    Post(channel="C_ANNOUNCE", text="Update", blocks=BLOCKS, metadata=METADATA, thread="announcement"),
    Post(text="Restored?", blocks=BLOCKS, metadata=METADATA, save_as="confirmation"),
    Dm(users=["U1"], groups=["S1"], page=Page(level=2, repeat=True, by="U9", reason="db"), metadata=METADATA),
    Upload(channel=None, filename="inc-1.md", title="Review", content="# INC-1\n", comment="Draft"),
    Upload(channel="C_DIGEST", filename="chart.png", title="Chart", content=PNG, comment=""),
]


@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda op: type(op).__name__)
def test_every_operation_round_trips_through_its_row(operation: Operation) -> None:
    assert decode(*encode(operation)) == operation


# Rows exactly as the release before typed operations wrote them (handlers/messages.py, bot/scheduler.py).
PREVIOUS_RELEASE: list[tuple[tuple[str, dict], Operation]] = [
    (("create_channel", {"name": "inc-1-db-down"}), CreateChannel("inc-1-db-down")),
    (("invite", {"users": ["U1"]}), Invite(users=["U1"])),
    (("invite", {"users": ["U1"], "groups": ["S1"]}), Invite(users=["U1"], groups=["S1"])),
    (("topic", {}), Topic()),
    (("pin", {"target": "card"}), Pin("card")),
    (("refresh", {"target": "card"}), Refresh("card")),
    (("refresh", {"target": "announcement"}), Refresh("announcement")),
    (
        ("refresh", {"target": "confirmation", "text": "Restored?", "blocks": BLOCKS, "metadata": METADATA}),
        Refresh("confirmation", text="Restored?", blocks=BLOCKS, metadata=METADATA),
    ),
    (
        ("post", {"to": "incident", "render": "card", "save_as": "card", "metadata": METADATA}),
        Post(render="card", save_as="card", metadata=METADATA),
    ),
    (
        (
            "post",
            {"channel": "C_A", "render": "announcement", "save_as": "announcement", "metadata": METADATA},
        ),
        Post(channel="C_A", render="announcement", save_as="announcement", metadata=METADATA),
    ),
    (
        ("post", {"text": "Update", "blocks": BLOCKS, "metadata": METADATA, "to": "incident"}),
        Post(text="Update", blocks=BLOCKS, metadata=METADATA),
    ),
    (
        (
            "post",
            {"text": "U", "blocks": BLOCKS, "metadata": METADATA, "channel": "C_A", "thread": "announcement"},
        ),
        Post(channel="C_A", text="U", blocks=BLOCKS, metadata=METADATA, thread="announcement"),
    ),
    (
        (
            "post",
            {
                "text": "R",
                "blocks": BLOCKS,
                "metadata": METADATA,
                "to": "incident",
                "save_as": "confirmation",
            },
        ),
        Post(text="R", blocks=BLOCKS, metadata=METADATA, save_as="confirmation"),
    ),
    (  # the weekly digest
        ("post", {"channel": "C_D", "text": "Digest", "blocks": BLOCKS, "metadata": METADATA}),
        Post(channel="C_D", text="Digest", blocks=BLOCKS, metadata=METADATA),
    ),
    (
        (
            "dm",
            {
                "users": ["U1"],
                "groups": [],
                "page": {"level": 1, "repeat": False, "by": None, "reason": None},
                "metadata": METADATA,
            },
        ),
        Dm(users=["U1"], groups=[], page=Page(level=1, repeat=False), metadata=METADATA),
    ),
    (
        (
            "upload",
            {"to": "incident", "filename": "r.md", "title": "Review", "content": "# R\n", "comment": "Draft"},
        ),
        Upload(channel=None, filename="r.md", title="Review", content="# R\n", comment="Draft"),
    ),
    (
        (
            "upload",
            {
                "channel": "C_D",
                "filename": "chart.png",
                "title": "Chart",
                "content_b64": base64.b64encode(PNG).decode(),
                "comment": "",
            },
        ),
        Upload(channel="C_D", filename="chart.png", title="Chart", content=PNG, comment=""),
    ),
]


@pytest.mark.parametrize("row,operation", PREVIOUS_RELEASE, ids=lambda value: str(value)[:40])
def test_a_row_the_previous_release_queued_decodes_and_is_written_the_same_today(
    row: tuple[str, dict], operation: Operation
) -> None:
    assert decode(*row) == operation
    assert encode(operation) == row


def test_an_unknown_operation_is_named() -> None:
    with pytest.raises(UnknownOperation, match="unknown outbox op 'teleport'"):
        decode("teleport", {})


def test_a_payload_missing_what_its_operation_needs_is_an_error() -> None:
    with pytest.raises(KeyError):
        decode("create_channel", {})
