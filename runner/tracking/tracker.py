"""MLflow behind a small API: a `Tracker` writes complete trial records and nothing else.

Runs are addressed by id through one `MlflowClient` (no fluent active run), so a sweep's parent
process can keep a parent run and many child runs open at once.
"""

from __future__ import annotations

import tempfile
import traceback as tb
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.utils import validation as limits

from runner.errors import BackendError
from runner.interrupts import protected
from runner.record import TrialRecord
from runner.redact import mask_uri
from runner.tracking import entities as ent
from runner.tracking.bulk import BulkWriter
from runner.tracking.claims import Claims
from runner.tracking.model import log_model
from runner.tracking.store import (
    Retrying,
    artifact_root,
    check_server,
    locked,
    prepare_sqlite,
)
from runner.tracking.stored import StoredRuns

STATUSES = ("FINISHED", "FAILED", "KILLED")


@dataclass
class RunGuard:
    """How `run_guard` ends the run when its block completes; set by the block."""

    status: str = "FINISHED"
    reason: str | None = None
    traceback: str | None = None
    end_time: int | None = None  # ms since the epoch; None: now
    ended: bool = False  # the block ended the run itself


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
    if not guard.ended:
        tracker.end_run(run_id, guard.status, guard.reason, guard.traceback, guard.end_time)


