"""The provisioning log, queried: ``provision logs``.

Every filter is an index range: one object's story by (pipeline, anchor, time), a run's entries
by run id, the recent past by (pipeline, time); the rest (type, action, result) is checked on
the rows those give. Newest first, a page at a time.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from runner.state import tables as t
from runner.state.store import StateStore


def entries(store: StateStore, pipeline: str, *, anchor: str | None = None, object_type: str | None = None,
            action: str | None = None, result: str | None = None, since: str | None = None,
            run_id: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
    """Log entries, newest first, each with the commit of the manifest its run used."""
    lg, r = t.log.c, t.runs.c
    query = (sa.select(lg.entry, lg.time, r.manifest_commit, r.manifest_hash)
             .select_from(t.log.outerjoin(t.runs, r.run_id == lg.run_id))
             .where(lg.pipeline == pipeline).order_by(lg.time.desc(), lg.id.desc()).limit(limit))
    for column, value in ((lg.anchor, anchor), (lg.object_type, object_type), (lg.action, action),
                          (lg.result, result), (lg.run_id, run_id)):
        if value is not None:
            query = query.where(column == value)
    if since is not None:
        query = query.where(lg.time >= since)
    out = []
    for entry, time, commit, manifest_hash in store.conn.execute(query):
        found = json.loads(entry)
        found["time"] = found.get("time") or time
        found["manifest_commit"], found["manifest_hash"] = commit, manifest_hash
        out.append(found)
    return out
