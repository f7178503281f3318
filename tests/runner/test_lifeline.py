"""Workers end when their parent dies: `runner.execution.lifeline` in a small real process tree,
then the loky workers of a real `mgrun sweep` whose parent is SIGKILLed."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import psutil
import pytest

from runner.execution.lifeline import watch_parent
from tests.support import gone, wait_for

ROOT = Path(__file__).resolve().parents[2]

# A parent that starts a child watching it, prints the child's pid, then waits to be killed; the
# child says when it watches.
TREE = """\
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", sys.argv[1]])
print(child.pid, flush=True)
time.sleep(600)
"""
CHILD = """\
import os, time
from runner.execution.lifeline import watch_parent
watch_parent(os.getppid())
print("watching", flush=True)
time.sleep(600)
"""


@pytest.mark.timeout(60)
def test_a_watching_child_exits_when_its_parent_is_killed():
    parent = subprocess.Popen(
        [sys.executable, "-c", TREE, CHILD], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        child = psutil.Process(int(parent.stdout.readline()))
        assert parent.stdout.readline() == "watching\n"
        parent.kill()
        parent.wait(timeout=10)
        wait_for(lambda: gone([child]), timeout=15)
    finally:
        parent.kill()
        parent.wait(timeout=10)


def test_nothing_is_watched_in_process_or_without_a_parent():
    watch_parent(None)
    watch_parent(os.getpid())  # trials run in this process: its parent is not ours to watch
    assert "mgrun-lifeline" not in {t.name for t in threading.enumerate()}


# A few seconds per trial: the sweep is killed while both workers train.
BASE = """\
name: long
seed: 1
dataset: {kind: moons, n_samples: 100, noise: 0.1, test_fraction: 0.0}
model: {hidden: [8]}
training: {steps: 200000, lr: 0.5, eval_every: 100}
"""


@pytest.mark.timeout(240)
def test_sweep_workers_end_when_the_sweep_is_killed(tmp_path):
    (tmp_path / "long.yaml").write_text(BASE)
    (tmp_path / "s.yaml").write_text("base: long.yaml\nparams: {training.lr: [0.5, 1.0, 2.0]}\n")
    argv = [sys.executable, "-m", "runner", "sweep", str(tmp_path / "s.yaml"), "--n-jobs", "2"]
    argv += ["--no-progress", "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"]
    env = {**os.environ, "TMPDIR": str(tmp_path)}  # where the workers mark trials they start
    proc = subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for(lambda: len(list(tmp_path.glob("mgrun-marks-*/*"))) == 2, timeout=150)
        workers = [
            p
            for p in psutil.Process(proc.pid).children(recursive=True)
            if "LokyProcess" in " ".join(p.cmdline())
        ]
        assert len(workers) == 2
        proc.kill()
        proc.wait(timeout=30)
        wait_for(lambda: gone(workers), timeout=15)
    finally:
        proc.kill()
        proc.wait(timeout=10)
