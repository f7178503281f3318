"""What a Dask worker or scheduler can run, found out with the standard library only.

`runner.execution.preflight` registers this module with `cloudpickle.register_pickle_by_value`,
so `describe` travels as code and runs even in a process that cannot import mgrun, where it
reports the import error instead of failing to unpickle. Keep it free of third-party and project
imports.
"""

from __future__ import annotations

import hashlib
import importlib
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any


def describe(modules: Sequence[str], packages: Sequence[str]) -> dict[str, Any]:
    """This process's Python, and whether it imports `modules`; if so, the installed mgrun
    version and a digest of every source file of `packages`, keyed `package/relative/path.py`."""
    report: dict[str, Any] = {"python": ".".join(map(str, sys.version_info[:3]))}
    try:
        for name in modules:
            importlib.import_module(name)
    except Exception as exc:  # whatever stops the import is the answer, not a crash
        report["error"] = f"{type(exc).__name__}: {exc}"
        return report
    try:
        report["version"] = metadata.version("mgrun")
    except metadata.PackageNotFoundError:
        report["version"] = None
    report["sources"] = {
        f"{package}/{rel}": digest for package in packages for rel, digest in _sources(package)
    }
    return report


def _sources(package: str) -> list[tuple[str, str]]:
    root = Path(importlib.import_module(package).__file__ or "").parent
    return [
        (path.relative_to(root).as_posix(), hashlib.sha256(path.read_bytes()).hexdigest())
        for path in sorted(root.rglob("*.py"))
    ]


def allowed_failures(dask_scheduler: Any) -> int:
    """How often the scheduler reruns a task whose worker died before giving up on it."""
    return int(dask_scheduler.allowed_failures)
