"""Reconciliation: the target is the truth. Read it whole, classify every object, react per situation.

The state store remembers what the target was sent; people, restores and other tools change the
target behind its back. A reconciliation reads the object type's target in one paged read and
classifies every object (:class:`runner.manifest.model.Situation`):

- **linked**: the target holds it as the state says; **drifted**: linked, but its values differ
  (the state takes what the target holds, and compute updates it by difference). An attribute
  the last export wrote that the first read since finds otherwise, or that drifts the same way
  at two reconciliations in a row although the first one updated it, is flagged ``not_held``:
  the target accepted the value and does not keep it (a read-only or silently dropped attribute);
- **missing**: linked, but gone from the target: the link is dropped and compute adds it again in
  the same run, and whatever referenced it is computed again (a group that still lists its old
  target anchor drops it: the referrer's read marks it ``GONE_PREFIX``, which no source object
  claims);
- **unlinked**: no link, but the match rules, or (without them) the correlation attributes or a
  hierarchical name, tie it to one source object: linked (adopted) in compute, instead of added
  twice; **ambiguous** (several candidates) and **collision** (its candidate is claimed by
  another source object) hold the source object and are reported;
- **orphan**: no source object claims it and it lies inside ``target.boundary``: reported, or
  disabled or deleted (``reconcile.orphan``), always behind the deletion guard. Objects outside
  the boundary are never touched.

When: ``run --reconcile``, ``--full`` and ``--full-export``, ``target.reconcile_every``, a first
contact with the target (no reconciliation recorded yet), ``provision check`` (without writing to
the target) and whenever match rules or unique values need the target's values. Target records
become *mapped form* (:func:`runner.engine.targets.state_form`): mapped attributes only (sensitive ones cannot be read
back), references turned into the source anchors of the objects they name.
"""

from __future__ import annotations

import hashlib
import marshal
import time
from array import array
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable
from typing import Any

from runner.actions import Action
from runner.connectors.base import ConnectionFailed, Record
from runner.engine import cadence
from runner.engine.context import RunContext, TypeCounts
from runner.engine.diff import comparer
from runner.engine.matching import NAME, correlation_rules, few_unlinked, fold
from runner.engine.targets import keep_secrets, read_all_partitions, state_form, values_of
from runner.manifest.model import Boundary, ObjectType, Situation
from runner.mapping.mapper import Mapper
from runner.mapping.names import depth
from runner.mapping.scope import compile_scope
from runner.names import normalize_dn
from runner.state.imports import TargetObject
from runner.state.reconcile import ORPHAN_PREFIX, Finding
from runner.state.records import Change, PendingExport

PAGE = 500
HEARTBEAT_SECONDS = 10.0  # the lock is renewed at least this often during a read that writes nothing


def why(ctx: RunContext, ot: ObjectType, mapper: Mapper) -> str | None:
    """Why this pass reconciles ``ot`` with its target, or None when it trusts the state."""
    if not ctx.target(ot).can("read"):
        return None
    options, type_id = ctx.options, ctx.type_ids[ot.name]
    if options.reconcile:
        return "asked for (--reconcile)"
    if options.full_import and not options.plan:
        return "--full"
    if options.full_export:
        return "--full-export: only what differs is sent"
    mark = ctx.store.imports.watermark(type_id, "target", None)
    if mark is None:
        return "first contact with this target: objects it holds already are linked, not added twice"
    due = cadence.due(ot.target.reconcile_every, mark, "reconcile_every")
    if due:
        return due
    if (ot.match or mapper.unique) and not (ot.match and not mapper.unique and ctx.target(ot).can("lookup")
                                            and few_unlinked(ctx, ot)):
        return "match rules and unique values compare with the target's values"
    return None


def count_run_without(ctx: RunContext, ot: ObjectType) -> None:
    """A run that did not reconcile brings ``reconcile_every: N`` (runs) one closer."""
    if isinstance(ot.target.reconcile_every, int):
        type_id = ctx.type_ids[ot.name]
        ctx.store.imports.set_watermark(type_id, "target", None,
                                        cadence.next_mark(False, ctx.store.imports.watermark(type_id, "target", None)))
        ctx.store.commit()


