"""PNG plots of a run: loss and accuracy curves, the decision boundary or the confusion matrix,
the final gradients.

Figures are drawn on matplotlib's Agg canvas without pyplot, so no global figure state is kept and
plotting works in any thread or process without a display. Inputs are plain lists and dicts;
each public function returns the PNG file's bytes (a private `_..._figure` twin returns the
Figure, for tests). Fixed margins instead of a layout engine halve the drawing time, which every
logged trial pays. Classes get the colours of the qualitative `tab10` palette, in order.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from io import BytesIO

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

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


def _colour(c: int) -> tuple[float, ...]:
    """Class or layer c's colour: tab10, then tab20's lighter shades, then round again."""
    palette = colormaps["tab10"].colors + colormaps["tab20"].colors[1::2]
    return palette[c % len(palette)]


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
            ax.legend(title=None if f"test_{what}" in series else f"(no test {what})")
    return _png(fig)


def decision_boundary(
    predict: Callable[[list[float], list[float]], Sequence[Sequence[int]]],
    X: Sequence[Sequence[float]],
    y: Sequence[int],
    n: int = 200,
    names: Sequence[str] = ("x1", "x2"),
    class_names: Sequence[str] | None = None,
    X_test: Sequence[Sequence[float]] = (),
    y_test: Sequence[int] = (),
) -> bytes:
    """The predicted class over an n x n grid around the 2-D points, with the training points
    (filled) and the test points (hollow) on top, coloured by their true class.

    `predict(gx, gy)` returns the class at (gx[i], gy[j]) as grid[j][i]; `names` label the axes,
    `class_names[c]` names class c in the legend (default: its number)."""
    return _png(_decision_boundary_figure(predict, X, y, n, names, class_names, X_test, y_test))


def _decision_boundary_figure(
    predict, X, y, n=200, names=("x1", "x2"), class_names=None, X_test=(), y_test=()
) -> Figure:
    points = [*X, *X_test]
    (x0, x1), (y0, y1) = _padded([p[0] for p in points]), _padded([p[1] for p in points])
    gx = [x0 + (x1 - x0) * i / (n - 1) for i in range(n)]
    gy = [y0 + (y1 - y0) * j / (n - 1) for j in range(n)]
    grid = np.asarray(predict(gx, gy))
    k = max(int(grid.max()), *y, *y_test, len(class_names or ()) - 1) + 1
    class_names = list(class_names or range(k))
    fig = Figure(figsize=(8, 7), dpi=DPI)
    fig.subplots_adjust(left=0.1, right=0.97, bottom=0.16, top=0.94)  # the legend goes below
    ax = fig.subplots()
    tints = np.array([[0.7 + 0.3 * v for v in _colour(c)[:3]] for c in range(k)])
    extent = (x0, x1, y0, y1)
    ax.imshow(tints[grid], origin="lower", extent=extent, aspect="auto", interpolation="nearest")
    for c in np.unique(grid):
        # where class c's share of a 5x5 neighbourhood crosses 1/2: a smooth line, and the
        # same line from both sides of a two-class boundary
        share = _blurred(_blurred(grid == c))
        ax.contour(gx, gy, share, levels=[0.5], colors="0.3", linewidths=0.9)
    for c in range(k):
        train = [p for p, t in zip(X, y, strict=True) if t == c]
        test = [p for p, t in zip(X_test, y_test, strict=True) if t == c]
        if train:
            ax.scatter(*zip(*train), s=22, color=_colour(c), edgecolors="0.15", linewidths=0.5)
        if test:
            ax.scatter(*zip(*test), s=34, facecolors="none", edgecolors=_colour(c), linewidths=1.6)
    ax.set(xlim=(x0, x1), ylim=(y0, y1), xlabel=names[0], ylabel=names[1])
    ax.set_title("decision boundary (areas: the predicted class; points: the true class)")
    handles = [_marker("s", _colour(c), _named(name)) for c, name in enumerate(class_names)]
    handles.append(_marker("o", "0.6", "training point"))
    if len(X_test):  # a numpy array has no truth value
        handles.append(_marker("o", "none", "test point"))
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 5), frameon=False)
    return fig


def _named(name) -> str:
    """'class 3' for a class called by a number, the name itself for a class with a name."""
    try:
        float(name)
    except ValueError:
        return str(name)
    return f"class {name}"


def _blurred(a: np.ndarray) -> np.ndarray:
    """`a` averaged with weights 1-2-1 along each axis (edges repeated)."""
    a = np.pad(a.astype(float), 1, mode="edge")
    a = (a[:-2] + 2 * a[1:-1] + a[2:]) / 4
    return (a[:, :-2] + 2 * a[:, 1:-1] + a[:, 2:]) / 4


def _marker(shape: str, colour, label: str) -> Line2D:
    edge = "0.15" if colour != "none" else "0.3"
    return Line2D([], [], ls="", marker=shape, ms=9, mfc=colour, mec=edge, mew=1.2, label=label)


def _padded(values: Sequence[float]) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    pad = 0.1 * (hi - lo) or 1.0
    return lo - pad, hi + pad


def confusion_matrix(
    y_true: Sequence[int],
    y_pred: Sequence[int],
    class_names: Sequence[str],
    title: str = "confusion matrix",
) -> bytes:
    """Counts of (true class, predicted class) as a table of shaded cells, the diagonal being
    the correct predictions; for data with more features than a plane can show."""
    return _png(_confusion_figure(y_true, y_pred, class_names, title))


def _confusion_figure(y_true, y_pred, class_names, title="confusion matrix") -> Figure:
    k = len(class_names)
    counts = np.zeros((k, k), dtype=int)
    np.add.at(counts, (np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=int)), 1)
    total, correct = int(counts.sum()), int(np.trace(counts))
    fig = Figure(figsize=(7.5, 7.5), dpi=DPI)
    fig.subplots_adjust(left=0.2, right=0.96, bottom=0.2, top=0.9)
    ax = fig.subplots()
    ax.imshow(counts, cmap="Blues", vmin=0, vmax=max(1, counts.max()))
    size = 11 if k <= 10 else max(6, 110 // k)
    for (i, j), count in np.ndenumerate(counts):
        dark = count > 0.55 * counts.max()
        colour = "white" if dark else "black" if count else "0.6"
        ax.text(j, i, str(count), ha="center", va="center", color=colour, fontsize=size)
    names = [str(c) for c in class_names]
    slanted = {"rotation": 45, "ha": "right"} if max(map(len, names), default=0) > 3 else {}
    ax.set_xticks(range(k), names, **slanted)
    ax.set_yticks(range(k), names)
    ax.set(xlabel="predicted class", ylabel="true class")
    share = f", {correct / total:.1%} on the diagonal (correct)" if total else ""
    ax.set_title(f"{title}\n{total} samples{share}")
    return fig


def final_gradients(gradients: Mapping[str, float]) -> bytes:
    """Per-layer gradient norms (left) and, per layer, the spread of log10 |gradient| (right)."""
    return _png(_gradients_figure(gradients))


def _gradients_figure(gradients: Mapping[str, float]) -> Figure:
    layers: dict[str, list[float]] = {}
    for name, g in gradients.items():
        layers.setdefault(name.split(".")[1] if name.startswith("layers.") else name, []).append(g)
    fig, (left, right) = _pair()
    fig.subplots_adjust(top=0.84)  # two-line titles
    labels = [f"layer {k}" for k in layers]
    colours = [_colour(i) for i in range(len(layers))]
    norms = [math.sqrt(math.fsum(g * g for g in gs)) for gs in layers.values()]
    left.bar(labels, [v if math.isfinite(v) else 0.0 for v in norms], color=colours)
    left.set(ylabel="L2 norm of the gradient", title="final gradient norm per layer\n")
    logs = [[math.log10(abs(g)) for g in gs if g and math.isfinite(g)] for gs in layers.values()]
    if any(logs):
        right.hist(logs, bins=30, stacked=True, histtype="stepfilled", color=colours, label=labels)
        right.legend(fontsize="small")
    zeros = sum(g == 0 for g in gradients.values())
    odd = sum(not math.isfinite(g) for g in gradients.values())
    unseen = [f"{zeros} of {len(gradients)} exactly zero" if zeros else "none exactly zero"]
    unseen += [f"{odd} not finite"] if odd else []
    right.set(xlabel="log10 |gradient|", ylabel="parameters")
    right.set_title(f"distribution of |gradient| (log10) per layer\n{', '.join(unseen)}")
    return fig
