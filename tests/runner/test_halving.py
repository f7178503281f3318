"""method: halving: its sweep-file checks, its rungs and brackets, its decisions from rows, and
whole sweeps in a real sqlite store with real workers: the same decisions, trials and bits with
one worker, two, a Dask cluster, and after a real Ctrl-C and a resume."""

from __future__ import annotations

import csv
import io
import json
import signal
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest
from mlflow import MlflowClient

from runner.commands.report import Row
from runner.commands.search.halving import brackets, halving, rung_trials
from runner.commands.sweep import Execution, load, run_sweep
from runner.config.halving import HalvingConfig, bracket_sizes, rungs
from runner.execution.backends import Backend, LokyBackend
from tests import support
from tests.support import config_error, copied_store

BASE = """\
name: tiny
seed: 3
dataset: {kind: moons, n_samples: 40, noise: 0.2, test_fraction: 0.25}
model: {hidden: [4]}
training: {steps: 54, eval_every: 5, optimizer: adam, batch_size: 8, schedule: cosine}
"""
SWEEP = """\
method: halving
n_trials: 6
params: {training.lr: {loguniform: [0.003, 0.3]}}
halving: {min_steps: 2, eta: 3}
metric: test_accuracy
keep_top: 0
"""
NINE = SWEEP.replace("n_trials: 6", "n_trials: 9")


def write(tmp_path: Path, text: str = SWEEP, base: str = BASE) -> Path:
    return support.write_sweep(tmp_path, text, base)


# --- the sweep file ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (SWEEP.replace("halving: {min_steps: 2, eta: 3}\n", ""), "halving.min_steps: required by"),
        (SWEEP.replace("min_steps: 2", "min_steps: 60"), "halving.min_steps: must be <= training"),
        (SWEEP.replace("min_steps: 2", "min_steps: 0"), "halving.min_steps: must be > 0"),
        (SWEEP.replace("eta: 3", "eta: 1"), "halving.eta: must be >= 2"),
        (SWEEP.replace("eta: 3}", "eta: 3, brackets: 5}"), "halving.brackets: must be <= the"),
        (SWEEP.replace("eta: 3}", "eta: 3, bracket: 2}"), "halving.bracket: unknown key"),
        (SWEEP.replace("method: halving", "method: random"), "halving: only used by method: h"),
        (SWEEP.replace("{training.lr:", "{training.steps: [9, 18], training.lr:"), "params.trai"),
        (SWEEP.replace("n_trials: 6\n", ""), "halving needs a non-empty list of values"),
        (
            SWEEP.replace("n_trials: 6\n", "")
            .replace("{loguniform: [0.003, 0.3]}", "[0.1]")
            .replace("eta: 3}", "eta: 3, brackets: 2}"),
            "halving.brackets: brackets draw configurations: set n_trials",
        ),
    ],
)
def test_invalid_halving_sweeps_name_the_file_the_field_and_the_fix(tmp_path, text, expected):
    msg = config_error(load, write(tmp_path, text))
    assert expected in msg, msg


def test_a_halving_grid_and_hyperband_brackets_load(tmp_path):
    grid = SWEEP.replace("n_trials: 6\n", "").replace("{loguniform: [0.003, 0.3]}", "[0.1, 0.2]")
    assert len(load(write(tmp_path, grid)).trials) == 2
    sweep = load(write(tmp_path, NINE.replace("eta: 3}", "eta: 3, brackets: 3}")))
    found = brackets(sweep)
    assert [(stops, len(trials)) for stops, trials in found] == [
        ([2, 6, 18, 54], 9),
        ([6, 18, 54], 4),
        ([18, 54], 2),
    ]
    assert [t.spec.index for _, trials in found for t in trials] == list(range(15))
    assert rung_trials(sweep) == (9 + 3 + 1 + 1) + (4 + 2 + 1) + (2 + 1)


def test_the_shipped_halving_sweep_cuts_81_configurations_at_30_90_270_810():
    sweep = load(support.ROOT / "experiments" / "spirals_halving.yaml")
    assert [(stops, len(trials)) for stops, trials in brackets(sweep)] == [([30, 90, 270, 810], 81)]
    assert rung_trials(sweep) == 81 + 27 + 9 + 3


def test_rungs_and_bracket_sizes():
    assert rungs(30, 3, 810) == [30, 90, 270, 810]
    assert rungs(30, 3, 1000) == [30, 90, 270, 810, 1000]
    assert rungs(30, 2, 30) == [30]
    # the brackets of Hyperband's paper for R = 81, eta = 3 (Li et al. 2018, table 1)
    h = HalvingConfig(min_steps=1, eta=3, brackets=5)
    assert bracket_sizes(81, h, 81) == [81, 34, 15, 8, 5]


