"""The tasks workers run. Today one: ``provision.run``, a whole run of one pipeline.

A task's outcome is a plain JSON object (the result backend keeps it; ``submit --wait`` prints
it): ``{"summary": ..., "exit_code": N, "worker": ...}`` for a run that happened, the same
summary ``provision run --output json`` prints; ``{"error": ..., "exit_code": N}`` (and
``problems`` for an invalid manifest) for one that could not start. Errors are redacted here,
before they reach the broker's or the backend's storage.
"""

from __future__ import annotations

import json
import logging
import socket
from pathlib import Path
from typing import Any

from runner import secrets
from runner.distributed.app import app
from runner.distributed.options import run_options
from runner.engine.run import execute
from runner.errors import ManifestError, ProvisionError, StoppedError
from runner.state.runs import STALE_LOCK_SECONDS

logger = logging.getLogger("provision")

LOCK_RETRY_SECONDS = 60  # how often a redelivered run looks again at a lock its dead attempt held


@app.task(name="provision.run", bind=True, acks_late=True, reject_on_worker_lost=True,
          max_retries=STALE_LOCK_SECONDS // LOCK_RETRY_SECONDS + 2)
def run(self: Any, manifest_path: str, options: dict[str, Any]) -> dict[str, Any]:
    """Run the pipeline in ``manifest_path`` as ``provision run`` does, on this worker.

    A redelivered task (its previous worker died) finds the dead attempt's lock: on the same
    host, the process is gone and the lock is taken at once; from another host it is taken once
    its heartbeat is stale (runner/state/runs.py), so until then the task is retried, not failed.
    The run that takes over settles the dead one's in-flight exports first (crash recovery)."""
    worker = self.request.hostname or socket.gethostname()
    redelivered = bool((self.request.delivery_info or {}).get("redelivered"))
    if redelivered:
        logger.warning("run of %s redelivered to %s: its previous worker died", manifest_path, worker)
    try:
        summary = execute(Path(manifest_path), run_options(options))
    except ManifestError as exc:
        return {"error": "invalid manifest", "exit_code": exc.exit_code, "worker": worker,
                "problems": [{"file": p.file, "line": p.line, "column": p.column, "path": p.path,
                              "message": secrets.redact(p.message)} for p in exc.problems]}
    except StoppedError as exc:
        if (redelivered or self.request.retries) and "already running" in str(exc):
            raise self.retry(countdown=LOCK_RETRY_SECONDS) from None
        return {"error": secrets.redact(str(exc)), "status": "stopped", "exit_code": exc.exit_code,
                "worker": worker}
    except ProvisionError as exc:
        return {"error": secrets.redact(str(exc)), "exit_code": exc.exit_code, "worker": worker}
    return {"summary": _redacted(summary.as_json()), "exit_code": summary.exit_code, "worker": worker,
            "redelivered": redelivered}


def _redacted(value: dict[str, Any]) -> dict[str, Any]:
    """``value`` with every secret provision knows of masked, as the command line prints it."""
    return json.loads(secrets.redact(json.dumps(value, ensure_ascii=False, default=str)))
