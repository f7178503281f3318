"""Worker processes end when the sweep that started them dies.

A `mgrun sweep` killed by SIGKILL (or an unhandled SIGHUP) cannot stop its loky workers, which
would train their trials to the end for nobody. `watch_parent` gives a worker a daemon thread
that watches its parent process id and exits the worker once the parent is gone (the orphan is
then adopted by init or a subreaper, so the id changes). Polling is portable and, unlike Linux's
PR_SET_PDEATHSIG, not tied to the parent thread that happened to start the worker.
"""

from __future__ import annotations

import os
import threading
import time

EVERY = 0.25  # seconds between looks at the parent
EXIT_CODE = 70  # any non-zero code: nobody is left to read it

_watching = False


def watch_parent(parent: int | None) -> None:
    """In a worker process started on this machine by process `parent`: exit as soon as `parent`
    dies, or at once if it is dead already. Does nothing when `parent` is None or this process
    (trials run in-process), or is alive but not this process's parent. Starts one thread per
    process, however many trials it runs."""
    global _watching
    if _watching or parent is None or parent == os.getpid():
        return
    if os.getppid() != parent:
        if not _alive(parent):
            os._exit(EXIT_CODE)  # orphaned before the first trial began
        return
    _watching = True
    threading.Thread(target=_watch, args=(parent,), name="mgrun-lifeline", daemon=True).start()


def _watch(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(EVERY)
    os._exit(EXIT_CODE)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True
