"""The App Home tab: what a person is in, every open incident with its SLA clocks, their action items,
and a button that opens the declare form."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from handlers import views
from handlers.deps import Deps
from handlers.messages import Composer
from handlers.render import duration
from store.home import HomeFacts, Sla

Ack = Callable[..., Awaitable[None]]
log = logging.getLogger("tocsin.handlers")

HOME_DECLARE = "home_declare"
TEMPLATE = "app_home.json.j2"


def sla_words(sla: Sla, now: datetime) -> str:
    """`response due in 12m`, `resolution breached 5m ago`, `response met in 3m`."""
    if sla.breached_at is not None:
        if sla.took is not None:
            return f"{sla.clock} breached (took {duration(sla.took)})"
        return f"{sla.clock} breached {duration(now - sla.breached_at)} ago"
    if sla.took is not None:
        return f"{sla.clock} met in {duration(sla.took)}"
    return f"{sla.clock} due in {duration(sla.due_in(now))}"


def sla_emoji(sla: Sla, now: datetime) -> str:
    if sla.breached_at is not None:
        return ":red_circle:"
    return ":warning:" if sla.took is None and now >= sla.warn_at else ""


def render_home(composer: Composer, facts: HomeFacts) -> dict[str, Any]:
    """The Home tab's view, `{"type": "home", "blocks": [...]}`, for views.publish: a block per listed
    incident and action item, 80 blocks at most with store/home.py's limits; what is left out is counted,
    and the command that lists it all named."""
    return composer.renderer.json(
        TEMPLATE,
        facts=facts,
        policy=composer.policy,
        declare_action=HOME_DECLARE,
        mine_left=_left(facts.mine_total, facts.mine),
        incidents_left=_left(facts.open_total, facts.open),
        actions_left=_left(facts.actions_total, facts.actions),
        sla_words=sla_words,
        sla_emoji=sla_emoji,
        updated=composer.renderer.when(facts.now),
    )


def _left(total: int, listed: list[Any]) -> int:
    """How many the tab leaves out (the count and the rows are separate reads: never below none)."""
    return max(total - len(listed), 0)


async def on_action_home_declare(ack: Ack, body: dict[str, Any], deps: Deps) -> None:
    """The tab's Declare incident button: the same form as `/incident declare`, from no channel."""
    await ack()
    trigger_id = body.get("trigger_id")
    if not isinstance(trigger_id, str) or not trigger_id:  # Slack always sends one
        log.warning("a Home tab click without its trigger", extra={"event": "click_malformed"})
        return
    # An empty origin is no channel (handlers/views.py): the Home tab is none.
    form = views.declare_view(deps, origin_channel="")
    deps.spawn(deps.slack.open_view(trigger_id=trigger_id, view=form))
