"""Line and bar charts as inline SVG strings.

The report is a single file people open from disk or a CI artifact, with no
internet, so charts cannot come from a JS library: they are drawn here as SVG
text. Every data mark carries ``class="mark"`` and ``data-*`` attributes so
tests (and curious readers of the DOM) can find the values behind a shape.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
)  # fmt: skip

WIDTH, HEIGHT = 640, 320
LEFT, RIGHT, TOP, BOTTOM = 64, 150, 28, 56  # plot margins; legend lives on the right


@dataclass(frozen=True)
class Series:
    """One named line (points as (x, y)) or one bar series (y per category)."""

    name: str
    points: Sequence[tuple[float, float]] = ()
    values: Sequence[float] = ()


@dataclass(frozen=True)
class Chart:
    """What every chart has: an id for the DOM, a title and axis captions."""

    chart_id: str
    title: str
    x_label: str
    y_label: str
    series: Sequence[Series] = field(default_factory=tuple)


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high]; a human reads 0.25 faster than 0.2371."""
    if not math.isfinite(low) or not math.isfinite(high):
        return [0.0, 1.0]
    if high <= low:
        high = low + (abs(low) or 1.0)
    raw = (high - low) / max(count, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    start = math.floor(low / step) * step
    ticks = []
    value = start
    while value <= high + step * 1e-9:
        ticks.append(round(value, 10))
        value += step
    if ticks[-1] < high:
        ticks.append(round(value, 10))
    return ticks


def format_number(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.0f}"
    if abs(value) >= 1:
        return f"{value:.1f}".rstrip("0").rstrip(".")
    return f"{value:.3f}".rstrip("0").rstrip(".")


class _Frame:
    """Maps data coordinates to pixels inside the plot area."""

    def __init__(self, x_range: tuple[float, float], y_range: tuple[float, float]) -> None:
        self.x0, self.x1 = x_range
        self.y0, self.y1 = y_range
        self.plot_w = WIDTH - LEFT - RIGHT
        self.plot_h = HEIGHT - TOP - BOTTOM

    def px(self, x: float) -> float:
        span = (self.x1 - self.x0) or 1.0
        return LEFT + (x - self.x0) / span * self.plot_w

    def py(self, y: float) -> float:
        span = (self.y1 - self.y0) or 1.0
        return TOP + self.plot_h - (y - self.y0) / span * self.plot_h


def _open(chart: Chart, kind: str, empty: bool) -> list[str]:
    return [
        f'<svg class="chart" data-chart="{escape(chart.chart_id)}" data-kind="{kind}" '
        f'data-empty="{str(empty).lower()}" xmlns="http://www.w3.org/2000/svg" '
        f'width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(chart.title)}">',
        f'<text class="title" x="{LEFT}" y="18" font-size="14" font-weight="bold">'
        f"{escape(chart.title)}</text>",
    ]


def _empty(chart: Chart, kind: str) -> str:
    parts = _open(chart, kind, True)
    parts.append(
        f'<text class="no-data" x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle" '
        'font-size="16" fill="#888">no data yet</text></svg>'
    )
    return "\n".join(parts)


def _axes(frame: _Frame, chart: Chart, y_ticks: Sequence[float]) -> list[str]:
    bottom = TOP + frame.plot_h
    parts = [
        f'<line class="axis" x1="{LEFT}" y1="{bottom}" x2="{LEFT + frame.plot_w}" '
        f'y2="{bottom}" stroke="#333"/>',
        f'<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{bottom}" stroke="#333"/>',
    ]
    for tick in y_ticks:
        y = frame.py(tick)
        parts.append(
            f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + frame.plot_w}" y2="{y:.1f}" '
            'stroke="#e5e5e5"/>'
            f'<text class="y-tick" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" '
            f'font-size="11">{format_number(tick)}</text>'
        )
    parts.append(
        f'<text class="x-label" x="{LEFT + frame.plot_w / 2}" y="{HEIGHT - 8}" '
        f'text-anchor="middle" font-size="12">{escape(chart.x_label)}</text>'
        f'<text class="y-label" x="14" y="{TOP + frame.plot_h / 2}" text-anchor="middle" '
        f'font-size="12" transform="rotate(-90 14 {TOP + frame.plot_h / 2})">'
        f"{escape(chart.y_label)}</text>"
    )
    return parts


def _legend(names: Sequence[str]) -> list[str]:
    parts = ['<g class="legend">']
    for i, name in enumerate(names):
        y = TOP + 8 + i * 18
        x = WIDTH - RIGHT + 14
        parts.append(
            f'<rect x="{x}" y="{y - 9}" width="12" height="12" '
            f'fill="{PALETTE[i % len(PALETTE)]}"/>'
            f'<text class="legend-item" x="{x + 18}" y="{y + 1}" font-size="11">'
            f"{escape(name[:20])}</text>"
        )
    parts.append("</g>")
    return parts


