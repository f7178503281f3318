"""The files of a trained run, as {relative path: bytes}: what `runner.tracking` uploads.

    config.yaml              the resolved config
    model.json               sizes, activation, decision rule, feature/class names, feature
                             scaling (when dataset.standardize), weights by name
    final_gradients.json     d(training objective)/d(parameter) at the final weights
    plots/loss.png           loss and accuracy curves, train and test
    plots/final_gradients.png
    plots/decision_boundary.png   2-D datasets only
    graph.dot (graph.svg)    the expression graph of the first training row (svg with Graphviz)

A FAILED result gets only config.yaml and, when it logged any metrics, plots/loss.png.
No mlflow here: a worker process may build these files and hand the bytes to the parent.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import yaml

from engine.graph import draw_dot, graphviz_available, render
from engine.nn import MLP
from runner import plots
from runner.trial import build_model


def trial_files(config, result, dataset) -> dict[str, bytes]:
    """Every file of the run, by its path in the run's artifacts."""
    files = {"config.yaml": yaml.safe_dump(config.to_dict(), sort_keys=False).encode()}
    if result.metrics:
        files["plots/loss.png"] = plots.loss_curves(result.metrics)
    if result.status != "FINISHED":
        return files
    model = build_model(config, dataset)
    model.load_state_dict(result.state)
    argmax = config.training.loss == "cross_entropy"
    spec = {
        "sizes": model.sizes,
        "activation": model.activation,
        "decision": "argmax" if argmax else "sign",
        "loss": config.training.loss,
        "feature_names": list(dataset.feature_names),
        "class_names": list(dataset.class_names),
        "scale": dict(zip(("mean", "std"), dataset.scale, strict=True)) if dataset.scale else None,
        "fingerprint": result.fingerprint,
        "state": result.state,
    }
    files["model.json"] = json.dumps(spec, indent=1).encode()
    files["final_gradients.json"] = json.dumps(result.final_gradients, indent=1).encode()
    files["plots/final_gradients.png"] = plots.final_gradients(result.final_gradients)
    if dataset.n_features == 2:
        files["plots/decision_boundary.png"] = plots.decision_boundary(
            lambda gx, gy: grid_classes(model, gx, gy, argmax),
            dataset.X_train,
            dataset.y_train,
            names=dataset.feature_names,
        )
    files.update(_graph(model, dataset.X_train[0]))
    return files


_NP_ACT = {
    "relu": lambda z: np.maximum(z, 0.0),
    "tanh": np.tanh,
    "sigmoid": lambda z: 0.5 * (1.0 + np.tanh(0.5 * z)),  # no overflow for large |z|
    "linear": lambda z: z,
}


def grid_classes(model: MLP, gx: list[float], gy: list[float], argmax: bool) -> list[list[int]]:
    """`predict` over the grid gx x gy as grid[j][i], in numpy: the engine takes ~0.3 s for the
    6400 points of a plot, which every logged trial would pay. Tests hold the two to agree."""
    xx, yy = np.meshgrid(gx, gy)
    a = np.column_stack([xx.ravel(), yy.ravel()])
    for layer in model.layers:
        w = np.array([[p.data for p in n.w] for n in layer.neurons])
        b = np.array([n.b.data for n in layer.neurons])
        a = _NP_ACT[layer.neurons[0].activation](a @ w.T + b)
    labels = a.argmax(axis=1) if argmax else (a[:, 0] > 0).astype(int)
    return labels.reshape(len(gy), len(gx)).tolist()


def _graph(model: MLP, x: Sequence[float]) -> dict[str, bytes]:
    """The graph of one row through the model, with the gradients of its (first) output."""
    y = model(list(x))
    root = y[0] if isinstance(y, list) else y
    root.backward()
    source = draw_dot(root)
    files = {"graph.dot": source.encode()}
    if graphviz_available():
        with tempfile.TemporaryDirectory() as tmp:
            files["graph.svg"] = render(source, Path(tmp, "graph.svg")).read_bytes()
    return files
