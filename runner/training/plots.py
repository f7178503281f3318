"""PNG plots of a run: loss and accuracy curves, the decision boundary, the final gradients.

Figures are drawn on matplotlib's Agg canvas without pyplot, so no global figure state is kept and
plotting works in any thread or process without a display. Inputs are plain lists and dicts;
each function returns the PNG file's bytes. Fixed margins instead of a layout engine halve the
drawing time, which every logged trial pays.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from io import BytesIO

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

Metric = tuple[str, float, int]  # (key, value, step)
DPI = 80  # small files and fast saves; the UI shows them at about this size anyway


def _png(fig: Figure) -> bytes:
    buf = BytesIO()
    FigureCanvasAgg(fig).print_png(buf)
    return buf.getvalue()


def _pair() -> tuple[Figure, list]:
    fig = Figure(figsize=(8, 3.2), dpi=DPI)
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.15, top=0.9, wspace=0.25)
    return fig, list(fig.subplots(1, 2))


def loss_curves(metrics: Sequence[Metric]) -> bytes:
    """Loss (left) and accuracy (right) against the step, train and test where recorded."""
    series: dict[str, tuple[list[int], list[float]]] = {}
    for key, value, step in metrics:
        steps, values = series.setdefault(key, ([], []))
        steps.append(step)
        values.append(value)
    fig, axes = _pair()
    for ax, what in zip(axes, ("loss", "accuracy"), strict=True):
        for split in ("train", "test"):
            if f"{split}_{what}" in series:
                steps, values = series[f"{split}_{what}"]
                ax.plot(steps, values, label=split, marker="." if split == "test" else None)
        ax.set(xlabel="step", ylabel=what, title=what)
        if ax.has_data():
            ax.legend()
    return _png(fig)


def decision_boundary(
    predict: Callable[[list[float], list[float]], Sequence[Sequence[int]]],
    X: Sequence[Sequence[float]],
    y: Sequence[int],
    n: int = 80,
    names: Sequence[str] = ("x1", "x2"),
) -> bytes:
    """The predicted class over an n x n grid around the 2-D points X, with the points on top.

    `predict(gx, gy)` returns the class at (gx[i], gy[j]) as grid[j][i]."""
    xs, ys = [p[0] for p in X], [p[1] for p in X]
    (x0, x1), (y0, y1) = _padded(xs), _padded(ys)
    gx = [x0 + (x1 - x0) * i / (n - 1) for i in range(n)]
    gy = [y0 + (y1 - y0) * j / (n - 1) for j in range(n)]
    grid = predict(gx, gy)
    k = max(max(map(max, grid)), max(y, default=0)) + 1
    fig = Figure(figsize=(4.5, 4), dpi=DPI)
    fig.subplots_adjust(left=0.17, right=0.97, bottom=0.12, top=0.92)  # room for the y label
    ax = fig.subplots()
    levels = [c - 0.5 for c in range(k + 1)]
    ax.contourf(gx, gy, grid, levels=levels, cmap="coolwarm", alpha=0.35)
    ax.scatter(xs, ys, c=list(y), cmap="coolwarm", vmin=0, vmax=k - 1, s=14, edgecolors="k")
    ax.set(xlabel=names[0], ylabel=names[1], title="decision boundary")
    return _png(fig)


def _padded(values: Sequence[float]) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    pad = 0.1 * (hi - lo) or 1.0
    return lo - pad, hi + pad


def final_gradients(gradients: Mapping[str, float]) -> bytes:
    """Per-layer gradient norms (left) and the spread of log10 |gradient| (right)."""
    norms: dict[str, float] = {}
    for name, g in gradients.items():
        layer = name.split(".")[1] if name.startswith("layers.") else name
        norms[layer] = norms.get(layer, 0.0) + g * g
    fig, (left, right) = _pair()
    left.bar([f"layer {k}" for k in norms], [math.sqrt(v) for v in norms.values()])
    left.set(ylabel="L2 norm of the gradient", title="final gradient norm per layer")
    logs = [math.log10(abs(g)) for g in gradients.values() if g != 0 and math.isfinite(g)]
    if logs:
        right.hist(logs, bins=30)
    zeros = sum(g == 0 for g in gradients.values())
    right.set(xlabel="log10 |gradient|", ylabel="parameters", title=f"{zeros} exactly zero")
    return _png(fig)
