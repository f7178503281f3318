"""Optimizers that update Values in place from their `.grad`, and learning-rate schedules."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from engine.value import Value


class Optimizer:
    """Holds the parameters and a mutable learning rate `lr` (a schedule may set it each step)."""

    def __init__(self, params: Sequence[Value], lr: float, weight_decay: float = 0.0):
        if lr < 0 or weight_decay < 0:
            raise ValueError(f"lr and weight_decay must be >= 0, got {lr!r}, {weight_decay!r}")
        self.params = list(params)
        self.lr = lr
        self.weight_decay = weight_decay

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = 0.0

    def state(self) -> dict[str, Any]:
        """What the next step depends on besides the parameters: plain, JSON-exact data."""
        return {}

    def load_state(self, state: dict[str, Any]) -> None:
        """Continue from `state()` of an optimizer over the same parameters."""

    def _grads(self) -> list[float]:
        # weight decay as an L2 term added to the gradient: d/dp (wd/2 p^2) = wd p
        wd = self.weight_decay
        return [p.grad + wd * p.data for p in self.params] if wd else [p.grad for p in self.params]


class SGD(Optimizer):
    """v = momentum * v + g;  p -= lr * v   (g = grad + weight_decay * p; v starts at 0)."""

    def __init__(
        self,
        params: Sequence[Value],
        lr: float,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
    ):
        super().__init__(params, lr, weight_decay)
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
        self.momentum = momentum
        self.velocity = [0.0] * len(self.params)

    def state(self) -> dict[str, Any]:
        return {"velocity": list(self.velocity)}

    def load_state(self, state: dict[str, Any]) -> None:
        self.velocity = [float(x) for x in state["velocity"]]

    def step(self) -> None:
        mu, v = self.momentum, self.velocity
        for i, (p, g) in enumerate(zip(self.params, self._grads(), strict=True)):
            if mu:
                g = v[i] = mu * v[i] + g
            p.data -= self.lr * g


class Adam(Optimizer):
    """Adam with bias correction (Kingma & Ba); weight decay is L2 added to the gradient.

    m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;  t counts steps from 1;
    p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
    """

    def __init__(
        self,
        params: Sequence[Value],
        lr: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ):
        super().__init__(params, lr, weight_decay)
        if not (0 <= betas[0] < 1 and 0 <= betas[1] < 1) or eps <= 0:
            raise ValueError(f"Adam needs betas in [0, 1) and eps > 0, got {betas!r}, {eps!r}")
        self.betas, self.eps = (float(betas[0]), float(betas[1])), eps
        self.t = 0
        self.m = [0.0] * len(self.params)
        self.v = [0.0] * len(self.params)

    def state(self) -> dict[str, Any]:
        return {"t": self.t, "m": list(self.m), "v": list(self.v)}

    def load_state(self, state: dict[str, Any]) -> None:
        self.t = int(state["t"])
        self.m = [float(x) for x in state["m"]]
        self.v = [float(x) for x in state["v"]]

    def step(self) -> None:
        b1, b2 = self.betas
        self.t += 1
        c1, c2 = 1.0 - b1**self.t, 1.0 - b2**self.t
        m, v = self.m, self.v
        for i, (p, g) in enumerate(zip(self.params, self._grads(), strict=True)):
            m[i] = b1 * m[i] + (1.0 - b1) * g
            v[i] = b2 * v[i] + (1.0 - b2) * g * g
            p.data -= self.lr * (m[i] / c1) / (math.sqrt(v[i] / c2) + self.eps)


@dataclass(frozen=True)
class Schedule:
    """Learning rate as a function of the 0-based step; picklable, so it can travel with a trial."""

    name: str
    lr0: float
    steps: int
    step_size: int = 30
    gamma: float = 0.1

    def __call__(self, step: int) -> float:
        return SCHEDULES[self.name](self, step)


# name -> lr at a 0-based step; adding a schedule is one entry here plus its tests
SCHEDULES: dict[str, Callable[[Schedule, int], float]] = {
    "constant": lambda s, step: s.lr0,
    "linear": lambda s, step: s.lr0 * (1.0 - 0.9 * step / s.steps),  # micrograd's moons demo
    # from lr0 at step 0 down to 0 at step == steps
    "cosine": lambda s, step: (
        s.lr0 * 0.5 * (1.0 + math.cos(math.pi * min(step, s.steps) / s.steps))
    ),
    "step": lambda s, step: s.lr0 * s.gamma ** (step // s.step_size),
}


def make_schedule(
    name: str, lr0: float, steps: int, step_size: int = 30, gamma: float = 0.1
) -> Callable[[int], float]:
    """constant: lr0;  linear: lr0 (1 - 0.9 step/steps);  cosine: lr0 (1 + cos(pi step/steps))/2;
    step: lr0 gamma^(step // step_size)."""
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}; choose one of {list(SCHEDULES)}")
    if steps < 1 or step_size < 1:
        raise ValueError(f"steps and step_size must be >= 1, got {steps!r}, {step_size!r}")
    return Schedule(name, lr0, steps, step_size, gamma)


def _sgd(
    params: Sequence[Value],
    *,
    lr: float,
    momentum: float = 0.0,
    weight_decay: float = 0.0,
    **_: object,
) -> Optimizer:
    return SGD(params, lr, momentum=momentum, weight_decay=weight_decay)


def _adam(
    params: Sequence[Value],
    *,
    lr: float,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    **_: object,
) -> Optimizer:
    return Adam(params, lr, betas=betas, eps=eps, weight_decay=weight_decay)


# name -> constructor(params, **hyperparameters); each takes what it uses and ignores the rest,
# so the runner passes every optimizer hyperparameter of the config. One entry per optimizer.
OPTIMIZERS: dict[str, Callable[..., Optimizer]] = {"sgd": _sgd, "adam": _adam}
