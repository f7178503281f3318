"""Running a sweep's trials a batch at a time and logging each as it completes; the parent
process does every MLflow write."""

from __future__ import annotations

import dataclasses
import time
import traceback
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from typing import Any

from runner import interrupts
from runner.commands.keep_top import run_name
from runner.commands.progress import SweepBar
from runner.commands.report import Row
from runner.config.sweep_file import Sweep, SweepTrial
from runner.datasets import Dataset, make_dataset
from runner.execution.backends import Backend
from runner.execution.supervisor import run_trials
from runner.record import TrialRecord

WAIT = 0.5  # seconds between looks at trials that another sweep is training


@dataclass
class Batches:
    """Runs a search method's batches: every trial of a batch gets its row (and its record, when
    it ran here); those with a FINISHED run in the experiment from it, the others run and logged
    as they complete."""

    tracker: Any
    parent: str
    sweep: Sweep
    earlier: dict[str, Any]
    backend: Backend
    retries: int
    bar: SweepBar
    datasets: Callable[..., Dataset] = make_dataset
    full: bool = False

    def __call__(self, batch: list[SweepTrial]) -> dict[int, tuple[Row, TrialRecord | None]]:
        done: dict[int, tuple[Row, TrialRecord | None]] = {}
        pending = self._resume(batch, done)
        claims = self.tracker.claims
        while pending:
            mine, held = claims.take(t.spec.config_hash for t in pending)
            self._run([t for t in pending if t.spec.config_hash in mine], done)
            waiting = [t for t in pending if t.spec.config_hash in held]
            if waiting:
                self._wait_for_others(waiting, held)
            pending = self._resume(waiting, done, finished_now=bool(waiting))
        return done

    def _resume(
        self,
        trials: list[SweepTrial],
        done: dict[int, tuple[Row, TrialRecord | None]],
        finished_now: bool = False,
    ) -> list[SweepTrial]:
        """Rows for the trials with a FINISHED run in the experiment; the others."""
        if finished_now:  # another sweep ran some of them meanwhile
            self.earlier.update(self.tracker.finished_runs())
        left = []
        for t in trials:
            run = self.earlier.get(t.spec.config_hash)
            if run is None:
                left.append(t)
                continue
            done[t.spec.index] = (_resumed(self.sweep, t, run), None)
            if finished_now:
                self.bar.advance("FINISHED")
        return left

    def _wait_for_others(self, trials: list[SweepTrial], held: dict[str, str]) -> None:
        """Until another sweep's claim on one of `trials` is released (or its process died)."""
        who = sorted(set(held.values()))
        self.bar.note(
            f"{len(trials)} trial(s) are being trained by another mgrun ({', '.join(who)}) on "
            "this store; waiting for their runs"
        )
        claims = self.tracker.claims
        while all(claims.holder(t.spec.config_hash) for t in trials):
            interrupts.check()
            time.sleep(WAIT)

    def _run(self, trials: list[SweepTrial], done: dict[int, tuple[Row, TrialRecord | None]]):
        if not trials:
            return
        by_index = {t.spec.index: t for t in trials}
        specs = [t.spec for t in trials]
        bar, claims = self.bar, self.tracker.claims
        results = run_trials(specs, self.backend, self.retries, _on_retry(bar), self.full)
        try:
            with closing(results):  # on Ctrl-C, closing stops the workers
                for record in results:
                    trial = by_index[record.index]
                    with interrupts.protected():  # a signal waits until the trial run is ended
                        row = _log_child(
                            self.tracker, self.parent, self.sweep, trial, record, self.datasets
                        )
                        claims.release(trial.spec.config_hash)
                    done[record.index] = (row, record)
                    bar.advance(row.status)
                    if row.status != "FINISHED":
                        bar.note(f"trial {record.index} FAILED: {row.reason}")
                    interrupts.check()  # a signal held back or swallowed while logging
        finally:  # interrupted: the trials not run are free for another sweep
            for t in trials:
                claims.release(t.spec.config_hash)


def _resumed(sweep: Sweep, t: SweepTrial, run: Any) -> Row:
    value, loss = run.metrics.get(sweep.config.metric), run.metrics.get("final_train_loss")
    full = run.tags.get("mgrun.record", "full") == "full"
    return Row(t, "FINISHED", value, run.run_id, resumed=True, final_loss=loss, full=full)


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
    start = time.perf_counter()
    name = run_name(trial, list(sweep.config.params or {}))
    if record.files is None:  # the worker could not draw them: here, errors are reported
        record = _drawn_here(record, trial, datasets)
    result = record.result
    status, reason = result.status, result.reason or ""
    run_id, problem = tracker.record_run(
        name, record, parent, {"mgrun.sweep_index": str(trial.spec.index)}
    )
    if problem:
        status, reason = "FAILED", f"could not record the trial: {problem}"
    return Row(
        trial,
        status,
        result.final_metrics.get(sweep.config.metric),
        run_id,
        seconds=result.seconds,
        reason=reason,
        log_seconds=time.perf_counter() - start,
        final_loss=result.final_metrics.get("final_train_loss"),
        full=record.full,
    )


def _drawn_here(
    record: TrialRecord, trial: SweepTrial, datasets: Callable[..., Dataset]
) -> TrialRecord:
    """The record with its files drawn in this process; if that fails too, the trial FAILED with
    the reason and a lean record (config.yaml, metrics.csv), which cannot fail."""
    from runner.training.files import trial_files

    cfg, result = trial.spec.config, record.result
    try:
        data = (
            datasets(cfg.dataset, cfg.seed, cfg.base_dir) if result.status == "FINISHED" else None
        )
        return dataclasses.replace(record, files=trial_files(cfg, result, data, record.full))
    except Exception as exc:
        failed = dataclasses.replace(result, status="FAILED")
        failed.reason = f"could not record the trial: {type(exc).__name__}: {exc}"
        failed.traceback = traceback.format_exc()
        files = trial_files(cfg, failed, None, full=False)
        return dataclasses.replace(record, result=failed, files=files, full=False)
