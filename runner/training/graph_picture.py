"""A small expression graph as a PNG drawn with matplotlib, no Graphviz: a box per value reading
`label | data | grad`, a small node per operation, arrows left to right, one column per depth
(as micrograd's draw_dot pictures). The lesson's use: one neuron of a model on one sample.

    value_graph_png(neuron_graph(neuron, x), title=...)    any small graph
    neuron_png(model, x, layer, index)                     that, for neuron `index` of `layer`
    parse_neuron("0.3", model)                             `mgrun graph --neuron` -> (0, 3)

Drawn on the Agg canvas without pyplot, like `runner.training.plots`. Positions are in inches:
the axes fill the figure, whose size follows from the graph, and text is monospaced, so a box's
width follows from its number of characters.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from io import BytesIO

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch

from engine.neuron import layer_input, neuron_graph
from engine.nn import MLP
from engine.value import Value
from runner.errors import ConfigError

DPI = 100
MAX_TERMS = 16  # an operation with more operands draws only the TOP largest |data| ...
TOP = 12  # ... and one box summing up the rest
FONT = 8  # points
CHAR = 0.071  # inches: a character of the monospaced font at FONT points, as drawn at DPI
ROW, BOX = 0.34, 0.24  # inches from one row to the next, and a box's height
GAP = 0.75  # inches between columns, where the operation nodes sit
MARGIN, TOP_SPACE = 0.3, 0.8  # inches: around the graph, and above it for the titles
MAX_BOXES = 300


@dataclass(eq=False)
class _Box:
    """A value (or a summary of values not drawn) and where it goes."""

    label: str
    data: float
    grad: float | None
    summary: bool = False
    op: str = ""
    inputs: list[_Box] = field(default_factory=list)
    col: int = 0
    row: float = 0.0


def value_graph_png(root: Value, title: str = "", max_terms: int = MAX_TERMS) -> bytes:
    """PNG of every value `root` depends on, inputs on the left, `root` on the right.

    An operation with more than `max_terms` operands shows the TOP (12) with the largest |data|
    and one dashed box for the rest ("Σ 52 more" with their sum, when the operation sums)."""
    buf = BytesIO()
    # mostly text: the fastest compression costs a tenth more bytes and saves a sixth of the time
    FigureCanvasAgg(_graph_figure(root, title, max_terms)).print_png(
        buf, pil_kwargs={"compress_level": 1}
    )
    return buf.getvalue()


def _graph_figure(root: Value, title: str = "", max_terms: int = MAX_TERMS) -> Figure:
    boxes = _boxes(root, max_terms)
    _place(boxes)
    ncols = 1 + max(b.col for b in boxes)
    label_width = [max(len(b.label) for b in boxes if b.col == c) for c in range(ncols)]
    texts = {id(b): _text(b, label_width[b.col]) for b in boxes}
    widths = [
        CHAR * (2 + max(len(texts[id(b)]) for b in boxes if b.col == c)) for c in range(ncols)
    ]
    lefts = [MARGIN + sum(widths[:c]) + GAP * c for c in range(ncols)]
    drawn = lefts[-1] + widths[-1] + MARGIN
    width, height = max(7.5, drawn), TOP_SPACE + ROW * (1 + max(b.row for b in boxes))
    fig = Figure(figsize=(width, height), dpi=DPI)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set(xlim=(0, width), ylim=(height, 0))  # inches, y growing down like the rows
    ax.axis("off")
    ax.text(MARGIN, 0.25, title, fontsize=11, va="center")
    note = f"each box: label | data | grad, where grad = d {root.label or 'root'} / d label"
    ax.text(MARGIN, 0.52, note, fontsize=FONT, va="center", color="0.35")
    shift = (width - drawn) / 2  # a narrow graph sits in the middle
    at = {id(b): (shift + lefts[b.col], TOP_SPACE + ROW * (b.row + 0.5)) for b in boxes}
    lines, heads = [], []
    for b in boxes:
        x, y = at[id(b)]
        fill = "#deebf7" if not b.op else "#dff0d8" if b is boxes[-1] else "white"
        style = "round,pad=0,rounding_size=0.04"
        ax.add_patch(
            FancyBboxPatch(
                (x, y - BOX / 2),
                widths[b.col],
                BOX,
                boxstyle=style,
                lw=0.8,
                ec="0.3",
                fc="#f2f2f2" if b.summary else fill,
                ls="--" if b.summary else "-",
            )
        )
        ax.text(x + CHAR, y, texts[id(b)], family="monospace", fontsize=FONT, va="center")
        if b.inputs:
            ox = x - GAP / 2  # the operation node, halfway from the operands
            lines.append([(ox, y), (x - 0.05, y)])
            heads.append((x - 0.05, y))
            for i in b.inputs:
                ix, iy = at[id(i)]
                lines.append([(ix + widths[i.col], iy), (ox, y)])
            shape = "circle,pad=0.2" if len(b.op) <= 3 else "round,pad=0.25"
            bbox = {"boxstyle": shape, "fc": "#fff2cc", "ec": "0.3", "lw": 0.8}
            ax.text(ox, y, b.op, fontsize=FONT, ha="center", va="center", zorder=3, bbox=bbox)
    ax.add_collection(LineCollection(lines, colors="0.4", linewidths=0.8))
    if heads:
        ax.plot(*zip(*heads), ls="", marker=">", ms=5, color="0.4")
    return fig


def _num(x: float) -> str:
    # as engine.graph's DOT labels: fixed point where it reads well, scientific otherwise
    x += 0.0  # no "-0.0000"
    return f"{x:.4f}" if x == 0 or 1e-3 <= abs(x) < 1e6 else f"{x:.3e}"


def _text(b: _Box, label_width: int) -> str:
    data = "" if math.isnan(b.data) else _num(b.data)
    grad = "" if b.grad is None else _num(b.grad)
    return f"{b.label:<{label_width}} | data {data:>7} | grad {grad:>7}"


def _boxes(root: Value, max_terms: int) -> list[_Box]:
    """A box per value, operands before their users (so `root` last); an operation with more
    than `max_terms` operands gets the TOP largest and a summary box."""
    made: dict[int, _Box] = {}
    order: list[_Box] = []

    def box(v: Value) -> _Box:
        if id(v) in made:
            return made[id(v)]
        b = made[id(v)] = _Box(v.label, v.data, v.grad, op=v._op)
        if len(made) > MAX_BOXES:  # checked on the way down: the recursion stays shallow
            raise ValueError(f"too many values to draw (over {MAX_BOXES}); use engine.graph")
        kids = list(v._prev)
        top = range(len(kids))
        if len(kids) > max_terms:
            top = sorted(sorted(range(len(kids)), key=lambda i: -abs(kids[i].data))[:TOP])
        b.inputs = [box(kids[i]) for i in top]
        if len(top) < len(kids):
            shown = set(top)
            rest = [c for i, c in enumerate(kids) if i not in shown]
            summed = v._op in ("+", "sum")
            data = math.fsum(c.data for c in rest) if summed else math.nan
            grads = {c.grad for c in rest}  # one number for them all, or none
            label = f"{'Σ ' if summed else ''}{len(rest)} more"
            b.inputs.append(_Box(label, data, grads.pop() if len(grads) == 1 else None, True))
            order.append(b.inputs[-1])
        order.append(b)
        return b

    box(root)
    return order


def _place(boxes: list[_Box]) -> None:
    """Columns by depth (operands just left of their first use); rows as a tidy tree: the
    leaves of the first column one per row in the order met from the root, a leaf used further
    right just below its siblings, every other box level with the middle of its operands."""
    for b in boxes:
        b.col = 1 + max((i.col for i in b.inputs), default=-1)
    users: dict[int, list[_Box]] = {}
    for b in boxes:
        for i in b.inputs:
            users.setdefault(id(i), []).append(b)
    for b in boxes:
        if not b.inputs and id(b) in users:
            b.col = min(u.col for u in users[id(b)]) - 1
    placed: set[int] = set()
    leaves = 0

    def place(b: _Box) -> None:
        nonlocal leaves
        placed.add(id(b))
        late = [i for i in b.inputs if not i.inputs and i.col > 0 and id(i) not in placed]
        for i in b.inputs:
            if i not in late and id(i) not in placed:
                place(i)
        below = max((i.row for i in b.inputs if i not in late), default=leaves - 1)
        for k, i in enumerate(late):
            placed.add(id(i))
            i.row = below + 1 + k
        if b.inputs:
            b.row = sum(i.row for i in b.inputs) / len(b.inputs)
        else:
            b.row, leaves = leaves, leaves + 1

    place(boxes[-1])
    for c in {b.col for b in boxes}:  # in a graph that is not a tree, boxes may meet: part them
        column = sorted((b for b in boxes if b.col == c), key=lambda b: b.row)
        for above, b in zip(column, column[1:]):
            b.row = max(b.row, above.row + 1)


def parse_neuron(text: str, model: MLP) -> tuple[int, int]:
    """(layer, index) from `--neuron LAYER.INDEX`, checked against the model's sizes."""
    layers = [len(layer.neurons) for layer in model.layers]
    shape = "-".join(map(str, model.sizes))
    try:
        layer, index = (int(part) for part in text.split("."))
    except ValueError:
        raise ConfigError(
            f"--neuron {text}: expected LAYER.INDEX, e.g. 0.3 for neuron 3 of layer 0; "
            f"the {shape} model has layers 0..{len(layers) - 1}"
        ) from None
    if not 0 <= layer < len(layers):
        raise ConfigError(
            f"--neuron {text}: layer must be 0..{len(layers) - 1} "
            f"(the {shape} model has {len(layers)} layers of neurons)"
        )
    if not 0 <= index < layers[layer]:
        raise ConfigError(f"--neuron {text}: layer {layer} has neurons 0..{layers[layer] - 1}")
    return layer, index


def neuron_png(model: MLP, x: Sequence[float], layer: int, index: int, row: str = "") -> bytes:
    """The picture of neuron `index` of `layer` when the model reads the row x (layers past
    the first see the previous layer's outputs, labelled h1..). `row` names x in the title."""
    neuron = model.layers[layer].neurons[index]
    prefix = "x" if layer == 0 else "h"
    root = neuron_graph(neuron, layer_input(model, x, layer), prefix)
    shape = "-".join(map(str, model.sizes))
    title = f"neuron {layer}.{index} ({neuron.activation}) of the {shape} model"
    return value_graph_png(root, title + (f" on {row}" if row else ""))
