"""One engine in a process of its own, so that its peak RSS is its own; driven by the parent
over stdin/stdout, one JSON object per line.

    python -m tests.bench.worker ENGINE HIDDEN N      e.g.  batch 16,16 100

Replies: first {"rss_base_kib", "recursion_limit"} once the imports and the model are ready; then
for {"op": "run", "steps": s} the CPU seconds ("times") and wall-clock seconds ("wall") of each
of s training steps and the weights after each
completed training (training restarts from the initial weights after `Workload.steps` steps), or
{"error": ...} if a step raised; for {"op": "report"} the peak RSS, then (read after it) the
tracemalloc peak of one more step and the nodes of one loss graph.
"""

from __future__ import annotations

import json
import resource
import sys
import time
import tracemalloc
from contextlib import nullcontext

from runner.training.trial import gc_paused
from tests.bench.engines import ENGINES, count_nodes
from tests.bench.workload import Workload


def _maxrss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def _send(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main(argv: list[str]) -> None:
    engine, hidden, n = argv
    w = Workload(hidden=tuple(int(h) for h in hidden.split(",")), n=int(n))
    trainer = ENGINES[engine](w)
    _send({"rss_base_kib": _maxrss_kib(), "recursion_limit": sys.getrecursionlimit()})
    k = 0
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["op"] == "report":
            peak = _maxrss_kib()
            with gc_paused() if trainer.pause_gc else nullcontext():
                tracemalloc.start()
                trainer.step(k)
                traced = tracemalloc.get_traced_memory()[1]
                tracemalloc.stop()
            root = trainer.graph()
            nodes = count_nodes(root) if root is not None else 0
            _send({"rss_peak_kib": peak, "traced_step_bytes": traced, "nodes": nodes})
            continue
        times, wall, trained = [], [], []
        try:
            with gc_paused() if trainer.pause_gc else nullcontext():
                for _ in range(cmd["steps"]):
                    c0, t0 = time.process_time(), time.perf_counter()
                    trainer.step(k)
                    times.append(time.process_time() - c0)
                    wall.append(time.perf_counter() - t0)
                    k += 1
                    if k == w.steps:
                        trained.append(trainer.weights())
                        trainer.reset()
                        k = 0
        except Exception as exc:  # e.g. micrograd's RecursionError: a result to report
            _send({"error": f"{type(exc).__name__}: {exc}", "at_step": k})
            continue
        _send({"times": times, "wall": wall, "trained": trained})


if __name__ == "__main__":
    main(sys.argv[1:])
