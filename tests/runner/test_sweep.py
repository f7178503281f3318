"""Sweep files: validation messages, grid and random expansion, stable trial identity."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from runner.cli import app
from runner.commands.sweep import load as load_checked
from runner.config.sweep_file import load_sweep
from runner.errors import ConfigError
from tests import support
from tests.support import ROOT

BASE = """\
name: tiny
seed: 5
dataset: {kind: moons, n_samples: 40, noise: 0.1, test_fraction: 0.25}
model: {hidden: [4]}
training: {steps: 5, lr: 0.1}
"""


def write_sweep(tmp_path: Path, text: str) -> Path:
    return support.write_sweep(tmp_path, text, BASE, "configs/tiny.yaml", "experiments/s.yaml")


def sweep_error(path: Path, overrides: tuple[str, ...] = ()) -> str:
    with pytest.raises(ConfigError) as info:
        load_checked(path, overrides)
    msg = str(info.value)
    assert "\n" not in msg and info.value.exit_code == 2
    return msg


GRID = """\
method: grid
params:
  training.lr: [0.05, 0.5]
  model.hidden: [[4], [8, 8], [3]]
seeds: [1, 2]
metric: test_accuracy
"""


def test_grid_expands_in_key_order_then_seeds(tmp_path):
    sweep = load_sweep(write_sweep(tmp_path, GRID))
    got = [(t.params["training.lr"], t.params["model.hidden"], t.seed) for t in sweep.trials]
    assert got[:4] == [(0.05, [4], 1), (0.05, [4], 2), (0.05, [8, 8], 1), (0.05, [8, 8], 2)]
    assert len(got) == 12 and got[-1] == (0.5, [3], 2)
    assert [t.spec.index for t in sweep.trials] == list(range(12))
    for t in sweep.trials:
        cfg = t.spec.config
        assert (cfg.training.lr, list(cfg.model.hidden), cfg.seed) == (
            t.params["training.lr"],
            t.params["model.hidden"],
            t.seed,
        )
        assert cfg.name == "tiny" and cfg.training.steps == 5  # the rest comes from the base
    assert sweep.config.maximize  # accuracies are maximised unless mode says otherwise


def test_trial_identity_is_stable_and_distinct(tmp_path):
    path = write_sweep(tmp_path, GRID)
    hashes = [t.spec.config_hash for t in load_sweep(path).trials]
    assert hashes == [t.spec.config_hash for t in load_sweep(path).trials]
    assert len(set(hashes)) == len(hashes)


def test_set_overrides_the_base_and_changes_identity(tmp_path):
    path = write_sweep(tmp_path, GRID)
    plain = load_sweep(path)
    longer = load_sweep(path, ["training.steps=7"])
    assert {t.spec.config.training.steps for t in longer.trials} == {7}
    assert plain.trials[0].spec.config_hash != longer.trials[0].spec.config_hash


def test_without_seeds_each_point_uses_the_base_seed(tmp_path):
    sweep = load_sweep(write_sweep(tmp_path, "params: {training.lr: [0.1, 0.2]}\n"))
    assert [t.seed for t in sweep.trials] == [5, 5]
    assert sweep.config.metric == "train_loss" and not sweep.config.maximize


RANDOM = """\
method: random
n_trials: 30
seed: {seed}
params:
  training.lr: {{loguniform: [0.001, 0.1]}}
  training.momentum: {{uniform: [0.0, 0.5]}}
  training.steps: {{int: [2, 4]}}
  model.activation: {{choice: [relu, tanh]}}
  model.hidden: [[4], [6]]
