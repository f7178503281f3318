"""A sweep's best trials get full records: plots, the graph and the servable model, drawn once
the ranking is known from the trial's stored weights, without training again. Every other
trial's run keeps its lean record."""

from __future__ import annotations

import csv
import heapq
import io
import json
from collections.abc import Callable
from contextlib import closing
from typing import Any

from runner.commands.report import Row, rank_key, ranked
from runner.config.sweep_file import Sweep, SweepTrial
from runner.datasets import Dataset
from runner.execution.backends import Backend
from runner.execution.supervisor import draw_full
from runner.record import Metric, TrialRecord, TrialResult
from runner.training.files import make_record

LEAN_FILES = ("model.json", "final_gradients.json", "metrics.csv")


def run_name(trial: SweepTrial, keys: list[str]) -> str:
    """A child run's name after what varies: `lr=0.5 hidden=[16,16] seed=1`."""
    short = [k.rsplit(".", 1)[-1] for k in keys]
    names = [s if short.count(s) == 1 else k for s, k in zip(short, keys, strict=True)]
    parts = [f"{n}={_compact(trial.params[k])}" for n, k in zip(names, keys, strict=True)]
    return " ".join([*parts, f"seed={trial.seed}"])


def _compact(value: Any) -> str:
    return (
        json.dumps(value, separators=(",", ":")) if isinstance(value, (list, dict)) else str(value)
    )


class Candidates:
    """The records of the best `k` trials seen so far (k None: every one), kept while the
    results stream in so that the best can get full records without training again."""

    def __init__(self, k: int | None, maximize: bool):
        self.k, self.maximize = k, maximize
        self.heap: list[tuple[Any, int, TrialRecord]] = []  # worst first
        self.held: set[int] = set()  # the trial indices in the heap

    def offer(self, row: Row, record: TrialRecord) -> None:
        index = row.trial.spec.index
        if index in self.held:  # a later rung of halving replaces the earlier rung's record
            self.heap = [e for e in self.heap if e[1] != index]
            heapq.heapify(self.heap)
            self.held.discard(index)
        if self.k == 0 or row.status != "FINISHED" or row.full:
            return
        # heapq keeps the smallest first: negate the rank so that the worst is on top
        key = _Worse(rank_key(row, self.maximize))
        heapq.heappush(self.heap, (key, index, record))
        self.held.add(index)
        if self.k is not None and len(self.heap) > self.k:
            self.held.discard(heapq.heappop(self.heap)[1])

    def get(self, index: int) -> TrialRecord | None:
        return next((r for _, i, r in self.heap if i == index), None)


class _Worse:
    """Orders rank keys so that the worse trial comes first."""

    def __init__(self, key: tuple):
        self.key = key

    def __lt__(self, other: _Worse) -> bool:
        return self.key > other.key


def give_full_records(
    tracker: Any,
    sweep: Sweep,
    rows: list[Row],
    kept: Candidates,
    datasets: Callable[..., Dataset],
    k: int | None,
    backend: Backend,
) -> list[Row]:
    """Full records for the best `k` finished trials (None: all) whose runs lack them, drawn by
    the workers and logged as each arrives; the rows that got one."""
    top = [r for r in ranked(rows, sweep.config.maximize) if r.status == "FINISHED"]
    todo: dict[int, tuple[Row, TrialRecord]] = {}
    claimed: list[str] = []
    try:
        for row in top if k is None else top[:k]:
            # another sweep on this store may be drawing the same run's record right now
            key = f"{row.run_id}.full"
            if row.full or not tracker.claims.take([key])[0]:
                continue
            claimed.append(key)
            if record := _needs_full(tracker, row, kept):
                todo[row.trial.spec.index] = (row, record)
        pairs = [(row.trial.spec, record.result) for row, record in todo.values()]
        with closing(draw_full(pairs, backend)) as drawn:  # on Ctrl-C, closing stops the workers
            for record in drawn:
                row, _ = todo[record.index]
                spec = row.trial.spec
                if record.files is None:  # the worker could not draw: here, errors and all
                    data = datasets(spec.config.dataset, spec.config.seed, spec.config.base_dir)
                    record = make_record(spec, record.result, data, full=True)
                tracker.add_full(row.run_id, record)
                row.full = True
    finally:
        for key in claimed:
            tracker.claims.release(key)
    return [row for row, _ in todo.values() if row.full]


def _needs_full(tracker: Any, row: Row, kept: Candidates) -> TrialRecord | None:
    """The lean record to draw the trial's full one from; None when its run has one already
    (another sweep drew it meanwhile) or nothing to draw from."""
    if tracker.run_tag(row.run_id, "mgrun.record") == "full":
        row.full = True
        return None
    # None: an earlier run without its files
    return kept.get(row.trial.spec.index) or _from_store(tracker, row)


def _from_store(tracker: Any, row: Row) -> TrialRecord | None:
    """A resumed trial's result, rebuilt from the lean record its run holds."""
    files = tracker.read_files(row.run_id, LEAN_FILES)
    if "model.json" not in files:
        return None
    model = json.loads(files["model.json"])
    spec = row.trial.spec
    result = TrialResult.of(spec)
    result.state, result.fingerprint = model["state"], model["fingerprint"]
    result.final_gradients = json.loads(files.get("final_gradients.json", b"{}"))
    result.metrics = read_metrics(files.get("metrics.csv", b""))
    return TrialRecord(result, {}, None)


def read_metrics(text: bytes) -> list[Metric]:
    rows = list(csv.reader(io.StringIO(text.decode())))
    if not rows:
        return []
    keys = rows[0][1:]
    return [
        (key, float(cell), int(row[0]))
        for row in rows[1:]
        for key, cell in zip(keys, row[1:], strict=True)
        if cell
    ]