class Tracker(StoredRuns):
    """One experiment in one tracking store; creates both (in this process) when missing."""

    def __init__(self, uri: str, experiment_name: str):
        self.uri, self.experiment_name = uri, experiment_name
        if urlparse(uri).scheme in ("http", "https"):
            check_server(uri)
        try:
            # Before the client: its store would create a fresh database with artifacts in ./mlruns.
            exp = self._get_or_create_experiment()
            client = MlflowClient(uri)
            self.client = Retrying(client)
            bulk = BulkWriter.of(client)  # sqlite: a new run's record in one transaction
            self.bulk = Retrying(bulk) if bulk else None
        except BackendError:
            raise
        except Exception as exc:  # whatever the store raised, it cannot be used
            text = exc.message if isinstance(exc, MlflowException) else str(exc)
            text = text.replace(uri, mask_uri(uri)).strip()
            raise BackendError(f"{mask_uri(uri)}: cannot use the tracking store: {text}") from exc
        if exp.lifecycle_stage != "active":
            raise BackendError(
                f"{mask_uri(uri)}: experiment {experiment_name!r} is deleted; restore it (mlflow "
                f"experiments restore --experiment-id {exp.experiment_id}) or choose another with "
                "--experiment"
            )
        self.experiment_id: str = exp.experiment_id
        self.claims = Claims(uri, self.experiment_id)  # trials this process is training

    @protected()
    def _get_or_create_experiment(self) -> Any:
        db = prepare_sqlite(self.uri)
        if db is None:
            return _get_or_create(MlflowClient(self.uri), self.experiment_name)
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

        # The file exists complete; the lock keeps two processes from creating one experiment.
        with locked(db.parent):
            store = SqlAlchemyStore(self.uri, artifact_root(self.uri))
            return _get_or_create(store, self.experiment_name)

    def start_run(
        self, name: str, tags: Mapping[str, str] | None = None, parent_run_id: str | None = None
    ) -> str:
        """Create a RUNNING run; its owner (host, pid) is recorded for `close_stale_running`."""
        all_tags = ent.owner(parent_run_id) | dict(tags or {})
        return self.client.create_run(self.experiment_id, run_name=name, tags=all_tags).info.run_id

    def log_params(self, run_id: str, flat: Mapping[str, Any]) -> None:
        """Every param, stringified (lists as `[16, 16]`), in as few calls as MLflow allows."""
        self._batch(run_id, params=ent.params(flat))

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        """Set (or overwrite) run tags, values stringified."""
        self._batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_metrics(self, run_id: str, metrics: Sequence[tuple[str, float, int]]) -> None:
        """(key, value, step) points, up to 1000 per call, all stamped with one timestamp."""
        self._batch(run_id, metrics=ent.metrics(metrics))

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

    def log_files(
        self, run_id: str, files: Mapping[str, str | bytes], artifact_uri: str | None = None
    ) -> None:
        """Write {relative path: content} into the run's artifacts: straight into the directory
        of a local store, else with one upload."""
        uri = artifact_uri or self.client.get_run(run_id).info.artifact_uri
        local = urlparse(uri)
        if local.scheme in ("", "file"):
            ent.write(unquote(local.path), files)
            return
        with tempfile.TemporaryDirectory() as tmp:
            ent.write(tmp, files)
            self.client.log_artifacts(run_id, tmp)

    def log_record(
        self, run_id: str, record: TrialRecord, *, params: bool = True, metrics: bool = True
    ) -> str | None:
        """Everything a trial's run holds: params, metrics, tags, the record's files and, for a
        full record of a FINISHED trial, the pyfunc model, whose id is returned.
        `params`/`metrics` False skip what was streamed already. Writes what it is handed."""
        assert record.files is not None, "draw the files before logging the record"
        self._batch(  # one call (or as few as MLflow allows) for all three
            run_id,
            metrics=ent.metrics(ent.points(record, metrics)),
            params=ent.params(record.params) if params else [],
            tags=[RunTag(k, v) for k, v in ent.record_tags(record).items()],
        )
        self.log_files(run_id, record.files)
        return self._model(run_id, record)

    def record_run(
        self,
        name: str,
        record: TrialRecord,
        parent_run_id: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> tuple[str, str | None]:
        """A trial that is over as one run, in as few store calls as the store allows: created
        with its tags at its real start time, its files, the model of a full record, then params
        and metrics, ended with its status at its real end time (on sqlite the last three in one
        transaction). Returns the run's id and, when the store failed part way (the run then
        ends FAILED), what went wrong. Ctrl-C ends the run KILLED and propagates."""
        assert record.files is not None, "draw the files before logging the record"
        result = record.result
        all_tags = ent.owner(parent_run_id) | ent.record_tags(record) | dict(tags or {})
        run = self.client.create_run(
            self.experiment_id, start_time=record.start_ms, tags=all_tags, run_name=name
        ).info
        try:
            with run_guard(self, run.run_id) as guard:
                self.log_files(run.run_id, record.files, run.artifact_uri)
                self._model(run.run_id, record)
                points, params = ent.metrics(ent.points(record, True)), ent.params(record.params)
                if self.bulk is not None and result.status == "FINISHED":
                    self.bulk.write(run.run_id, points, params, end=record.end_ms)
                    guard.ended = True
                else:
                    self._batch(run.run_id, metrics=points, params=params)
                    guard.status = "FINISHED" if result.status == "FINISHED" else "FAILED"
                    guard.reason, guard.traceback = result.reason, result.traceback
                    guard.end_time = record.end_ms
        except Exception as exc:  # ended FAILED by the guard: one trial's record, not the caller's
            return run.run_id, f"{type(exc).__name__}: {exc}"
        return run.run_id, None

    def continue_run(
        self, run_id: str, record: TrialRecord, since: int, tags: Mapping[str, str]
    ) -> str | None:
        """A trial continued from step `since` (halving's next rung), onto the ended run of its
        earlier steps: the new points, the final metrics at its last step, tags and files (which
        replace the earlier ones), ended again with its status at its real end time. Returns
        what went wrong when the store failed part way (the run then ends FAILED)."""
        assert record.files is not None, "draw the files before logging the record"
        result = record.result
        points = [p for p in ent.points(record, True) if p[2] >= since]
        all_tags = ent.record_tags(record) | dict(tags)
        try:
            with run_guard(self, run_id) as guard:
                self._batch(
                    run_id,
                    metrics=ent.metrics(points),
                    tags=[RunTag(k, v) for k, v in all_tags.items()],
                )
                self.log_files(run_id, record.files)
                self._model(run_id, record)
                guard.status = "FINISHED" if result.status == "FINISHED" else "FAILED"
                guard.reason, guard.traceback = result.reason, result.traceback
                guard.end_time = record.end_ms
        except Exception as exc:  # ended FAILED by the guard: one trial's record, not the caller's
            return f"{type(exc).__name__}: {exc}"
        return None

    def add_full(self, run_id: str, record: TrialRecord) -> str | None:
        """Give an ended run of a lean record what a full one has: the pictures and the model."""
        assert record.full and record.files is not None
        self.log_files(run_id, record.files)
        model_id = self._model(run_id, record)
        self.set_tags(run_id, {"mgrun.record": "full"})
        return model_id

    def _model(self, run_id: str, record: TrialRecord) -> str | None:
        result = record.result
        if not record.full or result.status != "FINISHED":
            return None
        assert record.files is not None
        step = result.metrics[-1][2] if result.metrics else 0
        example = pd.DataFrame([list(r) for r in record.example], columns=record.feature_names)
        with tempfile.TemporaryDirectory() as tmp:
            model_json = Path(tmp, "model.json")
            model_json.write_bytes(record.files["model.json"])
            return log_model(self.client, self.experiment_id, run_id, model_json, example, step)

    def end_run(
        self,
        run_id: str,
        status: str,
        reason: str | None = None,
        traceback: str | None = None,
        end_time: int | None = None,
    ) -> None:
        """Terminate the run; unless FINISHED, then also the one-line `mgrun.error` and
        `error.txt` (after: a run whose error cannot be written is still not left RUNNING)."""
        assert status in STATUSES, status
        self.client.set_terminated(run_id, status, end_time)
        if status != "FINISHED":
            line, text = ent.error(status, reason, traceback)
            self.client.set_tag(run_id, "mgrun.error", line)
            self.client.log_text(run_id, text, "error.txt")


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
