"""Fixtures shared by the engine and runner tests (plain helpers live in tests/support.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import ROOT


@pytest.fixture
def repo_root() -> Path:
    """The checkout the tests run in."""
    return ROOT


@pytest.fixture
def sqlite_uri(tmp_path: Path) -> str:
    """A sqlite MLflow store of the test's own, in its temp dir (created on first use)."""
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


@pytest.fixture(scope="session")
def template(tmp_path_factory) -> Path:
    """An empty, migrated sqlite store to copy (`support.copied_store`): a test's store, or a
    process's, then skips MLflow's migrations."""
    from runner.tracking import Tracker

    db = tmp_path_factory.mktemp("template") / "mlflow.db"
    Tracker(f"sqlite:///{db}", "Default")
    return db
