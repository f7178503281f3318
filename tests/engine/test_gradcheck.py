from __future__ import annotations

import math
import random

import pytest

from engine.gradcheck import gradcheck
from engine.losses import l2_penalty, mse_loss
from engine.nn import MLP
from engine.value import Value


def bad_sin(x: Value) -> Value:
    """sin with a deliberately wrong backward rule (sin instead of cos)."""
    return Value(math.sin(x.data), (x,), "sin", _local=(math.sin(x.data),))


def test_a_correct_function_passes():
    a, b = Value(0.7, label="a"), Value(-1.3, label="b")
    report = gradcheck(lambda: (a * b).tanh() + (a / b).exp() + (a**2 + 1).log(), [a, b])
    assert report.max_rel_error < 1e-8 and report.ok()
    assert [r.name for r in report.rows] == ["a", "b"]
    assert report.rows[0].analytic == pytest.approx(report.rows[0].numeric, rel=1e-8)


def test_a_wrong_backward_rule_is_caught_and_named():
    x, y = Value(0.4), Value(1.1)
    report = gradcheck(lambda: bad_sin(x) * y, [y, x])
    assert not report.ok(1e-3) and report.max_rel_error > 0.1
    assert (report.worst, report.worst_name) == (1, "params[1]")
    worst = report.rows[report.worst]
    assert worst.numeric == pytest.approx(math.cos(0.4) * 1.1, rel=1e-7)
    assert worst.analytic == pytest.approx(math.sin(0.4) * 1.1, rel=1e-12)
    assert worst.rel_error == report.max_rel_error > report.rows[0].rel_error
    assert "max rel error" in str(report) and "params[1]" in str(report)


def test_a_model_with_named_parameters():
    model = MLP(2, [4, 1], activation="tanh", rng=random.Random(0))
    X, y = [[0.5, -1.0], [1.5, 0.2], [-0.3, 0.8]], [1.0, -1.0, 0.5]

    def loss() -> Value:
        return mse_loss([model(x) for x in X], y) + l2_penalty(model.parameters(), 1e-2)

    report = gradcheck(loss, model.named_parameters())
    assert len(report.rows) == 4 * 3 + 5
    assert report.rows[-1].name == "layers.1.neurons.0.b"
    assert report.max_rel_error < 1e-6, str(report)


def test_tiny_gradients_pass_on_absolute_error_but_wrong_ones_do_not():
    x = Value(1.0)
    report = gradcheck(lambda: x * 1e-6 + 1.0, [x])  # f ~ 1: n carries ~1e-10 of rounding
    assert report.max_rel_error > 1e-6 and report.rows[0].abs_error < 1e-8
    assert report.ok() and not report.ok(atol=0.0)
    y = Value(0.4)
    assert not gradcheck(lambda: bad_sin(y) * 1e-3 + 1.0, [y]).ok()


def test_parameters_are_restored_exactly_even_when_f_raises():
    p = Value(0.1 + 0.2)  # x + eps - eps would not give these bits back
    p.grad = 7.0
    data, grad = p.data, p.grad
    report = gradcheck(lambda: p * p, [p], eps=1e-3)
    assert (p.data, p.grad) == (data, grad)
    assert report.rows[0].analytic == pytest.approx(2 * data)
    calls = []

    def flaky() -> Value:
        calls.append(p.data)
        if len(calls) > 1:
            raise RuntimeError("boom")
        return p.exp()

    with pytest.raises(RuntimeError, match="boom"):
        gradcheck(flaky, [p])
    assert calls[1] != data and (p.data, p.grad) == (data, grad)


def test_an_exact_zero_gradient_counts_as_agreement():
    dead = Value(-1.0)
    report = gradcheck(lambda: dead.relu() * 3.0, [dead])
    assert (report.rows[0].analytic, report.rows[0].numeric, report.max_rel_error) == (0, 0, 0)


def test_non_finite_gradients_fail():
    x = Value(1000.0)
    report = gradcheck(lambda: x.exp(), [x])  # inf from autograd, inf - inf from differences
    assert report.max_rel_error == math.inf and not report.ok()


def test_no_parameters_means_nothing_to_disagree_about():
    report = gradcheck(lambda: Value(1.0) * 2.0, [])
    assert (report.rows, report.worst, report.worst_name, report.max_rel_error) == (
        (),
        None,
        None,
        0,
    )
