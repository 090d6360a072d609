"""What an operator looks at: the pending queue (``provision pending``) and the data of the HTML
report (``provision report --html``): runs over time, failures grouped by error, the queue, held
deletes and the quarantine. Read only, like ``status``: it never makes a running run wait."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from runner import retries
from runner.engine.status import status_of
from runner.mapping.checks import load
from runner.state import status as queries
from runner.state.opening import Mode, open_store


def pending(path: str | Path, anchors: tuple[str, ...] = (), limit: int | None = 200) -> dict[str, Any]:
    """Per object type, the pending exports: in doubt, blocked, waiting (with the next attempt),
    failing and due, each with its action, attempts and last error."""
    manifest = load(path)
    store = open_store(manifest, Mode.READ)
    try:
        due = retries.stamp(retries.now())
        out: dict[str, Any] = {}
        for ot in manifest.object_types:
            type_id = queries.known_type_id(store, manifest.name, ot.name)
            out[ot.name] = [] if type_id is None else queries.pending_queue(store, type_id, due, limit, anchors)
        return {"pipeline": manifest.name, "object_types": out}
    finally:
        store.close()


def overview(path: str | Path, runs: int = 30) -> dict[str, Any]:
    """The HTML report's data: :func:`status` with more runs, failures grouped by error and the queue."""
    manifest = load(path)
    store = open_store(manifest, Mode.READ)
    try:
        report = status_of(manifest, store, failures=200, runs=runs)
        groups: list[dict[str, Any]] = []
        queue: list[dict[str, Any]] = []
        due = retries.stamp(retries.now())
        for ot in manifest.object_types:
            type_id = queries.known_type_id(store, manifest.name, ot.name)
            if type_id is None:
                continue
            groups += [{**g, "object_type": ot.name} for g in queries.failure_groups(store, type_id)]
            queue += [{**p, "object_type": ot.name} for p in queries.pending_queue(store, type_id, due, 200)]
    finally:
        store.close()
    finished = [r for r in report["runs"] if r.get("kind") in ("run", "apply")]
    slowest = sorted(({**o, "object_type": name, "run_id": r["run_id"]} for r in finished
                      for name, c in ((r.get("summary") or {}).get("object_types") or {}).items()
                      for o in c.get("slowest") or ()), key=lambda o: -o["seconds"])[:SLOWEST]
    return {"pipeline": report["pipeline"], "state": report["state"], "quarantine": report["quarantine"],
            "generated": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "runs": [_run(r) for r in reversed(finished)],
            "failures": sorted(groups, key=lambda g: -g["count"]), "pending": queue, "held": report["held"],
            "slowest": slowest}


SLOWEST = 10  # operations the report names


def _run(run: dict[str, Any]) -> dict[str, Any]:
    summary = run.get("summary") or {}
    return {"run_id": run["run_id"], "kind": run["kind"], "status": run["status"], "started": run["started"],
            "duration_seconds": run.get("duration_seconds"), "manifest_commit": run.get("manifest_commit"),
            "object_types": summary.get("object_types") or {}}
