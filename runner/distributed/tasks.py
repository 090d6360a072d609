"""The tasks workers run: ``provision.run``, a whole run of one pipeline (with ``fan_out`` in its
options, the coordinator of a run cut into slices: coordinator.py), and ``provision.slice``, one
slice of such a run (slices.py).

A task's outcome is a plain JSON object (the result backend keeps it; ``submit --wait`` prints
it): ``{"summary": ..., "exit_code": N, "worker": ...}`` for a run that happened, the same
summary ``provision run --output json`` prints; ``{"error": ..., "exit_code": N}`` (and
``problems`` for an invalid manifest) for one that could not start; ``{"status": "skipped",
"reason": ..., "exit_code": 0}`` for a firing of ``provision beat`` that found the pipeline
running (not a failure: the run in progress is serving the pipeline, and the next firing comes on
schedule). Errors are redacted here, before they reach the broker's or the backend's storage.
Each outcome is also written to the journal ``provision status`` reads (journal.py).
"""

from __future__ import annotations

import json
import logging
import socket
from pathlib import Path
from typing import Any

from celery.exceptions import Retry

from runner import budgets, secrets
from runner.distributed import slices
from runner.distributed.app import app, queue
from runner.distributed.coordinator import DEFAULT_SHARDS, Coordinator, helps_here, sqlite_refused
from runner.distributed.hooks import install as install_budgets
from runner.distributed.journal import journal, journal_slice, worker_error
from runner.distributed.options import run_options
from runner.engine.run import execute
from runner.errors import ManifestError, ProvisionError, StoppedError
from runner.manifest.yamlfile import Located, read_yaml
from runner.mapping.checks import load
from runner.sqlutil import sqlalchemy_url
from runner.state.runs import STALE_LOCK_SECONDS
from runner.state.store import state_url

logger = logging.getLogger("provision")

LOCK_RETRY_SECONDS = 60  # how often a redelivered run looks again at a lock its dead attempt held

if budgets.provider() is None:  # a worker started by `celery worker` rather than `provision worker`
    install_budgets()


