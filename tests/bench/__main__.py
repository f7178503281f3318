"""python -m tests.bench [NAME [options]]: run one benchmark with its options, or all of them."""

from __future__ import annotations

import importlib
import sys

# name -> module with main(argv) -> int
BENCHMARKS = {
    "engine": "tests.bench.engine_speed",
    "halving": "tests.bench.halving_speed",
    "sweep": "tests.bench.sweep_speed",
    "throughput": "tests.bench.throughput",
    "tpe": "tests.bench.search_quality",
}


def main(argv: list[str]) -> int:
    if argv and argv[0] in ("-h", "--help"):
        print(f"usage: python -m tests.bench [NAME [options]]; names: {', '.join(BENCHMARKS)}")
        return 0
    if argv and not argv[0].startswith("-"):
        name, rest = argv[0], argv[1:]
        if name not in BENCHMARKS:
            print(
                f"unknown benchmark {name!r}; choose one of {', '.join(BENCHMARKS)}",
                file=sys.stderr,
            )
            return 2
        return importlib.import_module(BENCHMARKS[name]).main(rest)
    codes = [importlib.import_module(module).main(argv) for module in BENCHMARKS.values()]
    return max(codes, default=0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
