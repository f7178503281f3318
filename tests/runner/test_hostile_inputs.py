"""Hostile inputs fail cleanly: one line on stderr naming the file, the field and the fix, exit
code 2, in bounded time and memory, and nothing created (no mlflow.db, no mlruns/)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from runner.config import load_run_config
from runner.errors import ConfigError
from runner.redact import clip, mask_uri, quote

ROOT = Path(__file__).resolve().parents[2]
MGRUN = [sys.executable, "-m", "runner.cli"]
BASE = """\
name: tiny
seed: 5
dataset: {kind: moons, n_samples: 40, noise: 0.1, test_fraction: 0.25}
model: {hidden: [4]}
training: {steps: 5, lr: 0.1}
"""


@pytest.fixture(autouse=True)
def _in_tmp_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # messages name files as the user wrote them: c.yaml


def mgrun(cwd: Path, *args: str, timeout: float = 60) -> tuple[int, list[str]]:
    """Run the real CLI in `cwd`; (exit code, stderr lines). Fails if a store appeared."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("MLFLOW_TRACKING_URI", None)
    done = subprocess.run(
        [*MGRUN, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert not (cwd / "mlflow.db").exists() and not (cwd / "mlruns").exists()
    return done.returncode, done.stderr.strip().splitlines()


def one_error(cwd: Path, *args: str, timeout: float = 60) -> str:
    code, lines = mgrun(cwd, *args, timeout=timeout)
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith("error: ")
    return lines[0]


def config_error(path: Path, overrides: tuple[str, ...] = ()) -> str:
    with pytest.raises(ConfigError) as info:
        load_run_config(path, overrides)
    assert "\n" not in str(info.value)
    return str(info.value)


def write(tmp_path: Path, name: str, text: str) -> Path:
    (tmp_path / name).write_text(text)
    return Path(name)


# Credentials


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        (
            "postgresql://user:pa55@db.example.org/mlflow",
            "postgresql://user:***@db.example.org/mlflow",
        ),
        ("mysql+pymysql://u:p%40ss@host/db?x=1", "mysql+pymysql://u:***@host/db?x=1"),
        ("http://alice:secret@tracking:5000", "http://alice:***@tracking:5000"),
        ("postgresql://user@host/db", "postgresql://user@host/db"),
        ("sqlite:////tmp/mlflow.db", "sqlite:////tmp/mlflow.db"),
        ("http://[bad", "http://[bad"),
    ],
)
def test_mask_uri_hides_the_password_only(uri, shown):
    assert mask_uri(uri) == shown


def test_store_errors_and_summaries_do_not_show_the_password(capsys):
    from runner.errors import BackendError
    from runner.tracking import Tracker
    from runner.train import _summary

    uri = "postgresql://user:pa55word@127.0.0.1:1/db"
    with pytest.raises(BackendError) as info:
        Tracker(uri, "e")
    assert "pa55word" not in str(info.value) and "user:***@127.0.0.1" in str(info.value)
    result = SimpleNamespace(final_metrics={}, status="FINISHED", seconds=1.0, reason=None)
    _summary(result, "abc", uri, explicit_uri=True)
    out = capsys.readouterr()
    assert "pa55word" not in out.out + out.err and "user:***@" in out.out


def test_clip_and_quote_keep_one_short_line():
    assert clip("a\nb" * 50, 10) == "a\\nba\\nba\\nba..."
    assert quote("x" * 50) == "'" + "x" * 40 + "'..."
    assert quote("short") == "'short'"
