"""The pyfunc model of a run, logged as code with the engine beside it (no pickles)."""

from __future__ import annotations

import logging
import tempfile
from importlib.metadata import version
from pathlib import Path

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import LoggedModelOutput, LoggedModelStatus
from mlflow.models import Model, ModelSignature
from mlflow.types import ColSpec, Schema
from mlflow.utils import requirements_utils

import engine

PYFUNC_FILE = Path(__file__).with_name("pyfunc_model.py")
ENGINE_DIR = Path(engine.__file__).parent
# An INFO line per logged model ("Validating input example ...") would drown a sweep's progress.
logging.getLogger("mlflow.pyfunc").setLevel(logging.WARNING)
# We pin exactly the versions installed here, so MLflow's check that they are installed can only
# agree; but its first use maps every installed module to its distribution (about a second of a
# `mgrun train`). With the map empty it looks each pinned package up by name instead.
if getattr(requirements_utils, "_MODULES_TO_PACKAGES", {}) is None:
    requirements_utils._MODULES_TO_PACKAGES = {}
PREDICTIONS = Schema([ColSpec("long", "label"), ColSpec("string", "class")])


def signature(features: list[str]) -> ModelSignature:
    """One double column per feature, by name, and the predictions. The columns are marked
    optional only so that MLflow hands every frame to `MgrunModel.predict`, which refuses a
    missing one in one line naming it; MLflow's own refusal embeds the whole frame in its
    message. Extra columns are dropped, with a warning that names them."""
    inputs = Schema([ColSpec("double", name, required=False) for name in features])
    return ModelSignature(inputs=inputs, outputs=PREDICTIONS)


def log_model(
    client: MlflowClient,
    experiment_id: str,
    run_id: str,
    model_json: Path,
    example: pd.DataFrame,
    step: int,
) -> str:
    """The pyfunc model as an MLflow 3 logged model of the run, linked to it at `step`; its id."""
    logged = client.create_logged_model(
        experiment_id, name="model", source_run_id=run_id, model_type="mgrun.MLP"
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "model")
        try:
            mlflow.pyfunc.save_model(
                str(path),
                python_model=str(PYFUNC_FILE),
                artifacts={"model": str(model_json)},
                code_paths=[str(ENGINE_DIR)],
                pip_requirements=[f"mlflow=={mlflow.__version__}", f"pandas=={version('pandas')}"],
                signature=signature([str(c) for c in example.columns]),
                input_example=example,
                mlflow_model=Model(
                    artifact_path=logged.artifact_location,
                    run_id=run_id,
                    model_uuid=logged.model_id,
                    model_id=logged.model_id,
                ),
            )
            client.log_model_artifacts(logged.model_id, str(path))
            client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step)])
        except BaseException:
            client.finalize_logged_model(logged.model_id, LoggedModelStatus.FAILED)
            raise
        client.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
        return logged.model_id
