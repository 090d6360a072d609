"""What ``provision status`` reads from the state store: the queries behind it, read only.

:mod:`runner.engine.status` assembles the report from these and the store's counts; nothing here
writes. A pipeline that never ran has no SQLite file, and none is made to read it.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from runner.manifest.model import Manifest
from runner.sqlutil import shown_url, sqlalchemy_url
from runner.state import tables as t
from runner.state.runs import LockHolder
from runner.state.store import StateStore, state_url


def open_read_only(manifest: Manifest) -> StateStore:
    """The state store, read only; an empty in-memory one when a SQLite store does not exist yet."""
    url = state_url(manifest, create=False)
    parsed = sqlalchemy_url(url, manifest.base_dir)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:") \
            and not Path(parsed.database).exists():
        store = StateStore("sqlite://", manifest.base_dir, read_only=True)
        store.url_shown = shown_url(parsed)
        return store
    return StateStore(url, manifest.base_dir, read_only=True)


def lock_holder(store: StateStore, pipeline: str) -> LockHolder | None:
    """Who holds the pipeline's lock, or None."""
    row = store.conn.execute(sa.select(t.locks).where(t.locks.c.pipeline == pipeline)).first()
    if row is None:
        return None
    return LockHolder(row.run_id, row.host, row.pid, row.user, row.acquired)


def known_type_id(store: StateStore, pipeline: str, name: str) -> int | None:
    """The id of an object type the store knows, or None (unlike ``store.type_id``, never adds it)."""
    return store.conn.execute(sa.select(t.object_types.c.id).where(
        t.object_types.c.pipeline == pipeline, t.object_types.c.name == name)).scalar()


def failures(store: StateStore, type_id: int, limit: int | None) -> list[tuple[str, str]]:
    """Objects whose last compute failed, then pending exports whose last attempt failed, by anchor;
    up to ``limit`` of them (None: all)."""
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
