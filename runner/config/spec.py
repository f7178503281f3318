"""A trial spec: what one trial trains, the unit that configs and sweep files hand on."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from runner.config.keys import config_hash
from runner.config.run import RunConfig


@dataclass(frozen=True)
class TrialSpec:
    """What to train: a resolved config and its place in a sweep. Picklable."""

    config: RunConfig
    index: int = 0

    @functools.cached_property  # a sweep asks often; the frozen config cannot change under it
    def config_hash(self) -> str:
        return config_hash(self.config)
