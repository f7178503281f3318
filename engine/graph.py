"""Draw an expression graph as Graphviz DOT source; optionally render it with the `dot` program.

`draw_dot` needs nothing but the standard library. Rendering to SVG/PNG/PDF needs Graphviz
(`apt-get install graphviz`, `brew install graphviz`, or https://graphviz.org/download/).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from engine.nn import MLP
from engine.value import Value

FORMATS = ("svg", "png", "pdf")


def _num(x: float) -> str:
    # fixed point where it reads well, scientific where 4 decimals would hide the value
    return f"{x:.4f}" if x == 0 or 1e-3 <= abs(x) < 1e6 else f"{x:.3e}"


def _record(text: str) -> str:
    """Escape text for a record field inside a double-quoted DOT label."""
    for ch in '\\"{}|<>':
        text = text.replace(ch, "\\" + ch)
    return text.replace("\n", " ")


def _quoted(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")


def draw_dot(root: Value, rankdir: str = "LR") -> str:
    """DOT source for every value `root` depends on: a record `label | data | grad` per value and
    an ellipse per operation (children -> op -> result). Node ids follow the topological order,
    so the same graph gives the same text in every process."""
    if rankdir not in ("LR", "TB", "RL", "BT"):
        raise ValueError(f"rankdir must be one of LR, TB, RL, BT; got {rankdir!r}")
    topo = root.topological_order()
    ids = {v: f"v{i}" for i, v in enumerate(topo)}
    lines = ["digraph G {", f"  rankdir={rankdir};", '  node [fontname="Helvetica"];']
    for v in topo:
        n = ids[v]
        text = f"{_record(v.label)} | data {_num(v.data)} | grad {_num(v.grad)}"
        lines.append(f'  {n} [shape=record, label="{{ {text} }}"];')
        if v._op:
            lines.append(f'  {n}_op [shape=ellipse, label="{_quoted(v._op)}"];')
            lines.append(f"  {n}_op -> {n};")
            lines.extend(f"  {ids[c]} -> {n}_op;" for c in v._prev)
    lines.append("}")
    return "\n".join(lines) + "\n"


def sample_graph(model: MLP, x: Sequence[float], names: Sequence[str] | None = None) -> Value:
    """The graph of one input row through `model`, unfused-by-row as `model(x)` builds it, with
    every parameter labelled by its name and every input by `names` (default x0, x1, ...), after
    backward() from the (first) output. Gives the model's parameters their labels."""
    names = names or [f"x{i}" for i in range(len(x))]
    for name, p in model.named_parameters():
        p.label = name
    out = model([Value(v, label=n) for v, n in zip(x, names, strict=True)])
    root = out[0] if isinstance(out, list) else out
    root.backward()
    return root


def graphviz_available() -> bool:
    """Whether the Graphviz `dot` program is on PATH."""
    return shutil.which("dot") is not None


def render(dot_source: str, path: str | Path) -> Path:
    """Write `dot_source` as an image; the format comes from the suffix (.svg, .png or .pdf)."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower()
    if fmt not in FORMATS:
        raise ValueError(f"{path}: cannot render to {path.suffix!r}; use one of .svg, .png, .pdf")
    dot = shutil.which("dot")
    if dot is None:
        raise RuntimeError(
            "Graphviz `dot` is not on PATH; install Graphviz (apt-get install graphviz, brew "
            "install graphviz) or save the DOT text from draw_dot() and render it elsewhere"
        )
    done = subprocess.run(
        [dot, f"-T{fmt}", "-o", str(path)], input=dot_source, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"{path}: dot failed ({done.returncode}): {done.stderr.strip()}")
    return path
