"""MLflow behind a small API: a `Tracker` writes complete trial records and nothing else.

Runs are addressed by id through one `MlflowClient` (no fluent active run), so a sweep's parent
process can keep a parent run and many child runs open at once.
"""

from __future__ import annotations

import getpass
import os
import socket
import tempfile
import time
import traceback as tb
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.utils import validation as limits

from runner.errors import BackendError
from runner.record import TrialRecord
from runner.tracking.model import log_model
from runner.tracking.store import artifact_root, check_server, locked, sqlite_path

STATUSES = ("FINISHED", "FAILED", "KILLED")
HOST = socket.gethostname()


@dataclass
class RunGuard:
    """How `run_guard` ends the run when its block completes; set by the block."""

    status: str = "FINISHED"
    reason: str | None = None
    traceback: str | None = None


@contextmanager
def run_guard(tracker: Tracker, run_id: str) -> Iterator[RunGuard]:
    """End the run however its block ends: FINISHED (or the guard's status), FAILED with
    error.txt on an exception, KILLED on Ctrl-C or exit. Exceptions propagate."""
    guard = RunGuard()
    try:
        yield guard
    except (KeyboardInterrupt, SystemExit) as exc:
        tracker.end_run(run_id, "KILLED", f"interrupted ({type(exc).__name__})", tb.format_exc())
        raise
    except BaseException as exc:
        tracker.end_run(run_id, "FAILED", f"{type(exc).__name__}: {exc}", tb.format_exc())
        raise
    tracker.end_run(run_id, guard.status, guard.reason, guard.traceback)


