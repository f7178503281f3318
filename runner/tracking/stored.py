"""Reading what a store already holds: finished runs by config hash, a run's files, and the
runs that a dead process left RUNNING."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from runner.tracking.entities import HOST


@dataclass(frozen=True)
class StoredRun:
    """A run already in the store: its id, latest metric values, tags and start (ms)."""

    run_id: str
    metrics: dict[str, float]
    tags: dict[str, str]
    start_time: int = 0


class StoredRuns:
    """Queries on one experiment of a store (mixed into `Tracker`)."""

    client: MlflowClient
    experiment_id: str

    def run_metrics(self, run_id: str) -> dict[str, float]:
        """The run's latest value of every metric."""
        return dict(self.client.get_run(run_id).data.metrics)

    def run_tag(self, run_id: str, key: str) -> str | None:
        """The run's tag `key` as the store holds it now."""
        return self.client.get_run(run_id).data.tags.get(key)

    def _runs(self, status: str) -> Iterator[Any]:
        token = None
        while True:
            page = self.client.search_runs(
                [self.experiment_id],
                f"attributes.status = '{status}'",
                max_results=1000,
                order_by=["attributes.start_time DESC"],
                page_token=token,
            )
            yield from page
            token = page.token
            if not token:
                return

    def finished_runs(self) -> dict[str, StoredRun]:
        """{mgrun.config_hash: the newest FINISHED run with it} in this experiment, in one
        search (no call per run)."""
        found: dict[str, StoredRun] = {}
        for run in self._runs("FINISHED"):
            key = run.data.tags.get("mgrun.config_hash")
            if key and key not in found:
                tags, metrics = dict(run.data.tags), dict(run.data.metrics)
                found[key] = StoredRun(run.info.run_id, metrics, tags, run.info.start_time or 0)
        return found

    def finished_runs_by_hash(self) -> dict[str, str]:
        """{mgrun.config_hash: id of the newest FINISHED run with it} in this experiment."""
        return {key: run.run_id for key, run in self.finished_runs().items()}

    def read_files(self, run_id: str, paths: Sequence[str]) -> dict[str, bytes]:
        """The bytes of some of the run's artifacts, by path; missing ones are left out."""
        found = {}
        with tempfile.TemporaryDirectory() as tmp:
            for path in paths:
                try:
                    local = self.client.download_artifacts(run_id, path, tmp)
                except (MlflowException, OSError):
                    continue
                found[path] = Path(local).read_bytes()
        return found

    def close_stale_running(self) -> list[str]:
        """End as KILLED the RUNNING runs whose owning process on this host has exited (a crash
        or SIGKILL); runs owned elsewhere or by a live process are left alone. Returns their ids."""
        closed = []
        for run in self._runs("RUNNING"):
            tags = run.data.tags
            pid = tags.get("mgrun.pid", "")
            if tags.get("mgrun.host") != HOST or not pid.isdigit() or alive(int(pid)):
                continue
            self.client.set_tag(
                run.info.run_id,
                "mgrun.error",
                f"left RUNNING by process {pid} on {HOST}, which exited; closed as KILLED",
            )
            self.client.set_terminated(run.info.run_id, "KILLED")
            closed.append(run.info.run_id)
        return closed


def alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True
