"""Throughput: trials per second through a sweep and through the parent's MLflow writes, what
`mgrun train` costs beyond importing mlflow and training, and the digits config's step time.

    python -m tests.bench throughput [--quick]

1. A random sweep, 200 moons trials of 10 steps, 2 loky workers, a fresh sqlite store: >= 20
   trials/s; every trial a FINISHED child run; full records (tag, model) on exactly the top 3.
2. Lean records of 100-step trials fed to `Tracker.record_run` as fast as it takes them: >= 30
   trials/s, and <= 1.3x the time of MLflow's floor, a plain MlflowClient writing the same tags,
   params and metrics (create_run, one log_batch, set_terminated). Alternating rounds, best of
   each. The same pair on a local `mlflow server` is reported, not judged.
3. `mgrun train configs/moons.yaml` on a warm store: <= 1.6x `import mlflow` plus the training
   time it prints. One in-process train is profiled.
4. configs/digits.yaml in this process: ms per step; test accuracy >= 0.95, training < 60 s.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import logging
import operator
import os
import pstats
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from tests.bench.harness import ROOT, machine, publish

BASE = """\
name: bench
seed: 0
dataset: {{kind: moons, n_samples: 100, noise: 0.1, test_fraction: 0.2}}
model: {{hidden: [16, 16]}}
training: {{steps: {steps}, lr: 0.1, eval_every: 10}}
"""
SWEEP = """\
base: base-{steps}.yaml
method: random
n_trials: {n}
seed: 0
params:
  training.lr: {{loguniform: [0.01, 1]}}
  model.hidden: [[8], [16, 16], [32]]
"""
TOP = 3  # the sweep's best trials, which get full records
by_index = operator.attrgetter("index")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def verdict(ok: bool, text: str) -> str:
    return f"{'PASS' if ok else 'FAIL'}: {text}"


def bench_sweep(tmp: Path, steps: int, n: int):
    from runner.config.sweep_file import load_sweep

    (tmp / f"base-{steps}.yaml").write_text(BASE.format(steps=steps))
    path = tmp / f"sweep-{steps}.yaml"
    path.write_text(SWEEP.format(steps=steps, n=n))
    return load_sweep(path)


def end_to_end(tmp: Path, n: int) -> list[str]:
    """Part 1: the whole sweep, timed from run_sweep's start to its return, then checked."""
    from mlflow import MlflowClient

    from runner.commands.report import ranked
    from runner.commands.sweep import Execution, run_sweep
    from runner.execution.backends import make_backend
    from runner.tracking import Tracker

    sweep, uri = bench_sweep(tmp, 10, n), f"sqlite:///{tmp}/sweep.db"
    exp_id = Tracker(uri, sweep.name).experiment_id
    backend = make_backend("loky", 2)
    try:
        start = time.perf_counter()
        outcome = run_sweep(sweep, backend, Execution("loky", 2, 1), True, uri, None, False, TOP)
        wall = time.perf_counter() - start
    finally:
        backend.close()
    client, rows = MlflowClient(uri), outcome.rows
    runs = client.search_runs([exp_id], f"tags.`mlflow.parentRunId` = '{outcome.parent_run_id}'")
    finished = sum(r.info.status == "FINISHED" for r in runs)
    full = {r.info.run_id for r in runs if r.data.tags.get("mgrun.record") == "full"}
    models = {r.info.run_id for r in runs if _has_model(client, r.info.run_id)}
    top = {r.run_id for r in ranked(rows, sweep.config.maximize)[:TOP]}
    rate, runs_ok = len(rows) / wall, outcome.all_finished and finished == len(runs) == n
    return [
        f"sweep: {len(rows)} trials of 10 steps on 2 loky workers in {wall:.1f} s; per trial, "
        f"median: training {statistics.median(r.seconds for r in rows):.3f} s, "
        f"parent's MLflow {statistics.median(r.log_seconds for r in rows):.3f} s",
        verdict(rate >= 20, f"{rate:.1f} trials/s end to end (>= 20)"),
        verdict(runs_ok, f"{finished} FINISHED child runs of {n} trials"),
        verdict(
            full == models == top,
            f"full records on exactly the top {TOP}: {len(full)} tagged full, {len(models)} "
            f"with a model, {len(full & models & top)} of them the top {TOP}",
        ),
    ]


def _has_model(client, run_id: str) -> bool:
    outputs = client.get_run(run_id).outputs
    return bool(outputs and outputs.model_outputs)


def lean_records(tmp: Path, n: int) -> list[tuple]:
    """(run name, lean record) of `n` trials of 100 steps, in trial order."""
    from runner.commands.keep_top import run_name
    from runner.execution.backends import make_backend
    from runner.execution.supervisor import run_trials

    sweep = bench_sweep(tmp, 100, n)
    records = run_trials([t.spec for t in sweep.trials], make_backend("sequential"))
    keys = list(sweep.config.params or {})
    return [(run_name(sweep.trials[r.index], keys), r) for r in sorted(records, key=by_index)]


