"""What every benchmark here needs: worker processes, the machine's description, summaries."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class Worker:
    """A `python -m <module> args...` process that answers one JSON line per JSON line sent."""

    def __init__(self, module: str, *args: str):
        self.name = " ".join(args)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        self.hello = self._receive()

    def ask(self, **command: object) -> dict:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        return self._receive()

    def _receive(self) -> dict:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"bench worker '{self.name}' died (exit code {self.proc.wait()})")
        return json.loads(line)

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)


def publish(name: str, text: str) -> None:
    """Put a report in README.md between `<!-- bench:NAME -->` and `<!-- /bench:NAME -->`, so
    the README's Performance section is always the latest full run."""
    readme = ROOT / "README.md"
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    body = readme.read_text()
    if start not in body or end not in body:
        raise RuntimeError(f"README.md has no {start} ... {end} block for this report")
    head, rest = body.split(start, 1)
    readme.write_text(f"{head}{start}\n{text.strip()}\n{end}{rest.split(end, 1)[1]}")
    print(f"report written to README.md's Performance section ({name})", file=sys.stderr)


def machine() -> str:
    """Date, CPUs, CPU model, load, Python: one line for the top of a report."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    py = f"{platform.python_implementation()} {platform.python_version()}"
    load = os.getloadavg()[0]  # other work on the machine shows up as noise in the timings
    return f"{when}; {os.cpu_count()} CPUs ({model}), load average {load:.1f}; {py}"


def version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def summary(seconds: list[float]) -> tuple[float, float, float]:
    """(median, first quartile, third quartile) in milliseconds."""
    ms = [s * 1e3 for s in seconds]
    if len(ms) < 2:
        return ms[0], ms[0], ms[0]
    q1, q2, q3 = statistics.quantiles(ms, n=4, method="inclusive")
    return statistics.median(ms), q1, q3


def fmt(x: float) -> str:
    """Three significant figures, without scientific notation."""
    if x >= 100:
        return f"{x:,.0f}"
    return f"{x:.1f}" if x >= 10 else f"{x:.2f}"
