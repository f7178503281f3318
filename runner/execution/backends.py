"""Where trials run, by name: `sequential` (this process, a plain loop) and `loky` (worker
processes on this machine) from `runner.execution.local`, `dask` (a Dask cluster,
`runner.execution.dask_backend`, imported only when asked for)."""

from __future__ import annotations

from collections.abc import Callable

from runner.errors import BackendError
from runner.execution.local import Backend, LokyBackend


def _dask(n_jobs: int, address: str | None, retries: int) -> Backend:
    # dask is an optional extra: imported only here
    from runner.execution.dask_backend import DaskBackend

    return DaskBackend(n_jobs, address, retries)  # connects and checks the cluster


# name -> constructor(n_jobs, address, retries); adding a backend is one entry plus its tests
BACKENDS: dict[str, Callable[[int, str | None, int], Backend]] = {
    "loky": lambda n_jobs, address, retries: LokyBackend(n_jobs),
    "sequential": lambda n_jobs, address, retries: Backend(),
    "dask": _dask,
}


def make_backend(
    name: str, n_jobs: int = -1, address: str | None = None, retries: int = 1
) -> Backend:
    """The backend called `name`, connected; BackendError if it cannot be used."""
    if name not in BACKENDS:
        raise BackendError(f"--backend {name}: unknown backend; use {', '.join(BACKENDS)}")
    return BACKENDS[name](n_jobs, address, retries)
