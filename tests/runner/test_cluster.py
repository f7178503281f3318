"""Sweeps on Dask with real processes on 127.0.0.1: a `dask scheduler` and two `dask worker`s
shared by the module, `mgrun sweep` as a process, a worker killed mid-sweep, processes that cannot
import mgrun or hold other code, a local cluster, and a real `mlflow server` as the store. Every
process started here is SIGKILLed by its process group (the leader's pid) in a finally block."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from cloudpickle import register_pickle_by_value
from distributed import Client
from mlflow import MlflowClient

from runner.config.sweep_file import load_sweep
from runner.errors import BackendError
from runner.execution.dask_backend import DaskBackend, Timeouts
from runner.execution.supervisor import run_trials
from runner.tracking import server_command
from tests.support import ROOT, free_port, healthy, wait_for

register_pickle_by_value(sys.modules[__name__])  # helpers below run on the workers
Procs = list[subprocess.Popen]
DASK = str(Path(sys.executable).with_name("dask"))
BASE = """\
name: tiny
seed: 1
dataset: {kind: moons, n_samples: 100, noise: 0.1, test_fraction: 0.0}
model: {hidden: [8]}
training: {steps: 600, lr: 0.5, eval_every: 100}
"""
SWEEP = "base: tiny.yaml\nparams: {training.lr: [0.1, 0.5]}\nseeds: [1, 2]\n"
# A dask command in a process that cannot find mgrun: no editable-install finder, no path to it.
BLIND = """\
import importlib.machinery, os, sys
sys.meta_path[:] = [f for f in sys.meta_path if f is importlib.machinery.PathFinder
                    or not hasattr(f, "find_spec") or f.find_spec("runner", None) is None]
sys.path[:] = [p for p in sys.path if not os.path.isdir(os.path.join(p or os.getcwd(), "runner"))]
from distributed.cli.dask_{} import main
main()
"""


def spawn(procs: Procs, argv: list[str], log: Path, **kw) -> subprocess.Popen:
    """Start `argv` as the leader of a new process group, logging to `log`."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, **kw
        )
    procs.append(proc)
    return proc


def kill_all(procs: Procs) -> None:
    for proc in reversed(procs):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def scheduler(procs: Procs, tmp: Path, blind: bool = False) -> str:
    port = free_port()
    cmd = [sys.executable, "-c", BLIND.format("scheduler")] if blind else [DASK, "scheduler"]
    args = ["--host", "127.0.0.1", "--port", str(port), "--dashboard-address", "127.0.0.1:0"]
    args.append("--no-dashboard")
    spawn(procs, cmd + args, tmp / "scheduler.log", cwd=tmp)
    return f"tcp://127.0.0.1:{port}"


def worker(procs: Procs, tmp: Path, address: str, name: str, *extra: str, blind=False, env=None):
    """A `dask worker` with one thread (by default under a nanny, which restarts it if it dies);
    `blind`: one that cannot find mgrun."""
    cmd = [sys.executable, "-c", BLIND.format("worker")] if blind else [DASK, "worker"]
    args = [address, "--nthreads", "1", "--host", "127.0.0.1", "--no-dashboard", *extra]
    args += ["--local-directory", str(tmp / name)]
    spawn(procs, cmd + args, tmp / f"{name}.log", cwd=tmp, env=env)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[Client]:
    """A client of a scheduler with two one-thread workers; `client.scheduler.address`."""
    tmp = tmp_path_factory.mktemp("dask")
    procs: Procs = []
    try:
        address = scheduler(procs, tmp)
        for i in range(2):
            worker(procs, tmp, address, f"worker{i}")
        with Client(address, timeout=30, set_as_default=False) as client:
            client.wait_for_workers(2, timeout=60)
            yield client
    finally:
        kill_all(procs)


