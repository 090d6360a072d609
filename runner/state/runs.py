"""Runs and locks: who is running a pipeline, since when, and what each run did.

The lock is also a fence: every commit an export makes first renews the heartbeat of its own
lock row, in the same transaction. A run whose lock was taken over (it stalled past the stale
limit and another run started) finds its row gone, rolls back and stops: it can never record
results over the newer run's.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc

from runner.errors import StoppedError
from runner.state import tables as t
from runner.state.base import Part, dumps, now_iso

STALE_LOCK_SECONDS = 900  # a lock from another host with no heartbeat for this long is taken over


@dataclass(frozen=True)
class LockHolder:
    run_id: str
    host: str
    pid: int
    user: str
    acquired: str

    def describe(self) -> str:
        return f"run {self.run_id} by {self.user} on {self.host}, pid {self.pid}, since {self.acquired}"


@dataclass(frozen=True)
class Quarantine:
    """A pipeline quarantined after ``failed_runs`` runs in a row that failed wholesale."""

    pipeline: str
    since: str
    reason: str  # why the last of those runs failed
    failed_runs: int
    run_id: str | None  # the last of those runs

    def describe(self) -> str:
        return (f"quarantined since {self.since}, after {self.failed_runs} runs in a row that failed wholesale "
                f"(the last, run {self.run_id}: {self.reason})")


class LockLost(StoppedError):
    """Another run took this run's lock over: this one must not write anything more."""


