"""The tracking stage, the only code that imports mlflow: where the store is (`store`), the
`Tracker` that writes complete trial records to it (`tracker`), and the pyfunc model that a
logged run serves (`pyfunc_model`)."""

import os

# Against a server, MLflow would print two "View run" lines and fetch the run again for every
# run that ends: one more request and two more lines per sweep trial.
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")

from runner.tracking.store import (  # noqa: E402
    artifact_root,
    resolve_experiment,
    resolve_tracking_uri,
    server_command,
    ui_command,
)
from runner.tracking.tracker import STATUSES, RunGuard, Tracker, run_guard  # noqa: E402

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
