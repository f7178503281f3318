"""Where runs are recorded: the tracking URI a command uses, where a local store keeps its
artifacts, and the argv of a local `mlflow server` or UI on it.

With a sqlite store, artifacts live in `mlruns/` next to the database file, as with MLflow's own
default (`sqlite:///mlflow.db` and `./mlruns` in the working directory).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import sqlite3
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import mlflow

from runner.errors import BackendError
from runner.interrupts import protected
from runner.redact import mask_uri


def resolve_tracking_uri(cli_uri: str | None, config_uri: str | None) -> str:
    """--tracking-uri, then MLFLOW_TRACKING_URI, then tracking.uri, then MLflow's own default
    (`sqlite:///mlflow.db` here, or a `./mlruns` file store that already holds runs). Sqlite
    paths come back absolute, so every process and `mgrun ui` agree on the file."""
    uri = cli_uri or os.environ.get("MLFLOW_TRACKING_URI") or config_uri
    if not uri:
        return mlflow.get_tracking_uri()  # nothing set in-process, so this is MLflow's default
    db = sqlite_path(uri)
    query = "".join(uri.partition("?")[1:])
    return f"sqlite:///{os.path.abspath(db)}{query}" if db else uri


def resolve_experiment(cli: str | None, config_experiment: str | None, config_name: str) -> str:
    """--experiment, then tracking.experiment, then the config's name."""
    return cli or config_experiment or config_name


def sqlite_path(uri: str) -> str | None:
    """The database file of a `sqlite:///` URI; None for other URIs and in-memory databases."""
    if not uri.startswith("sqlite:///"):
        return None
    path = unquote(uri[len("sqlite:///") :].split("?", 1)[0])
    return None if path in ("", ":memory:") else path


def artifact_root(uri: str) -> str | None:
    """Where a local store keeps artifacts: `mlruns/` beside a sqlite file, the directory of a
    file store, MLflow's `./mlruns` for other databases; None for servers, which decide."""
    if db := sqlite_path(uri):
        return str(Path(db).resolve().parent / "mlruns")
    scheme = urlparse(uri).scheme
    if scheme in ("", "file"):
        return str(Path(unquote(urlparse(uri).path)).resolve())
    if scheme.split("+")[0] in ("postgresql", "mysql", "mssql"):
        return os.path.abspath("mlruns")
    return None


@contextmanager
def locked(directory: Path) -> Iterator[None]:
    """An exclusive lock between processes, held on the directory itself: no lock file."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def prepare_sqlite(uri: str) -> Path | None:
    """The database file of a sqlite store that can keep runs, created if missing; None for
    other stores. Refuses, at once and in one line, an in-memory database (the runs would go
    with the process) and a place that cannot be written (MLflow would retry for minutes).
    A new file is built under a temporary name and moved into place complete, so an interrupt
    while MLflow creates its tables never leaves a broken store behind."""
    if not uri.startswith("sqlite:"):
        return None
    db = sqlite_path(uri)
    if db is None:
        raise BackendError(
            f"{uri}: an in-memory database loses every run when mgrun exits; "
            "use a file, e.g. --tracking-uri sqlite:///mlflow.db"
        )
    path = Path(db).resolve()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _probe_writable(path.parent)
        if path.exists() and not os.access(path, os.W_OK):
            raise PermissionError(f"{path} is read-only")
    except OSError as exc:
        raise BackendError(
            f"{uri}: cannot use the tracking store: it cannot be written there "
            f"({exc.strerror or exc}); choose a writable place with --tracking-uri"
        ) from None
    with locked(path.parent):  # one creator at a time; the others then find the file
        if not path.exists():
            _create(uri, path)
    return path


def _probe_writable(directory: Path) -> None:
    probe = directory / f".mgrun-probe-{os.getpid()}"
    fd = os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    os.close(fd)
    probe.unlink()


_SHM = Path("/dev/shm")


def _create(uri: str, path: Path) -> None:
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    for stale in path.parent.glob(f".{path.name}.creating-*"):  # an earlier creator was killed
        stale.unlink(missing_ok=True)
    tmp = path.with_name(f".{path.name}.creating-{os.getpid()}")
    # MLflow's schema migrations commit (and fsync) dozens of times: on disk that takes seconds,
    # in memory-backed /dev/shm a fraction. The finished file is copied beside its place, synced
    # once, and moved into place.
    scratch = Path(tempfile.mkdtemp(prefix="mgrun-store-", dir=_SHM if _SHM.is_dir() else None))
    try:
        SqlAlchemyStore(f"sqlite:///{scratch / 'mlflow.db'}", artifact_root(uri)).engine.dispose()
        # Write-ahead logging, kept in the file: a commit is one append and one sync instead of a
        # rollback journal's several, and readers (the UI) never block the writer.
        with closing(sqlite3.connect(scratch / "mlflow.db")) as con:
            con.execute("PRAGMA journal_mode=WAL")
        shutil.copyfile(scratch / "mlflow.db", tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        tmp.unlink(missing_ok=True)


def check_server(uri: str, timeout: float = 5.0) -> None:
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


class Retrying:
    """An MlflowClient whose calls are `protected` from interrupts and tried again, with a
    growing pause, for up to `patience` seconds while sqlite answers "database is locked"
    (another process holds the write lock longer than sqlite's own busy timeout, or two
    transactions would deadlock)."""

    def __init__(self, client: Any, patience: float = 60.0):
        self._client, self._patience = client, patience

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            deadline, pause = time.monotonic() + self._patience, 0.05
            while True:
                try:
                    with protected():  # Ctrl-C waits: a write cut short keeps sqlite locked
                        return attr(*args, **kwargs)
                except Exception as exc:
                    if "database is locked" not in str(exc) or time.monotonic() > deadline:
                        raise
                time.sleep(pause)
                pause = min(pause * 2, 1.0)

        return call