class Tracker:
    """One experiment in one tracking store; creates both (in this process) when missing."""

    def __init__(self, uri: str, experiment_name: str):
        self.uri, self.experiment_name = uri, experiment_name
        if urlparse(uri).scheme in ("http", "https"):
            check_server(uri)
        try:
            # Before the client: its store would create a fresh database with artifacts in ./mlruns.
            exp = self._get_or_create_experiment()
            self.client = MlflowClient(uri)
        except Exception as exc:  # whatever the store raised, it cannot be used
            text = exc.message if isinstance(exc, MlflowException) else str(exc)
            raise BackendError(f"{uri}: cannot use the tracking store: {text.strip()}") from exc
        if exp.lifecycle_stage != "active":
            raise BackendError(
                f"{uri}: experiment {experiment_name!r} is deleted; restore it (mlflow experiments "
                f"restore --experiment-id {exp.experiment_id}) or choose another with --experiment"
            )
        self.experiment_id: str = exp.experiment_id

    def _get_or_create_experiment(self) -> Any:
        db = sqlite_path(self.uri)
        if db is None:
            return _get_or_create(MlflowClient(self.uri), self.experiment_name)
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

        Path(db).parent.mkdir(parents=True, exist_ok=True)
        # Processes opening one fresh file at once would run MLflow's schema migrations
        # concurrently and leave the database broken ("table _alembic_tmp_... already exists").
        with locked(Path(db).parent):
            store = SqlAlchemyStore(self.uri, artifact_root(self.uri))
            return _get_or_create(store, self.experiment_name)

    def start_run(
        self, name: str, tags: Mapping[str, str] | None = None, parent_run_id: str | None = None
    ) -> str:
        """Create a RUNNING run; its owner (host, pid) is recorded for `close_stale_running`."""
        all_tags = {
            "mlflow.user": getpass.getuser(),
            "mlflow.source.name": "mgrun",
            "mgrun.host": HOST,
            "mgrun.pid": str(os.getpid()),
            **(tags or {}),
        }
        if parent_run_id:
            all_tags["mlflow.parentRunId"] = parent_run_id
        run = self.client.create_run(self.experiment_id, run_name=name, tags=all_tags)
        return run.info.run_id

    def log_params(self, run_id: str, flat: Mapping[str, Any]) -> None:
        """Every param, stringified (lists as `[16, 16]`), in as few calls as MLflow allows."""
        self._batch(run_id, params=_params(flat))

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        """Set (or overwrite) run tags, values stringified."""
        self._batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_metrics(self, run_id: str, metrics: Sequence[tuple[str, float, int]]) -> None:
        """(key, value, step) points, up to 1000 per call, all stamped with one timestamp."""
        self._batch(run_id, metrics=_metrics(metrics))

    def _batch(
        self,
        run_id: str,
        metrics: Sequence[Metric] = (),
        params: Sequence[Param] = (),
        tags: Sequence[RunTag] = (),
    ) -> None:
        """One log_batch call per MLflow's limits: 100 params and tags, 1000 entities in all."""
        m, p, t = list(metrics), list(params), list(tags)
        keyed, total = limits.MAX_PARAMS_TAGS_PER_BATCH, limits.MAX_ENTITIES_PER_BATCH
        while m or p or t:
            ps, p = p[:keyed], p[keyed:]
            ts, t = t[: keyed - len(ps)], t[keyed - len(ps) :]
            ms, m = m[: total - len(ps) - len(ts)], m[total - len(ps) - len(ts) :]
            self.client.log_batch(run_id, metrics=ms, params=ps, tags=ts)

    def log_files(self, run_id: str, files: Mapping[str, str | bytes]) -> None:
        """Write {relative path: content} into the run's artifacts with one upload."""
        with tempfile.TemporaryDirectory() as tmp:
            _write(tmp, files)
            self.client.log_artifacts(run_id, tmp)

    def log_record(
        self, run_id: str, record: TrialRecord, *, params: bool = True, metrics: bool = True
    ) -> str | None:
        """Everything a trial's run holds: params, metrics, tags, the record's files and, for a
        FINISHED result, the pyfunc model, whose id is returned. `params`/`metrics` False skip
        what was streamed already. Writes what it is handed; computes nothing of the trial."""
        result = record.result
        assert record.files is not None, "draw the files before logging the record"
        step = result.metrics[-1][2] if result.metrics else 0
        seen = {key for key, _, _ in result.metrics}
        points = [
            *(result.metrics if metrics else ()),
            *((k, v, step) for k, v in result.final_metrics.items() if k not in seen),
        ]
        tags = {"mgrun.config_hash": result.config_hash}
        if result.fingerprint:
            tags["mgrun.fingerprint"] = result.fingerprint
        self._batch(  # one call (or as few as MLflow allows) for all three
            run_id,
            metrics=_metrics(points),
            params=_params(record.params) if params else [],
            tags=[RunTag(k, v) for k, v in tags.items()],
        )
        with tempfile.TemporaryDirectory() as tmp:
            run_dir = _write(Path(tmp, "run"), record.files)
            self.client.log_artifacts(run_id, str(run_dir))
            if result.status != "FINISHED":
                return None
            example = pd.DataFrame([list(r) for r in record.example], columns=record.feature_names)
            model_json = run_dir / "model.json"
            return log_model(self.client, self.experiment_id, run_id, model_json, example, step)

    def end_run(
        self, run_id: str, status: str, reason: str | None = None, traceback: str | None = None
    ) -> None:
        """Terminate the run; unless FINISHED, also `error.txt` and the one-line `mgrun.error`."""
        assert status in STATUSES, status
        if status != "FINISHED":
            reason = (reason or "").strip() or ("interrupted" if status == "KILLED" else "failed")
            self.client.set_tag(run_id, "mgrun.error", reason.splitlines()[0][:500])
            text = f"{reason}\n\n{traceback}" if traceback else reason + "\n"
            self.client.log_text(run_id, text, "error.txt")
        self.client.set_terminated(run_id, status)

    def run_metrics(self, run_id: str) -> dict[str, float]:
        """The run's latest value of every metric."""
        return dict(self.client.get_run(run_id).data.metrics)

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

    def finished_runs_by_hash(self) -> dict[str, str]:
        """{mgrun.config_hash: id of the newest FINISHED run with it} in this experiment."""
        found: dict[str, str] = {}
        for run in self._runs("FINISHED"):
            key = run.data.tags.get("mgrun.config_hash")
            if key:
                found.setdefault(key, run.info.run_id)
        return found

    def close_stale_running(self) -> list[str]:
        """End as KILLED the RUNNING runs whose owning process on this host has exited (a crash
        or SIGKILL); runs owned elsewhere or by a live process are left alone. Returns their ids."""
        closed = []
        for run in self._runs("RUNNING"):
            tags = run.data.tags
            pid = tags.get("mgrun.pid", "")
            if tags.get("mgrun.host") != HOST or not pid.isdigit() or _alive(int(pid)):
                continue
            self.client.set_tag(
                run.info.run_id,
                "mgrun.error",
                f"left RUNNING by process {pid} on {HOST}, which exited; closed as KILLED",
            )
            self.client.set_terminated(run.info.run_id, "KILLED")
            closed.append(run.info.run_id)
        return closed


def _get_or_create(store: Any, name: str) -> Any:
    """The experiment `name` in `store` (a client or a store), created if missing."""
    exp = store.get_experiment_by_name(name)
    if exp is None:
        try:
            store.create_experiment(name)
        except MlflowException as exc:  # another process created it since we looked
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        exp = store.get_experiment_by_name(name)
    return exp


def _write(root: str | Path, files: Mapping[str, str | bytes]) -> Path:
    for rel, content in files.items():
        path = Path(root, rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    return Path(root)


def _metrics(points: Sequence[tuple[str, float, int]]) -> list[Metric]:
    """(key, value, step) points as MLflow metrics, all stamped with one timestamp."""
    now = int(time.time() * 1000)
    return [Metric(k, float(v), now, int(s)) for k, v, s in points]


def _params(flat: Mapping[str, Any]) -> list[Param]:
    return [Param(k, _param_value(v)) for k, v in flat.items()]


def _param_value(value: Any) -> str:
    text = str(list(value) if isinstance(value, tuple) else value)
    cap = limits.MAX_PARAM_VAL_LENGTH
    return text if len(text) <= cap else text[: cap - 3] + "..."


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True
