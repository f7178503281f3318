"""What a trial leaves behind: its result, and the complete record that tracking writes.

Both are plain picklable data: a sweep worker builds the record and sends it to the parent,
which hands it to `runner.tracking` unchanged. Tracking needs nothing else to log a run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from runner.config.spec import Checkpoint, Metric, TrialSpec


@dataclass
class TrialResult:
    """What came of a trial; FAILED results carry the metrics up to the failure."""

    status: str  # FINISHED | FAILED
    config_hash: str
    index: int = 0
    reason: str | None = None
    traceback: str | None = None
    metrics: list[Metric] = field(default_factory=list)
    final_metrics: dict[str, float] = field(default_factory=dict)
    state: dict[str, float] = field(default_factory=dict)
    final_gradients: dict[str, float] = field(default_factory=dict)
    fingerprint: str = ""
    checkpoint: Checkpoint | None = None  # where a trial stopped before training.steps
    started: float = 0.0  # wall clock (time.time()) when training began
    seconds: float = 0.0

    @classmethod
    def of(
        cls, spec: TrialSpec, status: str = "FINISHED", reason: str | None = None
    ) -> TrialResult:
        """An empty result for `spec`: to fill in, or, FAILED with a reason, a trial that never
        came back (its worker died)."""
        return cls(status=status, config_hash=spec.config_hash, index=spec.index, reason=reason)


@dataclass(frozen=True)
class TrialRecord:
    """Everything a trial's run holds, ready to write.

    `files` maps a path in the run's artifacts to its bytes (config.yaml, model.json,
    metrics.csv, and in a full record the plots and the graph); None when the worker could not
    draw them, for the sweep loop to draw again. `points` are the metric points to log, at most
    `tracking.max_points` per metric (metrics.csv has them all). A full record also gets the
    servable model. `example` holds a few training rows as the model takes them (raw features).
    """

    result: TrialResult
    params: dict[str, Any]  # the resolved config, flattened to dotted keys
    files: dict[str, bytes] | None
    points: tuple[Metric, ...] = ()
    full: bool = True
    example: tuple[tuple[float, ...], ...] = ()
    feature_names: tuple[str, ...] = ()
    class_names: tuple[str, ...] = ()

    @property
    def index(self) -> int:
        return self.result.index

    @property
    def start_ms(self) -> int:
        return int(self.result.started * 1000)

    @property
    def end_ms(self) -> int:
        return int((self.result.started + self.result.seconds) * 1000)