"""


def test_random_draws_come_from_the_sweep_seed_only(tmp_path):
    a = [t.params for t in load_sweep(write_sweep(tmp_path, RANDOM.format(seed=0))).trials]
    b = [t.params for t in load_sweep(write_sweep(tmp_path, RANDOM.format(seed=0))).trials]
    c = [t.params for t in load_sweep(write_sweep(tmp_path, RANDOM.format(seed=1))).trials]
    assert a == b and a != c
    assert len(a) == 30
    for p in a:
        assert 0.001 <= p["training.lr"] <= 0.1 and 0.0 <= p["training.momentum"] <= 0.5
        assert p["training.steps"] in (2, 3, 4) and p["model.activation"] in ("relu", "tanh")
        assert p["model.hidden"] in ([4], [6])
    assert {p["training.steps"] for p in a} == {2, 3, 4}  # int bounds are inclusive
    logs = [math.log10(p["training.lr"]) for p in a]
    assert min(logs) < -2 < max(logs)  # spread over the decades, not bunched near 0.1


def test_duplicate_points_run_once(tmp_path):
    text = "method: random\nn_trials: 10\nparams: {model.activation: [relu, tanh]}\n"
    sweep = load_sweep(write_sweep(tmp_path, text))
    assert [t.params["model.activation"] for t in sweep.trials] in (
        ["relu", "tanh"],
        ["tanh", "relu"],
    )
    assert sweep.duplicates == 8


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("parms: {training.lr: [0.1]}\n", "parms: unknown key; did you mean 'params'?"),
        ("params: {training.lrr: [0.1]}\n", "params.training.lrr: not a config key; did you mean"),
        ("params: {training: [0.1]}\n", "params.training: not a config key; name a key inside"),
        ("params: {seed: [1, 2]}\n", "params.seed: use the sweep's `seeds"),
        ("params: {training.lr: 0.1}\n", "params.training.lr: grid needs a non-empty list"),
        ("params: {training.lr: {uniform: [0, 1]}}\n", "distributions need method: random"),
        ("params: {training.lr: [0.1, -1.0]}\n", "training.lr: must be > 0, got -1.0"),
        ("params: {training.lr: [0.1]}\nmetric: acc\n", "metric: unknown metric 'acc'"),
        ("params: {training.lr: [0.1]}\nmethod: random\n", "n_trials: required by method"),
        ("params: {training.lr: [0.1]}\nn_trials: 3\n", "n_trials: only used by method: random"),
        ("params: {training.lr: [0.1]}\nmode: maximum\n", "mode: unknown value 'maximum'"),
        ("params: {training.lr: [0.1]}\nseeds: [-1]\n", "seeds: must be >= 0"),
        ("params: {training.lr: [0.1]}\nexecution: {n_jobs: 0}\n", "execution.n_jobs: must not"),
        ("params: {training.lr: [0.1]}\nexecution: {backend: ray}\n", "execution.backend: unknown"),
        ("params: {training.lr: [0.1]}\nexecution: {retries: -1}\n", "execution.retries: must be"),
        (
            "method: random\nn_trials: 2\nparams: {training.lr: {loguniform: [0, 1]}}\n",
            "params.training.lr.loguniform: needs low > 0",
        ),
        (
            "method: random\nn_trials: 2\nparams: {training.lr: {gauss: [0, 1]}}\n",
            "params.training.lr.gauss: unknown distribution",
        ),
        (
            "method: random\nn_trials: 2\nparams: {training.steps: {int: [5.5, 9]}}\n",
            "params.training.steps.int: needs two whole numbers",
        ),
        (
            "params: {training.loss: [hinge, cross_entropy], dataset.kind: [spirals]}\n",
            "training.loss: hinge needs exactly 2 classes",
        ),
    ],
)
def test_invalid_sweeps_name_file_field_and_fix(tmp_path, text, expected):
    path = write_sweep(tmp_path, text)
    msg = sweep_error(path)
    assert msg.startswith(f"{path}: "), msg
    assert expected in msg, msg


def test_metric_needing_a_test_split_is_refused_without_one(tmp_path):
    path = write_sweep(tmp_path, "params: {training.lr: [0.1]}\nmetric: test_loss\n")
    msg = sweep_error(path, ("dataset.test_fraction=0.0",))
    assert "metric: test_loss needs a test split" in msg


def test_setting_a_swept_key_is_refused(tmp_path):
    msg = sweep_error(write_sweep(tmp_path, GRID), ("training.lr=0.3",))
    assert "params.training.lr: swept here, so --set training.lr has no effect" in msg


def test_missing_base_is_named(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("base: nowhere.yaml\nparams: {training.lr: [0.1]}\n")
    assert "base: " in sweep_error(path) and "nowhere.yaml not found" in sweep_error(path)


def test_bad_sweep_exits_2_and_records_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write_sweep(tmp_path, "params: {training.lr: [0.1, 0]}\n")
    db = tmp_path / "mlflow.db"
    result = CliRunner().invoke(app, ["sweep", str(path), "--tracking-uri", f"sqlite:///{db}"])
    assert result.exit_code == 2, result.output
    assert "training.lr: must be > 0" in result.output
    assert not db.exists() and not (tmp_path / "mlruns").exists()


def test_shipped_sweeps_load():
    grid = load_sweep(ROOT / "experiments" / "moons_grid.yaml")
    assert len(grid.trials) == 4 * 3 * 3
    rand = load_sweep(ROOT / "experiments" / "spirals_random.yaml")
    assert len(rand.trials) == 12 and rand.config.method == "random"


@pytest.mark.parametrize("metric", ["final_train_accuracy", "final_train_loss"])
def test_the_whole_training_split_metrics_can_rank_a_sweep(tmp_path, metric):
    path = write_sweep(tmp_path, f"params: {{training.lr: [0.1]}}\nmetric: {metric}\n")
    sweep = load_sweep(path)
    assert sweep.config.metric == metric
    assert sweep.config.maximize == metric.endswith("accuracy")
