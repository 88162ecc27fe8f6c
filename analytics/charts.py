"""The dashboard's pictures, drawn as SVG on the server: no script, no build
step, no third-party library. These functions only compute geometry; the
templates (templates/dashboard/_gauge.html, _chart.html) draw it."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Gauge:
    used: int
    max: int
    fraction: float
    arc: str  # SVG path of the used part; empty when nothing is used
    level: str  # ok, busy, full: the colour

    @property
    def percent(self) -> int:
        return round(self.fraction * 100)


def seat_gauge(*, used: int, max_seats: int, radius: float = 80.0) -> Gauge:
    """A half-circle gauge (left to right), centre (100, 100) in a 200 x 110 box."""
    fraction = min(used / max_seats, 1.0) if max_seats else 0.0
    cx, cy = 100.0, 100.0
    arc = ""
    if fraction > 0:
        angle = math.pi * (1 - fraction)
        x, y = cx + radius * math.cos(angle), cy - radius * math.sin(angle)
        arc = f"M {cx - radius:.2f} {cy:.2f} A {radius:.2f} {radius:.2f} 0 0 1 {x:.2f} {y:.2f}"
    level = "full" if used >= max_seats else "busy" if fraction >= 0.7 else "ok"
    return Gauge(used=used, max=max_seats, fraction=fraction, arc=arc, level=level)


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    kind: str  # peak or denials
    title: str


@dataclass(frozen=True)
class Tick:
    x: float
    y: float
    label: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    bars: list[Bar]
    x_ticks: list[Tick]
    y_ticks: list[Tick]
    limit_y: float | None  # the max-seats line
    plot_left: float
    plot_right: float
    baseline: float


def period_label(moment, granularity: str = "day", *, short: bool = False) -> str:
    """A period's name on a chart: "Dec 2" (a day), "Dec 2 14:00" or, on the
    axis (`short`), "14:00" (an hour; its day at midnight). UTC."""
    day = f"{moment:%b} {moment.day}"
    if granularity != "hour":
        return day
    if short:
        return day if moment.hour == 0 else f"{moment:%H}:00"
    return f"{day} {moment:%H}:00"


def usage_chart(
    periods: list[dict],
    *,
    max_seats: int,
    width: int = 640,
    height: int = 200,
    label_every: int = 7,
    granularity: str = "day",
) -> Chart:
    """Bars of peak concurrent seats and of denials, one pair per period (a
    day, or an hour with `granularity="hour"`), and the seat limit's line."""
    left, right, top, bottom = 34.0, 8.0, 10.0, 22.0
    plot_w, plot_h = width - left - right, height - top - bottom
    baseline = top + plot_h
    highest = max([max_seats, 1, *(p["peak_seats"] for p in periods), *(p["denials"] for p in periods)])

    def y(value: float) -> float:
        return baseline - plot_h * value / highest

    slot = plot_w / max(len(periods), 1)
    bars: list[Bar] = []
    x_ticks: list[Tick] = []
    for index, period in enumerate(periods):
        x0 = left + index * slot
        label = period_label(period["period_start"], granularity)
        if period["peak_seats"]:
            bars.append(
                Bar(
                    x=round(x0 + slot * 0.1, 2),
                    y=round(y(period["peak_seats"]), 2),
                    width=round(slot * 0.45, 2),
                    height=round(baseline - y(period["peak_seats"]), 2),
                    kind="peak",
                    title=f"{label}: peak {period['peak_seats']} seats",
                )
            )
        if period["denials"]:
            bars.append(
                Bar(
                    x=round(x0 + slot * 0.58, 2),
                    y=round(y(period["denials"]), 2),
                    width=round(slot * 0.32, 2),
                    height=round(baseline - y(period["denials"]), 2),
                    kind="denials",
                    title=f"{label}: {period['denials']} denied",
                )
            )
        if index % label_every == 0:
            short = period_label(period["period_start"], granularity, short=True)
            x_ticks.append(Tick(x=round(x0 + slot / 2, 2), y=baseline + 15, label=short))
    steps = sorted({0, (highest + 1) // 2, highest})
    y_ticks = [Tick(x=left - 6, y=round(y(value) + 4, 2), label=str(value)) for value in steps]
    return Chart(
        width=width,
        height=height,
        bars=bars,
        x_ticks=x_ticks,
        y_ticks=y_ticks,
        limit_y=round(y(max_seats), 2) if max_seats else None,
        plot_left=left,
        plot_right=width - right,
        baseline=baseline,
    )
