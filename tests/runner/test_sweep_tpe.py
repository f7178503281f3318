"""`method: tpe`: its validation, the plan driven by hand-made rows (real Optuna, no training),
and real sweeps that ask the same trials on one core, two, a local Dask cluster, and after an
interrupted run is resumed."""

from __future__ import annotations

import csv
import io
import math
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from contextlib import closing, redirect_stderr
from dataclasses import dataclass
from pathlib import Path

import pytest

from runner import interrupts
from runner.commands.report import Row, sweep_hash
from runner.commands.search.tpe import _told, tpe
from runner.commands.sweep import Execution, load, run_sweep
from runner.config.sweep_file import load_sweep
from runner.execution.backends import make_backend
from tests import support
from tests.support import ROOT, config_error, copied_store, wait_for

BASE = """\
name: tiny
seed: 5
dataset: {kind: moons, n_samples: 40, noise: 0.1, test_fraction: 0.25}
model: {hidden: [4]}
training: {steps: 8, lr: 0.1, eval_every: 4}
"""
SPACE = """\
params:
  training.lr: {loguniform: [0.01, 1.0]}
  model.hidden: [[2], [4], [2, 2]]
  model.activation: {choice: [relu, tanh]}
  training.steps: {int: [4, 8]}
"""
TPE = f"method: tpe\nn_trials: 6\nbatch: 3\nseed: 3\nmetric: test_accuracy\n{SPACE}"


def write_sweep(where: Path, text: str = TPE) -> Path:
    return support.write_sweep(where, text, BASE)


# --- validation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"method: tpe\n{SPACE}", "n_trials: required by method: tpe; set n_trials: 20"),
        (f"method: tpe\nn_trials: 4\nbatch: 0\n{SPACE}", "batch: must be >= 1, got 0"),
        ("params: {training.lr: [0.1]}\nbatch: 4\n", "batch: only used by method: tpe"),
        (
            "method: tpe\nn_trials: 4\nparams: {training.lr: {uniform: [0.0, 1.0]}}\n",
            "training.lr: must be > 0, got 0.0",  # a corner of the space, before anything runs
        ),
        (
            "method: tpe\nn_trials: 4\nparams: {model.activation: {choice: [relu, nope]}}\n",
            "model.activation",
        ),
        (
            "method: tpe\nn_trials: 4\nparams: {training.lr: {loguniform: [0, 1]}}\n",
            "params.training.lr.loguniform: needs low > 0",
        ),
        (
            "method: tpe\nn_trials: 100001\nparams: {training.lr: [0.1]}\n",
            "n_trials: ",
        ),
    ],
)
def test_invalid_tpe_sweeps_name_file_field_and_fix(tmp_path, text, expected):
    msg = config_error(load, write_sweep(tmp_path, text))
    assert expected in msg, msg


def test_a_tpe_sweep_makes_no_trials_up_front_and_takes_a_plain_list_as_choices(tmp_path):
    sweep = load(write_sweep(tmp_path))
    assert sweep.trials == () and sweep.config.batch == 3


def test_a_tpe_sweeps_identity_is_everything_that_decides_its_trials(tmp_path):
    shipped = load_sweep(ROOT / "experiments" / "spirals_tpe.yaml")
    assert sweep_hash(shipped).startswith("e4f8b7ed8617f221750bf89f31795135")
    a, b = (tmp_path / "a", tmp_path / "b")
    one = sweep_hash(load_sweep(write_sweep(a)))
    assert sweep_hash(load_sweep(write_sweep(b))) == one
    assert sweep_hash(load_sweep(write_sweep(b, TPE.replace("batch: 3", "batch: 2")))) != one
    assert sweep_hash(load_sweep(write_sweep(b, TPE.replace("seed: 3", "seed: 4")))) != one


def test_only_the_parent_of_a_tpe_sweep_imports_optuna():
    code = "import sys, runner.cli, runner.execution.worker; print('optuna' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"


# --- the plan, told by hand --------------------------------------------------------------------


def drive(sweep, score) -> list[list]:
    """Every batch the plan yields, each row's value from `score(trial)` (None: FAILED)."""
    plan, batches = tpe(sweep), []
    batch = next(plan)
    while True:
        batches.append(batch)
        rows = [Row(t, "FAILED" if (v := score(t)) is None else "FINISHED", v, "") for t in batch]
        try:
            batch = plan.send(rows)
        except StopIteration:
            return batches


