"""Helpers shared by the tests: the repository's paths, sweep files, waiting on real processes."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def wait_for(what: Callable[[], T], timeout: float = 60) -> T:
    """Poll `what` until it returns something truthy; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := what():
            return found
        time.sleep(0.05)
    name = getattr(what, "__name__", what)
    raise AssertionError(f"timed out after {timeout} s waiting for {name}")


ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"


def write_sweep(
    directory: Path, text: str, base: str, base_at: str = "tiny.yaml", sweep_at: str = "s.yaml"
) -> Path:
    """A base run config at `base_at` and a sweep file at `sweep_at` (both under `directory`)
    whose `base:` points at it; `text` is the rest of the sweep file. Returns the sweep's path."""
    base_path, path = directory / base_at, directory / sweep_at
    for p in (base_path, path):
        p.parent.mkdir(parents=True, exist_ok=True)
    base_path.write_text(base)
    path.write_text(f"base: {os.path.relpath(base_path, path.parent)}\n" + text)
    return path


def gone(procs: list) -> bool:
    """Every psutil process exited (a zombie waiting for init to reap it counts as exited)."""
    import psutil  # only the process tests need it

    for p in procs:
        try:
            if p.status() != psutil.STATUS_ZOMBIE:
                return False
        except psutil.NoSuchProcess:
            pass
    return True


def copied_store(template: Path, where: Path) -> str:
    """The URI of a copy of the `template` store (a fixture in conftest.py) in `where`."""
    return f"sqlite:///{shutil.copy(template, where / 'mlflow.db')}"


def config_error(load: Callable[[Path], object], path: Path) -> str:
    """The message of the ConfigError that `load(path)` raises, checked to be what a user gets:
    one line naming the file, exit code 2."""
    import pytest

    from runner.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        load(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: ") and "\n" not in msg and info.value.exit_code == 2, msg
    return msg


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def healthy(base: str) -> bool:
    """Whether an MLflow server at `base` (http://host:port) answers its health check."""
    import urllib.request

    try:
        with urllib.request.urlopen(base + "/health", timeout=2) as resp:
            return resp.read().strip() == b"OK"
    except OSError:
        return False
