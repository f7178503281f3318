"""Issue 6: our engine against micrograd 0.1.0 on micrograd's own moons demo, side by side.

    python -m tests.bench engine [--quick]

Every engine trains the same workload from the same initial weights in a process of its own (so
peak RSS is its own); the engines take turns in rounds, so drift in the machine's speed hits all
of them alike. micrograd trains once (100 steps, about two minutes), the fast engines ten times.
Step costs are CPU time of the engine's process (user + system), which other work on the machine
hardly changes; wall-clock medians are shown beside them.
The report goes to stdout and, unless --quick, to README.md's Performance section.
"""

from __future__ import annotations

import argparse
import sys

from tests.bench.engines import ENGINES
from tests.bench.harness import Worker, fmt, machine, publish, summary, version
from tests.bench.workload import Workload, accuracy

WORKER = "tests.bench.worker"
DEMO = Workload()
LARGE = Workload(hidden=(32, 32), n=200)
SIZES = ((8, 8), (16, 16), (32, 32), (64, 64))  # the scaling sweep, on 200 points
DEFAULT_RECURSION_LIMIT = 1000  # CPython's
ROUNDS = 50  # short turns: a burst of load from elsewhere hits every engine alike


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def start(engine: str, w: Workload) -> Worker:
    return Worker(WORKER, engine, ",".join(map(str, w.hidden)), str(w.n))


def alternate(workers: dict, steps: dict, rounds: int, what: str) -> dict:
    """Each worker runs steps[key] steps per round, in an order that rotates every round."""
    keys = list(workers)
    out = {key: {"times": [], "wall": [], "trained": [], "error": None} for key in keys}
    for r in range(rounds):
        for key in keys[r % len(keys) :] + keys[: r % len(keys)]:
            if out[key]["error"] is None:
                reply = workers[key].ask(op="run", steps=steps[key])
                out[key]["error"] = reply.get("error")
                out[key]["times"] += reply.get("times", [])
                out[key]["wall"] += reply.get("wall", [])
                out[key]["trained"] += reply.get("trained", [])
        log(f"  {what}: round {r + 1}/{rounds} done")
    return out


