"""`mgrun ui`: the MLflow UI as a process tree that lives and dies with the command.

`mlflow server` starts uvicorn as a child of its own. Stopping only the process we started leaves
uvicorn serving the port, and a Ctrl-C that reaches both (as a terminal sends it to the whole
foreground process group) makes uvicorn print a CancelledError traceback. So the server runs in a
session of its own, out of reach of the terminal's signals, and this process ends the whole
session itself, whichever of SIGINT, SIGTERM or SIGHUP it receives.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import signal
import socket
import subprocess
import time
from typing import Any, NoReturn

import typer

from runner import interrupts
from runner.errors import ConfigError, MgrunError

GRACE = 10.0  # seconds the server gets to stop after SIGTERM before SIGKILL
# Without --verbose the server says only what goes wrong: no line per request, no start-up notes.
QUIET_ARGS = ["--uvicorn-opts", "--no-access-log --log-level warning"]
QUIET_ENV = {"MLFLOW_LOGGING_LEVEL": "WARNING", "PYTHONWARNINGS": "ignore::DeprecationWarning"}


def serve(tracking_uri: str | None, host: str, port: int, verbose: bool = False) -> NoReturn:
    """Serve the MLflow UI on the local store until a signal stops it (KeyboardInterrupt, after
    the server is gone). MgrunError if the address cannot be served or the server stops."""
    check_address(host, port)
    from runner.tracking import resolve_tracking_uri, ui_banner, ui_command  # mlflow: seconds

    uri = resolve_tracking_uri(tracking_uri, None)
    argv = ui_command(uri, host, port)
    if exposed(host):
        typer.secho(
            f"warning: serving the MLflow UI without authentication to the network ({host}); "
            f"anyone who reaches port {port} can read and change every run",
            err=True,
            fg=typer.colors.YELLOW,
        )
    typer.echo(ui_banner(uri, host, port))
    quiet: dict[str, Any] = {}
    if not verbose:
        argv = argv + QUIET_ARGS
        quiet = {"env": {**os.environ, **QUIET_ENV}, "stdout": subprocess.DEVNULL}  # errors: stderr
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, start_new_session=True, **quiet)
    try:
        code = proc.wait()
    finally:
        with interrupts.protected():  # a second Ctrl-C must not leave the server behind
            stop(proc)
    raise MgrunError(
        f"the MLflow server stopped on its own (exit code {code}); see its messages above"
    )


def check_address(host: str, port: int) -> None:
    """ConfigError unless `port` is a port number and (host, port) can be bound right now;
    MgrunError if another process holds the port."""
    if not 1 <= port <= 65535:
        raise ConfigError(f"--port {port}: not a port number; use 1..65535, e.g. --port 5000")
    # As uvicorn binds: IPv6 for an address with a colon, SO_REUSEADDR set.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise MgrunError(
                    f"port {port} on {host} is in use; choose another with --port"
                ) from None
            reason = exc.strerror or str(exc)
            raise ConfigError(
                f"--host {host} --port {port}: cannot serve there ({reason}); "
                "use an address of this machine, e.g. --host 127.0.0.1"
            ) from None


def exposed(host: str) -> bool:
    """Does `host` reach beyond this machine (anything but a loopback address)?"""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return True
    return not all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)


def stop(proc: subprocess.Popen, grace: float = GRACE) -> None:
    """End the session `proc` leads: SIGTERM to all of it, SIGKILL to what is left after
    `grace` seconds. Returns once `proc` has exited."""
    _signal_group(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    _signal_group(proc.pid, signal.SIGKILL)  # stragglers, e.g. a worker whose parent is gone
    proc.wait()


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)
