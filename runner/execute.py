"""Fan trials out to workers and stream their results back as they complete.

A `Backend` is a joblib backend plus what the supervisor needs to know about it: how many trials
run at once, which exceptions mean a worker process died, and whether workers can leave marks in
the parent's temp dir. `run_trials` drives any backend and survives dead workers:

- loky breaks its whole pool when one worker dies, and every trial in flight is lost with it.
  Workers mark the trials they start, so after a break the trials that never started go back in
  the queue uncharged, while the ones in flight are suspects: each is run again alone, where a
  death can only be its own. A trial charged with more than `retries` deaths comes back FAILED.
- Workers run `_work`: `runner.trial.run_trial`, then the run's files (plots, model, graph) drawn
  by `runner.artifacts`, so the parent only uploads them. Neither imports mlflow.

Backends: `sequential` (in this process, a plain loop), `loky` (worker processes on this machine),
`dask` (a Dask cluster: `runner.cluster.DaskBackend`).
"""

from __future__ import annotations

import os
import re
import tempfile
import warnings
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import BrokenExecutor
from dataclasses import dataclass
from pathlib import Path

from joblib import Parallel, delayed, effective_n_jobs

from runner.errors import BackendError
from runner.lifeline import watch_parent
from runner.trial import TrialResult, TrialSpec, run_trial

OnRetry = Callable[[TrialSpec, str], None]  # (trial, what happened) before it runs again
# A round yields results, then returns the trials it lost, the indices marked started, and why.
Round = Generator[TrialResult, None, tuple[list[TrialSpec], set[int], str | None]]


class Backend:
    """Runs trials in this process, one after another (joblib's `sequential`)."""

    name = "sequential"
    marks = False  # can workers write start marks into the parent's temp dir?

    def __init__(self, n_jobs: int = 1):
        self.n_jobs = n_jobs

    @property
    def parallelism(self) -> int:
        """How many trials run at once."""
        return 1

    def parallel(self) -> Parallel:
        """A joblib Parallel that yields results as they complete, one trial per task."""
        return Parallel(
            n_jobs=self.n_jobs,
            backend=self.name,
            return_as="generator_unordered",
            batch_size=1,  # a batch holds back finished results until its last trial is done
        )

    def worker_died(self, exc: BaseException) -> bool:
        """Does `exc` mean a worker process died (killed, out of memory) rather than a bug?"""
        return False

    def close(self) -> None:
        """Release what the backend holds (a cluster client, say)."""


class LokyBackend(Backend):
    """Worker processes on this machine (joblib's default `loky`); -1 uses every core."""

    name = "loky"
    marks = True

    @property
    def parallelism(self) -> int:
        return effective_n_jobs(self.n_jobs)  # -1: the cores this process may use

    def worker_died(self, exc: BaseException) -> bool:
        return isinstance(exc, BrokenExecutor)  # loky's TerminatedWorkerError is one


def make_backend(
    name: str, n_jobs: int = -1, address: str | None = None, retries: int = 1
) -> Backend:
    """The backend called `name`; BackendError if it cannot be used."""
    if name == "sequential":
        return Backend()
    if name == "loky":
        return LokyBackend(n_jobs)
    if name == "dask":
        from runner.cluster import DaskBackend  # dask is an optional extra: imported only here

        return DaskBackend(n_jobs, address, retries)  # connects and checks the cluster
    raise BackendError(f"--backend {name}: unknown backend; use loky, sequential or dask")


@dataclass
class WorkedTrial(TrialResult):
    """A trial's result with its run's files, {path: bytes}; None if drawing them failed."""

    files: dict[str, bytes] | None = None


def _work(spec: TrialSpec, marks: str | None, parent: int | None = None) -> WorkedTrial:
    """The worker's job: mark the trial as started, train it, draw its files, unmark it. A worker
    process of `parent` exits when `parent` dies (`runner.lifeline`)."""
    watch_parent(parent)
    mark = Path(marks, str(spec.index)) if marks else None
    if mark:
        mark.write_text(str(os.getpid()))
    result = WorkedTrial(**vars(run_trial(spec)))
    result.files = _files(spec, result)
    if mark:
        mark.unlink(missing_ok=True)
    return result


def _files(spec: TrialSpec, result: TrialResult) -> dict[str, bytes] | None:
    from runner.artifacts import trial_files  # matplotlib: imported by workers only when used
    from runner.datasets import make_dataset

    cfg = spec.config
    try:
        return trial_files(cfg, result, make_dataset(cfg.dataset, cfg.seed, cfg.base_dir))
    except Exception:  # the parent draws them again and reports the error against this trial
        return None


def run_trials(
    specs: Sequence[TrialSpec],
    backend: Backend,
    retries: int = 1,
    on_retry: OnRetry | None = None,
) -> Iterator[TrialResult]:
    """One result per spec, in completion order, whatever happens to the workers."""
    todo = list(specs)
    alone: list[TrialSpec] = []  # suspects of a pool break, each to run by itself
    deaths: dict[int, int] = {}
    while todo or alone:
        batch, todo = ([alone.pop(0)], todo) if alone else (todo, [])
        lost, started, error = yield from _round(batch, backend)
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


def _round(batch: list[TrialSpec], backend: Backend) -> Round:
    done: set[int] = set()
    with tempfile.TemporaryDirectory(prefix="mgrun-marks-") as marks, warnings.catch_warnings():
        # Stopping early (Ctrl-C) cancels queued trials on purpose; joblib would warn about it.
        warnings.filterwarnings("ignore", "[0-9]+ tasks which were still being processed")
        where = marks if backend.marks else None
        parent = os.getpid() if backend.marks else None  # local workers die with this process
        try:
            for result in backend.parallel()(delayed(_work)(s, where, parent) for s in batch):
                done.add(result.index)
                yield result
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


def _died(spec: TrialSpec, times: int, error: str) -> TrialResult:
    reason = f"its worker process died {times} times (killed or out of memory?); {error}"
    return TrialResult.of(spec, "FAILED", reason)


def _notify(on_retry: OnRetry | None, spec: TrialSpec, what: str) -> None:
    if on_retry is not None:
        on_retry(spec, what)
