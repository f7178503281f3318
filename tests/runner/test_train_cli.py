"""`mgrun train` end to end: CliRunner and real subprocesses against a sqlite store in tmp_path."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from runner.cli import app
from tests.support import CONFIGS, ROOT, wait_for

MGRUN = [sys.executable, "-m", "runner"]


class Store:
    """The test's view of the store; opened only on use, since opening creates the database."""

    def __init__(self, tmp_path: Path):
        self.uri = f"sqlite:///{tmp_path}/mlflow.db"

    def __getattr__(self, name: str):
        return getattr(MlflowClient(self.uri), name)


def train(tmp_path: Path, config: Path | str, *args: str):
    store = Store(tmp_path)
    result = CliRunner().invoke(
        app, ["train", str(config), "--tracking-uri", store.uri, "--no-progress", *args]
    )
    return result, store


def only_run(client, experiment: str):
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1
    return runs[0]


def write(tmp_path: Path, name: str, data: dict | str) -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def test_moons_run_holds_params_metrics_artifacts_and_tags(tmp_path):
    result, client = train(tmp_path, CONFIGS / "moons.yaml")
    assert result.exit_code == 0, result.output
    run = only_run(client, "moons")
    assert run.info.status == "FINISHED"
    assert run.data.params["training.lr"] == "1.0"
    assert run.data.params["model.hidden"] == "[16, 16]"
    assert run.data.params["dataset.kind"] == "moons"
    assert run.data.metrics["train_accuracy"] >= 0.97
    for key in ("train_loss", "train_accuracy", "lr"):
        history = client.get_metric_history(run.info.run_id, key)
        assert [m.step for m in history] == list(range(100))
    assert not client.get_metric_history(run.info.run_id, "test_loss")  # test_fraction 0
    assert run.data.metrics["final_grad_norm"] > 0
    assert {"final_grad_norm.layer_0", "final_grad_norm.layer_2"} <= run.data.metrics.keys()
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    names |= {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    for artifact in (
        "config.yaml",
        "model.json",
        "final_gradients.json",
        "graph.dot",
        "plots/loss.png",
        "plots/decision_boundary.png",
        "plots/final_gradients.png",
    ):
        assert artifact in names
    assert len(run.data.tags["mgrun.fingerprint"]) == 64
    assert run.info.run_id in result.output and "mgrun ui" in result.output


def test_test_metrics_every_eval_every_steps_and_at_the_end(tmp_path):
    result, client = train(
        tmp_path,
        CONFIGS / "circles.yaml",
        "--set",
        "training.steps=23",
        "--set",
        "training.eval_every=10",
    )
    assert result.exit_code == 0, result.output
    run = only_run(client, "circles")
    for key in ("test_loss", "test_accuracy"):
        steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
        assert steps == [9, 19, 22]
    assert len(client.get_metric_history(run.info.run_id, "train_loss")) == 23


def test_same_config_gives_bit_identical_weights(tmp_path):
    args = ("--set", "training.steps=30")
    for extra in ((), (), ("--set", "seed=2")):
        result, client = train(tmp_path, CONFIGS / "spirals.yaml", *args, *extra)
        assert result.exit_code == 0, result.output
    exp = client.get_experiment_by_name("spirals")
    runs = client.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"])
    prints = [r.data.tags["mgrun.fingerprint"] for r in runs]
    assert prints[0] == prints[1] != prints[2]


BAD_CONFIGS = {
    "unknown_key": ({"trainng": {"steps": 5}}, "did you mean 'training'"),
    "wrong_type": ({"training": {"steps": "many"}}, "training.steps"),
    "bool_as_int": ({"training": {"steps": True}}, "training.steps"),
    "steps_zero": ({"training": {"steps": 0}}, "training.steps"),
    "negative_lr": ({"training": {"lr": -1.0}}, "training.lr"),
    "empty_hidden": ({"model": {"hidden": []}}, "model.hidden"),
    "test_fraction_one": ({"dataset": {"test_fraction": 1.0}}, "dataset.test_fraction"),
    "unknown_kind": ({"dataset": {"kind": "moon"}}, "dataset.kind"),
    "unknown_loss": ({"training": {"loss": "hinj"}}, "training.loss"),
    "loss_misfit": (
        {"dataset": {"kind": "spirals"}, "training": {"loss": "hinge"}},
        "training.loss",
    ),
    "python_tag": ("training: !!python/object/apply:os.system ['echo hacked']\n", "tag"),
    "malformed": ("training: {steps: 3\n", "line"),
    "not_a_mapping": ("- 1\n- 2\n", "mapping"),
    "duplicate_key": ("training:\n  lr: 0.1\n  steps: 5\n  lr: 0.5\n", "training.lr: set twice"),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_bad_config_is_one_line_exit_2_and_creates_nothing(tmp_path, case):
    data, needle = BAD_CONFIGS[case]
    path = write(tmp_path, f"{case}.yaml", data)
    result, _ = train(tmp_path, path)
    assert result.exit_code == 2, result.output
    message = result.output.strip()
    assert len(message.splitlines()) == 1
    assert f"{case}.yaml" in message and needle in message
    assert not (tmp_path / "mlflow.db").exists()


CSV_CASES = {  # (file, label column, what the message must name)
    "missing_column": ("x1,x2,kind\n0,1,a\n1,0,b\n", "species", "species"),
    "text_in_numbers": ("x1,x2,species\n0,1,a\nhigh,0,b\n", "species", "high"),
    "ragged": ("x1,x2,species\n0,1,a\n1,b\n", "species", "row 3"),
}


@pytest.mark.parametrize("case", sorted(CSV_CASES))
def test_bad_csv_is_exit_2_naming_the_file_and_creates_nothing(tmp_path, case):
    text, label, needle = CSV_CASES[case]
    (tmp_path / "data.csv").write_text(text)
    cfg = {"dataset": {"kind": "csv", "path": "data.csv", "label": label}}
    result, _ = train(tmp_path, write(tmp_path, "csv.yaml", cfg))
    assert result.exit_code == 2, result.output
    assert "data.csv" in result.output and needle in result.output
    assert not (tmp_path / "mlflow.db").exists()


def test_missing_file_and_bad_override_are_exit_2(tmp_path):
    result, _ = train(tmp_path, tmp_path / "nope.yaml")
    assert result.exit_code == 2 and "nope.yaml" in result.output
    result, _ = train(tmp_path, CONFIGS / "moons.yaml", "--set", "training.lr")
    assert result.exit_code == 2 and "--set" in result.output
    result, _ = train(tmp_path, CONFIGS / "moons.yaml", "--set", "training.lr=-3")
    assert result.exit_code == 2 and "training.lr" in result.output
    assert not (tmp_path / "mlflow.db").exists()


def test_divergence_fails_the_run_with_the_reason_and_exit_1(tmp_path):
    result, client = train(tmp_path, CONFIGS / "moons.yaml", "--set", "training.lr=1e6")
    assert result.exit_code == 1
    assert "diverged at step" in result.output and "training.lr" in result.output
    run = only_run(client, "moons")
    assert run.info.status == "FAILED"
    assert "diverged at step" in run.data.tags["mgrun.error"]
    history = client.get_metric_history(run.info.run_id, "train_loss")
    assert 0 < len(history) < 100


def wait_for_running(client: MlflowClient, experiment: str, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        exp = client.get_experiment_by_name(experiment)
        if exp is not None:
            runs = client.search_runs([exp.experiment_id])
            for run in runs:
                history = client.get_metric_history(run.info.run_id, "train_loss")
                if run.info.status == "RUNNING" and history:
                    return run.info.run_id
        time.sleep(0.2)
    raise AssertionError("the run never started")


@pytest.mark.timeout(300)
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupting_a_run_ends_it_killed(tmp_path, sig):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    cmd = [*MGRUN, "train", str(CONFIGS / "spirals.yaml"), "--tracking-uri", uri]
    cmd += ["--set", "training.steps=100000", "--no-progress"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # mgrun makes the store under a temporary name and moves it into place: wait for that, or
        # this client would create a second one at the same path
        wait_for(lambda: (tmp_path / "mlflow.db").exists())
        client = MlflowClient(uri)
        run_id = wait_for_running(client, "spirals")
        proc.send_signal(sig)
        assert proc.wait(timeout=60) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
    run = client.get_run(run_id)
    assert run.info.status == "KILLED"
    assert client.get_metric_history(run_id, "train_loss")  # what was trained is kept


def test_help_is_fast_because_it_does_not_import_mlflow():
    code = "import sys, runner.cli; sys.exit('mlflow' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
    out = subprocess.run([*MGRUN, "train", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for key in ("training.lr", "model.hidden", "dataset.test_fraction", "tracking.uri"):
        assert key in out.stdout


def test_default_store_is_mlflow_db_in_the_working_directory(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    cmd = [*MGRUN, "train", str(CONFIGS / "xor.yaml"), "--no-progress"]
    out = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "mlflow.db").exists() and (tmp_path / "mlruns").is_dir()
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    assert only_run(client, "xor").info.status == "FINISHED"


@pytest.mark.timeout(600)
@pytest.mark.parametrize("verbose", ["", "1"])
def test_a_new_store_is_created_quietly_unless_mgrun_verbose_asks(tmp_path, verbose):
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env.update(PYTHONPATH=str(ROOT), MGRUN_VERBOSE=verbose)  # this checkout's runner
    cmd = [*MGRUN, "train", str(CONFIGS / "xor.yaml"), "--set", "training.steps=5"]
    cmd += ["--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db"]
    out = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    said = [line for line in (out.stdout + out.stderr).splitlines() if "INFO" in line]
    if verbose:
        assert [line for line in said if "Creating initial MLflow database tables" in line], said
    else:
        assert not said, said
