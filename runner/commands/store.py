"""Opening the tracking store the way every command that writes runs does."""

from __future__ import annotations

from typing import Any

import typer


def open_tracker(uri: str, experiment: str) -> Any:
    """The store's Tracker for `experiment`, after closing as KILLED the runs that a dead mgrun
    process (SIGKILL, a crash, a lost machine) left RUNNING there."""
    from runner.tracking import Tracker  # mlflow: only once a command records something

    tracker = Tracker(uri, experiment)
    closed = tracker.close_stale_running()
    if closed:
        typer.echo(
            f"closed {len(closed)} run(s) left RUNNING by a dead process as KILLED", err=True
        )
    return tracker
