"""The tracking stage, the only code that imports mlflow: where the store is (`store`), the
`Tracker` that writes complete trial records to it (`tracker`), the pyfunc model that a
logged run serves (`pyfunc_model`), links into the UI (`links`) and MLflow's log levels (`logs`)."""

from runner.tracking.links import browse_line, experiment_url, run_url, ui_banner
from runner.tracking.logs import quiet_store_logs
from runner.tracking.store import (
    artifact_root,
    resolve_experiment,
    resolve_tracking_uri,
    server_command,
    ui_command,
)
from runner.tracking.tracker import STATUSES, RunGuard, Tracker, run_guard

quiet_store_logs()

__all__ = [
    "STATUSES",
    "RunGuard",
    "Tracker",
    "artifact_root",
    "browse_line",
    "experiment_url",
    "resolve_experiment",
    "resolve_tracking_uri",
    "run_guard",
    "run_url",
    "server_command",
    "ui_banner",
    "ui_command",
]
