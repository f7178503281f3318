"""TPE against random search: the same space, the same number of trials, over 5 sweep seeds.

    python -m tests.bench tpe [--quick]

The space and budget are experiments/spirals_tpe.yaml's; random search gets the same file with
`method: random`. Both rank by `--metric`, test_loss unless told: the file's test accuracy on
60 test points tops out at 59/60 for both searches (measured: every sweep but one, both
medians 0.9833), which tells them apart by nothing. Each search is driven as `mgrun sweep`
drives it (its plan, batch by batch, the trials on every core through the supervisor) but
records nothing in MLflow: only the searches' choices are compared. Reported: each sweep's best
metric, and the medians. Target: the median best of TPE at least as good as random's.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

from tests.bench.harness import ROOT, machine, publish

EXPERIMENT = ROOT / "experiments" / "spirals_tpe.yaml"
SEEDS = (0, 1, 2, 3, 4)
METRIC = "test_loss"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def sweep_file(tmp: Path, method: str, seed: int, n_trials: int | None, metric: str) -> Path:
    """The experiment with this method, sweep seed and metric, its base an absolute path."""
    data = yaml.safe_load(EXPERIMENT.read_text())
    data |= {"method": method, "seed": seed, "base": str(EXPERIMENT.parent / data["base"])}
    data |= {"metric": metric, "mode": "max" if "accuracy" in metric else "min"}
    if n_trials:
        data |= {"n_trials": n_trials, "batch": min(n_trials // 2, data.get("batch", 8))}
    if method != "tpe":
        data.pop("batch", None)
    path = tmp / f"{method}-{seed}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def values_of(path: Path, backend) -> list[float]:
    """The metric of each finished trial of the sweep at `path`, in trial order."""
    from runner.commands.report import Row
    from runner.commands.search import SEARCHES
    from runner.commands.sweep import load
    from runner.execution.supervisor import run_trials

    sweep = load(path)
    metric, plan = sweep.config.metric, SEARCHES[sweep.config.method](sweep)
    values: list[float] = []
    batch = next(plan, None)
    while batch is not None:
        by_index = {t.spec.index: t for t in batch}
        records = {r.index: r for r in run_trials([t.spec for t in batch], backend)}
        rows = []
        for i, t in by_index.items():
            result = records[i].result
            value = result.final_metrics.get(metric)
            rows.append(Row(t, result.status, value, ""))
            if result.status == "FINISHED" and value is not None:
                values.append(value)
        try:
            batch = plan.send(rows)
        except StopIteration:
            batch = None
    return values


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench tpe")
    parser.add_argument("--quick", action="store_true", help="2 seeds of 8 trials: a smoke run")
    parser.add_argument("--metric", default=METRIC, help=f"what ranks the trials ({METRIC})")
    args = parser.parse_args(argv)
    from runner.execution.backends import make_backend

    seeds, n_trials = (SEEDS[:2], 8) if args.quick else (SEEDS, None)
    backend = make_backend("loky", -1)
    best: dict[str, list[float]] = {"random": [], "tpe": []}
    late: dict[str, list[float]] = {"random": [], "tpe": []}  # median of the last batch's trials
    pick = max if "accuracy" in args.metric else min
    start = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="mgrun-bench-") as tmp:
            spec = yaml.safe_load(
                sweep_file(Path(tmp), "tpe", 0, n_trials, args.metric).read_text()
            )
            for seed in seeds:
                for method in best:
                    t0 = time.perf_counter()
                    path = sweep_file(Path(tmp), method, seed, n_trials, args.metric)
                    values = values_of(path, backend)
                    best[method].append(pick(values))
                    late[method].append(statistics.median(values[-spec["batch"] :]))
                    took = time.perf_counter() - t0
                    log(
                        f"  seed {seed} {method}: best {pick(values):.4f} of {len(values)} "
                        f"trials, last batch's median {late[method][-1]:.4f}, {took:.0f} s"
                    )
    finally:
        backend.close()
    elapsed = time.perf_counter() - start

    trials, batch = spec["n_trials"], spec["batch"]
    medians = {m: statistics.median(v) for m, v in best.items()}
    maximize = "accuracy" in args.metric
    ok = medians["tpe"] >= medians["random"] if maximize else medians["tpe"] <= medians["random"]
    out = ["### TPE against random search: `make bench` (`python -m tests.bench tpe`)\n"]
    out += [f"{machine()}\n", "```"]
    out.append(
        f"experiments/spirals_tpe.yaml's space, {trials} trials per sweep "
        f"(tpe: batches of {batch}), sweep seeds {list(seeds)}; "
        f"{spec['metric']}: the best trial's, and the median of the last batch's trials (TPE's "
        "latest picks; random's are draws like any other)"
    )
    out.append(f"{'':>6} {'best trial':>17}   {'last batch, median':>18}")
    out.append(f"{'seed':>6} {'random':>8} {'tpe':>8}   {'random':>8} {'tpe':>9}")
    for i, seed in enumerate(seeds):
        out.append(
            f"{seed:>6} {best['random'][i]:>8.4f} {best['tpe'][i]:>8.4f}   "
            f"{late['random'][i]:>8.4f} {late['tpe'][i]:>9.4f}"
        )
    lates = {m: statistics.median(v) for m, v in late.items()}
    out.append(
        f"{'median':>6} {medians['random']:>8.4f} {medians['tpe']:>8.4f}   "
        f"{lates['random']:>8.4f} {lates['tpe']:>9.4f}"
    )
    out.append(f"{2 * len(seeds)} sweeps in {elapsed / 60:.1f} min on {backend.parallelism} cores")
    out.append(
        f"{'PASS' if ok else 'FAIL'}: median best of tpe {medians['tpe']:.4f} "
        f"{'>=' if maximize else '<='} random's {medians['random']:.4f}"
    )
    out.append("```")
    text = "\n".join(out)
    print(text)
    if not args.quick:
        publish("tpe", text)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
