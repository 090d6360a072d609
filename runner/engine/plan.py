"""The plan: what the export would send, as typed data, one entry per object.

Compute stores one pending export per object and takes every decision there (the action, the
replace pairing, the name and partition); this module reads them back as :class:`PlanItem`:
the :class:`~runner.actions.Action`, each attribute's old and new value with the mapping rule
that produced it, and the steps the target takes it in (a password in the create or as a second
step, a rename followed by an update, a big membership change in chunks), so what ``provision
plan`` shows is what ``run`` sends. Terraform's vocabulary: create (add), update, rename/move,
replace, delete, disable. The text forms live in ``runner/report.py``; the saved form in
:mod:`runner.engine.planfile`.

A saved plan also carries, per object, fingerprints of its inputs: the source record as
imported and the target object as read back live (or, for a target that cannot look objects
up, as the state knows it), so ``provision apply`` can refuse when either changed since.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from runner.actions import Action
from runner.connectors.base import Capabilities, ConnectorError
from runner.engine.context import RunContext
from runner.engine.diff import SENSITIVE
from runner.engine.provlog import MASK
from runner.engine.targets import state_form
from runner.manifest.model import ObjectType
from runner.mapping.explain import rule_text
from runner.mapping.mapper import Mapper
from runner.state.records import Change, PendingExport, dumps

GUARDED = (Action.DELETE, Action.DELETE_FIRST, Action.DISABLE)  # what the deletion guard holds


@dataclass(frozen=True)
class PlanItem:
    object_type: str
    anchor: str
    action: Action
    changes: dict[str, Any]
    target_anchor: str | None = None
    error: str | None = None
    gone: bool = False  # the source object no longer exists
    in_doubt: bool = False  # sent by an interrupted run; settled against the target first
    steps: tuple[str, ...] = ()  # the operations the target takes it in, when more than one
    held: bool = False  # held back by the deletion guard: not sent without an approval
    digest: str = ""  # the operation's identity: action, target and change
    inputs: dict[str, Any] = field(default_factory=dict)  # fingerprints of the source and target it came from

    def as_json(self) -> dict[str, Any]:
        out = {"object_type": self.object_type, "anchor": self.anchor, "action": str(self.action),
               "changes": self.changes}
        for key in ("target_anchor", "error", "gone", "in_doubt", "held", "digest", "inputs"):
            if getattr(self, key):
                out[key] = getattr(self, key)
        if self.steps:
            out["steps"] = list(self.steps)
        return out


def plan_items(ctx: RunContext, ot: ObjectType, held: bool = False) -> Iterator[tuple[PlanItem, str | None]]:
    """What the export pass would send for ``ot``, from the pending exports, each with why the
    run would not send it yet: "waiting" (its next attempt is later), "blocked" (held after a
    permanent error) or None. ``held``: the deletion guard holds this type's deletes and disables."""
    mapper = Mapper(ot)
    caps = ctx.caps(ot)
    type_id = ctx.type_ids[ot.name]
    after: str | None = None
    while rows := ctx.store.exports.all_pending(type_id, after, 500):
        after = rows[-1].source_anchor
        for row in rows:
            state = row.waiting(ctx.due)
            error = row.last_error
            if state == "waiting":
                error = f"{error}; waiting: next attempt at {row.next_attempt} (--retry-now sends it now)"
            elif state == "blocked":
                error = f"{error}; blocked until the source object changes (--retry-now sends it anyway)"
            yield PlanItem(ot.name, row.source_anchor, Action(row.action), plan_changes(row.change, mapper, row.action),
                           row.target_anchor, error, row.change.gone, row.sent_run is not None,
                           steps(row, caps, mapper), held and row.action in GUARDED, digest(row)), state