def run_demo(quick: bool) -> dict:
    """The four engines on the demo; per engine: times, accuracies, weights, peak RSS, nodes."""
    rounds = 5 if quick else ROUNDS
    trainings = {"micrograd": 1, "batch": 10, "scalar": 1, "reference": 10}  # in ROUNDS rounds
    steps = {e: n * DEMO.steps // ROUNDS for e, n in trainings.items()}
    if quick:
        steps["micrograd"] = 1
    log(f"demo: {rounds} rounds of {steps} steps")
    workers = {e: start(e, DEMO) for e in trainings}
    try:
        res = alternate(workers, steps, rounds, "demo")
        for e, worker in workers.items():
            res[e].update(worker.hello, **worker.ask(op="report"))
    finally:
        for worker in workers.values():
            worker.close()
    X, y = DEMO.data()
    for r in res.values():
        r["times"], r["wall"] = r["times"][1:], r["wall"][1:]  # the first step warms caches
        r["accuracy"] = sorted({accuracy(ws, X, y) for ws in r["trained"]})
    return res


def run_large() -> dict:
    """micrograd's RecursionError at 32-32 on 200 points; ours training through it."""
    log("larger workload: micrograd (expect RecursionError), then ours")
    out = {}
    for engine, steps in (("micrograd", 1), ("batch", LARGE.steps), ("scalar", 3)):
        worker = start(engine, LARGE)
        try:
            reply = worker.ask(op="run", steps=steps)
        finally:
            worker.close()
        reply["recursion_limit"] = worker.hello["recursion_limit"]
        X, y = LARGE.data()
        reply["accuracy"] = [accuracy(ws, X, y) for ws in reply.get("trained", [])]
        out[engine] = reply
    return out


def run_scaling(quick: bool) -> dict:
    """ms per step of ours and of the hand-written loop for growing hidden layers."""
    budget, rounds = (0.05, 2) if quick else (0.15, 12)  # seconds per worker per round
    workers = {
        (e, h): start(e, Workload(hidden=h, n=200)) for h in SIZES for e in ("batch", "reference")
    }
    try:
        # one warm-up step per worker sets its steps per round
        steps = {
            k: max(2, round(budget / w.ask(op="run", steps=1)["times"][0]))
            for k, w in workers.items()
        }
        return alternate(workers, steps, rounds, "scaling")
    finally:
        for worker in workers.values():
            worker.close()


def _mib(kib: int) -> str:
    return fmt(kib / 1024)


def _demo_table(demo: dict) -> list[str]:
    lines = [
        "| engine | CPU ms/step, median (IQR) | wall ms/step, median | steps timed "
        "| speed vs micrograd | graph nodes/step | peak RSS, MiB: process (above baseline) "
        "| traced peak of a step, MiB | accuracy after 100 steps |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    base = summary(demo["micrograd"]["times"])[0]
    for e, r in demo.items():
        m, q1, q3 = summary(r["times"])
        nodes = f"{r['nodes']:,}" if r["nodes"] else "no graph"
        if e == "batch":
            nodes += f" (a fused node stands for {DEMO.macs:,} forward multiply-adds)"
        rss = f"{_mib(r['rss_peak_kib'])} ({_mib(r['rss_peak_kib'] - r['rss_base_kib'])})"
        traced = fmt(r["traced_step_bytes"] / 2**20)
        acc = ", ".join(f"{a:.2f}" for a in r["accuracy"]) or "n/a"
        lines.append(
            f"| {ENGINES[e].label} | {fmt(m)} ({fmt(q1)}-{fmt(q3)}) "
            f"| {fmt(summary(r['wall'])[0])} | {len(r['times'])} "
            f"| {base / m:,.0f}x | {nodes} | {rss} | {traced} | {acc} |"
        )
    ref = demo["reference"]["trained"][:1]
    diffs = [
        f"{ENGINES[e].label} {_max_diff(demo[e]['trained'][0], ref[0]):.1e}"
        for e in ("micrograd", "batch", "scalar")
        if ref and demo[e]["trained"]
    ]
    if diffs:
        text = "Weights after 100 steps, max abs difference to the hand-written loop's: "
        lines += ["", text + "; ".join(diffs) + "."]
    return lines


def _max_diff(a: list, b: list) -> float:
    flat_a = [v for layer in a for n in layer for v in n]
    flat_b = [v for layer in b for n in layer for v in n]
    return max(abs(p - q) for p, q in zip(flat_a, flat_b, strict=True))


def _scaling_table(scale: dict) -> tuple[list[str], list[float]]:
    lines = [
        "| hidden | multiply-adds | ours ms/step | ours ms per million "
        "| hand-written ms/step | hand-written ms per million |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    per = []
    for h in SIZES:
        macs = Workload(hidden=h, n=200).macs
        ours, ref = (summary(scale[(e, h)]["times"])[0] for e in ("batch", "reference"))
        per.append(ours / macs * 1e6)
        lines.append(
            f"| {h[0]}-{h[1]} | {macs:,} | {fmt(ours)} | {fmt(per[-1])} | {fmt(ref)} "
            f"| {fmt(ref / macs * 1e6)} |"
        )
    return lines, per


def _targets(demo: dict, large: dict, per_mac: list[float], quick: bool) -> list[tuple[bool, str]]:
    med = {e: summary(r["times"])[0] for e, r in demo.items()}
    mg, ours = demo["micrograd"], demo["batch"]
    speedup, floor = med["micrograd"] / med["batch"], med["batch"] / med["reference"]
    above = [r["rss_peak_kib"] - r["rss_base_kib"] for r in (ours, mg)]
    traced = [r["traced_step_bytes"] for r in (ours, mg)]
    share = max(above[0] / above[1], traced[0] / traced[1])
    memory = (
        f"peak RSS above baseline {_mib(above[0])} vs {_mib(above[1])} MiB, traced peak of a step "
        f"{fmt(traced[0] / 2**20)} vs {fmt(traced[1] / 2**20)} MiB (whole processes, each with "
        f"the same {_mib(mg['rss_base_kib'])} MiB of interpreter, imports and data: "
        f"{_mib(ours['rss_peak_kib'])} vs {_mib(mg['rss_peak_kib'])} MiB)"
    )
    accs = [r["accuracy"] for r in demo.values()]
    same = all(len(a) == 1 and a == accs[0] for a in accs)
    big, scalar = large["batch"], large["scalar"]
    runs = not big.get("error") and not scalar.get("error")
    limit = big["recursion_limit"]
    mg_big = large["micrograd"]
    growth = max(b / a for a, b in zip(per_mac, per_mac[1:], strict=False))
    return [
        (speedup >= 100, f"ours >= 100x micrograd's steps per second: {speedup:,.0f}x"),
        (floor <= 4, f"ours within 4x of the hand-written loop: {floor:.2f}x"),
        (share <= 0.25, f"our peak RSS <= 1/4 of micrograd's: {memory}"),
        (
            quick or same,
            "same accuracy after 100 steps for every engine: "
            + ("not checked in a quick run" if quick else f"{accs[0]}"),
        ),
        (
            runs and limit == DEFAULT_RECURSION_LIMIT,
            f"MLP(2, [32, 32, 1]) on 200 points runs at the default recursion limit ({limit}): "
            f"ours {fmt(summary(big['times'])[0]) if runs else 'FAILED'} ms/step, accuracy "
            f"{big['accuracy']} after 100 steps, scalar graph "
            f"{fmt(summary(scalar['times'])[0]) if runs else 'FAILED'} ms/step; micrograd: "
            f"{mg_big.get('error', 'no error')} at step {mg_big.get('at_step', '-')}",
        ),
        (
            growth <= 1.2,
            "cost per step grows no faster than the multiply-adds: ms per million multiply-adds "
            f"changes by at most {growth:.2f}x from one size to the next (limit 1.2x)",
        ),
    ]


def report(demo: dict, large: dict, scale: dict, quick: bool) -> tuple[str, bool]:
    """The Markdown report and whether every target passed."""
    scaling, per_mac = _scaling_table(scale)
    targets = _targets(demo, large, per_mac, quick)
    lines = [
        "### Engine speed: `make bench` (`python -m tests.bench engine`)",
        "",
        f"{machine()}; micrograd {version('micrograd')}"
        + (". QUICK RUN: not for the README." if quick else "."),
        "",
        f"Workload: micrograd's moons demo: MLP(2, [16, 16, 1]) relu on {DEMO.n} two-moons points "
        f"(noise {DEMO.noise}), hinge loss + L2 {DEMO.alpha:g}, full batch, SGD with "
        "lr = 1 - 0.9 k/100, 100 steps; the same data and initial weights for every engine. "
        "micrograd runs with its defaults (cyclic GC on) and the loss of its demo notebook; mgrun "
        "runs as `runner.training.trial` does (`forward_batch`, `engine.losses`, "
        "`engine.optim.SGD`, GC paused around the loop); the scalar-graph line swaps "
        "`forward_batch` for `model(x)` per row. Each engine runs in a process of its own; they "
        "take turns in rounds in one session. "
        "Peak RSS "
        "is `ru_maxrss` of that process (in brackets: above its baseline after imports and setup); "
        "the traced peak is `tracemalloc`'s peak over one more step after the timed ones.",
        "",
        *_demo_table(demo),
        "",
        "Scaling: 200 points, CPU ms per step (median) against the forward multiply-adds per step:",
        "",
        *scaling,
        "",
        "Targets:",
        "",
        *(f"- {'PASS' if ok else 'FAIL'}: {text}" for ok, text in targets),
    ]
    return "\n".join(lines) + "\n", all(ok for ok, _ in targets)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench engine", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run: 5 micrograd steps, no README figures"
    )
    args = parser.parse_args(argv)
    demo = run_demo(args.quick)
    large = run_large()
    scale = run_scaling(args.quick)
    text, passed = report(demo, large, scale, args.quick)
    print(text)
    if not args.quick:
        publish("engine", text)
    return 0 if passed else 1
