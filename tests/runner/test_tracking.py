"""runner.tracking against real MLflow stores: sqlite files in tmp_path, a real `mlflow server`."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient
from mlflow.models import Model

from engine.batch import predict
from engine.graph import graphviz_available
from runner.config import TrialSpec, flatten, load_run_config, run_config_from_dict
from runner.datasets import make_dataset
from runner.errors import BackendError
from runner.tracking import (
    Tracker,
    artifact_root,
    resolve_experiment,
    resolve_tracking_uri,
    run_guard,
    server_command,
    ui_command,
)
from runner.tracking import entities as ent
from runner.training.files import make_record
from runner.training.trial import build_model, run_trial
from tests.support import CONFIGS, free_port

PY = sys.executable


def _config(**training):
    return run_config_from_dict(
        {
            "name": "tiny",
            "seed": 3,
            "dataset": {"kind": "moons", "n_samples": 40, "test_fraction": 0.25},
            "model": {"hidden": [4, 3]},
            "training": {"steps": 12, "eval_every": 5, **training},
        }
    )


@pytest.fixture(scope="module")
def trained():
    cfg = _config()
    data = make_dataset(cfg.dataset, cfg.seed, cfg.base_dir)
    result = run_trial(TrialSpec(cfg))
    assert result.status == "FINISHED", result.reason
    return cfg, data, result


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    """One sqlite store for the module: creating its tables takes seconds."""
    return f"sqlite:///{tmp_path_factory.mktemp('store')}/mlflow.db"


@pytest.fixture()
def tracker(store, request) -> Tracker:
    return Tracker(store, request.node.name)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MLFLOW_TRACKING_URI")}
    return {**env, **extra}


# --- where runs go ---------------------------------------------------------------------------


def test_tracking_uri_precedence_and_mlflow_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve_tracking_uri(None, None) == f"sqlite:///{tmp_path}/mlflow.db"
    assert resolve_tracking_uri(None, "sqlite:///cfg.db") == f"sqlite:///{tmp_path}/cfg.db"
    with_query = resolve_tracking_uri(None, "sqlite:///cfg.db?timeout=30")
    assert with_query == f"sqlite:///{tmp_path}/cfg.db?timeout=30"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://env:5000")
    assert resolve_tracking_uri(None, "sqlite:///cfg.db") == "http://env:5000"
    assert resolve_tracking_uri("http://cli:5000", "sqlite:///cfg.db") == "http://cli:5000"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    # MLflow 3 keeps using an existing ./mlruns file store rather than starting a database
    (tmp_path / "mlruns" / "0").mkdir(parents=True)
    (tmp_path / "mlruns" / "0" / "meta.yaml").write_text("name: Default\n")
    assert resolve_tracking_uri(None, None) == (tmp_path / "mlruns").as_uri()


def test_experiment_name_precedence():
    assert resolve_experiment("cli", "cfg", "name") == "cli"
    assert resolve_experiment(None, "cfg", "name") == "cfg"
    assert resolve_experiment(None, None, "name") == "name"


def test_artifacts_live_beside_the_database_not_in_the_working_dir(tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    uri = f"sqlite:///{tmp_path}/db/mlflow.db"
    (tmp_path / "db").mkdir()
    tracker = Tracker(uri, "exp")
    assert artifact_root(uri) == str(tmp_path / "db" / "mlruns")
    client = MlflowClient(uri)
    exp = client.get_experiment(tracker.experiment_id)
    assert exp.artifact_location == f"{tmp_path}/db/mlruns/{tracker.experiment_id}"
    assert client.get_experiment("0").artifact_location == f"{tmp_path}/db/mlruns/0"
    run_id = tracker.start_run("r")
    tracker.log_files(run_id, {"a/b.txt": "hello"})
    expected = tmp_path / "db" / "mlruns" / tracker.experiment_id / run_id / "artifacts" / "a/b.txt"
    assert expected.read_text() == "hello"
    assert list(elsewhere.iterdir()) == []
    assert Tracker(uri, "exp").experiment_id == tracker.experiment_id


def test_a_deleted_experiment_or_unusable_store_is_a_clear_error(tmp_path):
    uri = f"sqlite:///{tmp_path}/new/dir/mlflow.db"  # missing directories are created
    tracker = Tracker(uri, "gone")
    tracker.client.delete_experiment(tracker.experiment_id)
    with pytest.raises(BackendError, match=r"experiment 'gone' is deleted; restore it"):
        Tracker(uri, "gone")
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(BackendError, match="cannot use the tracking store"):
        Tracker(f"sqlite:///{tmp_path}/file/mlflow.db", "x")


def test_processes_racing_to_create_the_store_agree_on_one_experiment(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    code = f"from runner.tracking import Tracker; print(Tracker({uri!r}, 'race').experiment_id)"
    procs = [
        subprocess.Popen([PY, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(3)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [err.decode()[-2000:] for _, err in outs]
    ids = {out.decode().strip().splitlines()[-1] for out, _ in outs}
    assert len(ids) == 1
    names = [e.name for e in MlflowClient(uri).search_experiments()]
    assert sorted(names) == ["Default", "race"]


def test_unreachable_server_is_a_clear_error_within_seconds():
    start = time.monotonic()
    with pytest.raises(BackendError, match="no MLflow tracking server answers"):
        Tracker(f"http://127.0.0.1:{free_port()}", "x")
    assert time.monotonic() - start < 15


# --- what a run holds ------------------------------------------------------------------------


def test_a_trained_run_holds_params_metrics_tags_artifacts_and_model(tracker, trained, tmp_path):
    cfg, data, result = trained
    run_id = tracker.start_run("tiny", tags={"extra": "x"})
    with run_guard(tracker, run_id):
        tracker.log_record(run_id, make_record(TrialSpec(cfg), result, data))
    client = tracker.client
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "tiny"

    params = run.data.params
    assert set(params) == set(flatten(cfg.to_dict()))
    assert params["model.hidden"] == "[4, 3]"
    assert params["training.betas"] == "[0.9, 0.999]"
    assert params["training.steps"] == "12"
    assert params["dataset.kind"] == "moons"

    expected: dict[str, list[tuple[int, float]]] = {}
    for key, value, step in result.metrics:
        expected.setdefault(key, []).append((step, value))
    assert len(result.metrics) == 12 * 3 + 3 * 2  # train_* and lr every step; test_* at 4, 9, 11
    for key, points in expected.items():
        history = client.get_metric_history(run_id, key)
        assert sorted((m.step, m.value) for m in history) == points, key
    for key in ("final_grad_norm", "final_grad_norm.layer_0", "final_grad_norm.layer_2"):
        (point,) = client.get_metric_history(run_id, key)
        assert (point.step, point.value) == (11, result.final_metrics[key])

    tags = run.data.tags
    assert tags["mgrun.config_hash"] == result.config_hash == TrialSpec(cfg).config_hash
    assert tags["mgrun.fingerprint"] == result.fingerprint
    assert tags["extra"] == "x"
    assert "mgrun.error" not in tags

    local = Path(client.download_artifacts(run_id, "", dst_path=str(tmp_path)))
    assert yaml.safe_load((local / "config.yaml").read_text()) == cfg.to_dict()
    spec = json.loads((local / "model.json").read_text())
    assert spec["state"] == result.state  # exact floats: the weights round-trip bit for bit
    assert spec["sizes"] == [2, 4, 3, 1] and spec["activation"] == "relu"
    assert spec["decision"] == "sign" and spec["feature_names"] == ["x1", "x2"]
    assert json.loads((local / "final_gradients.json").read_text()) == result.final_gradients
    for png in ("loss", "final_gradients", "decision_boundary"):
        assert (local / "plots" / f"{png}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (local / "graph.dot").read_text().startswith("digraph G {")
    assert (local / "graph.svg").exists() == graphviz_available()

    (model,) = client.search_logged_models([tracker.experiment_id])
    assert (model.source_run_id, model.name, str(model.status)) == (run_id, "model", "READY")
    assert [o.model_id for o in client.get_run(run_id).outputs.model_outputs] == [model.model_id]
    files = _tree(Path(model.artifact_location))
    assert {"MLmodel", "requirements.txt", "pyfunc_model.py", "artifacts/model.json"} <= files
    assert "code/engine/nn.py" in files and "code/engine/batch.py" in files
    assert not [f for f in files if f.endswith((".pkl", ".pyc")) or "runner" in f]
    reqs = (Path(model.artifact_location) / "requirements.txt").read_text().split()
    assert reqs[0].startswith("mlflow==3.") and reqs[1].startswith("pandas==")


def _tree(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def fresh(store, trained, tmp_path_factory):
    """What a fresh process (no runner, its own working directory) gets from a logged model."""
    cfg, data, result = trained
    tracker = Tracker(store, "fresh")
    run_id = tracker.start_run("tiny")
    with run_guard(tracker, run_id):
        model_id = tracker.log_record(run_id, make_record(TrialSpec(cfg), result, data))
    model = build_model(cfg, data)
    model.load_state_dict(result.state)
    rows = [list(x) for x in data.X_train + data.X_test]
    got = _predict_in_fresh_process(store, run_id, rows, tmp_path_factory.mktemp("p"), model_id)
    return got, predict(model, rows)


def test_the_model_predicts_in_a_fresh_process_from_its_own_code(fresh):
    got, expected = fresh
    assert got["by_name"] == got["reordered"] == got["by_model_id"] == expected
    assert got["classes"] == [str(k) for k in expected]
    assert "/code/engine/" in got["engine"] and not got["engine"].startswith("/work/main/engine")
    assert got["runner_imported"] is False


def test_the_model_refuses_missing_or_renamed_columns_in_one_line(fresh):
    got, _ = fresh
    assert got["schema"] == [["x1", "double"], ["x2", "double"]]
    refused = "ValueError: missing columns {}; expected ['x1', 'x2']"
    assert got["refused"] == {
        "missing": refused.format(["x2"]),
        "renamed": refused.format(["x1", "x2"]),
        "by_position": refused.format(["x1", "x2"]),  # positional columns were accepted once
    }


_LOAD = """
import json, sys
import mlflow, pandas as pd
rows = json.loads(sys.argv[2])
m = mlflow.pyfunc.load_model(f"runs:/{sys.argv[1]}/model")
df = pd.DataFrame(rows, columns=["x1", "x2"])
by_name = m.predict(df)
by_id = mlflow.pyfunc.load_model(f"models:/{sys.argv[3]}") if sys.argv[3:] else m


