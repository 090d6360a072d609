"""``provision serve FILE`` as a process of its own, for the tests of the pipeline behind the SCIM
endpoint (``runner/serve/pipeline.py``).

``PipelineEndpoint.start(manifest, folder)`` runs ``python -m runner serve FILE --port N`` (the
command line itself, so the subcommand, the manifest's ``serve.token`` and uvicorn are what is
tested) on a free port of 127.0.0.1 in a process group of its own (``process.launch``), with the
token in ``SCIM_ENDPOINT_TOKEN``, waits until ``/scim/health`` answers, and ``stop()`` ends it by
its PID. Requests go through the same ``requests`` session helpers as the in-memory endpoint's.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import requests

from .process import launch
from .scimendpoint import BASE_PATH, TOKEN, ScimEndpoint, free_port

REPO = Path(__file__).resolve().parent.parent.parent
TOKEN_ENV = "SCIM_ENDPOINT_TOKEN"


@dataclass
class PipelineEndpoint(ScimEndpoint):
    """A running ``provision serve`` and a session that authenticates to it."""

    @classmethod
    def start_serving(cls, manifest: Path, folder: Path, *, token: str = TOKEN,
                      wrapper: list[str] | None = None) -> PipelineEndpoint:
        """``wrapper``: a script and its arguments that run the CLI instead of ``-m runner``
        (``tests/faults/killpoint.py N KILL``)."""
        port = free_port()
        command = [sys.executable, *(wrapper or ["-m", "runner"]), "serve", str(manifest), "--port", str(port)]
        env = {**os.environ, TOKEN_ENV: token, "PYTHONUNBUFFERED": "1",
               "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
        health = f"http://127.0.0.1:{port}{BASE_PATH}/health"
        log = folder / f"provision-serve-{port}.log"
        process = launch(command, folder, log, env,
                         lambda: requests.get(health, timeout=1).status_code == 200, "provision serve")
        endpoint = cls(port, process, token)
        endpoint.session.headers.update({"Authorization": f"Bearer {token}", "Accept": "application/scim+json"})
        endpoint.log = log
        return endpoint

    log: Path | None = None
