"""Servers the tests start as processes of their own: launched in a new session on 127.0.0.1,
waited for until they answer, stopped by PID (the whole process group: :mod:`runner.demo.process`,
which ``provision demo`` uses too), and, for the servers that have them, their ``/_test/*`` routes
(reset, dump) called the same way."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from typing import Any

import requests

from runner.demo.process import launch, stop  # one copy, shared with provision demo

__all__ = ["TestRoutes", "launch", "stop"]


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
