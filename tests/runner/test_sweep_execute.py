"""The fan-out: real loky worker processes, results streamed back, dead workers survived."""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
import tempfile
import threading
import time

import pytest
from cloudpickle import register_pickle_by_value
from joblib import delayed

from runner.config import TrialSpec, load_run_config
from runner.errors import BackendError
from runner.execution.backends import Backend, LokyBackend, make_backend
from runner.execution.supervisor import run_trials
from runner.execution.worker import work
from tests.support import ROOT


def specs(n: int, steps: int = 5) -> list[TrialSpec]:
    """n distinct tiny trials (seeds 0..n-1)."""
    sets = [f"training.steps={steps}", "dataset.n_samples=40", "model.hidden=[4]"]
    base = load_run_config(ROOT / "configs" / "moons.yaml", sets)
    return [TrialSpec(dataclasses.replace(base, seed=i), index=i) for i in range(n)]


def work_and_look(spec: TrialSpec) -> tuple[str, int, list[str]]:
    """In a worker: the sweep's worker function, then what the process has imported."""
    record = work(spec, None)
    return (
        record.result.status,
        os.getpid(),
        sorted(m for m in sys.modules if m.startswith("mlflow")),
    )


@pytest.mark.timeout(60)
def test_workers_never_import_mlflow():
    import mlflow  # noqa: F401  the parent has it; spawned workers must not

    register_pickle_by_value(sys.modules[__name__])  # workers cannot import this test module
    parallel = LokyBackend(2).parallel()
    out = list(parallel(delayed(work_and_look)(s) for s in specs(2)))
    assert [(status, mods) for status, _, mods in out] == [("FINISHED", [])] * 2
    assert os.getpid() not in {pid for _, pid, _ in out}  # they ran in other processes


@pytest.mark.timeout(60)
def test_every_trial_comes_back_once_with_the_same_bits_in_any_order():
    trials = specs(6)
    serial = {r.index: r.result.fingerprint for r in run_trials(trials, Backend())}
    parallel = {r.index: r.result.fingerprint for r in run_trials(trials[::-1], LokyBackend(2))}
    assert sorted(serial) == list(range(6))
    assert parallel == serial
    assert len(set(serial.values())) == 6


@pytest.mark.timeout(60)
def test_a_trial_that_raises_fails_alone():
    trials = specs(3)
    bad_model = dataclasses.replace(trials[1].config.model, activation="nope")
    trials[1] = TrialSpec(dataclasses.replace(trials[1].config, model=bad_model), index=1)
    results = {r.index: r.result for r in run_trials(trials, LokyBackend(2))}
    assert [results[i].status for i in range(3)] == ["FINISHED", "FAILED", "FINISHED"]
    assert results[1].reason.startswith("ValueError: unknown activation 'nope'")
    assert "Traceback" in results[1].traceback


@pytest.mark.timeout(90)
def test_a_trial_whose_worker_keeps_dying_fails_after_its_retries(tmp_path, monkeypatch):
    """Kill, from outside, every worker that starts trial 0: it is charged and fails after
    --retries reruns; the trials in flight beside it are rerun uncharged and finish."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the start marks go
    trials = specs(4, steps=150)
    killed: set[int] = set()
    stop = threading.Event()

    def kill_trial_0() -> None:
        while not stop.is_set():
            for mark in tmp_path.glob("mgrun-marks-*/0"):
                try:
                    pid = int(mark.read_text())
                except (OSError, ValueError):
                    continue  # being written or already gone
                if pid not in killed:
                    killed.add(pid)
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.01)

    killer = threading.Thread(target=kill_trial_0, daemon=True)
    killer.start()
    notes: list[tuple[int, str]] = []
    try:
        results = list(
            run_trials(trials, LokyBackend(2), 1, lambda s, w: notes.append((s.index, w)))
        )
    finally:
        stop.set()
        killer.join()
    by_index = {r.index: r.result for r in results}
    assert sorted(by_index) == [0, 1, 2, 3] and len(results) == 4
    assert by_index[0].status == "FAILED"
    assert "worker process died 2 times" in by_index[0].reason
    assert "SIGKILL" in by_index[0].reason
    assert [by_index[i].status for i in (1, 2, 3)] == ["FINISHED"] * 3
    assert len(killed) >= 2
    assert any(i == 0 for i, _ in notes)


def test_unknown_backends_are_refused():
    with pytest.raises(BackendError):
        make_backend("ray")
    assert make_backend("loky", 3).parallelism == 3
    assert make_backend("sequential").parallelism == 1
