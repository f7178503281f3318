"""What a learner sees: the links mgrun prints open MLflow's Model training view, checked in a
real headless chromium on a fresh profile against a real `mgrun ui` (MLflow 3 opens experiments
in its GenAI view, with traces and a "Detect Issues" pop-up, unless the link asks otherwise)."""

from __future__ import annotations

import contextlib
import html
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from runner.cli import app
from tests.support import CONFIGS, ROOT, free_port, healthy, wait_for

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium on PATH (apt-get install chromium); .ci/run installs it"
)
# The sidebar of each view: MLflow 3.17 shows these only in the GenAI one, that only in the other.
GENAI_ONLY = ("Evaluation runs", "Agent versions", "Detect Issues", "No data available")
MODEL_TRAINING_ONLY = "Model registry"


def test_the_printed_links_open_the_model_training_view(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    args = ["train", str(CONFIGS / "moons.yaml"), "--set", "training.steps=5", "--no-progress"]
    trained = CliRunner().invoke(app, [*args, "--tracking-uri", uri])
    assert trained.exit_code == 0, trained.output
    run_id = re.search(r"^run (\w+) in ", trained.output, re.M).group(1)
    run_link = re.search(r"^browse it: mgrun ui .*, then open (\S+)$", trained.output, re.M)
    assert run_link, trained.output
    assert run_link.group(1).startswith("http://127.0.0.1:5000/#/experiments/")

    port = free_port()
    log = tmp_path / "ui.log"
    with open(log, "wb") as out:
        ui = subprocess.Popen(
            [sys.executable, "-m", "runner", "ui", "--port", str(port), "--tracking-uri", uri],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},  # this checkout, whatever is installed
        )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: ui.poll() is not None or healthy(base), timeout=240)
        assert ui.poll() is None, log.read_text()[-3000:]
        experiment_link = re.search(r"^  moons +(\S+)$", log.read_text(), re.M)
        assert experiment_link, log.read_text()[-3000:]
        # The printed link assumes `mgrun ui`'s default address; this UI has a port of its own.
        run_page = _page(run_link.group(1).replace("http://127.0.0.1:5000", base), tmp_path)
        experiment_page = _page(experiment_link.group(1), tmp_path)
    finally:
        _stop(ui)

    title, text = run_page
    assert title == f"Run {run_id} - MLflow", text[:2000]
    assert "train_accuracy" in text, text[:2000]
    _assert_model_training_view(text)
    title, text = experiment_page
    assert re.fullmatch(r"Runs - Experiment \d+ - MLflow", title), text[:2000]
    assert "moons" in text and "1 matching run" in text, text[:2000]
    _assert_model_training_view(text)


def _assert_model_training_view(text: str) -> None:
    assert MODEL_TRAINING_ONLY in text, text[:2000]
    assert not [w for w in GENAI_ONLY if w in text], text[:2000]


def _page(url: str, tmp_path: Path) -> tuple[str, str]:
    """The title and visible text of `url` once chromium has rendered it, on a fresh profile."""
    profile = tempfile.mkdtemp(prefix="chromium-", dir=tmp_path)
    argv = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic"]
    argv += ["--no-first-run", "--disable-background-networking", "--disable-component-update"]
    argv += ["--disable-sync", "--disable-dev-shm-usage", f"--user-data-dir={profile}"]
    argv += ["--virtual-time-budget=15000", "--dump-dom", url]
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # chromium's helpers share its group: one killpg ends them all
    )
    try:
        dom, err = proc.communicate(timeout=240)
    finally:
        _stop(proc)
    assert proc.returncode == 0, err.decode(errors="replace")[-3000:]
    page = dom.decode()
    title = re.search(r"<title>(.*?)</title>", page, re.S)
    body = re.sub(r"<(script|style)\b.*?</\1>|<[^>]+>", " ", page, flags=re.S)
    return html.unescape(title.group(1)) if title else "", " ".join(html.unescape(body).split())


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM the process group, SIGKILL what is left after a while."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=30)
    with contextlib.suppress(ProcessLookupError):  # helpers may outlive their leader a moment
        os.killpg(proc.pid, signal.SIGKILL)