def ours(uri: str, experiment: str, records: list) -> float:
    """Trials/s of the parent's writes: `record_run` per trial, as the sweep loop calls it."""
    from runner.tracking import Tracker

    tracker = Tracker(uri, experiment)
    parent = tracker.start_run("parent")
    start = time.perf_counter()
    for i, (name, record) in enumerate(records):
        _, problem = tracker.record_run(name, record, parent, {"mgrun.sweep_index": str(i)})
        assert problem is None, problem
    took = time.perf_counter() - start
    tracker.end_run(parent, "FINISHED")
    return len(records) / took


def floor(uri: str, experiment: str, records: list) -> float:
    """Trials/s of a plain MlflowClient writing the same tags, params and metric points."""
    from mlflow import MlflowClient

    from runner.tracking import entities as ent

    client = MlflowClient(uri)
    exp_id = client.create_experiment(experiment)  # no files are written: any location will do
    parent = client.create_run(exp_id, run_name="parent").info.run_id
    start = time.perf_counter()
    for i, (name, record) in enumerate(records):
        tags = ent.owner(parent) | ent.record_tags(record) | {"mgrun.sweep_index": str(i)}
        run_id = client.create_run(exp_id, tags=tags, run_name=name).info.run_id
        metrics, params = ent.metrics(ent.points(record, True)), ent.params(record.params)
        client.log_batch(run_id, metrics=metrics, params=params)
        client.set_terminated(run_id)
    took = time.perf_counter() - start
    client.set_terminated(parent)
    return len(records) / took


def pair(uri: Callable[[int, str], str], records: list, rounds: int) -> tuple[float, float]:
    """(ours, floor) trials/s, best of `rounds` alternating rounds: bursts of load hit both."""
    best = {ours: 0.0, floor: 0.0}
    for r in range(rounds):
        for measure in (ours, floor) if r % 2 == 0 else (floor, ours):
            name = measure.__name__
            best[measure] = max(best[measure], measure(uri(r, name), f"{name}-{r}", records))
    return best[ours], best[floor]


def parent_logging(tmp: Path, n: int, rounds: int) -> list[str]:
    """Part 2: the parent's writes against MLflow's floor, on sqlite, then on a server."""
    from runner.tracking import Tracker

    log(f"  training {n} trials of 100 steps (not timed) ...")
    records = lean_records(tmp, n)
    rate, base = pair(lambda r, who: f"sqlite:///{tmp}/{who}-{r}.db", records, rounds)
    Tracker(f"sqlite:///{tmp}/profiled.db", "profiled")  # the store's schema: not profiled
    profile = cProfile.Profile()
    profile.runcall(ours, f"sqlite:///{tmp}/profiled.db", "profiled", records)
    record = records[0][1]
    lines = [
        f"parent: {n} lean records of 100-step trials ({len(record.points)} metric points, "
        f"{len(record.params)} params, {len(record.files)} files each), best of {rounds} "
        f"alternating round(s), fresh sqlite stores: ours (Tracker.record_run) {rate:.1f} "
        f"trials/s = {1e3 / rate:.1f} ms/trial, MLflow's floor {base:.1f} trials/s",
        verdict(rate >= 30, f"the parent logs {rate:.1f} trials/s (>= 30)"),
        verdict(base / rate <= 1.3, f"ours takes {base / rate:.2f}x the floor's time (<= 1.3x)"),
        "  one more pass of ours under cProfile: cumulative ms per trial (calls per trial)",
        *top_entries(profile, 12, per=n),
    ]
    log("  the same pair on a local mlflow server ...")
    try:  # a client of a server prints each run's URL when it ends: not for this report
        with mlflow_server(tmp) as url, contextlib.redirect_stdout(io.StringIO()):
            rate, base = pair(lambda r, who: url, records, rounds)
        lines.append(
            f"on a local mlflow server (report only): ours {rate:.1f} trials/s, floor "
            f"{base:.1f} trials/s: ours takes {base / rate:.2f}x the floor's time"
        )
    except RuntimeError as exc:
        lines.append(f"on a local mlflow server: not measured: {exc}")
    return lines


@contextlib.contextmanager
def mlflow_server(tmp: Path, wait: float = 120.0) -> Iterator[str]:
    """A local `mlflow server` on a free port, once it answers; its process group is ended."""
    from runner.errors import BackendError
    from runner.tracking.store import check_server, server_command

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    argv = server_command(f"sqlite:///{tmp}/server.db", f"{tmp}/server-artifacts", port=port)
    url = f"http://127.0.0.1:{port}"
    with open(tmp / "server.log", "wb") as out:
        proc = subprocess.Popen(argv, cwd=tmp, stdout=out, stderr=out, start_new_session=True)
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                check_server(url, timeout=2)
                break
            except BackendError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    tail = (tmp / "server.log").read_text(errors="replace")[-300:]
                    raise RuntimeError(f"no answer from {url} ({proc.poll()=}): {tail}") from None
                time.sleep(0.5)
        yield url
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):  # SIGKILL: whatever outlived the leader
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=30)


