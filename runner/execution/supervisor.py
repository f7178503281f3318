"""Fan trials out to a backend and stream their records back as they complete, whatever
happens to the workers.

loky breaks its whole pool when one worker dies, and every trial in flight is lost with it.
Workers mark the trials they start (`runner.execution.worker`), so after a break the trials that
never started go back in the queue uncharged, while the ones in flight are suspects: each is run
again alone, where a death can only be its own. A trial charged with more than `retries` deaths
comes back FAILED.
"""

from __future__ import annotations

import os
import re
import tempfile
import warnings
from collections.abc import Callable, Generator, Iterator, Sequence
from pathlib import Path

from joblib import delayed

from runner.config.spec import TrialSpec
from runner.execution.local import Backend
from runner.execution.worker import died, draw, work
from runner.record import TrialRecord, TrialResult

OnRetry = Callable[[TrialSpec, str], None]  # (trial, what happened) before it runs again
# A round yields records, then returns the trials it lost, the indices marked started, and why.
Round = Generator[TrialRecord, None, tuple[list[TrialSpec], set[int], str | None]]


def run_trials(
    specs: Sequence[TrialSpec],
    backend: Backend,
    retries: int = 1,
    on_retry: OnRetry | None = None,
    full: bool = False,
) -> Iterator[TrialRecord]:
    """One record per spec (`full` ones with the pictures, else lean), in completion order,
    whatever happens to the workers."""
    todo = list(specs)
    alone: list[TrialSpec] = []  # suspects of a pool break, each to run by itself
    deaths: dict[int, int] = {}
    while todo or alone:
        batch, todo = ([alone.pop(0)], todo) if alone else (todo, [])
        lost, started, error = yield from _round(batch, backend, full)
        if error is None or not lost:
            continue
        suspects = [s for s in lost if s.index in started] or lost
        todo += [s for s in lost if s not in suspects]
        if len(suspects) > 1:  # several were in flight: who killed the pool is unknown
            alone += suspects
            for spec in suspects:
                _notify(on_retry, spec, f"in flight when a worker died ({error}); rerun alone")
            continue
        spec = suspects[0]
        deaths[spec.index] = deaths.get(spec.index, 0) + 1
        if deaths[spec.index] > retries:
            yield _died(spec, deaths[spec.index], error)
        else:
            alone.append(spec)
            _notify(on_retry, spec, f"its worker died ({error}); running it again")


def draw_full(
    trials: Sequence[tuple[TrialSpec, TrialResult]], backend: Backend
) -> Iterator[TrialRecord]:
    """Full records of trials that are over, drawn by the workers, in completion order. Those a
    dying worker took with it come back without files, for the parent to draw."""
    drawn: set[int] = set()
    try:
        for record in backend.parallel()(delayed(draw)(s, r) for s, r in trials):
            drawn.add(record.index)
            yield record
    except Exception as exc:
        if not backend.worker_died(exc):
            raise
        for spec, result in trials:
            if spec.index not in drawn:
                yield TrialRecord(result, {}, None)


def _round(batch: list[TrialSpec], backend: Backend, full: bool) -> Round:
    done: set[int] = set()
    with tempfile.TemporaryDirectory(prefix="mgrun-marks-") as marks, warnings.catch_warnings():
        # Stopping early (Ctrl-C) cancels queued trials on purpose; joblib would warn about it.
        warnings.filterwarnings("ignore", "[0-9]+ tasks which were still being processed")
        where = marks if backend.marks else None
        parent = os.getpid() if backend.marks else None  # local workers die with this process
        try:
            for record in backend.parallel()(delayed(work)(s, where, full, parent) for s in batch):
                done.add(record.index)
                yield record
        except Exception as exc:
            if not backend.worker_died(exc):
                raise
            started = {int(p.name) for p in Path(marks).iterdir()}
            lost = [s for s in batch if s.index not in done]
            return lost, started, _short(exc)
    return [], set(), None


def _short(exc: BaseException) -> str:
    """What loky says of the dead, e.g. `exit code {SIGKILL(-9)}`, or the first line."""
    text = str(exc)
    if codes := re.search(r"exit codes of the workers are (\{.*?\})", text):
        return f"exit code {codes.group(1)}"
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}".rstrip(": ")


def _died(spec: TrialSpec, times: int, error: str) -> TrialRecord:
    return died(spec, f"its worker process died {times} times (killed or out of memory?); {error}")


def _notify(on_retry: OnRetry | None, spec: TrialSpec, what: str) -> None:
    if on_retry is not None:
        on_retry(spec, what)
