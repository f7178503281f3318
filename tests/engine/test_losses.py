from __future__ import annotations

import math

import pytest

from engine.gradcheck import gradcheck
from engine.losses import bce_with_logits, cross_entropy, hinge_loss, l2_penalty, mse_loss
from engine.value import Value, vsum


def values(*xs: float) -> list[Value]:
    return [Value(x) for x in xs]


def grads(vs: list[Value]) -> list[float]:
    return [v.grad for v in vs]


def test_hinge_by_hand():
    s = values(2.0, 0.5, -0.3, -2.0)
    loss = hinge_loss(s, [1, 1, -1, 1])  # margins 1 - y s: -1, 0.5, 0.7, 3
    loss.backward()
    assert loss.data == pytest.approx((0.5 + 0.7 + 3.0) / 4, rel=1e-15)
    assert grads(s) == [0.0, -0.25, 0.25, -0.25]


def test_hinge_equals_micrograds_unfused_form():
    s, y = values(0.3, -1.2, 0.9, 2.5, -0.1), [1, -1, -1, 1, 1]
    fused = hinge_loss(s, y)
    fused.backward()
    got = grads(s)
    for v in s:
        v.grad = 0.0
    graph = vsum([(1 + -yi * si).relu() for si, yi in zip(s, y, strict=True)]) * (1.0 / len(s))
    graph.backward()
    assert fused.data == pytest.approx(graph.data, rel=1e-15)
    assert got == pytest.approx(grads(s), rel=1e-15)


def test_bce_by_hand():
    z = values(0.0, 2.0, -1.0)
    loss = bce_with_logits(z, [1, 0, 1])
    loss.backward()
    expected = (math.log(2) + math.log(1 + math.e**2) + math.log(1 + math.e**-1) + 1) / 3
    assert loss.data == pytest.approx(expected, rel=1e-14)
    sig = [1 / (1 + math.exp(-v.data)) for v in z]
    assert grads(z) == pytest.approx([(sig[0] - 1) / 3, sig[1] / 3, (sig[2] - 1) / 3], rel=1e-14)


def test_bce_is_stable_at_huge_logits():
    right = values(1000.0, -1000.0)
    ok = bce_with_logits(right, [1, 0])
    ok.backward()
    assert ok.data == 0.0 and grads(right) == [0.0, 0.0]
    wrong = values(1000.0, -1000.0)
    bad = bce_with_logits(wrong, [0, 1])
    bad.backward()
    assert bad.data == 1000.0 and grads(wrong) == [0.5, -0.5]


def test_mse_by_hand():
    p = values(1.0, 2.0)
    loss = mse_loss(p, [0.0, 4.0])
    loss.backward()
    assert loss.data == 2.5 and grads(p) == [1.0, -2.0]


def test_cross_entropy_by_hand():
    rows = [values(1.0, 2.0, 3.0), values(0.0, 0.0, 0.0)]
    loss = cross_entropy(rows, [2, 1])
    loss.backward()
    lse = math.log(math.e + math.e**2 + math.e**3)
    assert loss.data == pytest.approx((lse - 3 + math.log(3)) / 2, rel=1e-14)
    soft = [math.exp(x - lse) for x in (1.0, 2.0, 3.0)]
    assert grads(rows[0]) == pytest.approx([soft[0] / 2, soft[1] / 2, (soft[2] - 1) / 2])
    assert grads(rows[1]) == pytest.approx([1 / 6, 1 / 6 - 1 / 2, 1 / 6])


def test_cross_entropy_is_stable_at_huge_logits():
    row = values(1000.0, 0.0, -1000.0)
    assert cross_entropy([row], [0]).data == 0.0
    loss = cross_entropy([row], [2])
    loss.backward()
    assert loss.data == 2000.0 and grads(row) == [1.0, 0.0, -1.0]


def test_cross_entropy_with_two_classes_is_bce_of_the_logit_difference():
    a, b = values(0.7, -0.4), values(-0.3, 1.1)
    ce = cross_entropy([[a[0], b[0]], [a[1], b[1]]], [1, 0])
    bce = bce_with_logits([b[0] - a[0], b[1] - a[1]], [1, 0])
    assert ce.data == pytest.approx(bce.data, rel=1e-14)


def test_l2_penalty_by_hand():
    p = values(1.0, -2.0)
    loss = l2_penalty(p, 0.1)
    loss.backward()
    assert loss.data == pytest.approx(0.5) and grads(p) == pytest.approx([0.2, -0.4])


LOSSES = {
    "hinge": (hinge_loss, [1, -1, 1, -1]),
    "bce": (bce_with_logits, [1, 0, 0, 1]),
    "mse": (mse_loss, [0.5, -1.0, 2.0, 0.0]),
    "l2": (l2_penalty, 0.3),
}


@pytest.mark.parametrize("name", LOSSES)
def test_loss_gradients_match_finite_differences(name):
    fn, target = LOSSES[name]
    xs = [Value(x, label=f"x{i}") for i, x in enumerate((0.4, -0.25, 1.7, 0.9))]
    report = gradcheck(lambda: fn(xs, target), xs)
    assert report.max_rel_error < 1e-7, str(report)


def test_cross_entropy_gradients_match_finite_differences():
    rows = [values(0.2, -1.0, 0.7), values(1.5, 1.4, -2.0)]
    report = gradcheck(lambda: cross_entropy(rows, [1, 2]), [v for r in rows for v in r])
    assert report.max_rel_error < 1e-7, str(report)


def test_bad_inputs_are_rejected_with_the_fix():
    s = values(0.1, 0.2)
    with pytest.raises(ValueError, match="2 and 3"):
        mse_loss(s, [0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="0 and 0"):
        hinge_loss([], [])
    with pytest.raises(ValueError, match=r"-1 or \+1.*2\*y - 1"):
        hinge_loss(s, [0, 1])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        bce_with_logits(s, [1, -1])
    with pytest.raises(ValueError, match=r"0\.\.1"):
        cross_entropy([s], [2])


@pytest.mark.parametrize(
    "make",
    [
        lambda: l2_penalty([Value(1e200), Value(1e200)], 1.0),
        lambda: mse_loss([Value(1e200), Value(-1e200)], [0.0, 0.0]),
        lambda: vsum([Value(1e308), Value(1e308)]),
    ],
)
def test_overflowing_sums_give_inf_not_an_exception(make):
    assert make().data == math.inf
