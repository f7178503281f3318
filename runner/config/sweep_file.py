"""Sweep files: one YAML file (plus `--set` overrides of its base config) in, a validated list
of trials out, every trial's config built and checked before anything runs.

Expansion order is stable (grid: `itertools.product` in the file's key order, then the seeds;
random: draws from `random.Random(seed)` only), so a trial's identity, the hash of its resolved
config, never changes between runs of the same file. TPE picks its points as the sweep runs
(runner/commands/search/tpe.py): here its space is checked, at its corners, and no trial made.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.config.halving import HalvingConfig, check_halving, halving_points
from runner.config.keys import flatten
from runner.config.limits import MAX_JOBS, MAX_TRIALS, too_many_trials
from runner.config.run import (
    RunConfig,
    load_run_config,
    run_config_from_dict,
)
from runner.config.schema import (
    Source,
    above,
    at_least,
    at_most,
    both,
    build,
    did_you_mean,
    each,
    opt,
)
from runner.config.space import check_distribution, corners, draw, grid
from runner.config.spec import TrialSpec
from runner.config.yaml_file import apply_overrides, parse_override, read_yaml, set_dotted

METHODS = ("grid", "random", "halving", "tpe")
METRICS = (
    "train_loss",
    "train_accuracy",
    "test_loss",
    "test_accuracy",
    "final_train_loss",
    "final_train_accuracy",
    "final_grad_norm",
    "lr",
)
_LAYER_NORM = re.compile(r"final_grad_norm\.layer_\d+")
DEFAULT_BATCH = 8  # tpe: points asked at a time when the file gives no `batch`
_NOT_SWEPT = ("name", "seed")  # the name is not a hyperparameter; seeds have their own key


def _n_jobs(v: int) -> str | None:
    return None if v != 0 else "must not be 0; use a positive count, or -1 for every core"


def _keep_top(v: Any) -> str | None:
    if v == "all" or (isinstance(v, int) and not isinstance(v, bool) and v >= 0):
        return None
    return f"must be a whole number >= 0 or all, got {v!r}; use e.g. 3"


@dataclass(frozen=True)
class ExecutionConfig:
    # checked against runner.execution's table of backends, which this stage cannot import
    backend: str = opt("loky", "where trials run: loky, sequential, dask")
    n_jobs: int = opt(
        -1,
        f"trials run at once, at most {MAX_JOBS}; -1 uses every core",
        check=both(_n_jobs, at_most(MAX_JOBS, "use e.g. 8, or -1 for every core")),
    )
    address: str | None = opt(None, "dask: scheduler address; none starts a local cluster")
    retries: int = opt(
        1, "runs again of a trial whose worker process died", check=at_least(0, "use e.g. 1")
    )


@dataclass(frozen=True)
class SweepConfig:
    base: str | None = opt(None, "the run config to vary, relative to the sweep file")
    method: str = opt("grid", "how points are chosen", choices=METHODS)
    params: dict[str, Any] | None = opt(
        None, "dotted config keys -> values (grid) or distributions (random)"
    )
    seeds: tuple[int, ...] | None = opt(
        None,
        "each point is trained once per seed (default: the base config's seed)",
        check=each(at_least(0, "use e.g. [1, 2, 3]"), "list one or more seeds, e.g. [1, 2, 3]"),
    )
    n_trials: int | None = opt(
        None,
        f"random, tpe: how many points to draw (points x seeds: at most {MAX_TRIALS} trials)",
        check=above(0, "e.g. 20"),
    )
    seed: int = opt(
        0, "random, tpe: seed of the sweep's own draws", check=at_least(0, "use e.g. 0")
    )
    batch: int | None = opt(
        None,
        "tpe: points asked at a time, told once the whole batch has run (default 8); the first "
        "batch is drawn at random",
        check=at_least(1, "use e.g. 8"),
    )
    metric: str = opt("train_loss", "what ranks the trials (its final value)")
    mode: str | None = opt(
        None, "max or min; default: max for accuracies, else min", choices=("max", "min")
    )
    keep_top: Any = opt(
        3,
        "the best trials whose runs also get plots, the graph and the servable model; all: every "
        "trial",
        check=_keep_top,
    )
    execution: ExecutionConfig = opt(ExecutionConfig, "")
    halving: HalvingConfig | None = opt(None, "successive halving: {min_steps: 30, eta: 3}")

    @property
    def maximize(self) -> bool:
        return self.mode == "max" if self.mode else "accuracy" in self.metric

    @property
    def is_grid(self) -> bool:
        """Are the params lists to combine? (halving without n_trials cuts a grid)"""
        return self.method == "grid" or (self.method == "halving" and self.n_trials is None)


@dataclass(frozen=True)
class SweepTrial:
    """One trial of a sweep: what to train, and the swept values that make it differ."""

    spec: TrialSpec
    params: dict[str, Any]
    seed: int


@dataclass(frozen=True)
class Sweep:
    config: SweepConfig
    path: Path
    base: RunConfig
    trials: tuple[SweepTrial, ...]  # empty for tpe, which picks its points as it runs
    duplicates: int = 0  # points drawn twice, run once
    base_data: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def seeds(self) -> tuple[int, ...]:
        return self.config.seeds or (self.base.seed,)


def load_sweep(path: str | Path, overrides: Sequence[str] = ()) -> Sweep:
    """Read and validate a sweep file and build every trial's config; raises ConfigError."""
    path = Path(path)
    file = str(path)
    src = Source(file)
    cfg: SweepConfig = build(SweepConfig, read_yaml(path), src)
    if cfg.base is None:
        raise src.error("base", "required; set base: ../configs/moons.yaml (relative to this file)")
    base_path = path.parent / cfg.base
    if not base_path.is_file():
        raise src.error("base", f"{base_path} not found; give the path relative to {file}")
    base = load_run_config(base_path, overrides)
    base_data, _ = apply_overrides(read_yaml(base_path), overrides, str(base_path))
    params = _check_params(cfg, base, overrides, src)
    _check_metric(cfg, base, params, src)
    check_halving(cfg.method, cfg.halving, cfg.n_trials, base.training.steps, params, src)
    seeds = cfg.seeds or (base.seed,)
    n = halving_points(cfg.method, cfg.halving, cfg.n_trials, base.training.steps)
    _check_size(cfg, params, n, len(seeds), src)
    if cfg.method == "tpe":
        for point in corners(params):  # a bad range fails here, not halfway through the search
            _trial_config(base_data, base, point, seeds[0], file)
        return Sweep(cfg, path, base, (), base_data=base_data)
    points = grid(params) if cfg.is_grid else draw(params, n or 0, cfg.seed)
    trials: list[SweepTrial] = []
    seen: set[str] = set()
    for point in points:
        # The seed is checked by the sweep's own schema and in no rule across fields: validate the
        # point once, then give it each seed.
        config = _trial_config(base_data, base, point, seeds[0], file)
        for seed in seeds:
            spec = TrialSpec(dataclasses.replace(config, seed=seed), index=len(trials))
            if spec.config_hash in seen:
                continue
            seen.add(spec.config_hash)
            trials.append(SweepTrial(spec, point, seed))
    duplicates = len(points) * len(seeds) - len(trials)
    return Sweep(cfg, path, base, tuple(trials), duplicates, base_data)


