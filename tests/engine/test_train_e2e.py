"""micrograd's moons demo, end to end: MLP(2, [16, 16, 1]), hinge + L2, SGD with linear decay."""

from __future__ import annotations

import math
import random

import pytest

from engine.batch import forward_batch
from engine.losses import hinge_loss, l2_penalty
from engine.nn import MLP
from engine.optim import SGD, make_schedule


def moons(n: int, noise: float, rng: random.Random) -> tuple[list[list[float]], list[int]]:
    """Two interleaving half circles, labels -1 (upper) and +1 (lower), Gaussian noise."""
    half = n // 2
    X, y = [], []
    for i in range(n):
        upper = i < half
        t = math.pi * (i if upper else i - half) / ((half if upper else n - half) - 1)
        x0, x1 = (math.cos(t), math.sin(t)) if upper else (1 - math.cos(t), 0.5 - math.sin(t))
        X.append([x0 + rng.gauss(0, noise), x1 + rng.gauss(0, noise)])
        y.append(-1 if upper else 1)
    return X, y


def train(seed: int, steps: int = 100) -> tuple[MLP, list[float], float]:
    X, y = moons(100, 0.1, random.Random(seed))
    model = MLP(2, [16, 16, 1], rng=random.Random(seed))
    opt = SGD(model.parameters(), lr=1.0)
    schedule = make_schedule("linear", 1.0, steps)
    losses = []
    for step in range(steps):
        scores = [row[0] for row in forward_batch(model, X)]
        loss = hinge_loss(scores, y) + l2_penalty(model.parameters(), 1e-4)
        opt.zero_grad()
        loss.backward()
        opt.lr = schedule(step)
        opt.step()
        losses.append(loss.data)
    scores = [row[0].data for row in forward_batch(model, X)]
    accuracy = sum((s > 0) == (yi > 0) for s, yi in zip(scores, y, strict=True)) / len(y)
    return model, losses, accuracy


@pytest.mark.parametrize("seed", [1337, 7])
def test_mlp_separates_two_moons(seed):
    model, losses, accuracy = train(seed)
    assert accuracy >= 0.97, (accuracy, losses[-5:])
    assert losses[-1] < 0.1 * losses[0]


def test_training_is_reproducible_to_the_bit():
    a, losses_a, _ = train(3, steps=5)
    b, losses_b, _ = train(3, steps=5)
    assert losses_a == losses_b and a.state_dict() == b.state_dict()
