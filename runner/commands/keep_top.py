"""A sweep's best trials get full records: plots, the graph and the servable model, drawn once
the ranking is known from the trial's stored weights, without training again. Every other
trial's run keeps its lean record."""

from __future__ import annotations

import csv
import heapq
import io
import json
from collections.abc import Callable
from typing import Any

from runner.commands.report import Row, rank_key, ranked
from runner.config.sweep_file import Sweep, SweepTrial
from runner.datasets import Dataset
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
) -> list[Row]:
    """Full records for the best `k` finished trials (None: all) whose runs lack them; the rows
    that got one."""
    top = [r for r in ranked(rows, sweep.config.maximize) if r.status == "FINISHED"]
    done = []
    for row in top if k is None else top[:k]:
        # another sweep on this store may be drawing the same run's record right now
        if row.full or not tracker.claims.take([f"{row.run_id}.full"])[0]:
            continue
        try:
            if _give_full(tracker, row, kept, datasets):
                done.append(row)
        finally:
            tracker.claims.release(f"{row.run_id}.full")
    return done


def _give_full(tracker: Any, row: Row, kept: Candidates, datasets: Callable[..., Dataset]) -> bool:
    spec = row.trial.spec
    cfg = spec.config
    if tracker.run_tag(row.run_id, "mgrun.record") == "full":  # another sweep drew it meanwhile
        row.full = True
        return False
    record = kept.get(spec.index) or _from_store(tracker, row)
    if record is None:
        return False  # an earlier run without its files: nothing to draw from
    data = datasets(cfg.dataset, cfg.seed, cfg.base_dir)
    tracker.add_full(row.run_id, make_record(spec, record.result, data, full=True))
    row.full = True
    return True


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
