"""Signals that are never lost: SIGINT, SIGTERM and SIGHUP (a closed terminal) all become one
KeyboardInterrupt, raised where it does no harm.

Python raises KeyboardInterrupt wherever the main thread happens to be. In the middle of a store
write that leaves sqlite locked; inside a weakref callback or a finalizer Python prints "Exception
ignored" and drops it. So the handler records the signal and raises at once only outside
`protected` sections and outside such callbacks; a protected section raises it when its outermost
level ends, and `check()` raises it at a safe point. The record stays until `installed()` ends, so
an interrupt swallowed somewhere is raised again by the next check or protected section.
"""

from __future__ import annotations

import _thread
import signal
import threading
from collections.abc import Iterator
from contextlib import ContextDecorator, contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# Code whose weakref callbacks and finalizers run wherever the collector strikes; an exception
# raised in one is printed and dropped, so the handler waits until the main thread is out of it.
CALLBACK_CODE = ("/sqlalchemy/", "/weakref.py")
RETRY = 0.05  # seconds between attempts to raise an interrupt held back by such code

_received: int | None = None  # the first signal since `installed()` began
_depth = 0  # nesting of protected sections in the main thread
_retrying = False


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _handle(signum: int, frame: FrameType | None) -> None:
    global _received
    if _received is None:
        _received = signum
    if _depth > 0:
        return  # the outermost protected section raises it on leaving
    if _in_callback_code(frame):
        _retry(signum)
        return
    raise KeyboardInterrupt


def _in_callback_code(frame: FrameType | None) -> bool:
    while frame is not None:
        code = frame.f_code
        name = Path(code.co_filename).as_posix()
        if code.co_name == "__del__" or any(part in name for part in CALLBACK_CODE):
            return True
        frame = frame.f_back
    return False


def _retry(signum: int) -> None:
    """Run the handler again a moment later, when the main thread has moved on."""
    global _retrying
    if _retrying:
        return
    _retrying = True

    def again() -> None:
        global _retrying
        _retrying = False
        if _received is not None and signal.getsignal(signum) is _handle:
            _thread.interrupt_main(signum)

    timer = threading.Timer(RETRY, again)
    timer.daemon = True
    timer.start()


def received() -> int | None:
    """The signal number recorded since `installed()` began, if any."""
    return _received


def check() -> None:
    """Raise KeyboardInterrupt if a signal arrived: call it at safe points."""
    if _received is not None:
        raise KeyboardInterrupt


class protected(ContextDecorator):
    """A section (or, as a decorator, a function) that no signal interrupts; an interrupt that
    arrives meanwhile is raised when the outermost section ends. Only the main thread is held."""

    def __enter__(self) -> protected:
        global _depth
        if _in_main_thread():
            _depth += 1
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        global _depth
        if not _in_main_thread():
            return
        _depth -= 1
        if _depth == 0 and _received is not None and not isinstance(exc, KeyboardInterrupt):
            raise KeyboardInterrupt


@contextmanager
def installed() -> Iterator[None]:
    """Handle SIGINT, SIGTERM and SIGHUP as above for the duration of the block, then restore
    the previous handlers. Outside the main thread (where Python allows no handlers) it does
    nothing."""
    global _received, _depth
    if not _in_main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _handle) for sig in SIGNALS}
    _received, _depth = None, 0
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _received, _depth = None, 0
