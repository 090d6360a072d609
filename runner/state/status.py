"""What ``provision status`` reads from the state store: the queries behind it, read only.

:mod:`runner.engine.status` assembles the report from these and the store's counts; nothing here
writes. A pipeline that never ran has no SQLite file, and none is made to read it
(``open_store(manifest, Mode.READ)``, :mod:`runner.state.opening`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from runner.state import tables as t
from runner.state.runs import LockHolder
from runner.state.store import StateStore


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


def failure_groups(store: StateStore, type_id: int, examples: int = 3, limit: int = 50) -> list[dict[str, Any]]:
    """Failing objects grouped by their error, most frequent first, each group with a few anchors."""
    so, pe = t.source_objects.c, t.pending.c
    groups: dict[str, dict[str, Any]] = {}
    for table_anchor, error_column, where in ((so.anchor, so.error, so.type_id == type_id),
                                              (pe.source_anchor, pe.last_error, pe.type_id == type_id)):
        count = sa.func.count().label("n")
        for error, n in store.conn.execute(sa.select(error_column, count).where(where, error_column.is_not(None))
                                           .group_by(error_column).order_by(count.desc()).limit(limit)):
            group = groups.setdefault(error, {"error": error, "count": 0, "examples": []})
            group["count"] += n
            group["examples"] += store.conn.execute(sa.select(table_anchor).where(where, error_column == error)
                                                    .order_by(table_anchor).limit(examples)).scalars().all()
    return sorted(groups.values(), key=lambda g: -g["count"])[:limit]


def pending_queue(store: StateStore, type_id: int, due: str, limit: int | None = 200,
                  anchors: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Pending exports in the order an operator reads them: in doubt first, then failing (blocked,
    then waiting for their next attempt), then the rest; each with its state in words."""
    pe = t.pending.c
    query = sa.select(pe.source_anchor, pe.action, pe.attempts, pe.last_error, pe.next_attempt, pe.held,
                      pe.sent_run, pe.target_anchor, pe.since).where(pe.type_id == type_id)
    if anchors:
        query = query.where(pe.source_anchor.in_(list(anchors)))
    order = sa.case((pe.sent_run.is_not(None), 0), (pe.held.is_(True), 1), (pe.last_error.is_not(None), 2), else_=3)
    query = query.order_by(order, pe.source_anchor)
    if limit is not None:
        query = query.limit(limit)
    out = []
    for anchor, action, attempts, error, next_attempt, held, sent_run, target, since in store.conn.execute(query):
        state = ("in doubt" if sent_run else "blocked" if held else
                 "waiting" if next_attempt and next_attempt > due else "failing" if error else "due")
        out.append({"anchor": anchor, "action": action, "state": state, "attempts": attempts, "last_error": error,
                    "next_attempt": next_attempt or None, "sent_run": sent_run, "target_anchor": target,
                    "pending_since": since})
    return out
