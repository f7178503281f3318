"""Running a sweep's trials a batch at a time and logging each as it completes; the parent
process does every MLflow write. A rung of halving (a spec with `stop`) continues its
configuration's run from where the last rung left it (`runner.commands.rung_runs`)."""

from __future__ import annotations

import dataclasses
import time
import traceback
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from typing import Any

from runner import interrupts
from runner.commands.claiming import claim_key, wait_for_others
from runner.commands.keep_top import run_name
from runner.commands.progress import SweepBar
from runner.commands.report import Row
from runner.commands.rung_runs import (
    STOPPED,
    Progress,
    complete,
    load_checkpoint,
    rung_metric,
    rung_tags,
    stored_progress,
)
from runner.config.sweep_file import Sweep, SweepTrial
from runner.datasets import Dataset, make_dataset
from runner.execution.backends import Backend
from runner.execution.supervisor import run_trials
from runner.record import TrialRecord

Done = dict[int, tuple[Row, TrialRecord | None]]  # index -> row, and record if run here


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
    since: int = 0  # --fresh: the sweep's start (ms); earlier runs do not count
    runs: dict[str, Progress] = field(default_factory=dict)  # halving: by config hash
    history: list[Row] = field(default_factory=list)  # halving: every rung's rows

    def __call__(self, batch: list[SweepTrial]) -> Done:
        if any(t.spec.stop is not None for t in batch):
            going_on = {t.spec.config_hash for t in batch}
            for key, p in self.runs.items():  # the configurations that stopped for good
                if key not in going_on:
                    p.checkpoint = None
        done = self._run(batch)
        if any(t.spec.stop is not None for t in batch):
            self.history += [done[t.spec.index][0] for t in batch]
        return done

    def _run(self, batch: list[SweepTrial]) -> Done:
        """Rows for the batch: from the store, else trained here, else (claimed by another sweep
        on this store) from the store once that sweep has run them."""
        done: Done = {}
        pending = self._from_store(batch, done)
        while pending:
            keys = {claim_key(t): t for t in pending}
            mine, held = self.tracker.claims.take(keys)
            self._train(self._unless_done_meanwhile([keys[k] for k in mine], done), done)
            waiting = [keys[k] for k in held]
            if not waiting:
                break
            wait_for_others(self.tracker.claims, self.bar, waiting, held)
            self._reread()
            for t in waiting:  # what the other sweep did is read from the store again
                self.runs.pop(t.spec.config_hash, None)
            pending = self._from_store(waiting, done, waited=True)
        return done

    def _reread(self) -> None:
        """What the store holds now; with --fresh, only the runs begun since `since` (ms)."""
        runs = self.tracker.finished_runs().items()
        self.earlier.update((k, r) for k, r in runs if r.start_time >= self.since)

    def _unless_done_meanwhile(self, claimed: list[SweepTrial], done: Done) -> list[SweepTrial]:
        """The claimed trials that still need training: another sweep on this store may have
        finished some (and let go of their claims) since this one last read the store."""
        if not claimed:
            return claimed
        self._reread()
        for t in claimed:  # a configuration's rungs that another sweep ran: read them again
            key = t.spec.config_hash
            p, run = self.runs.get(key), self.earlier.get(key)
            if p and run and (run.run_id != p.run_id or int(run.tags.get(STOPPED, -1)) > p.step):
                del self.runs[key]
        left = self._from_store(claimed, done, waited=True)
        for t in claimed:
            if t not in left:
                self.tracker.claims.release(claim_key(t))
        return left

    def _from_store(
        self,
        trials: list[SweepTrial],
        done: Done,
        waited: bool = False,
    ) -> list[SweepTrial]:
        """Rows for the trials the store has already; the others."""
        left = []
        for t in trials:
            row = self._rung_resumed(t) if t.spec.stop is not None else self._resumed(t)
            if row is None:
                left.append(t)
                continue
            done[t.spec.index] = (row, None)
            if t.spec.stop is not None or waited:  # halving's bar counts every rung it plans
                self.bar.advance(row.status)
        return left

    def _train(self, trials: list[SweepTrial], done: Done) -> None:
        if not trials:
            return
        by_index = {t.spec.index: self._continued(t) for t in trials}
        specs = [t.spec for t in by_index.values()]
        bar, claims = self.bar, self.tracker.claims
        results = run_trials(specs, self.backend, self.retries, _on_retry(bar), self.full)
        try:
            with closing(results):  # on Ctrl-C, closing stops the workers
                for record in results:
                    trial = by_index[record.index]
                    with interrupts.protected():  # a signal waits until the trial run is ended
                        row = self._log(trial, record)
                        claims.release(claim_key(trial))
                    done[record.index] = (row, record)
                    bar.advance(row.status)
                    if row.status != "FINISHED":
                        bar.note(f"trial {record.index} FAILED: {row.reason}")
                    interrupts.check()  # a signal held back or swallowed while logging
        finally:  # interrupted: the trials not run are free for another sweep
            for t in trials:
                claims.release(claim_key(t))

    def _resumed(self, t: SweepTrial) -> Row | None:
        """The row of a trial whose config has a run in the store that trained to the end."""
        run = self.earlier.get(t.spec.config_hash)
        if run is None or not complete(run, t.spec.config.training.steps):
            return None
        value, loss = run.metrics.get(self.sweep.config.metric), run.metrics.get("final_train_loss")
        full = run.tags.get("mgrun.record", "full") == "full"
        return Row(t, "FINISHED", value, run.run_id, resumed=True, final_loss=loss, full=full)

    def _progress(self, spec: Any) -> Progress | None:
        key = spec.config_hash
        if key not in self.runs and key in self.earlier:
            steps = spec.config.training.steps
            self.runs[key] = stored_progress(self.earlier[key], self.sweep.config.metric, steps)
        return self.runs.get(key)

    def _rung_resumed(self, t: SweepTrial) -> Row | None:
        """The row of a rung that the configuration's run has reached already."""
        p, stop = self._progress(t.spec), t.spec.last_step
        if p is None or stop not in p.values:
            return None
        value, loss = p.values[stop]
        full = p.full and stop == p.step
        stopped = stop if stop < t.spec.config.training.steps else None
        return Row(
            t,
            "FINISHED",
            value,
            p.run_id,
            resumed=True,
            final_loss=loss,
            full=full,
            stopped_at=stopped,
        )

    def _continued(self, t: SweepTrial) -> SweepTrial:
        """A rung's trial from its configuration's checkpoint; from scratch, in a run of its
        own, when there is none before its stop."""
        p = self._progress(t.spec) if t.spec.stop is not None else None
        if p is None:
            return t
        if p.step < t.spec.last_step:
            start = p.checkpoint or load_checkpoint(self.tracker, p)
            if start is not None:
                return dataclasses.replace(t, spec=dataclasses.replace(t.spec, start=start))
        del self.runs[t.spec.config_hash]
        return t

    def _log(self, trial: SweepTrial, record: TrialRecord) -> Row:
        spec = trial.spec
        p = self.runs.get(spec.config_hash) if spec.start is not None else None
        row = _log_child(
            self.tracker,
            self.parent,
            self.sweep,
            trial,
            record,
            self.datasets,
            p.run_id if p else None,
        )
        if spec.stop is None:
            return row
        if row.status != "FINISHED":
            self.runs.pop(spec.config_hash, None)
            return row
        row.stopped_at = spec.stop if spec.stop < spec.config.training.steps else None
        values = (p.values if p else {}) | {spec.stop: (row.value, row.final_loss)}
        checkpoint = record.result.checkpoint
        self.runs[spec.config_hash] = Progress(row.run_id, spec.stop, values, row.full, checkpoint)
        return row


