"""Reconciliation: which target objects a read saw, what it found, and which system each target is.

A reconciliation stamps the target objects it reads that no link claims with its mark
(``target_objects.seen``) and whether they lie inside the boundary (``unclaimed``): they are
*orphans* unless compute links them, found by walking an index. Linked objects are not written
at all (the engine keeps 8 bytes per object it saw, and walks the live links only when fewer
were seen than the state links: those not seen are *missing*). What it
found (everything but plain linked objects) is kept per situation in ``reconcile_findings`` for
``status`` and ``check``, replaced by the next reconciliation.
"""

from __future__ import annotations

import json
import secrets as pysecrets
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import sqlalchemy as sa

from runner.state import tables as t
from runner.state.base import Part, chunks, dumps, now_iso

ORPHAN_PREFIX = "orphan:"  # pending exports of orphans: no source object, keyed by this + target anchor
# a reference value naming the old target anchor of an object found missing and created again: it
# names no source object any more, yet the referrer (a group) still holds it and must drop it
GONE_PREFIX = "~gone:"


class Finding(NamedTuple):
    situation: str
    key: str  # the source anchor; for an orphan, the target anchor
    detail: dict[str, Any]


class Orphan(NamedTuple):
    target_anchor: str
    name: str | None
    partition: str | None
    disabled: bool
    data: dict[str, Any]


