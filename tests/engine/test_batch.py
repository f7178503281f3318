from __future__ import annotations

import pickle
import random

import pytest

from engine.batch import forward_batch
from engine.losses import cross_entropy, hinge_loss
from engine.nn import ACTIVATIONS, MLP
from engine.value import Value, linear, vsum


def rows(n: int, d: int, seed: int = 0) -> list[list[float]]:
    rng = random.Random(seed)
    return [[rng.uniform(-2, 2) for _ in range(d)] for _ in range(n)]


def objective(outputs: list[list[Value]]) -> Value:
    """A loss that weighs every output differently and is nonlinear in each."""
    terms = [
        o * o * (0.5 + k) + o * (i - 1.5)
        for i, row in enumerate(outputs)
        for k, o in enumerate(row)
    ]
    return vsum(terms)


def grads_of(model: MLP, loss: Value) -> list[float]:
    model.zero_grad()
    loss.backward()
    return [p.grad for p in model.parameters()]


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("nouts", [[4, 1], [5, 3, 3]])
def test_forward_batch_matches_the_row_by_row_graph(activation, nouts):
    model = MLP(3, nouts, activation=activation, rng=random.Random(len(nouts)))
    X = rows(7, 3)
    by_row = [model(x) for x in X]
    by_row = [o if isinstance(o, list) else [o] for o in by_row]
    fused = forward_batch(model, X)
    assert [len(r) for r in fused] == [len(r) for r in by_row] == [nouts[-1]] * 7
    assert [v.data for r in fused for v in r] == pytest.approx(
        [v.data for r in by_row for v in r], rel=1e-12, abs=1e-12
    )
    expected = grads_of(model, objective(by_row))
    got = grads_of(model, objective(fused))
    assert any(expected)
    assert got == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_forward_batch_feeds_the_losses_like_the_graph_does():
    model = MLP(2, [6, 6, 3], activation="tanh", rng=random.Random(3))
    X, y = rows(9, 2, seed=1), [i % 3 for i in range(9)]
    expected = grads_of(model, cross_entropy([model(x) for x in X], y))
    assert grads_of(model, cross_entropy(forward_batch(model, X), y)) == pytest.approx(
        expected, rel=1e-12, abs=1e-12
    )
    binary = MLP(2, [6, 1], rng=random.Random(4))
    labels = [1 if i % 2 else -1 for i in range(9)]
    expected = grads_of(binary, hinge_loss([binary(x) for x in X], labels))
    got = grads_of(binary, hinge_loss([r[0] for r in forward_batch(binary, X)], labels))
    assert got == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_a_fused_graph_pickles_with_its_model():
    model = MLP(2, [3, 2], rng=random.Random(0))
    loss = cross_entropy(forward_batch(model, rows(5, 2)), [0, 1, 1, 0, 1])
    clone = pickle.loads(pickle.dumps(loss))
    expected = grads_of(model, loss)
    clone.backward()
    net = next(v for v in clone.topological_order() if v._op == "mlp")
    assert net._prev[0] is not model.parameters()[0]  # a copy of the model came along
    assert [p.grad for p in net._prev] == expected


def test_forward_batch_backward_twice_doubles_like_the_graph():
    model = MLP(2, [3, 1], rng=random.Random(0))
    loss = objective(forward_batch(model, rows(4, 2)))
    once = grads_of(model, loss)
    loss.backward()
    assert [p.grad for p in model.parameters()] == pytest.approx([2 * g for g in once])


def test_fused_linear_equals_the_chain_of_products_and_sums():
    rng = random.Random(5)
    w = [Value(rng.uniform(-1, 1)) for _ in range(6)]
    x = [Value(rng.uniform(-1, 1)) for _ in range(3)] + [0.25, -2.0, 1.5]
    b = Value(0.3)
    chain = b
    for wi, xi in zip(w, x, strict=True):
        chain = chain + wi * xi
    fused = linear(w, x, b)
    assert fused.data == pytest.approx(chain.data, rel=1e-12, abs=1e-12)
    leaves = [*w, *x[:3], b]
    (fused * fused).backward()
    got = [v.grad for v in leaves]
    for v in leaves:
        v.grad = 0.0
    (chain * chain).backward()
    assert got == pytest.approx([v.grad for v in leaves], rel=1e-12, abs=1e-12)
    assert len(fused._prev) == 6 + 3 + 1  # constants get no node
    with pytest.raises(ValueError, match="3 weights but 2 inputs"):
        linear(w[:3], x[:2])


def test_fused_sum_equals_the_chain_of_sums():
    vs = [Value(0.1 * i - 0.35) for i in range(8)]
    chain = Value(0.0)
    for v in vs + vs[:2]:
        chain = chain + v
    fused = vsum(vs + vs[:2])
    assert fused.data == pytest.approx(chain.data, rel=1e-12, abs=1e-12)
    fused.tanh().backward()
    got = [v.grad for v in vs]
    for v in vs:
        v.grad = 0.0
    chain.tanh().backward()
    assert got == pytest.approx([v.grad for v in vs], rel=1e-12, abs=1e-12)
    assert got[0] == pytest.approx(2 * got[5])
