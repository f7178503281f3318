"""MLflow behind a small API: the only runner module that imports mlflow.

Runs are addressed by id through one `MlflowClient` (no fluent active run), so a sweep's parent
process can keep a parent run and many child runs open at once. With a sqlite store, artifacts
live in `mlruns/` next to the database file, as with MLflow's own default (`sqlite:///mlflow.db`
and `./mlruns` in the working directory).
"""

from __future__ import annotations

import fcntl
import getpass
import json
import logging
import os
import socket
import sys
import tempfile
import time
import traceback as tb
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import LoggedModelOutput, LoggedModelStatus, Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.models import Model, ModelSignature
from mlflow.types import ColSpec, Schema
from mlflow.utils import validation as limits

import engine
from runner.config import flatten
from runner.errors import BackendError
from runner.redact import mask_uri

STATUSES = ("FINISHED", "FAILED", "KILLED")
PYFUNC_FILE = Path(__file__).with_name("pyfunc_model.py")
ENGINE_DIR = Path(engine.__file__).parent
HOST = socket.gethostname()
# An INFO line per logged model ("Validating input example ...") would drown a sweep's progress.
logging.getLogger("mlflow.pyfunc").setLevel(logging.WARNING)
# Outputs only: an input schema would make MLflow reject feature columns given by position.
PREDICTIONS = ModelSignature(outputs=Schema([ColSpec("long", "label"), ColSpec("string", "class")]))


def resolve_tracking_uri(cli_uri: str | None, config_uri: str | None) -> str:
    """--tracking-uri, then MLFLOW_TRACKING_URI, then tracking.uri, then MLflow's own default
    (`sqlite:///mlflow.db` here, or a `./mlruns` file store that already holds runs). Sqlite
    paths come back absolute, so every process and `mgrun ui` agree on the file."""
    uri = cli_uri or os.environ.get("MLFLOW_TRACKING_URI") or config_uri
    if not uri:
        return mlflow.get_tracking_uri()  # nothing set in-process, so this is MLflow's default
    db = _sqlite_path(uri)
    query = "".join(uri.partition("?")[1:])
    return f"sqlite:///{os.path.abspath(db)}{query}" if db else uri


def resolve_experiment(cli: str | None, config_experiment: str | None, config_name: str) -> str:
    """--experiment, then tracking.experiment, then the config's name."""
    return cli or config_experiment or config_name


def _sqlite_path(uri: str) -> str | None:
    """The database file of a `sqlite:///` URI; None for other URIs and in-memory databases."""
    if not uri.startswith("sqlite:///"):
        return None
    path = unquote(uri[len("sqlite:///") :].split("?", 1)[0])
    return None if path in ("", ":memory:") else path


