"""Sweeps on Dask: a scheduler at `--address`, or a local cluster started (and closed) here.

Connecting checks the cluster first (`runner.execution.preflight`). Trials then go through
joblib's own dask backend with two fixes (`_JoblibDask`), and their task keys name the trial
(`_Named`). A trial whose worker dies is run again by Dask on another worker, up to the scheduler's
`distributed.scheduler.allowed-failures` (a local cluster sets it to `--retries`); after that
Dask gives up on it (KilledWorker) and it comes back FAILED while the others go on.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from runner.config.spec import TrialSpec
from runner.errors import BackendError
from runner.execution import probe
from runner.execution.local import Backend
from runner.execution.worker import died
from runner.record import TrialRecord

try:
    import dask
    from distributed import Client, KilledWorker, LocalCluster
    from joblib import Parallel
    from joblib._dask import DaskDistributedBackend
except ImportError as exc:  # an optional extra: only `--backend dask` needs it
    raise BackendError(
        f"--backend dask needs dask and distributed ({exc}); install them with "
        "pip install 'mgrun[dask]', or use --backend loky"
    ) from exc

from runner.execution.preflight import preflight  # noqa: E402 - needs dask, checked just above


@dataclass(frozen=True)
class Timeouts:
    """Seconds to wait for the scheduler, for a first worker, and for the probe's answers."""

    connect: float = 10.0
    workers: float = 30.0
    probe: float = 30.0


class DaskBackend(Backend):
    """Trials as Dask tasks; a cluster at `address`, else a local one of `n_jobs` processes."""

    name = "dask"

    def __init__(
        self,
        n_jobs: int = -1,
        address: str | None = None,
        retries: int = 1,
        timeouts: Timeouts = Timeouts(),
    ):
        super().__init__(n_jobs)
        self.timeouts = timeouts
        self.cluster: LocalCluster | None = None
        self.client: Client | None = None
        try:
            if address is None:
                self.cluster = _start_local(_n_workers(n_jobs), retries)
                self.client = Client(self.cluster, set_as_default=False)
                self.where = f"local Dask cluster {self.cluster.scheduler_address}"
            else:
                self.client = _connect(address, timeouts.connect)
                self.where = f"Dask scheduler {address}"
            summary = preflight(self.client, self.where, timeouts.workers, timeouts.probe)
            reruns = self.client.run_on_scheduler(probe.allowed_failures)
        except BaseException:
            self.close()
            raise
        # On someone else's scheduler its own allowed-failures, not --retries, is the budget.
        print(
            f"{summary}; a trial whose worker dies runs again up to {reruns} time(s)",
            file=sys.stderr,
        )

    @property
    def parallelism(self) -> int:
        assert self.client is not None
        return sum(self.client.nthreads().values())

    def parallel(self) -> Callable[[Iterable[Any]], Iterator[TrialRecord]]:  # type: ignore[override]
        return self._run

    def _run(self, tasks: Iterable[Any]) -> Iterator[TrialRecord]:
        """Results of joblib `delayed` trial tasks as they complete; a trial Dask gave up on
        comes back FAILED and the rest run on."""
        todo: dict[int, tuple[Any, tuple, dict]] = {}
        for func, args, kwargs in tasks:
            spec = args[0]
            assert isinstance(spec, TrialSpec), spec
            todo[spec.index] = (_Named(func, spec.index), args, kwargs)
        while todo:
            backend = _JoblibDask(
                client=self.client, wait_for_workers_timeout=self.timeouts.workers
            )
            parallel = Parallel(
                n_jobs=-1, backend=backend, return_as="generator_unordered", batch_size=1
            )
            results: Iterator[TrialRecord] = iter(())
            try:
                results = parallel(list(todo.values()))
                for result in results:
                    todo.pop(result.index, None)
                    yield result
            except KilledWorker as exc:
                spec = todo.pop(_trial_index(exc.args[0]))[1][0]
                yield _given_up(spec, exc.args[2] + 1)
            except TimeoutError as exc:  # joblib found no worker to send the next trials to
                raise BackendError(
                    f"{self.where}: no worker left for {self.timeouts.workers:g} s; "
                    f"start workers, then run the sweep again to resume it"
                ) from exc
            finally:
                close = getattr(results, "close", None)
                if close is not None:
                    close()  # cancels what is still queued, on errors and Ctrl-C too

    def close(self) -> None:
        """Disconnect; shut a local cluster down. Safe to call twice."""
        client, cluster, self.client, self.cluster = self.client, self.cluster, None, None
        if client is not None:
            with suppress(Exception):
                client.close(timeout=10)
        if cluster is not None:
            with suppress(Exception):
                cluster.close(timeout=20)