def sweep_trial(sweep: Sweep, point: dict[str, Any], seed: int, index: int) -> SweepTrial:
    """The trial of a point the search picked while the sweep runs; ConfigError if invalid."""
    config = _trial_config(sweep.base_data, sweep.base, point, seed, str(sweep.path))
    return SweepTrial(TrialSpec(config, index=index), point, seed)


def _check_params(
    cfg: SweepConfig, base: RunConfig, overrides: Sequence[str], src: Source
) -> dict[str, Any]:
    if not cfg.params:
        raise src.error("params", "required; list dotted keys to vary, e.g. training.lr: [0.1, 1]")
    keys = list(flatten(base.to_dict()))
    known = [k for k in keys if k not in _NOT_SWEPT and not k.startswith("tracking.")]
    set_keys = {parse_override(o)[0] for o in overrides}
    for key, values in cfg.params.items():
        where = f"params.{key}"
        if key == "seed":
            raise src.error(where, "use the sweep's `seeds: [1, 2, 3]` to vary the seed")
        if key in keys and key not in known:
            raise src.error(where, "not a hyperparameter; remove it from params")
        if key not in known:
            sections = {k.split(".")[0] for k in known}
            if key in sections:
                fix = f"name a key inside it, e.g. {_first_under(known, key)}"
            else:
                fix = did_you_mean(key, known)
            raise src.error(where, f"not a config key; {fix}")
        if key in set_keys:
            raise src.error(where, f"swept here, so --set {key} has no effect; drop the --set")
        if cfg.is_grid:
            if not isinstance(values, list) or not values:
                draws = "need n_trials" if cfg.method == "halving" else "need method: random or tpe"
                raise src.error(
                    where,
                    f"{cfg.method} needs a non-empty list of values, e.g. [0.1, 1.0]; "
                    f"distributions {draws}",
                )
        else:
            check_distribution(values, where, src)
    if cfg.method in ("random", "tpe") and cfg.n_trials is None:
        raise src.error("n_trials", f"required by method: {cfg.method}; set n_trials: 20")
    if cfg.method == "grid" and cfg.n_trials is not None:
        raise src.error("n_trials", "only used by method: random, halving and tpe; remove it")
    if cfg.method != "tpe" and cfg.batch is not None:
        raise src.error("batch", "only used by method: tpe; remove it")
    return cfg.params


