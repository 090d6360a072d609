"""``provision status``: what the state store knows about a pipeline, without running anything.

Read only: the store is opened with deferred transactions (WAL), so ``status`` never takes the
write lock and never makes a running run wait; a pipeline that never ran leaves no file behind.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from runner.engine import cadence
from runner.manifest import load
from runner.manifest.model import Manifest
from runner.sqlutil import shown_url, sqlalchemy_url
from runner.state import tables as t
from runner.state.store import StateStore, state_url

FAILURES_SHOWN = 20  # per object type, unless --failures says otherwise

_NO_COUNTS = {"source_objects": 0, "in_scope": 0, "linked": 0, "pending": 0, "in_doubt": 0, "failing": 0}


def status(path: str | Path, failures: int | None = FAILURES_SHOWN) -> dict[str, Any]:
    """The pipeline's lock, counts per object type with up to ``failures`` failures each (None:
    all of them; ``failures_not_shown`` says how many were left out), and its recent runs."""
    manifest = load(path)
    store = _open(manifest)
    try:
        lock = store.conn.execute(sa.select(t.locks).where(t.locks.c.pipeline == manifest.name)).first()
        types: dict[str, Any] = {}
        for ot in manifest.object_types:
            type_id = store.conn.execute(sa.select(t.object_types.c.id).where(
                t.object_types.c.pipeline == manifest.name, t.object_types.c.name == ot.name)).scalar()
            counts = dict(_NO_COUNTS) if type_id is None else store.counts(type_id)
            listed = [] if type_id is None else _failures(store, type_id, failures)
            types[ot.name] = counts | {"failures": listed,
                                       "failures_not_shown": max(0, counts["failing"] - len(listed)),
                                       "reconciled": None if type_id is None else _reconciled(store, type_id)}
        return {
            "pipeline": manifest.name,
            "state": store.url_shown,
            "lock": f"run {lock.run_id} by {lock.user} on {lock.host}, pid {lock.pid}, since {lock.acquired}"
            if lock else None,
            "quarantine": quarantined.describe() if (quarantined := store.quarantine(manifest.name)) else None,
            "failing": sum(c["failing"] for c in types.values()),
            "object_types": types,
            "runs": [run | {"duration_seconds": _duration(run)} for run in store.recent_runs(manifest.name)],
        }
    finally:
        store.close()


def _open(manifest: Manifest) -> StateStore:
    """The state store, read only; an empty in-memory one when a SQLite store does not exist yet."""
    url = state_url(manifest, create=False)
    parsed = sqlalchemy_url(url, manifest.base_dir)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:") \
            and not Path(parsed.database).exists():
        store = StateStore("sqlite://", manifest.base_dir, read_only=True)
        store.url_shown = shown_url(parsed)
        return store
    return StateStore(url, manifest.base_dir, read_only=True)


def _reconciled(store: StateStore, type_id: int) -> dict[str, Any] | None:
    """When the target was last reconciled and what that found besides linked objects (orphans,
    drift, ...), or None when it never was."""
    last = cadence.read(store.watermark(type_id, "target", None))
    if last is None:
        return None
    return {"at": last["at"], "found": store.finding_counts(type_id)}


def _failures(store: StateStore, type_id: int, limit: int | None) -> list[tuple[str, str]]:
    """Objects whose last compute failed, then pending exports whose last attempt failed, by anchor."""
    so, pe = t.source_objects.c, t.pending.c
    queries = [sa.select(so.anchor, so.error).where(so.type_id == type_id, so.error.is_not(None)).order_by(so.anchor),
               sa.select(pe.source_anchor, pe.last_error).where(pe.type_id == type_id, pe.last_error.is_not(None))
               .order_by(pe.source_anchor)]
    out: list[tuple[str, str]] = []
    for query in queries:
        if limit is not None:
            if len(out) >= limit:
                break
            query = query.limit(limit - len(out))
        out += [(anchor, error) for anchor, error in store.conn.execute(query)]
    return out


def _duration(run: dict[str, Any]) -> float | None:
    """Seconds from start to finish of a finished run."""
    if not run.get("started") or not run.get("finished"):
        return None
    try:
        started = dt.datetime.fromisoformat(run["started"])
        finished = dt.datetime.fromisoformat(run["finished"])
    except ValueError:
        return None
    return round((finished - started).total_seconds(), 3)
