"""Export: pending exports in export order, in-flight marks, and recording what the target confirmed.

The protocol (``runner/engine/export/`` drives it, ``runner/engine/recovery.py`` finishes it
after a crash): :meth:`Exports.mark_sent` sets ``sent_run`` on the exports about to go out,
committed before the target sees them; :meth:`Exports.record` writes results as they stream
back and clears the mark in the same commit. A mark that outlives its run is an operation in
doubt: applied or not, nobody knows until the target is asked.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from runner import retries  # the back-off schedule: plain functions of the clock
from runner.actions import Action
from runner.jsontext import loads
from runner.names import normalize_dn
from runner.state import tables as t
from runner.state.base import Part, chunks, dumps
from runner.state.records import Change, Confirmations, Failed, PendingExport, Updated
from runner.state.values import as_rows, split


def name_key(name: str | None) -> str | None:
    """The comparable form of a target name, as the links table indexes it."""
    return normalize_dn(name)[:255] if name else None

_COLUMNS = ("source_anchor", "action", "target_anchor", "payload", "name", "depth", "partition", "attempts",
            "last_error", "revision", "sent_run", "next_attempt", "held", "failed_runs")


@dataclass
class Waiting:
    """Pending exports a run left alone because of earlier failures."""

    waiting: int = 0  # backing off: their next attempt is later
    blocked: int = 0  # held after a permanent error, until their source object changes
    present: int = 0  # of both, those whose source object is still in the source
    first: str | None = None  # the earliest next attempt of those waiting


def _select() -> sa.Select:
    pe = t.pending.c
    return sa.select(*(pe[c] for c in _COLUMNS))


def _rows(result: Iterable[Any]) -> list[PendingExport]:
    """Rows of :func:`_select` (unpacked as tuples: a Row's attributes by name cost more than the rest)."""
    return [PendingExport(anchor, Action(action), target, Change.from_json(payload), name, depth, partition,
                          attempts, last_error, revision or "", sent_run, next_attempt or "", bool(held),
                          failed_runs or 0)
            for (anchor, action, target, payload, name, depth, partition, attempts, last_error, revision, sent_run,
                 next_attempt, held, failed_runs) in result]


class _Desc(str):
    """A string that sorts backwards (anchors descending inside an ascending sort key)."""

    def __lt__(self, other: str) -> bool:  # type: ignore[override]
        return str.__gt__(self, other)


def _due(due: str | None) -> list[sa.ColumnElement[bool]]:
    """Exports a run sends when its exports are due up to ``due`` (None: all, ``--retry-now``):
    not held, next attempt reached. Plain comparisons on the row, so the keyset pages keep
    walking the pending_action index (no function of a column, no sort)."""
    if due is None:
        return []
    pe = t.pending.c
    return [pe.held == sa.false(), pe.next_attempt <= due]


class Exports(Part):
    """``store.exports``: pending exports in export order, in-flight marks, and what the target confirmed."""

    def pending_page(self, type_id: int, run_id: str, actions: Sequence[Action], after: tuple[int, str] | None,
                     limit: int, deepest_first: bool = False, due: str | None = None) -> list[PendingExport]:
        """Pending exports not yet attempted by this run, not in doubt and due (``due``: the time
        up to which next attempts are due; None: every one): parents before children (or children
        first, for deletes), then in anchor order (descending, children first). ``after`` is the
        last row's (depth, anchor), depth negated when ``deepest_first``.

        A page holds one name depth: for each action, one range of the pending_action index
        (type_id, action, depth, source_anchor > ?), read in index order (backward for children
        first), the few rows they return merged by the database (anchors compare in its
        collation, as the next page's keyset does). Every database turns that single interval
        into a range scan; an IN list of actions would make it sort, an OR spanning two depths
        makes MariaDB walk from the start of the action instead, and PostgreSQL cannot range an
        OR at all."""
        actions = list(dict.fromkeys(actions))
        pe = t.pending.c
        wanted = [pe.sent_run.is_(None), sa.or_(pe.attempted_run.is_(None), pe.attempted_run != run_id), *_due(due)]
        if after is None:
            depth, anchor = self._next_depth(type_id, actions, None, deepest_first), None
        else:
            depth, anchor = (-after[0] if deepest_first else after[0]), after[1]
        while depth is not None:
            parts = []
            for action in actions:
                query = (_select().where(pe.type_id == type_id, pe.action == action, pe.depth == depth, *wanted)
                         .order_by(pe.source_anchor.desc() if deepest_first else pe.source_anchor).limit(limit))
                if anchor is not None:
                    query = query.where(pe.source_anchor < anchor if deepest_first else pe.source_anchor > anchor)
                parts.append(query)
            if len(parts) == 1:
                rows = _rows(self.conn.execute(parts[0]))
            else:
                merged = sa.union_all(*(sa.select(q.subquery()) for q in parts)).subquery()
                order = merged.c.source_anchor.desc() if deepest_first else merged.c.source_anchor
                rows = _rows(self.conn.execute(sa.select(merged).order_by(order).limit(limit)))
            if rows:
                return rows
            depth, anchor = self._next_depth(type_id, actions, depth, deepest_first), None
        return []

    def pending_among(self, type_id: int, run_id: str, actions: Sequence[Action], anchors: Collection[str],
                      deepest_first: bool = False, due: str | None = None) -> list[PendingExport]:
        """:meth:`pending_page` for a few named objects (one request of ``provision serve``, an
        object previewed), in the same order, in one statement on the primary key: walking the
        action index of every pending export of the type to keep a handful costs a request its
        time once the type has many."""
        pe = t.pending.c
        found: list[PendingExport] = []
        for part in chunks(sorted(set(anchors))):  # the action compared here: see pending_actions
            found += [r for r in _rows(self.conn.execute(_select().where(
                pe.type_id == type_id, pe.source_anchor.in_(part), pe.sent_run.is_(None),
                sa.or_(pe.attempted_run.is_(None), pe.attempted_run != run_id), *_due(due)))) if r.action in actions]
        return sorted(found, key=(lambda r: (-r.depth, _Desc(r.source_anchor))) if deepest_first
                      else (lambda r: (r.depth, r.source_anchor)))

    def _next_depth(self, type_id: int, actions: Sequence[Action], depth: int | None, deepest_first: bool) -> int | None:
        """The next name depth holding pending exports of ``actions`` after ``depth`` (None: the
        first): one index lookup per action."""
        pe = t.pending.c
        found: list[int] = []
        for action in actions:
            cond = [pe.type_id == type_id, pe.action == action]
            if depth is not None:
                cond.append(pe.depth < depth if deepest_first else pe.depth > depth)
            edge = (sa.func.max if deepest_first else sa.func.min)(pe.depth)
            value = self.conn.execute(sa.select(edge).where(*cond)).scalar()
            if value is not None:
                found.append(value)
        if not found:
            return None
        return max(found) if deepest_first else min(found)

    def mark_sent(self, type_id: int, run_id: str, anchors: Sequence[str]) -> None:
        """These exports are about to go to the target (the caller commits before sending)."""
        self.store.update_in(t.pending, {"sent_run": run_id, "attempted_run": run_id}, "source_anchor", anchors,
                             increment=("attempts",), type_id=type_id)

    def in_doubt(self, type_id: int, run_id: str, after: str | None, limit: int) -> list[PendingExport]:
        """Exports sent by an earlier run whose result was never recorded."""
        pe = t.pending.c
        query = (_select().where(pe.type_id == type_id, pe.sent_run.is_not(None), pe.sent_run != run_id)
                 .order_by(pe.source_anchor).limit(limit))
        if after is not None:
            query = query.where(pe.source_anchor > after)
        return _rows(self.conn.execute(query))

    def has_in_doubt(self, type_id: int, run_id: str) -> bool:
        pe = t.pending.c
        return self.conn.execute(sa.select(pe.source_anchor).where(
            pe.type_id == type_id, pe.sent_run.is_not(None), pe.sent_run != run_id).limit(1)).first() is not None

    def name_collisions(self, type_id: int) -> list[tuple[str, str, str | None]]:
        """(adding anchor, deleting anchor, deleted target anchor) where an add takes the name that a
        delete frees: the same object leaving and coming back (its anchor changed).

        Joined here rather than by the database: names are long text without an index, and a
        self-join of a million pending adds on them is a nested loop on MariaDB. The deletes
        (usually few) come from the pending_action index; the adds are read only when there are
        any, once, in pages."""
        pe = t.pending.c
        freed: dict[str, list[tuple[str, str | None]]] = {}
        for anchor, target_anchor, name in self.conn.execute(
                sa.select(pe.source_anchor, pe.target_anchor, pe.name)
                .where(pe.type_id == type_id, pe.action == Action.DELETE, pe.name.is_not(None), pe.sent_run.is_(None))):
            freed.setdefault(name, []).append((anchor, target_anchor))
        found: list[tuple[str, str, str | None]] = []
        if not freed:
            return found
        after: str | None = None
        while True:  # keyset pages on the primary key
            query = (sa.select(pe.source_anchor, pe.name, pe.action, pe.sent_run).where(pe.type_id == type_id)
                     .order_by(pe.source_anchor).limit(5000))
            if after is not None:
                query = query.where(pe.source_anchor > after)
            rows = self.conn.execute(query).all()
            if not rows:
                return found
            after = rows[-1].source_anchor
            found += [(anchor, gone, target) for anchor, name, action, sent in rows
                      if action == Action.ADD and sent is None and name is not None
                      for gone, target in freed.get(name, ())]

    def all_pending_for(self, type_id: int, anchors: Sequence[str]) -> list[PendingExport]:
        pe = t.pending.c
        return _rows(self.conn.execute(_select().where(pe.type_id == type_id, pe.source_anchor.in_(list(anchors)))))

    def drop_pending(self, type_id: int, anchors: Sequence[str]) -> None:
        self.store.delete_in(t.pending, "source_anchor", anchors, type_id=type_id)

    def update_pending(self, type_id: int, anchor: str, action: str, change: Change,
                       target_anchor: str | None) -> None:
        pe = t.pending.c
        self.conn.execute(t.pending.update().where(pe.type_id == type_id, pe.source_anchor == anchor)
                          .values(action=action, payload=change.to_json(), target_anchor=target_anchor))

    def all_pending(self, type_id: int, after: str | None, limit: int) -> list[PendingExport]:
        pe = t.pending.c
        query = _select().where(pe.type_id == type_id).order_by(pe.source_anchor).limit(limit)
        if after is not None:
            query = query.where(pe.source_anchor > after)
        return _rows(self.conn.execute(query))

    def pending_actions(self, type_id: int, anchors: Iterable[str], run_id: str, due: str | None = None,
                        actions: Collection[str] = (Action.ADD,)) -> set[str]:
        """Which of ``anchors`` have an export of ``actions`` (an add) waiting that this run has
        not tried yet and will try (due up to ``due``; one backing off after failures is not
        waited for)."""
        pe = t.pending.c
        found: set[str] = set()
        for part in chunks(sorted(set(anchors))):
            # the action is compared here, not in SQL: with "action = 'add'" SQLite (no statistics)
            # walks every pending add of the type through pending_action instead of looking the
            # anchors up by key, once per page of the export (quadratic at 100k objects)
            found.update(anchor for anchor, action in self.conn.execute(sa.select(pe.source_anchor, pe.action).where(
                pe.type_id == type_id, pe.source_anchor.in_(part),
                sa.or_(pe.attempted_run.is_(None), pe.attempted_run != run_id), *_due(due))) if action in actions)
        return found

    def left_pending(self, type_id: int, run_id: str, due: str | None) -> int:
        """Objects the source still has whose export was due but not tried by this run: a pass
        that stopped early, deletes the guard held, what an apply's plan did not hold. They are
        not unchanged: the next run sends them."""
        pe, so = t.pending.c, t.source_objects.c
        return self.conn.execute(
            sa.select(sa.func.count()).select_from(t.pending.join(t.source_objects, sa.and_(
                so.type_id == pe.type_id, so.anchor == pe.source_anchor)))
            .where(pe.type_id == type_id, so.deleted.is_(False),
                   sa.or_(pe.attempted_run.is_(None), pe.attempted_run != run_id),
                   sa.or_(pe.sent_run.is_(None), pe.sent_run != run_id), *_due(due))).scalar_one()

    def waiting(self, type_id: int, run_id: str, due: str | None) -> Waiting:
        """The pending exports this run left alone because of earlier failures: backing off
        (next attempt after ``due``) or held after a permanent error."""
        pe, so = t.pending.c, t.source_objects.c
        found = Waiting()
        if due is None:
            return found
        present = sa.case((so.deleted.is_(False), 1), else_=0)
        query = (sa.select(pe.held, sa.func.count(), sa.func.coalesce(sa.func.sum(present), 0),
                           sa.func.min(pe.next_attempt))
                 .select_from(t.pending.outerjoin(t.source_objects, sa.and_(so.type_id == pe.type_id,
                                                                            so.anchor == pe.source_anchor)))
                 .where(pe.type_id == type_id, sa.or_(pe.held == sa.true(), pe.next_attempt > due),
                        pe.sent_run.is_(None), sa.or_(pe.attempted_run.is_(None), pe.attempted_run != run_id))
                 .group_by(pe.held))
        for held, count, present_count, first in self.conn.execute(query):
            if held:
                found.blocked, found.present = count, found.present + int(present_count)
            else:
                found.waiting, found.present, found.first = count, found.present + int(present_count), first
        return found

    def target_anchors(self, type_id: int, anchors: Iterable[str], live_only: bool = True) -> dict[str, str]:
        live = {"live": True} if live_only else {}
        return dict(self.store.rows_in(t.links, ("source_anchor", "target_anchor"), "source_anchor",
                                       sorted(set(anchors)), type_id=type_id, **live))

    def target_names(self, type_id: int, anchors: Iterable[str], live_only: bool = True) -> dict[str, str]:
        """source anchor -> target name (references rendered by name, e.g. an LDAP DN); with
        ``live_only=False`` also the names of deleted objects, for removing references to them."""
        live = {"live": True} if live_only else {}
        return {anchor: name for anchor, name in self.store.rows_in(
            t.links, ("source_anchor", "target_name"), "source_anchor", sorted(set(anchors)), type_id=type_id, **live)
            if name is not None}

    def source_data(self, type_id: int, anchor: str) -> dict[str, Any] | None:
        so = t.source_objects.c
        data = self.conn.execute(sa.select(so.data).where(so.type_id == type_id, so.anchor == anchor)).scalar()
        return loads(data) if data is not None else None

    def target_versions(self, type_id: int, target_anchors: Sequence[str]) -> dict[str, str]:
        """The version last recorded for each target object that has one (ETag, entryCSN)."""
        to = t.target_objects.c
        found: dict[str, str] = {}
        for part in chunks(sorted(set(target_anchors))):
            found.update((a, v) for a, v in self.conn.execute(sa.select(to.target_anchor, to.version).where(
                to.type_id == type_id, to.target_anchor.in_(part), to.version.is_not(None))))
        return found

    def targets_data(self, type_id: int, target_anchors: Sequence[str]) -> dict[str, tuple[dict[str, Any], bool]]:
        """What the target holds for each of ``target_anchors``: (data, disabled)."""
        found: dict[str, tuple[dict[str, Any], bool]] = {}
        for anchor, data, disabled in self.store.rows_in(t.target_objects, ("target_anchor", "data", "disabled"),
                                                         "target_anchor", sorted(set(target_anchors)), type_id=type_id):
            found[anchor] = (loads(data), bool(disabled))
        self.store.values.with_values(type_id, {a: d for a, (d, _) in found.items()})
        return found

    def record(self, type_id: int, run_id: str, done: Confirmations,
               retry_at: Callable[[int], str] = retries.next_attempt) -> None:
        """Write what a stretch of results confirmed, a few executemany statements in all. Every
        pending export it settles loses its in-flight mark in the same transaction.

        ``retry_at``: when a failed export is due again, given the number of runs in a row it has
        failed in (the back-off schedule of ``runner.retries``)."""
        lk, to, pe, rf = t.links.c, t.target_objects.c, t.pending.c, t.refs.c
        conn, store, values = self.conn, self.store, self.store.values
        if done.deletes:
            conn.execute(t.links.update().where(lk.type_id == type_id,
                                                lk.source_anchor.in_([d.source_anchor for d in done.deletes]))
                         .values(live=False))
            gone = [d.target_anchor for d in done.deletes if d.target_anchor is not None]
            conn.execute(t.target_objects.delete().where(to.type_id == type_id, to.target_anchor.in_(gone)))
            values.drop_values(type_id, gone)
            store.compute.forget_source(type_id, [d.source_anchor for d in done.deletes if d.source_gone])
            ix, rv = t.target_index.c, t.reservations.c  # values select_unique_value reserved are free again
            conn.execute(t.reservations.delete().where(rv.type_id == type_id, rv.anchor.in_(
                [d.source_anchor for d in done.deletes])))
            conn.execute(t.target_index.delete().where(ix.type_id == type_id, ix.target_anchor.in_(gone)))
        if done.adds:
            store.delete_in(t.links, "source_anchor", [a.source_anchor for a in done.adds], type_id=type_id)
            store.delete_in(t.target_objects, "target_anchor", [a.target_anchor for a in done.adds], type_id=type_id)
            store.bulk_insert(t.links, ("type_id", "source_anchor", "target_anchor", "live", "target_name", "name_key"),
                              [(type_id, a.source_anchor, a.target_anchor, True, a.name, name_key(a.name))
                               for a in done.adds])
            parts = {a.target_anchor: split(a.data) for a in done.adds}
            if any(lists for _, lists in parts.values()):
                values.drop_values(type_id, list(parts))
            sent: dict[tuple[str, ...], str] = {}  # the attributes written, as JSON: the same few lists over and over

            def written(data: dict[str, Any]) -> str:
                names = tuple(data)
                text = sent.get(names)
                if text is None:
                    text = sent[names] = dumps(sorted(data))
                return text

            store.bulk_insert(t.target_objects, ("type_id", "target_anchor", "data", "name", "disabled", "partition",
                                                 "version", "sent"),
                              [(type_id, a.target_anchor, dumps(parts[a.target_anchor][0]), a.name, False, a.partition,
                                a.version, written(a.data)) for a in done.adds])
            values.replace_values(type_id, {anchor: lists for anchor, (_, lists) in parts.items()}, fresh=True)
        renamed: dict[str, str] = {}
        if done.updates and done.name_referrers:
            renamed = self._renamed(type_id, done.updates)
            if own := {attr for referrer, attr in done.name_referrers if referrer == type_id}:
                self._keep_stale_references(type_id, done.updates, own)
        if done.updates:
            store.update_many(t.links, ("target_anchor", "target_name", "name_key"), ("type_id", "source_anchor"),
                              [(u.target_anchor, u.name, name_key(u.name), type_id, u.source_anchor)
                               for u in done.updates])
        for u in done.updates:  # multi-valued attributes: set whole, or changed by difference
            if u.target_anchor != u.old_target_anchor:
                values.move_values(type_id, u.old_target_anchor, u.target_anchor)
            values.replace_values(type_id, {u.target_anchor: split(u.data)[1]})
            if u.added or u.removed:
                values.change_values(type_id, u.target_anchor, u.added or {}, u.removed or {})
        if done.updates:
            store.update_many(t.target_objects, ("target_anchor", "data", "disabled", "name", "partition", "version",
                                                 "checked", "sent"), ("type_id", "target_anchor"),
                              [(u.target_anchor, dumps(split(u.data)[0]), bool(u.disabled), u.name, u.partition,
                                u.version, None, dumps(list(u.sent)) if u.sent else None, type_id, u.old_target_anchor)
                               for u in done.updates])
        if renamed:
            store.compute.stale_names(type_id, renamed, done.name_referrers)
        finished = ([a.source_anchor for a in done.adds] + [u.source_anchor for u in done.updates]
                    + [d.source_anchor for d in done.deletes] + list(done.settled))
        self.drop_pending(type_id, finished)
        if done.followups:
            store.compute.set_pending(type_id, done.followups, [])
        if done.failures:
            self._record_failures(type_id, done.failures, retry_at)
        if done.retries:  # tried again later in this run: not marked attempted by it
            conn.execute(t.pending.update()
                         .where(pe.type_id == type_id, pe.source_anchor == sa.bindparam("k_anchor"))
                         .values(last_error=sa.bindparam("k_error"), sent_run=None, attempted_run=None),
                         [dict(k_anchor=f.source_anchor, k_error=f.error) for f in done.retries])
        for part in chunks(list(done.resend)):
            conn.execute(t.pending.update().where(pe.type_id == type_id, pe.source_anchor.in_(part))
                         .values(sent_run=None, attempted_run=None))
        if done.recompute:  # gone from the target: computed again (and what refers to them)
            self.unlink(type_id, [(r.source_anchor, r.target_anchor) for r in done.recompute])
        if done.dirty:
            store.compute.mark_dirty(type_id, done.dirty)
        if done.dropped:
            conn.execute(t.refs.update().where(rf.type_id == type_id, rf.anchor == sa.bindparam("k_anchor"),
                                               rf.ref_type_id == sa.bindparam("k_type"),
                                               rf.ref_anchor == sa.bindparam("k_ref")).values(dropped=True),
                         [dict(k_anchor=d.source_anchor, k_type=d.ref_type_id, k_ref=d.ref_anchor)
                          for d in done.dropped])
        # references to what was just added (left out before) or deleted change their value
        store.compute.mark_referrers_dirty(type_id, [a.source_anchor for a in done.adds], only_dropped=True)
        store.compute.mark_referrers_dirty(type_id, [d.source_anchor for d in done.deletes])

    def _renamed(self, type_id: int, updates: Sequence[Updated]) -> dict[str, str]:
        """source anchor -> the name it had, of the updates that give their object a new name."""
        lk = t.links.c
        named = {u.source_anchor: u.name for u in updates if u.name}
        old: dict[str, str] = {}
        for part in chunks(sorted(named)):
            old.update(self.conn.execute(sa.select(lk.source_anchor, lk.target_name).where(
                lk.type_id == type_id, lk.source_anchor.in_(part))).all())
        return {a: name for a, name in old.items() if name and name_key(name) != name_key(named[a])}

    def _keep_stale_references(self, type_id: int, updates: Sequence[Updated], attributes: set[str]) -> None:
        """An update writes its object's data whole, from what was read when it was prepared. A
        reference by name that a rename made stale since (:meth:`Compute.stale_names`, an earlier
        stretch of this pass) stays stale unless this update wrote that attribute itself."""
        current = self.targets_data(type_id, [u.old_target_anchor for u in updates])
        for u in updates:
            held = current.get(u.old_target_anchor, ({}, False))[0]
            for attr in attributes - set(u.sent):
                if (attr in u.data or attr in held) and not as_rows(held.get(attr)):  # value rows: not rewritten
                    u.data[attr] = held.get(attr)

    def unlink(self, type_id: int, pairs: Sequence[tuple[str, str]]) -> None:
        """Forget that these source objects have target objects (they are gone from the target, as
        an update or a reconciliation found): compute adds them again, and whatever references
        them is computed again."""
        lk, to, so = t.links.c, t.target_objects.c, t.source_objects.c
        sources = [s for s, _ in pairs]
        targets = [ta for _, ta in pairs]
        for part in chunks(sources):
            self.conn.execute(t.links.delete().where(lk.type_id == type_id, lk.source_anchor.in_(part)))
            self.conn.execute(t.source_objects.update().where(so.type_id == type_id, so.anchor.in_(part))
                              .values(dirty=True))
        for part in chunks(targets):
            self.conn.execute(t.target_objects.delete().where(to.type_id == type_id, to.target_anchor.in_(part)))
        self.store.values.drop_values(type_id, targets)
        self.store.compute.mark_referrers_dirty(type_id, sources)

    def _record_failures(self, type_id: int, failures: Sequence[Failed], retry_at: Callable[[int], str]) -> None:
        """Failed exports stay pending with their error, one more failed run and the time of their
        next attempt; one that failed permanently is held until compute rewrites it."""
        pe = t.pending.c
        runs: dict[str, int] = {}
        for part in chunks(sorted({f.source_anchor for f in failures})):
            runs.update(self.conn.execute(sa.select(pe.source_anchor, pe.failed_runs).where(
                pe.type_id == type_id, pe.source_anchor.in_(part))).all())
        rows = []
        for f in failures:
            failed_runs = (runs.get(f.source_anchor) or 0) + 1
            runs[f.source_anchor] = failed_runs - 1  # the same export twice in one stretch: one run
            rows.append(dict(k_anchor=f.source_anchor, k_error=f.error, k_held=f.permanent, k_runs=failed_runs,
                             k_next=retry_at(failed_runs)))
        self.conn.execute(t.pending.update()
                          .where(pe.type_id == type_id, pe.source_anchor == sa.bindparam("k_anchor"))
                          .values(last_error=sa.bindparam("k_error"), sent_run=None, held=sa.bindparam("k_held"),
                                  failed_runs=sa.bindparam("k_runs"), next_attempt=sa.bindparam("k_next")), rows)

    def keep_in_doubt(self, type_id: int, failures: Sequence[Failed]) -> None:
        """Record why these in-doubt exports could not be settled; they stay in flight, so nothing
        repeats them until they can be."""
        pe = t.pending.c
        if failures:
            self.conn.execute(t.pending.update()
                              .where(pe.type_id == type_id, pe.source_anchor == sa.bindparam("k_anchor"))
                              .values(last_error=sa.bindparam("k_error")),
                              [dict(k_anchor=f.source_anchor, k_error=f.error) for f in failures])

    def prune_tombstones(self, type_id: int) -> None:
        """Forget target anchors of deleted objects that nothing references any more."""
        lk, rf = t.links.c, t.refs.c
        still_needed = sa.select(rf.ref_anchor).where(rf.ref_type_id == type_id, rf.ref_anchor == lk.source_anchor)
        # "= false" finds the tombstones on the links_live_anchor index; each is looked up in refs_target
        self.conn.execute(t.links.delete().where(lk.type_id == type_id, lk.live == sa.false(), ~sa.exists(still_needed)))
