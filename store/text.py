"""User text as Tocsin keeps it: in Slack's encoded form, the one string that tells a typed `<@U1>` from a
mention. `&`, `<` and `>` are `&amp;`, `&lt;` and `&gt;`, and what a person's client made into markup is
kept as that markup (`<@U…|name>`, `<#C…|name>`, `<https://…|label>`, `<!here>`, `<!subteam^S…|@sre>`).

The store needs one fact about it, how long it reads (its limits count what a person sees); how text
comes in and is shown is handlers/text.py's.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

_USER = re.compile(r"@([UW][A-Z0-9_]+)(?:\|(.*))?", re.DOTALL)
_CHANNEL = re.compile(r"#([CG][A-Z0-9_]+)(?:\|(.*))?", re.DOTALL)
_GROUP = re.compile(r"!subteam\^([A-Z0-9_]+)(?:\|(.*))?", re.DOTALL)
_SPECIAL = re.compile(r"!(here|channel|everyone)(?:\|(.*))?", re.DOTALL)
_LINK = re.compile(r"((?:https?|mailto):[^\s|]+)(?:\|(.*))?", re.DOTALL)
_KINDS = (("user", _USER), ("channel", _CHANNEL), ("group", _GROUP), ("special", _SPECIAL), ("link", _LINK))
_MARKUP = re.compile(r"<([^<>]*)>")
_ENTITY = re.compile(r"&(amp|lt|gt);")
_DECODED = {"amp": "&", "lt": "<", "gt": ">"}
_RESERVED = re.compile(r"[&<>]")


@dataclass(frozen=True)
class Markup:
    """One piece of markup: `kind` is user, channel, group, special or link; `label` is readable."""

    kind: str
    target: str
    label: str = ""


Piece = str | Markup  # a str is readable text, its entities decoded


def pieces(text: str) -> Iterator[Piece]:
    """`text` (encoded, or raw from a row older than this rule) as readable text and markup, in order."""
    pos, plain = 0, []
    while (found := _RESERVED.search(text, pos)) is not None:
        plain.append(text[pos : found.start()])
        char, pos = found.group(), found.end()
        tag = _MARKUP.match(text, found.start()) if char == "<" else None
        markup = _markup(tag.group(1)) if tag else None
        if char == "&" and (entity := _ENTITY.match(text, found.start())):
            plain.append(_DECODED[entity.group(1)])
            pos = entity.end()
        elif tag and markup:
            if joined := "".join(plain):
                yield joined
            plain, pos = [], tag.end()
            yield markup
        else:
            plain.append(char)
    if joined := "".join(plain) + text[pos:]:
        yield joined


def _markup(inner: str) -> Markup | None:
    for kind, pattern in _KINDS:
        if match := pattern.fullmatch(inner):
            return Markup(kind, decode(match.group(1)), decode(match.group(2) or ""))
    return None


def decode(text: str) -> str:
    return _ENTITY.sub(lambda m: _DECODED[m.group(1)], text)


def shown_length(text: str) -> int:
    """How many characters `text` reads as: an entity is one, a mention its name, a link its label."""
    return sum(len(p) if isinstance(p, str) else 1 + len(p.label or p.target) for p in pieces(text))
