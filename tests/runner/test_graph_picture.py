"""runner.training.graph_picture and `mgrun graph --neuron`: the one-neuron picture, read back."""

from __future__ import annotations

import io
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from engine.neuron import neuron_graph
from engine.nn import MLP, Neuron
from engine.value import Value
from runner.cli import app
from runner.errors import ConfigError
from runner.training import graph_picture
from runner.training.graph_picture import neuron_png, parse_neuron, value_graph_png

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def _neuron(nin: int, activation: str = "tanh") -> tuple[Neuron, list[float]]:
    rng = random.Random(nin)
    return Neuron(nin, activation, rng), [rng.uniform(-1, 1) for _ in range(nin)]


def _boxes(fig) -> dict[str, str]:
    """label -> its box's text, from the figure's monospaced text artists."""
    texts = [t.get_text() for t in fig.axes[0].texts if t.get_fontfamily() == ["monospace"]]
    return {t.split("|")[0].strip(): t for t in texts}


def _ops(fig) -> list[str]:
    return [t.get_text() for t in fig.axes[0].texts if t.get_bbox_patch() is not None]


def test_a_png_at_least_600_px_wide_even_for_one_input():
    neuron, x = _neuron(1)
    png = value_graph_png(neuron_graph(neuron, x), title="one input")
    width, height = Image.open(io.BytesIO(png)).size
    assert width >= 600 and height > 100


def test_every_value_has_a_box_reading_label_data_and_grad():
    neuron = Neuron(2, "relu")
    neuron.w[0].data, neuron.w[1].data, neuron.b.data = 2.0, -1.0, 0.5
    fig = graph_picture._graph_figure(neuron_graph(neuron, [1.5, 0.25]))
    boxes = _boxes(fig)
    assert set(boxes) == {"x1", "x2", "w1", "w2", "b", "w1*x1", "w2*x2", "w·x", "n", "out"}
    assert boxes["w1"].split() == ["w1", "|", "data", "2.0000", "|", "grad", "1.5000"]
    assert boxes["n"].split()[3::3] == ["3.2500", "1.0000"]  # 3 - 0.25 + 0.5; relu' = 1
    assert boxes["x2"].split()[3::3] == ["0.2500", "-1.0000"]
    assert sorted(_ops(fig)) == ["*", "*", "+", "ReLU", "sum"]


def test_columns_run_from_the_inputs_to_the_output():
    neuron, x = _neuron(3)
    fig = graph_picture._graph_figure(neuron_graph(neuron, x))
    left = {
        t.get_text().split("|")[0].strip(): t.get_position()[0]
        for t in fig.axes[0].texts
        if t.get_fontfamily() == ["monospace"]
    }
    assert left["x1"] == left["w3"] < left["w1*x1"] < left["w·x"] == left["b"] < left["n"]
    assert left["n"] < left["out"]


def test_a_wide_neuron_shows_its_largest_terms_and_sums_up_the_rest():
    neuron, x = _neuron(64, "sigmoid")
    root = neuron_graph(neuron, x)
    products = [v for v in root.topological_order() if v._op == "*"]
    biggest = sorted(products, key=lambda p: -abs(p.data))[: graph_picture.TOP]
    boxes = _boxes(graph_picture._graph_figure(root))
    shown = {label for label in boxes if "*" in label}
    assert shown == {p.label for p in biggest}
    rest = sum(p.data for p in products if p not in biggest)
    summary = boxes[f"Σ {64 - graph_picture.TOP} more"]
    assert float(summary.split()[5]) == pytest.approx(rest, abs=1e-4)
    assert len(boxes) == 2 * graph_picture.TOP + graph_picture.TOP + 1 + 4  # + w·x, b, n, out


def test_sixteen_inputs_are_all_drawn():
    neuron, x = _neuron(16)
    boxes = _boxes(graph_picture._graph_figure(neuron_graph(neuron, x)))
    assert {f"w{i}*x{i}" for i in range(1, 17)} <= set(boxes)


def test_any_small_graph_draws_and_a_huge_one_is_refused():
    a, b = Value(2.0, label="a"), Value(-3.0, label="b")
    c = a * b + a  # a is used twice
    c.label = "c"
    c.backward()
    assert value_graph_png(c)[:8] == b"\x89PNG\r\n\x1a\n"
    chain = Value(1.0)
    for _ in range(400):
        chain = chain * 1.0
    with pytest.raises(ValueError, match="too many values"):
        value_graph_png(chain)


def test_hidden_layers_read_h_and_the_title_names_the_neuron(monkeypatch):
    model = MLP(2, [3, 1], rng=random.Random(0))
    assert Image.open(io.BytesIO(neuron_png(model, [0.5, -0.5], 0, 2))).size[0] >= 600
    drawn = []
    monkeypatch.setattr(graph_picture, "value_graph_png", lambda *a: drawn.append(a) or b"")
    neuron_png(model, [0.5, -0.5], 1, 0, "training row 0")
    (root, title), h = drawn[0], [n([0.5, -0.5]).data for n in model.layers[0].neurons]
    assert title == "neuron 1.0 (linear) of the 2-3-1 model on training row 0"
    leaves = {v.label: v.data for v in root.topological_order() if not v._prev}
    assert [leaves[f"h{i}"] for i in (1, 2, 3)] == h


def test_parse_neuron_checks_against_the_model():
    model = MLP(2, [16, 16, 1], rng=random.Random(0))
    assert parse_neuron("0.3", model) == (0, 3)
    assert parse_neuron("2.0", model) == (2, 0)
    with pytest.raises(ConfigError, match=r"--neuron 3\.0: layer must be 0\.\.2"):
        parse_neuron("3.0", model)
    with pytest.raises(ConfigError, match=r"--neuron 2\.1: layer 2 has neurons 0\.\.0"):
        parse_neuron("2.1", model)
    for bad in ("3", "a.b", "0.1.2", ""):
        with pytest.raises(ConfigError, match="expected LAYER.INDEX"):
            parse_neuron(bad, model)


def test_mgrun_graph_neuron_writes_a_png_without_graphviz(tmp_path, monkeypatch):
    monkeypatch.setattr("runner.commands.diagnose.graphviz_available", lambda: False)
    out = tmp_path / "neuron.png"
    result = CliRunner().invoke(
        app, ["graph", str(CONFIGS / "moons.yaml"), "-o", str(out), "--neuron", "1.3"]
    )
    assert result.exit_code == 0, result.output
    assert f"wrote {out} (neuron 1.3)" in result.output
    assert Image.open(out).size[0] >= 600


@pytest.mark.parametrize(
    ("neuron", "output", "message"),
    [
        ("5.0", "n.png", "--neuron 5.0: layer must be 0..2"),
        ("0.16", "n.png", "--neuron 0.16: layer 0 has neurons 0..15"),
        ("0.1", "n.svg", "--neuron draws a .png"),
    ],
)
def test_mgrun_graph_neuron_refuses_with_one_line_and_exit_2(tmp_path, neuron, output, message):
    out = tmp_path / output
    result = CliRunner().invoke(
        app, ["graph", str(CONFIGS / "moons.yaml"), "-o", str(out), "--neuron", neuron]
    )
    assert result.exit_code == 2
    assert message in result.output and len(result.output.strip().splitlines()) == 1
    assert not out.exists()


def test_drawing_never_imports_pyplot():
    code = (
        "import sys; from engine.nn import Neuron; from engine.neuron import neuron_graph; "
        "from runner.training.graph_picture import value_graph_png; "
        "value_graph_png(neuron_graph(Neuron(2), [1.0, 2.0])); "
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported'"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "MPLBACKEND")}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
