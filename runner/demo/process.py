"""Starting and stopping a server process: on 127.0.0.1, in a process group of its own, waited for
until it answers, stopped by its PID. Shared by the demo's servers and the tests' starters
(``tests/servers/process.py`` uses these)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import requests

from runner.errors import EXIT_ENVIRONMENT, ProvisionError, UsageError


class NotInstalled(ProvisionError):
    """A server program the demo needs is not on this machine; the message says how to install it
    (exit 4: the machine lacks a package)."""

    exit_code = EXIT_ENVIRONMENT


def free_port() -> int:
    """A TCP port nothing listens on at 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_or_free(port: int | None) -> int:
    """``port`` when it is free on 127.0.0.1, a free one when it is None or 0; a port in use is a usage
    error said before anything starts (the server would only fail later, less clearly)."""
    if not port:
        return free_port()
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError as exc:
            raise UsageError(f"--port {port}: 127.0.0.1:{port} is not free ({exc.strerror}); pick another port, "
                             "or leave --port out for a free one") from None
    return port


def launch(command: Sequence[str], folder: Path, log: Path, env: Mapping[str, str] | None = None,
           answers: Callable[[], bool] | None = None, what: str = "the server") -> subprocess.Popen[bytes]:
    """Start ``command`` in ``folder`` (output to ``log``) in a process group of its own and wait up
    to 30 s until ``answers()`` is true; a process that exits or never answers is stopped and reported
    with the end of its log."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        process = subprocess.Popen(list(command), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                   cwd=folder, env=dict(env) if env is not None else None, start_new_session=True)
    deadline = time.monotonic() + 30
    while answers is not None and time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}: {log.read_text()[-2000:]}")
        with contextlib.suppress(requests.RequestException, OSError):
            if answers():
                return process
        time.sleep(0.05)
    if answers is None:
        return process
    stop(process)
    raise RuntimeError(f"{what} did not answer within 30 s: {log.read_text()[-2000:]}")


def stop(process: subprocess.Popen[bytes]) -> None:
    """End the process group the process leads: SIGTERM, then SIGKILL after 5 s."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)


def listening(port: int) -> bool:
    """Something accepts TCP connections on 127.0.0.1:``port``."""
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
        return True
    return False
