"""The connector space on SQLAlchemy Core: every query the engine's passes need, in one place.

Work is done in pages with indexes, never by loading a whole object type into memory, and
writes are batched: the caller commits once per page (import) or per export batch, so a run
killed at any point keeps everything confirmed before it.
"""

from __future__ import annotations

import datetime as dt
import getpass
import hashlib
import json
import os
import secrets as pysecrets
import socket
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event, exc

from runner.errors import StateError, StoppedError
from runner.sqlutil import driver_reason as _reason
from runner.sqlutil import sqlalchemy_url, sqlite_savepoints
from runner.state import tables as t
from runner.state.tables import IncompatibleStore, migrate

CHUNK = 500  # rows per IN (...) list: far below every database's parameter limit
STALE_LOCK_SECONDS = 900  # a lock from another host with no heartbeat for this long is taken over


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def record_hash(data: Any) -> str:
    return hashlib.sha1(dumps(data).encode()).hexdigest()


def chunks(items: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def default_url(manifest_path: Path, pipeline: str) -> str:
    """``.provision/<name>.db`` beside the manifest; the folder ignores itself in git."""
    folder = manifest_path.parent / ".provision"
    folder.mkdir(exist_ok=True)
    ignore = folder / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# provision's state: never commit it\n*\n")
    return f"sqlite:///{(folder / f'{pipeline}.db').resolve()}"


class DuplicateAnchor(ValueError):
    def __init__(self, anchor: str):
        super().__init__(anchor)
        self.anchor = anchor


@dataclass
class Confirmations:
    """What one export batch changed, for :meth:`StateStore.record`."""

    adds: list[tuple[str, str, dict[str, Any], str | None]] = field(default_factory=list)  # anchor, target anchor, data, name
    updates: list[tuple[str, str, str, dict[str, Any], bool, str | None]] = field(default_factory=list)
    # ^ anchor, old target anchor, new target anchor, data, disabled, name
    followups: list[Pending] = field(default_factory=list)  # a second step for the same object (password, update)
    deletes: list[tuple[str, str | None, bool]] = field(default_factory=list)  # anchor, target anchor, source gone
    failures: list[tuple[str, str]] = field(default_factory=list)  # anchor, error
    retries: list[tuple[str, str]] = field(default_factory=list)  # anchor, error: to be tried again this run
    # anchor, target anchor: what we knew of the target object is wrong (it vanished, or an add found
    # one already there): forget it and compute the object again next run, when matching can adopt it
    recompute: list[tuple[str, str]] = field(default_factory=list)
    dropped: list[tuple[str, int, str]] = field(default_factory=list)  # anchor, ref type id, ref anchor left out


@dataclass(frozen=True)
class LockHolder:
    run_id: str
    host: str
    pid: int
    user: str
    acquired: str

    def describe(self) -> str:
        return f"run {self.run_id} by {self.user} on {self.host}, pid {self.pid}, since {self.acquired}"


@dataclass
class SourceRow:
    anchor: str
    data: dict[str, Any]
    deleted: bool
    in_scope: bool | None
    exists_after: bool
    target_anchor: str | None
    link_live: bool
    target_data: dict[str, Any] | None
    disabled: bool
    target_name: str | None = None


@dataclass
class PendingRow:
    source_anchor: str
    action: str
    target_anchor: str | None
    payload: dict[str, Any]
    attempts: int
    last_error: str | None = None
    name: str | None = None
    depth: int = 0


@dataclass
class Pending:
    """A pending export as compute decides it."""

    anchor: str
    action: str
    target_anchor: str | None
    payload: dict[str, Any]
    name: str | None = None
    depth: int = 0


class StateStore:
    """One open state store. Not thread-safe: the engine's main thread owns it."""

    def __init__(self, url: str, base_dir: Path):
        parsed = sqlalchemy_url(url, base_dir)
        self.url_shown = parsed.render_as_string(hide_password=True)
        if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        try:
            self.engine = sa.create_engine(parsed)
            if self.engine.dialect.name == "sqlite":
                event.listen(self.engine, "connect", _sqlite_pragmas)
                sqlite_savepoints(self.engine)
            migrate(self.engine)
            self.conn = self.engine.connect()
        except IncompatibleStore as e:
            raise StateError(f"{self.url_shown}: {e}") from None
        except exc.SQLAlchemyError as e:
            raise StateError(f"cannot open the state store {self.url_shown}: {_reason(e)}") from None
        self._salt: str | None = None

    def close(self) -> None:
        self.conn.close()
        self.engine.dispose()

    def commit(self) -> None:
        self.conn.commit()

    def rollback(self) -> None:
        self.conn.rollback()

    # ---- identity of object types ------------------------------------------------------------

    def type_id(self, pipeline: str, name: str) -> int:
        c = t.object_types.c
        query = sa.select(c.id).where(c.pipeline == pipeline, c.name == name)
        found = self.conn.execute(query).scalar()
        if found is None:
            self.conn.execute(t.object_types.insert().values(pipeline=pipeline, name=name))
            found = self.conn.execute(query).scalar_one()
            self.commit()
        return found

    def config_hash(self, type_id: int) -> str | None:
        c = t.object_types.c
        return self.conn.execute(sa.select(c.config_hash).where(c.id == type_id)).scalar()

    def set_config_hash(self, type_id: int, value: str) -> None:
        self.conn.execute(t.object_types.update().where(t.object_types.c.id == type_id).values(config_hash=value))

    def sensitive_digest(self, value: Any) -> str:
        """A salted digest standing in for a sensitive value, so it can be compared but not read."""
        if self._salt is None:
            c = t.meta.c
            self._salt = self.conn.execute(sa.select(c.value).where(c.key == "salt")).scalar()
            if self._salt is None:
                self._salt = pysecrets.token_hex(16)
                self.conn.execute(t.meta.insert().values(key="salt", value=self._salt))
                self.commit()
        return "sha256:" + hashlib.sha256((self._salt + dumps(value)).encode()).hexdigest()[:32]

    # ---- lock ----------------------------------------------------------------------------------

    def acquire_lock(self, pipeline: str, run_id: str) -> LockHolder | None:
        """Take the pipeline's lock. Returns the holder it took over from, if any; raises StoppedError if held."""
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
                taken_over = holder
            try:
                self.conn.execute(t.locks.insert().values(**me))
                self.commit()
                return taken_over
            except exc.IntegrityError:
                self.conn.rollback()  # someone else took it between our read and insert: look again
        raise StoppedError(f"pipeline {pipeline!r}: could not take the lock; another run is starting")

    def heartbeat(self, pipeline: str, run_id: str) -> None:
        c = t.locks.c
        self.conn.execute(t.locks.update().where(c.pipeline == pipeline, c.run_id == run_id)
                          .values(heartbeat=time.time()))

    def release_lock(self, pipeline: str, run_id: str) -> None:
        c = t.locks.c
        self.conn.rollback()
        self.conn.execute(t.locks.delete().where(c.pipeline == pipeline, c.run_id == run_id))
        self.commit()

    # ---- runs ------------------------------------------------------------------------------------

    def start_run(self, run_id: str, pipeline: str, kind: str, started: str) -> None:
        self.conn.execute(t.runs.insert().values(run_id=run_id, pipeline=pipeline, kind=kind,
                                                 started=started, status="running"))
        self.commit()

    def finish_run(self, run_id: str, status: str, finished: str, summary: dict[str, Any]) -> None:
        self.conn.execute(t.runs.update().where(t.runs.c.run_id == run_id)
                          .values(status=status, finished=finished, summary=dumps(summary)))
        self.commit()

    def recent_runs(self, pipeline: str, limit: int = 10) -> list[dict[str, Any]]:
        c = t.runs.c
        rows = self.conn.execute(sa.select(t.runs).where(c.pipeline == pipeline)
                                 .order_by(c.started.desc()).limit(limit))
        return [dict(r._mapping) | {"summary": json.loads(r.summary) if r.summary else None} for r in rows]

    def count_present(self, type_id: int) -> int:
        """Source objects of the type that the source still has."""
        so = t.source_objects.c
        return self.conn.execute(sa.select(sa.func.count()).where(so.type_id == type_id,
                                                                  so.deleted.is_(False))).scalar_one()

    def counts(self, type_id: int) -> dict[str, int]:
        so, lk, pe = t.source_objects.c, t.links.c, t.pending.c
        one = self.conn.execute
        return {
            "source_objects": self.count_present(type_id),
            "in_scope": one(sa.select(sa.func.count()).where(so.type_id == type_id, so.in_scope.is_(True),
                                                             so.deleted.is_(False))).scalar_one(),
            "linked": one(sa.select(sa.func.count()).where(lk.type_id == type_id, lk.live.is_(True))).scalar_one(),
            "pending": one(sa.select(sa.func.count()).where(pe.type_id == type_id)).scalar_one(),
            "failing": one(sa.select(sa.func.count()).where(so.type_id == type_id, so.error.is_not(None))).scalar_one()
            + one(sa.select(sa.func.count()).where(pe.type_id == type_id, pe.last_error.is_not(None))).scalar_one(),
        }

    def failures(self, type_id: int, limit: int = 20) -> list[tuple[str, str]]:
        so, pe = t.source_objects.c, t.pending.c
        rows = list(self.conn.execute(sa.select(so.anchor, so.error).where(so.type_id == type_id, so.error.is_not(None))
                                      .order_by(so.anchor).limit(limit)))
        rows += list(self.conn.execute(sa.select(pe.source_anchor, pe.last_error)
                                       .where(pe.type_id == type_id, pe.last_error.is_not(None))
                                       .order_by(pe.source_anchor).limit(limit)))
        return [(a, e) for a, e in rows][:limit]

    # ---- import ------------------------------------------------------------------------------

    def begin_full_import(self, type_id: int) -> None:
        self.conn.execute(t.import_seen.delete().where(t.import_seen.c.type_id == type_id))

    def import_page(self, type_id: int, records: Sequence[tuple[str, dict[str, Any]]], full: bool,
                    partition: str | None = None, natives: dict[str, str] | None = None) -> int:
        """Store a page of (anchor, data) read from ``partition``; returns how many were new or
        changed (marked dirty)."""
        so = t.source_objects.c
        hashed = {anchor: (data, record_hash(data)) for anchor, data in records}
        if len(hashed) != len(records):
            seen: set[str] = set()
            raise DuplicateAnchor(next(a for a, _ in records if a in seen or seen.add(a)))
        known: dict[str, str] = {}
        deleted: set[str] = set()
        for anchor, digest, is_deleted in self.conn.execute(
                sa.select(so.anchor, so.hash, so.deleted).where(so.type_id == type_id, so.anchor.in_(list(hashed)))):
            known[anchor] = digest
            if is_deleted:
                deleted.add(anchor)
        natives = natives or {}
        new = [dict(type_id=type_id, anchor=a, native_anchor=natives.get(a), partition=partition, data=dumps(d),
                    hash=h, deleted=False, dirty=True, exists_after=False)
               for a, (d, h) in hashed.items() if a not in known]
        changed = [dict(k_anchor=a, data=dumps(d), hash=h)
                   for a, (d, h) in hashed.items() if a in known and (known[a] != h or a in deleted)]
        if new:
            self.conn.execute(t.source_objects.insert(), new)
        if changed:
            self.conn.execute(
                t.source_objects.update()
                .where(so.type_id == type_id, so.anchor == sa.bindparam("k_anchor"))
                .values(data=sa.bindparam("data"), hash=sa.bindparam("hash"), deleted=False, dirty=True),
                changed)
        if full:
            try:
                with self.conn.begin_nested():
                    self.conn.execute(t.import_seen.insert(), [dict(type_id=type_id, anchor=a) for a in hashed])
            except exc.IntegrityError:
                raise DuplicateAnchor(self._first_seen(type_id, list(hashed))) from None
        return len(new) + len(changed)

    def mark_deleted(self, type_id: int, anchors: Sequence[str], natives: Sequence[str] = ()) -> None:
        """A delta read reported these objects deleted, by our anchor or by the connector's own."""
        so = t.source_objects.c
        for column, values in ((so.anchor, list(anchors)), (so.native_anchor, list(natives))):
            for part in chunks(values):
                self.conn.execute(t.source_objects.update().where(so.type_id == type_id, column.in_(part),
                                                                  so.deleted.is_(False)).values(deleted=True, dirty=True))

    def watermark(self, type_id: int, side: str, partition: str | None) -> str | None:
        w = t.watermarks.c
        return self.conn.execute(sa.select(w.value).where(w.type_id == type_id, w.side == side,
                                                          w.partition == (partition or ""))).scalar()

    def set_watermark(self, type_id: int, side: str, partition: str | None, value: str) -> None:
        w = t.watermarks.c
        self.conn.execute(t.watermarks.delete().where(w.type_id == type_id, w.side == side,
                                                      w.partition == (partition or "")))
        self.conn.execute(t.watermarks.insert().values(type_id=type_id, side=side, partition=partition or "",
                                                       value=value))

    def _first_seen(self, type_id: int, anchors: list[str]) -> str:
        seen = t.import_seen.c
        return self.conn.execute(sa.select(seen.anchor).where(seen.type_id == type_id, seen.anchor.in_(anchors))
                                 .limit(1)).scalar() or anchors[0]

    def finish_full_import(self, type_id: int, partition: str | None = None) -> int:
        """Mark every object of ``partition`` the full import did not see as deleted; returns how many."""
        so, seen = t.source_objects.c, t.import_seen.c
        vanished = (sa.select(seen.anchor).where(seen.type_id == type_id))
        in_partition = so.partition.is_(None) if partition is None else so.partition == partition
        result = self.conn.execute(
            t.source_objects.update()
            .where(so.type_id == type_id, so.deleted.is_(False), in_partition, so.anchor.not_in(vanished))
            .values(deleted=True, dirty=True))
        self.conn.execute(t.import_seen.delete().where(seen.type_id == type_id))
        return result.rowcount

    def begin_target_import(self, type_id: int) -> None:
        """Forget indexed target values (not reservations): the import that follows re-reads them all."""
        ix = t.target_index.c
        self.conn.execute(t.target_index.delete().where(ix.type_id == type_id, sa.not_(ix.target_anchor.startswith("~"))))

    def import_target_page(self, type_id: int, records: Sequence[tuple[str, dict[str, Any], str | None]],
                           index: Sequence[tuple[str, str, str]]) -> None:
        """Remember target objects read for matching: their data (unless already known) and the
        (attribute, normalized value, target anchor) rows the match rules look up."""
        to, ix = t.target_objects.c, t.target_index.c
        anchors = [a for a, _, _ in records]
        known = set(self.conn.execute(sa.select(to.target_anchor).where(
            to.type_id == type_id, to.target_anchor.in_(anchors))).scalars())
        fresh = [dict(type_id=type_id, target_anchor=a, name=n, data=dumps(d), disabled=False)
                 for a, d, n in records if a not in known]
        if fresh:
            self.conn.execute(t.target_objects.insert(), fresh)
        self.conn.execute(t.target_index.delete().where(ix.type_id == type_id, ix.target_anchor.in_(anchors)))
        rows = {(attr, value[:255], anchor) for attr, value, anchor in index}
        if rows:
            self.conn.execute(t.target_index.insert(), [dict(type_id=type_id, attribute=a, value=v, target_anchor=ta)
                                                        for a, v, ta in rows])

    def match_candidates(self, type_id: int, attribute: str, value: str) -> list[str]:
        """Target anchors holding ``value`` in ``attribute`` that no source object is linked to yet."""
        ix, lk = t.target_index.c, t.links.c
        linked = sa.select(lk.target_anchor).where(lk.type_id == type_id, lk.live.is_(True))
        return list(self.conn.execute(sa.select(ix.target_anchor).where(
            ix.type_id == type_id, ix.attribute == attribute, ix.value == value[:255],
            ix.target_anchor.not_in(linked)).order_by(ix.target_anchor).limit(5)).scalars())

    def reserved(self, type_id: int, attribute: str, anchor: str) -> str | None:
        """The value select_unique_value reserved for ``anchor`` earlier, if any."""
        ix = t.target_index.c
        return self.conn.execute(sa.select(ix.value).where(ix.type_id == type_id, ix.attribute == attribute,
                                                           ix.target_anchor == "~" + anchor)).scalar()

    def reserve_if_free(self, type_id: int, attribute: str, value: str, anchor: str) -> bool:
        """Reserve ``value`` of ``attribute`` for ``anchor`` unless a target object or another
        reservation holds it (values as folded by the caller)."""
        ix = t.target_index.c
        taken = self.conn.execute(sa.select(ix.target_anchor).where(
            ix.type_id == type_id, ix.attribute == attribute, ix.value == value[:255]).limit(1)).first()
        if taken is not None:
            return False
        self.conn.execute(t.target_index.insert().values(type_id=type_id, attribute=attribute, value=value[:255],
                                                         target_anchor="~" + anchor))
        return True

    def target_name(self, type_id: int, target_anchor: str) -> str | None:
        to = t.target_objects.c
        return self.conn.execute(sa.select(to.name).where(to.type_id == type_id,
                                                          to.target_anchor == target_anchor)).scalar()

    def link(self, type_id: int, anchor: str, target_anchor: str) -> None:
        lk = t.links.c
        self.conn.execute(t.links.delete().where(lk.type_id == type_id, lk.source_anchor == anchor))
        self.conn.execute(t.links.insert().values(type_id=type_id, source_anchor=anchor,
                                                  target_anchor=target_anchor, live=True))

    # ---- compute -----------------------------------------------------------------------------

    def mark_all_dirty(self, type_id: int) -> None:
        so = t.source_objects.c
        self.conn.execute(t.source_objects.update().where(so.type_id == type_id).values(dirty=True))

    def mark_dirty(self, type_id: int, anchors: Sequence[str]) -> None:
        """Evaluate these objects again on the next compute (``provision preview``)."""
        so = t.source_objects.c
        for part in chunks(list(anchors)):
            self.conn.execute(t.source_objects.update().where(so.type_id == type_id, so.anchor.in_(part))
                              .values(dirty=True))

    def dirty_rows(self, type_id: int, after: str | None, limit: int) -> list[SourceRow]:
        """The next page of dirty source objects, with their link and what the target holds."""
        so, lk, to = t.source_objects.c, t.links.c, t.target_objects.c
        query = (
            sa.select(so.anchor, so.data, so.deleted, so.in_scope, so.exists_after,
                      lk.target_anchor, lk.live, to.data.label("target_data"), to.disabled, to.name)
            .select_from(t.source_objects
                         .outerjoin(t.links, sa.and_(lk.type_id == so.type_id, lk.source_anchor == so.anchor))
                         .outerjoin(t.target_objects, sa.and_(to.type_id == lk.type_id,
                                                              to.target_anchor == lk.target_anchor)))
            .where(so.type_id == type_id, so.dirty.is_(True))
            .order_by(so.anchor).limit(limit))
        if after is not None:
            query = query.where(so.anchor > after)
        return [SourceRow(r.anchor, json.loads(r.data), bool(r.deleted), r.in_scope, bool(r.exists_after),
                          r.target_anchor if r.live else None, bool(r.live),
                          json.loads(r.target_data) if r.target_data and r.live else None,
                          bool(r.disabled), r.name) for r in self.conn.execute(query)]

    def set_scope(self, type_id: int, updates: Sequence[tuple[str, bool | None, bool]]) -> None:
        """Store (anchor, in_scope, exists_after) for a page."""
        if not updates:
            return
        so = t.source_objects.c
        self.conn.execute(
            t.source_objects.update()
            .where(so.type_id == type_id, so.anchor == sa.bindparam("k_anchor"))
            .values(in_scope=sa.bindparam("in_scope"), exists_after=sa.bindparam("exists_after")),
            [dict(k_anchor=a, in_scope=s, exists_after=e) for a, s, e in updates])

    def exists_after(self, type_id: int, anchors: Iterable[str]) -> set[str]:
        """Which of ``anchors`` will exist in the target once this run's exports land."""
        so = t.source_objects.c
        found: set[str] = set()
        wanted = sorted(set(anchors))
        for part in chunks(wanted):
            found.update(self.conn.execute(sa.select(so.anchor).where(
                so.type_id == type_id, so.anchor.in_(part), so.exists_after.is_(True))).scalars())
        return found

    def mark_referrers_dirty(self, ref_type_id: int, anchors: Sequence[str], only_dropped: bool = False) -> None:
        """Re-evaluate objects whose references point at ``anchors`` (their value may change)."""
        so, rf = t.source_objects.c, t.refs.c
        for part in chunks(list(anchors)):
            cond = [rf.ref_type_id == ref_type_id, rf.ref_anchor.in_(part)]
            if only_dropped:
                cond.append(rf.dropped.is_(True))
            referrers = sa.select(rf.type_id, rf.anchor).where(*cond)
            self.conn.execute(t.source_objects.update()
                              .where(sa.tuple_(so.type_id, so.anchor).in_(referrers)).values(dirty=True))

    def replace_refs(self, type_id: int, anchors: Sequence[str], rows: Sequence[tuple[str, int, str]]) -> None:
        """Set the references held by ``anchors`` to ``rows`` of (anchor, ref_type_id, ref_anchor)."""
        rf = t.refs.c
        self.conn.execute(t.refs.delete().where(rf.type_id == type_id, rf.anchor.in_(list(anchors))))
        if rows:
            self.conn.execute(t.refs.insert(), [dict(type_id=type_id, anchor=a, ref_type_id=rt, ref_anchor=ra,
                                                     dropped=False) for a, rt, ra in set(rows)])

    def clean(self, type_id: int, anchors: Sequence[str], errors: dict[str, str]) -> None:
        """Mark computed objects clean; keep failed ones dirty, with their error."""
        if not anchors:
            return
        so = t.source_objects.c
        self.conn.execute(
            t.source_objects.update()
            .where(so.type_id == type_id, so.anchor == sa.bindparam("k_anchor"))
            .values(dirty=sa.bindparam("dirty"), error=sa.bindparam("error")),
            [dict(k_anchor=a, dirty=a in errors, error=errors.get(a)) for a in anchors])

    def forget_source(self, type_id: int, anchors: Sequence[str]) -> None:
        """Drop source objects that are gone and have nothing left in the target."""
        if not anchors:
            return
        so, rf, pe = t.source_objects.c, t.refs.c, t.pending.c
        self.conn.execute(t.source_objects.delete().where(so.type_id == type_id, so.anchor.in_(list(anchors))))
        self.conn.execute(t.refs.delete().where(rf.type_id == type_id, rf.anchor.in_(list(anchors))))
        self.conn.execute(t.pending.delete().where(pe.type_id == type_id, pe.source_anchor.in_(list(anchors))))

    def set_pending(self, type_id: int, entries: Sequence[Pending], cleared: Sequence[str]) -> None:
        """Replace the pending exports of a page; ``cleared`` anchors have nothing to export any more."""
        pe = t.pending.c
        anchors = [e.anchor for e in entries] + list(cleared)
        for part in chunks(anchors):
            self.conn.execute(t.pending.delete().where(pe.type_id == type_id, pe.source_anchor.in_(part)))
        if entries:
            self.conn.execute(t.pending.insert(), [
                dict(type_id=type_id, source_anchor=e.anchor, action=e.action, target_anchor=e.target_anchor,
                     name=e.name, depth=e.depth, payload=dumps(e.payload), attempts=0) for e in entries])

    # ---- export ------------------------------------------------------------------------------

    def pending_page(self, type_id: int, run_id: str, actions: Sequence[str], after: tuple[int, str] | None,
                     limit: int, deepest_first: bool = False) -> list[PendingRow]:
        """Pending exports not yet attempted by this run: parents before children (or children
        first, for deletes), then in anchor order. ``after`` is the last row's (depth, anchor)."""
        pe = t.pending.c
        depth = -pe.depth if deepest_first else pe.depth
        query = (sa.select(pe.source_anchor, pe.action, pe.target_anchor, pe.payload, pe.attempts, pe.last_error,
                           pe.name, pe.depth)
                 .where(pe.type_id == type_id, pe.action.in_(list(actions)),
                        sa.or_(pe.attempted_run.is_(None), pe.attempted_run != run_id))
                 .order_by(depth, pe.source_anchor).limit(limit))
        if after is not None:
            query = query.where(sa.tuple_(depth, pe.source_anchor) > sa.tuple_(*after))
        return [PendingRow(a, act, ta, json.loads(p), n, e, name, d)
                for a, act, ta, p, n, e, name, d in self.conn.execute(query)]

    def name_collisions(self, type_id: int) -> list[tuple[str, str, str | None]]:
        """(adding anchor, deleting anchor, deleted target anchor) where an add takes the name that a
        delete frees: the same object leaving and coming back (its anchor changed)."""
        add, gone = t.pending.alias("a"), t.pending.alias("d")
        query = (sa.select(add.c.source_anchor, gone.c.source_anchor, gone.c.target_anchor)
                 .select_from(add.join(gone, sa.and_(gone.c.type_id == add.c.type_id, gone.c.name == add.c.name)))
                 .where(add.c.type_id == type_id, add.c.action == "add", gone.c.action == "delete",
                        add.c.name.is_not(None)))
        return [(a, d, ta) for a, d, ta in self.conn.execute(query)]

    def all_pending_for(self, type_id: int, anchors: Sequence[str]) -> list[PendingRow]:
        pe = t.pending.c
        query = (sa.select(pe.source_anchor, pe.action, pe.target_anchor, pe.payload, pe.attempts, pe.last_error,
                           pe.name, pe.depth).where(pe.type_id == type_id, pe.source_anchor.in_(list(anchors))))
        return [PendingRow(a, act, ta, json.loads(p), n, e, name, d)
                for a, act, ta, p, n, e, name, d in self.conn.execute(query)]

    def drop_pending(self, type_id: int, anchors: Sequence[str]) -> None:
        pe = t.pending.c
        self.conn.execute(t.pending.delete().where(pe.type_id == type_id, pe.source_anchor.in_(list(anchors))))

    def update_pending(self, type_id: int, anchor: str, action: str, payload: dict[str, Any],
                       target_anchor: str | None) -> None:
        pe = t.pending.c
        self.conn.execute(t.pending.update().where(pe.type_id == type_id, pe.source_anchor == anchor)
                          .values(action=action, payload=dumps(payload), target_anchor=target_anchor))

    def all_pending(self, type_id: int, after: str | None, limit: int) -> list[PendingRow]:
        pe = t.pending.c
        query = (sa.select(pe.source_anchor, pe.action, pe.target_anchor, pe.payload, pe.attempts, pe.last_error,
                           pe.name, pe.depth)
                 .where(pe.type_id == type_id).order_by(pe.source_anchor).limit(limit))
        if after is not None:
            query = query.where(pe.source_anchor > after)
        return [PendingRow(a, act, ta, json.loads(p), n, e, name, d)
                for a, act, ta, p, n, e, name, d in self.conn.execute(query)]

    def pending_adds(self, type_id: int, anchors: Iterable[str], run_id: str) -> set[str]:
        """Which of ``anchors`` have an add waiting that this run has not tried yet."""
        pe = t.pending.c
        found: set[str] = set()
        for part in chunks(sorted(set(anchors))):
            found.update(self.conn.execute(sa.select(pe.source_anchor).where(
                pe.type_id == type_id, pe.source_anchor.in_(part), pe.action == "add",
                sa.or_(pe.attempted_run.is_(None), pe.attempted_run != run_id))).scalars())
        return found

    def target_anchors(self, type_id: int, anchors: Iterable[str], live_only: bool = True) -> dict[str, str]:
        lk = t.links.c
        found: dict[str, str] = {}
        for part in chunks(sorted(set(anchors))):
            cond = [lk.type_id == type_id, lk.source_anchor.in_(part)]
            if live_only:
                cond.append(lk.live.is_(True))
            for source_anchor, target_anchor in self.conn.execute(sa.select(lk.source_anchor, lk.target_anchor).where(*cond)):
                found[source_anchor] = target_anchor
        return found

    def source_data(self, type_id: int, anchor: str) -> dict[str, Any] | None:
        so = t.source_objects.c
        data = self.conn.execute(sa.select(so.data).where(so.type_id == type_id, so.anchor == anchor)).scalar()
        return json.loads(data) if data is not None else None

    def targets_data(self, type_id: int, target_anchors: Sequence[str]) -> dict[str, tuple[dict[str, Any], bool]]:
        """What the target holds for each of ``target_anchors``: (data, disabled)."""
        to = t.target_objects.c
        found: dict[str, tuple[dict[str, Any], bool]] = {}
        for part in chunks(sorted(set(target_anchors))):
            for anchor, data, disabled in self.conn.execute(sa.select(to.target_anchor, to.data, to.disabled).where(
                    to.type_id == type_id, to.target_anchor.in_(part))):
                found[anchor] = (json.loads(data), bool(disabled))
        return found

    def record(self, type_id: int, run_id: str, done: Confirmations) -> None:
        """Write one export batch's confirmations and failures, a few executemany statements in all."""
        lk, to, pe, rf, so = t.links.c, t.target_objects.c, t.pending.c, t.refs.c, t.source_objects.c
        conn = self.conn
        if done.deletes:
            conn.execute(t.links.update().where(lk.type_id == type_id,
                                                lk.source_anchor.in_([a for a, _, _ in done.deletes]))
                         .values(live=False))
            conn.execute(t.target_objects.delete().where(
                to.type_id == type_id, to.target_anchor.in_([ta for _, ta, _ in done.deletes if ta is not None])))
            self.forget_source(type_id, [a for a, _, gone in done.deletes if gone])
            ix = t.target_index.c  # values select_unique_value reserved are free again
            conn.execute(t.target_index.delete().where(ix.type_id == type_id, ix.target_anchor.in_(
                ["~" + a for a, _, _ in done.deletes] + [ta for _, ta, _ in done.deletes if ta is not None])))
        if done.adds:
            anchors = [a for a, _, _, _ in done.adds]
            conn.execute(t.links.delete().where(lk.type_id == type_id, lk.source_anchor.in_(anchors)))
            conn.execute(t.target_objects.delete().where(to.type_id == type_id,
                                                         to.target_anchor.in_([ta for _, ta, _, _ in done.adds])))
            conn.execute(t.links.insert(), [dict(type_id=type_id, source_anchor=a, target_anchor=ta, live=True)
                                            for a, ta, _, _ in done.adds])
            conn.execute(t.target_objects.insert(), [dict(type_id=type_id, target_anchor=ta, data=dumps(d),
                                                          name=n, disabled=False) for _, ta, d, n in done.adds])
        renamed = [dict(k_anchor=a, k_new=new) for a, old, new, *_ in done.updates if new != old]
        if renamed:
            conn.execute(t.links.update().where(lk.type_id == type_id, lk.source_anchor == sa.bindparam("k_anchor"))
                         .values(target_anchor=sa.bindparam("k_new")), renamed)
        if done.updates:
            conn.execute(t.target_objects.update()
                         .where(to.type_id == type_id, to.target_anchor == sa.bindparam("k_old"))
                         .values(target_anchor=sa.bindparam("k_new"), data=sa.bindparam("k_data"),
                                 disabled=sa.bindparam("k_disabled"), name=sa.bindparam("k_name")),
                         [dict(k_old=old, k_new=new, k_data=dumps(d), k_disabled=dis, k_name=n)
                          for _, old, new, d, dis, n in done.updates])
        finished = [a for a, *_ in done.adds] + [a for a, *_ in done.updates] + [a for a, _, _ in done.deletes]
        for part in chunks(finished):
            conn.execute(t.pending.delete().where(pe.type_id == type_id, pe.source_anchor.in_(part)))
        self.set_pending(type_id, done.followups, [])
        if done.failures:
            conn.execute(t.pending.update()
                         .where(pe.type_id == type_id, pe.source_anchor == sa.bindparam("k_anchor"))
                         .values(attempts=pe.attempts + 1, last_error=sa.bindparam("k_error"), attempted_run=run_id),
                         [dict(k_anchor=a, k_error=e) for a, e in done.failures])
        if done.retries:
            conn.execute(t.pending.update()
                         .where(pe.type_id == type_id, pe.source_anchor == sa.bindparam("k_anchor"))
                         .values(attempts=pe.attempts + 1, last_error=sa.bindparam("k_error")),
                         [dict(k_anchor=a, k_error=e) for a, e in done.retries])
        if done.recompute:
            for anchor, target_anchor in done.recompute:
                conn.execute(t.links.delete().where(lk.type_id == type_id, lk.source_anchor == anchor))
                conn.execute(t.target_objects.delete().where(to.type_id == type_id, to.target_anchor == target_anchor))
            conn.execute(t.source_objects.update().where(so.type_id == type_id,
                                                         so.anchor.in_([a for a, _ in done.recompute])).values(dirty=True))
        if done.dropped:
            conn.execute(t.refs.update().where(rf.type_id == type_id, rf.anchor == sa.bindparam("k_anchor"),
                                               rf.ref_type_id == sa.bindparam("k_type"),
                                               rf.ref_anchor == sa.bindparam("k_ref")).values(dropped=True),
                         [dict(k_anchor=a, k_type=rt, k_ref=r) for a, rt, r in done.dropped])
        # references to what was just added (left out before) or deleted change their value
        self.mark_referrers_dirty(type_id, [a for a, *_ in done.adds], only_dropped=True)
        self.mark_referrers_dirty(type_id, [a for a, _, _ in done.deletes])

    def prune_tombstones(self, type_id: int) -> None:
        """Forget target anchors of deleted objects that nothing references any more."""
        lk, rf = t.links.c, t.refs.c
        still_needed = sa.select(rf.ref_anchor).where(rf.ref_type_id == type_id)
        self.conn.execute(t.links.delete().where(lk.type_id == type_id, lk.live.is_(False),
                                                 lk.source_anchor.not_in(still_needed)))

    # ---- provisioning log --------------------------------------------------------------------

    def read_log(self, pipeline: str, run_id: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        c = t.log.c
        query = sa.select(c.entry).where(c.pipeline == pipeline).order_by(c.id).limit(limit)
        if run_id:
            query = query.where(c.run_id == run_id)
        return [json.loads(e) for e in self.conn.execute(query).scalars()]

    def write_log(self, entries: Sequence[dict[str, Any]]) -> None:
        if entries:
            self.conn.execute(t.log.insert(), [
                dict(run_id=e["run_id"], time=e["time"], pipeline=e["pipeline"], object_type=e["object_type"],
                     anchor=e["anchor"], action=e["action"], result=e["result"], entry=dumps(e))
                for e in entries])


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


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()
