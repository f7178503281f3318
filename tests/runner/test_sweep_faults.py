"""`mgrun sweep` as a real process, hurt from outside: a worker SIGKILLed mid-trial, Ctrl-C and a
resume, the sweep process itself SIGKILLed. The store is a real sqlite file in tmp_path."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import psutil
import pytest
from typer.testing import CliRunner

from tests import support
from tests.support import ROOT, wait_for

# About a second per trial on one core: long enough to be caught in flight.
BASE = """\
name: slow
seed: 1
dataset: {kind: moons, n_samples: 100, noise: 0.1, test_fraction: 0.0}
model: {hidden: [8]}
training: {steps: 1500, lr: 0.5, eval_every: 100}
"""


def write_sweep(tmp_path: Path, lrs: str, seeds: str = "[1, 2]") -> Path:
    text = f"params: {{training.lr: {lrs}}}\nseeds: {seeds}\n"
    return support.write_sweep(tmp_path, text, BASE, "slow.yaml")


def start(tmp_path: Path, path: Path, *args: str) -> subprocess.Popen:
    argv = [sys.executable, "-m", "runner", "sweep", str(path), "--no-progress", *args]
    argv += ["--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"]
    return subprocess.Popen(
        argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def rerun(tmp_path: Path, path: Path, *args: str) -> tuple[int, str]:
    """The same sweep again, in this process (quicker to start); stdout and stderr together."""
    from runner.cli import app

    argv = ["sweep", str(path), "--no-progress", "--n-jobs", "2", *args]
    result = CliRunner().invoke(
        app, [*argv, "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"]
    )
    return result.exit_code, result.output


def loky_workers(pid: int) -> list[psutil.Process]:
    def is_worker(p: psutil.Process) -> bool:
        try:
            return "LokyProcess" in " ".join(p.cmdline())
        except psutil.Error:
            return False

    return [p for p in psutil.Process(pid).children(recursive=True) if is_worker(p)]


def count(tmp_path: Path, status: str) -> int:
    """Child runs with this status, read straight from the database while the sweep writes."""
    db = tmp_path / "mlflow.db"
    if not db.exists():
        return 0
    time.sleep(0.2)  # a gentle reader: the sweep must not find its database locked
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)) as con:
        try:
            (n,) = con.execute(
                "SELECT count(*) FROM runs JOIN tags ON runs.run_uuid = tags.run_uuid "
                "WHERE tags.key = 'mlflow.parentRunId' AND runs.status = ?",
                (status,),
            ).fetchone()
        except sqlite3.OperationalError:  # tables not created yet
            return 0
    return n


def runs(tmp_path: Path) -> tuple[list, list]:
    """(parent runs, child runs) of experiment `s`, oldest first."""
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("s")
    found = client.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"])
    parents = [r for r in found if "mlflow.parentRunId" not in r.data.tags]
    return parents, [r for r in found if r not in parents]


def hashes(children: list, status: str = "FINISHED") -> set[str]:
    return {c.data.tags["mgrun.config_hash"] for c in children if c.info.status == status}


@pytest.mark.timeout(300)
def test_a_worker_killed_mid_trial_costs_nothing(tmp_path):
    proc = start(tmp_path, write_sweep(tmp_path, "[0.5, 1.0]", seeds="[1]"), "--n-jobs", "2")

    def busy_worker() -> psutil.Process | None:  # well into a trial, past its imports
        for w in loky_workers(proc.pid):
            try:
                if w.cpu_times().user > 0.6:
                    return w
            except psutil.Error:
                pass
        return None

    wait_for(busy_worker).send_signal(signal.SIGKILL)
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err
    assert "worker died" in err and "SIGKILL" in err
    (parent,), children = runs(tmp_path)
    assert parent.info.status == "FINISHED"
    assert [c.info.status for c in children] == ["FINISHED"] * 2
    assert len(hashes(children)) == 2
    assert "2 trials: 2 finished, 0 failed" in out


@pytest.mark.timeout(300)
def test_ctrl_c_kills_open_runs_and_a_rerun_runs_only_what_is_missing(tmp_path):
    path = write_sweep(tmp_path, "[0.5, 1.0, 2.0]", seeds="[1]")
    proc = start(tmp_path, path, "--n-jobs", "2")
    wait_for(lambda: count(tmp_path, "FINISHED") >= 1)
    workers = loky_workers(proc.pid)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err
    _, stopped = psutil.wait_procs(workers, timeout=10)
    assert stopped == []  # no worker outlives the sweep

    (parent,), children = runs(tmp_path)
    assert parent.info.status == "KILLED"
    assert "RUNNING" not in {c.info.status for c in children}
    done = hashes(children)
    assert 1 <= len(done) < 3

    code, out = rerun(tmp_path, path)
    assert code == 0, out
    assert f"{3 - len(done)} of 3 trials to run" in out
    parents, children = runs(tmp_path)
    assert [p.info.status for p in parents] == ["KILLED", "FINISHED"]
    new = [c for c in children if c.data.tags["mlflow.parentRunId"] == parents[1].info.run_id]
    assert len(new) == 3 - len(done)
    assert hashes(new).isdisjoint(done)
    assert len(done | hashes(new)) == 3
    assert f"3 trials: 3 finished, 0 failed ({len(done)} from earlier runs)" in out


@pytest.mark.timeout(300)
def test_runs_left_running_by_a_killed_sweep_are_closed_on_the_rerun(tmp_path):
    path = write_sweep(tmp_path, "[0.5]")
    proc = start(tmp_path, path, "--n-jobs", "2")
    wait_for(lambda: count(tmp_path, "FINISHED") >= 1)
    proc.kill()
    proc.wait(timeout=30)
    (parent,), _ = runs(tmp_path)
    assert parent.info.status == "RUNNING"  # nobody was left to close it

    code, out = rerun(tmp_path, path)
    assert code == 0, out
    assert "left RUNNING by a dead process as KILLED" in out
    parents, children = runs(tmp_path)
    assert [p.info.status for p in parents] == ["KILLED", "FINISHED"]
    assert "RUNNING" not in {c.info.status for c in children}
    assert len(hashes(children)) == 2


@pytest.mark.timeout(300)
def test_two_identical_sweeps_at_once_train_each_trial_once(tmp_path):
    path = support.write_sweep(
        tmp_path,
        "params: {training.lr: [0.1, 0.2, 0.3, 0.4]}\nseeds: [1, 2]\n",
        BASE.replace("steps: 1500", "steps: 300"),
        "slow.yaml",
    )
    procs = [start(tmp_path, path, "--n-jobs", "1") for _ in range(2)]
    try:
        outs = [p.communicate(timeout=240) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
        assert "8 trials: 8 finished, 0 failed" in out
    db = tmp_path / "mlflow.db"
    with closing(sqlite3.connect(db)) as con:
        hashes = con.execute(
            "SELECT tags.value FROM runs JOIN tags ON runs.run_uuid = tags.run_uuid "
            "WHERE tags.key = 'mgrun.config_hash' AND runs.status = 'FINISHED'"
        ).fetchall()
        statuses = {s for (s,) in con.execute("SELECT status FROM runs")}
    assert len(hashes) == 8 and len(set(hashes)) == 8  # every trial once, by one of the sweeps
    assert statuses == {"FINISHED"}
    claims = (tmp_path / "mlruns" / ".mgrun-claims").rglob("*")
    assert not [c for c in claims if c.is_file()]  # all given back


@pytest.mark.timeout(300)
def test_a_torn_or_foreign_claim_file_holds_no_sweep(tmp_path):
    """A claim cut short (its writer interrupted) or not written by mgrun is no claim: the sweep
    trains those trials instead of waiting for a holder that does not exist."""
    fast = BASE.replace("steps: 1500", "steps: 20")
    path = support.write_sweep(tmp_path, "params: {training.lr: [0.1, 0.2]}\n", fast, "slow.yaml")
    code, out = rerun(tmp_path, path)
    assert code == 0, out
    (claims,) = (tmp_path / "mlruns" / ".mgrun-claims").iterdir()
    db = tmp_path / "mlflow.db"
    query = "SELECT value FROM tags WHERE key = 'mgrun.config_hash'"
    with closing(sqlite3.connect(db)) as con:
        first = sorted(h for (h,) in con.execute(query))
    assert len(first) == 2
    for key, junk in zip(sorted(set(first)), ["", "not a claim"], strict=True):
        (claims / key).write_text(junk)
    code, out = rerun(tmp_path, path, "--fresh")
    assert code == 0, out
    assert "waiting" not in out and "2 trials: 2 finished" in out
    with closing(sqlite3.connect(db)) as con:
        assert sorted(h for (h,) in con.execute(query)) == sorted(first * 2)
    assert not [c for c in claims.iterdir()]  # the junk was taken over, then given back
