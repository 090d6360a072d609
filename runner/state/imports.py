"""Import: source objects page by page, watermarks, and target objects as the target reports them.

Target objects are kept in *mapped form*: attribute names of the mapping, references as source
anchors of the objects they point at. That is what compute diffs against, whether the values
came from our own confirmed exports or from reading the target (first contact, ``--full``,
crash recovery).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy import exc

from runner.mapping.names import normalize_dn
from runner.state import tables as t
from runner.state.base import DuplicateAnchor, chunks, dumps, record_hash
from runner.state.values import ValuesMixin, split


class TargetObject(NamedTuple):
    """A target object as read, in mapped form, for :meth:`ImportMixin.store_targets`."""

    target_anchor: str
    data: dict[str, Any]
    name: str | None = None
    partition: str | None = None
    disabled: bool = False
    version: str | None = None


class ImportMixin(ValuesMixin):
    def begin_full_import(self, type_id: int) -> None:
        self.conn.execute(t.import_seen.delete().where(t.import_seen.c.type_id == type_id))

    def import_page(self, type_id: int, records: Sequence[tuple[str, dict[str, Any]]], full: bool,
                    partition: str | None = None, natives: dict[str, str] | None = None) -> int:
        """Store a page of (anchor, data) read from ``partition``; returns how many were new or
        changed (marked dirty). An object seen in another partition than before has moved: its
        partition follows, so the full import of its old partition does not take it for deleted."""
        so = t.source_objects.c
        hashed = {anchor: (data, record_hash(data)) for anchor, data in records}
        if len(hashed) != len(records):
            seen: set[str] = set()
            raise DuplicateAnchor(next(a for a, _ in records if a in seen or seen.add(a)))
        known: dict[str, tuple[str, bool, str | None]] = {}
        for anchor, digest, is_deleted, was_in in self.conn.execute(
                sa.select(so.anchor, so.hash, so.deleted, so.partition)
                .where(so.type_id == type_id, so.anchor.in_(list(hashed)))):
            known[anchor] = (digest, bool(is_deleted), was_in)
        natives = natives or {}
        new = [(type_id, a, natives.get(a), partition, dumps(d), h, False, True, False)
               for a, (d, h) in hashed.items() if a not in known]
        changed = [dict(k_anchor=a, data=dumps(d), hash=h, k_partition=partition, k_native=natives.get(a))
                   for a, (d, h) in hashed.items()
                   if a in known and (known[a][0] != h or known[a][1] or known[a][2] != partition)]
        self.bulk_insert(t.source_objects, ("type_id", "anchor", "native_anchor", "partition", "data", "hash", "deleted",
                                            "dirty", "exists_after"), new)
        if changed:
            self.conn.execute(
                t.source_objects.update()
                .where(so.type_id == type_id, so.anchor == sa.bindparam("k_anchor"))
                .values(data=sa.bindparam("data"), hash=sa.bindparam("hash"), deleted=False, dirty=True,
                        partition=sa.bindparam("k_partition"),
                        native_anchor=sa.func.coalesce(sa.bindparam("k_native"), so.native_anchor)),
                changed)
        if full and hashed:
            try:
                with self.conn.begin_nested():
                    self.conn.execute(t.import_seen.insert(), [dict(type_id=type_id, anchor=a) for a in hashed])
            except exc.IntegrityError:
                raise DuplicateAnchor(self._first_seen(type_id, list(hashed))) from None
        return len(new) + len(changed)

    def keep_unreadable(self, type_id: int, anchors: Sequence[str], full: bool) -> None:
        """Objects whose record could not be read this time: a full import counts them as seen,
        so they are not taken for deleted; their last good data stays."""
        if full and anchors:
            seen = t.import_seen.c
            known = set(self.conn.execute(sa.select(seen.anchor).where(
                seen.type_id == type_id, seen.anchor.in_(list(anchors)))).scalars())
            fresh = [a for a in dict.fromkeys(anchors) if a not in known]
            if fresh:
                self.conn.execute(t.import_seen.insert(), [dict(type_id=type_id, anchor=a) for a in fresh])

    def mark_deleted(self, type_id: int, anchors: Sequence[str], natives: Sequence[str] = ()) -> None:
        """A delta read reported these objects deleted, by our anchor or by the connector's own."""
        so = t.source_objects.c
        for column, values in ((so.anchor, list(anchors)), (so.native_anchor, list(natives))):
            for part in chunks(values):
                self.conn.execute(t.source_objects.update().where(so.type_id == type_id, column.in_(part),
                                                                  so.deleted.is_(False)).values(deleted=True, dirty=True))

    def watermark(self, type_id: int, side: str, partition: str | None) -> str | None:
        w = t.watermarks.c
        return self.conn.execute(sa.select(w.value).where(w.type_id == type_id, w.side == side,
                                                          w.partition == (partition or ""))).scalar()

    def set_watermark(self, type_id: int, side: str, partition: str | None, value: str) -> None:
        w = t.watermarks.c
        self.conn.execute(t.watermarks.delete().where(w.type_id == type_id, w.side == side,
                                                      w.partition == (partition or "")))
        self.conn.execute(t.watermarks.insert().values(type_id=type_id, side=side, partition=partition or "",
                                                       value=value))

    def clear_watermark(self, type_id: int, side: str, partition: str | None) -> None:
        w = t.watermarks.c
        self.conn.execute(t.watermarks.delete().where(w.type_id == type_id, w.side == side,
                                                      w.partition == (partition or "")))

    def _first_seen(self, type_id: int, anchors: list[str]) -> str:
        seen = t.import_seen.c
        return self.conn.execute(sa.select(seen.anchor).where(seen.type_id == type_id, seen.anchor.in_(anchors))
                                 .limit(1)).scalar() or anchors[0]

    def finish_full_import(self, type_id: int, partition: str | None = None) -> int:
        """Mark every object of ``partition`` the full import did not see as deleted; returns how many."""
        so, seen = t.source_objects.c, t.import_seen.c
        was_seen = sa.select(seen.anchor).where(seen.type_id == type_id, seen.anchor == so.anchor)
        in_partition = so.partition.is_(None) if partition is None else so.partition == partition
        result = self.conn.execute(
            t.source_objects.update()
            .where(so.type_id == type_id, so.deleted.is_(False), in_partition, ~sa.exists(was_seen))
            .values(deleted=True, dirty=True))
        self.conn.execute(t.import_seen.delete().where(seen.type_id == type_id))
        return result.rowcount

    # ---- the target, as read ------------------------------------------------------------------

    def begin_target_import(self, type_id: int) -> None:
        """Forget indexed target values (not reservations): the import that follows re-reads them all."""
        ix = t.target_index.c
        self.conn.execute(t.target_index.delete().where(ix.type_id == type_id, sa.not_(ix.target_anchor.startswith("~"))))

    def store_targets(self, type_id: int, objects: Sequence[TargetObject], overwrite: bool = True) -> None:
        """Remember what the target holds for these objects (``overwrite=False``: only for objects
        not known yet)."""
        to = t.target_objects.c
        anchors = [o.target_anchor for o in objects]
        if not anchors:
            return
        if overwrite:
            self.conn.execute(t.target_objects.delete().where(to.type_id == type_id, to.target_anchor.in_(anchors)))
            self.drop_values(type_id, anchors)
            fresh = list(objects)
        else:
            known = set(self.conn.execute(sa.select(to.target_anchor).where(
                to.type_id == type_id, to.target_anchor.in_(anchors))).scalars())
            fresh = [o for o in objects if o.target_anchor not in known]
        if fresh:
            parts = {o.target_anchor: split(o.data) for o in fresh}
            self.conn.execute(t.target_objects.insert(), [
                dict(type_id=type_id, target_anchor=o.target_anchor, name=o.name, data=dumps(parts[o.target_anchor][0]),
                     disabled=o.disabled, partition=o.partition, version=o.version) for o in fresh])
            self.replace_values(type_id, {a: lists for a, (_, lists) in parts.items()})

    def index_targets(self, type_id: int, anchors: Sequence[str], index: Sequence[tuple[str, str, str]]) -> None:
        """The (attribute, normalized value, target anchor) rows the match rules look up."""
        ix = t.target_index.c
        self.conn.execute(t.target_index.delete().where(ix.type_id == type_id, ix.target_anchor.in_(list(anchors))))
        rows = {(attr, value[:255], anchor) for attr, value, anchor in index}
        if rows:
            self.conn.execute(t.target_index.insert(), [dict(type_id=type_id, attribute=a, value=v, target_anchor=ta)
                                                        for a, v, ta in rows])

    def match_candidates(self, type_id: int, attribute: str, value: str) -> list[str]:
        """Target anchors holding ``value`` in ``attribute`` that no source object is linked to yet."""
        ix, lk = t.target_index.c, t.links.c
        linked = sa.select(lk.target_anchor).where(lk.type_id == type_id, lk.live.is_(True),
                                                   lk.target_anchor == ix.target_anchor)
        return list(self.conn.execute(sa.select(ix.target_anchor).where(
            ix.type_id == type_id, ix.attribute == attribute, ix.value == value[:255],
            ~sa.exists(linked)).order_by(ix.target_anchor).limit(5)).scalars())

    def linked_anchors(self, type_id: int, target_anchors: Sequence[str]) -> dict[str, str]:
        """target anchor -> source anchor, for the live links among ``target_anchors``."""
        lk = t.links.c
        found: dict[str, str] = {}
        for part in chunks(sorted(set(target_anchors))):
            for source_anchor, target_anchor in self.conn.execute(sa.select(lk.source_anchor, lk.target_anchor).where(
                    lk.type_id == type_id, lk.target_anchor.in_(part), lk.live.is_(True))):
                found[target_anchor] = source_anchor
        return found

    def anchors_by_name(self, type_id: int, names: Sequence[str]) -> dict[str, str]:
        """target name (as given) -> source anchor, for live links whose name compares equal."""
        lk = t.links.c
        keys = {normalize_dn(n)[:255]: n for n in names}
        found: dict[str, str] = {}
        for part in chunks(sorted(keys)):
            for key, source_anchor in self.conn.execute(sa.select(lk.name_key, lk.source_anchor).where(
                    lk.type_id == type_id, lk.name_key.in_(part), lk.live.is_(True))):
                found[keys[key]] = source_anchor
        return found

    def reserved(self, type_id: int, attribute: str, anchor: str) -> str | None:
        """The value select_unique_value reserved for ``anchor`` earlier, if any."""
        ix = t.target_index.c
        return self.conn.execute(sa.select(ix.value).where(ix.type_id == type_id, ix.attribute == attribute,
                                                           ix.target_anchor == "~" + anchor)).scalar()

    def reserve_if_free(self, type_id: int, attribute: str, value: str, anchor: str) -> bool:
        """Reserve ``value`` of ``attribute`` for ``anchor`` unless a target object or another
        reservation holds it (values as folded by the caller)."""
        ix = t.target_index.c
        taken = self.conn.execute(sa.select(ix.target_anchor).where(
            ix.type_id == type_id, ix.attribute == attribute, ix.value == value[:255]).limit(1)).first()
        if taken is not None:
            return False
        self.conn.execute(t.target_index.insert().values(type_id=type_id, attribute=attribute, value=value[:255],
                                                         target_anchor="~" + anchor))
        return True

    def target_name(self, type_id: int, target_anchor: str) -> str | None:
        to = t.target_objects.c
        return self.conn.execute(sa.select(to.name).where(to.type_id == type_id,
                                                          to.target_anchor == target_anchor)).scalar()

    def link(self, type_id: int, anchor: str, target_anchor: str, name: str | None = None) -> None:
        lk = t.links.c
        self.conn.execute(t.links.delete().where(lk.type_id == type_id, lk.source_anchor == anchor))
        self.conn.execute(t.links.insert().values(type_id=type_id, source_anchor=anchor, target_anchor=target_anchor,
                                                  live=True, target_name=name,
                                                  name_key=normalize_dn(name)[:255] if name else None))