def test_the_plan_asks_a_batch_of_points_per_seed_and_maps_choices_back(tmp_path):
    text = TPE.replace("n_trials: 6", "n_trials: 7") + "seeds: [1, 2]\n"
    sweep = load_sweep(write_sweep(tmp_path, text))
    batches = drive(sweep, lambda t: t.params["training.lr"])
    assert [len(b) for b in batches] == [6, 6, 2]  # 3, 3 and 1 points, each with both seeds
    trials = [t for b in batches for t in b]
    assert [t.spec.index for t in trials] == list(range(14))
    assert [t.seed for t in trials] == [1, 2] * 7
    for a, b in zip(trials[::2], trials[1::2]):
        assert a.params == b.params
        assert a.spec.config.seed == 1 and b.spec.config.seed == 2
    for t in trials:
        p = t.params
        assert p["model.hidden"] in ([2], [4], [2, 2])
        assert list(t.spec.config.model.hidden) == p["model.hidden"]
        assert p["model.activation"] in ("relu", "tanh") and 4 <= p["training.steps"] <= 8
        assert 0.01 <= p["training.lr"] <= 1.0 and p["training.lr"] == float(
            f"{p['training.lr']:.4g}"
        )


def test_the_plan_decides_from_what_it_is_told_and_from_nothing_else(tmp_path):
    sweep = load_sweep(write_sweep(tmp_path))

    def points(score):
        return [[t.params for t in b] for b in drive(sweep, score)]

    lr = points(lambda t: t.params["training.lr"])
    assert points(lambda t: t.params["training.lr"]) == lr  # same tells, same points
    assert points(lambda t: -t.params["training.lr"])[1:] != lr[1:]  # other tells, other points
    assert points(lambda t: -t.params["training.lr"])[0] == lr[0]  # the first batch is random


def test_failed_trials_are_told_failed_and_the_search_goes_on(tmp_path):
    sweep = load_sweep(write_sweep(tmp_path))
    batches = drive(sweep, lambda t: None if t.spec.index % 2 else 0.5)
    assert [len(b) for b in batches] == [3, 3]
    assert batches == drive(sweep, lambda t: None if t.spec.index % 2 else 0.5)


def test_a_point_is_told_the_mean_of_its_seeds_or_failed(tmp_path):
    (trial,) = load_sweep(write_sweep(tmp_path, "params: {training.lr: [0.1]}\n")).trials

    def row(status, value):
        return Row(trial, status, value, "")

    assert _told([row("FINISHED", 0.5), row("FINISHED", 1.0)]) == 0.75
    assert _told([row("FINISHED", 0.5), row("FAILED", None)]) is None
    assert _told([row("FINISHED", 0.5), row("FINISHED", math.nan)]) is None


# --- real sweeps -------------------------------------------------------------------------------


def children(uri: str, experiment: str) -> dict[str, dict]:
    """run id -> tags of the experiment's FINISHED child runs."""
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    found = client.search_runs([exp.experiment_id], "attributes.status = 'FINISHED'")
    return {r.info.run_id: r.data.tags for r in found if "mlflow.parentRunId" in r.data.tags}


def sequence(outcome, uri: str, experiment: str) -> tuple[list[tuple], int]:
    """(index, config hash, fingerprint) of every trial in order, and the best trial."""
    tags = children(uri, experiment)
    rows = [
        (r.trial.spec.index, r.trial.spec.config_hash, tags[r.run_id]["mgrun.fingerprint"])
        for r in outcome.rows
    ]
    return rows, outcome.best.trial.spec.index


def sweep(path: Path, uri: str, experiment: str, backend: str, n_jobs: int, keep_top: int = 0):
    runner = make_backend(backend, n_jobs)
    try:
        execution = Execution(backend, n_jobs, 1)
        return run_sweep(load(path), runner, execution, False, uri, experiment, False, keep_top)
    finally:
        runner.close()


@dataclass
class Serial:
    """A tpe sweep file, and what one loky worker made of it (the best trial's record full)."""

    path: Path
    uri: str
    said: str  # what the sweep wrote on stderr
    expected: tuple[list[tuple], int]


