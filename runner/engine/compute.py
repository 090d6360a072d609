"""The compute pass: decide, for every changed source object, what the target should receive.

Two sweeps over the dirty objects of one type, each page by page:

1. **scope**: evaluate the scoping filter and record whether the object will exist in the target
   after this run (``exists_after``). When that flips, objects referencing it are marked dirty:
   a manager who leaves changes their reports' ``manager`` even though the reports' rows did not
   change. New objects the import already found in scope are passed by (the import scoped them
   as it stored them, :meth:`runner.state.imports.Imports.import_page`).
2. **map and diff**: map in-scope objects, keep references only to objects that will exist,
   compare with what the target is known to hold, and store one pending export per object
   (add, update, disable, delete), replacing any stale one.

A changed mapping or scope (the object type's config hash) marks every object dirty first, so
the new rules reach objects whose source did not change, straight from the state store.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from typing import Any

from runner import durations
from runner.actions import Action
from runner.engine.context import RunContext, TypeCounts
from runner.engine.diff import attribute_changes, comparer, same_name, stored_forms
from runner.engine.matching import MatchConflict, Matcher, pick_unique
from runner.engine.provlog import MASK
from runner.manifest.model import ObjectType, Situation
from runner.mapping.mapper import Mapper, MappingFailed, as_list, with_create_defaults
from runner.mapping.names import NameError_, depth, render
from runner.mapping.scope import compile_scope
from runner.state.base import now_iso
from runner.state.reconcile import GONE_PREFIX, Finding
from runner.state.records import Change, PendingExport, SourceRow

PAGE = 1000


def exists_after(row: SourceRow, in_scope: bool | None, ot: ObjectType) -> bool:
    linked = row.target_anchor is not None
    if row.deleted:
        return linked and ot.when_deleted != "delete" and not restore_window_over(row, ot)
    if not in_scope:
        return linked and ot.when_out_of_scope != "delete"
    return True


def restore_window_over(row: SourceRow, ot: ObjectType) -> bool:
    """A deferred delete (``when_deleted: {disable_then_delete_after: 30d}``) is due: the object
    has been gone from the source for longer than its restore window."""
    if not ot.delete_after or not row.deleted or row.gone_at is None:
        return False
    return row.gone_at <= now_iso(ago=durations.seconds(ot.delete_after) or 0)  # the store's times compare as text


def compute_type(ctx: RunContext, ot: ObjectType, mapper: Mapper, counts: TypeCounts,
                 matcher: Matcher | None = None, only: Collection[str] | None = None) -> None:
    """``only``: compute just these anchors (``provision preview``); other dirty objects stay dirty."""
    type_id = ctx.type_ids[ot.name]
    follow_config(ctx, ot)
    scope_sweep(ctx, ot, type_id, only)
    map_sweep(ctx, ot, type_id, mapper, counts, matcher, only)
    if only is None:
        pair_replacements(ctx, ot)


def follow_config(ctx: RunContext, ot: ObjectType) -> None:
    """A changed mapping or scope (the type's config hash) makes every object dirty, so the new
    rules reach objects whose source did not change, straight from the state store."""
    store, type_id = ctx.store, ctx.type_ids[ot.name]
    fingerprint = ot.config_hash()
    if store.config_hash(type_id) != fingerprint:
        if store.config_hash(type_id) is not None:
            ctx.logger.info("%s: mapping or scope changed; re-evaluating every object", ot.name)
        store.compute.mark_all_dirty(type_id)
        store.set_config_hash(type_id, fingerprint)
        store.commit()


PROPOSED_EXAMPLES = 5  # per attribute and run


def propose(counts: TypeCounts, mapper: Mapper, row: SourceRow, desired: dict[str, Any]) -> None:
    """Count where the rules under review (``proposed:``) give another value than the current
    rule (or, for an attribute not exported yet, than the target is known to hold), with a few
    examples: the report a reviewer reads before the rule replaces the current one."""
    known = row.target_data or {}
    found = counts.proposed if counts.proposed is not None else {}
    for attr, value in mapper.map_proposed(row.data).items():
        current = desired[attr] if attr in mapper.names else known.get(attr)
        if value == current:
            continue
        entry = found.setdefault(attr, {"differs": 0, "examples": []})
        entry["differs"] += 1
        if len(entry["examples"]) < PROPOSED_EXAMPLES:
            hidden = attr in mapper.sensitive
            entry["examples"].append({"anchor": row.anchor, "current": MASK if hidden else current,
                                      "proposed": MASK if hidden else value})
    counts.proposed = found or counts.proposed


def pair_replacements(ctx: RunContext, ot: ObjectType) -> None:
    """An add that takes the name a delete frees is the same object with a new anchor: one
    ``replace`` when the target declares DeleteAddAsReplace, else the delete goes first
    (``delete_first``). Decided here, not by the export, so the plan shows what run sends."""
    store, type_id = ctx.store, ctx.type_ids[ot.name]
    collisions = store.exports.name_collisions(type_id)
    if not collisions:
        return
    as_replace = ctx.caps(ot).delete_add_as_replace
    for add_anchor, delete_anchor, old_target in collisions:
        rows = {r.source_anchor: r for r in store.exports.all_pending_for(type_id, [add_anchor, delete_anchor])}
        add, gone = rows[add_anchor], rows[delete_anchor]
        if as_replace:
            add.change.replaces, add.change.replaces_gone = delete_anchor, gone.change.gone
            store.exports.update_pending(type_id, add_anchor, Action.REPLACE, add.change, old_target)
            store.exports.drop_pending(type_id, [delete_anchor])
        else:
            store.exports.update_pending(type_id, delete_anchor, Action.DELETE_FIRST, gone.change, old_target)
    store.commit()


def scope_sweep(ctx: RunContext, ot: ObjectType, type_id: int, only: Collection[str] | None = None,
                 shard: tuple[str | None, str | None] | None = None) -> None:
    """``shard``: only the anchors in [low, high) (a slice of a fanned-out run, runner/distributed/)."""
    store = ctx.store
    in_scope = compile_scope(ot.scope)
    after: str | None = None
    while rows := store.compute.dirty_rows(type_id, after, PAGE, targets=False, shard=shard, unscoped=True):
        after = rows[-1].anchor
        if only is not None and not (rows := [r for r in rows if r.anchor in only]):
            continue
        updates, flipped = [], []
        for row in rows:
            scoped = None if row.deleted else bool(in_scope(row.data))
            will_exist = exists_after(row, scoped, ot)
            if will_exist != row.exists_after:
                flipped.append(row.anchor)
            updates.append((row.anchor, scoped, will_exist))
        store.compute.set_scope(type_id, updates)
        store.compute.mark_referrers_dirty(type_id, flipped)
        ctx.heartbeat()  # a long compute keeps its lock; a run whose lock was taken over commits nothing
        store.commit()


def map_sweep(ctx: RunContext, ot: ObjectType, type_id: int, mapper: Mapper, counts: TypeCounts,
               matcher: Matcher | None, only: Collection[str] | None = None,
               shard: tuple[str | None, str | None] | None = None) -> None:
    """``shard``: only the anchors in [low, high) (a slice of a fanned-out run, runner/distributed/)."""
    store = ctx.store
    caps = ctx.caps(ot)
    compare = comparer(caps.normalizations)
    after: str | None = None
    computed = 0
    total = store.compute.count_dirty(type_id) if only is None else len(only)
    while rows := store.compute.dirty_rows(type_id, after, PAGE, shard=shard):
        after = rows[-1].anchor
        if only is not None and not (rows := [r for r in rows if r.anchor in only]):
            continue
        page = _Page()
        mapped: dict[str, dict[str, Any]] = {}
        for row in rows:
            linked = row.target_anchor is not None
            if row.deleted:
                if not linked:
                    page.forget.append(row.anchor)
                elif ot.when_deleted == "delete" or restore_window_over(row, ot):
                    page.add(row, Action.DELETE, Change(gone=True))
                elif ot.when_deleted == "disable" and not row.disabled:
                    page.add(row, Action.DISABLE, _disable_change(ot, row, gone=True))
                else:
                    page.cleared.append(row.anchor)
            elif not row.in_scope:
                if linked and not row.disabled and ot.when_out_of_scope == "delete":
                    page.add(row, Action.DELETE, Change())
                elif linked and not row.disabled and ot.when_out_of_scope == "disable":
                    page.add(row, Action.DISABLE, _disable_change(ot, row))
                else:
                    page.cleared.append(row.anchor)
            else:
                try:
                    mapped[row.anchor] = mapper.map(row.data)
                except MappingFailed as exc:
                    page.fail(ctx, ot, counts, row, "map", str(exc))
                    continue
                if mapper.proposed:
                    propose(counts, mapper, row, mapped[row.anchor])
        _keep_existing_references(ctx, type_id, mapper, mapped)
        _forget_vanished_references(ctx, ot, mapper, [r for r in rows if r.anchor in mapped])
        for row in rows:
            desired = mapped.get(row.anchor)
            if desired is None:
                continue
            try:
                name = render(ot.target.name, desired) if ot.target.name else None
                partition = render(ot.target.partition, desired) if ot.target.partition else None
            except NameError_ as exc:
                page.fail(ctx, ot, counts, row, "map", str(exc))
                continue
            refused = ctx.target(ot).name_problem(ot.target.object, name, partition) if name else None
            if refused is not None:
                page.fail(ctx, ot, counts, row, "map", refused)
                continue
            if row.target_anchor is None and matcher is not None:
                try:
                    found = matcher.find(row.data, desired, name)
                except MatchConflict as exc:
                    page.fail(ctx, ot, counts, row, "match", str(exc))
                    page.found(ctx, ot, exc.situation, row.anchor, {"candidates": exc.candidates, "error": str(exc)})
                    continue
                if found is not None:
                    page.found(ctx, ot, Situation.UNLINKED, row.anchor, {"target_anchor": found, "linked": True})
                    row.target_name = store.imports.target_name(type_id, found)
                    # with its name: references by name (an LDAP manager, a member) resolve to it
                    store.imports.link(type_id, row.anchor, found, row.target_name)
                    page.adopted.append(row.anchor)
                    row.target_anchor = found
                    row.target_data, row.disabled = store.exports.targets_data(type_id, [found]).get(found, ({}, False))
                    ctx.log.add(ot.name, row.anchor, "match", "ok", target_anchor=found)
            if row.target_anchor is None:
                try:
                    pick_unique(ctx, type_id, row.anchor, desired, mapper)
                except ValueError as exc:
                    page.fail(ctx, ot, counts, row, "map", str(exc))
                    continue
                values = _payload_values(with_create_defaults(desired, mapper), mapper)
                page.add(row, Action.ADD, Change(set=values, name=name, partition=partition), name=name,
                         partition=partition)
                continue
            # --full-export on a target that was just read sends what differs from what it holds,
            # whole; on one that cannot be read, everything, blind
            full = ctx.options.full_export
            blind = full and ot.name not in ctx.reconciled
            stored = {} if blind else (row.target_data or {})
            change = attribute_changes(desired, stored, mapper, store.sensitive_digest, creating=False,
                                       compare=compare)
            if blind or ((full or caps.export_style == "whole_object") and change.attribute_changes()):
                change = Change(set={k: v for k, v in _payload_values(desired, mapper).items()
                                     if k not in mapper.on_create}, full=ctx.options.full_export)
            moved = partition is not None and row.target_partition is not None and partition != row.target_partition
            renamed = name is not None and row.target_name is not None and not same_name(name, row.target_name, caps)
            if renamed or moved:
                change.name, change.old_name = name or row.target_name, row.target_name
                change.partition, change.old_partition = partition or row.target_partition, row.target_partition
                page.add(row, Action.RENAME, change, name=change.name)
            elif change.attribute_changes():
                page.add(row, Action.UPDATE, change)
            else:
                page.cleared.append(row.anchor)
        if page.findings:
            store.reconcile.add_findings(type_id, ctx.run_id, page.findings)
        store.compute.set_pending(type_id, page.entries, page.cleared)
        # references left out while these objects had no link (a manager adopted after their reports
        # were computed) are computed again, as after an add
        store.compute.mark_referrers_dirty(type_id, page.adopted, only_dropped=True)
        store.compute.forget_source(type_id, page.forget)
        store.compute.clean(type_id, [r.anchor for r in rows if r.anchor not in page.forget], page.errors)
        ctx.log.flush()
        ctx.heartbeat()
        store.commit()
        computed += len(rows)
        ctx.progress.report(ot.name, "compute", computed, total)
        ctx.check_stop()
    ctx.progress.report(ot.name, "compute", computed, finished=True)


class _Page:
    """What the map sweep decided for one page of dirty objects."""

    def __init__(self) -> None:
        self.entries: list[PendingExport] = []
        self.cleared: list[str] = []
        self.forget: list[str] = []
        self.errors: dict[str, str] = {}
        self.findings: list[Finding] = []
        self.adopted: list[str] = []  # linked by the match or correlate rules

    def found(self, ctx: RunContext, ot: ObjectType, situation: Situation, anchor: str,
              detail: dict[str, Any]) -> None:
        """What matching found, kept as a finding of the reconciliation this run makes."""
        if ot.name in ctx.reconciled:
            self.findings.append(Finding(str(situation), anchor, detail))

    def add(self, row: SourceRow, action: str, change: Change, name: str | None = None,
            partition: str | None = None) -> None:
        """``name`` / ``partition``: where the object is once this export lands; the recorded ones
        by default (a disable or delete keeps the name the object has)."""
        name = name if name is not None else row.target_name
        partition = partition if partition is not None else row.target_partition
        self.entries.append(PendingExport(row.anchor, action, row.target_anchor, change, name, depth(name),
                                          partition))

    def fail(self, ctx: RunContext, ot: ObjectType, counts: TypeCounts, row: SourceRow, step: str,
             error: str) -> None:
        """The object cannot be computed: it fails alone, stays dirty, and any stale export is dropped."""
        self.errors[row.anchor] = error
        self.cleared.append(row.anchor)
        counts.failed += 1
        counts.touched += 1
        ctx.log.add(ot.name, row.anchor, step, "failed", error=error, target_anchor=row.target_anchor)


def _keep_existing_references(ctx: RunContext, type_id: int, mapper: Mapper,
                              mapped: dict[str, dict[str, Any]]) -> None:
    """Drop references to objects that will not exist in the target (members left out, manager
    null), and record every reference so a change to the referenced object re-evaluates this one."""
    if not mapper.references:
        return
    store = ctx.store
    wanted: dict[str, set[str]] = defaultdict(set)
    ref_rows: list[tuple[str, int, str]] = []
    for anchor, values in mapped.items():
        for attr, ref_type in mapper.references.items():
            for ref in as_list(values.get(attr)):
                wanted[ref_type].add(str(ref))
                ref_rows.append((anchor, ctx.type_ids[ref_type], str(ref)))
    existing = {ref_type: store.compute.exists_after(ctx.type_ids[ref_type], anchors)
                for ref_type, anchors in wanted.items()}
    for values in mapped.values():
        for attr, ref_type in mapper.references.items():
            value = values.get(attr)
            if isinstance(value, list):
                values[attr] = [v for v in value if str(v) in existing[ref_type]]
            elif value is not None:
                values[attr] = str(value) if str(value) in existing[ref_type] else None
    store.compute.replace_refs(type_id, list(mapped), ref_rows)


def _forget_vanished_references(ctx: RunContext, ot: ObjectType, mapper: Mapper, rows: list[SourceRow]) -> None:
    """What the target holds cannot point at an object that is gone from it: a stored reference to
    a deleted object is treated as absent (the target dropped it, e.g. ON DELETE SET NULL), so a
    reference that becomes valid again is sent again. The same for an object deleted by hand and
    created again in this run under a new anchor: the reference is sent again, and a list that
    held its old anchor (not its name, which the new object has too) drops it (``GONE_PREFIX``)."""
    if not mapper.references:
        return
    caps = ctx.caps(ot)
    wanted: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        for attr, ref_type in mapper.references.items():
            wanted[ref_type].update(str(v) for v in as_list((row.target_data or {}).get(attr)))
    live = {rt: set(ctx.store.exports.target_anchors(ctx.type_ids[rt], anchors))
            for rt, anchors in wanted.items() if anchors}
    for row in rows:
        if not row.target_data:
            continue
        for attr, ref_type in mapper.references.items():
            value = row.target_data.get(attr)
            here, again = live.get(ref_type, ()), ctx.recreated.get(ref_type, {})
            if isinstance(value, list):
                by_anchor = caps.reference_form(attr) == "anchor"
                kept = []
                for v in value:
                    if str(v) in again:
                        kept += [GONE_PREFIX + again[str(v)]] if by_anchor else []
                    elif str(v) in here or str(v).startswith(GONE_PREFIX):
                        kept.append(v)
                row.target_data[attr] = kept
            elif value is not None and (str(value) not in here or str(value) in again):
                row.target_data[attr] = None


def _payload_values(desired: dict[str, Any], mapper: Mapper) -> dict[str, Any]:
    """Values for a pending add; sensitive ones are re-derived at export, never stored."""
    return stored_forms(desired, mapper, None)


def _disable_change(ot: ObjectType, row: SourceRow, gone: bool = False) -> Change:
    stored = row.target_data or {}
    return Change(set=dict(ot.target.disable), old={k: stored.get(k) for k in ot.target.disable}, gone=gone)
