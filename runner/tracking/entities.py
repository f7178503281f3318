"""A trial record as MLflow entities: tags, params, metric points, error texts and files."""

from __future__ import annotations

import getpass
import os
import socket
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param
from mlflow.utils import validation as limits

from runner.record import TrialRecord

HOST = socket.gethostname()


def owner(parent_run_id: str | None) -> dict[str, str]:
    """Who owns a run: for the UI, and for `close_stale_running` (host, pid)."""
    tags = {
        "mlflow.user": getpass.getuser(),
        "mlflow.source.name": "mgrun",
        "mgrun.host": HOST,
        "mgrun.pid": str(os.getpid()),
    }
    if parent_run_id:
        tags["mlflow.parentRunId"] = parent_run_id
    return tags


def record_tags(record: TrialRecord) -> dict[str, str]:
    result = record.result
    tags = {
        "mgrun.config_hash": result.config_hash,
        "mgrun.record": "full" if record.full else "lean",
    }
    if result.fingerprint:
        tags["mgrun.fingerprint"] = result.fingerprint
    return tags


def points(record: TrialRecord, per_step: bool) -> list[tuple[str, float, int]]:
    """The record's per-step points (capped) and its final metrics at the last step."""
    result = record.result
    step = result.metrics[-1][2] if result.metrics else 0
    seen = {key for key, _, _ in result.metrics}
    finals = [(k, v, step) for k, v in result.final_metrics.items() if k not in seen]
    return [*(record.points if per_step else ()), *finals]


def error(status: str, reason: str | None, traceback: str | None) -> tuple[str, str]:
    """The one-line `mgrun.error` tag and the text of `error.txt`."""
    reason = (reason or "").strip() or ("interrupted" if status == "KILLED" else "failed")
    text = f"{reason}\n\n{traceback}" if traceback else reason + "\n"
    return reason.splitlines()[0][:500], text


def write(root: str | Path, files: Mapping[str, str | bytes]) -> Path:
    for rel, content in files.items():
        path = Path(root, rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    return Path(root)


def metrics(points: Sequence[tuple[str, float, int]]) -> list[Metric]:
    """(key, value, step) points as MLflow metrics, all stamped with one timestamp."""
    now = int(time.time() * 1000)
    return [Metric(k, float(v), now, int(s)) for k, v, s in points]


def params(flat: Mapping[str, Any]) -> list[Param]:
    return [Param(k, param_value(v)) for k, v in flat.items()]


def param_value(value: Any) -> str:
    text = str(list(value) if isinstance(value, tuple) else value)
    cap = limits.MAX_PARAM_VAL_LENGTH
    return text if len(text) <= cap else text[: cap - 3] + "..."
