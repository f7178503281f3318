"""Halving's child runs: one per configuration, continued rung after rung.

What a run holds of its rungs lets a resumed sweep replay the same decisions and go on where
each configuration stopped: a tag per rung with the metric and final training loss there
(`mgrun.at_step.<step>`, exact JSON), the step it stopped at (`mgrun.stopped_at_step`) and the
checkpoint of that step (`checkpoints/step_<step>.json`, with the run's metrics.csv).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from runner.commands.keep_top import read_metrics
from runner.config.halving import rungs
from runner.config.spec import Checkpoint, TrialSpec
from runner.config.sweep_file import Sweep

AT_STEP = "mgrun.at_step."
STOPPED = "mgrun.stopped_at_step"
# A rung is judged over the whole split its metric names; train_loss and train_accuracy are
# of one minibatch at each step, so a rung takes them over the whole training split.
WHOLE_SPLIT = {"train_loss": "final_train_loss", "train_accuracy": "final_train_accuracy"}


def rung_metric(metric: str) -> str:
    """What ranks the configurations at a rung, for the sweep's `metric`."""
    return WHOLE_SPLIT.get(metric, metric)


@dataclass
class Progress:
    """How far a configuration's run has got."""

    run_id: str
    step: int  # steps trained so far
    values: dict[int, tuple[float | None, float | None]] = field(default_factory=dict)
    full: bool = False  # the run has plots, the graph and the model
    checkpoint: Checkpoint | None = None  # None: read it from the store when needed


def complete(run: Any, steps: int) -> bool:
    """Did a stored run train to `steps`? (halving leaves runs stopped at a rung)"""
    return int(run.tags.get(STOPPED, steps)) >= steps


def stored_progress(run: Any, metric: str, steps: int) -> Progress:
    """A stored run's progress, from its tags; a run trained straight through has one value."""
    tags = run.tags
    values = {
        int(key.removeprefix(AT_STEP)): tuple(json.loads(value))
        for key, value in tags.items()
        if key.startswith(AT_STEP)
    }
    if STOPPED not in tags:
        value = run.metrics.get(rung_metric(metric))
        values[steps] = (value, run.metrics.get("final_train_loss"))
    step = int(tags.get(STOPPED, steps))
    return Progress(run.run_id, step, values, tags.get("mgrun.record", "full") == "full")


def load_checkpoint(tracker: Any, p: Progress) -> Checkpoint | None:
    """The checkpoint a run left where it stopped, None if it has none."""
    name = f"checkpoints/step_{p.step}.json"
    files = tracker.read_files(p.run_id, [name, "metrics.csv"])
    if name not in files:
        return None
    try:
        metrics = tuple(m for m in read_metrics(files.get("metrics.csv", b"")) if m[2] < p.step)
        return Checkpoint.from_json(files[name], metrics)
    except (ValueError, KeyError, TypeError):  # damaged: the configuration starts over
        return None


def rung_tags(
    sweep: Sweep, spec: TrialSpec, value: float | None, loss: float | None
) -> dict[str, str]:
    """A rung's tags: its index and step, its values, and a line for the run's description."""
    h, steps, stop = sweep.config.halving, spec.config.training.steps, spec.last_step
    assert h is not None and h.min_steps is not None
    rung = rungs(h.min_steps, h.eta, steps).index(stop)
    if stop < steps:
        note = f"stopped by successive halving at step {stop} of {steps} (rung {rung})"
    else:
        note = f"trained to the end, step {steps}, through successive halving (rung {rung})"
    return {
        "mgrun.rung": str(rung),
        STOPPED: str(stop),
        f"{AT_STEP}{stop}": json.dumps([value, loss]),
        "mlflow.note.content": note,
    }
