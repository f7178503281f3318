"""Stores that would lose or stall work are refused at once; an interrupted store creation or a
killed run never leaves a broken store or a run RUNNING. Real processes, real signals."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import psutil
import pytest
from mlflow import MlflowClient

from tests.support import CONFIGS, gone, wait_for

MGRUN = [sys.executable, "-m", "runner"]


def mgrun(cwd: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([*MGRUN, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def one_error_line(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--tracking-uri", "sqlite:///"], "in-memory database loses every run"),
        (["--tracking-uri", "sqlite:///:memory:"], "in-memory database loses every run"),
        (["--tracking-uri", "sqlite:///blocker/mlflow.db"], "it cannot be written there"),
    ],
)
def test_a_store_that_cannot_keep_the_run_is_refused_at_once(tmp_path, args, expected):
    (tmp_path / "blocker").write_text("a file where the store's folder would be\n")
    done = mgrun(tmp_path, "train", str(CONFIGS / "moons.yaml"), "--no-progress", *args)
    assert expected in one_error_line(done)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["gradcheck", "--rows", "0"], "--rows 0: must be at least 1"),
        (["gradcheck", "--rows", "-1"], "--rows -1: must be at least 1"),
        (["gradcheck", "--tol", "nan"], "--tol nan: must be a positive number"),
        (["gradcheck", "--tol", "0"], "--tol 0.0: must be a positive number"),
        (["graph", "-o", "missing/dir/g.dot"], "the folder missing/dir does not exist"),
    ],
)
def test_command_line_options_are_checked_like_the_config(tmp_path, args, expected):
    done = mgrun(tmp_path, args[0], str(CONFIGS / "moons.yaml"), *args[1:])
    assert expected in one_error_line(done)
    assert list(tmp_path.iterdir()) == []


def _runs(db: Path) -> list[tuple[str, str]]:
    """(run id, status) of every run, read straight from the file."""
    if not db.exists():
        return []
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)) as con:
        try:
            return con.execute("SELECT run_uuid, status FROM runs").fetchall()
        except sqlite3.OperationalError:
            return []


@pytest.mark.timeout(300)
def test_ctrl_c_while_a_fresh_store_is_made_leaves_no_broken_store(tmp_path):
    db = tmp_path / "mlflow.db"
    uri = f"sqlite:///{db}"
    train = ["train", str(CONFIGS / "moons.yaml"), "--no-progress", "--tracking-uri", uri]
    for _ in range(2):
        if db.exists():  # the first interrupt came after the store was complete
            break
        proc = subprocess.Popen(
            [*MGRUN, *train], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        wait_for(lambda: list(tmp_path.glob(".mlflow.db.creating-*")) or db.exists(), 120)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode in (0, 130), err.decode()
        assert b"Traceback" not in err
        assert not list(tmp_path.glob(".mlflow.db.creating-*"))
    done = mgrun(tmp_path, *train)
    assert done.returncode == 0, done.stderr
    assert "FINISHED" in {status for _, status in _runs(db)}


@pytest.mark.timeout(300)
def test_a_killed_train_leaves_a_run_that_the_next_train_closes(tmp_path):
    db = tmp_path / "mlflow.db"
    uri = f"sqlite:///{db}"
    args = [str(CONFIGS / "moons.yaml"), "--no-progress", "--tracking-uri", uri]
    proc = subprocess.Popen(
        [*MGRUN, "train", *args, "--set", "training.steps=100000"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    (killed, _), *_ = wait_for(lambda: [r for r in _runs(db) if r[1] == "RUNNING"], 120)
    trainer = psutil.Process(proc.pid).children()  # the model trains in a child process
    assert len(trainer) == 1
    proc.kill()
    proc.wait(timeout=30)
    wait_for(lambda: gone(trainer), 30)  # it ends with its parent
    done = mgrun(tmp_path, "train", *args, "--set", "training.steps=5")
    assert done.returncode == 0, done.stderr
    assert "closed 1 run(s) left RUNNING by a dead process as KILLED" in done.stderr
    run = MlflowClient(uri).get_run(killed)
    assert run.info.status == "KILLED" and "left RUNNING by process" in run.data.tags["mgrun.error"]


@pytest.mark.timeout(300)
def test_two_trains_on_one_fresh_store_at_the_same_moment_both_finish(tmp_path):
    db = tmp_path / "mlflow.db"
    args = [
        "train",
        str(CONFIGS / "moons.yaml"),
        "--no-progress",
        "--tracking-uri",
        f"sqlite:///{db}",
    ]
    procs = [
        subprocess.Popen(
            [*MGRUN, *args, "--set", f"seed={seed}"],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in (1, 2)
    ]
    outs = [p.communicate(timeout=240) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outs]
    assert sorted(status for _, status in _runs(db)) == ["FINISHED", "FINISHED"]


@pytest.mark.timeout(300)
def test_an_artifact_store_that_cannot_be_written_ends_the_run_failed_in_one_line(tmp_path):
    db = tmp_path / "mlflow.db"
    uri = f"sqlite:///{db}"
    args = ["train", str(CONFIGS / "moons.yaml"), "--no-progress", "--tracking-uri", uri]
    assert mgrun(tmp_path, *args, "--set", "training.steps=2").returncode == 0  # the store
    mlruns = tmp_path / "mlruns"
    backup = tmp_path / "mlruns.ok"
    mlruns.rename(backup)
    mlruns.write_text("not a folder: nothing can be written under it\n")
    done = mgrun(tmp_path, *args, "--set", "training.steps=3")
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot write"), done.stderr
    assert "Traceback" not in done.stderr
    assert sorted(status for _, status in _runs(db)) == ["FAILED", "FINISHED"]
