"""What came of a sweep: a row per trial, the ranking, the parent run's record (`results.csv`,
plots, the trial list) and the report on stdout."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import tempfile
from dataclasses import dataclass
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from runner.commands.sweep_plots import metric_vs_params
from runner.commands.yaml_records import dump_records
from runner.config import flatten
from runner.config.keys import config_hash
from runner.config.sweep_file import DEFAULT_BATCH, Sweep, SweepTrial
from runner.redact import mask_uri

SHOWN = 10  # rows of the ranking; results.csv on the parent run has them all


@dataclass
class Row:
    """One trial's line in results.csv and in the final table."""

    trial: SweepTrial
    status: str
    value: float | None  # the sweep's metric, final value
    run_id: str
    seconds: float | None = None  # training time; None for trials resumed from earlier runs
    reason: str = ""
    resumed: bool = False
    log_seconds: float = 0.0  # MLflow writes for this trial, in the parent
    final_loss: float | None = None  # final_train_loss: breaks ties of the metric
    full: bool = False  # the run has plots, the graph and the model
    stopped_at: int | None = None  # halving: the step the trial stopped at, before the end


@dataclass
class SweepOutcome:
    parent_run_id: str
    uri: str
    rows: list[Row]
    best: Row | None
    seconds: float
    experiment_id: str

    @property
    def all_finished(self) -> bool:
        return all(r.status == "FINISHED" for r in self.rows)


def _scored(r: Row) -> bool:
    return r.status == "FINISHED" and r.value is not None and math.isfinite(r.value)


def rank_key(r: Row, maximize: bool) -> tuple:
    """Finished trials best first (ties: the lower final training loss, then sweep order), then
    those without a value, then failed. Trials that halving stopped come after those trained to
    the end, the later stops first: their metric is from fewer steps."""
    if _scored(r):
        loss = (
            r.final_loss if r.final_loss is not None and math.isfinite(r.final_loss) else math.inf
        )
        stop = -r.stopped_at if r.stopped_at is not None else -math.inf
        return (0, stop, -r.value if maximize else r.value, loss, r.trial.spec.index)
    return (1 if r.status == "FINISHED" else 2, 0.0, 0.0, 0.0, r.trial.spec.index)


def ranked(rows: list[Row], maximize: bool) -> list[Row]:
    """The rows best first (see `rank_key`)."""
    return sorted(rows, key=lambda r: rank_key(r, maximize))


def best_row(rows: list[Row], maximize: bool) -> Row | None:
    """The finished trial with the best metric; the earliest trial wins a tie."""
    top = ranked(rows, maximize)
    return top[0] if top and _scored(top[0]) else None


def results_csv(sweep: Sweep, rows: list[Row]) -> str:
    """One line per trial, in sweep order."""
    keys = list(sweep.config.params or {})
    metric = sweep.config.metric
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(
        [
            "index",
            "config_hash",
            "status",
            *keys,
            "seed",
            metric,
            "seconds",
            "run_id",
            "resumed",
            "reason",
        ]
    )
    for r in rows:
        t = r.trial
        w.writerow(
            [
                t.spec.index,
                t.spec.config_hash,
                r.status,
                *(_cell(t.params[k]) for k in keys),
                t.seed,
                "" if r.value is None else repr(r.value),
                "" if r.seconds is None else f"{r.seconds:.3f}",
                r.run_id,
                r.resumed,
                r.reason,
            ]
        )
    return out.getvalue()


def _cell(value: Any) -> str:
    return json.dumps(value) if isinstance(value, (list, dict)) else str(value)


