"""PNG plots of a sweep: its metric against each swept parameter, one file per parameter.

Drawn on matplotlib's Agg canvas without pyplot, like `runner.training.plots`. Numbers go on a
numeric axis (logarithmic when they are positive and span more than a decade, ticked at the values
tried when there are few), anything else (lists, text) on a categorical one. Inputs are plain
rows: (swept values, metric value) of the finished trials.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DPI = 80


def metric_vs_params(
    points: Sequence[tuple[dict[str, Any], float]], metric: str, out: str | Path
) -> list[Path]:
    """One scatter plot per swept key under `out`, named after the key (`training.lr.png`)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    keys = list(points[0][0]) if points else []
    return [
        _plot(key, [(p[key], y) for p, y in points], metric, out / f"{key}.png") for key in keys
    ]


def _plot(key: str, xy: list[tuple[Any, float]], metric: str, path: Path) -> Path:
    FigureCanvasAgg(_figure(key, xy, metric)).print_png(str(path))
    return path


def _figure(key: str, xy: list[tuple[Any, float]], metric: str) -> Figure:
    fig = Figure(figsize=(7.5, 4.5), dpi=DPI, layout="constrained")
    ax = fig.subplots()
    xs = [x for x, _ in xy]
    ys = [y for _, y in xy]
    if all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in xs):
        ax.scatter(xs, ys, s=24)
        if min(xs) > 0 and max(xs) / min(xs) > 10:
            ax.set_xscale("log")
        values = sorted(set(xs))
        if len(values) <= 8:  # a grid: tick exactly the values tried
            ax.minorticks_off()
            ax.set_xticks(values, [f"{v:g}" for v in values])
    else:
        labels = list(dict.fromkeys(str(x) for x in xs))  # in the order the sweep has them
        ax.scatter([labels.index(str(x)) for x in xs], ys, s=24)
        ax.set_xticks(range(len(labels)), labels)
        ax.set_xlim(-0.5, len(labels) - 0.5)
    ax.set(xlabel=key, ylabel=metric, title=f"{metric} by {key}")
    return fig


def halving_picture(
    curves: dict[int, list[tuple[int, float]]], stops: Sequence[int], metric: str, path: Path
) -> Path:
    """Successive halving as people draw it: each trial's metric at the rungs it reached, the
    promoted ones continuing to the right, the rungs marked; trials that reached the last rung
    in colour, the others grey."""
    fig = Figure(figsize=(7.5, 4.5), dpi=DPI, layout="constrained")
    ax = fig.subplots()
    for stop in stops:
        ax.axvline(stop, color="0.8", linestyle="--", linewidth=1, zorder=0)
    for index, points in curves.items():
        xs, ys = [x for x, _ in points], [y for _, y in points]
        last = bool(xs) and xs[-1] == stops[-1]
        style = {"linewidth": 1.5, "alpha": 0.9} if last else {"color": "0.6", "linewidth": 0.8}
        ax.plot(xs, ys, marker="o", markersize=3, label=f"trial {index}" if last else None, **style)
    if min(stops) > 0 and max(stops) / min(stops) > 10:
        ax.set_xscale("log")
    ax.minorticks_off()
    ax.set_xticks(list(stops), [str(s) for s in stops])
    ax.set(xlabel="steps", ylabel=metric, title=f"successive halving: {metric} at each rung")
    if any(ax.get_legend_handles_labels()[1]):
        ax.legend(loc="best", fontsize="small")
    FigureCanvasAgg(fig).print_png(str(path))
    return path
