"""Pre-flight: can this Dask cluster run this checkout's trials? Asked before any is sent.

A worker must join in time, and the scheduler and every worker must import mgrun with source files
byte-identical to this checkout's. Both matter: the scheduler unpickles every task and the workers
run it; a worker that cannot unpickle one drops out of the cluster, and the sweep then waits
forever. A version number alone would miss an edited or stale checkout, so `engine/` and
`runner/` are hashed file by file. The probe is `runner.execution.probe.describe`, pickled by
value, so it reaches processes that cannot import mgrun and reports that instead.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import cloudpickle
from distributed import Client

from runner.errors import BackendError
from runner.execution import probe

cloudpickle.register_pickle_by_value(probe)

# what unpickling a trial's task imports
MODULES = ("engine", "runner.execution.dask_backend", "runner.execution.worker")
PACKAGES = ("engine", "runner")  # whose sources must match the client's
FIX = (
    "install the same mgrun on the scheduler and every worker "
    "(pip install 'mgrun[dask]' from this checkout; see README, Running on a cluster)"
)
T = TypeVar("T")


def preflight(client: Client, where: str, workers: float = 30.0, answers: float = 30.0) -> str:
    """Wait up to `workers` s for a worker and `answers` s for the probe; a one-line summary,
    or BackendError naming `where`, the process at fault and the fix."""
    try:
        client.wait_for_workers(1, timeout=workers)
    except (TimeoutError, OSError) as exc:
        raise BackendError(
            f"{where}: no Dask worker joined within {workers:g} s; start workers with "
            f"`dask worker {client.scheduler.address} --nthreads 1 --nworkers N`"
        ) from exc
    mine = probe.describe(MODULES, PACKAGES)

    def ask() -> dict[str, Any]:
        found = client.run(probe.describe, MODULES, PACKAGES, on_error="return")
        try:
            scheduler: Any = client.run_on_scheduler(probe.describe, MODULES, PACKAGES)
        except Exception as exc:  # reported below like a worker's failure
            scheduler = exc
        return {"the scheduler": scheduler} | {f"worker {w}": r for w, r in found.items()}

    try:
        reports = _within(answers, ask)
    except TimeoutError as exc:
        raise BackendError(
            f"{where}: the scheduler or a worker did not answer mgrun's probe within "
            f"{answers:g} s; check that they are alive and reachable (firewall)"
        ) from exc
    for who, report in reports.items():
        problem = _mismatch(mine, report)
        if problem:
            raise BackendError(f"{where}: {who} {problem}; {FIX}")
    threads = client.nthreads()
    digest = hashlib.sha256(json.dumps(mine["sources"], sort_keys=True).encode()).hexdigest()
    return (
        f"{where}: {len(threads)} worker(s), {sum(threads.values())} thread(s); "
        f"mgrun {mine['version']} (sources {digest[:12]}) on the scheduler and every worker"
    )


def _mismatch(mine: dict[str, Any], theirs: Any) -> str | None:
    """What keeps a process whose probe said `theirs` from running this checkout's trials."""
    if isinstance(theirs, BaseException):
        text = str(theirs).strip().splitlines()
        return (
            f"cannot run mgrun's probe ({type(theirs).__name__}: {text[0] if text else ''}); "
            f"it needs Python {_minor(mine['python'])} like this machine"
        )
    if "error" in theirs:
        return f"cannot import mgrun ({theirs['error']})"
    if _minor(theirs["python"]) != _minor(mine["python"]):
        return f"runs Python {theirs['python']}, this machine {mine['python']}"
    ours, other = mine["sources"], theirs["sources"]
    differ = sorted(k for k in ours.keys() | other.keys() if ours.get(k) != other.get(k))
    if not differ:
        return None
    more = f" and {len(differ) - 3} more" if len(differ) > 3 else ""
    return (
        f"has other mgrun code ({', '.join(differ[:3])}{more} differ; "
        f"mgrun {theirs['version']} there, {mine['version']} here)"
    )


def _minor(python: str) -> str:
    return ".".join(python.split(".")[:2])


def _within(seconds: float, call: Callable[[], T]) -> T:
    """call(), or TimeoutError after `seconds`; a call that never returns is left to a daemon
    thread, which cannot hold up the exit."""
    box: list[tuple[bool, Any]] = []

    def target() -> None:
        try:
            box.append((True, call()))
        except BaseException as exc:
            box.append((False, exc))

    thread = threading.Thread(target=target, name="mgrun-probe", daemon=True)
    thread.start()
    thread.join(seconds)
    if not box:
        raise TimeoutError(f"no answer within {seconds:g} s")
    ok, value = box[0]
    if not ok:
        raise value
    return value
