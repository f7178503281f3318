"""`mgrun sweep`: validate every trial, fan them out, and record each in MLflow as it finishes.

The parent process does all MLflow writes: one parent run per sweep, one child run per trial
(the worker's complete record, logged by the same `Tracker.log_record` as `mgrun train`), then
the ranking, `results.csv` and plots on the parent. Trials whose config hash already has a
FINISHED run in the experiment are not run again unless `fresh`.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
import yaml

from runner.commands.progress import SweepBar, sweep_progress
from runner.commands.report import Row, SweepOutcome, best_row, print_report, results_csv
from runner.commands.sweep_plots import metric_vs_params
from runner.config import check_loss_fits, flatten
from runner.config.schema import Source, did_you_mean
from runner.config.sweep_file import Sweep, SweepTrial, load_sweep
from runner.datasets import Dataset, make_dataset
from runner.errors import ConfigError
from runner.execution.backends import BACKENDS, Backend, make_backend
from runner.execution.supervisor import run_trials
from runner.record import TrialRecord


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
) -> int:
    """Returns the exit code: 0 every trial finished, 1 some failed."""
    sweep = load(path, overrides)
    execution = resolve_execution(sweep, backend, n_jobs, retries, address)
    runner = make_backend(execution.backend, execution.n_jobs, execution.address, execution.retries)
    try:
        outcome = run_sweep(
            sweep, runner, execution, fresh, tracking_uri, experiment, show_progress
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
    for trial in sweep.trials:
        cfg = trial.spec.config
        key = (cfg.dataset, cfg.seed, cfg.training.loss)
        if cfg.dataset.kind == "csv" and key not in checked:
            checked.add(key)
            check_loss_fits(cfg, make_dataset(cfg.dataset, cfg.seed, cfg.base_dir))
    return sweep


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
) -> SweepOutcome:
    """Run what is missing, record everything; Ctrl-C ends the open runs KILLED and propagates."""
    from runner.tracking import Tracker, resolve_experiment, resolve_tracking_uri, run_guard

    start = time.perf_counter()
    base = sweep.base
    uri = resolve_tracking_uri(tracking_uri, base.tracking.uri)
    tracker = Tracker(uri, resolve_experiment(experiment, base.tracking.experiment, sweep.name))
    closed = tracker.close_stale_running()
    if closed:
        typer.echo(
            f"closed {len(closed)} run(s) left RUNNING by a dead process as KILLED", err=True
        )
    rows = {} if fresh else _resumed(tracker, sweep)
    todo = [t for t in sweep.trials if t.spec.index not in rows]
    _say_plan(sweep, todo, backend, experiment=tracker.experiment_name)

    parent = tracker.start_run(sweep.name, tags={"mgrun.sweep_hash": sweep_hash(sweep)})
    with run_guard(tracker, parent):
        tracker.log_params(parent, _sweep_params(sweep, execution))
        tracker.log_files(
            parent, {sweep.path.name: sweep.path.read_text(), "trials.yaml": trials_yaml(sweep)}
        )
        by_index = {t.spec.index: t for t in todo}
        # Trials share datasets (same kind, same seed): build or read each once for this sweep.
        datasets = functools.lru_cache(maxsize=32)(make_dataset)
        specs = [t.spec for t in todo]
        with sweep_progress(len(todo), sweep.name, show_progress) as bar:
            results = run_trials(specs, backend, execution.retries, _on_retry(bar))
            with closing(results):  # on Ctrl-C, closing stops the workers
                for record in results:
                    trial = by_index[record.index]
                    row = _log_child(tracker, parent, sweep, trial, record, datasets)
                    rows[record.index] = row
                    bar.advance(row.status)
                    if row.status != "FINISHED":
                        bar.note(f"trial {record.index} FAILED: {row.reason}")
        ordered = [rows[t.spec.index] for t in sweep.trials]
        best = best_row(ordered, sweep.config.maximize)
        _log_summary(tracker, parent, sweep, ordered, best)
    elapsed = time.perf_counter() - start
    return SweepOutcome(parent, uri, ordered, best, elapsed, tracker.experiment_id)


def sweep_hash(sweep: Sweep) -> str:
    """The identity of the whole sweep: its trials' config hashes, in order."""
    hashes = [t.spec.config_hash for t in sweep.trials]
    return hashlib.sha256(json.dumps(hashes).encode()).hexdigest()


def trials_yaml(sweep: Sweep) -> str:
    """The expanded trial list: index, hash, swept values, seed and the full resolved config."""
    trials = [
        {
            "index": t.spec.index,
            "config_hash": t.spec.config_hash,
            "params": t.params,
            "seed": t.seed,
            "config": t.spec.config.to_dict(),
        }
        for t in sweep.trials
    ]
    return yaml.safe_dump(trials, sort_keys=False)