def reconcile_target(ctx: RunContext, ot: ObjectType, mapper: Mapper, reason: str, missing: bool = True) -> None:
    """Read the target object type and classify what it holds (see the module's docstring); the
    unlinked and orphans are settled after compute (:func:`settle_orphans`). ``missing=False``
    (a preview): only read and index it, leave what is missing for a run."""
    store, type_id = ctx.store, ctx.type_ids[ot.name]
    ctx.logger.info("%s: reconciling with the target (%s)", ot.name, reason)
    ctx.drifted_before[ot.name] = {f.key: f.detail.get("attributes", {})
                                   for f in store.reconcile.findings(type_id, Situation.DRIFTED)}
    mark = store.reconcile.begin_reconcile(type_id)
    ctx.reconciled[ot.name] = mark
    tally: Counter[str] = Counter()
    seen = Seen()
    read = _read(ctx, ot, mapper, mark, tally, seen)
    if not missing:
        return
    _missing(ctx, ot, seen, tally)
    ctx.logger.info("%s: read %d target objects: %s", ot.name, read,
                    ", ".join(f"{n} {s}" for s, n in sorted(tally.items())) or "nothing linked yet")
    ctx.linked_seen[ot.name] = tally[Situation.LINKED]


def resolve_references(ctx: RunContext, ot: ObjectType, mapper: Mapper) -> None:
    """Read the target again after compute linked objects that reference objects of their own
    type (a manager): on the first read their references named objects not linked yet, so they
    were left out, and compute would "update" every manager to the value it already holds. Now
    that the links exist they resolve; only objects whose values change are computed again."""
    _read(ctx, ot, mapper, ctx.reconciled[ot.name], None, Seen())


class Seen:
    """The linked target objects a read saw, in 8 bytes each (their anchors' hashes, sorted once
    the read is over): a million objects take 8 MB, and nothing is written to the store for
    them. A hash shared by two anchors could only hide a missing object, at odds of about one
    in 10^7 for a million objects; it never makes one look missing."""

    def __init__(self) -> None:
        self.hashes = array("q")
        self.sorted = False

    def add(self, anchor: str) -> None:
        self.hashes.append(hash(anchor))
        self.sorted = False

    def __len__(self) -> int:
        """How many distinct objects were seen (a page read twice counts once)."""
        self._sort()
        return len(self.hashes)

    def _sort(self) -> None:
        if not self.sorted:
            self.hashes = array("q", sorted(set(self.hashes)))
            self.sorted = True

    def __contains__(self, anchor: str) -> bool:
        self._sort()
        key = hash(anchor)
        i = bisect_left(self.hashes, key)
        return i < len(self.hashes) and self.hashes[i] == key


