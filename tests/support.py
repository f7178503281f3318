"""Helpers shared by tests that wait on real processes."""

from __future__ import annotations

import time
from collections.abc import Callable
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
