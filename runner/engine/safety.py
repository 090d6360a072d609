"""The deletion guard: a run that would delete or disable a large share of a target stops first.

A failed HR export (an empty file, a file cut short, a stray quote swallowing half the rows)
looks exactly like everyone leaving. So, per object type, when the deletes and disables a run
would send pass ``safety.max_deletes`` (a count, or a share of the type's provisioned objects;
by default the larger of 10% and 5 objects), none of them is sent: the rest of the run goes on,
the held objects are listed, and the run ends ``stopped`` (exit 3) until a person looks.
``provision run --allow-deletes N`` (or ``all``) lets one run through; ``provision approve``
releases named objects only (:mod:`runner.state.approvals`). A full read that returns
nothing where the state holds objects is refused whatever the threshold: nothing is marked
deleted at all. For comparison, Entra's accidental-deletions threshold is a count per job
(default 500) and MIM's is a share of the connector space.
"""

from __future__ import annotations

import math

from runner.actions import REMOVALS, Action
from runner.engine.context import RunContext, TypeCounts
from runner.manifest.model import ObjectType

DEFAULT_SHARE = 0.10
DEFAULT_MINIMUM = 5
GUARDED = (Action.DELETE, Action.DELETE_FIRST, Action.DISABLE)
ALL = -1  # --allow-deletes all


def threshold(spec: int | str | None, provisioned: int) -> int:
    """How many deletes and disables one run may send for a type with ``provisioned`` objects."""
    if spec is None:
        return max(DEFAULT_MINIMUM, math.floor(provisioned * DEFAULT_SHARE))
    if isinstance(spec, str) and spec.endswith("%"):
        return math.floor(provisioned * float(spec[:-1]) / 100)
    return int(spec)


def allowed(ctx: RunContext, count: int) -> bool:
    allow = ctx.options.allow_deletes
    return allow is not None and (allow == ALL or count <= allow)


def check(ctx: RunContext, ot: ObjectType, counts: TypeCounts) -> bool:
    """After compute: hold this type's deletes and disables if there are too many. Returns
    whether they are held."""
    type_id = ctx.type_ids[ot.name]
    guarded = ctx.store.approvals.guarded_pending(type_id, GUARDED)
    if not guarded:
        return False
    approved = {h.source_anchor for h in guarded if h.approved}
    if ctx.options.apply is not None:  # apply sends what its plan holds, approved or not, and nothing else
        approved &= set(ctx.options.apply.items.get(ot.name, ()))
    pending = len(guarded) - len(approved)
    provisioned = ctx.store.runs.count_linked(type_id)
    limit = threshold(ot.max_deletes, provisioned)
    if pending <= limit or allowed(ctx, pending):
        return False
    counts.held = pending
    ctx.released[ot.name] = approved
    sent = f"{len(approved)} approved one{'s' if len(approved) != 1 else ''} go, the others wait" if approved \
        else "none of them was sent"
    counts.guard = (f"would delete or disable {pending} of {provisioned} provisioned objects, more than "
                    f"safety.max_deletes allows ({limit}); {sent}. Check the source; if this is "
                    f"right, run again with --allow-deletes {pending} (or all), or release named objects with "
                    f"`provision approve {ctx.manifest.path.name} {ctx.run_id} --anchor ANCHOR`")
    ctx.logger.error("%s: stopped by the deletion guard: %s", ot.name, counts.guard)
    return True


def refuse_empty_read(ctx: RunContext, ot: ObjectType, counts: TypeCounts, present: int,
                      why: str | None = None) -> bool:
    """A full read that returned nothing while the state holds objects: a broken export, not an
    empty company. True means: mark nothing deleted."""
    if ctx.options.allow_deletes == ALL:
        return False
    counts.guard = (f"{why + ': ' if why else ''}the source returned no objects, but {present} were there before: "
                    "a failed export? "
                    "Nothing was marked deleted. If they really are all gone, run again with --allow-deletes all")
    ctx.logger.error("%s: stopped by the deletion guard: %s", ot.name, counts.guard)
    return True


def keep_references(ctx: RunContext, ot: ObjectType) -> list[str]:
    """The guard held this type's deletes: the objects stay, so references to them must stay too.

    Compute already dropped them from the objects that point at them (a group's members, a
    manager), as if the deletes had happened: a people file cut in half would empty every group
    while the guard rightly kept the people. So the held objects are marked as existing after
    this run, everything referencing them is computed again (this type's referrers now, other
    types' in their own pass, which comes later), and the held objects are marked dirty so the
    next run decides again. Returns the held anchors; the caller recomputes the referrers."""
    store, type_id = ctx.store, ctx.type_ids[ot.name]
    held = store.compute.keep_held(type_id, REMOVALS, ctx.released.get(ot.name, ()))
    store.compute.mark_referrers_dirty(type_id, held)
    store.compute.clean(type_id, held, {})  # among the referrers (a held manager's held reports): decided already
    store.commit()
    return held
