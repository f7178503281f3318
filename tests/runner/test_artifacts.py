"""runner.training.files and the pyfunc model it feeds, without a tracking store."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml

from engine.batch import predict
from runner.config import TrialSpec, load_run_config, run_config_from_dict
from runner.datasets import make_dataset
from runner.tracking.pyfunc_model import MgrunModel
from runner.training.files import grid_classes, trial_files
from runner.training.trial import build_model, run_trial
from tests.support import CONFIGS


def _trained(dataset: dict, training: dict, model: dict | None = None):
    cfg = run_config_from_dict(
        {
            "name": "t",
            "seed": 5,
            "dataset": dataset,
            "model": model or {"hidden": [5]},
            "training": {"steps": 15, **training},
        }
    )
    data = make_dataset(cfg.dataset, cfg.seed, cfg.base_dir)
    return cfg, data, run_trial(TrialSpec(cfg))


def test_a_finished_trial_has_every_file():
    cfg, data, result = _trained({"kind": "moons", "n_samples": 30}, {})
    files = trial_files(cfg, result, data)
    expected = {
        "config.yaml",
        "metrics.csv",
        "model.json",
        "final_gradients.json",
        "plots/loss.png",
        "plots/final_gradients.png",
        "plots/decision_boundary.png",
        "plots/neuron.png",
        "graph.dot",
    }
    assert expected <= set(files) <= expected | {"graph.svg"}
    assert yaml.safe_load(files["config.yaml"]) == cfg.to_dict()
    spec = json.loads(files["model.json"])
    assert spec["state"] == result.state and spec["fingerprint"] == result.fingerprint
    assert spec["scale"] is None and spec["class_names"] == ["0", "1"]
    assert "digraph" in files["graph.dot"].decode()


def test_a_failed_trial_has_its_config_and_curves_only():
    cfg, data, result = _trained({"kind": "moons", "n_samples": 30}, {"loss": "mse", "lr": 1e5})
    assert result.status == "FAILED"
    assert set(trial_files(cfg, result, data)) == {"config.yaml", "metrics.csv", "plots/loss.png"}
    assert set(trial_files(cfg, result, data, full=False)) == {"config.yaml", "metrics.csv"}


def test_data_of_more_than_two_features_gets_a_confusion_matrix_instead():
    iris = {"kind": "csv", "path": str(CONFIGS / "data" / "iris.csv"), "label": "species"}
    cfg, data, result = _trained(iris, {"loss": "cross_entropy"})
    files = trial_files(cfg, result, data)
    assert "plots/confusion_matrix.png" in files and "plots/decision_boundary.png" not in files
    assert files["plots/neuron.png"][:8] == b"\x89PNG\r\n\x1a\n"


def test_a_lean_record_has_the_weights_and_gradients_but_nothing_drawn():
    cfg, data, result = _trained({"kind": "moons", "n_samples": 30}, {})
    lean = trial_files(cfg, result, data, full=False)
    assert set(lean) == {"config.yaml", "metrics.csv", "model.json", "final_gradients.json"}
    assert lean["model.json"] == trial_files(cfg, result, data)["model.json"]


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid"])
def test_the_numpy_grid_agrees_with_the_engine(activation):
    cfg, data, result = _trained(
        {"kind": "spirals", "n_samples": 60, "n_classes": 3},
        {"loss": "cross_entropy", "optimizer": "adam", "lr": 0.05},
        {"hidden": [6, 4], "activation": activation},
    )
    model = build_model(cfg, data)
    model.load_state_dict(result.state)
    gx = [-1.5 + 3 * i / 24 for i in range(25)]
    gy = [-1.2 + 2.4 * j / 19 for j in range(20)]
    grid = grid_classes(model, gx, gy, argmax=True)
    engine = predict(model, [[x, y] for y in gy for x in gx])
    assert [c for row in grid for c in row] == engine
    assert len(set(engine)) > 1  # a grid of one class would prove little


def test_recorded_scaling_reproduces_the_standardized_dataset_bit_for_bit():
    cfg = load_run_config(CONFIGS / "csv_example.yaml")
    data = make_dataset(cfg.dataset, cfg.seed, cfg.base_dir)
    raw = make_dataset(replace(cfg.dataset, standardize=False), cfg.seed, cfg.base_dir)
    mean, std = data.scale
    rescaled = [
        tuple((v - m) / s for v, m, s in zip(row, mean, std, strict=True)) for row in raw.X_train
    ]
    assert rescaled == list(data.X_train)


def test_the_pyfunc_model_takes_raw_features_by_name_and_refuses_others(tmp_path):
    cfg = load_run_config(CONFIGS / "csv_example.yaml", ["training.steps=20"])
    data = make_dataset(cfg.dataset, cfg.seed, cfg.base_dir)
    result = run_trial(TrialSpec(cfg))
    (tmp_path / "model.json").write_bytes(trial_files(cfg, result, data)["model.json"])
    model = MgrunModel()
    context = mlflow.pyfunc.PythonModelContext({"model": str(tmp_path / "model.json")}, None)
    model.load_context(context)

    raw = pd.read_csv(Path(cfg.base_dir, cfg.dataset.path))
    names = list(cfg.dataset.features)
    net = build_model(cfg, data)
    net.load_state_dict(result.state)
    mean, std = data.scale
    scaled = [
        [(v - m) / s for v, m, s in zip(row, mean, std, strict=True)]
        for row in raw[names].values.tolist()
    ]
    expected = predict(net, scaled)
    assert len(set(expected)) == 2

    by_name = model.predict(None, raw)  # extra columns (the label) are ignored
    assert by_name["label"].tolist() == expected
    assert by_name["class"].tolist() == [data.class_names[k] for k in expected]
    reordered = model.predict(None, raw[names[::-1]])
    assert reordered["label"].tolist() == expected
    # by position was accepted before the signature named the columns: now one clear line
    with pytest.raises(ValueError, match=r"^missing columns .*; expected"):
        model.predict(None, pd.DataFrame(raw[names].values))
    with pytest.raises(ValueError, match=r"^missing columns .*; expected"):
        model.predict(None, pd.DataFrame({"a": [1.0], "b": [2.0], "c": [3.0]}))
    assert model.predict(None, raw[names].iloc[:0])["label"].tolist() == []
