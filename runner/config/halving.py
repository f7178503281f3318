"""Successive halving and Hyperband in a sweep file: `halving: {min_steps, eta, brackets}`, its
rungs and bracket sizes, and the checks that need the base config.

Every configuration of a bracket trains to its first rung; at each rung the best `ceil(n / eta)`
go on to `eta` times the steps, the last rung being `training.steps`. Bracket b of Hyperband
starts at the b-th rung with `ceil(n R / ((R - b) eta^b))` configurations (R rungs in all), so
each bracket spends about the same number of steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from runner.config.schema import Source, above, at_least, opt


@dataclass(frozen=True)
class HalvingConfig:
    min_steps: int | None = opt(
        None, "steps every configuration trains before the first cut", check=above(0, "e.g. 30")
    )
    eta: int = opt(
        3, "1 in eta configurations go on, for eta times the steps", check=at_least(2, "use e.g. 3")
    )
    brackets: int = opt(
        1,
        "Hyperband: brackets of different min_steps (1: plain successive halving)",
        check=at_least(1, "use e.g. 2"),
    )


def rungs(min_steps: int, eta: int, steps: int) -> list[int]:
    """The steps at which configurations are cut: min_steps times powers of eta, then `steps`."""
    found = [min_steps]
    while found[-1] < steps:
        found.append(min(found[-1] * eta, steps))
    return found


def bracket_sizes(n: int, h: HalvingConfig, steps: int) -> list[int]:
    """How many configurations each bracket starts with; the first has `n`."""
    r = len(rungs(h.min_steps or steps, h.eta, steps))
    return [math.ceil(n * r / ((r - b) * h.eta**b)) for b in range(h.brackets)]


def check_halving(
    method: str,
    h: HalvingConfig | None,
    n_trials: int | None,
    steps: int,
    params: dict[str, Any],
    src: Source,
) -> None:
    """What the fields alone cannot tell: ConfigError naming the field and the fix."""
    if method != "halving":
        if h is not None:
            raise src.error("halving", "only used by method: halving; remove it")
        return
    if h is None or h.min_steps is None:
        raise src.error(
            "halving.min_steps", "required by method: halving; set halving: {min_steps: 30, eta: 3}"
        )
    if "training.steps" in params:
        raise src.error(
            "params.training.steps",
            "halving trains every configuration towards training.steps; set it in the base config",
        )
    if h.min_steps > steps:
        fix = f"lower it, e.g. {max(1, steps // h.eta**2)}"
        problem = f"must be <= training.steps ({steps}), got {h.min_steps}; {fix}"
        raise src.error("halving.min_steps", problem)
    r = len(rungs(h.min_steps, h.eta, steps))
    if h.brackets > r:
        raise src.error(
            "halving.brackets",
            f"must be <= the number of rungs ({r}), got {h.brackets}; use e.g. {r}",
        )
    if h.brackets > 1 and n_trials is None:
        raise src.error(
            "halving.brackets",
            "brackets draw configurations: set n_trials and give distributions, or use brackets: 1",
        )


def halving_points(
    method: str, h: HalvingConfig | None, n_trials: int | None, steps: int
) -> int | None:
    """How many points a halving sweep draws (every bracket's), None when it is a grid."""
    if method != "halving" or n_trials is None or h is None:
        return n_trials
    return sum(bracket_sizes(n_trials, h, steps))
