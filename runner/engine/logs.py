"""``provision logs``: the provisioning log as steps per object, the way Entra's logs read.

Each entry the export recorded (one per object and operation) is shown as its steps: import
(the source record the run read), scope, match (the target object it is linked to, or none
yet), the action, and the export with its outcome, the attributes it changed (old -> new,
secrets as ``***``) and the mapping rule behind each value, with the run and the commit of the
manifest that run used. The first three are read from what the entry holds (an add had no
target object; a delete or disable follows a source record gone or out of scope); the rules
are those of the manifest as it is now, so the commit is shown to compare with.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner import durations, retries
from runner.errors import UsageError
from runner.mapping.checks import load
from runner.mapping.explain import rule_text
from runner.state import logquery
from runner.state.opening import Mode, open_store

REMOVING = {"delete", "disable"}


@dataclass(frozen=True)
class Filters:
    anchor: str | None = None
    object_type: str | None = None
    action: str | None = None
    result: str | None = None
    since: str | None = None  # a duration back from now: 24h, 7d
    run_id: str | None = None
    limit: int = 200


def logs(path: str | Path, filters: Filters) -> dict[str, Any]:
    manifest = load(path)
    if filters.object_type and manifest.object_type(filters.object_type) is None:
        raise UsageError(f"no object type {filters.object_type!r} in {manifest.path.name}")
    since = None
    if filters.since:
        seconds = durations.seconds(filters.since)
        if seconds is None:
            raise UsageError(f"--since {filters.since!r}: a duration such as 24h or 7d")
        since = retries.stamp(retries.now() - dt.timedelta(seconds=seconds))
    rules = {ot.name: {m.target: rule_text(m) for m in ot.mapping if not m.proposed_only}
             for ot in manifest.object_types}
    store = open_store(manifest, Mode.READ)
    try:
        found = logquery.entries(store, manifest.name, anchor=filters.anchor, object_type=filters.object_type,
                                 action=filters.action, result=filters.result, since=since,
                                 run_id=filters.run_id, limit=filters.limit)
    finally:
        store.close()
    stories = [story(e, rules.get(e["object_type"], {})) for e in found if e["anchor"] != "*"]
    return {"pipeline": manifest.name, "entries": stories, "more": len(found) >= filters.limit}


COMPUTE_STEPS = ("scope", "match", "map")  # failures compute records before any action is decided


def story(entry: dict[str, Any], rules: dict[str, str]) -> dict[str, Any]:
    action, result = entry["action"], entry["result"]
    removing = action in REMOVING
    if action in COMPUTE_STEPS:  # the object failed before an action was decided: the steps stop there
        steps = [{"step": "import", "outcome": "source record read"}]
        steps += [{"step": s, "outcome": "ok"} for s in COMPUTE_STEPS[:COMPUTE_STEPS.index(action)]]
        steps.append({"step": action, "outcome": result, "error": entry.get("error")})
        return {"time": entry["time"], "run_id": entry["run_id"], "manifest_commit": entry.get("manifest_commit"),
                "object_type": entry["object_type"], "anchor": entry["anchor"], "action": action,
                "result": result, "steps": steps}
    steps = [
        {"step": "import", "outcome": "gone from the source, or its record changed" if removing
         else "source record read"},
        {"step": "scope", "outcome": "out of scope or gone" if removing else "in scope"},
        {"step": "match", "outcome": f"linked to target object {entry['target_anchor']}"
         if entry.get("target_anchor") and action != "add" else "no target object yet" if action == "add"
         else "linked"},
        {"step": "action", "outcome": action},
        {"step": "export", "outcome": result, "error": entry.get("error"),
         "changes": {a: {**c, **({"rule": rules[a]} if a in rules else {})}
                     for a, c in (entry.get("changes") or {}).items()}},
    ]
    return {"time": entry["time"], "run_id": entry["run_id"], "manifest_commit": entry.get("manifest_commit"),
            "object_type": entry["object_type"], "anchor": entry["anchor"], "action": action, "result": result,
            "steps": steps}
