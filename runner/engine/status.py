"""``provision status``: what the state store knows about a pipeline, without running anything."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa

from runner.engine.run import open_store
from runner.manifest import load
from runner.state import tables as t


def status(path: str | Path) -> dict[str, Any]:
    manifest = load(path)
    store = open_store(manifest)
    try:
        lock = store.conn.execute(sa.select(t.locks).where(t.locks.c.pipeline == manifest.name)).first()
        types: dict[str, Any] = {}
        for ot in manifest.object_types:
            type_id = store.type_id(manifest.name, ot.name)
            types[ot.name] = store.counts(type_id) | {"failures": store.failures(type_id)}
        return {
            "pipeline": manifest.name,
            "state": store.url_shown,
            "lock": f"run {lock.run_id} by {lock.user} on {lock.host}, pid {lock.pid}, since {lock.acquired}"
            if lock else None,
            "object_types": types,
            "runs": store.recent_runs(manifest.name),
        }
    finally:
        store.close()
