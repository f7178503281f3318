"""`mgrun sweep`: validate every trial, fan them out, and record each in MLflow as it finishes.

The parent process does all MLflow writes: one parent run per sweep, one child run per trial
(the worker's complete record, logged by the same `Tracker.log_record` as `mgrun train`), then
the ranking, `results.csv` and plots on the parent. Trials whose config hash already has a
FINISHED run in the experiment are not run again unless `fresh`.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from runner.commands.batches import Batches
from runner.commands.keep_top import Candidates, give_full_records
from runner.commands.progress import sweep_progress
from runner.commands.report import (
    Row,
    SweepOutcome,
    batch,
    best_row,
    log_summary,
    planned,
    print_report,
    sweep_hash,
    sweep_params,
    trials_yaml,
)
from runner.commands.rung_report import log_rungs
from runner.commands.rung_runs import complete
from runner.commands.search import SEARCHES
from runner.commands.search.halving import brackets, rung_trials
from runner.commands.store import open_tracker
from runner.config import check_loss_fits
from runner.config.limits import MAX_JOBS, check_name_option
from runner.config.schema import Source, did_you_mean
from runner.config.space import corners
from runner.config.sweep_file import Sweep, load_sweep, sweep_trial
from runner.datasets import make_dataset
from runner.errors import ConfigError
from runner.execution.backends import BACKENDS, Backend, make_backend


@dataclass(frozen=True)
class Execution:
    """Where and how the trials run: the sweep file's `execution`, then the command line."""

    backend: str
    n_jobs: int
    retries: int
    address: str | None = None


def sweep_command(
    path: Path,
    overrides: Sequence[str],
    n_jobs: int | None = None,
    backend: str | None = None,
    retries: int | None = None,
    fresh: bool = False,
    tracking_uri: str | None = None,
    experiment: str | None = None,
    show_progress: bool = True,
    address: str | None = None,
    keep_top: str | None = None,
) -> int:
    """Returns the exit code: 0 every trial finished, 1 some failed."""
    check_name_option("--experiment", experiment)
    sweep = load(path, overrides)
    execution = resolve_execution(sweep, backend, n_jobs, retries, address)
    top = resolve_keep_top(sweep, keep_top)
    runner = make_backend(execution.backend, execution.n_jobs, execution.address, execution.retries)
    try:
        outcome = run_sweep(
            sweep, runner, execution, fresh, tracking_uri, experiment, show_progress, top
        )
    finally:
        runner.close()
    print_report(sweep, outcome, explicit_uri=tracking_uri is not None)
    return 0 if outcome.all_finished else 1


def load(path: Path, overrides: Sequence[str] = ()) -> Sweep:
    """The sweep file read and every trial checked, including what only the later stages know:
    the backend's name and, for CSV data, whether the loss fits the classes found in the file."""
    sweep = load_sweep(path, overrides)
    name = sweep.config.execution.backend
    if name not in BACKENDS:
        problem = f"unknown value {name!r}; {did_you_mean(name, list(BACKENDS))}"
        raise Source(str(path)).error("execution.backend", problem)
    checked: set[tuple] = set()
    # tpe picks its trials as it runs: the corners of its space stand in for them
    trials = sweep.trials or [
        sweep_trial(sweep, p, s, 0) for p in corners(sweep.config.params or {}) for s in sweep.seeds
    ]
    for trial in trials:
        cfg = trial.spec.config
        key = (cfg.dataset, cfg.seed, cfg.training.loss)
        if cfg.dataset.kind == "csv" and key not in checked:
            checked.add(key)
            check_loss_fits(cfg, make_dataset(cfg.dataset, cfg.seed, cfg.base_dir))
    return sweep


def resolve_keep_top(sweep: Sweep, option: str | None) -> int | None:
    """--keep-top, then the sweep file's keep_top; None means every trial."""
    value: Any = sweep.config.keep_top if option is None else option
    if isinstance(value, str) and value != "all":
        if not value.isdigit():
            raise ConfigError(f"--keep-top {value}: use a whole number >= 0 or all, e.g. 3")
        value = int(value)
    return None if value == "all" else value


def resolve_execution(
    sweep: Sweep,
    backend: str | None,
    n_jobs: int | None,
    retries: int | None,
    address: str | None = None,
) -> Execution:
    """Command-line options win over the sweep file's `execution` section."""
    ex = sweep.config.execution
    if backend is not None and backend not in BACKENDS:
        raise ConfigError(
            f"--backend {backend}: unknown backend; {did_you_mean(backend, list(BACKENDS))}"
        )
    if n_jobs == 0:
        raise ConfigError("--n-jobs 0: use a positive count, or -1 for every core")
    if n_jobs is not None and n_jobs > MAX_JOBS:
        raise ConfigError(f"--n-jobs {n_jobs}: must be <= {MAX_JOBS}; use e.g. 8, or -1")
    if retries is not None and retries < 0:
        raise ConfigError(f"--retries {retries}: must be >= 0; use e.g. --retries 1")
    if address and (backend or ex.backend) != "dask":
        raise ConfigError(f"--address {address}: only used by --backend dask; add --backend dask")
    return Execution(
        backend=backend or ex.backend,
        n_jobs=n_jobs if n_jobs is not None else ex.n_jobs,
        retries=retries if retries is not None else ex.retries,
        address=address or ex.address,
    )


