"""Servers the tests start as processes of their own: launched in a new session on 127.0.0.1,
waited for until they answer, stopped by PID (the whole process group), and, for the servers that
have them, their ``/_test/*`` routes (reset, dump) called the same way."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests


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
        with contextlib.suppress(requests.RequestException):
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
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)


@dataclass
class TestRoutes:
    """A running server with ``POST /_test/reset`` and ``GET /_test/dump`` (json-server's middleware,
    restapp)."""

    __test__ = False  # not a test class, whatever pytest thinks of the name

    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def up(self) -> bool:
        return requests.get(f"{self.url}/_test/dump", timeout=1).status_code == 200

    def reset(self) -> None:
        """Empty the server for the next test."""
        requests.post(f"{self.url}/_test/reset", timeout=10).raise_for_status()

    def dump(self) -> dict[str, Any]:
        """Everything the server holds."""
        return self.route("dump")

    def route(self, name: str) -> Any:
        """The JSON a ``GET /_test/NAME`` answers."""
        answer = requests.get(f"{self.url}/_test/{name}", timeout=10)
        answer.raise_for_status()
        return answer.json()

    def stop(self) -> None:
        stop(self.process)
