"""A trial spec: what one trial trains, the unit that configs and sweep files hand on; and the
checkpoint a trial stopped early leaves, from which another spec continues it."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any

from runner.config.keys import config_hash
from runner.config.run import RunConfig

Metric = tuple[str, float, int]  # (key, value, step)


@dataclass(frozen=True)
class Checkpoint:
    """Everything the steps after `step` depend on, exact: training on from it gives the same
    bits as never having stopped. Plain data, picklable; JSON keeps floats bit for bit."""

    step: int  # steps trained so far
    state: dict[str, float]  # the weights by name
    optimizer: dict[str, Any]  # the optimizer's `state()`: momentum, Adam's moments and count
    batches: Any  # the minibatch order's `getstate()`
    metrics: tuple[Metric, ...] = ()  # every point recorded so far

    def to_json(self) -> str:
        """The checkpoint without its metrics (the run's metrics.csv holds them)."""
        data = {k: getattr(self, k) for k in ("step", "state", "optimizer", "batches")}
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str | bytes, metrics: tuple[Metric, ...] = ()) -> Checkpoint:
        data = json.loads(text)
        return cls(
            data["step"], data["state"], data["optimizer"], _tuples(data["batches"]), metrics
        )


def _tuples(value: Any) -> Any:
    """JSON's lists back to the tuples `random.Random.setstate` wants."""
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


@dataclass(frozen=True)
class TrialSpec:
    """What to train: a resolved config and its place in a sweep; picklable. A spec with `stop`
    trains up to that step (not past `training.steps`), from `start` when given; its schedule
    is still laid out over `training.steps`, so the steps it trains are those of the full run."""

    config: RunConfig
    index: int = 0
    stop: int | None = None
    start: Checkpoint | None = None

    @functools.cached_property  # a sweep asks often; the frozen config cannot change under it
    def config_hash(self) -> str:
        return config_hash(self.config)

    @property
    def last_step(self) -> int:
        """How many steps the trial has trained when it ends."""
        return self.config.training.steps if self.stop is None else self.stop
