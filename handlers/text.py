"""User text as Slack sends it, and as each place shows it.

Tocsin keeps user text in Slack's encoded form (store/text.py): `&`, `<` and `>` as `&amp;`, `&lt;` and
`&gt;`, and what a person's client made into markup as that markup (`<@U…|name>`, `<#C…|name>`,
`<https://…|label>`, `<!here>`, `<!subteam^S…|@handle>`).

In: slash-command text arrives in that form and is kept as it is (`from_command`); form values and alert
text arrive raw and are encoded once (`from_input`).
Out: `to_mrkdwn` for every mrkdwn string (and the channel topic, which shows mentions), `to_plain` for
plain_text, file titles and channel names, `to_markdown` for the review document, `literal` for echoing
what someone typed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from store.text import Markup, Piece, pieces

# A user id as the store keeps people; the tests' ids (U_ALICE) have underscores, as markup allows.
USER_ID = re.compile(r"[UW][A-Z0-9_]+")
_ENTITY_OR_CHAR = re.compile(r"&(?:amp|lt|gt);|.", re.DOTALL)
# Shown between `@` and `channel` so that no client, and no parse mode of chat.update, can make an
# inert `@channel` a ping again; it takes no space on screen.
WORD_JOINER = "\u2060"
_INERT = ("group", "special")  # markup shown, never live
_MAY_NEED_WORK = re.compile(r"[&<>@]")  # text without these reads and is sent as it is
_BROADCAST = re.compile(r"(?<![\w@])@(?=(?:here|channel|everyone)\b)")


def escape(readable: str) -> str:
    """Readable text encoded for Slack: every `&`, `<` and `>` becomes an entity."""
    return readable.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# Inbound ----------------------------------------------------------------------------------------


def from_command(text: str | None) -> str:
    """Slash-command text: Slack has encoded it already (should_escape), so it is kept as it came."""
    return (text or "").strip()


def from_input(raw: str | None) -> str:
    """A form value or an alert's text, which arrive raw: encoded once, so nothing in it is live."""
    return escape(raw or "")


# Outbound ---------------------------------------------------------------------------------------


def _inert(name: str) -> str:
    return "@" + WORD_JOINER + name


def _group_name(markup: Markup) -> str:
    return markup.label.lstrip("@") or markup.target


def to_mrkdwn(text: object, limit: int | None = None) -> str:
    """Stored text for a mrkdwn field. Idempotent: entities stay, a bare `&`, `<` or `>` is escaped, user
    and channel mentions and links stay live, and `@channel`, `@here`, `@everyone` and user groups are
    shown inert. `limit` clips to that many characters as sent (Slack's limits count entities in full),
    never inside an entity or markup."""
    text = str(text)
    if not _MAY_NEED_WORK.search(text):  # most strings, Tocsin's own above all: nothing to do
        return text if limit is None or len(text) <= limit else text[: limit - 1] + "…"
    shown = [_mrkdwn_text(p) if isinstance(p, str) else _live(p) for p in pieces(text)]
    if limit is None or sum(map(len, shown)) <= limit:
        return "".join(shown)
    kept, left = [], limit - 1
    for part in shown:
        if len(part) > left:
            kept.append("" if part.startswith("<") else _cut(part, left))  # markup is kept whole or left out
            break
        kept.append(part)
        left -= len(part)
    return "".join(kept) + "…"


def _cut(escaped: str, size: int) -> str:
    """The longest start of escaped text at most `size` characters long that does not end inside an entity."""
    for token in _ENTITY_OR_CHAR.finditer(escaped):
        if token.end() > size:
            return escaped[: token.start()]
    return escaped


def _mrkdwn_text(readable: str) -> str:
    """Readable text for mrkdwn: escaped, and a plain `@here` (from a form or an older row) kept inert."""
    return _BROADCAST.sub("@" + WORD_JOINER, escape(readable))


