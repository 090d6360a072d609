"""The journal of distributed runs: what ``provision status FILE`` shows of a pipeline's tasks.

Celery's result backend keeps a task's outcome once a worker has it, but not the runs still in the
queue, and it cannot be listed by pipeline. So provision keeps a table of its own beside Celery's
``celery_taskmeta``, in the result backend's database (``PROVISION_RESULT_BACKEND``, a ``db+...``
URL: PostgreSQL by default), one row per task:

- written ``queued`` by whoever sends the task (``provision submit``, ``provision beat``), before
  it is sent, so a worker can never start a run the journal does not know;
- ``running`` by the worker that starts it (its name, when, the attempt: a run redelivered after
  its worker died shows the second worker and attempt 2);
- its outcome by that worker when it ends: ``ok``, ``partial``, ``failed``, ``stopped`` (exit 3),
  ``skipped`` (a scheduled firing that found the pipeline running), ``invalid`` (the manifest), or
  ``error``; with the exit code, the run's id in the state store and its summary.

Rows are per task, with ``kind`` (``run``) and ``parent_id``: when a run fans out into slices,
each slice is a row of its own under its run (``kind`` import/compute/export, ``label`` naming
its part), and status shows them indented under the run. Rows older than the results
(``result_expires``, 7 days) are deleted as new ones are written.

Writing the journal never fails a run: a worker that cannot reach it logs a warning and goes on.
A result backend that is not a database (``redis://``) keeps no journal; status says so.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.pool import NullPool

from runner import secrets
from runner.errors import Unavailable

logger = logging.getLogger("provision")

RETENTION = timedelta(days=7)  # as the results themselves (app.py: result_expires)
FINISHED = ("ok", "partial", "failed", "stopped", "skipped", "invalid", "error")

metadata = sa.MetaData()
tasks = sa.Table(
    "provision_tasks", metadata,
    sa.Column("task_id", sa.String(64), primary_key=True),
    sa.Column("parent_id", sa.String(64), nullable=True),  # the run a slice belongs to (the fan-out)
    sa.Column("kind", sa.String(16), nullable=False),  # run; import, scope, map, export (slices of a fan-out)
    sa.Column("label", sa.Text, nullable=True),  # a slice's part: "user: partition 3, pages 1-40"
    sa.Column("manifest", sa.Text, nullable=False),  # the absolute path the task carries
    sa.Column("pipeline", sa.Text, nullable=True),
    sa.Column("queue", sa.Text, nullable=True),
    sa.Column("trigger", sa.String(16), nullable=True),  # submit | beat
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("submitted", sa.String(32), nullable=True),  # ISO 8601, UTC
    sa.Column("started", sa.String(32), nullable=True),
    sa.Column("finished", sa.String(32), nullable=True),
    sa.Column("worker", sa.Text, nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("exit_code", sa.Integer, nullable=True),
    sa.Column("run_id", sa.Text, nullable=True),
    sa.Column("summary", sa.Text, nullable=True),  # the run's summary, as run --output json prints it
    sa.Column("error", sa.Text, nullable=True),
    sa.Index("provision_tasks_by_manifest", "manifest", "submitted"),
    sa.Index("provision_tasks_by_parent", "parent_id"),
    sa.Index("provision_tasks_by_submitted", "submitted"),
)


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def database_url(backend: str) -> str | None:
    """The SQLAlchemy URL of a ``db+...`` result backend, or None for another kind."""
    return backend[3:] if backend.startswith("db+") else None


class Journal:
    def __init__(self, backend: str):
        self.backend = backend
        address = database_url(backend)
        options = {"connect_timeout": 10} if address and address.startswith("postgresql") else {}
        self.engine = sa.create_engine(address, poolclass=NullPool, connect_args=options) if address else None
        self.ready = False

    @property
    def kept(self) -> bool:
        return self.engine is not None

    def _shown(self) -> str:
        return secrets.mask_url(self.backend)

    def _connect(self) -> sa.Connection:
        assert self.engine is not None
        try:
            conn = self.engine.connect()
        except sa_exc.SQLAlchemyError as exc:
            raise Unavailable(f"the result backend {self._shown()} cannot be reached "
                              f"({str(exc).splitlines()[0]}); start it, or set PROVISION_RESULT_BACKEND") from None
        if not self.ready:
            try:
                metadata.create_all(conn, checkfirst=True)
                conn.commit()
            except sa_exc.SQLAlchemyError:  # another process made it at the same moment
                conn.rollback()
                metadata.create_all(conn, checkfirst=True)
                conn.commit()
            self.ready = True
        return conn

    # ---- writing -----------------------------------------------------------------------------------

    def queued(self, task_id: str, manifest: str, queue: str, trigger: str, pipeline: str | None = None,
               kind: str = "run", parent_id: str | None = None, label: str | None = None) -> None:
        if not self.kept:
            return
        with self._connect() as conn:
            conn.execute(tasks.insert().values(task_id=task_id, parent_id=parent_id, kind=kind, label=label,
                                               manifest=manifest, pipeline=pipeline, queue=queue, trigger=trigger,
                                               state="queued", submitted=now_iso(), attempts=0))
            cutoff = (datetime.now(UTC) - RETENTION).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            conn.execute(tasks.delete().where(tasks.c.submitted < cutoff))
            conn.commit()

    def slices_queued(self, parent_id: str, manifest: str, queue: str, pipeline: str,
                      parts: list[tuple[str, str, str]]) -> None:
        """The rows of a phase's slices, (task id, kind, label) each, in one statement."""
        if not self.kept or not parts:
            return
        now = now_iso()
        with self._connect() as conn:
            conn.execute(tasks.insert(), [dict(task_id=task_id, parent_id=parent_id, kind=kind, label=label,
                                               manifest=manifest, pipeline=pipeline, queue=queue, trigger="fan-out",
                                               state="queued", submitted=now, attempts=0)
                                          for task_id, kind, label in parts])
            conn.commit()

    def slices_ran(self, parts: list[tuple[str, str, str, str, str, str | None]]) -> None:
        """Slices a coordinator ran itself: (task id, worker, started, finished, state, error) each."""
        if not self.kept or not parts:
            return
        with self._connect() as conn:
            conn.execute(tasks.update().where(tasks.c.task_id == sa.bindparam("k_id")).values(
                worker=sa.bindparam("k_worker"), started=sa.bindparam("k_started"),
                finished=sa.bindparam("k_finished"), state=sa.bindparam("k_state"), error=sa.bindparam("k_error"),
                exit_code=sa.bindparam("k_exit"), attempts=tasks.c.attempts + 1),
                [{"k_id": i, "k_worker": w, "k_started": b, "k_finished": f, "k_state": st,
                  "k_error": (e or None) and e[:2000], "k_exit": 0 if st == "ok" else 1} for i, w, b, f, st, e in parts])
            conn.commit()

    def started(self, task_id: str, manifest: str, worker: str, trigger: str | None) -> None:
        if not self.kept:
            return
        with self._connect() as conn:
            done = conn.execute(tasks.update().where(tasks.c.task_id == task_id).values(
                state="running", worker=worker, started=now_iso(), finished=None, attempts=tasks.c.attempts + 1))
            if done.rowcount == 0:  # sent by something that keeps no journal (celery call, an older submit)
                conn.execute(tasks.insert().values(task_id=task_id, kind="run", manifest=manifest, trigger=trigger,
                                                   state="running", worker=worker, started=now_iso(), attempts=1))
            conn.commit()

    def finished(self, task_id: str, outcome: dict[str, Any]) -> None:
        if not self.kept:
            return
        summary = outcome.get("summary")
        values: dict[str, Any] = {"finished": now_iso(), "exit_code": outcome.get("exit_code"),
                                  "state": state_of(outcome)}
        if summary:
            values.update(pipeline=summary.get("pipeline"), run_id=summary.get("run_id"),
                          summary=json.dumps(summary, ensure_ascii=False, default=str))
        if outcome.get("error") or outcome.get("reason"):
            values["error"] = str(outcome.get("reason") or outcome["error"])[:2000]
        with self._connect() as conn:
            conn.execute(tasks.update().where(tasks.c.task_id == task_id).values(**values))
            conn.commit()

    def slice_finished(self, task_id: str, state: str, error: str | None = None) -> None:
        """A slice of a fanned-out run ended (``ok``, ``failed``, ``stopped``)."""
        if not self.kept:
            return
        with self._connect() as conn:
            conn.execute(tasks.update().where(tasks.c.task_id == task_id).values(
                state=state, finished=now_iso(), error=error[:2000] if error else None,
                exit_code=0 if state == "ok" else 1))
            conn.commit()

    def retrying(self, task_id: str, why: str) -> None:
        """The worker sent the task back to the queue to try again later (a lock still held)."""
        if not self.kept:
            return
        with self._connect() as conn:
            conn.execute(tasks.update().where(tasks.c.task_id == task_id).values(state="queued", error=why))
            conn.commit()

    def not_sent(self, task_id: str, error: str) -> None:
        """The task could not be sent after its row was written: the row says so."""
        if not self.kept:
            return
        with self._connect() as conn:
            conn.execute(tasks.update().where(tasks.c.task_id == task_id).values(
                state="error", finished=now_iso(), error=f"not sent: {error}"[:2000]))
            conn.commit()

    # ---- reading -----------------------------------------------------------------------------------

    def latest(self, manifest: str) -> dict[str, Any] | None:
        rows = self.runs(manifest, 1)
        return rows[0] if rows else None

    def runs(self, manifest: str, limit: int = 20) -> list[dict[str, Any]]:
        """The newest ``limit`` runs of ``manifest`` (its absolute path), newest first; each with its
        slices (a fanned-out run's, oldest first) under ``slices``."""
        if not self.kept:
            return []
        with self._connect() as conn:
            rows = conn.execute(sa.select(tasks).where(tasks.c.manifest == manifest, tasks.c.parent_id.is_(None))
                                .order_by(tasks.c.submitted.desc().nulls_last(), tasks.c.started.desc())
                                .limit(limit)).mappings().all()
            ids = [r["task_id"] for r in rows]
            children = conn.execute(sa.select(tasks).where(tasks.c.parent_id.in_(ids))
                                    .order_by(tasks.c.submitted)).mappings().all() if ids else []
        slices: dict[str, list[dict[str, Any]]] = {}
        for child in children:
            slices.setdefault(child["parent_id"], []).append(_shown(child))
        return [{**_shown(r), "slices": slices.get(r["task_id"], [])} for r in rows]


