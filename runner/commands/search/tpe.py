"""TPE: Optuna's Tree-structured Parzen Estimator, asked for `batch` points at a time in this
process and told their results in trial order once the whole batch has run.

The study lives in memory (MLflow is the record). Its sampler is seeded from the sweep's `seed`
and told the same results in the same order whatever ran them, so a sweep asks the same points
on one core, on many, on a cluster, and when resumed, where those points' trials are found
FINISHED in the store and not trained again. The first batch is drawn at random (Optuna's start);
`constant_liar` keeps the points of one batch apart.

A point trained once per seed is told the mean of its seeds' metric; if a seed failed or has no
finite metric, the point is told FAILED, which TPE leaves out. Floats are rounded to 4
significant digits, as random search rounds them, for readable tables and a stable config hash;
Optuna keeps the value it proposed, which differs by less than its kernels resolve.
"""

from __future__ import annotations

import contextlib
import copy
import math
import statistics
import warnings
from collections.abc import Generator, Iterator
from typing import Any

from runner.commands.report import Row
from runner.config.space import rounded
from runner.config.sweep_file import DEFAULT_BATCH, Sweep, SweepTrial, sweep_trial


def tpe(sweep: Sweep) -> Generator[list[SweepTrial], list[Row], None]:
    """The plan (see runner/commands/search): batches of trials of the points TPE asks for."""
    import optuna  # the parent only, and only for tpe: `mgrun --help` and workers never load it

    cfg = sweep.config
    params = cfg.params or {}
    space = {key: _distribution(optuna, spec) for key, spec in params.items()}
    batch, n_trials = cfg.batch or DEFAULT_BATCH, cfg.n_trials or 0
    with warnings.catch_warnings():  # both options are marked experimental since Optuna 2
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.TPESampler(
            seed=cfg.seed, n_startup_trials=batch, multivariate=True, constant_liar=True
        )
    with _quiet(optuna):
        study = optuna.create_study(
            sampler=sampler, direction="maximize" if cfg.maximize else "minimize"
        )
        # config hash -> index of its trial: a point asked twice runs once
        made: dict[str, int] = {}
        rows: dict[int, Row] = {}
        for start in range(0, n_trials, batch):
            asks = [study.ask(space) for _ in range(min(batch, n_trials - start))]
            new: list[SweepTrial] = []
            points: list[list[int]] = []  # per ask, the indices of its trials (one per seed)
            for ask in asks:
                point = {key: _value(params[key], ask.params[key]) for key in params}
                points.append([_index(sweep, point, seed, made, new) for seed in sweep.seeds])
            if new:
                sent = yield new
                rows.update((r.trial.spec.index, r) for r in sent)
            for ask, indices in zip(asks, points, strict=True):
                value = _told([rows[i] for i in indices])
                if value is None:
                    study.tell(ask, state=optuna.trial.TrialState.FAIL)
                else:
                    study.tell(ask, value)


def _index(
    sweep: Sweep, point: dict[str, Any], seed: int, made: dict[str, int], new: list[SweepTrial]
) -> int:
    """The index of the point's trial with this seed, made now unless an earlier ask made it."""
    trial = sweep_trial(sweep, point, seed, index=len(made))
    key = trial.spec.config_hash
    if key not in made:
        made[key] = len(made)
        new.append(trial)
    return made[key]


def _told(rows: list[Row]) -> float | None:
    """What TPE is told of a point: its seeds' mean metric, or None (FAILED)."""
    values = [
        r.value
        for r in rows
        if r.status == "FINISHED" and r.value is not None and math.isfinite(r.value)
    ]
    return statistics.fmean(values) if len(values) == len(rows) else None


def _choices(spec: Any) -> list[Any] | None:
    if isinstance(spec, list):
        return spec
    ((kind, args),) = spec.items()
    return args if kind == "choice" else None


def _distribution(optuna: Any, spec: Any) -> Any:
    """Our distribution as Optuna's. Choices become their indices: Optuna's categories must be
    None, bool, int, float or str, and ours may be lists such as hidden-layer shapes."""
    dist = optuna.distributions
    choices = _choices(spec)
    if choices is not None:
        return dist.CategoricalDistribution(list(range(len(choices))))
    ((kind, (lo, hi)),) = spec.items()
    if kind == "int":
        return dist.IntDistribution(lo, hi)
    return dist.FloatDistribution(float(lo), float(hi), log=kind == "loguniform")


def _value(spec: Any, proposed: Any) -> Any:
    """Optuna's proposal as the value our config takes."""
    choices = _choices(spec)
    if choices is not None:
        return copy.deepcopy(choices[proposed])
    return proposed if isinstance(proposed, int) else rounded(proposed)


@contextlib.contextmanager
def _quiet(optuna: Any) -> Iterator[None]:
    """Optuna's INFO lines (a study created, each trial told) off while the plan runs."""
    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(before)
