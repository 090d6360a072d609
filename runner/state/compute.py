"""Compute: dirty source objects, scope, references, and the pending exports compute decides."""

from __future__ import annotations

import secrets as pysecrets
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from runner.jsontext import loads
from runner.state import tables as t
from runner.state.base import Part, chunks, dumps, now_iso
from runner.state.reconcile import GONE_PREFIX
from runner.state.records import PendingExport, SourceRow

BULK_REWRITE = 500  # more references gone than this in one page: rewrite those objects' references whole


def new_revision() -> str:
    return pysecrets.token_hex(6)


class Compute(Part):
    """``store.compute``: dirty marks, scope, references and the pending exports compute decides."""

    def mark_all_dirty(self, type_id: int) -> None:
        """Every object evaluated again, its scope too (the rules may have changed)."""
        so = t.source_objects.c
        self.conn.execute(t.source_objects.update().where(so.type_id == type_id).values(dirty=True, in_scope=None))

    def mark_dirty(self, type_id: int, anchors: Sequence[str]) -> None:
        """Evaluate these objects again on the next compute."""
        self.store.update_in(t.source_objects, {"dirty": True}, "anchor", anchors, type_id=type_id)

    def count_dirty(self, type_id: int) -> int:
        """How many objects the next compute evaluates (an index range: the progress display's total)."""
        so = t.source_objects.c
        return self.conn.execute(sa.select(sa.func.count()).where(so.type_id == type_id,
                                                                  so.dirty == sa.true())).scalar_one()

    def dirty_rows(self, type_id: int, after: str | None, limit: int, targets: bool = True,
                   shard: tuple[str | None, str | None] | None = None, unscoped: bool = False) -> list[SourceRow]:
        """The next page of dirty source objects, with their link and what the target holds
        (``targets=False``: the link only, no target data or values; the scope sweep needs no
        more, and a big group's stored members are as many rows as it has members). ``shard``:
        only anchors in [low, high) (None: unbounded), a slice of a run fanned out over workers
        (runner/distributed/): the same index range, cut short. ``unscoped``: not the objects known to
        be in scope and present (the import scoped them, :meth:`Imports.import_page`): the scope
        sweep has nothing to decide for those (filtered on the same index range)."""
        so, lk, to = t.source_objects.c, t.links.c, t.target_objects.c
        joined = t.source_objects.outerjoin(t.links, sa.and_(lk.type_id == so.type_id, lk.source_anchor == so.anchor))
        columns = [so.anchor, so.data, so.deleted, so.in_scope, so.exists_after, so.partition, so.gone_at,
                   lk.target_anchor, lk.live]
        if targets:
            joined = joined.outerjoin(t.target_objects, sa.and_(to.type_id == lk.type_id,
                                                                to.target_anchor == lk.target_anchor))
            columns += [to.data.label("target_data"), to.disabled, to.name, to.partition.label("target_partition")]
        query = (
            sa.select(*columns).select_from(joined)
            # "= true", not "IS true": MariaDB range-scans the (type_id, dirty, anchor) index only so
            .where(so.type_id == type_id, so.dirty == sa.true())
            .order_by(so.anchor).limit(limit))
        if after is not None:
            query = query.where(so.anchor > after)
        if unscoped:
            query = query.where(sa.or_(so.in_scope.is_(None), so.in_scope == sa.false(), so.exists_after == sa.false(),
                                       so.deleted == sa.true()))
        if shard is not None:
            if shard[0] is not None:
                query = query.where(so.anchor >= shard[0])
            if shard[1] is not None:
                query = query.where(so.anchor < shard[1])
        rows = []
        result = self.conn.execute(query)
        if not targets:  # rows as the driver's tuples: a Row's attributes cost more than the rest
            for anchor, data, deleted, in_scope, exists, partition, gone_at, target_anchor, live in result:
                rows.append(SourceRow(anchor, loads(data), bool(deleted), in_scope, bool(exists),
                                      target_anchor if live else None, bool(live), None, False,
                                      partition=partition, gone_at=gone_at))
            return rows
        for (anchor, data, deleted, in_scope, exists, partition, gone_at, target_anchor, live, target_data,
             disabled, name, target_partition) in result:
            if live:
                rows.append(SourceRow(anchor, loads(data), bool(deleted), in_scope, bool(exists), target_anchor, True,
                                      loads(target_data) if target_data else None, bool(disabled), name,
                                      target_partition, partition, gone_at))
            else:
                rows.append(SourceRow(anchor, loads(data), bool(deleted), in_scope, bool(exists), None, False, None,
                                      False, partition=partition, gone_at=gone_at))
        if targets:
            known = {r.target_anchor: r.target_data for r in rows if r.target_anchor and r.target_data is not None}
            self.store.values.with_values(type_id, known)  # type: ignore[arg-type]
        return rows

    def set_scope(self, type_id: int, updates: Sequence[tuple[str, bool | None, bool]]) -> None:
        """Store (anchor, in_scope, exists_after) for a page: one update per distinct pair of
        values (a handful), each by primary key for its anchors. An executemany of one UPDATE
        per row costs a round trip per object on MariaDB (pymysql sends them one by one)."""
        groups: dict[tuple[bool | None, bool], list[str]] = {}
        for anchor, in_scope, will_exist in updates:
            groups.setdefault((in_scope, will_exist), []).append(anchor)
        for (in_scope, will_exist), anchors in groups.items():
            self.store.update_in(t.source_objects, {"in_scope": in_scope, "exists_after": will_exist}, "anchor",
                                 anchors, type_id=type_id)

    def exists_after(self, type_id: int, anchors: Iterable[str]) -> set[str]:
        """Which of ``anchors`` will exist in the target once this run's exports land."""
        return {anchor for anchor, in self.store.rows_in(t.source_objects, ("anchor",), "anchor", sorted(set(anchors)),
                                                         type_id=type_id, exists_after=True)}

    def mark_gone_since(self, type_id: int, before: str) -> int:
        """Make source objects gone since before ``before`` and still linked dirty, so compute
        decides their deferred delete (when_deleted: disable_then_delete_after)."""
        so, lk = t.source_objects.c, t.links.c
        anchors = list(self.conn.execute(sa.select(so.anchor).select_from(t.source_objects.join(
            t.links, sa.and_(lk.type_id == so.type_id, lk.source_anchor == so.anchor, lk.live.is_(True))))
            .where(so.type_id == type_id, so.deleted.is_(True), so.dirty.is_(False), so.gone_at <= before)).scalars())
        self.mark_dirty(type_id, anchors)
        return len(anchors)

    def keep_held(self, type_id: int, actions: Sequence[str], released: Collection[str] = ()) -> list[str]:
        """Objects whose pending ``actions`` (deletes) the deletion guard holds: they will still
        exist after this run, so references to them must stay. They are marked dirty again, so
        the next run decides afresh (the source fixed: nothing to do; the deletes allowed: the
        references go first). ``released``: approved objects, which go."""
        so, pe = t.source_objects.c, t.pending.c
        anchors = sorted(a for a in self.conn.execute(sa.select(pe.source_anchor).where(
            pe.type_id == type_id, pe.action.in_(list(actions)))).scalars() if a not in released)
        for part in chunks(anchors):
            self.conn.execute(t.source_objects.update().where(so.type_id == type_id, so.anchor.in_(part))
                              .values(exists_after=True))
        return anchors

    def mark_referrers_dirty(self, ref_type_id: int, anchors: Sequence[str], only_dropped: bool = False) -> None:
        """Re-evaluate objects whose references point at ``anchors`` (their value may change).

        Two statements, each on an index: the referrers are read first (refs_target), then
        marked by primary key. An UPDATE ... WHERE (type_id, anchor) IN (SELECT ...) is run on
        MariaDB as a subquery per row of source_objects: a scan of every object per call."""
        if not anchors:
            return
        referrers: dict[int, set[str]] = {}
        equal: dict[str, Any] = {"ref_type_id": ref_type_id, **({"dropped": True} if only_dropped else {})}
        for type_id, anchor in self.store.rows_in(t.refs, ("type_id", "anchor"), "ref_anchor", sorted(set(anchors)),
                                                  **equal):
            referrers.setdefault(type_id, set()).add(anchor)
        for type_id, found in referrers.items():
            self.store.update_in(t.source_objects, {"dirty": True}, "anchor", sorted(found), type_id=type_id)

    def stale_names(self, ref_type_id: int, renamed: Mapping[str, str],
                    referrers: Sequence[tuple[int, str]]) -> None:
        """Objects of ``ref_type_id`` got new names (source anchor -> the name they had): wherever
        the target holds a reference to one of them *by name* (an LDAP ``manager`` or ``member``
        DN), it still holds the old name, unless the server rewrote it (slapd's refint overlay,
        Active Directory's linked attributes). The state says what the target holds, so it says
        that: a single value becomes unknown (None), a value in a list becomes the old name itself
        (``GONE_PREFIX``, which the export removes literally), and the referrers are computed again,
        so the next export sends the new name (and drops the old one). Recorded in the same
        transaction as the rename, so a run killed right after it still repairs the referrers.

        ``referrers``: (type id, attribute) of every reference to ``ref_type_id`` by name."""
        rf, lk, to, tv = t.refs.c, t.links.c, t.target_objects.c, t.target_values.c
        attributes: dict[int, set[str]] = {}
        for type_id, attr in referrers:
            attributes.setdefault(type_id, set()).add(attr)
        for type_id, attrs in attributes.items():
            holders: dict[str, set[str]] = {}  # referrer source anchor -> the renamed objects it names
            for part in chunks(sorted(renamed)):
                for anchor, ref in self.conn.execute(sa.select(rf.anchor, rf.ref_anchor).where(
                        rf.type_id == type_id, rf.ref_type_id == ref_type_id, rf.ref_anchor.in_(part))):
                    holders.setdefault(anchor, set()).add(ref)
            if not holders:
                continue
            targets: dict[str, set[str]] = {}  # referrer target anchor -> the renamed objects it names
            for part in chunks(sorted(holders)):
                for source, target in self.conn.execute(sa.select(lk.source_anchor, lk.target_anchor).where(
                        lk.type_id == type_id, lk.source_anchor.in_(part), lk.live == sa.true())):
                    targets[target] = holders[source]
            changed: list[dict[str, str]] = []
            for part in chunks(sorted(targets)):
                for target, text in self.conn.execute(sa.select(to.target_anchor, to.data).where(
                        to.type_id == type_id, to.target_anchor.in_(part))):
                    data, refs, touched = loads(text), targets[target], False
                    for attr in attrs & data.keys():
                        value = data[attr]
                        if isinstance(value, list):
                            data[attr] = [GONE_PREFIX + renamed[v] if v in refs else v for v in value]
                            touched = touched or data[attr] != value
                        elif value in refs:
                            data[attr], touched = None, True
                    if touched:
                        changed.append({"k_anchor": target, "k_data": dumps(data)})
            if changed:
                self.conn.execute(t.target_objects.update().where(
                    to.type_id == type_id, to.target_anchor == sa.bindparam("k_anchor")).values(
                    data=sa.bindparam("k_data")), changed)
            rows = [{"k_anchor": target, "k_attr": attr, "k_old": dumps(ref), "k_new": dumps(GONE_PREFIX + renamed[ref])}
                    for target, refs in targets.items() for ref in refs for attr in attrs]
            self.conn.execute(t.target_values.update().where(
                tv.type_id == type_id, tv.target_anchor == sa.bindparam("k_anchor"),
                tv.attribute == sa.bindparam("k_attr"), tv.value == sa.bindparam("k_old")).values(
                value=sa.bindparam("k_new")), rows)
            self.mark_dirty(type_id, sorted(holders))

    def replace_refs(self, type_id: int, anchors: Sequence[str], rows: Sequence[tuple[str, int, str]]) -> None:
        """Set the references held by ``anchors`` to ``rows`` of (anchor, ref_type_id, ref_anchor),
        by difference: a recomputed group of 30,000 members one of whom left deletes one row,
        where deleting and inserting them all wrote 60,000 rows and their index entries per run.
        A reference kept keeps its ``dropped`` mark (at worst one more recompute when the
        object it names is added). Many removals at once (a mapping change) go in bulk."""
        rf = t.refs.c
        wanted = set(rows)
        held = set(self.store.rows_in(t.refs, ("anchor", "ref_type_id", "ref_anchor"), "anchor", anchors,
                                      type_id=type_id))
        gone = held - wanted
        if len(gone) > BULK_REWRITE:
            rewrite = sorted({a for a, _, _ in gone})
            for part in chunks(rewrite):
                self.conn.execute(t.refs.delete().where(rf.type_id == type_id, rf.anchor.in_(part)))
            again = set(rewrite)
            held = {k for k in held if k[0] not in again}
        elif gone:
            self.conn.execute(t.refs.delete().where(rf.type_id == type_id, rf.anchor == sa.bindparam("k_anchor"),
                                                    rf.ref_type_id == sa.bindparam("k_ref_type"),
                                                    rf.ref_anchor == sa.bindparam("k_ref")),
                              [{"k_anchor": a, "k_ref_type": rt, "k_ref": ra} for a, rt, ra in sorted(gone)])
        self.store.bulk_insert(t.refs, ("type_id", "anchor", "ref_type_id", "ref_anchor", "dropped"),
                               [(type_id, a, rt, ra, False) for a, rt, ra in sorted(wanted - held)])

    def clean(self, type_id: int, anchors: Sequence[str], errors: dict[str, str]) -> None:
        """Mark computed objects clean; keep failed ones dirty, with their error. The clean ones
        (nearly all) in one update per chunk of anchors, the failed ones one by one."""
        if not anchors:
            return
        so = t.source_objects.c
        self.store.update_in(t.source_objects, {"dirty": False, "error": None}, "anchor",
                             [a for a in anchors if a not in errors], type_id=type_id)
        failed = [dict(k_anchor=a, error=errors[a]) for a in anchors if a in errors]
        if failed:
            self.conn.execute(
                t.source_objects.update()
                .where(so.type_id == type_id, so.anchor == sa.bindparam("k_anchor"))
                .values(dirty=True, error=sa.bindparam("error")), failed)

    def forget_source(self, type_id: int, anchors: Sequence[str]) -> None:
        """Drop source objects that are gone and have nothing left in the target."""
        if not anchors:
            return
        so, rf, pe = t.source_objects.c, t.refs.c, t.pending.c
        self.conn.execute(t.source_objects.delete().where(so.type_id == type_id, so.anchor.in_(list(anchors))))
        self.conn.execute(t.refs.delete().where(rf.type_id == type_id, rf.anchor.in_(list(anchors))))
        self.conn.execute(t.pending.delete().where(pe.type_id == type_id, pe.source_anchor.in_(list(anchors))))

    def set_pending(self, type_id: int, entries: Sequence[PendingExport], cleared: Sequence[str]) -> None:
        """Replace the pending exports of a page; ``cleared`` anchors have nothing to export any more.

        An export still in flight (sent by a run that died before its result was recorded) is
        never replaced: recovery must resolve it first, or the new export could repeat it."""
        anchors = [e.source_anchor for e in entries] + list(cleared)
        in_flight: set[str] = set()
        since: dict[str, str] = {}  # how long each object has had an export pending survives the rewrite
        found = self.store.rows_in(t.pending, ("source_anchor", "sent_run", "since"), "source_anchor", anchors,
                                   type_id=type_id)  # by primary key
        for anchor, sent, pending_since in found:
            if sent is not None:
                in_flight.add(anchor)
            if pending_since is not None:
                since[anchor] = pending_since
        if found:  # by primary key only: a condition on sent_run could make the database scan by that index
            self.store.delete_in(t.pending, "source_anchor", [a for a in anchors if a not in in_flight], type_id=type_id)
        fresh = [e for e in entries if e.source_anchor not in in_flight]
        prefix = new_revision()[:8]  # new for this page; with a counter, unique per export
        now = now_iso()
        self.store.bulk_insert(t.pending, ("type_id", "source_anchor", "action", "target_anchor", "name", "depth", "payload",
                                           "attempts", "partition", "revision", "since"),
                               [(type_id, e.source_anchor, e.action, e.target_anchor, e.name, e.depth, e.change.to_json(), 0,
                                 e.partition, e.revision or f"{prefix}{i:x}", since.get(e.source_anchor, now))
                                for i, e in enumerate(fresh)])
