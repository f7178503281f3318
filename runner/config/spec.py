"""A trial spec: what one trial trains, the unit that configs and sweep files hand on."""

from __future__ import annotations

from dataclasses import dataclass

from runner.config.run import RunConfig, config_hash


@dataclass(frozen=True)
class TrialSpec:
    """What to train: a resolved config and its place in a sweep. Picklable."""

    config: RunConfig
    index: int = 0

    @property
    def config_hash(self) -> str:
        return config_hash(self.config)
