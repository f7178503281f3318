"""`mgrun train`: validate everything, then train one model in this process and record it."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import typer

from runner.commands.progress import step_progress
from runner.config import TrialSpec, check_loss_fits, flatten, load_run_config
from runner.datasets import make_dataset
from runner.record import Metric
from runner.training.files import make_record
from runner.training.trial import run_trial


class _MetricStream:
    """Sends metrics to the store in batches about once a second, so the UI fills in live."""

    def __init__(self, tracker, run_id: str, every: float = 1.0):
        self.tracker, self.run_id, self.every = tracker, run_id, every
        self.buffer: list[Metric] = []
        self.last = time.monotonic()

    def add(self, points: list[Metric]) -> None:
        self.buffer += points
        if time.monotonic() - self.last >= self.every:
            self.flush()

    def flush(self) -> None:
        if self.buffer:
            self.tracker.log_metrics(self.run_id, self.buffer)
            self.buffer = []
        self.last = time.monotonic()


def train_command(
    path: Path,
    overrides: Sequence[str],
    tracking_uri: str | None,
    experiment: str | None,
    show_progress: bool,
) -> int:
    """Returns the exit code: 0 trained, 1 failed or diverged."""
    cfg = load_run_config(path, overrides)
    data = make_dataset(cfg.dataset, cfg.seed, cfg.base_dir)
    check_loss_fits(cfg, data)
    spec = TrialSpec(cfg)

    from runner.tracking import Tracker, resolve_experiment, resolve_tracking_uri, run_guard

    uri = resolve_tracking_uri(tracking_uri, cfg.tracking.uri)
    tracker = Tracker(uri, resolve_experiment(experiment, cfg.tracking.experiment, cfg.name))
    run_id = tracker.start_run(cfg.name, tags={"mgrun.config_hash": spec.config_hash})
    with run_guard(tracker, run_id) as guard:
        tracker.log_params(run_id, flatten(cfg.to_dict()))
        stream = _MetricStream(tracker, run_id)
        with step_progress(cfg.training.steps, cfg.name, enabled=show_progress) as bar:

            def on_step(step: int, points: list[Metric]) -> None:
                stream.add(points)
                bar.update(step, {key: value for key, value, _ in points})

            try:
                result = run_trial(spec, on_step=on_step, data=data)
            finally:
                stream.flush()
        tracker.log_record(run_id, make_record(spec, result, data), params=False, metrics=False)
        guard.status = "FINISHED" if result.status == "FINISHED" else "FAILED"
        guard.reason = result.reason
        guard.traceback = result.traceback

    _summary(result, run_id, uri, tracking_uri is not None, tracker.experiment_id)
    return 0 if result.status == "FINISHED" else 1


def _summary(result, run_id: str, uri: str, explicit_uri: bool, experiment_id: str) -> None:
    from runner.tracking import browse_line

    final = result.final_metrics
    shown = [
        k for k in ("train_loss", "train_accuracy", "test_loss", "test_accuracy") if k in final
    ]
    line = ", ".join(f"{k} {final[k]:.4f}" for k in shown)
    if result.status == "FINISHED":
        typer.echo(f"finished in {result.seconds:.2f} s: {line}")
    else:
        typer.secho(f"FAILED: {result.reason}", err=True, fg=typer.colors.RED)
    typer.echo(f"run {run_id} in {uri}")
    typer.echo(browse_line(uri, explicit_uri, experiment_id, run_id))
