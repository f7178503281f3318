"""`mgrun sweep` end to end in this process: real loky workers, a real sqlite MLflow store."""

from __future__ import annotations

import csv
import dataclasses
import io
from pathlib import Path

import pytest
from typer.testing import CliRunner

from runner.cli import app
from runner.commands.sweep import Execution, run_sweep
from runner.config import TrialSpec
from runner.config.sweep_file import load_sweep
from runner.execution.backends import LokyBackend
from tests import support

BASE = """\
name: tiny
seed: 5
dataset: {kind: moons, n_samples: 40, noise: 0.1, test_fraction: 0.25}
model: {hidden: [4]}
training: {steps: 6, lr: 0.1, eval_every: 3}
"""


def write_sweep(tmp_path: Path, text: str, base: str = BASE) -> Path:
    return support.write_sweep(tmp_path, text, base)


def sweep(tmp_path: Path, path: Path, *args: str) -> tuple[int, str]:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    argv = ["sweep", str(path), "--tracking-uri", uri, "--no-progress", *args]
    result = CliRunner().invoke(app, argv)
    return result.exit_code, result.output


def runs(tmp_path: Path, experiment: str = "s") -> tuple[list, list]:
    """(parent runs, child runs) of the experiment, oldest first."""
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name(experiment)
    found = client.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"])
    parents = [r for r in found if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in found if "mlflow.parentRunId" in r.data.tags]
    return parents, children


def artifact(tmp_path: Path, run_id: str, name: str) -> Path:
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    return Path(client.download_artifacts(run_id, name, str(tmp_path / run_id)))


def metric_points(tmp_path: Path, run_id: str, key: str) -> int:
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    return len(client.get_metric_history(run_id, key))


GRID = "params: {training.lr: [0.1, 0.5]}\nseeds: [1, 2]\nmetric: test_accuracy\n"


@pytest.mark.timeout(300)
def test_a_sweep_records_one_parent_and_a_child_per_trial(tmp_path):
    path = write_sweep(tmp_path, GRID)
    code, out = sweep(tmp_path, path, "--n-jobs", "2")
    assert code == 0, out
    (parent,), children = runs(tmp_path)
    assert parent.info.status == "FINISHED" and len(children) == 4
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    assert {c.info.status for c in children} == {"FINISHED"}
    expected = {t.spec.config_hash for t in load_sweep(path).trials}
    assert {c.data.tags["mgrun.config_hash"] for c in children} == expected
    for child in children:  # everything `mgrun train` logs: every step, params, the model
        assert metric_points(tmp_path, child.info.run_id, "train_loss") == 6
        assert metric_points(tmp_path, child.info.run_id, "test_accuracy") == 2
        assert child.data.params["training.steps"] == "6"
        assert child.data.tags["mgrun.fingerprint"]

    rows = list(
        csv.DictReader(
            io.StringIO(artifact(tmp_path, parent.info.run_id, "results.csv").read_text())
        )
    )
    assert [r["index"] for r in rows] == ["0", "1", "2", "3"]
    assert [(r["training.lr"], r["seed"]) for r in rows] == [
        ("0.1", "1"),
        ("0.1", "2"),
        ("0.5", "1"),
        ("0.5", "2"),
    ]
    assert {r["run_id"] for r in rows} == {c.info.run_id for c in children}
    best = max(rows, key=lambda r: (float(r["test_accuracy"]), -int(r["index"])))
    assert parent.data.tags["mgrun.best_run_id"] == best["run_id"]
    assert parent.data.metrics["test_accuracy"] == float(best["test_accuracy"])
    assert parent.data.params["training.lr"] == best["training.lr"]
    assert artifact(tmp_path, parent.info.run_id, "s.yaml").read_text() == path.read_text()
    trials = artifact(tmp_path, parent.info.run_id, "trials.yaml").read_text()
    assert trials.count("config_hash:") == 4
    plot = artifact(tmp_path, parent.info.run_id, "plots/training.lr.png").read_bytes()
    assert plot.startswith(b"\x89PNG")
    assert f"best: trial {best['index']} (training.lr={best['training.lr']}" in out


