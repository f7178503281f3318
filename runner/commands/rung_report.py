"""A halving sweep's parent run: `rungs.csv` (trial, rung, step, metric, promoted, and resumed:
the result was in the store already) and the picture of the rungs, from the rows of every rung
in the order they ran."""

from __future__ import annotations

import csv
import io
import math
import tempfile
from pathlib import Path
from typing import Any

from runner.commands.report import Row
from runner.commands.sweep_plots import halving_picture
from runner.config.halving import rungs
from runner.config.sweep_file import Sweep


def rungs_csv(history: list[Row], stops: list[int], metric: str) -> str:
    """One line per trial and rung it reached, in the order the rungs ran."""
    reached = _reached(history)
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["trial", "rung", "step", metric, "promoted", "resumed"])
    for r in history:
        index, stop = r.trial.spec.index, r.trial.spec.last_step
        value = "" if r.value is None else repr(r.value)
        w.writerow([index, stops.index(stop), stop, value, reached[index] > stop, r.resumed])
    return out.getvalue()


def _reached(history: list[Row]) -> dict[int, int]:
    """Each trial's furthest rung step."""
    found: dict[int, int] = {}
    for r in history:
        index = r.trial.spec.index
        found[index] = max(found.get(index, 0), r.trial.spec.last_step)
    return found


def log_rungs(tracker: Any, parent: str, sweep: Sweep, history: list[Row]) -> None:
    """rungs.csv and plots/halving.png on the sweep's parent run."""
    h, steps, metric = sweep.config.halving, sweep.base.training.steps, sweep.config.metric
    assert h is not None and h.min_steps is not None
    stops = rungs(h.min_steps, h.eta, steps)
    curves: dict[int, list[tuple[int, float]]] = {}
    for r in history:
        if r.status == "FINISHED" and r.value is not None and math.isfinite(r.value):
            curves.setdefault(r.trial.spec.index, []).append((r.trial.spec.last_step, r.value))
    files: dict[str, str | bytes] = {"rungs.csv": rungs_csv(history, stops, metric)}
    with tempfile.TemporaryDirectory() as tmp:
        png = halving_picture(curves, stops, metric, Path(tmp, "halving.png"))
        files["plots/halving.png"] = png.read_bytes()
    tracker.log_files(parent, files)