def _read(ctx: RunContext, ot: ObjectType, mapper: Mapper, mark: str, tally: Counter[str] | None,
          seen: Seen) -> int:
    """One paged read of the target: index, classify, stamp what no link claims (``tally`` None:
    quietly, no findings)."""
    store, type_id = ctx.store, ctx.type_ids[ot.name]
    store.imports.begin_target_import(type_id)
    # the values match rules, correlation and unique values look up: only needed when some
    # source object has no target object yet (a first contact, new hires), not in steady state
    indexed = _indexed_attributes(ctx, ot, mapper) if store.runs.count_unlinked(type_id, 1) else set()
    rules = ctx.caps(ot).normalizations
    inside = boundary_test(ot.target.boundary)
    # an object read exactly as when a reconciliation last found it as the state says, and not
    # written since, is linked: no mapped form, no comparison (not when objects it may name were
    # found missing this run: their old anchors must be dropped from it)
    trusted = tally is not None and not any(ref in ctx.gone for ref in mapper.references.values())
    salt = ot.config_hash()
    read, renewed = 0, time.monotonic()
    for page in read_all_partitions(ctx, ot):
        index: list[tuple[str, str, str]] = []
        for record in page.records:
            if record.anchor is None:
                raise ConnectionFailed(f"{ot.name}: the target connector returned an object without an anchor; "
                                       "it cannot be matched or reconciled")
            for attr in indexed:
                if attr == NAME:
                    if record.name:
                        index.append((NAME, normalize_dn(record.name), str(record.anchor)))
                    continue
                for v in values_of(record.attributes.get(attr)):
                    if v not in (None, ""):
                        index.append((attr, fold(v, attr, rules), str(record.anchor)))
        anchors = [str(r.anchor) for r in page.records]
        # a quiet read neither trusts nor records fingerprints: it only takes what the target holds
        digests = {a: digest(r, salt) for a, r in zip(anchors, page.records, strict=True)} if tally is not None else {}
        checked = store.reconcile.checked(type_id, anchors) if trusted else {}
        same = {a for a, d in checked.items() if digests.get(a) == d}
        rest = [r for a, r in zip(anchors, page.records, strict=True) if a not in same]
        objects = state_form(ctx, ot, mapper, rest)
        unlinked, equal = _classify(ctx, ot, mapper, objects, tally)
        if tally is not None:
            tally[Situation.LINKED] += len(same)
            store.reconcile.set_checked(type_id, {a: digests[a] for a in equal})
        if index:
            store.imports.index_targets(type_id, anchors, index, fresh=True)
        for anchor in anchors:
            if anchor not in unlinked:
                seen.add(anchor)
        if unlinked:
            store.reconcile.stamp_targets(type_id, {a: inside(r) for a, r in zip(anchors, page.records, strict=True)
                                                    if a in unlinked}, mark)
        read += len(anchors)
        # a page of objects all as the state says writes nothing: no commit, and the lock is
        # renewed now and then rather than per page
        if rest or index or unlinked or time.monotonic() - renewed > HEARTBEAT_SECONDS:
            ctx.heartbeat()
            store.commit()
            renewed = time.monotonic()
        ctx.check_stop()
    return read


def digest(record: Record, salt: str) -> str:
    """A short fingerprint of a target record as read, with the mapping's (``salt``): the same
    record under the same mapping maps to the same state form. marshal is the cheapest exact
    serialisation of plain values (a quarter of repr's cost); values it cannot take (dates,
    decimals) go through repr. Attributes in another order only make the object compared."""
    whole = (salt, record.name, record.partition, record.attributes)
    try:
        blob = marshal.dumps(whole)
    except ValueError:
        blob = repr(whole).encode()
    return hashlib.blake2b(blob, digest_size=8).hexdigest()


def _indexed_attributes(ctx: RunContext, ot: ObjectType, mapper: Mapper) -> set[str]:
    """The target values match rules, correlation and unique values look up."""
    wanted = {rule.target for rule in ot.match} | set(mapper.unique)
    if not ot.match:
        wanted |= {target for _, _, target in correlation_rules(ctx, ot)}
    return wanted


def _classify(ctx: RunContext, ot: ObjectType, mapper: Mapper, objects: list[TargetObject],
              tally: Counter[str] | None) -> tuple[set[str], set[str]]:
    """Linked objects as read against what the state knew: the same (linked) or not (drifted).
    Objects no link claims are stored for matching; compute decides what they are. Returns the
    anchors of those unlinked ones, and of the linked ones found as the state says. ``tally``
    None: take what the target holds without counting or reporting it."""
    quiet = tally is None
    tally = Counter() if tally is None else tally
    store, type_id = ctx.store, ctx.type_ids[ot.name]
    anchors = [o.target_anchor for o in objects]
    links = store.imports.linked_anchors(type_id, anchors)
    known = store.exports.targets_data(type_id, anchors)
    compare = comparer(ctx.caps(ot).normalizations)
    before = {} if quiet else ctx.drifted_before.get(ot.name, {})
    fresh, changed, drifted, found = [], [], [], []
    not_held: list[str] = []
    unlinked: set[str] = set()
    equal: set[str] = set()
    for obj in objects:
        source = links.get(obj.target_anchor)
        if obj.target_anchor not in known:
            fresh.append(obj)
            if source is None:
                unlinked.add(obj.target_anchor)
            else:  # linked, but the state kept nothing of it: compute diffs against it
                drifted.append(source)
                tally[Situation.LINKED] += 1
            continue
        if source is None:
            changed.append(obj)  # not linked: keep what it holds now, for matching and for orphans
            unlinked.add(obj.target_anchor)
            continue
        old, was_disabled = known[obj.target_anchor]
        differs = {k: {"expected": old.get(k), "found": v} for k, v in obj.data.items()
                   if not _same(compare, k, old.get(k), v)}
        if was_disabled != obj.disabled:
            differs["(disabled)"] = {"expected": was_disabled, "found": obj.disabled}
        if not differs:
            tally[Situation.LINKED] += 1
            equal.add(obj.target_anchor)
            continue
        tally[Situation.DRIFTED] += 1
        found.append(Finding(Situation.DRIFTED, source, {"target_anchor": obj.target_anchor, "name": obj.name,
                                                         "attributes": differs}))
        if ot.reconcile.drifted == "update" or quiet:
            changed.append(keep_secrets(obj, old, mapper))
            drifted.append(source)
    if not quiet:
        _confirm_exports(ctx, ot, found, before, not_held)  # before the rows are rewritten
        store.reconcile.add_findings(type_id, ctx.run_id, found)  # sensitive values are never read back: none here
    store.imports.store_targets(type_id, fresh, overwrite=False)
    store.imports.store_targets(type_id, changed, overwrite=True)
    store.compute.mark_dirty(type_id, drifted)
    _report_not_held(ctx, ot, not_held)
    return unlinked, equal