@app.task(name="provision.run", bind=True, acks_late=True, reject_on_worker_lost=True,
          max_retries=STALE_LOCK_SECONDS // LOCK_RETRY_SECONDS + 2)
def run(self: Any, manifest_path: str, options: dict[str, Any], trigger: str = "submit") -> dict[str, Any]:
    """Run the pipeline in ``manifest_path`` as ``provision run`` does, on this worker.

    A redelivered task (its previous worker died) finds the dead attempt's lock: on the same
    host, the process is gone and the lock is taken at once; from another host it is taken once
    its heartbeat is stale (runner/state/runs.py), so until then the task is retried, not failed.
    The run that takes over settles the dead one's in-flight exports first (crash recovery).

    ``trigger`` is who sent it: ``submit`` (a person or a script, who wants exit 3 when the
    pipeline is already running) or ``beat`` (a schedule: that firing is skipped)."""
    worker = self.request.hostname or socket.gethostname()
    redelivered = bool((self.request.delivery_info or {}).get("redelivered"))
    if redelivered:
        logger.warning("run of %s redelivered to %s: its previous worker died", manifest_path, worker)
    task_id = self.request.id
    _journal("started", task_id, manifest_path, worker, trigger)
    try:
        outcome = _outcome(self, manifest_path, options, trigger, worker, redelivered)
    except Retry:
        _journal("retrying", task_id, f"waiting for the lock of its dead attempt; looking again in "
                                      f"{LOCK_RETRY_SECONDS} s (retry {self.request.retries + 1})")
        raise
    except Exception as exc:  # a bug: Celery records the failure; the journal must not say "running" forever
        _journal("finished", task_id, {"error": worker_error(exc), "exit_code": 1, "worker": worker})
        raise
    _journal("finished", task_id, outcome)
    return outcome


def slice_queue(task: Any) -> str:
    """Where a coordinator sends its slices: its own queue's name with ``.slices``."""
    return f"{(task.request.delivery_info or {}).get('routing_key') or queue()}.slices"


def _outcome(task: Any, manifest_path: str, options: dict[str, Any], trigger: str, worker: str,
             redelivered: bool) -> dict[str, Any]:
    passes = None
    if shards := fan_out(options, manifest_path):
        if (refused := _sqlite_state(manifest_path)) is not None:
            return {"error": str(refused), "exit_code": refused.exit_code, "worker": worker}
        to = slice_queue(task)
        passes = Coordinator(manifest_path, {**options, "fan_out": shards}, task.request.id, worker, to,
                             helps_here(to), shards)
    try:
        summary = execute(Path(manifest_path), run_options(options), passes=passes)
    except ManifestError as exc:
        return {"error": "invalid manifest", "exit_code": exc.exit_code, "worker": worker,
                "problems": [{"file": p.file, "line": p.line, "column": p.column, "path": p.path,
                              "message": secrets.redact(p.message)} for p in exc.problems]}
    except StoppedError as exc:
        held = "already running" in str(exc)
        if held and (redelivered or task.request.retries) and task.request.retries < task.max_retries:
            raise task.retry(countdown=LOCK_RETRY_SECONDS) from None  # maybe its own dead attempt's lock
        if held and trigger == "beat":
            return _skipped(str(exc), worker)
        return {"error": secrets.redact(str(exc)), "status": "stopped", "exit_code": exc.exit_code,
                "worker": worker}
    except ProvisionError as exc:
        return {"error": secrets.redact(str(exc)), "exit_code": exc.exit_code, "worker": worker}
    return {"summary": _redacted(summary.as_json()), "exit_code": summary.exit_code, "worker": worker,
            "redelivered": redelivered}


@app.task(name="provision.slice", bind=True, acks_late=True, reject_on_worker_lost=True)
def slice_(self: Any, manifest_path: str, options: dict[str, Any], run_id: str, spec: dict[str, Any],
           extras: dict[str, Any]) -> dict[str, Any]:
    """One slice of a fanned-out run (slices.py), under the coordinator's run id. Claimed first: a
    slice the coordinator ran itself, or one whose run is over, is left alone. A redelivered slice
    (its worker died) takes the dead attempt's claim over and settles what it left in flight."""
    worker = self.request.hostname or socket.gethostname()
    redelivered = bool((self.request.delivery_info or {}).get("redelivered"))
    task_id = self.request.id
    if redelivered:
        logger.warning("slice %s of run %s redelivered to %s: its previous worker died", spec.get("id"), run_id, worker)
    try:
        outcome = slices.perform(manifest_path, run_options({**options, "fan_out": None, "time_limit": None}), run_id,
                                 spec, extras, worker, redelivered,
                                 started=lambda: journal_slice("started", task_id, manifest_path, worker))
    except Exception as exc:
        journal_slice("finished", task_id, "failed", secrets.redact(f"{type(exc).__name__}: {exc}"))
        raise
    if outcome["state"] != "skipped":
        journal_slice("finished", task_id, {"done": "ok"}.get(outcome["state"], outcome["state"]),
                      outcome.get("error"))
    return {"state": outcome["state"], "worker": worker, "error": outcome.get("error")}


def fan_out(options: dict[str, Any], manifest_path: str) -> int | None:
    """Into how many anchor ranges compute is cut per sweep when the run is fanned out, or None
    (a whole run): what the submitter asked (``submit --fan-out``), else the manifest's
    ``fan_out:``, so a firing of ``provision beat`` fans out as the manifest says. A value the
    schema refuses is left to the run, which reports it at its line."""
    asked = options.get("fan_out")
    if asked is None:
        data = read_yaml(Path(manifest_path), Located())
        asked = data.get("fan_out") if isinstance(data, dict) else None
    if asked is True:
        return DEFAULT_SHARDS
    if type(asked) is int and asked >= 1:
        return asked
    return None


def _sqlite_state(manifest_path: str) -> ProvisionError | None:
    """A fanned-out run refused before it starts (no lock taken, no run recorded): its state store
    is a SQLite file, one machine's. A manifest that does not load is left to the run to report."""
    try:
        manifest = load(Path(manifest_path))
    except ProvisionError:
        return None
    url = sqlalchemy_url(state_url(manifest, create=False), manifest.base_dir)
    return sqlite_refused(manifest.name) if url.get_backend_name() == "sqlite" else None


def _skipped(reason: str, worker: str) -> dict[str, Any]:
    """A scheduled firing that found another run of the pipeline alive: reported, not retried."""
    reason = secrets.redact(reason)
    logger.info("scheduled run skipped: %s", reason)
    return {"status": "skipped", "reason": reason, "exit_code": 0, "worker": worker}


def _journal(what: str, *args: Any) -> None:
    """Write the journal; a journal that cannot be written never fails the run."""
    try:
        getattr(journal(), what)(*args)
    except Exception as exc:  # noqa: BLE001 - Unavailable, a database error: the run matters more
        logger.warning("the run journal (provision status) could not be written: %s", secrets.redact(str(exc)))


def _redacted(value: dict[str, Any]) -> dict[str, Any]:
    """``value`` with every secret provision knows of masked, as the command line prints it."""
    return json.loads(secrets.redact(json.dumps(value, ensure_ascii=False, default=str)))
