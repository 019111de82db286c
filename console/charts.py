"""The dashboard's charts measured in Python, drawn as inline SVG by ``templates/charts.html``.

No chart library and no script: a chart is a few rectangles and polylines the server lays
out, each with a ``<title>`` a screen reader (and a mouse) can read. Labels go through the
template's autoescaping like any other text.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

PLOT_W = 600  # the plot area's width in SVG units; the SVG scales to its box (viewBox)
PLOT_H = 180
LEFT = 56  # room for the value axis' tick labels
LEFT_NAMES = 160  # room for names on horizontal bar charts
BOTTOM = 28
TOP = 12
ROW = 24  # one name's band on a horizontal bar chart
MAX_X_LABELS = 14


@dataclass(frozen=True, slots=True)
class Series:
    """One measure across the chart's labels; ``css`` names its colour class in console.css."""

    name: str
    css: str
    values: list[float | None]


def nice_ticks(top: float, count: int = 4) -> list[float]:
    """Round axis values from 0 to at least ``top`` (steps of 1, 2 or 5 × 10ⁿ)."""
    if top <= 0:
        return [0.0, 1.0]
    raw = top / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    return [step * i for i in range(math.ceil(top / step - 1e-9) + 1)]


def time_unit(seconds: float) -> tuple[float, str]:
    """The unit a duration axis reads best in: (seconds per unit, unit key)."""
    for size, key in ((86_400, "unit.d"), (3600, "unit.h"), (60, "unit.min")):
        if seconds >= 2 * size:
            return size, key
    return 1, "unit.s"


def _number(value: float) -> str:
    return f"{value:g}" if value == int(value) else f"{value:.1f}"


def _top(series: list[Series]) -> float:
    return max((v for s in series for v in s.values if v is not None), default=0.0)


def _every(n: int) -> int:
    return max(1, math.ceil(n / MAX_X_LABELS))


def columns(labels: list[str], series: list[Series], short: Callable[[str], str] = str,
            shown: Callable[[float], str] = _number) -> dict:
    """Vertical bars, one group per label (days along the bottom)."""
    ticks = nice_ticks(_top(series))
    scale = PLOT_H / ticks[-1]
    slot = PLOT_W / max(len(labels), 1)
    bar = max(1.0, slot * 0.8 / max(len(series), 1))
    bars, names = [], []
    for i, label in enumerate(labels):
        for j, s in enumerate(series):
            value = s.values[i]
            if value is None:
                continue
            h = value * scale
            bars.append({"x": round(LEFT + i * slot + slot * 0.1 + j * bar, 1), "y": round(TOP + PLOT_H - h, 1),
                         "w": round(bar, 1), "h": round(h, 1), "css": s.css,
                         "title": f"{label} · {s.name}: {shown(value)}"})
        if i % _every(len(labels)) == 0:
            names.append({"x": round(LEFT + (i + 0.5) * slot, 1), "y": TOP + PLOT_H + 16, "text": short(label)})
    return _frame(ticks, scale, bars, names, series, shown) | {"kind": "columns"}


def lines(labels: list[str], series: list[Series], short: Callable[[str], str] = str,
          shown: Callable[[float], str] = _number) -> dict:
    """One polyline per series over the labels; a gap (None) breaks the line."""
    ticks = nice_ticks(_top(series))
    scale = PLOT_H / ticks[-1]
    slot = PLOT_W / max(len(labels), 1)
    paths, names = [], []
    for s in series:
        runs: list[list[str]] = [[]]
        dots = []
        for i, value in enumerate(s.values):
            if value is None:
                runs.append([])
                continue
            x, y = round(LEFT + (i + 0.5) * slot, 1), round(TOP + PLOT_H - value * scale, 1)
            runs[-1].append(f"{x},{y}")
            dots.append({"x": x, "y": y, "title": f"{labels[i]} · {s.name}: {shown(value)}"})
        paths.append({"css": s.css, "runs": [" ".join(r) for r in runs if r], "dots": dots})
    for i, label in enumerate(labels):
        if i % _every(len(labels)) == 0:
            names.append({"x": round(LEFT + (i + 0.5) * slot, 1), "y": TOP + PLOT_H + 16, "text": short(label)})
    return _frame(ticks, scale, [], names, series, shown) | {"kind": "lines", "paths": paths}


def _frame(ticks: list[float], scale: float, bars: list, names: list, series: list[Series],
           shown: Callable[[float], str]) -> dict:
    return {
        "width": LEFT + PLOT_W + 8, "height": TOP + PLOT_H + BOTTOM, "left": LEFT, "top": TOP,
        "right": LEFT + PLOT_W, "bottom": TOP + PLOT_H, "bars": bars, "names": names, "paths": [],
        "ticks": [{"pos": round(TOP + PLOT_H - t * scale, 1), "text": shown(t)} for t in ticks],
        "legend": [{"name": s.name, "css": s.css} for s in series],
    }


def hbars(labels: list[str], series: list[Series], shown: Callable[[float], str] = _number) -> dict:
    """Horizontal bars, one band per label (channels, agents: names read better sideways)."""
    ticks = nice_ticks(_top(series))
    scale = PLOT_W / ticks[-1]
    band = ROW * max(len(series), 1)
    height = TOP + band * max(len(labels), 1) + BOTTOM
    bars, names = [], []
    for i, label in enumerate(labels):
        y0 = TOP + i * band
        names.append({"x": LEFT_NAMES - 6, "y": round(y0 + band / 2 + 4, 1), "text": label})
        for j, s in enumerate(series):
            value = s.values[i]
            if value is None:
                continue
            bars.append({"x": LEFT_NAMES, "y": round(y0 + j * ROW + 3, 1), "w": round(max(value * scale, 1), 1),
                         "h": ROW - 6, "css": s.css, "title": f"{label} · {s.name}: {shown(value)}"})
    return {
        "kind": "hbars", "width": LEFT_NAMES + PLOT_W + 24, "height": height, "left": LEFT_NAMES,
        "top": TOP, "right": LEFT_NAMES + PLOT_W, "bottom": height - BOTTOM, "bars": bars, "names": names,
        "paths": [], "ticks": [{"pos": round(LEFT_NAMES + t * scale, 1), "text": shown(t)} for t in ticks],
        "legend": [{"name": s.name, "css": s.css} for s in series],
    }


def gauge(load: int, capacity: int) -> dict:
    """An agent's load against capacity on one channel class, as a bar of 0..100 units."""
    if capacity <= 0:
        return {"load": load, "capacity": capacity, "w": 0, "css": "none"}
    share = min(load / capacity, 1.0)
    css = "full" if load >= capacity else "busy" if share >= 0.75 else "ok"
    return {"load": load, "capacity": capacity, "w": round(share * 100, 1), "css": css}
