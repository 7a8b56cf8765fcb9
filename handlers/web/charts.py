"""Charts as inline SVG, drawn on the server: no chart library, no script, nothing fetched from a CDN,
and a page that renders them is complete when it arrives. Labels are escaped like any other text."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 48, 36, 16, 40  # room for the axis labels, the last one centred on its point
COLOURS = ("#2563eb", "#dc2626", "#16a34a", "#d97706")


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float | None]  # None: no figure that day (drawn as a gap)


def _scale(series: Sequence[Series]) -> float:
    top = max((v for s in series for v in s.values if v is not None), default=0.0)
    return top if top > 0 else 1.0


def _x(index: int, count: int, *, bars: bool = False) -> float:
    """Where point `index` of `count` stands: lines run edge to edge, bars sit in the middle of their band."""
    span = WIDTH - LEFT - RIGHT
    if bars or count < 2:
        return LEFT + span * (index + 0.5) / max(1, count)
    return LEFT + span * index / (count - 1)


def _y(value: float, top: float) -> float:
    return TOP + (HEIGHT - TOP - BOTTOM) * (1 - value / top)


def _axes(labels: Sequence[str], top: float, unit: str, *, bars: bool = False) -> list[str]:
    parts = [
        f'<line x1="{LEFT}" y1="{HEIGHT - BOTTOM}" x2="{WIDTH - RIGHT}" y2="{HEIGHT - BOTTOM}" class="axis"/>',
        f'<text x="{LEFT - 6}" y="{TOP + 4}" text-anchor="end" class="tick">{escape(_number(top))}{escape(unit)}</text>',
        f'<text x="{LEFT - 6}" y="{HEIGHT - BOTTOM}" text-anchor="end" class="tick">0</text>',
    ]
    step = max(1, len(labels) // 6)  # at most about six labels under the axis
    for index in range(0, len(labels), step):
        x = _x(index, len(labels), bars=bars)
        parts.append(
            f'<text x="{x:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle" class="tick">{escape(labels[index])}</text>'
        )
    return parts


def _number(value: float) -> str:
    if value >= 10:
        return f"{value:.0f}"
    return f"{value:.2f}" if value < 1 else f"{value:.1f}".rstrip("0").rstrip(".")


def _legend(series: Sequence[Series]) -> list[str]:
    parts = []
    for n, one in enumerate(series):
        x = LEFT + n * 150
        colour = COLOURS[n % len(COLOURS)]
        parts.append(f'<rect x="{x}" y="{HEIGHT - 14}" width="10" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{x + 14}" y="{HEIGHT - 5}" class="legend">{escape(one.name)}</text>')
    return parts


def time_unit(seconds: Sequence[float | None]) -> tuple[str, float]:
    """The unit that shows these durations as readable numbers: hours, minutes or seconds."""
    top = max((s for s in seconds if s is not None), default=0.0)
    return ("h", 3600.0) if top >= 3600 else ("min", 60.0) if top >= 60 else ("s", 1.0)


def line_chart(title: str, labels: Sequence[str], series: Sequence[Series], *, unit: str = "") -> Markup:
    """One line per series over `labels` (days, weeks), with a gap where a value is missing."""
    top = _scale(series)
    parts = _axes(labels, top, unit)
    for n, one in enumerate(series):
        colour = COLOURS[n % len(COLOURS)]
        runs: list[list[str]] = [[]]
        for index, value in enumerate(one.values):
            if value is None:
                runs.append([])
                continue
            runs[-1].append(f"{_x(index, len(labels)):.1f},{_y(value, top):.1f}")
        for run in runs:
            if len(run) == 1:
                x, y = run[0].split(",")
                parts.append(f'<circle cx="{x}" cy="{y}" r="2.5" fill="{colour}"/>')
            elif run:
                parts.append(
                    f'<polyline points="{" ".join(run)}" fill="none" stroke="{colour}" stroke-width="2"/>'
                )
    return _svg(title, parts + _legend(series))


def bar_chart(title: str, labels: Sequence[str], values: Sequence[float | None], *, unit: str = "") -> Markup:
    """One bar per label (incidents a week, MTTR by priority)."""
    top = _scale([Series(title, values)])
    parts = _axes(labels, top, unit, bars=True)
    span = (WIDTH - LEFT - RIGHT) / max(1, len(labels))
    for index, value in enumerate(values):
        if value is None:
            continue
        x = _x(index, len(labels), bars=True) - span * 0.35
        y = _y(value, top)
        parts.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{span * 0.7:.1f}" height="{HEIGHT - BOTTOM - y:.1f}" fill="{COLOURS[0]}">'
            f"<title>{escape(labels[index])}: {escape(_number(value))}{escape(unit)}</title></rect>"
        )
    return _svg(title, parts)


def _svg(title: str, parts: list[str]) -> Markup:
    """The chart with its title shown above it, as a figure's caption."""
    body = "".join(parts)
    return Markup(
        f"<figure><figcaption>{escape(title)}</figcaption>"
        f'<svg class="chart" role="img" viewBox="0 0 {WIDTH} {HEIGHT}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(title)}</title>{body}</svg></figure>"
    )