def line_chart(
    chart: Chart,
    *,
    x_ticks: Sequence[tuple[float, str]],
    y_range: tuple[float, float] | None = None,
    diagonal: bool = False,
) -> str:
    """Lines with a dot per point; ``x_ticks`` are (value, label) pairs on the x axis.

    ``diagonal`` draws y = x: the calibration chart's "perfectly calibrated" line.
    """
    points = [p for s in chart.series for p in s.points]
    if not points:
        return _empty(chart, "line")
    xs = [p[0] for p in points] + [v for v, _ in x_ticks]
    ys = [p[1] for p in points]
    y_ticks = nice_ticks(*(y_range or (min(0.0, min(ys)), max(ys))))
    x_low, x_high = min(xs), max(xs)
    if x_high == x_low:
        x_low, x_high = x_low - 1, x_high + 1
    frame = _Frame((x_low, x_high), (y_ticks[0], y_ticks[-1]))
    parts = _open(chart, "line", False) + _axes(frame, chart, y_ticks)
    bottom = TOP + frame.plot_h
    for value, label in x_ticks:
        x = frame.px(value)
        parts.append(
            f'<line x1="{x:.1f}" y1="{bottom}" x2="{x:.1f}" y2="{bottom + 4}" stroke="#333"/>'
            f'<text class="x-tick" x="{x:.1f}" y="{bottom + 16}" text-anchor="middle" '
            f'font-size="10">{escape(label)}</text>'
        )
    if diagonal:
        lo, hi = max(x_low, frame.y0), min(x_high, frame.y1)
        parts.append(
            f'<line class="diagonal" x1="{frame.px(lo):.1f}" y1="{frame.py(lo):.1f}" '
            f'x2="{frame.px(hi):.1f}" y2="{frame.py(hi):.1f}" stroke="#999" '
            'stroke-dasharray="5,4"/>'
        )
    for i, series in enumerate(chart.series):
        color = PALETTE[i % len(PALETTE)]
        ordered = sorted(series.points)
        if len(ordered) > 1:
            d = " ".join(
                f"{'M' if j == 0 else 'L'}{frame.px(x):.1f},{frame.py(y):.1f}"
                for j, (x, y) in enumerate(ordered)
            )
            parts.append(
                f'<path class="line" data-series="{escape(series.name)}" d="{d}" '
                f'fill="none" stroke="{color}" stroke-width="2"/>'
            )
        for x, y in ordered:
            parts.append(
                f'<circle class="mark" data-series="{escape(series.name)}" data-x="{x:g}" '
                f'data-y="{y:g}" cx="{frame.px(x):.1f}" cy="{frame.py(y):.1f}" r="3.5" '
                f'fill="{color}"><title>{escape(series.name)}: {format_number(y)}</title>'
                "</circle>"
            )
    parts += _legend([s.name for s in chart.series])
    parts.append("</svg>")
    return "\n".join(parts)


def bar_chart(chart: Chart, *, categories: Sequence[str]) -> str:
    """Grouped bars: one group per category, one bar per series (``Series.values``)."""
    values = [v for s in chart.series for v in s.values]
    if not categories or not values:
        return _empty(chart, "bar")
    y_ticks = nice_ticks(min(0.0, min(values)), max(values))
    frame = _Frame((0.0, float(len(categories))), (y_ticks[0], y_ticks[-1]))
    parts = _open(chart, "bar", False) + _axes(frame, chart, y_ticks)
    slot = frame.plot_w / len(categories)
    bar_w = slot * 0.8 / max(len(chart.series), 1)
    bottom = TOP + frame.plot_h
    rotate = len(categories) > 8
    for c, category in enumerate(categories):
        centre = LEFT + slot * (c + 0.5)
        anchor = "end" if rotate else "middle"
        turn = f' transform="rotate(-35 {centre:.1f} {bottom + 14})"' if rotate else ""
        parts.append(
            f'<text class="x-tick" x="{centre:.1f}" y="{bottom + 14}" text-anchor="{anchor}" '
            f'font-size="10"{turn}>{escape(category)}</text>'
        )
        for i, series in enumerate(chart.series):
            value = series.values[c] if c < len(series.values) else 0.0
            top, base = frame.py(max(value, 0.0)), frame.py(min(value, 0.0))
            x = LEFT + slot * c + slot * 0.1 + i * bar_w
            parts.append(
                f'<rect class="mark" data-series="{escape(series.name)}" '
                f'data-category="{escape(category)}" data-y="{value:g}" x="{x:.1f}" '
                f'y="{top:.1f}" width="{max(bar_w - 1, 1):.1f}" '
                f'height="{max(base - top, 0.5):.1f}" fill="{PALETTE[i % len(PALETTE)]}">'
                f"<title>{escape(series.name)} {escape(category)}: {format_number(value)}"
                "</title></rect>"
            )
    parts += _legend([s.name for s in chart.series])
    parts.append("</svg>")
    return "\n".join(parts)
