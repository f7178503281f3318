"""The first stage: YAML files (run configs, sweep files) in, validated frozen dataclasses and
trial specs out. Nothing here runs or records anything."""

from runner.config.keys import config_hash, describe_keys, flatten
from runner.config.run import (
    KINDS,
    DatasetConfig,
    ModelConfig,
    RunConfig,
    TrackingConfig,
    TrainingConfig,
    check_loss_fits,
    load_run_config,
    run_config_from_dict,
)
from runner.config.spec import TrialSpec

__all__ = [
    "KINDS",
    "DatasetConfig",
    "ModelConfig",
    "RunConfig",
    "TrackingConfig",
    "TrainingConfig",
    "TrialSpec",
    "check_loss_fits",
    "config_hash",
    "describe_keys",
    "flatten",
    "load_run_config",
    "run_config_from_dict",
]
