"""The MLflow pyfunc model of an mgrun run, logged as code (MLflow models-from-code): no pickles.

MLflow executes this file when it saves or loads the model. `load_context` reads the `model`
artifact (the run's `model.json`: layer sizes, activation, weights by parameter name, feature and
class names, feature scaling, decision rule) and rebuilds the engine's MLP. The `engine` package
travels in the model's code path, so loading needs neither mgrun nor `runner`: do not import
`runner` here.

`predict(df)` takes a pandas DataFrame with a column per training feature, by name (the model's
signature lists them; other columns are ignored), and returns a DataFrame with one row per input
row: `label` (the predicted class index, as in the training labels) and `class` (its name). A
frame without some feature column is refused in one line naming them. Features are raw values: a
model trained with `dataset.standardize` scales them itself.
"""

from __future__ import annotations

import json

import mlflow
import pandas as pd

from engine.batch import predict
from engine.nn import MLP


class MgrunModel(mlflow.pyfunc.PythonModel):
    """A trained engine MLP behind MLflow's pyfunc interface."""

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        with open(context.artifacts["model"]) as f:
            spec = json.load(f)
        self.features: list[str] = spec["feature_names"]
        self.classes: list[str] = spec["class_names"]
        self.scale: dict[str, list[float]] | None = spec.get("scale")
        self.decision: str | None = spec.get("decision")
        self.net = MLP(spec["sizes"][0], spec["sizes"][1:], spec["activation"])
        self.net.load_state_dict(spec["state"])

    def predict(
        self, context: mlflow.pyfunc.PythonModelContext, model_input: pd.DataFrame, params=None
    ) -> pd.DataFrame:
        df = pd.DataFrame(model_input)
        missing = [name for name in self.features if name not in df.columns]
        if missing:
            raise ValueError(f"missing columns {missing}; expected {self.features}")
        rows = df[self.features].astype(float).values.tolist()
        if self.scale:
            mean, std = self.scale["mean"], self.scale["std"]
            rows = [[(v - m) / s for v, m, s in zip(r, mean, std, strict=True)] for r in rows]
        labels = predict(self.net, rows, self.decision) if rows else []
        return pd.DataFrame({"label": labels, "class": [self.classes[k] for k in labels]})


mlflow.models.set_model(MgrunModel())
