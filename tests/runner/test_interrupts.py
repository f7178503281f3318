"""Signals are never lost: first the rules of `runner.interrupts` with real signals sent to this
process, then `mgrun train` and `mgrun sweep` as real processes hit by SIGINT, SIGTERM and SIGHUP
at different moments. Each store is a copy of one prepared sqlite file, to skip its migrations."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
from mlflow import MlflowClient

from runner import interrupts
from runner.interrupts import check, protected, received
from tests.support import wait_for

ROOT = Path(__file__).resolve().parents[2]


def hit(sig: int = signal.SIGINT) -> None:
    """Send `sig` to this process and wait until the handler has recorded it."""
    os.kill(os.getpid(), sig)
    wait_for(received, timeout=10)


def never() -> bool:
    return False


@pytest.mark.parametrize("sig", interrupts.SIGNALS)
def test_a_signal_outside_protected_sections_interrupts_at_once(sig):
    with interrupts.installed(), pytest.raises(KeyboardInterrupt):
        hit(sig)
    assert received() is None  # forgotten once the block ends


def test_protected_sections_hold_a_signal_until_the_outermost_ends():
    reached = []
    with interrupts.installed():
        with pytest.raises(KeyboardInterrupt), protected():
            with protected():
                hit()
                reached.append("inner")
            reached.append("outer")
        assert reached == ["inner", "outer"]
        assert received() == signal.SIGINT


def test_protected_works_as_a_decorator_and_keeps_the_first_signal():
    done = []

    @protected()
    def write() -> None:
        hit(signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGHUP)
        done.append(True)

    with interrupts.installed():
        with pytest.raises(KeyboardInterrupt):
            write()
        assert done == [True]
        assert received() == signal.SIGTERM


def test_an_interrupt_swallowed_somewhere_is_raised_again():
    with interrupts.installed():
        with contextlib.suppress(KeyboardInterrupt):  # a careless `except BaseException: pass`
            hit()
        with pytest.raises(KeyboardInterrupt):
            check()
        with pytest.raises(KeyboardInterrupt), protected():
            pass


def test_a_signal_that_lands_in_a_finalizer_is_raised_after_it(capfd):
    class Finalized:
        def __del__(self):
            hit()  # Python would print "Exception ignored" and drop a KeyboardInterrupt here

    with interrupts.installed(), pytest.raises(KeyboardInterrupt):
        Finalized()
        wait_for(never, timeout=10)
    assert "Exception ignored" not in capfd.readouterr().err


def test_a_protected_section_in_another_thread_holds_nothing():
    inside, leave = threading.Event(), threading.Event()

    def work() -> None:
        with protected():
            inside.set()
            leave.wait(10)

    thread = threading.Thread(target=work)
    thread.start()
    try:
        inside.wait(10)
        with interrupts.installed(), pytest.raises(KeyboardInterrupt):
            hit()
    finally:
        leave.set()
        thread.join(10)


def test_the_previous_handlers_come_back():
    before = {sig: signal.getsignal(sig) for sig in interrupts.SIGNALS}
    with interrupts.installed():
        assert all(signal.getsignal(sig) is not before[sig] for sig in interrupts.SIGNALS)
    assert {sig: signal.getsignal(sig) for sig in interrupts.SIGNALS} == before


# --- real processes ----------------------------------------------------------------------------

# Many tiny steps with eval_every 1: every flush of the metric stream (once a second) is several
# store writes, so a signal sent as soon as a flush shows up lands in the middle of one.
FAST = """\
name: fast
seed: 1
dataset: {kind: moons, n_samples: 16, noise: 0.1, test_fraction: 0.25}
model: {hidden: [2]}
training: {steps: 1000000, lr: 0.1, eval_every: 1}
"""
# With --set training.steps=300 the trials are quick, so the sweep's parent is mostly busy
# recording them when the signal lands.
SWEEP = "base: fast.yaml\nparams: {training.lr: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]}\n"


@dataclass
class Job:
    """One mgrun process and its own store, signalled as soon as it has made `after` changes to
    the count that `query` reads (metric points, finished trials)."""

    proc: subprocess.Popen
    db: Path
    sig: int
    after: int
    query: str
    last: int = 0
    seen: int = 0
    signalled: bool = False

    @property
    def uri(self) -> str:
        return f"sqlite:///{self.db}"

    def poll(self) -> bool:
        """Count another write when the watched number changed; signal when it is time."""
        if self.signalled:
            return True
        if self.proc.poll() is not None:
            raise AssertionError(f"exited {self.proc.returncode} early:\n{self.proc.stderr.read()}")
        now = read(self.db, self.query)
        if now is not None and now != self.last:
            self.last, self.seen = now, self.seen + 1
        if self.seen >= self.after:
            self.proc.send_signal(self.sig)
            self.signalled = True
        return self.signalled


def read(db: Path, query: str) -> int | None:
    """A count from the store, read while mgrun writes to it; None if it stayed busy."""
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)) as con:
        try:
            return con.execute(query).fetchone()[0]
        except sqlite3.OperationalError:
            return None


def start(tmp_path: Path, template: Path, name: str, command: list[str], **job) -> Job:
    where = tmp_path / name
    where.mkdir()
    (where / "fast.yaml").write_text(FAST)
    (where / "sweep.yaml").write_text(SWEEP)
    db = Path(shutil.copy(template, where / "mlflow.db"))
    argv = [sys.executable, "-m", "runner", *command, "--no-progress"]
    argv = [str(where / a) if a.endswith(".yaml") else a for a in argv]
    argv += ["--tracking-uri", f"sqlite:///{db}"]
    proc = subprocess.Popen(
        argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    return Job(proc, db, **job)


def finish(jobs: list[Job]) -> None:
    """Signal every job at its moment, then check each ended cleanly: exit 130, one line."""
    try:
        wait_for(lambda: all([job.poll() for job in jobs]), timeout=180)
        for job in jobs:
            _, err = job.proc.communicate(timeout=60)
            name = signal.Signals(job.sig).name
            assert job.proc.returncode == 130, f"{name} after {job.after}: {err}"
            assert "Traceback" not in err and "Exception ignored" not in err, err
            assert err.strip().splitlines()[-1] == "interrupted", err
    finally:
        for job in jobs:
            if job.proc.poll() is None:
                job.proc.kill()
                job.proc.wait()


def statuses(job: Job) -> list[str]:
    client = MlflowClient(job.uri)
    ids = [e.experiment_id for e in client.search_experiments()]
    return [r.info.status for r in client.search_runs(ids)]


METRICS = "SELECT count(*) FROM metrics"
FINISHED_CHILDREN = (
    "SELECT count(*) FROM runs JOIN tags ON runs.run_uuid = tags.run_uuid "
    "WHERE tags.key = 'mlflow.parentRunId' AND runs.status = 'FINISHED'"
)


@pytest.mark.timeout(300)
def test_train_interrupted_during_its_metric_writes_ends_killed(tmp_path, template):
    tries = [(signal.SIGINT, 2), (signal.SIGTERM, 1), (signal.SIGHUP, 1)]
    jobs = [
        start(tmp_path, template, f"t{i}", ["train", "fast.yaml"], sig=s, after=n, query=METRICS)
        for i, (s, n) in enumerate(tries)
    ]
    finish(jobs)
    for job in jobs:
        assert statuses(job) == ["KILLED"]
        assert read(job.db, METRICS) > 0  # what was trained is kept


@pytest.mark.timeout(300)
def test_sweep_interrupted_while_recording_trials_keeps_them_and_ends_killed(tmp_path, template):
    tries = [(signal.SIGINT, 1), (signal.SIGHUP, 2)]
    command = ["sweep", "sweep.yaml", "--n-jobs", "2", "--set", "training.steps=300"]
    jobs = [
        start(tmp_path, template, f"s{i}", command, sig=s, after=n, query=FINISHED_CHILDREN)
        for i, (s, n) in enumerate(tries)
    ]
    wait_for(lambda: all(len(workers(job)) == 2 for job in jobs), timeout=120)
    started = [p for job in jobs for p in workers(job)]
    finish(jobs)
    _, alive = psutil.wait_procs(started, timeout=15)
    assert alive == []  # no worker outlives its sweep
    for job in jobs:
        found = statuses(job)
        assert "RUNNING" not in found
        assert found.count("FINISHED") >= job.after  # trials recorded before the signal stay
        assert found.count("KILLED") >= 1  # the sweep's own run


def workers(job: Job) -> list[psutil.Process]:
    """The sweep's loky worker processes."""
    found = []
    for p in psutil.Process(job.proc.pid).children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if "LokyProcess" in " ".join(p.cmdline()):
                found.append(p)
    return found


