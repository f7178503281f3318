"""What a resolved config is called by: its dotted keys (flat params), its identity (a hash),
and the documentation of every key."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from runner.config.run import RunConfig
from runner.config.schema import describe


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts -> one dict with dotted keys; lists and other leaves stay as they are."""
    out: dict[str, Any] = {}
    for key, value in d.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def config_hash(cfg: RunConfig) -> str:
    """A stable identity of the resolved config: sha256 of its canonical JSON, minus tracking."""
    d = cfg.to_dict()
    del d["tracking"]  # where a run is recorded does not change what it computes
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()


def describe_keys() -> str:
    """Every config key with its default and meaning, one per line (for --help and the README)."""
    rows = describe(RunConfig)
    width = max(len(k) + len(d) for k, d, _ in rows) + 3
    return "\n".join(f"{k}: {d}".ljust(width) + f"  {doc}" for k, d, doc in rows)
