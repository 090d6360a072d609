"""Crash recovery: settle the exports a dead run sent but never recorded, before anything else.

The export pass marks each operation in flight before the target sees it (see
:mod:`runner.engine.export`). A mark still there when a run starts means that operation's
outcome is unknown. For each one, the target is asked what it holds:

* **add** (and the add half of a replace): look the object up by its correlation (the
  manifest's ``target.correlate``, else the connector's natural key, else the object's name).
  Found: adopt it (link it, record what the target holds) and compute it again, so whatever the
  add did not finish is sent as an update. Not found: send the add again.
* **update, disable, rename**: read the object back and record what it really holds; compute it
  again, so the diff is against the truth (an update applied and then reverted in the source is
  not lost). Gone: forget it, and it is created again.
* **delete**: gone already counts as done; still there, it is sent again.
* **set_password**: passwords cannot be read back, so it is sent again (it is idempotent).

No ``match:`` rules are needed for any of this. A handful of objects are looked up one by one
(``get`` / ``lookup``); many (or a connector without lookups) are found with one paged read of
the target, keeping only the objects asked for (../shared/PERF.md: never one search per object
when thousands are in doubt).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from runner.actions import Action
from runner.connectors.base import ConfigurationError, Record
from runner.engine.context import RunContext, TypeCounts
from runner.engine.matching import fold
from runner.engine.targets import read_all_partitions, state_form
from runner.manifest.model import ObjectType
from runner.mapping.mapper import Mapper
from runner.names import normalize_dn
from runner.state.imports import TargetObject
from runner.state.records import Added, Confirmations, Deleted, Failed, PendingExport, Recompute, Updated

PAGE = 500
LOOKUP_LIMIT = 100  # more objects than this in doubt at once: read the target instead of asking one by one


def recover(ctx: RunContext, ot: ObjectType, mapper: Mapper, counts: TypeCounts) -> int:
    """Settle every in-doubt export of ``ot``; returns how many there were."""
    store, type_id = ctx.store, ctx.type_ids[ot.name]
    if not store.exports.has_in_doubt(type_id, ctx.run_id):
        return 0
    total = 0
    after: str | None = None
    while rows := store.exports.in_doubt(type_id, ctx.run_id, after, PAGE):
        after = rows[-1].source_anchor
        total += len(rows)
        resolve(ctx, ot, mapper, rows, counts)
    ctx.logger.info("%s: %d exports of an interrupted run settled against the target", ot.name, total)
    return total


def resolve(ctx: RunContext, ot: ObjectType, mapper: Mapper, rows: Sequence[PendingExport], counts: TypeCounts,
            conflicts: dict[str, str] | None = None) -> int:
    """Ask the target about each row's object and record the answer, in one commit.

    ``conflicts``: the rows are adds the target just refused as already existing (anchor -> the
    target's message); one whose object cannot be found by its correlation, or whose match
    belongs to another source object, fails instead of being sent again. Returns how many
    exports were left to send again in this run."""
    finder = Finder(ctx, ot, mapper)
    found = finder.find(rows)
    taken = _owned_by_others(ctx, ot, found)
    done = Confirmations(name_referrers=ctx.name_referrers(ot))
    stuck: list[Failed] = []
    before = ctx.store.exports.targets_data(ctx.type_ids[ot.name], [r.target_anchor for r in rows if r.target_anchor])
    states = _state_forms(ctx, ot, mapper, [rec for hits in found.values() for rec in hits])
    for row in rows:
        hits = found.get(row.source_anchor, [])
        action = row.action
        if action in (Action.ADD, Action.REPLACE):
            owners = {taken[str(h.anchor)] for h in hits if str(h.anchor) in taken} - {row.source_anchor}
            hits = [h for h in hits if str(h.anchor) not in taken or taken[str(h.anchor)] == row.source_anchor]
            if conflicts is not None and not hits:
                why = (f"it collides with the target object of {', '.join(sorted(owners))}" if owners else
                       f"no object matches its correlation ({finder.describe()}): declare target.correlate "
                       "with the attributes that collide")
                done.failures.append(Failed(row.source_anchor, f"{conflicts.get(row.source_anchor, 'already exists')}; "
                                            f"{why}"))
                counts.failed += 1
                counts.touched += not row.change.gone
            elif len(hits) == 1:
                _adopt(ctx, ot, row, hits[0], states, done)
                if action == Action.REPLACE and row.change.replaces:
                    done.deletes.append(Deleted(row.change.replaces, row.target_anchor, row.change.replaces_gone))
            elif len(hits) > 1:
                stuck.append(Failed(row.source_anchor, f"{len(hits)} target objects match its correlation "
                                    f"({', '.join(str(h.anchor) for h in hits[:5])}); nothing is sent until one "
                                    "remains"))
            else:
                done.resend.append(row.source_anchor)
        elif action in (Action.UPDATE, Action.DISABLE, Action.RENAME):
            if hits:
                _reread(ctx, ot, mapper, row, hits[0], states, before, done)
            else:
                done.recompute.append(Recompute(row.source_anchor, row.target_anchor or ""))
                done.settled.append(row.source_anchor)
        elif action in (Action.DELETE, Action.DELETE_FIRST):
            if hits:
                done.resend.append(row.source_anchor)
            else:
                done.deletes.append(Deleted(row.source_anchor, row.target_anchor, row.change.gone))
        else:  # set_password: cannot be read back; sending it again is harmless
            done.resend.append(row.source_anchor)
    store = ctx.store
    store.exports.record(ctx.type_ids[ot.name], ctx.run_id, done)
    if stuck:
        store.exports.keep_in_doubt(ctx.type_ids[ot.name], stuck)
    counts.failed += len(stuck)
    for f in stuck + done.failures:
        ctx.log.add(ot.name, f.source_anchor, Action.ADD if conflicts is not None else "recover", "failed",
                    error=f.error)
    for a in done.adds:
        ctx.log.add(ot.name, a.source_anchor, "recover", "ok", changes={"adopted": {"new": a.target_anchor}},
                    target_anchor=a.target_anchor)
    if conflicts is None:
        counts.recovered += len(rows) - len(stuck) - len(done.failures)
        # settled here, or stuck here (counted failed): one outcome each; a re-sent one counts in the export
        again = set(done.resend) | {f.source_anchor for f in done.failures}
        counts.touched += sum(1 for r in rows if not r.change.gone and r.source_anchor not in again)
    else:
        counts.added += len(done.adds)
        ctx.adopted[ot.name] = ctx.adopted.get(ot.name, 0) + len(done.adds)
    ctx.log.flush()
    ctx.heartbeat()
    store.commit()
    return len(done.resend)


def _owned_by_others(ctx: RunContext, ot: ObjectType, found: dict[str, list[Record]]) -> dict[str, str]:
    """target anchor -> the source anchor it is linked to, for the objects found: an object that
    belongs to another source object is never adopted."""
    anchors = [str(r.anchor) for hits in found.values() for r in hits if r.anchor is not None]
    return ctx.store.imports.linked_anchors(ctx.type_ids[ot.name], anchors) if anchors else {}


def _adopt(ctx: RunContext, ot: ObjectType, row: PendingExport, record: Record,
           states: dict[int, TargetObject], done: Confirmations) -> None:
    state = states[id(record)]
    done.adds.append(Added(row.source_anchor, state.target_anchor, state.data, state.name,
                           state.partition, state.version))
    done.dirty.append(row.source_anchor)


def _reread(ctx: RunContext, ot: ObjectType, mapper: Mapper, row: PendingExport, record: Record,
            states: dict[int, TargetObject], before: dict[str, tuple[dict[str, Any], bool]],
            done: Confirmations) -> None:
    state = states[id(record)]
    data = dict(state.data)
    old = before.get(row.target_anchor or "", ({}, False))[0]
    for attr in mapper.sensitive:  # unreadable: keep the digest unless this export changed it
        if attr in old and attr not in row.change.set:
            data[attr] = old[attr]
    done.updates.append(Updated(row.source_anchor, row.target_anchor or "", state.target_anchor, data,
                                state.disabled, state.name or row.name, state.partition or row.partition,
                                state.version))
    done.dirty.append(row.source_anchor)


class Finder:
    """Finds target objects for in-doubt exports: by anchor, by correlation values, or by name."""

    def __init__(self, ctx: RunContext, ot: ObjectType, mapper: Mapper):
        self.ctx, self.ot, self.mapper = ctx, ot, mapper
        self.connector = ctx.target(ot)
        self.caps = ctx.caps(ot)
        self.correlation = tuple(ot.target.correlate or self.caps.correlation)

    def describe(self) -> str:
        return f"by {', '.join(self.correlation)}" if self.correlation else "by name"

    def _key(self, row: PendingExport) -> tuple[str, Any] | None:
        """How the object of an add is found: ("values", {attr: value}) or ("name", name)."""
        if self.correlation:
            values = {a: row.change.set.get(a) for a in self.correlation}
            if all(v not in (None, "", []) for v in values.values()):
                return "values", values
        name = row.change.name or row.name
        if name:
            return "name", name
        return None

    def find(self, rows: Sequence[PendingExport]) -> dict[str, list[Record]]:
        """source anchor -> the target objects its export concerns (empty: not there)."""
        few = len(rows) <= LOOKUP_LIMIT
        if few and self.connector.can("get") and (self.connector.can("lookup") or not self.correlation):
            return {row.source_anchor: self._ask(row) for row in rows}
        if not self.connector.can("read"):
            raise ConfigurationError(f"{self.ot.name}: the target connector can neither look objects up nor be "
                                      "read, so exports interrupted by a crash cannot be checked")
        return self._scan(rows)

    def _ask(self, row: PendingExport) -> list[Record]:
        partition = row.change.partition or row.partition
        if row.action in (Action.ADD, Action.REPLACE):
            key = self._key(row)
            if key is None:
                return []
            if key[0] == "values":
                return list(self.connector.lookup(self.ot.target.object, key[1], partition=partition))
            found = self.connector.get(self.ot.target.object, None, name=key[1], partition=partition)
            return [found] if found is not None else []
        found = self.connector.get(self.ot.target.object, row.target_anchor, name=row.name, partition=partition)
        return [found] if found is not None else []

    def _scan(self, rows: Sequence[PendingExport]) -> dict[str, list[Record]]:
        """One paged read of the target, keeping only the objects some row asks about."""
        rules = self.caps.normalizations
        by_anchor: dict[str, list[str]] = defaultdict(list)
        by_values: dict[tuple[str, ...], list[str]] = defaultdict(list)
        by_name: dict[str, list[str]] = defaultdict(list)
        for row in rows:
            if row.action not in (Action.ADD, Action.REPLACE):
                by_anchor[str(row.target_anchor)].append(row.source_anchor)
                continue
            key = self._key(row)
            if key is None:
                continue
            if key[0] == "values":
                by_values[tuple(fold(key[1][a], a, rules) for a in self.correlation)].append(row.source_anchor)
            else:
                by_name[normalize_dn(key[1])].append(row.source_anchor)
        found: dict[str, list[Record]] = defaultdict(list)
        for page in read_all_partitions(self.ctx, self.ot):
            for record in page.records:
                owners: list[str] = list(by_anchor.get(str(record.anchor), ()))
                if by_values:
                    values = tuple(fold(record.attributes.get(a), a, rules) for a in self.correlation)
                    owners += by_values.get(values, ())
                if by_name and record.name:
                    owners += by_name.get(normalize_dn(record.name), ())
                for owner in owners:
                    found[owner].append(record)
        return found


def _state_forms(ctx: RunContext, ot: ObjectType, mapper: Mapper,
                 records: Iterable[Record]) -> dict[int, TargetObject]:
    """id(record) -> the record in mapped form (see :func:`runner.engine.reconcile.state_form`)."""
    records = list(records)
    return {id(r): s for r, s in zip(records, state_form(ctx, ot, mapper, records), strict=True)}
