"""What a use case did, for the messages that tell people about it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from store.models import Incident


@dataclass
class Change:
    """What one use case did, for the messages that tell people about it."""

    incident: Incident
    kind: str
    actor: str
    before: str | None = None
    after: str | None = None
    text: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
