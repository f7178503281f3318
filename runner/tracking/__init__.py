"""The tracking stage, the only code that imports mlflow: where the store is (`store`), the
`Tracker` that writes complete trial records to it (`tracker`), the pyfunc model that a
logged run serves (`pyfunc_model`), links into the UI (`links`) and MLflow's log levels (`logs`)."""

import os

# Against a server, MLflow would print two "View run" lines and fetch the run again for every
# run that ends: one more request and two more lines per sweep trial.
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
# Logging a model reads its files back ("Downloading artifacts: 100%|...|") under our own bar.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

from runner.tracking.links import browse_line, experiment_url, run_url, ui_banner  # noqa: E402
from runner.tracking.logs import quiet_store_logs  # noqa: E402
from runner.tracking.store import (  # noqa: E402
    artifact_root,
    resolve_experiment,
    resolve_tracking_uri,
    server_command,
    ui_command,
)
from runner.tracking.tracker import STATUSES, RunGuard, Tracker, run_guard  # noqa: E402

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
