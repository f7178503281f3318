from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from engine.graph import draw_dot, graphviz_available, render
from engine.value import Value
from tests.support import ROOT


def neuron() -> Value:
    x1, x2 = Value(2.0, label="x1"), Value(0.0, label="x2")
    w1, w2 = Value(-3.0, label="w1"), Value(1.0, label="w2")
    b = Value(6.8813735870195432, label="b")
    n = x1 * w1 + x2 * w2 + b
    n.label = "n"
    o = n.tanh()
    o.label = "o"
    o.backward()
    return o


def test_one_record_per_value_and_one_node_per_operation():
    o = neuron()
    dot = draw_dot(o)
    records = re.findall(r'(v\d+) \[shape=record, label="\{ (.*?) \}"\];', dot)
    ops = re.findall(r'(v\d+)_op \[shape=ellipse, label="(.*?)"\];', dot)
    assert len(records) == len(o.topological_order()) == 10
    assert sorted(op for _, op in ops) == ["*", "*", "+", "+", "tanh"]
    labels = {text.split(" | ")[0]: text for _, text in records}
    assert labels["o"] == "o | data 0.7071 | grad 1.0000"
    assert labels["x1"] == "x1 | data 2.0000 | grad -1.5000"
    assert labels["w2"] == "w2 | data 1.0000 | grad 0.0000"


def test_edges_run_child_to_op_to_result():
    a, b = Value(1.0, label="a"), Value(2.0, label="b")
    dot = draw_dot(a * b)
    assert dot.splitlines()[1] == "  rankdir=LR;"
    assert set(re.findall(r"^  (\S+ -> \S+);$", dot, re.M)) == {
        "v0 -> v2_op",
        "v1 -> v2_op",
        "v2_op -> v2",
    }
    assert "rankdir=TB;" in draw_dot(a * b, rankdir="TB")
    with pytest.raises(ValueError, match="rankdir"):
        draw_dot(a, rankdir="sideways")


def test_labels_are_escaped():
    v = Value(1.0, label='a|b {c} <d> "e" \\f')
    line = draw_dot(v).splitlines()[3]
    assert line == (
        r'  v0 [shape=record, label="{ a\|b \{c\} \<d\> \"e\" \\f | data 1.0000 | grad 0.0000 }"];'
    )


def test_tiny_and_huge_numbers_stay_readable():
    v = Value(1.5e-7)
    v.grad = 2.5e9
    assert "data 1.500e-07 | grad 2.500e+09" in draw_dot(v)


PROGRAM = """
from engine.graph import draw_dot
from engine.value import Value
a, b = Value(-4.0, label="a"), Value(2.0, label="b")
g = ((a * b + b**3).relu() + (a - b).tanh() * a).exp()
g.backward()
print(draw_dot(g), end="")
"""


def test_output_is_identical_in_every_process():
    outs = {
        subprocess.run(
            [sys.executable, "-c", PROGRAM],
            cwd=ROOT,
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("0", "1", "77")
    }
    assert len(outs) == 1 and outs.pop().startswith("digraph G {")


def test_render_refuses_unknown_formats(tmp_path):
    with pytest.raises(ValueError, match="use one of"):
        render("digraph G {}", tmp_path / "graph.txt")


def test_render_without_graphviz_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH with no `dot` on it
    assert not graphviz_available()
    with pytest.raises(RuntimeError, match="install Graphviz"):
        render("digraph G {}", tmp_path / "graph.svg")
    assert not (tmp_path / "graph.svg").exists()


@pytest.mark.skipif(not graphviz_available(), reason="Graphviz `dot` is not installed")
def test_render_writes_svg_and_png(tmp_path):
    dot = draw_dot(neuron())
    svg = render(dot, tmp_path / "graph.svg")
    assert svg.read_text().lstrip().startswith("<?xml") and "tanh" in svg.read_text()
    png = render(dot, tmp_path / "graph.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(RuntimeError, match="dot failed"):
        render("digraph G { this is not dot", tmp_path / "bad.svg")


@pytest.mark.skipif(not graphviz_available(), reason="Graphviz `dot` is not installed")
def test_escaped_labels_render_verbatim(tmp_path):
    svg = render(draw_dot(Value(1.0, label="a|b {c} <d>")), tmp_path / "graph.svg").read_text()
    assert ">a|b {c} &lt;d&gt;</text>" in svg
