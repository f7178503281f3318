"""One trial trained in a child process while the caller does something else.

`mgrun train` spends seconds importing MLflow and opening the store before it can write a
metric; training and drawing the pictures take about as long again and need none of it. So the
trial runs in a forked child from the start, streaming its step metrics back in small batches,
and hands over its complete record; the parent does every MLflow write, as in a sweep. On one
core nothing is lost but a fork.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import time
from collections.abc import Iterator
from typing import Any

from runner import interrupts
from runner.config.spec import TrialSpec
from runner.datasets import Dataset
from runner.execution.lifeline import watch_parent
from runner.record import Metric, TrialRecord, TrialResult
from runner.training.files import make_record
from runner.training.trial import run_trial

BATCH = 0.1  # seconds of steps the child gathers before sending them
POLL = 0.1  # seconds the parent waits for a message before it looks for a signal


class Background:
    """A trial training in a child process: iterate `steps()`, then take `record()`."""

    def __init__(self, spec: TrialSpec, data: Dataset):
        methods = multiprocessing.get_all_start_methods()
        ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        self.spec = spec
        self.queue: Any = ctx.Queue()
        self.process = ctx.Process(
            target=_child, args=(spec, data, self.queue, os.getpid()), daemon=True
        )
        self.process.start()
        self._record: TrialRecord | None = None

    def steps(self) -> Iterator[tuple[int, list[Metric]]]:
        """(step, its metric points) as the child trains; ends when its record has come."""
        while self._record is None:
            try:
                kind, payload = self.queue.get(timeout=POLL)
            except queue.Empty:
                interrupts.check()
                if not self.process.is_alive() and self.queue.empty():
                    self._record = self._died()
                continue
            if kind == "steps":
                yield from payload
            else:
                self._record = payload
            interrupts.check()

    def record(self) -> TrialRecord:
        """The trial's complete record (files None when the child could not draw them)."""
        for _ in self.steps():
            pass
        assert self._record is not None
        return self._record

    def stop(self) -> None:
        """End the child, done or not."""
        if self.process.is_alive():
            self.process.terminate()
        self.process.join(timeout=10)
        self.queue.close()

    def _died(self) -> TrialRecord:
        code = self.process.exitcode
        result = TrialResult.of(self.spec, "FAILED", f"the training process died (exit {code})")
        return make_record(self.spec, result, None, full=False, draw=False)


def _child(spec: TrialSpec, data: Dataset, out: Any, parent: int) -> None:
    # A terminal's Ctrl-C reaches the whole process group: the parent decides, and ends this.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    watch_parent(parent)
    gathered: list[tuple[int, list[Metric]]] = []
    last = time.monotonic()

    def on_step(step: int, points: list[Metric]) -> None:
        nonlocal last
        gathered.append((step, points))
        if time.monotonic() - last >= BATCH:
            out.put(("steps", gathered[:]))
            gathered.clear()
            last = time.monotonic()

    result = run_trial(spec, on_step=on_step, data=data)
    if gathered:
        out.put(("steps", gathered))
    try:
        record = make_record(spec, result, data)
    except Exception:  # the parent draws them again and reports the error
        record = make_record(spec, result, data, draw=False)
    out.put(("record", record))
