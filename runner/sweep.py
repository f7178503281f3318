"""Sweep files: one YAML file (plus `--set` overrides of its base config) in, a validated list
of trials out, every trial's config built and checked before anything runs.

Expansion order is stable (grid: `itertools.product` in the file's key order, then the seeds;
random: draws from `random.Random(seed)` only), so a trial's identity, the hash of its resolved
config, never changes between runs of the same file.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import math
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.config import (
    RunConfig,
    check_loss_fits,
    flatten,
    load_run_config,
    run_config_from_dict,
)
from runner.limits import MAX_JOBS, MAX_TRIALS, too_many_trials
from runner.schema import (
    Source,
    above,
    apply_overrides,
    at_least,
    at_most,
    both,
    build,
    did_you_mean,
    each,
    opt,
    parse_override,
    read_yaml,
    set_dotted,
)
from runner.trial import TrialSpec

METHODS = ("grid", "random")
BACKENDS = ("loky", "sequential", "dask")
DISTRIBUTIONS = ("uniform", "loguniform", "int", "choice")
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
_NOT_SWEPT = ("name", "seed")  # the name is not a hyperparameter; seeds have their own key


def _n_jobs(v: int) -> str | None:
    return None if v != 0 else "must not be 0; use a positive count, or -1 for every core"


@dataclass(frozen=True)
class ExecutionConfig:
    backend: str = opt("loky", "where trials run", choices=BACKENDS)
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
        f"random: how many points to draw (points x seeds: at most {MAX_TRIALS} trials)",
        check=above(0, "e.g. 20"),
    )
    seed: int = opt(0, "random: seed of the sweep's own draws", check=at_least(0, "use e.g. 0"))
    metric: str = opt("train_loss", "what ranks the trials (its final value)")
    mode: str | None = opt(
        None, "max or min; default: max for accuracies, else min", choices=("max", "min")
    )
    execution: ExecutionConfig = opt(ExecutionConfig, "")

    @property
    def maximize(self) -> bool:
        return self.mode == "max" if self.mode else "accuracy" in self.metric


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
    trials: tuple[SweepTrial, ...]
    duplicates: int = 0  # points drawn twice, run once

    @property
    def name(self) -> str:
        return self.path.stem


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
    seeds = cfg.seeds or (base.seed,)
    _check_size(cfg, params, len(seeds), src)
    points = _grid(params) if cfg.method == "grid" else _draw(params, cfg.n_trials or 0, cfg.seed)
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
    _check_datasets(trials)
    return Sweep(cfg, path, base, tuple(trials), len(points) * len(seeds) - len(trials))


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
        if cfg.method == "grid":
            if not isinstance(values, list) or not values:
                raise src.error(
                    where,
                    "grid needs a non-empty list of values, e.g. [0.1, 1.0]; "
                    "distributions need method: random",
                )
        else:
            _check_distribution(values, where, src)
    if cfg.method == "random" and cfg.n_trials is None:
        raise src.error("n_trials", "required by method: random; set n_trials: 20")
    if cfg.method == "grid" and cfg.n_trials is not None:
        raise src.error("n_trials", "only used by method: random; remove it")
    return cfg.params


def _check_size(cfg: SweepConfig, params: dict[str, Any], seeds: int, src: Source) -> None:
    """Count the trials before making any: a grid's size is the product of its lists' lengths."""
    if cfg.method == "grid":
        points = math.prod(len(values) for values in params.values())
        problem = too_many_trials(points, seeds, "vary fewer keys or values, or split the sweep")
    else:
        problem = too_many_trials(cfg.n_trials or 0, seeds, "lower n_trials or use fewer seeds")
    if problem:
        raise src.error("params" if cfg.method == "grid" else "n_trials", problem)


def _first_under(known: list[str], section: str) -> str:
    return next(k for k in known if k.startswith(section + "."))


def _check_distribution(spec: Any, where: str, src: Source) -> None:
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


def _grid(params: dict[str, Any]) -> list[dict[str, Any]]:
    keys = list(params)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*params.values())]


def _draw(params: dict[str, Any], n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [{key: _sample(spec, rng) for key, spec in params.items()} for _ in range(n)]


def _sample(spec: Any, rng: random.Random) -> Any:
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
    return float(f"{x:.4g}")  # readable in tables and the UI; the hash sees the rounded value


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


def _check_datasets(trials: list[SweepTrial]) -> None:
    """CSV data is only known once read: read each distinct file and check the loss fits it."""
    from runner.datasets import make_dataset

    checked: set[tuple] = set()
    for trial in trials:
        cfg = trial.spec.config
        key = (cfg.dataset, cfg.seed, cfg.training.loss)
        if cfg.dataset.kind != "csv" or key in checked:
            continue
        checked.add(key)
        check_loss_fits(cfg, make_dataset(cfg.dataset, cfg.seed, cfg.base_dir))