@pytest.mark.timeout(300)
def test_a_diverging_trial_is_a_failed_run_and_the_rest_go_on(tmp_path):
    text = "params: {training.lr: [0.1, 1.0e300, 0.5]}\n"
    code, out = sweep(tmp_path, write_sweep(tmp_path, text), "--n-jobs", "2")
    assert code == 1, out
    (parent,), children = runs(tmp_path)
    status = {c.data.params["training.lr"]: c.info.status for c in children}
    assert status == {"0.1": "FINISHED", "1e+300": "FAILED", "0.5": "FINISHED"}
    (failed,) = [c for c in children if c.info.status == "FAILED"]
    assert failed.data.tags["mgrun.error"].startswith("diverged at step")
    assert parent.info.status == "FINISHED" and parent.data.tags["mgrun.trials_failed"] == "1"
    assert "1 failed" in out


@pytest.mark.timeout(300)
def test_a_trial_that_raises_is_a_failed_run_with_its_traceback(tmp_path):
    """A bug inside training (here: a config that skipped validation) fails only its trial."""
    path = write_sweep(tmp_path, "params: {training.lr: [0.1, 0.2, 0.3]}\n")
    sweep_ = load_sweep(path)
    broken = sweep_.trials[1].spec.config
    broken = dataclasses.replace(broken, model=dataclasses.replace(broken.model, activation="?"))
    trials = list(sweep_.trials)
    trials[1] = dataclasses.replace(trials[1], spec=TrialSpec(broken, index=1))
    sweep_ = dataclasses.replace(sweep_, trials=tuple(trials))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    execution = Execution("loky", 2, 1)
    outcome = run_sweep(sweep_, LokyBackend(2), execution, tracking_uri=uri, show_progress=False)
    assert [r.status for r in outcome.rows] == ["FINISHED", "FAILED", "FINISHED"]
    assert not outcome.all_finished
    (parent,), children = runs(tmp_path)
    (failed,) = [c for c in children if c.info.status == "FAILED"]
    assert failed.data.tags["mgrun.error"].startswith("ValueError: unknown activation")
    assert "Traceback" in artifact(tmp_path, failed.info.run_id, "error.txt").read_text()
    assert outcome.rows[1].run_id == failed.info.run_id


@pytest.mark.timeout(300)
def test_fingerprints_do_not_depend_on_n_jobs(tmp_path):
    path = write_sweep(tmp_path, "params: {training.lr: [0.1, 0.5]}\nseeds: [1, 2]\n")
    prints = {}
    for n_jobs in ("1", "2"):
        code, out = sweep(tmp_path, path, "--n-jobs", n_jobs, "--experiment", f"n{n_jobs}")
        assert code == 0, out
        _, children = runs(tmp_path, f"n{n_jobs}")
        prints[n_jobs] = {
            c.data.tags["mgrun.config_hash"]: c.data.tags["mgrun.fingerprint"] for c in children
        }
    assert len(prints["1"]) == 4 and len(set(prints["1"].values())) == 4
    assert prints["1"] == prints["2"]


@pytest.mark.timeout(300)
def test_rerunning_skips_finished_trials_and_fresh_reruns_them(tmp_path):
    path = write_sweep(tmp_path, "params: {training.lr: [0.1, 0.5]}\n")
    assert sweep(tmp_path, path, "--backend", "sequential")[0] == 0
    code, out = sweep(tmp_path, path, "--backend", "sequential")
    assert code == 0 and "0 of 2 trials to run" in out and "2 from earlier runs" in out
    parents, children = runs(tmp_path)
    assert len(parents) == 2 and len(children) == 2
    rows = list(
        csv.DictReader(
            io.StringIO(artifact(tmp_path, parents[1].info.run_id, "results.csv").read_text())
        )
    )
    assert [r["resumed"] for r in rows] == ["True", "True"]
    assert {r["run_id"] for r in rows} == {c.info.run_id for c in children}
    assert sweep(tmp_path, path, "--backend", "sequential", "--fresh")[0] == 0
    parents, children = runs(tmp_path)
    assert len(parents) == 3 and len(children) == 4
