"""Backends on this machine. A `Backend` is a joblib backend plus what the supervisor needs to
know about it: how many trials run at once, which exceptions mean a worker process died, and
whether workers can leave marks in the parent's temp dir."""

from __future__ import annotations

import os
import sys
from concurrent.futures import BrokenExecutor

from joblib import Parallel, effective_n_jobs


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

    def parallel(self) -> Parallel:
        _quiet_resource_tracker()
        return super().parallel()


_tracker_started = False


def _quiet_resource_tracker() -> None:
    """Start loky's resource tracker (a process that removes the temp folders of its pools) with
    its stderr on /dev/null. It shares ours otherwise, and when Ctrl-C stops a pool it may print
    a traceback about a folder it was told to forget twice, under mgrun's one-line "interrupted"."""
    global _tracker_started
    if _tracker_started:
        return
    from joblib.externals.loky.backend import resource_tracker

    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        resource_tracker.ensure_running()
        _tracker_started = True
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