# --- the decisions, from rows ------------------------------------------------------------------


def rows(batch, values: dict[int, tuple[str, float | None, float]]) -> list[Row]:
    """The rows of a batch: (status, metric, final training loss) by trial index."""
    found = []
    for t in batch:
        status, value, loss = values[t.spec.index]
        found.append(Row(t, status, value, f"run{t.spec.index}", final_loss=loss))
    return found


def test_the_best_third_goes_on_ties_by_final_loss_then_index_failures_never(tmp_path):
    sweep = load(write(tmp_path, NINE))
    plan = halving(sweep)
    first = next(plan)
    assert [(t.spec.index, t.spec.stop) for t in first] == [(i, 2) for i in range(9)]
    values = {i: ("FINISHED", 0.5, 1.0) for i in range(9)}
    values |= {0: ("FAILED", 0.9, 0.1), 3: ("FINISHED", 0.7, 0.4), 5: ("FINISHED", 0.7, 0.3)}
    values |= {7: ("FINISHED", 0.6, 2.0), 8: ("FINISHED", 0.6, 2.0)}
    second = plan.send(rows(first, values))
    assert [(t.spec.index, t.spec.stop) for t in second] == [(3, 6), (5, 6), (7, 6)]
    third = plan.send(rows(second, {3: ("FINISHED", 0.8, 1), 5: ("FAILED", None, 1), 7: values[7]}))
    assert [(t.spec.index, t.spec.stop) for t in third] == [(3, 18)]
    last = plan.send(rows(third, {3: ("FINISHED", 0.9, 1.0)}))
    assert [(t.spec.index, t.spec.stop) for t in last] == [(3, 54)]
    with pytest.raises(StopIteration):
        plan.send(rows(last, {3: ("FINISHED", 0.9, 1.0)}))


def test_hyperband_brackets_move_in_lockstep_each_cut_on_its_own(tmp_path):
    plan = halving(load(write(tmp_path, NINE.replace("eta: 3}", "eta: 3, brackets: 2}"))))
    first = next(plan)  # bracket 0: trials 0-8 from step 2; bracket 1: trials 9-12 from step 6
    assert [(t.spec.index, t.spec.stop) for t in first] == [
        *((i, 2) for i in range(9)),
        *((i, 6) for i in range(9, 13)),
    ]
    good = {0, 4, 8, 10, 12}  # bracket 1 keeps ceil(4 / 3) = 2 of its 4
    values = {i: ("FINISHED", 0.9 if i in good else 0.5, 1.0) for i in range(13)}
    second = plan.send(rows(first, values))
    assert [(t.spec.index, t.spec.stop) for t in second] == [
        (0, 6),
        (4, 6),
        (8, 6),
        (10, 18),
        (12, 18),
    ]


# --- whole sweeps ------------------------------------------------------------------------------


def sweep(path: Path, uri: str, backend: Backend, keep_top: int = 0) -> dict:
    """Run the sweep here; what must not depend on how it ran: the rungs (trial, rung, step,
    metric, promoted), each configuration's stop and weights, the best trial."""
    execution = Execution(backend.name, backend.n_jobs, 1)
    try:
        outcome = run_sweep(
            load(path), backend, execution, tracking_uri=uri, show_progress=False, keep_top=keep_top
        )
    finally:
        backend.close()
    assert outcome.all_finished
    return {"best": outcome.best.trial.spec.index, "uri": uri, **recorded(uri)}


def recorded(uri: str) -> dict:
    client = MlflowClient(uri)
    (exp,) = [e for e in client.search_experiments() if e.name == "s"]
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    assert "RUNNING" not in {r.info.status for r in runs}
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    last = max(parents, key=lambda r: r.info.start_time)
    text = Path(client.download_artifacts(last.info.run_id, "rungs.csv")).read_text()
    table = list(csv.DictReader(io.StringIO(text)))
    weights = {
        int(r.data.tags["mgrun.sweep_index"]): (
            r.info.status,
            r.data.tags["mgrun.stopped_at_step"],
            r.data.tags["mgrun.fingerprint"],
        )
        for r in children
    }
    assert len(weights) == len(children), "one child run per configuration"
    return {
        "rungs": [{k: v for k, v in row.items() if k != "resumed"} for row in table],
        "resumed": [row["resumed"] == "True" for row in table],
        "weights": weights,
        "children": children,
    }


