"""Issue 4: `mgrun sweep` on every core against one core, and what MLflow costs per trial.

    python -m tests.bench sweep [--quick]

16 trials of about a second each (the step count is calibrated on this machine), recorded in a
fresh sqlite store each time: once with --n-jobs 1, once on all cores. Reported: speed-up and
parallel efficiency of the whole sweep and of the fan-out alone (workers train and draw each
run's files; no MLflow), and the parent's MLflow time per trial as a share of the trial's
training time. One trial's whole logging path (drawing included) is profiled part by part.
Targets: efficiency >= 0.9 (1.8x on 2 cores); MLflow in the parent < 5% of a trial.
"""

from __future__ import annotations

import argparse
import cProfile
import logging
import math
import os
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

from tests.bench.harness import machine, publish

BASE = """\
name: bench
seed: 0
dataset: {{kind: moons, n_samples: 100, noise: 0.1, test_fraction: 0.2}}
model: {{hidden: [16, 16]}}
training: {{steps: {steps}, lr: 0.1, eval_every: 25}}
"""
ROUNDS = 2
SWEEP = "base: base.yaml\nparams: {{training.lr: [0.05, 0.1, 0.2, 0.4]}}\nseeds: {seeds}\n"
# Where a trial's MLflow time goes: (label, function name as cProfile records it).
PARTS = (
    ("files, all (in the worker)", "trial_files"),
    ("files: loss plot", "loss_curves"),
    ("files: gradient plot", "final_gradients"),
    ("files: decision boundary", "decision_boundary"),
    ("files: expression graph", "graph_files"),
    ("write the files", "log_files"),
    ("pyfunc model", "log_model"),
    ("params, metrics, tags", "_batch"),
)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def calibrate(seconds: float) -> int:
    """Steps of the bench config that train in about `seconds` here."""
    from runner.config import TrialSpec, run_config_from_dict
    from runner.training.trial import run_trial

    cfg = run_config_from_dict(yaml.safe_load(BASE.format(steps=50)))
    took = min(run_trial(TrialSpec(cfg)).seconds for _ in range(3))
    return max(10, round(50 * seconds / took))


def write_sweep(tmp: Path, steps: int, seeds: list[int]) -> Path:
    (tmp / "base.yaml").write_text(BASE.format(steps=steps))
    path = tmp / "bench.yaml"
    path.write_text(SWEEP.format(seeds=seeds))
    return path


def timed_sweep(path: Path, n_jobs: int, uri: str):
    """Wall time of the whole sweep into an existing store (creating one is a one-off cost)."""
    from runner.commands.sweep import Execution, run_sweep
    from runner.config.sweep_file import load_sweep
    from runner.execution.backends import make_backend
    from runner.tracking import Tracker

    sweep = load_sweep(path)
    Tracker(uri, sweep.name)
    backend = make_backend("loky", n_jobs)
    start = time.perf_counter()
    outcome = run_sweep(sweep, backend, Execution("loky", n_jobs, 1), True, uri, None, False)
    assert outcome.all_finished, [r.reason for r in outcome.rows if r.reason]
    return time.perf_counter() - start, outcome


def timed_fanout(path: Path, n_jobs: int) -> float:
    from runner.config.sweep_file import load_sweep
    from runner.execution.backends import make_backend
    from runner.execution.supervisor import run_trials

    specs = [t.spec for t in load_sweep(path).trials]
    start = time.perf_counter()
    assert len(list(run_trials(specs, make_backend("loky", n_jobs)))) == len(specs)
    return time.perf_counter() - start


