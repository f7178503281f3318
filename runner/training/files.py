"""The files of a trained run, as {relative path: bytes}, and the complete record of a trial.

Every run (a lean record):
    config.yaml              the resolved config
    metrics.csv              every point of every metric, by step (the run logs at most
                             tracking.max_points per metric)
    model.json               sizes, activation, decision rule, feature/class names, feature
                             scaling (when dataset.standardize), weights by name
    final_gradients.json     d(training objective)/d(parameter) at the final weights
    checkpoints/step_N.json  a trial stopped at step N < training.steps: what continuing needs
A full record adds the pictures (`mgrun train`, and a sweep's best trials):
    plots/loss.png           loss and accuracy curves, train and test
    plots/final_gradients.png
    plots/decision_boundary.png   2-D datasets only
    graph.dot (graph.svg)    the expression graph of the first training row (svg with Graphviz)

A FAILED result gets config.yaml, metrics.csv and, in full, plots/loss.png.
No mlflow here: a worker process builds the record and hands it to the parent.
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
from collections.abc import Sequence
from pathlib import Path

import yaml

from engine.activations import ACTIVATIONS
from engine.batch import predict
from engine.graph import draw_dot, graphviz_available, render, sample_graph
from engine.losses import LOSSES
from engine.nn import MLP
from runner.config.keys import flatten
from runner.config.run import RunConfig
from runner.config.spec import TrialSpec
from runner.datasets import Dataset
from runner.record import Metric, TrialRecord, TrialResult
from runner.training.trial import build_model

EXAMPLE_ROWS = 5


def make_record(
    spec: TrialSpec,
    result: TrialResult,
    data: Dataset | None,
    full: bool = True,
    draw: bool = True,
) -> TrialRecord:
    """The complete record of a trial, lean or `full`; files None when `draw` is False (for
    the parent to draw when a worker could not)."""
    cfg = spec.config
    return TrialRecord(
        result=result,
        params=flatten(cfg.to_dict()),
        files=trial_files(cfg, result, data, full) if draw else None,
        points=tuple(capped(result.metrics, cfg.tracking.max_points)),
        full=full,
        example=example_rows(data) if data is not None else (),
        feature_names=data.feature_names if data is not None else (),
        class_names=data.class_names if data is not None else (),
    )


def example_rows(data: Dataset) -> tuple[tuple[float, ...], ...]:
    """A few training rows as the model takes them: raw, before any standardization."""
    rows = data.X_train[:EXAMPLE_ROWS]
    if data.scale is None:
        return rows
    mean, std = data.scale
    return tuple(tuple(v * s + m for v, m, s in zip(r, mean, std, strict=True)) for r in rows)


def kept(n: int, cap: int) -> range | list[int]:
    """Which of n points to keep: all when n <= cap, else cap evenly spaced ones, first and last
    included."""
    if n <= cap:
        return range(n)
    return [round(i * (n - 1) / (cap - 1)) for i in range(cap)]


def capped(metrics: Sequence[Metric], cap: int) -> list[Metric]:
    """At most `cap` points of each metric (see `kept`)."""
    by_key: dict[str, list[Metric]] = {}
    for point in metrics:
        by_key.setdefault(point[0], []).append(point)
    return [pts[i] for pts in by_key.values() for i in kept(len(pts), cap)]


def metrics_csv(metrics: Sequence[Metric]) -> bytes:
    """Every point of every metric: a row per step, a column per metric (empty where a metric
    was not recorded at that step); values exact (repr)."""
    keys = list(dict.fromkeys(k for k, _, _ in metrics))
    rows: dict[int, dict[str, float]] = {}
    for key, value, step in metrics:
        rows.setdefault(step, {})[key] = value
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["step", *keys])
    for step, row in rows.items():
        w.writerow([step, *(repr(row[k]) if k in row else "" for k in keys)])
    return out.getvalue().encode()


def trial_files(
    config: RunConfig, result: TrialResult, data: Dataset | None, full: bool = True
) -> dict[str, bytes]:
    """Every file of the run, lean or `full`, by its path in the run's artifacts (`data` may be
    None only for a result that is not FINISHED)."""
    files = {"config.yaml": yaml.safe_dump(config.to_dict(), sort_keys=False).encode()}
    if result.metrics:
        files["metrics.csv"] = metrics_csv(result.metrics)
    model = None
    if result.status == "FINISHED":
        assert data is not None, "a finished trial's files need its dataset"
        model = build_model(config, data)
        model.load_state_dict(result.state)
        files["model.json"] = model_json(config, result, data, model)
        files["final_gradients.json"] = json.dumps(result.final_gradients, indent=1).encode()
    if result.checkpoint is not None:
        files[f"checkpoints/step_{result.checkpoint.step}.json"] = (
            result.checkpoint.to_json().encode()
        )
    if full:
        files |= _pictures(config, result, data, model)
    return files


def model_json(config: RunConfig, result: TrialResult, data: Dataset, model: MLP) -> bytes:
    """What the servable model needs: sizes, activation, decision rule, names, scaling, weights."""
    spec = {
        "sizes": model.sizes,
        "activation": model.activation,
        "decision": LOSSES[config.training.loss].decision,
        "loss": config.training.loss,
        "feature_names": list(data.feature_names),
        "class_names": list(data.class_names),
        "scale": dict(zip(("mean", "std"), data.scale, strict=True)) if data.scale else None,
        "fingerprint": result.fingerprint,
        "state": result.state,
    }
    return json.dumps(spec, indent=1).encode()


def _pictures(
    config: RunConfig, result: TrialResult, data: Dataset | None, model: MLP | None
) -> dict[str, bytes]:
    from runner.training import plots  # matplotlib: a lean worker starts without it

    files = {}
    if result.metrics:
        files["plots/loss.png"] = plots.loss_curves(result.metrics)
    if model is None or data is None:
        return files
    from runner.training.graph_picture import neuron_png

    files["plots/final_gradients.png"] = plots.final_gradients(result.final_gradients)
    decision = LOSSES[config.training.loss].decision
    if data.n_features == 2:
        files["plots/decision_boundary.png"] = plots.decision_boundary(
            lambda gx, gy: grid_classes(model, gx, gy, decision == "argmax"),
            data.X_train,
            data.y_train,
            names=data.feature_names,
            class_names=data.class_names,
            X_test=data.X_test,
            y_test=data.y_test,
        )
    else:  # more features than a plane shows: which classes the model tells apart
        X, y, split = (
            (data.X_test, data.y_test, "test")
            if data.X_test
            else (
                data.X_train,
                data.y_train,
                "training",
            )
        )
        files["plots/confusion_matrix.png"] = plots.confusion_matrix(
            y, predict(model, X, decision), data.class_names, f"confusion matrix, {split} split"
        )
    # the lesson's picture: one neuron of the trained model on one training row
    files["plots/neuron.png"] = neuron_png(model, data.X_train[0], 0, 0, "training row 0")
    files.update(graph_files(model, data))
    return files


def grid_classes(model: MLP, gx: list[float], gy: list[float], argmax: bool) -> list[list[int]]:
    """`predict` over the grid gx x gy as grid[j][i], in numpy: the engine takes ~0.3 s for the
    6400 points of a plot, which every logged trial would pay. Tests hold the two to agree."""
    import numpy as np  # with matplotlib, only where pictures are drawn

    xx, yy = np.meshgrid(gx, gy)
    a = np.column_stack([xx.ravel(), yy.ravel()])
    for layer in model.layers:
        w = np.array([[p.data for p in n.w] for n in layer.neurons])
        b = np.array([n.b.data for n in layer.neurons])
        a = ACTIVATIONS[layer.neurons[0].activation].array(a @ w.T + b, np)
    labels = a.argmax(axis=1) if argmax else (a[:, 0] > 0).astype(int)
    return labels.reshape(len(gy), len(gx)).tolist()


def graph_files(model: MLP, data: Dataset) -> dict[str, bytes]:
    """graph.dot (and graph.svg with Graphviz): the first training row through the model, with
    the gradients of its (first) output; the same picture as `mgrun graph`."""
    source = draw_dot(sample_graph(model, data.X_train[0], data.feature_names))
    files = {"graph.dot": source.encode()}
    if graphviz_available():
        with tempfile.TemporaryDirectory() as tmp:
            files["graph.svg"] = render(source, Path(tmp, "graph.svg")).read_bytes()
    return files