def print_report(sweep: Sweep, outcome: SweepOutcome, explicit_uri: bool) -> None:
    rows, metric = outcome.rows, sweep.config.metric
    finished = sum(r.status == "FINISHED" for r in rows)
    resumed = sum(r.resumed for r in rows)
    line = f"{len(rows)} trials: {finished} finished, {len(rows) - finished} failed"
    if resumed:
        line += f" ({resumed} from earlier runs)"
    typer.echo(f"{line} in {outcome.seconds:.1f} s")

    keys = list(sweep.config.params or {})
    table = Table(title=f"trials by {metric} ({'max' if sweep.config.maximize else 'min'})")
    for col in ("rank", "trial", "status", *keys, "seed", metric, "seconds"):
        table.add_column(col, justify="right" if col not in keys and col != "status" else "left")
    order = ranked(rows, sweep.config.maximize)
    for rank, r in enumerate(order[:SHOWN], 1):
        table.add_row(
            str(rank),
            str(r.trial.spec.index),
            r.status if r.stopped_at is None else f"stopped at step {r.stopped_at}",
            *(str(r.trial.params[k]) for k in keys),
            str(r.trial.seed),
            "" if r.value is None else f"{r.value:.4f}",
            "" if r.seconds is None else f"{r.seconds:.2f}",
        )
    console = Console()
    if not console.is_terminal:  # a pipe or a log file: do not squeeze the table into 80 columns
        console = Console(width=200)
    console.print(table)
    if len(order) > SHOWN:
        typer.echo(f"... {len(order) - SHOWN} more in results.csv on the sweep's run")
    for r in rows:
        if r.status != "FINISHED":
            typer.echo(f"trial {r.trial.spec.index} FAILED: {r.reason}", err=True)

    best = outcome.best
    if best is not None:
        setting = ", ".join(f"{k}={best.trial.params[k]}" for k in keys)
        typer.echo(
            f"best: trial {best.trial.spec.index} ({setting}, seed={best.trial.seed}): "
            f"{metric} {best.value:.4f}, run {best.run_id}"
        )
    else:
        typer.echo(f"best: none (no finished trial has {metric})")
    uri = mask_uri(outcome.uri)
    typer.echo(f"sweep run {outcome.parent_run_id} in {uri}")
    from runner.tracking import browse_line  # mlflow is loaded by now

    typer.echo(browse_line(uri, explicit_uri, outcome.experiment_id))


def sweep_hash(sweep: Sweep) -> str:
    """The identity of the whole sweep: its trials' config hashes, in order; for a search that
    picks its trials as it runs (tpe), everything that decides them."""
    if sweep.trials:
        hashes = [t.spec.config_hash for t in sweep.trials]
        return hashlib.sha256(json.dumps(hashes).encode()).hexdigest()
    c = sweep.config
    what = [c.method, c.params, sweep.seeds, c.n_trials, c.seed, batch(sweep), c.metric]
    what += [c.maximize, config_hash(sweep.base)]
    return hashlib.sha256(json.dumps(what).encode()).hexdigest()


def batch(sweep: Sweep) -> int:
    """tpe: points asked at a time."""
    return sweep.config.batch or DEFAULT_BATCH


def planned(sweep: Sweep) -> int:
    """How many trials the sweep makes; for tpe, at most (a point asked twice runs once)."""
    return len(sweep.trials) or (sweep.config.n_trials or 0) * len(sweep.seeds)


def trials_yaml(sweep: Sweep, trials: list[SweepTrial] | None = None) -> str:
    """The trial list (the sweep's, or `trials`): index, hash, swept values, seed and the full
    resolved config."""
    trials = [
        {
            "index": t.spec.index,
            "config_hash": t.spec.config_hash,
            "params": t.params,
            "seed": t.seed,
            "config": t.spec.config.to_dict(),
        }
        for t in (sweep.trials if trials is None else trials)
    ]
    return dump_records(trials)  # yaml.safe_dump takes minutes for 20,000 trials


def sweep_params(sweep: Sweep, execution: Any) -> dict[str, Any]:
    """The parent run's params: what the sweep file and the command line chose."""
    c = sweep.config
    tpe = {"sweep.batch": batch(sweep)} if c.method == "tpe" else {}
    return {
        "sweep.base": c.base,
        "sweep.method": c.method,
        "sweep.params": list(c.params or {}),
        "sweep.seeds": list(c.seeds) if c.seeds else [sweep.base.seed],
        "sweep.trials": planned(sweep),
        "sweep.metric": c.metric,
        "sweep.mode": "max" if c.maximize else "min",
        "sweep.backend": execution.backend,
        "sweep.n_jobs": execution.n_jobs,
        "sweep.retries": execution.retries,
    } | tpe


def log_summary(tracker: Any, parent: str, sweep: Sweep, rows: list[Row], best: Row | None) -> None:
    """The parent run's results.csv, plots, best params and metric, and counts."""
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