@pytest.fixture(scope="module")
def sweep_file(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("sweep")
    (tmp / "tiny.yaml").write_text(BASE)
    (tmp / "s.yaml").write_text(SWEEP)
    return tmp / "s.yaml"


def mgrun(path: Path, uri: str, *args: str, **kw) -> subprocess.Popen:
    argv = [sys.executable, "-m", "runner", "sweep", str(path), "--no-progress"]
    return subprocess.Popen(
        [*argv, "--tracking-uri", uri, *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def finish(proc: subprocess.Popen, timeout: float = 120) -> tuple[int, str]:
    try:
        _, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, err


def runs(uri: str) -> list:
    client = MlflowClient(uri)
    ids = [e.experiment_id for e in client.search_experiments()]
    return list(client.search_runs(ids, max_results=1000)) if ids else []


def trials(uri: str) -> dict[int, tuple[str, str | None]]:
    """{sweep index: (status, fingerprint)} of every child run in the store."""
    return {
        int(r.data.tags["mgrun.sweep_index"]): (r.info.status, r.data.tags.get("mgrun.fingerprint"))
        for r in runs(uri)
        if "mgrun.sweep_index" in r.data.tags
    }


def sqlite(tmp: Path) -> str:
    return f"sqlite:///{tmp / 'mlflow.db'}"


@pytest.fixture(scope="module")
def serial(sweep_file, tmp_path_factory) -> dict[int, tuple[str, str | None]]:
    """The same sweep run here with --n-jobs 1: the fingerprints every cluster run must match."""
    uri = sqlite(tmp_path_factory.mktemp("serial"))
    code, err = finish(mgrun(sweep_file, uri, "--n-jobs", "1"))
    assert code == 0, err
    found = trials(uri)
    assert len(found) == 4 and {status for status, _ in found.values()} == {"FINISHED"}
    return found


# --- an existing cluster ---------------------------------------------------------------------


@pytest.mark.timeout(300)
def test_a_sweep_on_a_cluster_matches_a_serial_run_bit_for_bit(
    cluster, sweep_file, serial, tmp_path
):
    address = cluster.scheduler.address
    before = cluster.run(executed)
    code, err = finish(
        mgrun(sweep_file, sqlite(tmp_path), "--backend", "dask", "--address", address)
    )
    assert code == 0, err
    assert f"Dask scheduler {address}: 2 worker(s), 2 thread(s)" in err
    assert trials(sqlite(tmp_path)) == serial
    after = cluster.run(executed)
    # the 4 trials, then the pictures of the best 3 (--keep-top's default), ran there, not here
    assert sum(after.values()) - sum(before.values()) == 4 + 3
    assert cluster.run(imported, "runner.training.trial") == {w: True for w in after}
    assert cluster.run(imported, "mlflow") == {w: False for w in after}


def executed(dask_worker) -> int:
    """How many tasks this worker has run (sent to workers as code, like everything here)."""
    return dask_worker.state.executed_count


def imported(module: str) -> bool:
    return module in sys.modules


@pytest.mark.timeout(300)
def test_killing_a_worker_mid_sweep_loses_no_trial(cluster, sweep_file, serial, tmp_path):
    proc = mgrun(
        sweep_file, sqlite(tmp_path), "--backend", "dask", "--address", cluster.scheduler.address
    )
    try:
        busy = wait_for(lambda: {w: keys for w, keys in cluster.processing().items() if keys})
        victim, keys = sorted(busy.items())[0]
        assert all("mgrun-trial-" in key for key in keys)  # it holds a trial of this sweep
        (pid,) = cluster.run(os.getpid, workers=[victim]).values()
        os.kill(pid, signal.SIGKILL)
        code, err = finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 0, err
    assert trials(sqlite(tmp_path)) == serial
    cluster.wait_for_workers(2, timeout=60)  # its nanny restarted it, for the tests after this
    assert pid not in cluster.run(os.getpid).values()


@pytest.mark.timeout(300)
def test_a_team_setup_sweep_file_names_the_cluster_and_a_tracking_server_stores_it(
    cluster, sweep_file, serial, tmp_path
):
    shutil.copy(sweep_file.with_name("tiny.yaml"), tmp_path)
    path = tmp_path / "team.yaml"
    path.write_text(
        SWEEP + f"execution: {{backend: dask, address: '{cluster.scheduler.address}'}}\n"
    )
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    argv = server_command(sqlite(tmp_path), str(tmp_path / "served"), port=port)
    assert "--serve-artifacts" in argv
    procs: Procs = []
    try:
        spawn(procs, argv, tmp_path / "server.log", cwd=tmp_path)
        wait_for(lambda: healthy(uri), timeout=90)
        code, err = finish(mgrun(path, uri))
        assert code == 0, err
        assert "Dask scheduler" in err
        assert trials(uri) == serial
        child = next(r for r in runs(uri) if "mgrun.sweep_index" in r.data.tags)
        files = {f.path for f in MlflowClient(uri).list_artifacts(child.info.run_id)}
        assert "config.yaml" in files
        assert any((tmp_path / "served").rglob("config.yaml"))  # stored by the server
    finally:
        kill_all(procs)


# --- pre-flight: nothing runs, nothing is recorded ---------------------------------------------


@pytest.mark.timeout(300)
def test_workers_that_cannot_import_mgrun_stop_the_sweep_before_any_run(sweep_file, tmp_path):
    procs: Procs = []
    try:
        address = scheduler(procs, tmp_path)
        worker(procs, tmp_path, address, "blind", "--no-nanny", blind=True)
        with Client(address, timeout=30, set_as_default=False) as client:
            client.wait_for_workers(1, timeout=60)
            assert set(client.run(importlib.util.find_spec, "runner").values()) == {None}
        code, err = finish(
            mgrun(sweep_file, sqlite(tmp_path), "--backend", "dask", "--address", address), 60
        )
    finally:
        kill_all(procs)
    assert code == 2, err
    (line,) = [x for x in err.splitlines() if x.startswith("error:")]
    assert f"Dask scheduler {address}: worker tcp://127.0.0.1:" in line
    assert "cannot import mgrun (ModuleNotFoundError" in line
    assert "pip install 'mgrun[dask]'" in line
    assert not (tmp_path / "mlflow.db").exists()


@pytest.mark.timeout(300)
def test_a_scheduler_that_cannot_import_mgrun_is_caught(tmp_path):
    """The scheduler unpickles every task: without mgrun it drops them and the sweep would hang."""
    procs: Procs = []
    try:
        address = scheduler(procs, tmp_path, blind=True)
        worker(procs, tmp_path, address, "w", "--no-nanny")
        with pytest.raises(BackendError) as caught:
            DaskBackend(address=address)
    finally:
        kill_all(procs)
    assert str(caught.value).startswith(f"Dask scheduler {address}: the scheduler cannot import")


@pytest.mark.timeout(300)
def test_a_worker_with_other_mgrun_code_is_caught_and_the_file_named(tmp_path):
    stale = tmp_path / "stale"
    for package in ("engine", "runner"):
        shutil.copytree(
            ROOT / package, stale / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    with open(stale / "runner" / "trial.py", "a") as f:
        f.write("# an edit this checkout does not have\n")
    procs: Procs = []
    try:
        address = scheduler(procs, tmp_path)
        with pytest.raises(BackendError, match="no Dask worker joined within 1 s"):
            DaskBackend(address=address, timeouts=Timeouts(workers=1))
        env = {**os.environ, "PYTHONPATH": str(stale)}
        worker(procs, tmp_path, address, "stale", "--no-nanny", env=env)
        with pytest.raises(BackendError) as caught:
            DaskBackend(address=address)
    finally:
        kill_all(procs)
    message = str(caught.value)
    assert "has other mgrun code (runner/trial.py differ; mgrun 0.1.0 there, 0.1.0 here)" in message


@pytest.mark.timeout(300)
def test_no_scheduler_at_the_address_is_a_clear_error(tmp_path):
    address = f"tcp://127.0.0.1:{free_port()}"
    with pytest.raises(BackendError, match=f"--address {address}: no Dask scheduler answers"):
        DaskBackend(address=address, timeouts=Timeouts(connect=1))


# --- a local cluster -------------------------------------------------------------------------


def children(proc: subprocess.Popen) -> set[int]:
    with contextlib.suppress(psutil.Error):
        return {p.pid for p in psutil.Process(proc.pid).children(recursive=True)}
    return set()


def watch_children(proc: subprocess.Popen) -> set[int]:
    """Every process `proc` starts while it runs (filled in by a thread)."""
    seen: set[int] = set()

    def watch() -> None:
        while proc.poll() is None:
            seen.update(children(proc))
            time.sleep(0.05)

    threading.Thread(target=watch, daemon=True).start()
    return seen


def gone(pids: set[int]) -> bool:
    def alive(pid: int) -> bool:
        with contextlib.suppress(psutil.Error):
            return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        return False

    return not any(alive(pid) for pid in pids)


def count_runs(db: Path) -> int:
    """Runs in the sqlite store, read with sqlite3 while the sweep may still be creating it."""
    try:
        with contextlib.closing(sqlite3.connect(db, timeout=5)) as con:
            return con.execute("SELECT count(*) FROM runs").fetchone()[0]
    except sqlite3.Error:
        return 0


@pytest.mark.timeout(300)
def test_a_local_cluster_runs_the_sweep_and_is_closed_after(sweep_file, serial, tmp_path):
    proc = mgrun(sweep_file, sqlite(tmp_path), "--backend", "dask", "--n-jobs", "2")
    seen = watch_children(proc)
    code, err = finish(proc)
    assert code == 0, err
    assert "local Dask cluster tcp://127.0.0.1:" in err
    assert trials(sqlite(tmp_path)) == serial
    assert len(seen) >= 2  # its two worker processes, at least
    wait_for(lambda: gone(seen), timeout=10)


@pytest.mark.timeout(300)
def test_ctrl_c_ends_the_sweep_killed_and_closes_the_local_cluster(sweep_file, tmp_path):
    args = ["--backend", "dask", "--n-jobs", "2", "--set", "training.steps=5000"]
    proc = mgrun(sweep_file, sqlite(tmp_path), *args, start_new_session=True)
    try:
        seen = watch_children(proc)
        wait_for(lambda: count_runs(tmp_path / "mlflow.db"), timeout=90)  # the sweep's run
        time.sleep(0.5)
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        code, err = finish(proc, 60)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert code == 130, err
    assert "Traceback" not in err
    assert {r.info.status for r in runs(sqlite(tmp_path))} == {"KILLED"}
    assert len(seen) >= 2
    wait_for(lambda: gone(seen), timeout=10)


@pytest.mark.timeout(300)
def test_a_trial_dask_gives_up_on_comes_back_failed_and_the_others_finish(sweep_file):
    specs = [t.spec for t in load_sweep(sweep_file, ["training.steps=2500"]).trials]
    backend = DaskBackend(n_jobs=2, retries=0)  # a local cluster: one death and Dask gives up
    killed: list[tuple[str, ...]] = []
    try:
        client = backend.client
        assert client is not None
        pids = client.run(os.getpid)

        def kill_a_busy_worker() -> None:
            busy = wait_for(lambda: {w: k for w, k in client.processing().items() if k})
            address, keys = sorted(busy.items())[0]
            killed.append(keys)
            os.kill(pids[address], signal.SIGKILL)

        threading.Thread(target=kill_a_busy_worker, daemon=True).start()
        results = [r.result for r in run_trials(specs, backend, retries=0)]
    finally:
        backend.close()
    assert sorted(r.index for r in results) == [0, 1, 2, 3]
    failed = [r for r in results if r.status == "FAILED"]
    assert len(failed) == 1 and "Dask gave up" in (failed[0].reason or "")
    assert any(f"mgrun-trial-{failed[0].index}_" in key for key in killed[0])


@pytest.mark.timeout(300)
def test_a_one_thread_cluster_runs_the_trials_on_its_worker_not_here(sweep_file):
    """joblib runs everything in the calling process when it counts a single slot."""
    specs = [t.spec for t in load_sweep(sweep_file, ["training.steps=20"]).trials]
    backend = DaskBackend(n_jobs=1)
    try:
        assert backend.client is not None
        results = [r.result for r in run_trials(specs, backend)]
        ran = backend.client.run(executed)
    finally:
        backend.close()
    assert sorted(r.index for r in results) == [0, 1, 2, 3]
    assert list(ran.values()) == [4]


@pytest.mark.timeout(300)
def test_without_dask_installed_the_dask_backend_is_a_clear_error(sweep_file, tmp_path):
    blocked = "import sys; sys.modules['distributed'] = None; from runner.cli import main; main()"
    argv = [sys.executable, "-c", blocked, "sweep", str(sweep_file), "--backend", "dask"]
    argv += ["--tracking-uri", sqlite(tmp_path)]
    done = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=50)
    assert done.returncode == 2, done.stderr
    assert "pip install 'mgrun[dask]'" in done.stderr
    assert not (tmp_path / "mlflow.db").exists()
