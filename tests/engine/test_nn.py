from __future__ import annotations

import json
import math
import pickle
import random

import pytest

from engine.nn import ACTIVATIONS, MLP, Layer, Neuron
from engine.value import Value, sigmoid


def test_named_parameters_have_stable_dotted_names():
    model = MLP(2, [3, 1], rng=random.Random(0))
    names = [name for name, _ in model.named_parameters()]
    assert names[:4] == [
        "layers.0.neurons.0.w.0",
        "layers.0.neurons.0.w.1",
        "layers.0.neurons.0.b",
        "layers.0.neurons.1.w.0",
    ]
    assert names[-4:] == ["layers.1.neurons.0.w.0", "layers.1.neurons.0.w.1"] + [
        "layers.1.neurons.0.w.2",
        "layers.1.neurons.0.b",
    ]
    assert len(names) == len(set(names)) == 3 * 3 + 4
    assert [p for _, p in model.named_parameters()] == model.parameters()
    assert model.sizes == [2, 3, 1]


def test_state_dict_round_trips_through_json_exactly():
    src = MLP(3, [4, 2], activation="tanh", rng=random.Random(1))
    for p in src.parameters():
        p.data += 0.1 + 0.2  # values with long reprs
    dst = MLP(3, [4, 2], activation="tanh", rng=random.Random(2))
    dst.load_state_dict(json.loads(json.dumps(src.state_dict())))
    assert dst.state_dict() == src.state_dict()
    x = [0.3, -1.7, 2.2]
    assert [v.data for v in dst(x)] == [v.data for v in src(x)]


def test_load_state_dict_rejects_a_state_that_does_not_fit():
    model = MLP(2, [2, 1], rng=random.Random(0))
    state = model.state_dict()
    with pytest.raises(KeyError, match="missing.*layers.1.neurons.0.b"):
        model.load_state_dict({k: v for k, v in state.items() if k != "layers.1.neurons.0.b"})
    with pytest.raises(KeyError, match="unexpected.*layers.9"):
        model.load_state_dict({**state, "layers.9.neurons.0.b": 0.0})
    before = model.state_dict()
    bad = {k: 5.0 for k in state} | {"layers.1.neurons.0.b": "oops"}
    with pytest.raises(ValueError):
        model.load_state_dict(bad)
    assert model.state_dict() == before  # nothing half-loaded


def test_initialisation_comes_only_from_the_given_rng():
    global_state = random.getstate()
    a = MLP(2, [8, 8, 1], rng=random.Random(42)).state_dict()
    b = MLP(2, [8, 8, 1], rng=random.Random(42)).state_dict()
    c = MLP(2, [8, 8, 1], rng=random.Random(43)).state_dict()
    assert random.getstate() == global_state
    assert a == b and a != c
    weights = [v for k, v in a.items() if ".w." in k]
    biases = [v for k, v in a.items() if k.endswith(".b")]
    assert all(-1 <= w <= 1 for w in weights) and set(biases) == {0.0}


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_hidden_layers_use_the_activation_and_the_last_is_linear(activation):
    model = MLP(2, [3, 2], activation=activation, rng=random.Random(5))
    assert [n.activation for n in model.layers[0].neurons] == [activation] * 3
    assert [n.activation for n in model.layers[1].neurons] == ["linear"] * 2
    f = {"relu": lambda z: max(z, 0.0), "tanh": math.tanh, "sigmoid": sigmoid}.get(
        activation, lambda z: z
    )
    x = [0.5, -1.5]

    def affine(neuron, inputs):
        return sum(w.data * xi for w, xi in zip(neuron.w, inputs, strict=True)) + neuron.b.data

    hidden = [f(affine(n, x)) for n in model.layers[0].neurons]
    expected = [affine(n, hidden) for n in model.layers[1].neurons]
    assert [v.data for v in model(x)] == pytest.approx(expected, rel=1e-12)


def test_call_returns_a_value_for_one_output_and_a_list_otherwise():
    assert isinstance(MLP(2, [3, 1], rng=random.Random(0))([1.0, 2.0]), Value)
    out = MLP(2, [3, 4], rng=random.Random(0))([1.0, 2.0])
    assert isinstance(out, list) and len(out) == 4
    assert isinstance(Layer(2, 1, rng=random.Random(0))([1.0, 2.0]), Value)


def test_zero_grad_clears_every_parameter():
    model = MLP(2, [3, 1], rng=random.Random(0))
    model([Value(1.0), Value(-2.0)]).backward()
    assert any(p.grad for p in model.parameters())
    model.zero_grad()
    assert all(p.grad == 0.0 for p in model.parameters())


def test_bad_sizes_and_activations_are_rejected():
    for nin, nouts in ((2, []), (0, [1]), (2, [3, 0])):
        with pytest.raises(ValueError, match="MLP"):
            MLP(nin, nouts)
    with pytest.raises(ValueError, match="choose one of"):
        MLP(2, [1], activation="gelu")
    with pytest.raises(ValueError, match="choose one of"):
        Neuron(2, activation="softplus")


def test_model_pickles_and_computes_the_same_outputs():
    model = MLP(3, [5, 2], activation="sigmoid", rng=random.Random(9))
    clone = pickle.loads(pickle.dumps(model))
    x = [0.1, 0.2, -0.3]
    assert clone.state_dict() == model.state_dict()
    assert [v.data for v in clone(x)] == [v.data for v in model(x)]
    assert repr(clone) == repr(model)
    clone.parameters()[0].data += 1.0  # a real copy, not shared Values
    assert clone.state_dict() != model.state_dict()