class Runs(Part):
    """``store.runs``: the pipeline's lock, its runs, its quarantine, and the counts of a type."""

    def acquire_lock(self, pipeline: str, run_id: str) -> LockHolder | None:
        """Take the pipeline's lock. Returns the holder it took over from, if any (its run is
        marked abandoned); raises StoppedError if held by a live run."""
        me = dict(pipeline=pipeline, run_id=run_id, host=socket.gethostname(), pid=os.getpid(),
                  user=getpass.getuser(), acquired=now_iso(), heartbeat=time.time())
        c = t.locks.c
        for _ in range(3):
            row = self.conn.execute(sa.select(t.locks).where(c.pipeline == pipeline)).first()
            taken_over = None
            if row is not None:
                holder = LockHolder(row.run_id, row.host, row.pid, row.user, row.acquired)
                if _alive(row.host, row.pid, row.heartbeat):
                    self.conn.rollback()
                    raise StoppedError(f"pipeline {pipeline!r} is already running ({holder.describe()}); "
                                       "wait for it to finish")
                self.conn.execute(t.locks.delete().where(c.pipeline == pipeline, c.run_id == row.run_id))
                self.conn.execute(t.runs.update().where(t.runs.c.run_id == row.run_id, t.runs.c.status == "running")
                                  .values(status="abandoned", finished=now_iso()))
                taken_over = holder
            try:
                self.conn.execute(t.locks.insert().values(**me))
                self.store.commit()
                return taken_over
            except exc.IntegrityError:
                self.conn.rollback()  # someone else took it between our read and insert: look again
        raise StoppedError(f"pipeline {pipeline!r}: could not take the lock; another run is starting")

    def heartbeat(self, pipeline: str, run_id: str) -> None:
        """Renew the lock, inside the transaction about to be committed; LockLost if it is not ours."""
        c = t.locks.c
        result = self.conn.execute(t.locks.update().where(c.pipeline == pipeline, c.run_id == run_id)
                                   .values(heartbeat=time.time()))
        if result.rowcount == 0:
            self.conn.rollback()
            raise LockLost(f"pipeline {pipeline!r}: another run took the lock over while run {run_id} "
                           "had stalled; this run stops without recording anything more")

    def release_lock(self, pipeline: str, run_id: str) -> None:
        c = t.locks.c
        self.conn.rollback()
        self.conn.execute(t.locks.delete().where(c.pipeline == pipeline, c.run_id == run_id))
        self.store.commit()

    # ---- runs ------------------------------------------------------------------------------------

    def start_run(self, run_id: str, pipeline: str, kind: str, started: str, manifest_hash: str | None = None,
                  manifest_commit: str | None = None) -> None:
        self.conn.execute(t.runs.insert().values(run_id=run_id, pipeline=pipeline, kind=kind, started=started,
                                                 status="running", manifest_hash=manifest_hash,
                                                 manifest_commit=manifest_commit))
        self.store.commit()

    def finish_run(self, run_id: str, status: str, finished: str, summary: dict[str, Any]) -> None:
        self.conn.execute(t.runs.update().where(t.runs.c.run_id == run_id)
                          .values(status=status, finished=finished, summary=dumps(summary)))
        self.store.commit()

    # ---- quarantine (runner/engine/quarantine.py) ----------------------------------------------

    def quarantine(self, pipeline: str) -> Quarantine | None:
        """The pipeline's quarantine, or None when it is not quarantined."""
        q = t.quarantine.c
        row = self.conn.execute(sa.select(t.quarantine).where(q.pipeline == pipeline)).first()
        if row is None or row.since is None:
            return None
        return Quarantine(pipeline, row.since, row.reason, row.failed_runs, row.run_id)

    def failed_runs(self, pipeline: str) -> int:
        """How many runs in a row failed wholesale (quarantined or not)."""
        q = t.quarantine.c
        return self.conn.execute(sa.select(q.failed_runs).where(q.pipeline == pipeline)).scalar() or 0

    def note_run(self, pipeline: str, run_id: str, reason: str | None, after_runs: int) -> Quarantine | None:
        """Count a run that failed wholesale (``reason``), or end the count (None: it did not).
        Quarantines the pipeline at ``after_runs`` in a row (0: never); returns the quarantine
        when this run started it. Committed."""
        q = t.quarantine.c
        row = self.conn.execute(sa.select(t.quarantine).where(q.pipeline == pipeline)).first()
        started = None
        if reason is None:
            self.conn.execute(t.quarantine.delete().where(q.pipeline == pipeline))
        else:
            count = (row.failed_runs if row is not None else 0) + 1
            since = row.since if row is not None else None
            if since is None and after_runs and count >= after_runs:
                since = now_iso()
                started = Quarantine(pipeline, since, reason, count, run_id)
            values = dict(failed_runs=count, reason=reason, since=since, run_id=run_id)
            if row is None:
                self.conn.execute(t.quarantine.insert().values(pipeline=pipeline, **values))
            else:
                self.conn.execute(t.quarantine.update().where(q.pipeline == pipeline).values(**values))
        self.store.commit()
        return started

    def release_quarantine(self, pipeline: str) -> Quarantine | None:
        """Lift the quarantine and forget the count of failed runs; returns what was lifted. Committed."""
        lifted = self.quarantine(pipeline)
        self.conn.execute(t.quarantine.delete().where(t.quarantine.c.pipeline == pipeline))
        self.store.commit()
        return lifted

    def recent_runs(self, pipeline: str, limit: int = 10) -> list[dict[str, Any]]:
        c = t.runs.c
        rows = self.conn.execute(sa.select(t.runs).where(c.pipeline == pipeline)
                                 .order_by(c.started.desc()).limit(limit))
        return [dict(r._mapping) | {"summary": json.loads(r.summary) if r.summary else None} for r in rows]

    def count_out_of_scope(self, type_id: int) -> int:
        """Objects the source has outside the scope with nothing pending: what is not provisioned
        (or was disabled), apart from the unchanged."""
        so, pe = t.source_objects.c, t.pending.c
        pending = sa.select(pe.source_anchor).where(pe.type_id == so.type_id, pe.source_anchor == so.anchor)
        # "= false", not "IS false": PostgreSQL and MariaDB range-scan source_objects_present only so
        return self.conn.execute(sa.select(sa.func.count()).where(
            so.type_id == type_id, so.deleted == sa.false(), so.in_scope == sa.false(), ~sa.exists(pending))).scalar_one()

    def count_present(self, type_id: int, partition: str | None | bool = False) -> int:
        """Source objects of the type that the source still has (in ``partition``, when given)."""
        so = t.source_objects.c
        cond = [so.type_id == type_id, so.deleted == sa.false()]  # by source_objects_present (see above)
        if partition is not False:
            cond.append(so.partition.is_(None) if partition is None else so.partition == partition)
        return self.conn.execute(sa.select(sa.func.count()).where(*cond)).scalar_one()

    def count_pending(self, type_id: int, actions: tuple[str, ...]) -> int:
        pe = t.pending.c
        return self.conn.execute(sa.select(sa.func.count()).where(pe.type_id == type_id,
                                                                  pe.action.in_(actions))).scalar_one()

    def count_linked(self, type_id: int) -> int:
        lk = t.links.c
        return self.conn.execute(sa.select(sa.func.count()).where(lk.type_id == type_id,
                                                                  lk.live.is_(True))).scalar_one()

    def count_unlinked(self, type_id: int, limit: int, failing: bool = False) -> int:
        """Source objects present and in scope with no live link, counted up to ``limit``
        (``failing``: only those whose last compute failed, e.g. a match conflict)."""
        so, lk = t.source_objects.c, t.links.c
        linked = sa.select(lk.source_anchor).where(lk.type_id == so.type_id, lk.source_anchor == so.anchor,
                                                   lk.live.is_(True))
        cond = [so.type_id == type_id, so.deleted.is_(False), so.in_scope.is_not(False), ~sa.exists(linked)]
        if failing:
            cond.append(so.error.is_not(None))
        return len(self.conn.execute(sa.select(so.anchor).where(*cond).limit(limit)).all())

    def counts(self, type_id: int) -> dict[str, int]:
        so, lk, pe = t.source_objects.c, t.links.c, t.pending.c
        one = self.conn.execute
        return {
            "source_objects": self.count_present(type_id),
            "in_scope": one(sa.select(sa.func.count()).where(so.type_id == type_id, so.in_scope.is_(True),
                                                             so.deleted.is_(False))).scalar_one(),
            "linked": one(sa.select(sa.func.count()).where(lk.type_id == type_id, lk.live.is_(True))).scalar_one(),
            "pending": one(sa.select(sa.func.count()).where(pe.type_id == type_id)).scalar_one(),
            "oldest_pending": one(sa.select(sa.func.min(pe.since)).where(pe.type_id == type_id)).scalar(),
            "in_doubt": one(sa.select(sa.func.count()).where(pe.type_id == type_id,
                                                             pe.sent_run.is_not(None))).scalar_one(),
            "failing": one(sa.select(sa.func.count()).where(so.type_id == type_id, so.error.is_not(None))).scalar_one()
            + one(sa.select(sa.func.count()).where(pe.type_id == type_id, pe.last_error.is_not(None))).scalar_one(),
        }


def _alive(host: str, pid: int, heartbeat: float) -> bool:
    """Is the lock holder still running? Same host: ask the OS. Other host: trust a recent heartbeat."""
    if host == socket.gethostname():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return _not_zombie(pid)
    return time.time() - heartbeat < STALE_LOCK_SECONDS


def _not_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True
