"""What ``provision plan`` shows: one item per pending export, with its attribute changes.

Terraform's vocabulary: create (add), update, rename/move, replace, delete, disable. Items come
straight from the pending exports compute stored; the text form lives in ``runner/report.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from runner.engine.context import RunContext
from runner.manifest.model import ObjectType
from runner.mapping.mapper import Mapper
from runner.provlog import MASK
from runner.state.records import Change


@dataclass(frozen=True)
class PlanItem:
    object_type: str
    anchor: str
    action: str
    changes: dict[str, Any]
    target_anchor: str | None = None
    error: str | None = None
    gone: bool = False  # the source object no longer exists
    in_doubt: bool = False  # sent by an interrupted run; settled against the target first


def plan_items(ctx: RunContext, ot: ObjectType) -> Iterator[tuple[PlanItem, str | None]]:
    """What the export pass would send for ``ot``, from the pending exports, each with why the
    run would not send it yet: "waiting" (its next attempt is later), "blocked" (held after a
    permanent error) or None."""
    mapper = Mapper(ot)
    type_id = ctx.type_ids[ot.name]
    after: str | None = None
    while rows := ctx.store.all_pending(type_id, after, 500):
        after = rows[-1].source_anchor
        for row in rows:
            state = row.waiting(ctx.due)
            error = row.last_error
            if state == "waiting":
                error = f"{error}; waiting: next attempt at {row.next_attempt} (--retry-now sends it now)"
            elif state == "blocked":
                error = f"{error}; blocked until the source object changes (--retry-now sends it anyway)"
            yield PlanItem(ot.name, row.source_anchor, row.action, plan_changes(row.change, mapper),
                           row.target_anchor, error, row.change.gone, row.sent_run is not None), state


def plan_changes(change: Change, mapper: Mapper) -> dict[str, Any]:
    out: dict[str, Any] = {}
    old = change.old
    for attr, value in change.set.items():
        shown = MASK if attr in mapper.sensitive and value is not None else value
        before = MASK if attr in mapper.sensitive and old.get(attr) is not None else old.get(attr)
        out[attr] = {"old": before, "new": shown} if attr in old else {"new": shown}
    for attr, values in change.add.items():
        out.setdefault(attr, {})["add"] = values
    for attr, values in change.remove.items():
        out.setdefault(attr, {})["remove"] = values
    if change.name and change.old_name and change.name != change.old_name:
        out["__name__"] = {"old": change.old_name, "new": change.name}
    return out
