"""The real datasets in configs/data: each config builds its data with the documented counts, and
every file matches the sha256 that configs/data/README.md records for it."""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from pathlib import Path

import pytest

from runner.config import TrialSpec, load_run_config
from runner.datasets import make_dataset
from runner.training.trial import run_trial

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
DATA = CONFIGS / "data"

# config name -> (file, features, rows per class name), as UCI documents them
REAL = {
    "iris": ("iris.csv", 4, {"setosa": 50, "versicolor": 50, "virginica": 50}),
    "wine": ("wine.csv", 13, {"1": 59, "2": 71, "3": 48}),
    "breast_cancer": ("breast_cancer.csv", 30, {"malignant": 212, "benign": 357}),
    "digits": (
        "digits.csv",
        64,
        dict(zip("0123456789", [178, 182, 177, 183, 181, 182, 181, 179, 174, 180], strict=True)),
    ),
}


def recorded_hashes() -> dict[str, str]:
    """file name -> sha256, from the table rows of configs/data/README.md."""
    text = (DATA / "README.md").read_text()
    return dict(re.findall(r"^\| `([\w.]+\.csv)` \|.*\| `([0-9a-f]{64})` \|$", text, re.M))


@pytest.mark.parametrize("name", REAL)
def test_config_builds_the_documented_dataset(name: str):
    file, n_features, per_class = REAL[name]
    cfg = load_run_config(CONFIGS / f"{name}.yaml")
    assert cfg.dataset.kind == "csv" and Path(cfg.dataset.path).name == file
    d = make_dataset(cfg.dataset, cfg.seed, cfg.base_dir)
    assert d.n_features == len(d.feature_names) == n_features
    assert d.n_classes == len(per_class)
    assert len(d.X_train) + len(d.X_test) == sum(per_class.values())
    assert len(d.X_test) > 0
    assert Counter(d.class_names[k] for k in d.y_train + d.y_test) == per_class


def test_every_data_file_has_its_recorded_sha256():
    hashes = recorded_hashes()
    assert set(hashes) == {p.name for p in DATA.glob("*.csv")}
    for file, digest in hashes.items():
        assert hashlib.sha256((DATA / file).read_bytes()).hexdigest() == digest, file


@pytest.mark.slow
def test_digits_config_reaches_95_percent_test_accuracy():
    result = run_trial(TrialSpec(load_run_config(CONFIGS / "digits.yaml")))
    assert result.status == "FINISHED", result.reason
    assert result.final_metrics["test_accuracy"] >= 0.95