def _starting(pid: int) -> bool | None:
    """True while the process is still importing the CLI with a handler for SIGTERM installed
    (Python has none of its own, mgrun's entry point installs one before importing anything
    heavy); False once the CLI's imports reached the config's YAML extension; None before either."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        maps = Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False
    if "yaml/_yaml" in maps:
        return False
    caught = next(line for line in status.splitlines() if line.startswith("SigCgt:"))
    return True if int(caught.split()[1], 16) >> (signal.SIGTERM - 1) & 1 else None


def _signal_while_starting(proc: subprocess.Popen, sig: int) -> bool:
    """Send `sig` as soon as the process has a SIGTERM handler; whether it was still importing."""
    wait_for(lambda: _starting(proc.pid) is not None, timeout=60)
    early = _starting(proc.pid) is True
    proc.send_signal(sig)
    return early


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_while_mgrun_starts_exits_130_quietly_and_creates_nothing(tmp_path, sig):
    (tmp_path / "fast.yaml").write_text(FAST)
    argv = [sys.executable, "-m", "runner", "train", "fast.yaml", "--no-progress"]
    landed = False
    for _ in range(5):  # a loaded machine may get through the imports before the first look
        proc = subprocess.Popen(argv, cwd=tmp_path, stderr=subprocess.PIPE, text=True)
        try:
            landed = _signal_while_starting(proc, sig)
            _, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 130, err
        assert err.strip() == "interrupted", err
        assert not (tmp_path / "mlflow.db").exists()
        if landed:
            break
    assert landed, "no signal landed while mgrun was importing its CLI"