def _confirm_exports(ctx: RunContext, ot: ObjectType, found: list[Finding], before: dict[str, dict[str, Any]],
                     not_held: list[str]) -> None:
    """Flag the drifted attributes the target accepted but does not hold: those the last export
    wrote that this first read since finds otherwise, and those that drifted the same way at the
    last reconciliation although it updated them."""
    if not found:
        return
    sent = ctx.store.reconcile.sent(ctx.type_ids[ot.name], [f.detail["target_anchor"] for f in found])
    for f in found:
        differs = f.detail["attributes"]
        written = set(sent.get(f.detail["target_anchor"], ()))
        refused = sorted(a for a, d in differs.items() if a in written or before.get(f.key, {}).get(a) == d)
        if refused:
            f.detail["not_held"] = refused
            not_held.append(f"{f.key} ({', '.join(refused)})")


def _report_not_held(ctx: RunContext, ot: ObjectType, not_held: list[str]) -> None:
    if not_held:
        ctx.logger.warning("%s: the target does not hold values it accepted (written by the last export, or "
                           "updated at the last reconciliation and different the same way again): %s%s. A read-only "
                           "attribute, one the target drops, or someone changing it back? Fix the target or remove "
                           "the attribute from the mapping", ot.name,
                           "; ".join(not_held[:5]), f" and {len(not_held) - 5} more" if len(not_held) > 5 else "")


def _same(compare: Callable[[str, Any], Any], attribute: str, old: Any, new: Any) -> bool:
    if old == new:
        return True
    if isinstance(old, list) or isinstance(new, list):
        return sorted(map(str, old or [])) == sorted(map(str, new or []))
    return old is not None and new is not None and compare(attribute, old) == compare(attribute, new)


def _missing(ctx: RunContext, ot: ObjectType, seen: Seen, tally: Counter[str]) -> None:
    """Linked objects the read did not find: gone from the target. Created again (the link goes,
    compute adds them) unless ``reconcile.missing: report``. When the read saw as many linked
    objects as the state links, none is missing and the links are not walked."""
    store, type_id = ctx.store, ctx.type_ids[ot.name]
    if len(seen) >= store.runs.count_linked(type_id):
        return
    after: str | None = None
    while links := store.reconcile.live_links(type_id, after, PAGE):
        after = links[-1][0]
        pairs = [(s, ta) for s, ta in links if ta not in seen]
        if not pairs:
            continue
        tally[Situation.MISSING] += len(pairs)
        store.reconcile.add_findings(type_id, ctx.run_id, [Finding(Situation.MISSING, s, {"target_anchor": ta})
                                                           for s, ta in pairs])
        if ot.reconcile.missing == "create":
            ctx.gone.setdefault(ot.name, set()).update(ta for _, ta in pairs)
            store.exports.unlink(type_id, pairs)
        ctx.heartbeat()
        store.commit()
    if tally[Situation.MISSING]:
        ctx.logger.warning("%s: %d objects linked in the state are gone from the target; %s", ot.name,
                           tally[Situation.MISSING], "they are created again" if ot.reconcile.missing == "create"
                           else "reconcile.missing: report leaves them so")


