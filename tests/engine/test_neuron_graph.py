"""engine.neuron: one neuron's unfused graph, checked by hand, against the fused neuron, and by
finite differences."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.neuron import layer_input, neuron_graph
from engine.nn import ACTIVATIONS, MLP, Neuron
from engine.value import sigmoid

# act(n) and act'(n), written out independently of engine.value
ACT = {
    "relu": (lambda n: max(n, 0.0), lambda n: 1.0 if n > 0 else 0.0),
    "tanh": (math.tanh, lambda n: 1.0 - math.tanh(n) ** 2),
    "sigmoid": (sigmoid, lambda n: sigmoid(n) * (1.0 - sigmoid(n))),
    "linear": (lambda n: n, lambda n: 1.0),
}


def _neuron(w, b, activation):
    neuron = Neuron(len(w), activation)
    for p, v in zip(neuron.w, w, strict=True):
        p.data = v
    neuron.b.data = b
    return neuron


def _by_label(root):
    values = root.topological_order()
    by = {v.label: v for v in values}
    assert len(by) == len(values), "labels are unique"
    return by


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_every_node_is_there_with_its_data_and_grad_by_hand(activation):
    w, b, x = [0.5, -2.0, 1.5], 0.25, [2.0, 0.5, -1.0]
    out = neuron_graph(_neuron(w, b, activation), x)
    by = _by_label(out)
    expected = {"x1", "x2", "x3", "w1", "w2", "w3", "b", "w1*x1", "w2*x2", "w3*x3", "w·x", "out"}
    assert set(by) == expected | ({"n"} if activation != "linear" else set())
    n = 0.5 * 2.0 - 2.0 * 0.5 + 1.5 * -1.0 + 0.25  # = -1.25
    act, slope = ACT[activation]
    assert out.data == pytest.approx(act(n)) and out.grad == 1.0
    assert by["w·x"].data == pytest.approx(n - b) and by["w·x"].grad == pytest.approx(slope(n))
    assert by["b"].data == b and by["b"].grad == pytest.approx(slope(n))
    for i, (wi, xi) in enumerate(zip(w, x, strict=True), 1):
        assert (by[f"w{i}"].data, by[f"x{i}"].data) == (wi, xi)
        assert by[f"w{i}*x{i}"].data == pytest.approx(wi * xi)
        assert by[f"w{i}*x{i}"].grad == pytest.approx(slope(n))
        assert by[f"w{i}"].grad == pytest.approx(xi * slope(n))  # d out / d w_i = x_i act'(n)
        assert by[f"x{i}"].grad == pytest.approx(wi * slope(n))
    if activation != "linear":
        assert by["n"].data == pytest.approx(n) and by["n"].grad == pytest.approx(slope(n))
        assert out._op in ("ReLU", "tanh", "sigmoid")


def test_the_ops_are_unfused():
    by = _by_label(neuron_graph(_neuron([1.0, 2.0], 0.5, "tanh"), [3.0, 4.0]))
    ops = [by[k]._op for k in ("w1*x1", "w2*x2", "w·x", "n", "out")]
    assert ops == ["*", "*", "sum", "+", "tanh"]
    assert by["w·x"]._prev == (by["w1*x1"], by["w2*x2"])


def test_the_neurons_own_parameters_are_left_alone():
    model = MLP(3, [4, 2], activation="tanh", rng=random.Random(0))
    for i, p in enumerate(model.parameters()):
        p.grad = 0.125 * i  # whatever an earlier step left there
    before = [(p.data, p.grad) for p in model.parameters()]
    neuron = model.layers[1].neurons[1]
    out = neuron_graph(neuron, layer_input(model, [0.3, -1.0, 2.0], 1), prefix="h")
    assert [(p.data, p.grad) for p in model.parameters()] == before
    leaves = {id(v) for v in out.topological_order()}
    assert not leaves & {id(p) for p in model.parameters()}
    assert {"h1", "h2", "h3", "h4"} <= set(_by_label(out))


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_same_value_and_gradients_as_the_fused_neuron(activation):
    rng = random.Random(3)
    neuron = Neuron(5, activation, rng)
    neuron.b.data = 0.3
    x = [rng.uniform(-2, 2) for _ in range(5)]
    by = _by_label(neuron_graph(neuron, x))
    fused = neuron(x)
    fused.backward()
    assert by["out"].data == pytest.approx(fused.data, rel=1e-12, abs=1e-15)
    for i, w in enumerate(neuron.w, 1):
        assert by[f"w{i}"].grad == pytest.approx(w.grad, rel=1e-12, abs=1e-15)
    assert by["b"].grad == pytest.approx(neuron.b.grad)


def test_layer_input_is_the_row_then_the_previous_layers_outputs():
    model = MLP(2, [3, 3, 1], rng=random.Random(1))
    x = [0.5, -0.25]
    assert layer_input(model, x, 0) == x
    h1 = [n(x).data for n in model.layers[0].neurons]
    assert layer_input(model, x, 1) == h1
    assert layer_input(model, x, 2) == [n(h1).data for n in model.layers[1].neurons]


def test_a_wrong_length_input_is_refused():
    with pytest.raises(ValueError, match="3 weights, x has 2"):
        neuron_graph(Neuron(3), [1.0, 2.0])


small = st.floats(-3, 3, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(small, small), min_size=1, max_size=6),
    small,
    st.sampled_from(["tanh", "sigmoid", "linear"]),
)
def test_weight_gradients_match_finite_differences(wx, b, activation):
    w, x = [p[0] for p in wx], [p[1] for p in wx]
    by = _by_label(neuron_graph(_neuron(w, b, activation), x))
    act = ACT[activation][0]
    h = 1e-6
    for i in range(len(w)):
        up = act(math.fsum([*(wj * xj for wj, xj in zip(w, x, strict=True)), h * x[i], b]))
        down = act(math.fsum([*(wj * xj for wj, xj in zip(w, x, strict=True)), -h * x[i], b]))
        assert by[f"w{i + 1}"].grad == pytest.approx((up - down) / (2 * h), abs=1e-6)