def top_entries(profile: cProfile.Profile, k: int, per: int = 1) -> list[str]:
    """The `k` largest cumulative times under runner/ and mlflow/, in ms, divided by `per`."""
    found = []  # pstats: {(file, line, name): (primitive calls, calls, tottime, cumtime, callers)}
    for (file, line, name), (_, calls, _, ct, _) in pstats.Stats(profile).stats.items():
        if where := re.search(r"/((?:runner|mlflow)/.*)", file):
            found.append((ct, calls, f"{where.group(1)}:{line} {name}"))
    found.sort(reverse=True)
    return [f"    {ct * 1e3 / per:8.1f} ms ({calls / per:.3g}) {at}" for ct, calls, at in found[:k]]


def timed(argv: list[str]) -> tuple[float, str]:
    """Wall seconds and stdout of a command run in the repository."""
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
    took = time.perf_counter() - start
    if done.returncode:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr[-1000:]}")
    return took, done.stdout


def one_run(tmp: Path, runs: int) -> list[str]:
    """Part 3: `mgrun train` on a warm store against importing mlflow plus training."""
    from runner.commands.train import train_command

    uri = f"sqlite:///{tmp}/warm.db"
    train = [sys.executable, "-m", "runner", "train", "configs/moons.yaml", "--no-progress"]
    train += ["--tracking-uri", uri]
    timed(train)  # creates the store: a one-off cost
    walls, imports = [], []
    for _ in range(runs):  # alternating, best of each
        walls.append(timed(train))
        imports.append(timed([sys.executable, "-c", "import mlflow"])[0])
    wall, out = min(walls)
    found = re.search(r"finished in ([0-9.]+) s", out)
    assert found, f"no training time in the output of mgrun train: {out!r}"
    training, imported = float(found.group(1)), min(imports)
    ratio = wall / (imported + training)
    profile = cProfile.Profile()
    with contextlib.redirect_stdout(io.StringIO()):
        start = time.perf_counter()
        code = profile.runcall(train_command, ROOT / "configs/moons.yaml", [], uri, None, False)
        took = time.perf_counter() - start
    assert code == 0, f"train_command exited {code}"
    return [
        f"train: `mgrun train configs/moons.yaml` on a warm store, best of {runs}: {wall:.2f} s; "
        f"`import mlflow` {imported:.2f} s + training {training:.2f} s (as printed)",
        verdict(ratio <= 1.6, f"train takes {ratio:.2f}x import mlflow + training (<= 1.6x)"),
        f"  one in-process train (modules imported) under cProfile, {took:.2f} s: cumulative ms",
        *top_entries(profile, 12),
    ]


def digits(quick: bool) -> list[str]:
    """Part 4: configs/digits.yaml trained in this process."""
    from runner.config import TrialSpec, load_run_config
    from runner.training.trial import run_trial

    path = ROOT / "configs" / "digits.yaml"
    if not path.is_file():
        return [f"SKIP: digits: {path.relative_to(ROOT)} is not in this tree"]
    cfg = load_run_config(path, ["training.steps=20"] if quick else [])
    result = run_trial(TrialSpec(cfg))
    if result.status != "FINISHED":
        return [verdict(False, f"digits: {result.reason}")]
    steps, acc, took = cfg.training.steps, result.final_metrics["test_accuracy"], result.seconds
    line = f"digits: {steps} steps in {took:.1f} s = {took / steps * 1e3:.1f} ms/step"
    if quick:
        return [f"{line}, test accuracy {acc:.3f} (a quick run: targets not judged)"]
    return [
        line,
        verdict(acc >= 0.95, f"digits test accuracy {acc:.3f} (>= 0.95)"),
        verdict(took < 60, f"digits trains in {took:.1f} s (< 60 s)"),
    ]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench throughput")
    parser.add_argument("--quick", action="store_true", help="fewer, shorter runs: a smoke run")
    args = parser.parse_args(argv)
    import mlflow  # noqa: F401  (it sets its loggers' levels on import: quiet them after)

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    n_sweep, n_parent, rounds = (20, 8, 1) if args.quick else (200, 60, 3)
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="mgrun-bench-") as name:
        tmp = Path(name)
        log(f"throughput bench: 1/4 a sweep of {n_sweep} trials ...")
        lines = end_to_end(tmp, n_sweep)
        log("throughput bench: 2/4 the parent's MLflow writes ...")
        lines += parent_logging(tmp, n_parent, rounds)
        log("throughput bench: 3/4 mgrun train ...")
        lines += one_run(tmp, rounds)
        log("throughput bench: 4/4 digits ...")
        lines += digits(args.quick)

    out = [f"### Throughput: `python -m tests.bench throughput`\n\n{machine()}\n"]
    if load > 0.5 * (os.cpu_count() or 1):
        out.append(f"NOTE: the machine was busy (load {load:.1f}) at the start: figures skewed\n")
    text = "\n".join([*out, "```", *lines, "```"])
    print(text)
    if not args.quick:
        publish("throughput", text)
    return 1 if any(line.startswith("FAIL") for line in lines) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