def refusal(frame):
    try:
        m.predict(frame)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"


print(json.dumps({
    "by_name": by_name["label"].tolist(),
    "reordered": m.predict(df[["x2", "x1"]])["label"].tolist(),
    "by_model_id": by_id.predict(df)["label"].tolist(),
    "classes": by_name["class"].tolist(),
    "schema": [[c.name, c.type.name] for c in m.metadata.get_input_schema().inputs],
    "refused": {
        "missing": refusal(df[["x1"]]),
        "renamed": refusal(df.rename(columns={"x1": "a", "x2": "b"})),
        "by_position": refusal(pd.DataFrame(rows)),
    },
    "engine": sys.modules["engine"].__file__,
    "runner_imported": any(k == "runner" or k.startswith("runner.") for k in sys.modules),
}))
"""


def test_a_model_names_its_feature_columns_and_shows_its_example_in_raw_units(tracker):
    cfg = load_run_config(CONFIGS / "csv_example.yaml", ["training.steps=5"])
    data = make_dataset(cfg.dataset, cfg.seed, cfg.base_dir)
    raw = make_dataset(replace(cfg.dataset, standardize=False), cfg.seed, cfg.base_dir)
    run_id = tracker.start_run("csv")
    with run_guard(tracker, run_id):
        model_id = tracker.log_record(
            run_id, make_record(TrialSpec(cfg), run_trial(TrialSpec(cfg)), data)
        )
    model = tracker.client.get_logged_model(model_id)
    example = json.loads((Path(model.artifact_location) / "input_example.json").read_text())
    assert example["columns"] == list(cfg.dataset.features)
    signature = Model.load(str(Path(model.artifact_location) / "MLmodel")).signature
    assert [(c.name, c.type.name) for c in signature.inputs.inputs] == [
        (name, "double") for name in cfg.dataset.features
    ]
    assert signature.outputs.input_names() == ["label", "class"]
    assert example["data"] == [pytest.approx(list(x)) for x in raw.X_train[:5]]


def _predict_in_fresh_process(
    uri: str, run_id: str, rows, tmp_path: Path, model_id: str | None = None
) -> dict:
    cwd = tmp_path / "fresh"
    cwd.mkdir()
    done = subprocess.run(
        [PY, "-c", _LOAD, run_id, json.dumps(rows), *([model_id] if model_id else [])],
        cwd=cwd,
        env=_env(MLFLOW_TRACKING_URI=uri),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_failed_result_keeps_its_metrics_and_reason_and_has_no_model(tracker, tmp_path):
    cfg = _config(loss="mse", lr=1e5)
    data = make_dataset(cfg.dataset, cfg.seed, cfg.base_dir)
    result = run_trial(TrialSpec(cfg))
    assert result.status == "FAILED" and result.reason.startswith("diverged at step")
    run_id = tracker.start_run("diverges")
    with run_guard(tracker, run_id) as guard:
        tracker.log_record(run_id, make_record(TrialSpec(cfg), result, data))
        guard.status, guard.reason, guard.traceback = "FAILED", result.reason, result.traceback
    run = tracker.client.get_run(run_id)
    assert run.info.status == "FAILED"
    assert run.data.tags["mgrun.error"] == result.reason
    names = {a.path for a in tracker.client.list_artifacts(run_id)}
    assert names == {"config.yaml", "metrics.csv", "plots", "error.txt"}
    error = Path(tracker.client.download_artifacts(run_id, "error.txt", str(tmp_path)))
    assert error.read_text().startswith(result.reason)
    assert len(tracker.client.get_metric_history(run_id, "train_loss")) == len(
        [m for m in result.metrics if m[0] == "train_loss"]
    )
    assert tracker.client.search_logged_models([tracker.experiment_id]) == []


def test_an_exception_ends_the_run_failed_with_the_traceback(tracker, tmp_path):
    run_id = tracker.start_run("raises")
    with pytest.raises(RuntimeError, match="boom"), run_guard(tracker, run_id):
        raise RuntimeError("boom\nsecond line")
    run = tracker.client.get_run(run_id)
    assert run.info.status == "FAILED"
    assert run.data.tags["mgrun.error"] == "RuntimeError: boom"
    text = Path(tracker.client.download_artifacts(run_id, "error.txt", str(tmp_path)))
    assert "Traceback (most recent call last)" in text.read_text()
    assert 'raise RuntimeError("boom' in text.read_text()


def test_ctrl_c_ends_the_run_killed_and_propagates(tracker):
    run_id = tracker.start_run("interrupted")
    with pytest.raises(KeyboardInterrupt), run_guard(tracker, run_id):
        raise KeyboardInterrupt
    run = tracker.client.get_run(run_id)
    assert run.info.status == "KILLED"
    assert run.data.tags["mgrun.error"] == "interrupted (KeyboardInterrupt)"


def test_params_and_metrics_beyond_one_batch_all_arrive(tracker):
    run_id = tracker.start_run("big")
    params = {f"p.{i:03d}": i for i in range(250)}
    params["long"] = "x" * 7000
    params["tuple"] = (1, 2)
    tracker.log_params(run_id, params)
    points = [(f"m{k}", float(s * k), s) for s in range(1250) for k in range(2)]
    tracker.log_metrics(run_id, points)
    tracker.end_run(run_id, "FINISHED")
    run = tracker.client.get_run(run_id)
    assert len(run.data.params) == 252
    assert run.data.params["p.007"] == "7" and run.data.params["tuple"] == "[1, 2]"
    assert len(run.data.params["long"]) == 6000 and run.data.params["long"].endswith("...")
    for k in range(2):
        history = tracker.client.get_metric_history(run_id, f"m{k}")
        assert sorted((m.step, m.value) for m in history) == [
            (s, float(s * k)) for s in range(1250)
        ]
    assert run.info.status == "FINISHED" and "mgrun.error" not in run.data.tags


def test_a_new_runs_record_in_one_transaction_reads_back_as_log_batch_writes_it(tracker):
    """The sweep parent's bulk path against MLflow's own log_batch and set_terminated."""
    assert tracker.bulk is not None  # a sqlite store takes the one-transaction path
    inf, nan = float("inf"), float("nan")
    points = [(f"m{k}", float(s * k) / 7, s) for s in range(150) for k in range(3)]
    points += [("odd", v, s) for s, v in enumerate([inf, -inf, nan, 0.0, 1e-300, -2.5])]
    points += [("odd", 0.5, 5), ("tie", 1.0, 3), ("tie", 2.0, 3), ("tie", 0.5, 3)]
    points += [("tie", 1.0, 3), ("late", 9.0, 7), ("late", 1.0, 2), ("nan_last", nan, 4)]
    metrics = ent.metrics(points)
    params = ent.params({f"p.{i:03d}": i for i in range(40)} | {"list": [16, 16], "s": "é"})
    theirs, ours = tracker.start_run("log_batch"), tracker.start_run("bulk")
    tracker.client.log_batch(theirs, metrics=metrics[:900], params=params)
    tracker.client.log_batch(theirs, metrics=metrics[900:])
    end = metrics[0].timestamp + 1234
    tracker.client.set_terminated(theirs, "FINISHED", end)
    tracker.bulk.write(ours, metrics, params, end=end)

    def stored(run_id):
        run = tracker.client.get_run(run_id)
        keys = sorted(run.data.metrics)
        history = {
            k: sorted(
                (m.step, m.timestamp, repr(m.value))
                for m in tracker.client.get_metric_history(run_id, k)
            )
            for k in keys
        }
        latest = {k: repr(v) for k, v in run.data.metrics.items()}
        return run.data.params, latest, history, run.info.status, run.info.end_time

    assert stored(ours) == stored(theirs)
    assert len(stored(ours)[2]["m2"]) == 150 and stored(ours)[1]["late"] == "9.0"
    assert stored(ours)[3:] == ("FINISHED", end)
    with pytest.raises(Exception, match="UNIQUE|IntegrityError"):  # one transaction: all or none
        tracker.bulk.write(ours, ent.metrics([("fresh", 1.0, 0)]), params[:1])
    assert "fresh" not in tracker.client.get_run(ours).data.metrics


def test_child_runs_point_at_their_parent(tracker):
    parent = tracker.start_run("sweep")
    child = tracker.start_run("trial-0", parent_run_id=parent)
    assert tracker.client.get_run(child).data.tags["mlflow.parentRunId"] == parent
    assert "mlflow.parentRunId" not in tracker.client.get_run(parent).data.tags


# --- resuming sweeps -------------------------------------------------------------------------

_ORPHAN = """
import os, sys
from runner.tracking import Tracker
t = Tracker(sys.argv[1], sys.argv[2])
print(t.start_run("orphan", tags={"mgrun.config_hash": "h-orphan"}), flush=True)
os._exit(0)  # dies without ending its run, like a SIGKILLed process
"""


def test_resume_sees_finished_hashes_and_closes_runs_of_dead_processes(tracker):
    done = tracker.start_run("a", tags={"mgrun.config_hash": "h-done"})
    tracker.end_run(done, "FINISHED")
    failed = tracker.start_run("b", tags={"mgrun.config_hash": "h-failed"})
    tracker.end_run(failed, "FAILED", "diverged")
    mine = tracker.start_run("c", tags={"mgrun.config_hash": "h-mine"})
    orphan = subprocess.run(
        [PY, "-c", _ORPHAN, tracker.uri, tracker.experiment_name],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert orphan.returncode == 0, orphan.stderr[-2000:]
    orphan_id = orphan.stdout.strip().splitlines()[-1]
    assert tracker.client.get_run(orphan_id).info.status == "RUNNING"

    assert tracker.finished_runs_by_hash() == {"h-done": done}
    assert tracker.close_stale_running() == [orphan_id]
    run = tracker.client.get_run(orphan_id)
    assert run.info.status == "KILLED"
    assert "which exited; closed as KILLED" in run.data.tags["mgrun.error"]
    assert tracker.client.get_run(mine).info.status == "RUNNING"  # this process is alive
    assert tracker.close_stale_running() == []
    tracker.end_run(mine, "FINISHED")
    assert tracker.finished_runs_by_hash() == {"h-done": done, "h-mine": mine}


# --- servers ---------------------------------------------------------------------------------


def _start(argv: list[str], cwd: Path) -> subprocess.Popen:
    log = open(cwd / "server.log", "wb")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(
        argv, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=_env()
    )


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.read()


def _wait_ready(proc: subprocess.Popen, base: str, cwd: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            if _get(base + "/health").strip() == b"OK":
                return
        except OSError:
            time.sleep(0.25)
    raise AssertionError(f"server did not come up: {(cwd / 'server.log').read_text()[-3000:]}")


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM the server's process group (the CLI and its uvicorn child), SIGKILL if needed."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)
    with contextlib.suppress(ProcessLookupError):  # the group may outlive its leader a moment
        os.killpg(proc.pid, signal.SIGKILL)


def _session(sid: int) -> list[str]:
    """Command lines of the live processes in session `sid`."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[3]) == sid:
                found.append((stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except (OSError, IndexError, ValueError):
            continue
    return found


def test_mgrun_ui_serves_the_store_lean_and_local(tracker, tmp_path):
    run_id = tracker.start_run("shown")
    tracker.log_files(run_id, {"config.yaml": "name: shown\n"})
    tracker.end_run(run_id, "FINISHED")
    port = free_port()
    argv = ui_command(tracker.uri, port=port)
    assert argv[:2] == ["env", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false"]
    assert argv[argv.index("--host") + 1] == "127.0.0.1"
    assert argv[argv.index("--workers") + 1] == "1"
    assert argv[argv.index("--default-artifact-root") + 1] == artifact_root(tracker.uri)
    proc = _start(argv, tmp_path)
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_ready(proc, base, tmp_path)
        found = json.loads(_get(base + "/ajax-api/2.0/mlflow/experiments/search?max_results=1000"))
        assert tracker.experiment_name in {e["name"] for e in found["experiments"]}
        body = _get(f"{base}/get-artifact?path=config.yaml&run_uuid={run_id}")
        assert body == b"name: shown\n"
        procs = _session(proc.pid)
        assert 1 <= len(procs) <= 2, procs  # the CLI and one uvicorn worker
        assert not [p for p in procs if "huey" in p], procs
    finally:
        _stop(proc)
    assert not _session(proc.pid)


def test_mgrun_ui_refuses_a_server_uri():
    with pytest.raises(BackendError, match="already a tracking server"):
        ui_command("http://127.0.0.1:5000")


def test_a_shared_tracking_server_records_runs_artifacts_and_models(trained, tmp_path):
    cfg, data, result = trained
    server_dir = tmp_path / "server"
    server_dir.mkdir()
    port = free_port()
    argv = server_command(
        f"sqlite:///{server_dir}/mlflow.db", str(server_dir / "mlartifacts"), port=port
    )
    proc = _start(argv, server_dir)
    try:
        uri = f"http://127.0.0.1:{port}"
        _wait_ready(proc, uri, server_dir)
        client_dir = tmp_path / "client"
        client_dir.mkdir()
        tracker = Tracker(uri, "team")
        run_id = tracker.start_run("remote")
        with run_guard(tracker, run_id):
            tracker.log_record(run_id, make_record(TrialSpec(cfg), result, data))
        run = MlflowClient(uri).get_run(run_id)
        assert run.info.status == "FINISHED"
        assert run.data.params["model.hidden"] == "[4, 3]"
        assert len(MlflowClient(uri).get_metric_history(run_id, "train_loss")) == 12
        assert run.info.artifact_uri.startswith("mlflow-artifacts:")
        stored = server_dir / "mlartifacts" / tracker.experiment_id / run_id / "artifacts"
        assert yaml.safe_load((stored / "config.yaml").read_text()) == cfg.to_dict()
        assert (stored / "plots" / "loss.png").exists()
        (model,) = MlflowClient(uri).search_logged_models([tracker.experiment_id])
        assert str(model.status) == "READY"
        rows = [list(x) for x in data.X_test]
        got = _predict_in_fresh_process(uri, run_id, rows, client_dir)
        net = build_model(cfg, data)
        net.load_state_dict(result.state)
        assert got["by_name"] == predict(net, rows)
        assert not list(client_dir.glob("mlruns")) and not list(client_dir.glob("*.db"))
    finally:
        _stop(proc)
