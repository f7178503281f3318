"""Lean child runs and full records for the best: real sqlite store, real loky workers."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from runner.cli import app
from runner.commands.report import Row, ranked
from tests import support

BASE = """\
name: tiny
seed: 3
dataset: {kind: moons, n_samples: 40, noise: 0.1, test_fraction: 0.25}
model: {hidden: [4]}
training: {steps: 12, eval_every: 4}
"""
LEAN = {"config.yaml", "metrics.csv", "model.json", "final_gradients.json"}
FULL = {"plots/loss.png", "plots/final_gradients.png", "plots/decision_boundary.png", "graph.dot"}


def sweep(path: Path, uri: str, *args: str) -> str:
    argv = ["sweep", str(path), "--tracking-uri", uri, "--no-progress", "--n-jobs", "2", *args]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 0, result.output
    return result.output


def children(uri: str) -> list:
    client = MlflowClient(uri)
    (exp,) = [e for e in client.search_experiments() if e.name == "s"]
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    return [r for r in runs if "mlflow.parentRunId" in r.data.tags]


def files(uri: str, run_id: str) -> set[str]:
    client, found, todo = MlflowClient(uri), set(), [""]
    while todo:
        for f in client.list_artifacts(run_id, todo.pop() or None):
            (todo.append(f.path) if f.is_dir else found.add(f.path))
    return found


def models(uri: str, run_id: str) -> int:
    return len(MlflowClient(uri).get_run(run_id).outputs.model_outputs)


def best_first(uri: str, runs: list) -> list:
    """The children in the sweep's ranking: train_loss (min), then final train loss, index."""
    return sorted(
        runs,
        key=lambda r: (
            r.data.metrics["train_loss"],
            r.data.metrics["final_train_loss"],
            int(r.data.tags["mgrun.sweep_index"]),
        ),
    )


def test_every_child_is_lean_and_only_the_best_k_are_full(tmp_path, sqlite_uri):
    path = support.write_sweep(tmp_path, "params: {training.lr: [0.02, 0.1, 0.3, 0.6]}\n", BASE)
    sweep(path, sqlite_uri, "--keep-top", "2")
    runs = best_first(sqlite_uri, children(sqlite_uri))
    assert len(runs) == 4 and {r.info.status for r in runs} == {"FINISHED"}
    for rank, run in enumerate(runs):
        have = files(sqlite_uri, run.info.run_id)
        full = rank < 2
        assert have >= LEAN, have
        assert (have >= FULL) is full and (not full) == have.isdisjoint(FULL), (rank, have)
        assert models(sqlite_uri, run.info.run_id) == (1 if full else 0)
        assert run.data.tags["mgrun.record"] == ("full" if full else "lean")
        assert "mgrun.fingerprint" in run.data.tags and "final_grad_norm" in run.data.metrics
        assert run.info.run_name == f"lr={run.data.params['training.lr']} seed=3"


def test_keep_top_all_gives_every_child_its_model_params_and_every_point(tmp_path, sqlite_uri):
    path = support.write_sweep(tmp_path, "params: {training.lr: [0.02, 0.1, 0.3]}\n", BASE)
    sweep(path, sqlite_uri, "--keep-top", "all")
    client = MlflowClient(sqlite_uri)
    runs = children(sqlite_uri)
    assert len(runs) == 3 and {r.info.status for r in runs} == {"FINISHED"}
    for run in runs:  # the model is logged before the params and points: nothing clashes
        run_id = run.info.run_id
        assert files(sqlite_uri, run_id) >= LEAN | FULL and models(sqlite_uri, run_id) == 1
        assert run.data.tags["mgrun.record"] == "full" and run.data.params["model.hidden"] == "[4]"
        steps = [m.step for m in client.get_metric_history(run_id, "train_loss")]
        assert sorted(steps) == list(range(12)), steps


def test_a_resumed_sweep_gives_its_new_top_their_full_records(tmp_path, sqlite_uri):
    path = support.write_sweep(tmp_path, "params: {training.lr: [0.02, 0.1, 0.3]}\n", BASE)
    sweep(path, sqlite_uri, "--keep-top", "1")
    before = {r.info.run_id for r in children(sqlite_uri)}
    support.write_sweep(tmp_path, "params: {training.lr: [0.02, 0.1, 0.3, 0.6, 0.9]}\n", BASE)
    out = sweep(path, sqlite_uri, "--keep-top", "3")
    assert "2 of 5 trials to run" in out
    runs = best_first(sqlite_uri, children(sqlite_uri))
    assert len(runs) == 5 and before < {r.info.run_id for r in runs}
    for rank, run in enumerate(runs):
        full = rank < 3
        assert (files(sqlite_uri, run.info.run_id) >= FULL) is full, rank
        assert models(sqlite_uri, run.info.run_id) == (1 if full else 0), rank


def test_a_long_run_logs_capped_curves_and_keeps_every_point_in_metrics_csv(tmp_path, sqlite_uri):
    config = tmp_path / "long.yaml"
    config.write_text(
        "dataset: {kind: moons, n_samples: 12, test_fraction: 0.25}\nmodel: {hidden: [2]}\n"
        "training: {steps: 1200, eval_every: 1}\n"
    )
    argv = ["train", str(config), "--tracking-uri", sqlite_uri, "--no-progress"]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 0, result.output
    client = MlflowClient(sqlite_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("long").experiment_id])
    for key in ("train_loss", "lr", "test_accuracy"):
        steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, key))
        assert len(steps) == 500 and steps[0] == 0 and steps[-1] == 1199, key
        assert len(set(steps)) == 500
    local = client.download_artifacts(run.info.run_id, "metrics.csv", str(tmp_path))
    rows = list(csv.DictReader(io.StringIO(Path(local).read_text())))
    assert [int(r["step"]) for r in rows] == list(range(1200))
    assert all(r["train_loss"] and r["test_loss"] for r in rows)


def test_ties_rank_by_final_training_loss_then_trial_index():
    def row(index: int, value: float, loss: float) -> Row:
        trial = type("T", (), {"spec": type("S", (), {"index": index})()})()
        return Row(trial, "FINISHED", value, f"r{index}", final_loss=loss)

    rows = [row(0, 0.9, 0.5), row(1, 0.9, 0.2), row(2, 0.95, 0.9), row(3, 0.9, 0.2)]
    assert [r.run_id for r in ranked(rows, maximize=True)] == ["r2", "r1", "r3", "r0"]


def test_child_runs_span_their_trials_real_training_time(tmp_path, sqlite_uri):
    path = support.write_sweep(tmp_path, "params: {training.lr: [0.1, 0.3]}\n", BASE)
    sweep(path, sqlite_uri)
    client = MlflowClient(sqlite_uri)
    (exp,) = [e for e in client.search_experiments() if e.name == "s"]
    (parent,) = [
        r
        for r in client.search_runs([exp.experiment_id])
        if "mlflow.parentRunId" not in r.data.tags
    ]
    local = client.download_artifacts(parent.info.run_id, "results.csv", str(tmp_path))
    rows = csv.DictReader(io.StringIO(Path(local).read_text()))
    seconds = {int(r["index"]): float(r["seconds"]) for r in rows}
    for run in children(sqlite_uri):
        took = (run.info.end_time - run.info.start_time) / 1000
        assert took == pytest.approx(seconds[int(run.data.tags["mgrun.sweep_index"])], abs=0.01)
        assert parent.info.start_time <= run.info.start_time <= run.info.end_time
