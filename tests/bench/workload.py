"""The workload: micrograd's moons demo, with the same data and weights for every engine."""

from __future__ import annotations

import random
from dataclasses import dataclass
from operator import mul

from engine.nn import MLP
from runner.datasets import make_moons


@dataclass(frozen=True)
class Workload:
    """MLP(2, [*hidden, 1]) relu on n two-moons points; hinge + L2, full batch, SGD, linear lr."""

    hidden: tuple[int, ...] = (16, 16)
    n: int = 100  # training points (all of them: the demo has no test split)
    noise: float = 0.1
    seed: int = 0  # data from random.Random(seed), weights from random.Random(seed + 1)
    steps: int = 100  # one training
    alpha: float = 1e-4  # L2 strength

    @property
    def sizes(self) -> list[int]:
        return [2, *self.hidden, 1]

    @property
    def macs(self) -> int:
        """Multiply-adds of one forward pass over the batch (the backward pass does about 2x)."""
        s = self.sizes
        return self.n * sum(a * b for a, b in zip(s, s[1:], strict=False))

    def lr(self, k: int) -> float:
        """The demo's schedule: 1.0 - 0.9 k / 100 (with 100 steps)."""
        return 1.0 - 0.9 * k / self.steps

    def data(self) -> tuple[list[tuple[float, ...]], list[int]]:
        """(X, y) with y in {-1, +1}, as in the demo."""
        X, y01 = make_moons(self.n, self.noise, random.Random(self.seed))
        return [tuple(r) for r in X], [2 * t - 1 for t in y01]

    def model(self) -> MLP:
        """Our MLP with the shared initial weights."""
        return MLP(2, [*self.hidden, 1], "relu", rng=random.Random(self.seed + 1))

    def initial_weights(self) -> list[list[list[float]]]:
        """Per layer, per neuron: [w_0, ..., w_nin-1, b]: the order of every engine's parameters."""
        return [
            [[p.data for p in (*n.w, n.b)] for n in layer.neurons] for layer in self.model().layers
        ]


def accuracy(weights: list[list[list[float]]], X: list[tuple[float, ...]], y: list[int]) -> float:
    """Share of points on the right side of 0, from plain weights (one judge for every engine)."""
    hits = 0
    for x, t in zip(X, y, strict=True):
        a = list(x)
        for li, layer in enumerate(weights):
            z = [sum(map(mul, n, a), 0.0) + n[-1] for n in layer]  # map stops before the bias
            a = z if li == len(weights) - 1 else [v if v > 0 else 0.0 for v in z]
        hits += (a[0] > 0) == (t > 0)
    return hits / len(y)
