"""Pending exports become connector operations here, as late as possible: references are rendered
against what the target holds at the moment a page is sent, so an object created earlier in the
same run is already known by its target anchor or name.

Whatever an operation cannot carry in one go (a password the connector will not take inside a
create, attribute changes riding on a rename, more values than the connector takes at once) is
split off as a follow-up pending export, which the recorder stores in the same commit that
records the first step: a run killed in between finishes the job next time.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from runner.actions import Action
from runner.connectors.base import Operation
from runner.engine.context import RunContext
from runner.engine.diff import SENSITIVE
from runner.manifest.model import ObjectType
from runner.mapping.mapper import Mapper, MappingFailed, as_list
from runner.state.reconcile import GONE_PREFIX
from runner.state.records import Change, PendingExport

OP_KIND = {Action.DELETE_FIRST: Action.DELETE}  # the operation an action goes out as, when not itself
_UNBUILT = Operation(0, "", "")  # a Prepared's operation until _operation has worked it out


def operation_key(ctx: RunContext, ot: ObjectType, row: PendingExport) -> str:
    """The stable identity of one pending change: the same on every re-send, new for the next change."""
    return f"{ctx.pipeline}/{ot.name}/{row.source_anchor}/{row.revision}"


@dataclass
class Prepared:
    """One pending export turned into an Operation, with what the state should record on success."""

    row: PendingExport
    op: Operation
    kept_set: dict[str, Any] = field(default_factory=dict)
    kept_add: dict[str, list[Any]] = field(default_factory=dict)
    removed: dict[str, list[Any]] = field(default_factory=dict)
    dropped: dict[str, set[str]] = field(default_factory=dict)  # ref type -> anchors left out
    followup: PendingExport | None = None  # the next step, stored once this one is confirmed
    before: dict[str, Any] = field(default_factory=dict)  # what the state knew of the target object


class Waiting(Exception):
    """The export references an object of its own type whose add (or, by name, rename) has not
    been settled yet; ``anchors`` are those it waits for."""

    def __init__(self, anchors: set[str]):
        super().__init__(anchors)
        self.anchors = anchors


class Operations:
    """Prepares the operations of one object type's export pass; operation ids are unique within
    the pass, as its rounds overlap."""

    def __init__(self, ctx: RunContext, ot: ObjectType, mapper: Mapper):
        self.ctx, self.ot, self.mapper = ctx, ot, mapper
        self.store = ctx.store
        self.type_id = ctx.type_ids[ot.name]
        self.caps = ctx.caps(ot)
        self.before: dict[str, tuple[dict[str, Any], bool]] = {}
        self.versions: dict[str, str] = {}  # target anchor -> recorded version, sent as a precondition
        self.next_id = 0

    def prepare(self, rows: Sequence[PendingExport], force: bool, unsettled: Collection[str]
                ) -> tuple[list[Prepared], list[tuple[PendingExport, set[str]]], list[tuple[PendingExport, str]]]:
        """(ready to send, held for an add or rename of their own type not settled yet, with the
        source anchors each waits for, failed with why). ``unsettled``: adds and renames in flight. ``force``: hold nothing, leaving
        unresolved references out (a reference cycle).

        A reference by name waits for a rename of what it names, as it waits for an add: sent
        before, it would carry the old name (a report's ``manager`` DN before their manager moved)."""
        anchors = [r.target_anchor for r in rows if r.target_anchor]
        self.before = self.store.exports.targets_data(self.type_id, anchors) if anchors else {}
        self.versions = self.store.exports.target_versions(self.type_id, anchors) if anchors and self.caps.versioned else {}
        refs = self._referenced(rows)
        targets = {(rt, form): self._known(rt, form, anchors, live_only=True) for (rt, form), anchors in refs.items()}
        own = self.ot.name
        own_refs = set().union(*(a for (rt, _), a in refs.items() if rt == own))
        own_known = set().union(*(targets[k].keys() for k in targets if k[0] == own))
        waiting: set[str] = set()
        if own_refs and not force:
            exports, run_id, due = self.store.exports, self.ctx.run_id, self.ctx.due
            waiting = exports.pending_actions(self.type_id, own_refs - own_known, run_id, due) | (own_refs & unsettled)
            if by_name := set().union(*(a for (rt, form), a in refs.items() if rt == own and form == "name")):
                waiting |= exports.pending_actions(self.type_id, by_name, run_id, due, (Action.RENAME,))
        ready: list[Prepared] = []
        held: list[tuple[PendingExport, set[str]]] = []
        failed: list[tuple[PendingExport, str]] = []
        for row in rows:
            self.next_id += 1
            try:
                ready.append(self._operation(self.next_id, row, targets, waiting))
            except Waiting as wait:
                held.append((row, wait.anchors))
            except MappingFailed as exc:
                failed.append((row, f"cannot derive sensitive value: {exc}"))
        return ready, held, failed

    def _known(self, ref_type: str, form: str, anchors: Collection[str], live_only: bool) -> dict[str, str]:
        """source anchor -> how the target names it (its anchor, or its name)."""
        type_id = self.ctx.type_ids[ref_type]
        if form == "name":
            return self.store.exports.target_names(type_id, anchors, live_only=live_only)
        return self.store.exports.target_anchors(type_id, anchors, live_only=live_only)

    @property
    def _whole_lists(self) -> bool:
        """Multi-valued changes go out as whole lists (what the target holds, changed), not as values."""
        return not self.caps.multi_valued_deltas or self.caps.export_style != "delta"

    def _referenced(self, rows: Sequence[PendingExport]) -> dict[tuple[str, str], set[str]]:
        """The objects the rows' references name, by type and form; for changes sent as whole lists,
        the values the target holds too (each is sent again)."""
        refs: dict[tuple[str, str], set[str]] = defaultdict(set)
        for row in rows:
            parts = [row.change.set, row.change.add, row.change.remove]
            if self._whole_lists and (row.change.add or row.change.remove):
                before = self.before.get(row.target_anchor or "", ({}, False))[0]
                parts.append({a: before.get(a) or [] for a in set(row.change.add) | set(row.change.remove)})
            for part in parts:
                for attr, ref_type in self.mapper.references.items():  # the few reference attributes, not every one
                    if attr in part:
                        refs[(ref_type, self.caps.reference_form(attr))].update(str(v) for v in as_list(part[attr]))
        return refs

    def _operation(self, index: int, row: PendingExport, targets: dict[tuple[str, str], dict[str, str]],
                   waiting: set[str]) -> Prepared:
        change, action = row.change, row.action
        prepared = Prepared(row, _UNBUILT, before=self.before.get(row.target_anchor or "", ({}, False))[0])
        chunked = self._chunk(row)
        set_values = dict(change.set)
        if chunked is not None:  # a first chunk now; the rest follows once it is confirmed
            set_values.update(chunked[0])
        attributes: dict[str, Any] = {}
        clear: dict[str, Any] | None = None
        references, kept_set = self.mapper.references, prepared.kept_set
        for attr, value in set_values.items():
            if value == SENSITIVE:
                clear = clear or self._clear_values(row.source_anchor)
                value = clear.get(attr)
            if attr in references:
                attributes[attr], kept_set[attr] = self._resolve(attr, value, targets, waiting, prepared)
            else:  # sent and recorded as it is (what _resolve does with a plain value, without the call)
                attributes[attr] = kept_set[attr] = value
        add_values: dict[str, list[Any]] = {}
        for attr, values in (chunked[1] if chunked else change.add).items():
            add_values[attr], prepared.kept_add[attr] = self._resolve(attr, values, targets, waiting, prepared)
        remove_values: dict[str, list[Any]] = {}
        for attr, values in (chunked[2] if chunked else change.remove).items():
            prepared.removed[attr] = list(values)
            remove_values[attr] = self._resolve_removed(attr, values)
        if self._whole_lists and (add_values or remove_values):
            before = prepared.before
            for attr in set(add_values) | set(remove_values):
                full = (set(before.get(attr, [])) | set(prepared.kept_add.get(attr, []))) - set(prepared.removed.get(attr, []))
                attributes[attr], _ = self._resolve(attr, sorted(full, key=str), targets, set(), prepared)
            add_values, remove_values = {}, {}
        kind, password = OP_KIND.get(action, action), None
        passwords = {a: attributes.pop(a) for a in list(attributes) if a in self.mapper.passwords} \
            if self.mapper.passwords else {}
        if action == Action.RENAME:
            if change.attribute_changes():
                prepared.followup = self._next(row, Action.UPDATE, Change(set=change.set, add=change.add,
                                                                     remove=change.remove, old=change.old,
                                                                     followup=True))
            attributes, add_values, remove_values, prepared.kept_set, prepared.kept_add, prepared.removed = \
                {}, {}, {}, {}, {}, {}
        elif passwords:
            password = next(iter(passwords.values()))
            first_pass = kind in (Action.ADD, Action.REPLACE) and self.caps.password_in_first_pass
            only_password = kind in (Action.UPDATE, Action.SET_PASSWORD) and not (attributes or add_values or remove_values)
            if only_password:
                kind = Action.SET_PASSWORD
            elif not first_pass:
                for attr in passwords:  # the object is created without it; the state learns it with the second step
                    prepared.kept_set.pop(attr, None)
                prepared.followup = self._next(row, Action.SET_PASSWORD,
                                               Change(set={a: SENSITIVE for a in passwords}, followup=True))
                password = None
        if chunked is not None and prepared.followup is None:
            prepared.followup = self._next(row, Action.UPDATE, chunked[3])
        prepared.op = Operation(
            index, kind, self.ot.target.object, anchor=row.target_anchor,
            name=change.name or row.name, attributes=attributes, add_values=add_values,
            remove_values=remove_values, password=password, partition=change.partition or row.partition,
            old_name=change.old_name, key=operation_key(self.ctx, self.ot, row), source_anchor=row.source_anchor,
            attempt=row.attempts + 1, old_partition=change.old_partition,
            version=self.versions.get(row.target_anchor or "") if row.action != Action.ADD else None)
        return prepared

    def _next(self, row: PendingExport, action: str, change: Change) -> PendingExport:
        return PendingExport(row.source_anchor, action, row.target_anchor, change, row.change.name or row.name,
                             row.depth, row.change.partition or row.partition)

    def _chunk(self, row: PendingExport) -> tuple[dict[str, list[Any]], dict[str, list[Any]],
                                                  dict[str, list[Any]], Change] | None:
        """Split a multi-valued change bigger than the connector takes in one operation:
        (lists to set now, values to add now, values to remove now, the rest as a follow-up)."""
        limit = self.caps.max_values_per_operation
        if not limit or row.action not in (Action.ADD, Action.UPDATE) or self._needs_password_step(row):
            return None
        sets = {a: v for a, v in row.change.set.items() if a in self.mapper.multi_valued and isinstance(v, list)}
        total = sum(map(len, sets.values())) + sum(map(len, row.change.add.values())) + \
            sum(map(len, row.change.remove.values()))
        if total <= limit:
            return None
        budget = limit
        now_set, now_add, now_remove, rest = {}, {}, {}, Change(followup=True)
        for source, now, later in ((row.change.remove, now_remove, rest.remove), (sets, now_set, rest.add),
                                   (row.change.add, now_add, rest.add)):
            for attr, values in source.items():
                take = values[:budget]
                budget -= len(take)
                now[attr] = take
                if values[len(take):]:
                    later.setdefault(attr, []).extend(values[len(take):])
        return now_set, now_add, now_remove, rest

    def _needs_password_step(self, row: PendingExport) -> bool:
        return row.action in (Action.ADD, Action.REPLACE) and not self.caps.password_in_first_pass and \
            any(a in self.mapper.passwords for a in row.change.set)

    def _clear_values(self, anchor: str) -> dict[str, Any]:
        """Sensitive values are never stored: map the source object again to get them."""
        data = self.store.exports.source_data(self.type_id, anchor)
        return self.mapper.map(data) if data is not None else {}

    def _resolve(self, attr: str, value: Any, targets: dict[tuple[str, str], dict[str, str]],
                 waiting: set[str], prepared: Prepared) -> tuple[Any, Any]:
        """(value to send, value to record): references become target anchors or names; missing
        ones are left out."""
        ref_type = self.mapper.references.get(attr)
        if ref_type is None:
            return value, value
        known = targets.get((ref_type, self.caps.reference_form(attr)), {})
        if ref_type == self.ot.name and waiting and \
                (awaited := {str(v) for v in as_list(value) if str(v) in waiting}):
            raise Waiting(awaited)
        missing = {str(v) for v in as_list(value) if str(v) not in known}
        if missing:
            prepared.dropped.setdefault(ref_type, set()).update(missing)
        if isinstance(value, list):
            kept = [v for v in value if str(v) not in missing]
            return [known[str(v)] for v in kept], kept
        if value is None or str(value) in missing:
            return None, None
        return known[str(value)], value

    def _resolve_removed(self, attr: str, values: list[Any]) -> list[Any]:
        ref_type = self.mapper.references.get(attr)
        if ref_type is None:
            return list(values)
        known = self._known(ref_type, self.caps.reference_form(attr), [str(v) for v in values], live_only=False)
        return [known[str(v)] if str(v) in known else str(v)[len(GONE_PREFIX):] for v in values
                if str(v) in known or str(v).startswith(GONE_PREFIX)]  # the old anchor of a re-created object