def logging_parts(path: Path, uri: str) -> tuple[float, dict[str, float]]:
    """One trial logged under cProfile, drawing its own files as `mgrun train` does: total
    seconds and the seconds of each part."""
    from runner.config.sweep_file import load_sweep
    from runner.datasets import make_dataset
    from runner.tracking import Tracker
    from runner.training.files import make_record
    from runner.training.trial import run_trial

    spec = load_sweep(path).trials[0].spec
    result = run_trial(spec)
    data = make_dataset(spec.config.dataset, spec.config.seed, spec.config.base_dir)
    tracker = Tracker(uri, "profile")
    run_id = tracker.start_run("profile")
    profile = cProfile.Profile()
    start = time.perf_counter()
    profile.runcall(lambda: tracker.log_record(run_id, make_record(spec, result, data)))
    total = time.perf_counter() - start
    tracker.end_run(run_id, "FINISHED")
    stats = pstats.Stats(profile).stats  # {(file, line, name): (cc, nc, tt, ct, callers)}
    cumulative: dict[str, float] = {}
    for (_, _, name), (_, _, _, ct, _) in stats.items():
        cumulative[name] = max(cumulative.get(name, 0.0), ct)
    return total, {label: cumulative.get(fn, 0.0) for label, fn in PARTS}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench sweep")
    parser.add_argument("--quick", action="store_true", help="4 short trials: a smoke run")
    args = parser.parse_args(argv)
    import mlflow  # noqa: F401  before the level is set: importing mlflow resets its logger

    logging.getLogger("mlflow").setLevel(logging.ERROR)  # per-trial signature warnings
    from runner.execution.backends import make_backend

    cores = make_backend("loky", -1).parallelism
    trial_s, seeds = (0.3, [0]) if args.quick else (1.0, [0, 1, 2, 3])
    steps = calibrate(trial_s)
    log(f"sweep bench: {4 * len(seeds)} trials of {steps} steps (~{trial_s} s), 1 vs {cores} cores")
    rounds = 1 if args.quick else ROUNDS
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="mgrun-bench-") as tmp:
        path = write_sweep(Path(tmp), steps, seeds)
        runs: dict[int, tuple] = {}
        fan: dict[int, float] = {}
        for r in range(rounds):  # alternating, best of each: bursts of load hit both alike
            for n_jobs in (1, -1):
                uri = f"sqlite:///{tmp}/{r}-{'serial' if n_jobs == 1 else 'parallel'}.db"
                log(f"  round {r + 1}/{rounds}: whole sweep, --n-jobs {n_jobs} ...")
                got = timed_sweep(path, n_jobs, uri)
                runs[n_jobs] = min(runs.get(n_jobs, got), got, key=lambda x: x[0])
                log(f"  round {r + 1}/{rounds}: fan-out alone, --n-jobs {n_jobs} ...")
                fan[n_jobs] = min(fan.get(n_jobs, math.inf), timed_fanout(path, n_jobs))
        log("  one trial's logging under cProfile ...")
        profiled, parts = logging_parts(path, f"sqlite:///{tmp}/profile.db")

    rows = runs[1][1].rows
    train = statistics.median(r.seconds for r in rows)
    logged = statistics.median(r.log_seconds for r in rows)
    speedup = runs[1][0] / runs[-1][0]
    fan_speedup = fan[1] / fan[-1]
    share = logged / train
    ok_speed = speedup / cores >= 0.9 or cores == 1
    ok_log = share < 0.05

    out = [f"### Sweep speed: `make bench` (`python -m tests.bench sweep`)\n\n{machine()}\n"]
    if load > 0.5 * cores:
        out.append(f"NOTE: the machine was busy (load {load:.1f}) at the start: figures skewed\n")
    out += [
        "```",
        f"best of {rounds} alternating round(s) per setting",
        f"{len(rows)} trials, median training time {train:.2f} s each",
        f"whole sweep: 1 core {runs[1][0]:.1f} s, {cores} cores {runs[-1][0]:.1f} s",
        f"  speed-up {speedup:.2f}x, parallel efficiency {speedup / cores:.0%}",
        f"fan-out alone (no MLflow): 1 core {fan[1]:.1f} s, {cores} cores {fan[-1]:.1f} s",
        f"  speed-up {fan_speedup:.2f}x, parallel efficiency {fan_speedup / cores:.0%}",
        f"MLflow writes per trial (parent): median {logged:.3f} s = {share:.1%} of a trial",
        f"one trial's whole logging path, {profiled:.3f} s under cProfile (parts overlap):",
        *(f"    {label:<26} {seconds:.3f} s" for label, seconds in parts.items()),
        f"{'PASS' if ok_speed else 'FAIL'}: speed-up {speedup:.2f}x on {cores} cores "
        f"(>= {0.9 * cores:.1f}x)",
        f"{'PASS' if ok_log else 'FAIL'}: MLflow in the parent {share:.1%} of a trial (< 5%)",
        "```",
    ]
    text = "\n".join(out)
    print(text)
    if not args.quick:
        publish("sweep", text)
    return 0 if ok_speed and ok_log else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