def digest(row: PendingExport) -> str:
    """The operation's identity: the same action on the same target object with the same change.
    Sensitive values are a marker in the change (never stored), so a password's digest is stable."""
    text = dumps([str(row.action), row.target_anchor, row.change.to_json()])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def steps(row: PendingExport, caps: Capabilities, mapper: Mapper) -> tuple[str, ...]:
    """The operations one pending export takes, as the export sends them (its decisions are
    fixed by the target's capabilities): () when it is one operation of its own action."""
    change, action = row.change, row.action
    if action == Action.RENAME and change.attribute_changes():
        return (Action.RENAME, Action.UPDATE)
    passwords = [a for a in change.set if a in mapper.passwords]
    if passwords and action in (Action.ADD, Action.REPLACE) and not caps.password_in_first_pass:
        return (action, Action.SET_PASSWORD)
    if passwords and action == Action.UPDATE and len(change.set) == len(passwords) and not (change.add or change.remove):
        return (Action.SET_PASSWORD,)
    limit = caps.max_values_per_operation
    if limit and action in (Action.ADD, Action.UPDATE):
        values = sum(len(v) for a, v in change.set.items() if a in mapper.multi_valued and isinstance(v, list))
        values += sum(map(len, change.add.values())) + sum(map(len, change.remove.values()))
        if values > limit:
            return (action,) + (Action.UPDATE,) * (-(-values // limit) - 1)
    return ()


def plan_changes(change: Change, mapper: Mapper, action: str | None = None) -> dict[str, Any]:
    """Per attribute: old and new value (secrets masked), values added and removed, and the
    mapping rule that produced it (a disable's values come from ``target.disable``)."""
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
    disable = mapper.object_type.target.disable if action == Action.DISABLE else {}
    rules = {spec.target: spec for spec in mapper.object_type.mapping if not spec.proposed_only}
    for attr, entry in out.items():
        if attr in disable:
            entry["rule"] = "target.disable"
        elif attr in rules:
            entry["rule"] = rule_text(rules[attr])
    if change.name and change.old_name and change.name != change.old_name:
        out["__name__"] = {"old": change.old_name, "new": change.name}
    if change.partition and change.old_partition and change.partition != change.old_partition:
        out["__partition__"] = {"old": change.old_partition, "new": change.partition}
    return out


def fingerprints(ctx: RunContext, ot: ObjectType, mapper: Mapper, items: Sequence[PlanItem],
                 live: bool) -> list[PlanItem]:
    """``items`` with the fingerprints of their inputs: ``source``, the source record's hash as
    imported (None: gone from the source), and ``target``, a digest of the target object in
    mapped form, read back live when ``live`` and the connector can look objects up ("state"
    says the digest is of what the state store knows instead; None: no target object yet)."""
    type_id = ctx.type_ids[ot.name]
    sources = ctx.store.imports.source_hashes(type_id, [i.anchor for i in items])
    anchors = [i.target_anchor for i in items if i.target_anchor]
    connector = ctx.target(ot)
    read_live = live and connector.can("get")
    targets = _live_targets(ctx, ot, mapper, anchors) if read_live else _known_targets(ctx, ot, anchors)
    out = []
    for item in items:
        inputs = {"source": sources.get(item.anchor), "target": targets.get(item.target_anchor or "", None)}
        if item.target_anchor and not read_live:
            inputs["target_read"] = "state"
        out.append(PlanItem(**{**vars(item), "inputs": inputs}))
    return out


MISSING = "missing"  # the target object a planned operation works on was not there


def _live_targets(ctx: RunContext, ot: ObjectType, mapper: Mapper, anchors: Sequence[str]) -> dict[str, str]:
    connector, found = ctx.target(ot), {}
    for anchor in anchors:
        try:
            record = connector.get(ot.target.object, anchor)
        except ConnectorError as exc:
            found[anchor] = f"unreadable: {type(exc).__name__}"
            continue
        if record is None:
            found[anchor] = MISSING
            continue
        obj = state_form(ctx, ot, mapper, [record])[0]
        found[anchor] = _digest([obj.data, obj.name, obj.disabled])
    return found


def _known_targets(ctx: RunContext, ot: ObjectType, anchors: Sequence[str]) -> dict[str, str]:
    known = ctx.store.exports.targets_data(ctx.type_ids[ot.name], anchors)
    return {anchor: _digest([{k: v for k, v in data.items() if v != SENSITIVE}, disabled])
            for anchor, (data, disabled) in known.items()}


def _digest(value: Any) -> str:
    return hashlib.sha256(dumps(value).encode()).hexdigest()[:32]