@pytest.fixture(scope="module")
def serial(tmp_path_factory, template) -> Serial:
    where = tmp_path_factory.mktemp("tpe")
    path, uri = write_sweep(where), copied_store(template, where)
    with redirect_stderr(io.StringIO()) as err:
        outcome = sweep(path, uri, "one", "loky", 1, keep_top=1)
    return Serial(path, uri, err.getvalue(), sequence(outcome, uri, "one"))


def test_tpe_records_and_ranks_like_grid_and_random(serial, tmp_path):
    assert "up to 6 trials (6 points x 1 seed(s)), asked of tpe 3 points at a time" in serial.said
    from mlflow import MlflowClient

    client = MlflowClient(serial.uri)
    exp = client.get_experiment_by_name("one")
    (parent,) = client.search_runs([exp.experiment_id], "tags.mgrun.sweep_hash != ''")
    text = client.download_artifacts(parent.info.run_id, "results.csv", str(tmp_path))
    rows = list(csv.DictReader(io.StringIO(Path(text).read_text())))
    assert [r["index"] for r in rows] == [str(i) for i in range(6)]
    best = rows[int(parent.data.tags["mgrun.best_trial"])]
    assert float(best["test_accuracy"]) == max(float(r["test_accuracy"]) for r in rows)
    assert parent.data.tags["mgrun.best_run_id"] == best["run_id"]
    assert parent.data.params["sweep.batch"] == "3" and parent.data.params["sweep.trials"] == "6"
    trials = client.download_artifacts(parent.info.run_id, "trials.yaml", str(tmp_path))
    assert Path(trials).read_text().count("config_hash:") == 6
    kids = client.search_runs([exp.experiment_id], "tags.mgrun.record = 'full'")
    assert [k.info.run_id for k in kids] == [parent.data.tags["mgrun.best_run_id"]]


@pytest.mark.timeout(120)
def test_two_workers_ask_the_same_trials_as_one(serial, tmp_path, template):
    uri = copied_store(template, tmp_path)
    assert sequence(sweep(serial.path, uri, "two", "loky", 2), uri, "two") == serial.expected


@pytest.mark.timeout(180)
def test_a_local_dask_cluster_asks_the_same_trials_as_one_core(serial, tmp_path, template):
    uri = copied_store(template, tmp_path)
    assert sequence(sweep(serial.path, uri, "dask", "dask", 2), uri, "dask") == serial.expected


def finished_children(db: Path) -> int:
    query = (
        "SELECT count(*) FROM runs JOIN tags ON runs.run_uuid = tags.run_uuid "
        "WHERE tags.key = 'mlflow.parentRunId' AND runs.status = 'FINISHED'"
    )
    try:
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)) as con:
            return con.execute(query).fetchone()[0]
    except sqlite3.OperationalError:  # not created yet, or busy
        return 0


@pytest.mark.timeout(180)
def test_an_interrupted_tpe_sweep_resumes_with_the_same_trials(serial, tmp_path, template):
    """A real SIGINT once the first batch is recorded; the rerun trains only what is missing."""
    path, uri, db = serial.path, copied_store(template, tmp_path), tmp_path / "mlflow.db"
    lock, stopped = threading.Lock(), threading.Event()

    def ctrl_c() -> None:
        wait_for(lambda: stopped.is_set() or finished_children(db) >= 3, timeout=120)
        with lock:
            if not stopped.is_set():
                os.kill(os.getpid(), signal.SIGINT)

    watcher = threading.Thread(target=ctrl_c, daemon=True)
    with interrupts.installed():
        watcher.start()
        try:
            with pytest.raises(KeyboardInterrupt):
                sweep(path, uri, "s", "sequential", 1)
        finally:
            with lock:
                stopped.set()
            watcher.join()
    first = children(uri, "s")
    assert 3 <= len(first) < 6
    outcome = sweep(path, uri, "s", "sequential", 1)
    assert sequence(outcome, uri, "s") == serial.expected
    assert sum(r.resumed for r in outcome.rows) == len(first)
    hashes = [tags["mgrun.config_hash"] for tags in children(uri, "s").values()]
    assert len(hashes) == len(set(hashes)) == 6  # nothing trained twice
