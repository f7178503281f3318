"""The search space of a sweep: lists of values for a grid, distributions for random search and
TPE (`{uniform: [a, b]}`, `{loguniform: [a, b]}`, `{int: [a, b]}`, `{choice: [...]}`), checked
and expanded in a stable order."""

from __future__ import annotations

import copy
import itertools
import math
import random
from typing import Any

from runner.config.schema import Source, did_you_mean

DISTRIBUTIONS = ("uniform", "loguniform", "int", "choice")


def check_distribution(spec: Any, where: str, src: Source) -> None:
    """Is `spec` a list of choices or one of the distributions? ConfigError if not."""
    if isinstance(spec, list):
        if not spec:
            raise src.error(where, "an empty list of choices; list at least one value")
        return
    shape = "a list of choices or one of {uniform: [a, b]}, {loguniform: [a, b]}, {int: [a, b]}"
    if not isinstance(spec, dict) or len(spec) != 1:
        raise src.error(where, f"expected {shape}, {{choice: [...]}}")
    ((kind, args),) = spec.items()
    if kind not in DISTRIBUTIONS:
        raise src.error(
            f"{where}.{kind}", f"unknown distribution; {did_you_mean(kind, DISTRIBUTIONS)}"
        )
    if kind == "choice":
        if not isinstance(args, list) or not args:
            raise src.error(f"{where}.choice", "needs a non-empty list, e.g. [relu, tanh]")
        return
    number = int if kind == "int" else (int, float)
    if (
        not isinstance(args, list)
        or len(args) != 2
        or not all(isinstance(a, number) and not isinstance(a, bool) for a in args)
    ):
        what, example = ("whole numbers", "[1, 8]") if kind == "int" else ("numbers", "[0.001, 1]")
        raise src.error(f"{where}.{kind}", f"needs two {what} [low, high], e.g. {example}")
    lo, hi = args
    if not lo <= hi:
        raise src.error(f"{where}.{kind}", f"low must not exceed high, got [{lo}, {hi}]; swap them")
    if kind == "loguniform" and lo <= 0:
        raise src.error(f"{where}.{kind}", f"needs low > 0, got {lo}; use e.g. [0.001, 1.0]")


def grid(params: dict[str, Any]) -> list[dict[str, Any]]:
    """Every combination, in the file's key order (itertools.product)."""
    keys = list(params)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*params.values())]


def draw(params: dict[str, Any], n: int, seed: int) -> list[dict[str, Any]]:
    """n points drawn from `random.Random(seed)` only."""
    rng = random.Random(seed)
    return [{key: sample(spec, rng) for key, spec in params.items()} for _ in range(n)]


def sample(spec: Any, rng: random.Random) -> Any:
    """One value of a list of choices or a distribution."""
    if isinstance(spec, list):
        return copy.deepcopy(rng.choice(spec))
    ((kind, args),) = spec.items()
    if kind == "choice":
        return copy.deepcopy(rng.choice(args))
    if kind == "int":
        return rng.randint(args[0], args[1])
    lo, hi = float(args[0]), float(args[1])
    x = (
        rng.uniform(lo, hi)
        if kind == "uniform"
        else math.exp(rng.uniform(math.log(lo), math.log(hi)))
    )
    return rounded(x)


def rounded(x: float) -> float:
    """A drawn float to 4 significant digits: readable in tables and the UI; the config hash
    sees the rounded value."""
    return float(f"{x:.4g}")


def corners(params: dict[str, Any], limit: int = 256) -> list[dict[str, Any]]:
    """Points at the edges of the space, to validate before a search that picks its points as it
    runs: every combination of each key's ends (every choice, low and high) when there are at
    most `limit`, else enough points for every end of every key to appear once."""
    ends = {key: _ends(spec) for key, spec in params.items()}
    if math.prod(len(e) for e in ends.values()) <= limit:
        return grid(ends)
    n = max(len(e) for e in ends.values())
    return [{key: e[i % len(e)] for key, e in ends.items()} for i in range(n)]


def _ends(spec: Any) -> list[Any]:
    if isinstance(spec, list):
        return spec
    ((kind, args),) = spec.items()
    if kind == "choice":
        return args
    if kind == "int":
        return sorted({args[0], args[1]})
    return sorted({rounded(float(args[0])), rounded(float(args[1]))})