def _on_retry(bar: SweepBar):
    return lambda spec, what: bar.note(f"trial {spec.index}: {what}")


def _log_child(
    tracker: Any,
    parent: str,
    sweep: Sweep,
    trial: SweepTrial,
    record: TrialRecord,
    datasets: Callable[..., Dataset],
    continued: str | None = None,
) -> Row:
    """Log a trial's record as a new child run, or onto the run `continued` (a later rung)."""
    start = time.perf_counter()
    name = run_name(trial, list(sweep.config.params or {}))
    if record.files is None:  # the worker could not draw them: here, errors are reported
        record = _drawn_here(record, trial, datasets)
    result = record.result
    status, reason = result.status, result.reason or ""
    metric = sweep.config.metric
    tags = {"mgrun.sweep_index": str(trial.spec.index)}
    if trial.spec.stop is not None:
        metric = rung_metric(metric)
        finals = result.final_metrics
        tags |= rung_tags(sweep, trial.spec, finals.get(metric), finals.get("final_train_loss"))
    if continued is None:
        run_id, problem = tracker.record_run(name, record, parent, tags)
    else:
        run_id = continued
        since = trial.spec.start.step if trial.spec.start else 0
        problem = tracker.continue_run(run_id, record, since, tags)
    if problem:
        status, reason = "FAILED", f"could not record the trial: {problem}"
    return Row(
        trial,
        status,
        result.final_metrics.get(metric),
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