def _check_size(
    cfg: SweepConfig, params: dict[str, Any], n: int | None, seeds: int, src: Source
) -> None:
    """Count the trials before making any: a grid's size is the product of its lists' lengths."""
    if cfg.is_grid:
        points = math.prod(len(values) for values in params.values())
        problem = too_many_trials(points, seeds, "vary fewer keys or values, or split the sweep")
    else:
        problem = too_many_trials(n or 0, seeds, "lower n_trials or use fewer seeds")
    if problem:
        raise src.error("params" if cfg.is_grid else "n_trials", problem)


def _first_under(known: list[str], section: str) -> str:
    return next(k for k in known if k.startswith(section + "."))


def _check_metric(cfg: SweepConfig, base: RunConfig, params: dict[str, Any], src: Source) -> None:
    if cfg.metric not in METRICS and not _LAYER_NORM.fullmatch(cfg.metric):
        raise src.error(
            "metric", f"unknown metric {cfg.metric!r}; {did_you_mean(cfg.metric, METRICS)}"
        )
    split_swept = "dataset.test_fraction" in params
    if cfg.metric.startswith("test_") and base.dataset.test_fraction == 0 and not split_swept:
        raise src.error(
            "metric",
            f"{cfg.metric} needs a test split, but {base.source} has dataset.test_fraction: 0; "
            "use a train_ metric or set dataset.test_fraction",
        )


def _trial_config(
    base_data: dict[str, Any], base: RunConfig, point: dict[str, Any], seed: int, file: str
) -> RunConfig:
    # Swept keys are `section.field` or `field` (sections hold no sections): copy two levels.
    data = {k: dict(v) if isinstance(v, dict) else v for k, v in base_data.items()}
    for key, value in point.items():
        set_dotted(data, key, copy.deepcopy(value), f"{file}: params.{key}")
    data["seed"] = seed
    data["name"] = base.name
    # Errors name the sweep file: the base was valid on its own, so the swept values are at fault.
    return run_config_from_dict(data, file, base.base_dir)
