from __future__ import annotations

import math
import pickle

import pytest

from engine.optim import SGD, Adam, make_schedule
from engine.value import Value


def param(data: float, grad: float) -> Value:
    p = Value(data)
    p.grad = grad
    return p


def test_plain_sgd_step():
    p, q = param(1.0, 0.5), param(-2.0, -1.0)
    SGD([p, q], lr=0.1).step()
    assert (p.data, q.data) == (1.0 - 0.1 * 0.5, -2.0 + 0.1 * 1.0)


def test_sgd_momentum_and_weight_decay_by_hand():
    p = param(1.0, 0.5)
    opt = SGD([p], lr=0.1, momentum=0.9, weight_decay=0.01)
    opt.step()  # g = 0.5 + 0.01 * 1.0 = 0.51; v = 0.51
    assert p.data == pytest.approx(1.0 - 0.1 * 0.51, rel=1e-15)
    p.grad = 0.2
    opt.step()  # g = 0.2 + 0.01 * 0.949 = 0.20949; v = 0.9 * 0.51 + 0.20949 = 0.66849
    assert p.data == pytest.approx(0.949 - 0.1 * 0.66849, rel=1e-15)


def test_adam_steps_by_hand():
    p = param(1.0, 0.5)
    opt = Adam([p], lr=0.01)
    opt.step()  # bias correction makes the first step exactly lr * sign(g) (up to eps)
    assert p.data == pytest.approx(1.0 - 0.01 * 0.5 / (0.5 + 1e-8), rel=1e-15)
    p.grad = -0.25
    opt.step()
    m = 0.9 * 0.05 + 0.1 * -0.25
    v = 0.999 * 0.00025 + 0.001 * 0.0625
    step = 0.01 * (m / (1 - 0.9**2)) / (math.sqrt(v / (1 - 0.999**2)) + 1e-8)
    assert p.data == pytest.approx(1.0 - 0.01 * 0.5 / (0.5 + 1e-8) - step, rel=1e-15)
    assert opt.t == 2


def test_adam_weight_decay_is_added_to_the_gradient():
    p, q = param(2.0, 0.3), param(2.0, 0.3 + 0.1 * 2.0)
    Adam([p], lr=0.01, betas=(0.8, 0.99), weight_decay=0.1).step()
    Adam([q], lr=0.01, betas=(0.8, 0.99)).step()
    assert p.data == q.data


def test_lr_is_mutable_and_zero_grad_clears():
    p = param(1.0, 1.0)
    opt = SGD([p], lr=0.5)
    opt.lr = 0.25
    opt.step()
    assert p.data == 0.75
    opt.zero_grad()
    assert p.grad == 0.0
    opt.step()
    assert p.data == 0.75


def test_optimizers_minimise_a_quadratic():
    for opt_cls, kwargs in ((SGD, {"lr": 0.1, "momentum": 0.5}), (Adam, {"lr": 0.1})):
        x = Value(3.0)
        opt = opt_cls([x], **kwargs)
        for _ in range(200):
            opt.zero_grad()
            ((x - 1.0) ** 2).backward()
            opt.step()
        assert x.data == pytest.approx(1.0, abs=1e-3), opt_cls


def test_bad_hyperparameters_are_rejected():
    with pytest.raises(ValueError, match="lr"):
        SGD([], lr=-1.0)
    with pytest.raises(ValueError, match="momentum"):
        SGD([], lr=0.1, momentum=1.0)
    with pytest.raises(ValueError, match="betas"):
        Adam([], lr=0.1, betas=(0.9, 1.0))


def test_schedules():
    const = make_schedule("constant", 0.5, 100)
    assert [const(s) for s in (0, 50, 99)] == [0.5, 0.5, 0.5]
    lin = make_schedule("linear", 1.0, 100)
    assert [lin(s) for s in (0, 50, 99)] == pytest.approx([1.0, 0.55, 1.0 - 0.9 * 0.99])
    cos = make_schedule("cosine", 1.0, 100)
    assert [cos(s) for s in (0, 50, 100)] == pytest.approx([1.0, 0.5, 0.0], abs=1e-15)
    assert cos(25) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))
    step = make_schedule("step", 1.0, 100, step_size=30, gamma=0.5)
    assert [step(s) for s in (0, 29, 30, 59, 60, 99)] == [1.0, 1.0, 0.5, 0.5, 0.25, 0.125]


def test_schedules_pickle_and_reject_unknown_names():
    lin = pickle.loads(pickle.dumps(make_schedule("linear", 1.0, 10)))
    assert lin(5) == 0.55
    with pytest.raises(ValueError, match="choose one of"):
        make_schedule("exponential", 1.0, 10)
    with pytest.raises(ValueError, match="steps"):
        make_schedule("linear", 1.0, 0)


@pytest.mark.parametrize("make", [lambda ps: SGD(ps, 0.1, momentum=0.9), lambda ps: Adam(ps, 0.1)])
def test_optimizer_state_continues_exactly(make):
    def run(opt, ps, grads):
        for g in grads:
            for p, x in zip(ps, g, strict=True):
                p.grad = x
            opt.step()

    grads = [(0.5, -1.0), (0.25, 0.3), (-0.7, 0.1), (0.2, 0.2)]
    ps = [Value(1.0), Value(-2.0)]
    straight = make(ps)
    run(straight, ps, grads)
    qs = [Value(1.0), Value(-2.0)]
    first = make(qs)
    run(first, qs, grads[:2])
    rs = [Value(q.data) for q in qs]
    second = make(rs)
    second.load_state(pickle.loads(pickle.dumps(first.state())))
    run(second, rs, grads[2:])
    assert [r.data for r in rs] == [p.data for p in ps]
    assert second.state() == straight.state()
