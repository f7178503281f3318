"""`mgrun train`: validate everything, then train one model (in a child process, while this one
opens the store) and record it."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import typer

from runner.commands.progress import step_progress
from runner.commands.store import open_tracker
from runner.config import TrialSpec, check_loss_fits, flatten, load_run_config
from runner.config.limits import check_name_option
from runner.datasets import make_dataset
from runner.execution.background import Background
from runner.record import Metric
from runner.redact import mask_uri
from runner.training.files import kept, make_record
from runner.training.trial import expected_points


class _MetricStream:
    """Sends metrics to the store in batches about once a second, so the UI fills in live;
    at most `cap` points per metric, the ones a finished record would keep, and the last."""

    def __init__(self, tracker, run_id: str, cap: int, expected: dict[str, int], every=1.0):
        self.tracker, self.run_id, self.every = tracker, run_id, every
        self.keep = {key: set(kept(n, cap)) for key, n in expected.items()}
        self.seen: dict[str, int] = {}
        self.last_point: dict[str, Metric] = {}
        self.buffer: list[Metric] = []
        self.last = time.monotonic()

    def add(self, points: list[Metric]) -> None:
        for point in points:
            key = point[0]
            i = self.seen[key] = self.seen.get(key, -1) + 1
            if key not in self.keep or i in self.keep[key]:
                self.buffer.append(point)
                self.last_point.pop(key, None)
            else:
                self.last_point[key] = point
        if time.monotonic() - self.last >= self.every:
            self.flush()

    def flush(self, final: bool = False) -> None:
        if final:  # a run stopped early still shows where each metric ended
            self.buffer += self.last_point.values()
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
    check_name_option("--experiment", experiment)
    cfg = load_run_config(path, overrides)
    data = make_dataset(cfg.dataset, cfg.seed, cfg.base_dir)
    check_loss_fits(cfg, data)
    spec = TrialSpec(cfg)
    job = Background(spec, data)  # trains while this process imports mlflow and opens the store
    try:
        from runner.tracking import resolve_experiment, resolve_tracking_uri, run_guard

        uri = resolve_tracking_uri(tracking_uri, cfg.tracking.uri)
        experiment_name = resolve_experiment(experiment, cfg.tracking.experiment, cfg.name)
        tracker = open_tracker(uri, experiment_name)
        run_id = tracker.start_run(cfg.name, tags={"mgrun.config_hash": spec.config_hash})
        with run_guard(tracker, run_id) as guard:
            tracker.log_params(run_id, flatten(cfg.to_dict()))
            expected = expected_points(cfg, bool(data.X_test))
            stream = _MetricStream(tracker, run_id, cfg.tracking.max_points, expected)
            with step_progress(cfg.training.steps, cfg.name, enabled=show_progress) as bar:
                try:
                    for step, points in job.steps():
                        stream.add(points)
                        bar.update(step, {key: value for key, value, _ in points})
                finally:
                    stream.flush(final=True)
            record = job.record()
            if record.files is None:  # the training process could not draw them: errors show
                record = make_record(spec, record.result, data)
            tracker.log_record(run_id, record, params=False, metrics=False)
            result = record.result
            guard.status = "FINISHED" if result.status == "FINISHED" else "FAILED"
            guard.reason = result.reason
            guard.traceback = result.traceback
    finally:
        job.stop()

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
    uri = mask_uri(uri)
    typer.echo(f"run {run_id} in {uri}")
    typer.echo(browse_line(uri, explicit_uri, experiment_id, run_id))