def _resumed(tracker: Any, sweep: Sweep) -> dict[int, Row]:
    earlier = tracker.finished_runs_by_hash()
    rows = {}
    for t in sweep.trials:
        run_id = earlier.get(t.spec.config_hash)
        if run_id is not None:
            value = tracker.run_metrics(run_id).get(sweep.config.metric)
            rows[t.spec.index] = Row(t, "FINISHED", value, run_id, resumed=True)
    return rows


def _say_plan(sweep: Sweep, todo: list[SweepTrial], backend: Backend, experiment: str) -> None:
    done = len(sweep.trials) - len(todo)
    where = f"{backend.parallelism} {backend.name} worker(s)"
    line = f"{sweep.name}: {len(todo)} of {len(sweep.trials)} trials to run on {where}"
    if done:
        line += f"; {done} already FINISHED in experiment {experiment!r} (--fresh reruns them)"
    if sweep.duplicates:
        line += f"; {sweep.duplicates} duplicate point(s) dropped"
    typer.echo(line, err=True)


def _on_retry(bar: SweepBar):
    return lambda spec, what: bar.note(f"trial {spec.index}: {what}")


def _log_child(
    tracker: Any,
    parent: str,
    sweep: Sweep,
    trial: SweepTrial,
    record: TrialRecord,
    datasets: Callable[..., Dataset],
) -> Row:
    from runner.tracking import run_guard

    start = time.perf_counter()
    cfg = trial.spec.config
    tags = {"mgrun.config_hash": trial.spec.config_hash, "mgrun.sweep_index": str(trial.spec.index)}
    run_id = tracker.start_run(f"{sweep.name}-{trial.spec.index:03d}", tags, parent_run_id=parent)
    result = record.result
    status, reason = result.status, result.reason or ""
    try:
        with run_guard(tracker, run_id) as guard:
            if record.files is None:  # the worker could not draw them: here, errors are reported
                from runner.training.files import trial_files

                data = (
                    datasets(cfg.dataset, cfg.seed, cfg.base_dir)
                    if result.status == "FINISHED"
                    else None
                )
                record = dataclasses.replace(record, files=trial_files(cfg, result, data))
            tracker.log_record(run_id, record)
            guard.status = "FINISHED" if result.status == "FINISHED" else "FAILED"
            guard.reason, guard.traceback = result.reason, result.traceback
    except Exception as exc:  # the guard ended this run FAILED; one trial's record, not the sweep
        status, reason = "FAILED", f"could not record the trial: {type(exc).__name__}: {exc}"
    value = result.final_metrics.get(sweep.config.metric)
    return Row(
        trial,
        status,
        value,
        run_id,
        seconds=result.seconds,
        reason=reason,
        log_seconds=time.perf_counter() - start,
    )


def _sweep_params(sweep: Sweep, execution: Execution) -> dict[str, Any]:
    c = sweep.config
    return {
        "sweep.base": c.base,
        "sweep.method": c.method,
        "sweep.params": list(c.params or {}),
        "sweep.seeds": list(c.seeds) if c.seeds else [sweep.base.seed],
        "sweep.trials": len(sweep.trials),
        "sweep.metric": c.metric,
        "sweep.mode": "max" if c.maximize else "min",
        "sweep.backend": execution.backend,
        "sweep.n_jobs": execution.n_jobs,
        "sweep.retries": execution.retries,
    }


def _log_summary(
    tracker: Any, parent: str, sweep: Sweep, rows: list[Row], best: Row | None
) -> None:
    files: dict[str, str | bytes] = {"results.csv": results_csv(sweep, rows)}
    points = [
        (r.trial.params, r.value) for r in rows if r.status == "FINISHED" and r.value is not None
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for png in metric_vs_params(points, sweep.config.metric, tmp):
            files[f"plots/{png.name}"] = png.read_bytes()
    tracker.log_files(parent, files)
    finished = sum(r.status == "FINISHED" for r in rows)
    tags = {
        "mgrun.trials_finished": str(finished),
        "mgrun.trials_failed": str(len(rows) - finished),
    }
    if best is not None:
        tracker.log_params(parent, flatten(best.trial.spec.config.to_dict()))
        tracker.log_metrics(parent, [(sweep.config.metric, best.value, 0)])
        tags |= {"mgrun.best_run_id": best.run_id, "mgrun.best_trial": str(best.trial.spec.index)}
    tracker.set_tags(parent, tags)