def _live(markup: Markup) -> str:
    label = f"|{escape(markup.label)}" if markup.label else ""
    match markup.kind:
        case "user":
            return f"<@{markup.target}{label}>"
        case "channel":
            return f"<#{markup.target}{label}>"
        case "link":
            return f"<{escape(markup.target)}{label}>"
        case "group":
            return escape(_inert(_group_name(markup)))
    return _inert(markup.target)


def _readable(markup: Markup, names: Mapping[str, str] | None = None) -> str:
    match markup.kind:
        case "user":
            return "@" + ((names or {}).get(markup.target) or markup.label or markup.target)
        case "channel":
            return "#" + (markup.label or markup.target)
        case "group":
            return "@" + _group_name(markup)
        case "special":
            return "@" + markup.target
    return (
        f"{markup.label} ({markup.target})"
        if markup.label and markup.label != markup.target
        else markup.target
    )


def to_plain(text: object, names: Mapping[str, str] | None = None) -> str:
    """Stored text as a person reads it, for plain_text fields, file titles and channel names:
    `R&D <#C1|ops>` -> `R&D #ops`, `<@U1|carol>` -> `@carol`, `<https://x|status>` -> `status (https://x)`."""
    text = str(text)
    if not _MAY_NEED_WORK.search(text):
        return text
    return "".join(p if isinstance(p, str) else _readable(p, names) for p in pieces(text))


def to_words(text: object) -> str:
    """Stored text as words, for a channel name: as `to_plain`, but a link by its label alone (a
    title's `<https://status.example.com|status page>` names the channel `status-page`, not the URL)."""
    return "".join(
        (p.label or p.target) if isinstance(p, Markup) and p.kind == "link" else _shown_as(p)
        for p in pieces(str(text))
    )


def literal(text: object) -> str:
    """What someone typed, shown in mrkdwn as they read it with nothing live: for echoes."""
    return "".join(
        _live(p) if isinstance(p, Markup) and p.kind in _INERT else _mrkdwn_text(_shown_as(p))
        for p in pieces(str(text))
    )


def _shown_as(piece: Piece) -> str:
    return piece if isinstance(piece, str) else _readable(piece)


def people(text: object) -> set[str]:
    """The user ids mentioned in stored text."""
    return {p.target for p in pieces(str(text)) if isinstance(p, Markup) and p.kind == "user"}


# The review document (Markdown, read outside Slack) -------------------------------------------------

_MARKDOWN_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*_[]#|~<>"})
_ENTITY_LIKE = re.compile(r"&(?=#?\w+;)")


def person(user: str | None, names: Mapping[str, str]) -> str:
    """`Carol (U0CAROL)` for a user with a display name, the id alone without; other actors as they are."""
    if not user:
        return "-"
    if user == "tocsin":
        return "Tocsin"
    name = names.get(user) if USER_ID.fullmatch(user) else None
    return f"{name} ({user})" if name and name != user else user


def markdown_escape(readable: str) -> str:
    """Readable text for a Markdown document: no HTML, no formatting, no links it did not mean."""
    return _ENTITY_LIKE.sub("\\\\&", readable.translate(_MARKDOWN_SPECIAL))


def to_markdown(text: object, names: Mapping[str, str] | None = None, *, inline: bool = False) -> str:
    """Stored text for the review document: mentions as `@Carol (U0CAROL)`, typed links as Markdown links,
    everything else escaped. `inline` (a table cell) puts line breaks as spaces."""
    names = names or {}
    shown = []
    for piece in pieces(str(text)):
        if isinstance(piece, str):
            shown.append(markdown_escape(piece))
        elif piece.kind == "user":
            known = names.get(piece.target, piece.target) != piece.target
            who = person(piece.target, names) if known else piece.label or piece.target
            shown.append("@" + markdown_escape(who))
        elif piece.kind == "link":
            url = piece.target.replace("(", "%28").replace(")", "%29")
            shown.append(f"[{markdown_escape(piece.label or piece.target)}]({url})")
        else:
            shown.append(markdown_escape(_readable(piece)))
    result = "".join(shown)
    return " ".join(result.split()) if inline else result
