"""``provision status``: what the state store knows about a pipeline, without running anything.

The queries are the state's (:mod:`runner.state.status`); this module assembles their answers.

Read only: the store is opened with deferred transactions (WAL), so ``status`` never takes the
write lock and never makes a running run wait; a pipeline that never ran leaves no file behind.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from runner.engine import cadence
from runner.engine.plan import GUARDED
from runner.manifest.model import Manifest
from runner.mapping.checks import load
from runner.state import status as queries
from runner.state.opening import Mode, open_store
from runner.state.store import StateStore

FAILURES_SHOWN = 20  # per object type, unless --failures says otherwise

_NO_COUNTS = {"source_objects": 0, "in_scope": 0, "linked": 0, "pending": 0, "oldest_pending": None, "in_doubt": 0,
              "failing": 0}


def status(path: str | Path, failures: int | None = FAILURES_SHOWN, runs: int = 10) -> dict[str, Any]:
    """The pipeline's lock, counts per object type with up to ``failures`` failures each (None:
    all of them; ``failures_not_shown`` says how many were left out), and its recent runs."""
    manifest = load(path)
    store = open_store(manifest, Mode.READ)
    try:
        return status_of(manifest, store, failures, runs)
    finally:
        store.close()


def status_of(manifest: Manifest, store: StateStore, failures: int | None = FAILURES_SHOWN,
              runs: int = 10) -> dict[str, Any]:
    """:func:`status` on a manifest already loaded and a store already open (the report reads more)."""
    lock = queries.lock_holder(store, manifest.name)
    types: dict[str, Any] = {}
    for ot in manifest.object_types:
        type_id = queries.known_type_id(store, manifest.name, ot.name)
        counts = dict(_NO_COUNTS) if type_id is None else store.runs.counts(type_id)
        listed = [] if type_id is None else queries.failures(store, type_id, failures)
        types[ot.name] = counts | {"failures": listed,
                                   "failures_not_shown": max(0, counts["failing"] - len(listed)),
                                   "reconciled": None if type_id is None else _reconciled(store, type_id)}
    recent = store.runs.recent_runs(manifest.name, runs)
    return {
        "pipeline": manifest.name,
        "state": store.url_shown,
        "lock": lock.describe() if lock else None,
        "quarantine": quarantined.describe() if (quarantined := store.runs.quarantine(manifest.name)) else None,
        "failing": sum(c["failing"] for c in types.values()),
        "object_types": types,
        "held": _held(store, manifest, recent, failures),
        "runs": [run | {"duration_seconds": _duration(run)} for run in recent],
    }


def _held(store: StateStore, manifest: Any, runs: list[dict[str, Any]], shown: int | None) -> dict[str, Any]:
    """What the deletion guard held in the last run, per object type, and still holds: the objects
    waiting for ``provision approve`` (or ``--allow-deletes``), each with whether it is approved."""
    last = next((r for r in runs if r["kind"] in ("run", "apply") and r.get("summary")), None)
    if last is None:
        return {}
    out: dict[str, Any] = {}
    for name, counts in (last["summary"].get("object_types") or {}).items():
        type_id = queries.known_type_id(store, manifest.name, name)
        if not counts.get("held") or type_id is None:
            continue
        held = store.approvals.guarded_pending(type_id, GUARDED)
        if held:
            out[name] = {"run": last["run_id"], "count": len(held), "approved": sum(h.approved for h in held),
                         "objects": [{"anchor": h.source_anchor, "action": h.action, "name": h.name,
                                      "approved": h.approved} for h in held[:shown]]}
    return out


def _reconciled(store: StateStore, type_id: int) -> dict[str, Any] | None:
    """When the target was last reconciled and what that found besides linked objects (orphans,
    drift, ...), or None when it never was."""
    last = cadence.read(store.imports.watermark(type_id, "target", None))
    if last is None:
        return None
    return {"at": last["at"], "found": store.reconcile.finding_counts(type_id)}


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