def artifact_root(uri: str) -> str | None:
    """Where a local store keeps artifacts: `mlruns/` beside a sqlite file, the directory of a
    file store, MLflow's `./mlruns` for other databases; None for servers, which decide."""
    if db := _sqlite_path(uri):
        return str(Path(db).resolve().parent / "mlruns")
    scheme = urlparse(uri).scheme
    if scheme in ("", "file"):
        return str(Path(unquote(urlparse(uri).path)).resolve())
    if scheme.split("+")[0] in ("postgresql", "mysql", "mssql"):
        return os.path.abspath("mlruns")
    return None


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
            _check_server(uri)
        try:
            # Before the client: its store would create a fresh database with artifacts in ./mlruns.
            exp = self._get_or_create_experiment()
            self.client = MlflowClient(uri)
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

    def _get_or_create_experiment(self) -> Any:
        db = _sqlite_path(self.uri)
        if db is None:
            return _get_or_create(MlflowClient(self.uri), self.experiment_name)
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

        Path(db).parent.mkdir(parents=True, exist_ok=True)
        # Processes opening one fresh file at once would run MLflow's schema migrations
        # concurrently and leave the database broken ("table _alembic_tmp_... already exists").
        with _locked(Path(db).parent):
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

    def log_trial(
        self,
        run_id: str,
        config,
        result,
        dataset,
        *,
        files: Mapping[str, bytes] | None = None,
        params: bool = True,
        metrics: bool = True,
    ) -> str | None:
        """Everything a trial's run holds: params, metrics, tags, the files of
        `runner.artifacts.trial_files` (pass `files` if a worker built them) and, for a FINISHED
        result, the pyfunc model, whose id is returned. `params`/`metrics` False skip what was
        streamed already."""
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
            params=_params(flatten(config.to_dict())) if params else [],
            tags=[RunTag(k, v) for k, v in tags.items()],
        )
        if files is None:
            from runner.artifacts import trial_files  # matplotlib: only when a run is logged

            files = trial_files(config, result, dataset)
        with tempfile.TemporaryDirectory() as tmp:
            run_dir = _write(Path(tmp, "run"), files)
            self.client.log_artifacts(run_id, str(run_dir))
            if result.status != "FINISHED":
                return None
            example = _example(files, dataset)
            return self._log_model(run_id, run_dir / "model.json", example, Path(tmp, "m"), step)

    def _log_model(
        self, run_id: str, model_json: Path, example: pd.DataFrame, path: Path, step: int
    ) -> str:
        """The pyfunc model as an MLflow 3 logged model of this run, linked to it at `step`."""
        logged = self.client.create_logged_model(
            self.experiment_id, name="model", source_run_id=run_id, model_type="mgrun.MLP"
        )
        try:
            mlflow.pyfunc.save_model(
                str(path),
                python_model=str(PYFUNC_FILE),
                artifacts={"model": str(model_json)},
                code_paths=[str(ENGINE_DIR)],
                pip_requirements=[f"mlflow=={mlflow.__version__}", f"pandas=={version('pandas')}"],
                signature=PREDICTIONS,
                input_example=example,
                mlflow_model=Model(
                    artifact_path=logged.artifact_location,
                    run_id=run_id,
                    model_uuid=logged.model_id,
                    model_id=logged.model_id,
                ),
            )
            self.client.log_model_artifacts(logged.model_id, str(path))
            self.client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step)])
        except BaseException:
            self.client.finalize_logged_model(logged.model_id, LoggedModelStatus.FAILED)
            raise
        self.client.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
        return logged.model_id

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


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """An exclusive lock between processes, held on the directory itself: no lock file."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _write(root: str | Path, files: Mapping[str, str | bytes]) -> Path:
    for rel, content in files.items():
        path = Path(root, rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    return Path(root)


def _example(files: Mapping[str, bytes], dataset) -> pd.DataFrame:
    """A few training rows as the model takes them: raw, before any standardization."""
    rows = [list(x) for x in dataset.X_train[:5]]
    if scale := json.loads(files["model.json"]).get("scale"):
        mean, std = scale["mean"], scale["std"]
        rows = [[v * s + m for v, m, s in zip(r, mean, std, strict=True)] for r in rows]
    return pd.DataFrame(rows, columns=list(dataset.feature_names))


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


def _check_server(uri: str, timeout: float = 5.0) -> None:
    """Fail in seconds, not after MLflow's minutes of retries, when no server answers."""
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout) as resp:
            resp.read()
    except OSError as exc:
        raise BackendError(
            f"{mask_uri(uri)}: no MLflow tracking server answers ({exc}); start one with "
            "`mlflow server` (see `mgrun ui --help`) or fix --tracking-uri / MLFLOW_TRACKING_URI"
        ) from exc


def server_command(
    backend_uri: str,
    artifacts: str,
    host: str = "127.0.0.1",
    port: int = 5000,
    default_artifact_root: str | None = None,
) -> list[str]:
    """argv of a lean `mlflow server`: one worker, no background job runner (huey), artifacts
    proxied to and from `artifacts`, so clients need no access to the artifact store."""
    argv = ["env", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false", sys.executable, "-m", "mlflow"]
    argv += ["server", "--backend-store-uri", backend_uri]
    argv += ["--serve-artifacts", "--artifacts-destination", artifacts]
    if default_artifact_root:
        argv += ["--default-artifact-root", default_artifact_root]
    return argv + ["--host", host, "--port", str(port), "--workers", "1"]


def ui_command(uri: str, host: str = "127.0.0.1", port: int = 5000) -> list[str]:
    """argv of the MLflow UI on the local store `uri`. Experiments created in the UI also keep
    their artifacts in the store's artifact root, where `Tracker` can write to them."""
    root = artifact_root(uri)
    if root is None:
        raise BackendError(
            f"{mask_uri(uri)}: this is already a tracking server; open it in a browser. `mgrun ui` "
            "serves local stores (sqlite:///..., file:...)"
        )
    return server_command(uri, root, host, port, default_artifact_root=root)