@pytest.fixture(scope="module")
def serial(tmp_path_factory, template) -> dict:
    """The sweep with one worker: what every other way of running it must match."""
    tmp = tmp_path_factory.mktemp("serial")
    return sweep(write(tmp), copied_store(template, tmp), Backend(1), keep_top=1)


def same(found: dict, expected: dict) -> None:
    for key in ("best", "rungs", "weights"):
        assert found[key] == expected[key], key


@pytest.mark.timeout(120)
def test_one_worker_records_every_rung_on_one_run_per_configuration(serial):
    table = serial["rungs"]
    assert [(r["step"], r["promoted"]) for r in table].count(("2", "True")) == 2
    assert [r["step"] for r in table] == ["2"] * 6 + ["6"] * 2 + ["18", "54"]
    assert not any(serial["resumed"])
    stops = sorted(int(stop) for _, stop, _ in serial["weights"].values())
    assert stops == [2] * 4 + [6] + [54]
    client = MlflowClient(serial["uri"])
    for run in serial["children"]:
        tags, stop = run.data.tags, int(run.data.tags["mgrun.stopped_at_step"])
        history = client.get_metric_history(run.info.run_id, "train_loss")
        assert sorted(m.step for m in history) == list(range(stop)), "each step logged once"
        assert f"mgrun.at_step.{stop}" in tags and tags["mgrun.config_hash"]
        assert ("stopped by successive halving" in tags["mlflow.note.content"]) == (stop < 54)
        assert run.data.params["training.steps"] == "54"
        full = tags["mgrun.record"] == "full"
        assert full == (int(tags["mgrun.sweep_index"]) == serial["best"]) == (stop == 54)
    (best,) = [r for r in serial["children"] if r.data.tags["mgrun.record"] == "full"]
    model = json.loads(Path(client.download_artifacts(best.info.run_id, "model.json")).read_text())
    assert model["fingerprint"] == best.data.tags["mgrun.fingerprint"]  # the last rung's weights


@pytest.mark.timeout(120)
def test_two_workers_decide_and_train_the_same(serial, tmp_path, template):
    same(sweep(write(tmp_path), copied_store(template, tmp_path), LokyBackend(2)), serial)


@pytest.mark.timeout(180)
def test_a_local_dask_cluster_decides_and_trains_the_same(serial, tmp_path, template):
    from runner.execution.dask_backend import DaskBackend

    same(sweep(write(tmp_path), copied_store(template, tmp_path), DaskBackend(2)), serial)


@pytest.mark.timeout(180)
def test_a_sweep_interrupted_by_ctrl_c_resumes_without_redoing_a_finished_rung(
    serial, tmp_path, template
):
    path, uri = write(tmp_path), copied_store(template, tmp_path)
    argv = [sys.executable, "-m", "runner", "sweep", str(path), "--no-progress"]
    argv += ["--tracking-uri", uri, "--n-jobs", "1"]
    proc = subprocess.Popen(argv, cwd=support.ROOT, stderr=subprocess.PIPE, text=True)
    try:
        support.wait_for(lambda: rung_results(tmp_path / "mlflow.db", "6") or proc.poll(), 120)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    client = MlflowClient(uri)
    assert "RUNNING" not in {r.info.status for r in client.search_runs(["1"])}
    before = stored_rungs(client)
    assert {step for _, step in before} >= {"2", "6"}

    again = sweep(path, uri, LokyBackend(2))
    same(again, serial)
    done = [(r["trial"], r["step"]) for r in again["rungs"]]
    assert [key in before for key in done] == again["resumed"]  # nothing stored is run again
    assert not all(again["resumed"])  # the signal landed mid-sweep
    interrupted = min(int(step) for (_, step), r in zip(done, again["resumed"]) if not r)
    assert all(r for (_, step), r in zip(done, again["resumed"]) if int(step) < interrupted)


def rung_results(db: Path, step: str) -> int:
    """How many runs have a result at `step`, read while mgrun writes (0 while it is busy)."""
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)) as con:
        try:
            query = "SELECT count(*) FROM tags WHERE key = ?"
            return con.execute(query, (f"mgrun.at_step.{step}",)).fetchone()[0]
        except sqlite3.OperationalError:
            return 0


def stored_rungs(client: MlflowClient) -> set[tuple[str, str]]:
    """(trial, step) of every rung result in the store's finished child runs."""
    found = set()
    for run in client.search_runs(["1"], "attributes.status = 'FINISHED'"):
        tags = run.data.tags
        for key in tags:
            if key.startswith("mgrun.at_step."):
                found.add((tags["mgrun.sweep_index"], key.removeprefix("mgrun.at_step.")))
    return found
