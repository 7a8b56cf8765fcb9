"""Small steps most end-to-end tests share: declare an incident and find what it put in Slack."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from store import outbox
from tests.conftest import RunningBot
from tests.fakeslack import Channel, Message


@dataclass
class Declared:
    id: str
    channel: Channel
    card: Message


async def declare(bot: RunningBot, text: str = "P3 Checkout is slow", *, user: str = "U_ALICE") -> Declared:
    """Declare through `/incident declare ...` and wait until its card is in the new channel."""
    before = {m.ts for m in bot.fake.messages}
    reply = await bot.slack.command(f"declare {text}", user=user)
    assert reply.status == 200, reply.body
    card = await bot.fake.wait_for(
        lambda: next(
            (
                m
                for m in bot.fake.messages
                if m.ts not in before and m.event_type == "incident_declared" and m.channel != "C0123ANNOUNCE"
            ),
            None,
        )
    )
    return Declared(id=card.payload["incident_id"], channel=bot.fake.channels[card.channel], card=card)


async def drained(bot: RunningBot) -> None:
    """Wait until the outbox holds nothing undelivered."""

    async def pending() -> int:
        async with bot.tocsin.db.read() as session:
            return len(await outbox.undelivered(session))

    deadline = time.monotonic() + 5
    while await pending():
        assert time.monotonic() < deadline, "outbox did not drain\n" + bot.fake.summary()
        await asyncio.sleep(0.02)


def mrkdwn_texts(node) -> list[str]:
    """Every mrkdwn text in a block tree (plain_text is shown literally, so it cannot ping anyone)."""
    if isinstance(node, list):
        return [t for item in node for t in mrkdwn_texts(item)]
    if isinstance(node, dict):
        own = [node["text"]] if node.get("type") == "mrkdwn" else []
        return own + [t for value in node.values() for t in mrkdwn_texts(value)]
    return []