class Reconcile(Part):
    """``store.reconcile``: what a reconciliation read and found, and which system each target is."""

    def begin_reconcile(self, type_id: int) -> str:
        """A new mark for the reconciliation that starts; its earlier findings are forgotten."""
        fd = t.findings.c
        self.conn.execute(t.findings.delete().where(fd.type_id == type_id))
        return pysecrets.token_hex(8)

    def stamp_targets(self, type_id: int, unclaimed: Mapping[str, bool], mark: str) -> None:
        """Record that the reconciliation ``mark`` read these target objects no link claims
        (anchor -> inside the boundary): one driver-level update per chunk and flag."""
        quote, q = self.store.driver_sql()
        for flag in (True, False):
            anchors = [a for a, u in unclaimed.items() if u is flag]
            for part in chunks(anchors):
                self.conn.exec_driver_sql(
                    f"UPDATE {quote('target_objects')} SET {quote('seen')} = {q}, {quote('unclaimed')} = {q} "
                    f"WHERE {quote('type_id')} = {q} AND {quote('target_anchor')} IN ({', '.join([q] * len(part))})",
                    (mark, flag, type_id, *part))

    def checked(self, type_id: int, target_anchors: Sequence[str]) -> dict[str, str]:
        """target anchor -> its fingerprint as a reconciliation last found it as the state says."""
        return {a: c for a, c in self.store.rows_in(t.target_objects, ("target_anchor", "checked"), "target_anchor",
                                                    target_anchors, type_id=type_id) if c is not None}

    def set_checked(self, type_id: int, fingerprints: Mapping[str, str]) -> None:
        if not fingerprints:
            return
        quote, q = self.store.driver_sql()
        self.conn.exec_driver_sql(
            f"UPDATE {quote('target_objects')} SET {quote('checked')} = {q}, {quote('sent')} = NULL "
            f"WHERE {quote('type_id')} = {q} AND {quote('target_anchor')} = {q}",
            [(d, type_id, a) for a, d in fingerprints.items()])

    def sent(self, type_id: int, target_anchors: Sequence[str]) -> dict[str, list[str]]:
        """target anchor -> the attributes the last export wrote, not confirmed by a read yet."""
        return {a: json.loads(v) for a, v in self.store.rows_in(t.target_objects, ("target_anchor", "sent"),
                                                                "target_anchor", target_anchors, type_id=type_id) if v}

    def live_links(self, type_id: int, after: str | None, limit: int) -> list[tuple[str, str]]:
        """(source anchor, target anchor) of live links, a keyset page by source anchor."""
        lk = t.links.c
        query = (sa.select(lk.source_anchor, lk.target_anchor).where(lk.type_id == type_id, lk.live == sa.true())
                 .order_by(lk.source_anchor).limit(limit))
        if after is not None:
            query = query.where(lk.source_anchor > after)
        return [(s, ta) for s, ta in self.conn.execute(query)]

    def orphans(self, type_id: int, mark: str, after: str | None, limit: int) -> tuple[list[Orphan], str | None]:
        """Target objects the reconciliation ``mark`` found unclaimed inside the boundary and that
        no live link claims now (compute may have linked them), from a keyset page of the
        candidates after ``after``; returns them and where the next page starts (None: done).
        The links of a page are looked up by target anchor: a correlated NOT EXISTS made SQLite
        walk every live link per row."""
        to = t.target_objects.c
        query = (sa.select(to.target_anchor, to.name, to.partition, to.disabled, to.data, to.seen)
                 .where(to.type_id == type_id, to.unclaimed == sa.true()).order_by(to.target_anchor).limit(limit))
        if after is not None:
            query = query.where(to.target_anchor > after)
        rows = self.conn.execute(query).all()
        if not rows:
            return [], None
        claimed = self.store.imports.linked_anchors(type_id, [r.target_anchor for r in rows])
        found = [Orphan(a, n, p, bool(d), json.loads(data)) for a, n, p, d, data, seen in rows
                 if seen == mark and a not in claimed]
        # candidates of earlier reconciliations: linked since (no longer candidates), or not read
        # this time although no link claims them (gone from the target: forgotten)
        linked = [r.target_anchor for r in rows if r.target_anchor in claimed]
        gone = [r.target_anchor for r in rows if r.seen != mark and r.target_anchor not in claimed]
        for part in chunks(linked):
            self.conn.execute(t.target_objects.update().where(to.type_id == type_id, to.target_anchor.in_(part))
                              .values(unclaimed=None))
        for part in chunks(gone):
            self.conn.execute(t.target_objects.delete().where(to.type_id == type_id, to.target_anchor.in_(part)))
        self.store.values.drop_values(type_id, gone)
        return found, rows[-1].target_anchor

    def drop_orphan_exports(self, type_id: int) -> None:
        """Orphan disables and deletes live only in the reconciliation that decided them (one not
        sent, e.g. held by the deletion guard, is decided again by the next one): a target object
        linked meanwhile must never be deleted as an orphan. Those in flight stay for recovery."""
        pe = t.pending.c
        self.conn.execute(t.pending.delete().where(pe.type_id == type_id,
                                                   pe.source_anchor.startswith(ORPHAN_PREFIX, autoescape=True),
                                                   pe.sent_run.is_(None)))

    def add_findings(self, type_id: int, run_id: str, found: Sequence[Finding]) -> None:
        fd = t.findings.c
        rows = {(f.situation, f.key[:255]): f for f in found}
        for part in chunks(list(rows)):
            for situation in {s for s, _ in part}:
                keys = [k for s, k in part if s == situation]
                self.conn.execute(t.findings.delete().where(fd.type_id == type_id, fd.situation == situation,
                                                            fd.key.in_(keys)))
        self.store.bulk_insert(t.findings, ("type_id", "situation", "key", "run_id", "detail"),
                               [(type_id, s, k, run_id, dumps(f.detail)) for (s, k), f in rows.items()])

    def drop_findings(self, type_id: int, situation: str, keys: Sequence[str]) -> None:
        fd = t.findings.c
        for part in chunks(list(keys)):
            self.conn.execute(t.findings.delete().where(fd.type_id == type_id, fd.situation == situation,
                                                        fd.key.in_(part)))

    def findings(self, type_id: int, situation: str | None = None, limit: int | None = None) -> list[Finding]:
        fd = t.findings.c
        query = sa.select(fd.situation, fd.key, fd.detail).where(fd.type_id == type_id)
        if situation is not None:
            query = query.where(fd.situation == situation)
        query = query.order_by(fd.situation, fd.key)
        if limit is not None:
            query = query.limit(limit)
        return [Finding(s, k, json.loads(d)) for s, k, d in self.conn.execute(query)]

    def finding_counts(self, type_id: int) -> dict[str, int]:
        fd = t.findings.c
        return {s: n for s, n in self.conn.execute(sa.select(fd.situation, sa.func.count())
                                                   .where(fd.type_id == type_id).group_by(fd.situation))}

    # ---- which system a target is ----------------------------------------------------------------

    def binding(self, pipeline: str, connector: str) -> dict[str, Any] | None:
        b = t.bindings.c
        found = self.conn.execute(sa.select(b.identity).where(b.pipeline == pipeline, b.connector == connector)).scalar()
        return json.loads(found) if found is not None else None

    def bind(self, pipeline: str, connector: str, identity: Mapping[str, Any]) -> None:
        b = t.bindings.c
        self.conn.execute(t.bindings.delete().where(b.pipeline == pipeline, b.connector == connector))
        self.conn.execute(t.bindings.insert().values(pipeline=pipeline, connector=connector,
                                                     identity=dumps(dict(identity)), bound=now_iso()))

    def sample_linked(self, type_id: int, limit: int = 3) -> list[tuple[str, str | None, str | None]]:
        """A few linked target objects: (target anchor, name, partition), the first and last by anchor."""
        lk, to = t.links.c, t.target_objects.c
        query = (sa.select(to.target_anchor, to.name, to.partition).select_from(t.links.join(
            t.target_objects, sa.and_(to.type_id == lk.type_id, to.target_anchor == lk.target_anchor)))
            .where(lk.type_id == type_id, lk.live.is_(True)))
        first = self.conn.execute(query.order_by(to.target_anchor).limit(limit)).all()
        last = self.conn.execute(query.order_by(to.target_anchor.desc()).limit(limit)).all()
        return list(dict.fromkeys((a, n, p) for a, n, p in first + last))

    def forget_target(self, type_id: int) -> None:
        """Everything the state believes about this type's target objects (``run --rebind``): links,
        target objects, values, the match index, reservations, pending exports and
        the first-contact mark; exports in flight too (they were meant for the other system). Source objects stay, all dirty: the next reconciliation links
        what it finds by correlation and compute adds the rest."""
        pe, so, w = t.pending.c, t.source_objects.c, t.watermarks.c
        for table in (t.links, t.target_objects, t.target_values, t.target_index, t.reservations, t.refs,
                      t.findings):
            self.conn.execute(table.delete().where(table.c.type_id == type_id))
        self.conn.execute(t.pending.delete().where(pe.type_id == type_id))
        self.conn.execute(t.watermarks.delete().where(w.type_id == type_id, w.side == "target"))
        self.conn.execute(t.source_objects.update().where(so.type_id == type_id)
                          .values(dirty=True, exists_after=False))
