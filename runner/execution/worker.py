"""What a worker process runs: one trial spec in, its complete record out. No mlflow here."""

from __future__ import annotations

import os
from pathlib import Path

from runner.config.spec import TrialSpec
from runner.datasets import Dataset, make_dataset
from runner.execution.lifeline import watch_parent
from runner.record import TrialRecord, TrialResult
from runner.training.files import make_record
from runner.training.trial import run_trial


def work(
    spec: TrialSpec, marks: str | None, full: bool = False, parent: int | None = None
) -> TrialRecord:
    """Mark the trial as started, train it, build its record (lean, or `full` with the
    pictures), unmark it. The dataset is built once for both; when drawing fails the record
    comes back without files, for the parent to try. A worker process of `parent` exits when
    `parent` dies (`runner.execution.lifeline`)."""
    watch_parent(parent)
    mark = Path(marks, str(spec.index)) if marks else None
    if mark:
        mark.write_text(str(os.getpid()))
    data = _dataset(spec)
    result = run_trial(spec, data=data)  # builds (and reports) the dataset if it failed here
    record = _record(spec, result, data, full)
    if mark:
        mark.unlink(missing_ok=True)
    return record


def draw(spec: TrialSpec, result: TrialResult) -> TrialRecord:
    """The full record of a trial that is over, from its result (its weights), without training
    again; without files when drawing fails, for the parent to try."""
    return _record(spec, result, _dataset(spec), full=True)


def _record(spec: TrialSpec, result: TrialResult, data: Dataset | None, full: bool) -> TrialRecord:
    try:
        return make_record(spec, result, data, full)
    except Exception:  # the parent draws them again and reports the error against this trial
        return make_record(spec, result, data, full, draw=False)


def died(spec: TrialSpec, reason: str) -> TrialRecord:
    """The record of a trial that never came back: its worker died."""
    return make_record(spec, TrialResult.of(spec, "FAILED", reason), None, False, draw=False)


def _dataset(spec: TrialSpec) -> Dataset | None:
    cfg = spec.config
    try:
        return make_dataset(cfg.dataset, cfg.seed, cfg.base_dir)
    except Exception:  # run_trial builds it again and turns the error into a FAILED result
        return None