def settle_orphans(ctx: RunContext, ot: ObjectType, mapper: Mapper, counts: TypeCounts) -> None:
    """After compute linked what it could: the target objects read inside the boundary that no
    source object claims are orphans. Reported, or disabled or deleted as ``reconcile.orphan``
    says; those exports go through the deletion guard like any other, and live only in this
    run (the next reconciliation decides again)."""
    store, type_id = ctx.store, ctx.type_ids[ot.name]
    mark = ctx.reconciled[ot.name]
    store.reconcile.drop_orphan_exports(type_id)
    reaction = ot.reconcile.orphan
    candidates = {c for f in store.reconcile.findings(type_id, Situation.AMBIGUOUS) for c in f.detail.get("candidates", [])}
    shown = [a for a in (ot.target.correlate or ctx.caps(ot).correlation) if a not in mapper.sensitive] or \
        [m.target for m in ot.mapping if not (m.sensitive or m.password or m.reference)][:2]
    after: str | None = None
    total = 0
    while True:
        orphans, after = store.reconcile.orphans(type_id, mark, after, PAGE)
        if after is None:
            break
        orphans = [o for o in orphans if o.target_anchor not in candidates]  # held for a person to decide
        total += len(orphans)
        store.reconcile.add_findings(type_id, ctx.run_id, [
            Finding(Situation.ORPHAN, o.target_anchor, {"target_anchor": o.target_anchor, "name": o.name,
                                                        "holds": {k: o.data[k] for k in shown if k in o.data},
                                                        "disabled": o.disabled, "reaction": reaction})
            for o in orphans])
        exports = []
        for o in orphans:
            if reaction == "delete" or (reaction == "disable" and not o.disabled):
                change = (Change(gone=True) if reaction == "delete" else
                          Change(set=dict(ot.target.disable), old={k: o.data.get(k) for k in ot.target.disable},
                                 gone=True))
                exports.append(PendingExport(ORPHAN_PREFIX + o.target_anchor, Action(reaction), o.target_anchor,
                                             change, o.name, depth(o.name), o.partition))
        store.compute.set_pending(type_id, exports, [])
        ctx.heartbeat()
        store.commit()
    # only now is this reconciliation done (compute linked what it found): a run killed before
    # this point reconciles again, instead of taking the objects it read for linked
    store.imports.set_watermark(type_id, "target", None,
                                cadence.next_mark(True, store.imports.watermark(type_id, "target", None)))
    ctx.heartbeat()
    store.commit()
    situations = _situations(ctx, ot)
    counts.reconciled = situations if any(situations.values()) else None  # a first contact with nothing there
    if total:
        where = "inside target.boundary" if ot.target.boundary else "(no target.boundary declared)"
        ctx.logger.warning("%s: %d target objects %s belong to no source object (orphans): %s",
                           ot.name, total, where, {"report": "reported (reconcile.orphan: report)",
                                                   "disable": "disabled", "delete": "deleted"}[reaction])


def _situations(ctx: RunContext, ot: ObjectType) -> dict[str, int]:
    """Counts per situation of this run's reconciliation, every situation named."""
    found = ctx.store.reconcile.finding_counts(ctx.type_ids[ot.name])
    return {str(s): ctx.linked_seen.get(ot.name, 0) if s == Situation.LINKED else found.get(str(s), 0)
            for s in Situation}


def boundary_test(boundary: Boundary | None) -> Callable[[Record], bool]:
    """Whether a target record lies inside the managed boundary. Without a declared boundary,
    every object counts as managed for reporting; only ``reconcile.orphan: report`` is allowed
    then (validation), so nothing unbounded is ever disabled or deleted."""
    if boundary is None:
        return lambda record: True
    suffix = normalize_dn(boundary.under) if boundary.under else None
    scope = compile_scope(boundary.scope) if boundary.scope is not None else None

    def inside(record: Record) -> bool:
        if suffix is not None:
            name = normalize_dn(record.name or "")
            if not (name == suffix or name.endswith("," + suffix)):
                return False
        return scope is None or bool(scope(dict(record.attributes)))
    return inside
