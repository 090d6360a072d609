"""``provision serve``'s SCIM endpoint (``runner/serve``) as a process of its own, for its tests.

Run as a script (``python scimendpoint.py --port N``), it builds the app over an empty
``MemoryStore`` and serves it with ``runner.serve.server.serve`` (uvicorn) on 127.0.0.1, the same
code path ``provision serve`` takes; ``--rate``/``--burst`` set a rate limit, ``--certfile`` and
``--keyfile`` TLS, and ``--faults`` puts a store in front of the memory store that raises the errors
a pipeline store raises, for names that ask for them (:func:`fault_store`). ``ScimEndpoint.start(folder)`` runs it on a free port in a process group of its
own (``process.launch``), waits until ``/scim/health`` answers, and ``stop()`` ends it by its PID.
Each start is a new, empty store: tests that need one of their own start their own.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import Popen
from typing import Any

import requests

try:
    from .process import launch, stop
except ImportError:  # run as a script: the server itself (its folder is on sys.path)
    from process import launch, stop  # type: ignore[no-redef]

TOKEN = "scim-endpoint-token-5c2e9a"  # a throwaway test credential, never a real secret
BASE_PATH = "/scim"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="provision serve's SCIM endpoint over an in-memory store")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token", default=TOKEN)
    parser.add_argument("--base-path", default=BASE_PATH)
    parser.add_argument("--rate", type=float, help="requests a second (the token bucket's rate)")
    parser.add_argument("--burst", type=int, help="the token bucket's size")
    parser.add_argument("--certfile")
    parser.add_argument("--keyfile")
    parser.add_argument("--faults", action="store_true", help="raise store errors for busy-/rejected-/crash- names")
    args = parser.parse_args(argv)
    from runner.serve.app import create_app
    from runner.serve.ratelimit import RateLimit
    from runner.serve.server import serve
    from runner.serve.store import MemoryStore

    limit = RateLimit(args.rate, args.burst) if args.rate else None
    store = fault_store() if args.faults else MemoryStore()
    app = create_app(store, token=args.token, base_path=args.base_path, rate_limit=limit)
    serve(app, args.host, args.port, args.certfile, args.keyfile, log_level="warning")


#: what a userName or displayName starting with these makes the --faults store do
BUSY, REJECTED, CRASH = "busy-", "rejected-", "crash-"
RETRY_AFTER = 7
TARGET_MESSAGE = "The directory refused the account: the password does not meet the complexity policy"


def fault_store() -> Any:
    """A memory store whose ``create`` fails the way a pipeline store can: ``busy-...`` raises
    ``Retry`` (the target is busy, 503 after RETRY_AFTER s), ``rejected-...`` ``TargetRejected``
    with TARGET_MESSAGE, ``crash-...`` an unexpected exception (500)."""
    from runner.serve.errors import Retry, TargetRejected
    from runner.serve.store import MemoryStore, Record

    class FaultStore(MemoryStore):
        def create(self, kind: str, attributes: Any) -> Record:
            name = str(attributes.get("userName") or attributes.get("displayName") or "")
            if name.startswith(BUSY):
                raise Retry(retry_after=RETRY_AFTER)
            if name.startswith(REJECTED):
                raise TargetRejected(TARGET_MESSAGE)
            if name.startswith(CRASH):
                raise RuntimeError("the store broke")
            return super().create(kind, attributes)

    return FaultStore()


# ---- the test side ---------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class ScimEndpoint:
    """A running endpoint process and a ``requests`` session that authenticates to it."""

    port: int
    process: Popen[bytes]
    token: str = TOKEN
    scheme: str = "http"
    verify: str | bool = True
    session: requests.Session = field(default_factory=requests.Session)

    @classmethod
    def start(cls, folder: Path, *, token: str = TOKEN, rate: float | None = None, burst: int | None = None,
              certfile: Path | None = None, keyfile: Path | None = None, faults: bool = False) -> ScimEndpoint:
        port = free_port()
        command = [sys.executable, str(Path(__file__).resolve()), "--port", str(port), "--token", token]
        if faults:
            command.append("--faults")
        if rate is not None:
            command += ["--rate", str(rate)] + (["--burst", str(burst)] if burst is not None else [])
        if certfile is not None:
            command += ["--certfile", str(certfile)] + (["--keyfile", str(keyfile)] if keyfile else [])
        scheme = "https" if certfile is not None else "http"
        verify: str | bool = str(certfile) if certfile is not None else True
        health = f"{scheme}://127.0.0.1:{port}{BASE_PATH}/health"
        log = folder / f"scimendpoint-{port}.log"
        process = launch(command, folder, log, {**os.environ, "PYTHONUNBUFFERED": "1"},
                         lambda: requests.get(health, timeout=1, verify=verify).status_code == 200,
                         "the SCIM endpoint")
        endpoint = cls(port, process, token, scheme, verify)
        endpoint.session.headers.update({"Authorization": f"Bearer {token}", "Accept": "application/scim+json"})
        return endpoint

    @property
    def url(self) -> str:
        """The SCIM base URL (Entra's Tenant URL)."""
        return f"{self.scheme}://127.0.0.1:{self.port}{BASE_PATH}"

    def request(self, method: str, path: str, body: Any = None, **kwargs: Any) -> requests.Response:
        """``method`` on ``{url}{path}`` with the token; ``body`` sent as ``application/scim+json``."""
        headers = dict(kwargs.pop("headers", {}) or {})
        data = None
        if body is not None:
            data = body if isinstance(body, str | bytes) else json.dumps(body)
            headers.setdefault("Content-Type", "application/scim+json")
        kwargs.setdefault("verify", self.verify)  # explicit: REQUESTS_CA_BUNDLE would win over session.verify
        return self.session.request(method, f"{self.url}{path}", data=data, headers=headers, timeout=30, **kwargs)

    def create_user(self, **attributes: Any) -> dict[str, Any]:
        """POST a user (a unique userName unless given) and return it."""
        body = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": f"user-{uuid.uuid4().hex[:12]}@example.com", **attributes}
        answer = self.request("POST", "/Users", body)
        assert answer.status_code == 201, answer.text
        return answer.json()

    def stop(self) -> None:
        self.session.close()
        stop(self.process)


if __name__ == "__main__":
    main()
