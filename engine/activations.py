"""The activations, one table: adding one is one entry here plus its tests.

Each entry gives the function on a float, its derivative written from the OUTPUT a = f(z) (what
the backward passes keep), and the same function over whole arrays for code that has an array
module at hand (`xp` is numpy or anything with its names); the engine itself never imports one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


def sigmoid(x: float) -> float:
    """The logistic function, without overflow for large |x|."""
    if x >= 0.0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def _relu(z: float) -> float:
    return z if z > 0 else 0.0


def _identity(z: float) -> float:
    return z


@dataclass(frozen=True)
class Activation:
    """a = f(z), f'(z) as a function of a, and f over arrays with the array module `xp`."""

    op: str  # the operation's name in expression graphs
    f: Callable[[float], float]
    df: Callable[[float], float]
    array: Callable[[Any, Any], Any]


ACTIVATIONS: dict[str, Activation] = {
    "relu": Activation(
        "ReLU", _relu, lambda a: 1.0 if a > 0 else 0.0, lambda z, xp: xp.maximum(z, 0.0)
    ),
    "tanh": Activation("tanh", math.tanh, lambda a: 1.0 - a * a, lambda z, xp: xp.tanh(z)),
    "sigmoid": Activation(
        "sigmoid",
        sigmoid,
        lambda a: a * (1.0 - a),
        lambda z, xp: 0.5 * (1.0 + xp.tanh(0.5 * z)),  # no overflow for large |z|
    ),
    "linear": Activation("linear", _identity, lambda a: 1.0, lambda z, xp: z),
}
