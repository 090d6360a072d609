"""``provision approve``: release named objects the deletion guard holds, and no others.

What the guard holds is a plan of its own: the deletes and disables a run (or a saved plan)
did not send because there were too many. A person looks at the list (``provision status``,
or the plan), and approves objects by anchor; the next run (or ``apply`` of that plan) sends
exactly those, each only if the action it was approved for is still the one pending, while
the guard keeps holding the rest. Without ``--anchor`` every object held now is approved.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass, field
from pathlib import Path

from runner.engine import planfile, safety
from runner.errors import UsageError
from runner.mapping.checks import load
from runner.state.approvals import Held
from runner.state.opening import Mode, open_store


@dataclass
class Approval:
    pipeline: str
    released_from: str | None
    from_plan: bool = False
    approved: dict[str, list[Held]] = field(default_factory=dict)  # object type -> objects

    def as_json(self) -> dict:
        return {"pipeline": self.pipeline, "released_from": self.released_from,
                "approved": {name: [{"anchor": h.source_anchor, "action": h.action, "name": h.name} for h in held]
                             for name, held in self.approved.items()}}


def approve(file: Path, run_id: str | None, anchors: list[str], object_types: tuple[str, ...] = ()) -> Approval:
    """Record approvals for ``anchors`` (every held object when empty) of the pipeline in
    ``file``, a manifest or a plan saved by ``plan --out``. Nothing is recorded when any named
    anchor is not held: a UsageError names it."""
    plan = _plan_or_none(file)
    manifest = load(plan.manifest_path if plan else file)
    released_from = plan.header["plan_id"] if plan else run_id
    planned = plan.held() if plan else None
    types = [t for t in manifest.object_types if not object_types or t.name in object_types]
    store = open_store(manifest, Mode.WRITE)
    try:
        if run_id is not None and plan is None and not store.approvals.run_exists(manifest.name, run_id):
            raise UsageError(f"no run {run_id!r} of {manifest.name!r} in its state store; `provision status "
                             f"{file}` lists the runs")
        found: dict[str, list[Held]] = {}
        for ot in types:
            type_id = store.type_id(manifest.name, ot.name)
            held = store.approvals.guarded_pending(type_id, safety.GUARDED)
            if planned is not None:  # a plan's held objects, still pending as the plan saw them
                mine = planned.get(ot.name, {})
                held = [h for h in held if h.source_anchor in mine and mine[h.source_anchor]["action"] == h.action]
            found[ot.name] = held
        chosen = _choose(found, anchors, file)
        approval = Approval(manifest.name, released_from, plan is not None)
        for ot in types:
            if chosen.get(ot.name):
                store.approvals.approve(store.type_id(manifest.name, ot.name), chosen[ot.name], _user(), released_from)
                approval.approved[ot.name] = chosen[ot.name]
        store.commit()
        return approval
    finally:
        store.close()


def _choose(found: dict[str, list[Held]], anchors: list[str], file: Path) -> dict[str, list[Held]]:
    if not anchors:
        if not any(found.values()):
            raise UsageError(f"{file}: nothing is held by the deletion guard")
        return found
    by_anchor = {h.source_anchor: (name, h) for name, held in found.items() for h in held}
    unknown = [a for a in anchors if a not in by_anchor]
    if unknown:
        raise UsageError(f"not held by the deletion guard: {', '.join(unknown)} (nothing was approved); "
                         f"`provision status` lists what it holds")
    chosen: dict[str, list[Held]] = {}
    for anchor in dict.fromkeys(anchors):
        name, held = by_anchor[anchor]
        chosen.setdefault(name, []).append(held)
    return chosen


def _plan_or_none(file: Path) -> planfile.SavedPlan | None:
    try:
        with file.open(encoding="utf-8") as f:
            first = f.read(64)
    except OSError as e:
        raise UsageError(f"{file}: {e.strerror}") from None
    return planfile.read(file) if f'"format": "{planfile.FORMAT}"' in first else None


def _user() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None
