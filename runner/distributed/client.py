"""The submitting side: enqueue a run, wait for its outcome, and turn the outcome back into the
summary ``provision run`` prints."""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from celery.states import READY_STATES

from runner import secrets
from runner.distributed.app import broker_url, make_app, queue, result_backend
from runner.distributed.journal import journal, worker_error
from runner.engine.context import TypeCounts
from runner.engine.run import Summary
from runner.errors import EXIT_STOPPED, ProvisionError, Unavailable

logger = logging.getLogger("provision")


class WaitTimedOut(ProvisionError):
    """``submit --wait --timeout S``: the run had not ended in time; it goes on (exit 3)."""

    exit_code = EXIT_STOPPED


@dataclass
class Submitted:
    task_id: str
    manifest: str
    queue: str

    def as_json(self) -> dict[str, Any]:
        return {"task_id": self.task_id, "manifest": self.manifest, "queue": self.queue, "status": "submitted"}


def submit(manifest: Path, options: dict[str, Any], to_queue: str | None = None) -> Submitted:
    """Enqueue a run of ``manifest`` (sent as an absolute path: every worker must see the manifest
    at that path, a checkout of the same repository). Unavailable when the broker cannot be reached."""
    path = str(manifest.resolve())
    where = to_queue or queue()
    task_id = str(uuid.uuid4())
    app = make_app()
    recorded = record_queued(task_id, path, where, "submit")
    try:
        result = app.send_task("provision.run", args=[path, options], queue=where, task_id=task_id,
                               retry=True, retry_policy={"max_retries": 2, "interval_start": 0.5,
                                                         "interval_step": 0.5})
    except Exception as exc:  # kombu's OperationalError and socket errors alike
        problem = f"the broker at {secrets.mask_url(broker_url())} cannot be reached ({exc})"
        if recorded:
            record_not_sent(task_id, problem)
        raise Unavailable(f"{problem}; start it, or set PROVISION_BROKER_URL") from None
    return Submitted(result.id, path, where)


def record_queued(task_id: str, manifest: str, to_queue: str, trigger: str) -> bool:
    """The journal's row for a task about to be sent (what ``provision status`` lists); False when
    it could not be written: the run is sent all the same (its worker writes the row then)."""
    try:
        journal().queued(task_id, manifest, to_queue, trigger)
    except Exception as exc:  # noqa: BLE001 - Unavailable, a database error: submitting matters more
        logger.warning("the run journal (provision status) could not be written: %s", secrets.redact(str(exc)))
        return False
    return True


def record_not_sent(task_id: str, problem: str) -> None:
    with contextlib.suppress(Exception):  # already failing: the broker's error is the one to report
        journal().not_sent(task_id, problem)


def wait(task_id: str, timeout: float | None = None, poll: float = 0.5) -> dict[str, Any]:
    """The outcome of a submitted run once it has ended (see :mod:`runner.distributed.tasks`).
    WaitTimedOut after ``timeout`` seconds; Unavailable when the result backend cannot be read."""
    app = make_app()
    result = app.AsyncResult(task_id)
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        try:
            state = result.state
            if state in READY_STATES:  # REVOKED too: a revoked run never ends otherwise
                break
        except Exception as exc:
            raise Unavailable(f"the result backend {secrets.mask_url(result_backend())} cannot be read ({exc}); "
                              "set PROVISION_RESULT_BACKEND") from None
        if deadline is not None and time.monotonic() >= deadline:
            raise WaitTimedOut(f"run {task_id} has not ended after {timeout:g} s ({state.lower()}); it goes on: "
                               f"`provision submit` again with --wait is not needed, its outcome is kept")
        time.sleep(poll)
    if state == "REVOKED":
        return {"error": f"run {task_id} was revoked (celery control revoke) before it ended",
                "status": "stopped", "exit_code": EXIT_STOPPED}
    if state == "FAILURE":  # the task raised: a lock never freed (retries exhausted), or a bug
        problem = result.result
        if type(problem).__name__ == "MaxRetriesExceededError":
            return {"error": "the run could not take the pipeline's lock: another run of it is alive",
                    "status": "stopped", "exit_code": EXIT_STOPPED}
        return {"error": worker_error(problem), "exit_code": 1}
    return result.result


def summary_from_json(out: dict[str, Any]) -> Summary:
    """The :class:`Summary` a worker's run reported (``Summary.as_json``), for the command line's
    text output: the same lines ``provision run`` prints."""
    summary = Summary(out["pipeline"], out["run_id"], out["status"], out["started"], out.get("finished", ""))
    summary.object_types = {name: TypeCounts(**counts) for name, counts in out.get("object_types", {}).items()}
    for key in ("manifest", "quarantine", "stopped_by", "refused", "unplanned", "plan_file"):
        if key in out:
            setattr(summary, key, out[key])
    return summary