def _connect(address: str, timeout: float) -> Client:
    try:
        return Client(address, timeout=timeout, set_as_default=False)
    except Exception as exc:  # refused, timed out, unresolvable, malformed: all the same fix
        text = str(exc).strip().splitlines()
        raise BackendError(
            f"--address {address}: no Dask scheduler answers there within {timeout:g} s "
            f"({text[0] if text else type(exc).__name__}); start one with `dask scheduler` "
            "on that host, or fix the address (and let its port through the firewall)"
        ) from exc


def _n_workers(n_jobs: int) -> int:
    return n_jobs if n_jobs > 0 else max(1, (os.cpu_count() or 1) + 1 + n_jobs)


# Ctrl-C in a terminal reaches the whole process group: the workers leave it to this process,
# which closes them, instead of each printing a KeyboardInterrupt traceback.
IGNORE_SIGINT = "import signal; signal.signal(signal.SIGINT, signal.SIG_IGN)"


def _start_local(n_workers: int, retries: int) -> LocalCluster:
    """Worker processes with one thread each, all on 127.0.0.1."""
    try:
        with dask.config.set({"distributed.scheduler.allowed-failures": retries}):
            return LocalCluster(
                n_workers=n_workers,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                scheduler_port=0,
                dashboard_address="127.0.0.1:0",  # its HTTP server runs anyway: keep it local
                preload=[IGNORE_SIGINT],
            )
    except Exception as exc:
        raise BackendError(f"cannot start a local Dask cluster: {exc}; use --backend loky") from exc


class _JoblibDask(DaskDistributedBackend):
    """joblib's dask backend, fixed for sweeps."""

    def effective_n_jobs(self, n_jobs: int) -> int:
        # With one worker thread in the cluster joblib would run every trial in this process.
        return max(2, super().effective_n_jobs(n_jobs))

    def submit(self, func: Any, callback: Any = None) -> Any:
        future = super().submit(func, callback)

        def failed(f: Any) -> None:
            # joblib 1.6 only hears of tasks that returned; without this a task that failed in
            # Dask itself (KilledWorker, lost) would keep it waiting forever.
            if f.exception() is not None and callback is not None:
                callback(f.exception())

        future.add_done_callback(failed)
        return future

    def retrieve_result_callback(self, out: Any) -> Any:
        if isinstance(out, BaseException):  # from `failed`, or a future Dask cancelled
            raise out
        return super().retrieve_result_callback(out)


class _Named:
    """A trial's task under the trial's name, so that Dask's key for it (in the dashboard and
    in KilledWorker) says which trial it is."""

    def __init__(self, func: Callable[..., Any], index: int):
        self.func = func
        self.__name__ = f"mgrun-trial-{index}"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.func(*args, **kwargs)


def _trial_index(key: Any) -> int:
    found = re.search(r"mgrun-trial-(\d+)_", str(key))
    assert found, key
    return int(found.group(1))


def _given_up(spec: TrialSpec, deaths: int) -> TrialRecord:
    return died(
        spec, f"its Dask worker died {deaths} time(s) (killed or out of memory?); Dask gave up"
    )