def worker_error(problem: BaseException) -> str:
    """What a run that a bug ended says, in the journal and to ``submit --wait`` (secrets redacted)."""
    return secrets.redact(f"internal error on the worker: {type(problem).__name__}: {problem}")


def state_of(outcome: dict[str, Any]) -> str:
    """The journal's state for a task's outcome (runner/distributed/tasks.py)."""
    if outcome.get("status") == "skipped":
        return "skipped"
    if outcome.get("summary"):
        return str(outcome["summary"].get("status") or "ok")
    if outcome.get("problems") or outcome.get("error") == "invalid manifest":
        return "invalid"
    if outcome.get("status") == "stopped":
        return "stopped"
    return "error"


def _shown(row: Any) -> dict[str, Any]:
    out = {k: row[k] for k in ("task_id", "kind", "label", "pipeline", "queue", "trigger", "state", "submitted",
                               "started", "finished", "worker", "attempts", "exit_code", "run_id", "error")}
    out["summary"] = json.loads(row["summary"]) if row["summary"] else None
    return out


_journals: dict[tuple[int, str], Journal] = {}
_lock = threading.Lock()


def journal(backend: str | None = None) -> Journal:
    """The journal in ``backend`` (default: PROVISION_RESULT_BACKEND), one per process."""
    if backend is None:
        from runner.distributed.app import result_backend

        backend = result_backend()
    key = (os.getpid(), backend)
    with _lock:
        if key not in _journals:
            _journals[key] = Journal(backend)
        return _journals[key]


def journal_slice(what: str, task_id: str, *args: Any) -> None:
    """The journal's rows of slices of a fanned-out run: ``queued`` (``task_id`` the run's; manifest,
    queue, pipeline, [(slice task id, kind, label)]), ``started`` (manifest, worker), ``finished``
    (state, error). As for
    runs, a journal that cannot be written never fails the slice (a warning is logged)."""
    try:
        if what == "queued":  # task_id: the parent's; args: manifest, queue, pipeline, [(task id, kind, label)]
            journal().slices_queued(task_id, *args)
        elif what == "ran":  # task_id: the run's; args: [(slice task id, worker, started, finished, state, error)]
            journal().slices_ran(*args)
        elif what == "started":
            journal().started(task_id, args[0], args[1], None)
        else:
            journal().slice_finished(task_id, *args)
    except Exception as exc:  # noqa: BLE001 - Unavailable, a database error: the run matters more
        logger.warning("the run journal (provision status) could not be written: %s", secrets.redact(str(exc)))
