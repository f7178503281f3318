"""`mgrun ui` owns its process tree: a real `mgrun ui` serving a sqlite store, stopped by SIGTERM
or SIGINT to its pid or by SIGINT to its whole process group, leaves nothing serving; addresses
it cannot serve are one line and a non-zero exit, before any server starts."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from typer.testing import CliRunner

from runner.cli import app
from runner.commands import ui as ui_server
from runner.errors import MgrunError
from tests.support import free_port, gone, healthy, wait_for

ROOT = Path(__file__).resolve().parents[2]


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except OSError:
        return False
    return True


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    """A migrated sqlite store, so the server starts without migrating it."""
    from runner.tracking import Tracker

    uri = f"sqlite:///{tmp_path_factory.mktemp('ui') / 'mlflow.db'}"
    Tracker(uri, "Default")
    return uri


def send_to_pid(proc: subprocess.Popen, sig: int) -> None:
    proc.send_signal(sig)


def send_to_group(proc: subprocess.Popen, sig: int) -> None:
    os.killpg(proc.pid, sig)  # what a terminal's Ctrl-C does


@pytest.mark.timeout(240)
@pytest.mark.parametrize(
    ("send", "sig"),
    [(send_to_pid, signal.SIGTERM), (send_to_pid, signal.SIGINT), (send_to_group, signal.SIGINT)],
    ids=["SIGTERM-pid", "SIGINT-pid", "SIGINT-group"],
)
def test_a_signal_stops_the_ui_and_every_process_it_started(store, tmp_path, send, sig):
    port = free_port()
    argv = [sys.executable, "-m", "runner", "ui", "--tracking-uri", store, "--port", str(port)]
    log = tmp_path / "ui.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            argv, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_for(
            lambda: healthy(f"http://127.0.0.1:{port}") or proc.poll() is not None, timeout=120
        )
        assert proc.poll() is None, log.read_text()
        started = psutil.Process(proc.pid).children(recursive=True)
        assert started  # the server and its uvicorn
        send(proc, sig)
        assert proc.wait(timeout=60) == 130, log.read_text()
        wait_for(lambda: gone(started), timeout=15)
        assert not listening(port)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    text = log.read_text()
    assert "Traceback" not in text and "CancelledError" not in text, text
    assert text.splitlines()[0] == f"MLflow UI on http://127.0.0.1:{port} (Ctrl-C stops it)"
    assert text.splitlines()[-1] == "interrupted", text


def ui(*args: str):
    return CliRunner().invoke(app, ["ui", "--tracking-uri", "sqlite:///unused.db", *args])


def test_a_port_in_use_is_one_line_and_starts_nothing():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = ui("--port", str(port))
    assert result.exit_code == 1
    line = f"error: port {port} on 127.0.0.1 is in use; choose another with --port\n"
    assert result.output == line


@pytest.mark.parametrize("port", ["70000", "0", "-1"])
def test_a_port_out_of_range_is_one_line_exit_2(port):
    result = ui("--port", port)
    assert result.exit_code == 2
    assert len(result.output.splitlines()) == 1
    assert f"--port {port}: not a port number" in result.output


def test_a_host_of_another_machine_is_one_line_exit_2():
    result = ui("--host", "192.0.2.1", "--port", str(free_port()))  # TEST-NET-1: nobody's
    assert result.exit_code == 2
    assert len(result.output.splitlines()) == 1
    assert "--host 192.0.2.1" in result.output


@pytest.mark.parametrize(
    ("host", "exposed"),
    [("127.0.0.1", False), ("localhost", False), ("::1", False), ("0.0.0.0", True), ("::", True)],
)
def test_only_loopback_addresses_count_as_private(host, exposed):
    assert ui_server.exposed(host) is exposed


def test_a_server_that_stops_on_its_own_is_an_error(monkeypatch):
    import runner.tracking

    stops = [sys.executable, "-c", "import sys; sys.exit(3)"]
    monkeypatch.setattr(runner.tracking, "ui_command", lambda uri, host, port: stops)
    with pytest.raises(MgrunError, match=r"stopped on its own \(exit code 3\)"):
        ui_server.serve("sqlite:///unused.db", "127.0.0.1", free_port(), verbose=True)