def run_sweep(
    sweep: Sweep,
    backend: Backend,
    execution: Execution,
    fresh: bool = False,
    tracking_uri: str | None = None,
    experiment: str | None = None,
    show_progress: bool = True,
    keep_top: int | None = 3,
) -> SweepOutcome:
    """Run what is missing, record everything; then full records for the best `keep_top`
    trials (None: all). Ctrl-C ends the open runs KILLED and propagates."""
    from runner.tracking import resolve_experiment, resolve_tracking_uri, run_guard

    start = time.perf_counter()
    base = sweep.base
    uri = resolve_tracking_uri(tracking_uri, base.tracking.uri)
    tracker = open_tracker(
        uri, resolve_experiment(experiment, base.tracking.experiment, sweep.name)
    )
    earlier = {} if fresh else tracker.finished_runs()
    _say_plan(sweep, earlier, backend, experiment=tracker.experiment_name)

    parent = tracker.start_run(sweep.name, tags={"mgrun.sweep_hash": sweep_hash(sweep)})
    with run_guard(tracker, parent):
        tracker.log_params(parent, sweep_params(sweep, execution))
        files = {sweep.path.name: sweep.path.read_text()}
        if sweep.trials:  # else the search picks them as it runs: trials.yaml comes at the end
            files["trials.yaml"] = trials_yaml(sweep)
        tracker.log_files(parent, files)
        # Trials share datasets (same kind, same seed): build or read each once for this sweep.
        datasets = functools.lru_cache(maxsize=32)(make_dataset)
        kept = Candidates(keep_top, sweep.config.maximize)
        rows: dict[int, Row] = {}
        plan = SEARCHES[sweep.config.method](sweep)
        todo = len(_todo(sweep, earlier)) if sweep.trials else planned(sweep)
        if sweep.config.method == "halving":
            todo = rung_trials(sweep)  # every rung trial, those found in the store included
        with sweep_progress(todo, sweep.name, show_progress) as bar:
            run = Batches(tracker, parent, sweep, earlier, backend, execution.retries, bar)
            run.datasets = datasets
            run.full = keep_top is None  # every trial full: the workers draw the pictures
            run.since = int(time.time() * 1000) if fresh else 0
            batch = next(plan, None)
            while batch is not None:
                done = run(batch)
                if not sweep.trials:  # the bar counted every trial: resumed ones need no run
                    bar.skip(sum(row.resumed for row, _ in done.values()))
                for row, record in done.values():
                    rows[row.trial.spec.index] = row
                    if record is not None:
                        kept.offer(row, record)
                try:
                    batch = plan.send([done[t.spec.index][0] for t in batch])
                except StopIteration:
                    batch = None
        ordered = [rows[i] for i in sorted(rows)]  # halving: each configuration's last rung
        if run.history:
            log_rungs(tracker, parent, sweep, run.history)
        if not sweep.trials:
            tracker.log_files(
                parent, {"trials.yaml": trials_yaml(sweep, [r.trial for r in ordered])}
            )
        give_full_records(tracker, sweep, ordered, kept, datasets, keep_top, backend)
        best = best_row(ordered, sweep.config.maximize)
        log_summary(tracker, parent, sweep, ordered, best)
    elapsed = time.perf_counter() - start
    return SweepOutcome(parent, uri, ordered, best, elapsed, tracker.experiment_id)


def _todo(sweep: Sweep, earlier: dict[str, Any]) -> list:
    """The trials without a run in the store that trained them to the end."""
    return [
        t
        for t in sweep.trials
        if t.spec.config_hash not in earlier
        or not complete(earlier[t.spec.config_hash], t.spec.config.training.steps)
    ]


def _say_plan(sweep: Sweep, earlier: dict[str, Any], backend: Backend, experiment: str) -> None:
    where = f"{backend.parallelism} {backend.name} worker(s)"
    if sweep.config.method == "halving":
        line = f"{sweep.name}: successive halving on {where}: {_rungs_line(sweep)}"
        if any(t.spec.config_hash in earlier for t in sweep.trials):
            line += f"; rungs already in experiment {experiment!r} are not run again"
        typer.echo(line, err=True)
        return
    if not sweep.trials:
        c = sweep.config
        line = (
            f"{sweep.name}: up to {planned(sweep)} trials ({c.n_trials} points x "
            f"{len(sweep.seeds)} seed(s)), asked of {c.method} {batch(sweep)} points at a time, "
            f"on {where}"
        )
        if earlier:
            line += f"; those already FINISHED in experiment {experiment!r} are not run again"
        typer.echo(line, err=True)
        return
    todo = _todo(sweep, earlier)
    done = len(sweep.trials) - len(todo)
    line = f"{sweep.name}: {len(todo)} of {len(sweep.trials)} trials to run on {where}"
    if done:
        line += f"; {done} already FINISHED in experiment {experiment!r} (--fresh reruns them)"
    if sweep.duplicates:
        line += f"; {sweep.duplicates} duplicate point(s) dropped"
    typer.echo(line, err=True)


def _rungs_line(sweep: Sweep) -> str:
    h = sweep.config.halving
    assert h is not None
    parts = [
        f"{len(trials)} configurations, rungs at steps {'/'.join(map(str, stops))}"
        for stops, trials in brackets(sweep)
    ]
    return "; ".join(parts) + f" (1 in {h.eta} goes on)"
