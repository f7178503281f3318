"""Links into the MLflow UI that open in its "Model training" view.

MLflow 3 opens an experiment in its GenAI view (traces, a "Detect Issues" pop-up) unless the link
asks for the other one: the UI's hash router reads `workflowType` from the query after the route,
`#/experiments/1?workflowType=machine_learning`; a query before the `#` is ignored. The sidebar's
GenAI / Model training switch changes the view, and the browser remembers that choice.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from mlflow import MlflowClient

from runner.tracking.store import artifact_root, sqlite_path

LOCAL_UI = "http://127.0.0.1:5000"  # where `mgrun ui` serves a local store by default
VIEW = "workflowType=machine_learning"
LISTED = 10  # experiments named in `mgrun ui`'s banner


def experiment_url(base: str, experiment_id: str) -> str:
    """The experiment's runs, in the Model training view of the UI at `base`."""
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}?{VIEW}"


def run_url(base: str, experiment_id: str, run_id: str) -> str:
    """The run's page, in the Model training view of the UI at `base`."""
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}?{VIEW}"


def ui_base(uri: str) -> str | None:
    """Where the UI of the tracking URI `uri` is: the server itself for http(s), `mgrun ui`'s
    default address for a local store, None when mgrun cannot tell (e.g. databricks)."""
    if urlparse(uri).scheme in ("http", "https"):
        return uri.split("?", 1)[0].rstrip("/")
    return LOCAL_UI if artifact_root(uri) is not None else None


def browse_line(uri: str, explicit_uri: bool, experiment_id: str, run_id: str | None = None) -> str:
    """The `browse it:` line a command prints: how to open the run (or, without `run_id`, the
    experiment) in the UI. A local store needs `mgrun ui` running at its default address."""
    base = ui_base(uri)
    if base is None:
        where = f"experiment {experiment_id}" + (f", run {run_id}" if run_id else "")
        return f"browse it: {where} in the MLflow UI of {uri}"
    url = run_url(base, experiment_id, run_id) if run_id else experiment_url(base, experiment_id)
    if urlparse(uri).scheme in ("http", "https"):
        return f"browse it: {url}"
    ui = "mgrun ui" + (f" --tracking-uri {uri}" if explicit_uri else "")
    return f"browse it: {ui}, then open {url}"


def ui_banner(uri: str, host: str, port: int) -> str:
    """What `mgrun ui` prints: its address and a Model-training link per experiment."""
    base = f"http://{_browsable(host)}:{port}"
    lines = [f"MLflow UI on {base} (Ctrl-C stops it)"]
    experiments = _experiments(uri)
    if experiments:
        lines.append("experiments, opened in the Model training view:")
        width = max(len(name) for name, _ in experiments)
        lines += [f"  {name:<{width}}  {experiment_url(base, eid)}" for name, eid in experiments]
    return "\n".join(lines)


def _browsable(host: str) -> str:
    """An address a browser on this machine can open for a server bound to `host`."""
    if host in ("0.0.0.0", "::", ""):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def _experiments(uri: str) -> list[tuple[str, str]]:
    """(name, id) of the store's active experiments, most recently updated first; none when the
    store does not exist yet (opening a sqlite path would create it) or cannot be read."""
    db = sqlite_path(uri)
    if db is not None and not Path(db).is_file():
        return []
    try:
        found = MlflowClient(uri).search_experiments(
            max_results=LISTED, order_by=["last_update_time DESC"]
        )
    except Exception:  # the banner must not keep the UI from starting
        return []
    return [(e.name, e.experiment_id) for e in found]
