"""``provision apply``'s gate: after import and compute, before anything is sent, the plan that
was reviewed is compared with the one the engine computes now.

Per planned object, each of these refuses the whole apply (nothing is sent to any target):
the operation is no longer pending (a run carried it out meanwhile, or it is no longer needed),
its action or change differs, the source record is not the one the plan saw, or the target
object reads back differently than it did. Objects pending now that the plan does not hold are
left for a later run: apply sends exactly what was reviewed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from runner.engine.context import RunContext
from runner.engine.plan import GUARDED, PlanItem, fingerprints, plan_items
from runner.manifest.model import ObjectType
from runner.mapping.mapper import Mapper

BATCH = 500


@dataclass(frozen=True)
class Refusal:
    object_type: str
    anchor: str
    reason: str

    def __str__(self) -> str:
        return f"{self.object_type} {self.anchor}: {self.reason}"


def check(ctx: RunContext, types: list[tuple[ObjectType, Any]]) -> tuple[list[Refusal], int]:
    """Every type's planned operations against what compute decided now: the refusals, and how
    many operations pending now the plan does not hold (``types``: each with its run counts)."""
    saved = ctx.options.apply
    refusals: list[Refusal] = []
    unplanned = 0
    for ot, counts in types:
        found, more = compare(ctx, ot, saved.operations(ot.name), bool(counts.held))
        refusals += found
        unplanned += more
    ctx.store.commit()
    return refusals, unplanned


def planned(ctx: RunContext, ot: ObjectType) -> set[str]:
    """The objects whose pending exports apply may send: the plan's operations, and those of its
    held deletes and disables approved since (``provision approve``)."""
    saved = ctx.options.apply
    held = set(saved.held().get(ot.name, ()))
    approved = {h.source_anchor for h in ctx.store.approvals.guarded_pending(ctx.type_ids[ot.name], GUARDED)
                if h.approved and h.source_anchor in held} if held else set()
    return set(saved.operations(ot.name)) | approved


def compare(ctx: RunContext, ot: ObjectType, planned: dict[str, dict[str, Any]], held: bool) -> tuple[
        list[Refusal], int]:
    """The planned operations of ``ot`` against what compute decided now: the refusals, and how
    many pending operations the plan does not hold (left pending, not sent)."""
    mapper = Mapper(ot)
    now: dict[str, PlanItem] = {}
    unplanned = 0
    for item, state in plan_items(ctx, ot, held=held):
        if item.anchor in planned and state is None and not item.held:
            now[item.anchor] = item
        elif state is None and not item.held:
            unplanned += 1
    refusals: list[Refusal] = []
    present = [now[a] for a in planned if a in now]
    for anchor, entry in planned.items():
        if anchor not in now:
            refusals.append(Refusal(ot.name, anchor, f"the planned {entry['action']} is no longer pending (a run "
                                    "carried it out meanwhile, or the source, the target or the mapping changed)"))
    live = any((e.get("inputs") or {}).get("target_read") != "state" for e in planned.values())
    for start in range(0, len(present), BATCH):
        for item in fingerprints(ctx, ot, mapper, present[start:start + BATCH], live=live):
            entry = planned[item.anchor]
            was = entry.get("inputs") or {}
            reasons = []
            if item.inputs.get("source") != was.get("source"):
                reasons.append("the source record changed since the plan")
            if item.inputs.get("target") != was.get("target"):
                reasons.append("the target object changed since the plan")
            if item.digest != entry.get("digest"):
                reasons.append(_difference(entry, item))
            if reasons:
                refusals.append(Refusal(ot.name, item.anchor, "; ".join(reasons)))
    return refusals, unplanned


def _difference(entry: dict[str, Any], item: PlanItem) -> str:
    if str(item.action) != entry["action"]:
        return f"planned: {entry['action']}; now: {item.action}"
    was, now = entry.get("changes") or {}, item.changes
    differing = sorted(a for a in set(was) | set(now) if was.get(a) != now.get(a))
    if differing:
        return f"the planned {item.action} now changes {', '.join(differing)} differently"
    return f"the planned {item.action} now differs (its target object or name changed)"
