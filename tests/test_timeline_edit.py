"""`/incident timeline` numbers its entries; `timeline edit <n>` and `timeline remove <n>` change notes
and captured messages (store/timeline.py), for their author, the commander or an admin, with the
original kept in the audit trail; the review draft shows the timeline as edited, in message time."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import select

from store.models import TimelineEntry
from tests.conftest import ADMIN, GENERAL, ROOT
from tests.helpers import declare, drained, mrkdwn_texts
from tests.processes import environment, run

M = timedelta(minutes=1)
RESOLVE = "resolve Rolled back cause=configuration-error resolution=rollback"


async def rows(bot) -> list[tuple[str, str, str | None, str | None, bool, bool]]:
    """Every timeline row of INC-1: kind, actor, text, to_value, edited, removed."""
    async with bot.tocsin.db.read() as session:
        found = await session.scalars(
            select(TimelineEntry).where(TimelineEntry.incident_number == 1).order_by(TimelineEntry.id)
        )
        return [
            (e.kind, e.actor, e.text, e.to_value, e.edited_at is not None, e.removed_at is not None)
            for e in found
        ]


async def shown(bot, channel: str) -> list[str]:
    """The lines `/incident timeline` answers with, privately."""
    reply = await bot.slack.command("timeline", channel=channel)
    assert reply.json["response_type"] == "ephemeral"
    return [line for text in mrkdwn_texts(reply.json["blocks"]) for line in text.split("\n")]


async def ok(bot, command: str, *, channel: str, user: str) -> str:
    reply = await bot.slack.command(command, channel=channel, user=user)
    assert reply.json["text"].startswith(":white_check_mark:"), (command, reply.json["text"])
    return reply.json["text"]


async def refused(bot, command: str, *, channel: str, user: str = "U_CAROL") -> str:
    """The private answer to `command`, which changed no timeline row and posted nothing."""
    await drained(bot)
    before, posted = await rows(bot), len(bot.fake.messages)
    reply = await bot.slack.command(command, channel=channel, user=user)
    await drained(bot)
    assert await rows(bot) == before and len(bot.fake.messages) == posted
    assert reply.json["response_type"] == "ephemeral"
    assert not reply.json["text"].startswith(":white_check_mark:"), reply.json["text"]
    return reply.json["text"]


async def started(bot) -> str:
    """INC-1: declared (1), level 1 paged (2), acked by U_BOB (3), a note by U_CAROL (4); its channel."""
    incident = await declare(bot, "P3 Checkout is slow")
    channel = incident.channel.id
    await ok(bot, "ack", channel=channel, user="U_BOB")
    await ok(bot, "note Cache hit rate is 3% <!channel>", channel=channel, user="U_CAROL")
    return channel


async def review(bot, channel: str) -> str:
    """The review draft, as `/incident pir` uploads it."""
    uploaded = len(bot.fake.files)
    await ok(bot, "pir", channel=channel, user="U_BOB")
    files = await bot.fake.wait_for(lambda: bot.fake.files[uploaded:])
    return files[0]["content"].decode()


async def test_the_timeline_is_numbered_and_says_how_to_edit_it(bot) -> None:
    channel = await started(bot)
    reply = await bot.slack.command("timeline", channel=channel)
    header = reply.json["blocks"][0]["text"]
    assert header == {
        "type": "plain_text",
        "text": "Timeline of INC-1 · an entry keeps its number; /incident timeline edit <n> or remove <n>",
    }
    lines = await shown(bot, channel)
    assert [line.split(" ", 1)[0] for line in lines] == ["*1.*", "*2.*", "*3.*", "*4.*"]
    assert "declared: Checkout is slow" in lines[0] and "ack (triage → investigating)" in lines[2]
    assert "<@U_CAROL> note: Cache hit rate is 3% @\u2060channel" in lines[3]  # <!channel> pings nobody
    help_text = mrkdwn_texts((await bot.slack.command("help")).json["blocks"])[0]
    assert "`timeline` numbered; an entry keeps its number" in help_text
    assert "`timeline edit &lt;n&gt; &lt;new text&gt;` a note or a captured message" in help_text
    assert "`timeline remove &lt;n&gt;` take it off (the audit trail keeps it)" in help_text


async def test_the_author_edits_a_note_and_the_audit_trail_keeps_the_original(bot) -> None:
    channel = await started(bot)
    said = await ok(bot, "timeline edit 4 Cache hit rate is 30%", channel=channel, user="U_CAROL")
    assert (
        said
        == ":white_check_mark: Timeline entry 4 of INC-1 edited; it said: “Cache hit rate is 3% @\u2060channel”"
    )
    lines = await shown(bot, channel)
    assert lines[3].startswith("*4.* ") and lines[3].endswith("note (edited): Cache hit rate is 30%")
    assert len(lines) == 4  # the edit's own row is not on the timeline
    kind, actor, text, to_value, *_ = (await rows(bot))[-1]
    note_id = await _id_of(bot, "note")
    assert (kind, actor, text, to_value) == (
        "timeline_edited",
        "U_CAROL",
        "Cache hit rate is 3% <!channel>",
        str(note_id),
    )
    # an id names the incident from any channel, as for every command
    await ok(bot, "INC-1 timeline edit 4 Cache hit rate is 31%", channel=GENERAL, user="U_CAROL")
    await ok(bot, RESOLVE, channel=channel, user="U_BOB")
    document = await review(bot, channel)
    assert "note (edited): Cache hit rate is 31%" in document
    assert "3%" not in document and "30%" not in document


async def test_removing_takes_an_entry_off_and_leaves_the_other_numbers_alone(bot) -> None:
    channel = await started(bot)
    await ok(bot, "note Second note", channel=channel, user="U_CAROL")
    await ok(bot, "note Third note", channel=channel, user="U_CAROL")
    said = await ok(bot, "timeline remove 5", channel=channel, user="U_BOB")  # the commander's right
    assert said.endswith("removed; it said: “Second note”")
    lines = await shown(bot, channel)
    assert [line.split(" ", 1)[0] for line in lines[:5]] == ["*1.*", "*2.*", "*3.*", "*4.*", "*6.*"]
    assert "Second note" not in "\n".join(lines)
    # entry 6 is still the one the person read as 6
    await ok(bot, "timeline edit 6 Third note, edited", channel=channel, user="U_CAROL")
    assert (await shown(bot, channel))[4].endswith("note (edited): Third note, edited")
    assert "was removed already" in await refused(bot, "timeline remove 5", channel=channel, user="U_BOB")
    assert "was removed already" in await refused(bot, "timeline edit 5 x", channel=channel, user="U_BOB")
    removal = [row for row in await rows(bot) if row[0] == "timeline_removed"]
    assert removal == [
        ("timeline_removed", "U_BOB", "Second note", str(await _id_of(bot, "note", 1)), False, False)
    ]
    await ok(bot, RESOLVE, channel=channel, user="U_BOB")
    document = await review(bot, channel)
    assert "Second note" not in document and "note (edited): Third note, edited" in document


async def test_state_changes_cannot_be_edited_or_removed(bot) -> None:
    channel = await started(bot)
    for command in ("timeline edit 1 Not declared", "timeline remove 3"):
        text = await refused(bot, command, channel=channel, user=ADMIN)
        assert (
            "records a change" in text and "only notes and captured messages can be edited or removed" in text
        )
    assert "entry 3 of INC-1 records a change (`ack`)" in text


async def test_only_the_author_the_commander_or_an_admin_may(bot) -> None:
    channel = await started(bot)
    text = await refused(bot, "timeline edit 4 Mine now", channel=channel, user="U_DAVE")
    assert text == (
        ":lock: Only its author (<@U_CAROL>), the commander (<@U_BOB>) or an admin (<@U0123ADMIN>) "
        "may edit timeline entry 4 of INC-1."
    )
    assert "may remove timeline entry 4" in await refused(
        bot, "timeline remove 4", channel=channel, user="U_DAVE"
    )
    await ok(bot, "timeline edit 4 Said by an admin", channel=channel, user=ADMIN)
    assert (await rows(bot))[-1][:2] == ("timeline_edited", ADMIN)


async def test_bad_numbers_and_missing_text_change_nothing(bot) -> None:
    channel = await started(bot)
    number_please = "Give the entry's number as `/incident timeline` shows it"
    for command, answer in (
        ("timeline edit", number_please),
        ("timeline edit three Better", number_please),
        ("timeline remove", number_please),
        ("timeline remove 4 5", number_please),
        ("timeline remove 1234567", number_please),
        (
            "timeline edit 4",
            "Say what timeline entry 4 should say: `/incident timeline edit 4 &lt;new text&gt;`",
        ),
        ("timeline edit 4    ", "Say what timeline entry 4 should say"),
        ("timeline edit 9 Better", "INC-1 has no timeline entry 9: `/incident timeline` shows the numbers"),
        ("timeline remove 0", "INC-1 has no timeline entry 0"),
        ("timeline edit 4 Cache hit rate is 3% <!channel>", "Timeline entry 4 says that already"),
        (
            "timeline frobnicate 3",
            "Usage: `/incident timeline`, `/incident timeline edit &lt;n&gt; &lt;new text&gt;`",
        ),
    ):
        text = await refused(bot, command, channel=channel)
        assert answer in text, (command, text)
    assert "The note is 2,001 characters long" in await refused(
        bot, "timeline edit 4 " + "x" * 2001, channel=channel
    )
    assert "not an incident channel" in await refused(bot, "timeline remove 4", channel=GENERAL)


async def test_a_captured_message_shows_at_its_own_time_and_its_author_may_edit_it(bot, database_url) -> None:
    incident = await declare(bot, "P3 Checkout is slow")  # and level 1 paged
    channel = incident.channel.id
    bot.clock.offset = 5 * M
    await ok(bot, "ack", channel=channel, user="U_BOB")
    await ok(bot, "note Cache hit rate is 3%", channel=channel, user="U_CAROL")
    bot.clock.offset = 10 * M
    await ok(bot, "note Later note", channel=channel, user="U_BOB")
    async with bot.tocsin.db.write() as session:  # captured now, said a minute after the declaration
        incident_declared = (await session.scalars(select(TimelineEntry).order_by(TimelineEntry.id))).first()
        assert incident_declared is not None
        session.add(
            TimelineEntry(
                incident_number=1,
                at=bot.clock(),
                actor="U_ERIN",
                kind="captured",
                from_value="U_BOB",
                text="DB failover started <!here> <https://grafana.example.com/d/1|dashboard>",
                occurred_at=incident_declared.at + M,
                message_ts="1700000000.000100",
                message_channel=channel,
                permalink=f"https://example.slack.com/archives/{channel}/p1700000000000100",
                files=["db<1>.log"],
                marks=["pin"],
            )
        )
        session.add(  # the row of a capture undone: audit only, neither shown nor numbered
            TimelineEntry(
                incident_number=1, at=bot.clock(), actor="U_BOB", kind="capture_removed", text="Never mind"
            )
        )
    lines = await shown(bot, channel)
    assert [line.split(" ", 1)[0] for line in lines[:6]] == ["*1.*", "*2.*", "*3.*", "*4.*", "*5.*", "*6.*"]
    assert lines[2].startswith("*3.* ") and "<@U_ERIN> said (<https://example.slack.com/archives/" in lines[2]
    assert "|message>, files: db&lt;1&gt;.log): DB failover started @\u2060here" in lines[2]
    assert "<https://grafana.example.com/d/1|dashboard>" in lines[2]  # links stay live
    assert "Later note" in lines[5] and len(lines) == 6
    refusal = await refused(bot, "timeline edit 3 Not yours", channel=channel, user="U_CAROL")
    assert refusal.startswith(":lock: Only its author (<@U_ERIN>)")
    await ok(
        bot, "timeline edit 3 DB failover started (primary in eu-west-1)", channel=channel, user="U_ERIN"
    )
    assert (
        "|message>, edited, files: db&lt;1&gt;.log): DB failover started (primary"
        in (await shown(bot, channel))[2]
    )

    await ok(bot, RESOLVE, channel=channel, user="U_BOB")
    document = await review(bot, channel)
    table = document.split("## Timeline", 1)[1].split("## Review", 1)[0]
    what = [
        line.removesuffix(" |").split(" | ")[-1]
        for line in table.splitlines()
        if re.match(r"\| \d{4}-", line)
    ]
    assert [w.split(":")[0].split(" (")[0] for w in what] == [
        "declared",
        "paged level 1",
        "said",
        "ack",
        "note",
        "note",
        "resolve",
    ]
    assert what[2].startswith("said ([message](https://example.slack.com/archives/")
    assert "edited, files: db\\<1\\>.log): DB failover started (primary in eu-west-1)" in what[2]
    code, out, err = await run(
        "pir", "INC-1", env=environment(DATABASE_URL=database_url, TOCSIN_CONFIG=str(ROOT / "app.yaml"))
    )
    assert code == 0, err
    assert out == document


async def _id_of(bot, kind: str, index: int = 0) -> int:
    async with bot.tocsin.db.read() as session:
        ids = await session.scalars(
            select(TimelineEntry.id).where(TimelineEntry.kind == kind).order_by(TimelineEntry.id)
        )
        return list(ids)[index]
