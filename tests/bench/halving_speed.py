"""Successive halving against training every configuration to the end.

    python -m tests.bench halving [--halving-only]

`experiments/spirals_halving.yaml` (81 configurations, rungs at 30/90/270/810 steps) as a
halving sweep, and the same 81 configurations (the same draws: a random sweep of the same
params, n_trials and seed) trained to 810 steps, each recorded in a fresh sqlite store on every
core. Reported: training steps, wall time and the best test accuracy of each. Targets: halving
takes at most a quarter of the steps and of the wall time, and its best is within 0.02 of the
full run's. `--halving-only` skips the long full run and estimates its wall time from the steps.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

from tests.bench.harness import ROOT, machine, publish

HALVING = ROOT / "experiments" / "spirals_halving.yaml"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def full_sweep(tmp: Path) -> Path:
    """The halving file's 81 configurations as a random sweep: every one trained to the end."""
    lines = HALVING.read_text().splitlines()
    base = HALVING.parent / lines[[ln.startswith("base:") for ln in lines].index(True)][5:].strip()
    kept = [ln for ln in lines if not ln.startswith(("base:", "method:", "halving:", "#"))]
    path = tmp / "spirals_full.yaml"
    path.write_text("\n".join([f"base: {base.resolve()}", "method: random", *kept]) + "\n")
    return path


def timed(path: Path, uri: str):
    """Wall time of the whole sweep on every core into a store created beforehand."""
    from runner.commands.sweep import Execution, load, run_sweep
    from runner.execution.backends import make_backend
    from runner.tracking import Tracker

    sweep = load(path)
    Tracker(uri, sweep.name)
    backend = make_backend("loky", -1)
    start = time.perf_counter()
    try:
        outcome = run_sweep(sweep, backend, Execution("loky", -1, 1), True, uri, None, False)
    finally:
        backend.close()
    assert outcome.all_finished, [r.reason for r in outcome.rows if r.reason]
    return time.perf_counter() - start, outcome, sweep


def steps_trained(outcome, steps: int) -> int:
    """Every configuration's steps: a stopped one trained to its stop, continuing across rungs."""
    return sum(steps if r.stopped_at is None else r.stopped_at for r in outcome.rows)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench halving")
    parser.add_argument("--halving-only", action="store_true", help="estimate the full run")
    args = parser.parse_args(argv)
    import mlflow  # noqa: F401  before the level is set: importing mlflow resets its logger

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="mgrun-bench-") as tmp:
        log("halving bench: experiments/spirals_halving.yaml ...")
        h_wall, h_out, sweep = timed(HALVING, f"sqlite:///{tmp}/halving.db")
        steps = sweep.base.training.steps
        h_steps, n = steps_trained(h_out, steps), len(sweep.trials)
        log(f"  {h_wall:.1f} s, {h_steps} steps; best {h_out.best.value:.4f}")
        full = None
        if not args.halving_only:
            log(f"  the same {n} configurations trained to {steps} steps ...")
            full = timed(full_sweep(Path(tmp)), f"sqlite:///{tmp}/full.db")[:2]
            log(f"  {full[0]:.1f} s; best {full[1].best.value:.4f}")
    f_steps = n * steps
    f_wall = full[0] if full else h_wall * f_steps / h_steps
    out = [f"### Successive halving: `python -m tests.bench halving`\n\n{machine()}\n"]
    if load > 0.5 * (os.cpu_count() or 1):
        out.append(f"NOTE: the machine was busy (load {load:.1f}) at the start: figures skewed\n")
    h_best = h_out.best
    out += [
        "```",
        f"{n} configurations of experiments/spirals_halving.yaml, rungs at "
        f"{'/'.join(str(s) for s in sorted({r.trial.spec.stop for r in h_out.rows} | {steps}))}",
        f"training steps: halving {h_steps:,}, every configuration to {steps}: {f_steps:,}"
        f" ({h_steps / f_steps:.1%})",
        f"wall time: halving {h_wall:.1f} s, full {f_wall:.1f} s"
        f"{' (estimated from the steps)' if full is None else ''} ({h_wall / f_wall:.1%})",
        f"best test_accuracy: halving {h_best.value:.4f} (trial {h_best.trial.spec.index})",
    ]
    ok = h_steps <= f_steps / 4 and h_wall <= f_wall / 4
    if full is not None:
        f_best = full[1].best
        out.append(f"best test_accuracy: full {f_best.value:.4f} (trial {f_best.trial.spec.index})")
        ok = ok and f_best.value - h_best.value <= 0.02
    out += [
        f"{'PASS' if ok else 'FAIL'}: at most 1/4 of the steps and of the wall time"
        + (", best within 0.02 of the full run's" if full is not None else ""),
        "```",
    ]
    text = "\n".join(out)
    print(text)
    if full is not None:
        publish("halving", text)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
