"""The tracking stage, the only code that imports mlflow: where the store is (`store`), the
`Tracker` that writes complete trial records to it (`tracker`), and the pyfunc model that a
logged run serves (`pyfunc_model`)."""

from runner.tracking.store import (
    artifact_root,
    resolve_experiment,
    resolve_tracking_uri,
    server_command,
    ui_command,
)
from runner.tracking.tracker import STATUSES, RunGuard, Tracker, run_guard

__all__ = [
    "STATUSES",
    "RunGuard",
    "Tracker",
    "artifact_root",
    "resolve_experiment",
    "resolve_tracking_uri",
    "run_guard",
    "server_command",
    "ui_command",
]
