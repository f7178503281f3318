"""MLflow's store chatter stays off the user's terminal unless MGRUN_VERBOSE=1 asks for it.

Opening a new sqlite store logs `INFO ... Creating initial MLflow database tables...`, `Updating
database tables` and alembic's migration steps: noise to someone who ran `mgrun train`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

import mlflow  # noqa: F401 - mlflow configures its loggers on import, resetting their children

CHATTY = ("mlflow.store.db.utils", "alembic")


def verbose(env: Mapping[str, str] = os.environ) -> bool:
    """MGRUN_VERBOSE set to anything but empty or 0."""
    return env.get("MGRUN_VERBOSE", "").strip() not in ("", "0")


def quiet_store_logs(env: Mapping[str, str] = os.environ) -> None:
    """Warnings and errors only from the store's setup, unless MGRUN_VERBOSE asks for more."""
    level = logging.NOTSET if verbose(env) else logging.WARNING
    for name in CHATTY:
        logging.getLogger(name).setLevel(level)
