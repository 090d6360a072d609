"""Import: source objects page by page, watermarks, and target objects as the target reports them.

Target objects are kept in *mapped form*: attribute names of the mapping, references as source
anchors of the objects they point at. That is what compute diffs against, whether the values
came from our own confirmed exports or from reading the target (first contact, ``--full``,
crash recovery).
"""

from __future__ import annotations

import secrets as pysecrets
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import sqlalchemy as sa

from runner.jsontext import loads
from runner.names import normalize_dn
from runner.state import tables as t
from runner.state.base import DuplicateAnchor, Part, chunks, dumps, now_iso, text_hash
from runner.state.values import split

if TYPE_CHECKING:
    from runner.state.store import StateStore


def new_read() -> str:
    """The common part of the marks of one full read cut in ranges."""
    return pysecrets.token_hex(6)


def range_mark(read: str, index: int) -> str:
    """The mark of range ``index`` (0 to 999) of the full read ``read`` (:func:`new_read`): the
    read's 12 hex digits, ``r``, the range's number. It fits ``seen`` (16 characters), and tells
    a mark of another range of the same read from any other mark (those are hex digits only)."""
    if not 0 <= index <= 999:
        raise ValueError(f"a read is cut in at most 1000 ranges, not {index + 1}")
    return f"{read}r{index:03d}"


def _read_already(stamp: str | None, mark: str) -> bool:
    """Whether an object stamped ``stamp`` was read already by the full import that stamps
    ``mark``: by this very read, or by another range of the same read cut in ranges."""
    if stamp is None:
        return False
    return stamp == mark or (len(mark) == 16 and mark[12] == "r" and stamp[:13] == mark[:13])


class TargetObject(NamedTuple):
    """A target object as read, in mapped form, for :meth:`Imports.store_targets`."""

    target_anchor: str
    data: dict[str, Any]
    name: str | None = None
    partition: str | None = None
    disabled: bool = False
    version: str | None = None


class Imports(Part):
    """``store.imports``: source objects as read, watermarks, and target objects as the target
    reports them (with the match index, the reservations and the links they are looked up by)."""

    def __init__(self, store: StateStore):
        super().__init__(store)
        self._import_marks: dict[int, str] = {}  # type_id -> the mark of the full import under way

    def begin_full_import(self, type_id: int, mark: str | None = None) -> None:
        """A new mark for the full import that starts: every object it reads is stamped with it
        (``seen``), so the objects it did not read are those without it. Calling it again
        forgets what was seen so far (nothing is written). ``mark``: one range's of a read cut
        in ranges (:func:`range_mark`), read by this process while others read the rest."""
        self._import_marks[type_id] = mark or pysecrets.token_hex(8)

    def forget_stamps(self, type_id: int, mark: str) -> None:
        """Unstamp what was stamped with ``mark``: a range read again after its reader died
        starts afresh, so an object its first reader stamped is not taken for read twice."""
        so = t.source_objects.c
        self.conn.execute(t.source_objects.update().where(so.type_id == type_id, so.seen == mark).values(seen=None))

    def _import_mark(self, type_id: int) -> str:
        if type_id not in self._import_marks:
            self.begin_full_import(type_id)
        return self._import_marks[type_id]

    def import_page(self, type_id: int, records: Sequence[tuple[str, dict[str, Any]]], full: bool,
                    partition: str | None = None, natives: dict[str, str] | None = None,
                    scope: Callable[[dict[str, Any]], bool] | None = None) -> int:
        """Store a page of (anchor, data) read from ``partition``; returns how many were new or
        changed (marked dirty). An object seen in another partition than before has moved: its
        partition follows, so the full import of its old partition does not take it for deleted.
        A full import stamps every object of the page with its mark, in the same statements that
        write the changed ones; an anchor already stamped was read twice (DuplicateAnchor).

        ``scope``: the type's scoping filter, when the state's rules are the ones compute will
        use. A new object it keeps is stored in scope and existing-after-the-run at once, and
        what references it is marked dirty, as compute's scope sweep would do; the sweep then
        passes it by (:meth:`Compute.dirty_rows` ``unscoped``), so an initial cycle reads and
        writes every object once less. A changed object is scoped by the sweep (its ``in_scope``
        is cleared): whether it still exists after the run depends on its link too."""
        so = t.source_objects.c
        # anchor -> (the record's text, its hash): serialised once, for the hash and to be stored
        hashed = {anchor: (text, text_hash(text)) for anchor, text in ((a, dumps(d)) for a, d in records)}
        if len(hashed) != len(records):
            seen: set[str] = set()
            raise DuplicateAnchor(next(a for a, _ in records if a in seen or seen.add(a)))
        mark = self._import_mark(type_id) if full else None
        known: dict[str, tuple[str, bool, str | None]] = {}
        for anchor, digest, is_deleted, was_in, stamp in self.store.rows_in(
                t.source_objects, ("anchor", "hash", "deleted", "partition", "seen"), "anchor", list(hashed),
                type_id=type_id):
            if full and _read_already(stamp, mark or ""):
                raise DuplicateAnchor(anchor)
            known[anchor] = (digest, bool(is_deleted), was_in)
        natives = natives or {}
        scoped: list[str] = []  # new objects in scope: they will exist after the run (no link can say otherwise)
        if scope is not None:  # on the stored text read back, as the sweep would see it (a date stored as text)
            scoped = [a for a, (d, _) in hashed.items() if a not in known and scope(loads(d))]
        kept = set(scoped)
        new = [(type_id, a, natives.get(a), partition, d, h, False, True, True if a in kept else None, a in kept, mark)
               for a, (d, h) in hashed.items() if a not in known]
        changed = [dict(k_anchor=a, data=d, hash=h, k_partition=partition, k_native=natives.get(a))
                   for a, (d, h) in hashed.items()
                   if a in known and (known[a][0] != h or known[a][1] or known[a][2] != partition)]
        self.store.bulk_insert(t.source_objects, ("type_id", "anchor", "native_anchor", "partition", "data", "hash", "deleted",
                                                  "dirty", "in_scope", "exists_after", "seen"), new)
        if scoped:  # they exist from now on: whatever references them is computed again (the sweep's flip)
            self.store.compute.mark_referrers_dirty(type_id, scoped)
        if changed:
            values: dict[str, Any] = dict(data=sa.bindparam("data"), hash=sa.bindparam("hash"), deleted=False,
                                          gone_at=None, dirty=True, in_scope=None, partition=sa.bindparam("k_partition"),
                                          native_anchor=sa.func.coalesce(sa.bindparam("k_native"), so.native_anchor))
            if full:
                values["seen"] = mark
            self.conn.execute(t.source_objects.update()
                              .where(so.type_id == type_id, so.anchor == sa.bindparam("k_anchor")).values(**values),
                              changed)
        if full:
            rewritten = {c["k_anchor"] for c in changed}
            self._stamp(type_id, [a for a in known if a not in rewritten], mark or "")
        return len(new) + len(changed)

    def _stamp(self, type_id: int, anchors: Sequence[str], mark: str) -> None:
        """Stamp objects the full import read unchanged: one update by primary key per chunk."""
        self.store.update_in(t.source_objects, {"seen": mark}, "anchor", anchors, type_id=type_id)

    def keep_unreadable(self, type_id: int, anchors: Sequence[str], full: bool) -> None:
        """Objects whose record could not be read this time: a full import counts them as seen,
        so they are not taken for deleted; their last good data stays."""
        if full and anchors:
            self._stamp(type_id, list(dict.fromkeys(anchors)), self._import_mark(type_id))

    def forget_values(self, type_id: int, anchor: str, fields: Sequence[str]) -> None:
        """Take ``fields`` out of a stored source record, leaving its hash and dirty mark as they
        are: a write-only value (a password a SCIM client sent) is needed until its export went
        out, and never at rest after that."""
        so = t.source_objects.c
        text = self.conn.execute(sa.select(so.data).where(so.type_id == type_id, so.anchor == anchor)).scalar()
        if text is None:
            return
        data = loads(text)
        if any(f in data for f in fields):
            kept = {k: v for k, v in data.items() if k not in fields}
            self.conn.execute(t.source_objects.update().where(so.type_id == type_id, so.anchor == anchor)
                              .values(data=dumps(kept)))

    def mark_deleted(self, type_id: int, anchors: Sequence[str], natives: Sequence[str] = ()) -> None:
        """A delta read reported these objects deleted, by our anchor or by the connector's own."""
        so = t.source_objects.c
        for column, values in ((so.anchor, list(anchors)), (so.native_anchor, list(natives))):
            for part in chunks(values):
                self.conn.execute(t.source_objects.update().where(so.type_id == type_id, column.in_(part),
                                                                  so.deleted.is_(False))
                                  .values(deleted=True, dirty=True, gone_at=now_iso()))

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

    def finish_full_import(self, type_id: int, partition: str | None = None, marks: Sequence[str] = ()) -> int:
        """Mark every object of ``partition`` the full import did not see as deleted; returns how
        many. One pass over the type's rows comparing a column: no anti-join, no seen table.
        ``marks``: those of every range of a read cut in ranges (else this process's own)."""
        so = t.source_objects.c
        marks = list(marks) or [self._import_mark(type_id)]
        unseen = so.seen != marks[0] if len(marks) == 1 else so.seen.not_in(marks)
        in_partition = so.partition.is_(None) if partition is None else so.partition == partition
        result = self.conn.execute(
            t.source_objects.update()
            .where(so.type_id == type_id, so.deleted == sa.false(), in_partition, sa.or_(so.seen.is_(None), unseen))
            .values(deleted=True, dirty=True, gone_at=now_iso()))
        return result.rowcount

    # ---- the target, as read ------------------------------------------------------------------

    def begin_target_import(self, type_id: int) -> None:
        """Forget indexed target values (reservations stay): the import that follows re-reads them all."""
        ix = t.target_index.c
        self.conn.execute(t.target_index.delete().where(ix.type_id == type_id))

    def store_targets(self, type_id: int, objects: Sequence[TargetObject], overwrite: bool = True) -> None:
        """Remember what the target holds for these objects (``overwrite=False``: only for objects
        not known yet)."""
        to = t.target_objects.c
        anchors = [o.target_anchor for o in objects]
        if not anchors:
            return
        if overwrite:
            self.conn.execute(t.target_objects.delete().where(to.type_id == type_id, to.target_anchor.in_(anchors)))
            self.store.values.drop_values(type_id, anchors)
            fresh = list(objects)
        else:
            known = set(self.conn.execute(sa.select(to.target_anchor).where(
                to.type_id == type_id, to.target_anchor.in_(anchors))).scalars())
            fresh = [o for o in objects if o.target_anchor not in known]
        if fresh:
            parts = {o.target_anchor: split(o.data) for o in fresh}
            self.store.bulk_insert(t.target_objects, ("type_id", "target_anchor", "name", "data", "disabled", "partition",
                                                      "version"),
                                   [(type_id, o.target_anchor, o.name, dumps(parts[o.target_anchor][0]), bool(o.disabled),
                                     o.partition, o.version) for o in fresh])
            self.store.values.replace_values(type_id, {a: lists for a, (_, lists) in parts.items()})

    def index_targets(self, type_id: int, anchors: Sequence[str], index: Sequence[tuple[str, str, str]],
                      fresh: bool = False) -> None:
        """The (attribute, normalized value, target anchor) rows the match rules look up
        (``fresh``: the type's index was just emptied, nothing to replace)."""
        ix = t.target_index.c
        if not fresh:
            self.conn.execute(t.target_index.delete().where(ix.type_id == type_id,
                                                            ix.target_anchor.in_(list(anchors))))
        rows = {(attr, value[:255], anchor) for attr, value, anchor in index}
        self.store.bulk_insert(t.target_index, ("type_id", "attribute", "value", "target_anchor"),
                               [(type_id, a, v, ta) for a, v, ta in rows])

    def match_candidates(self, type_id: int, attribute: str, value: str, claimed: bool = False) -> list[str]:
        """Target anchors holding ``value`` in ``attribute`` that no source object is linked to
        yet (``claimed``: those a source object is linked to, for telling a collision)."""
        ix, lk = t.target_index.c, t.links.c
        linked = sa.exists(sa.select(lk.target_anchor).where(lk.type_id == type_id, lk.live.is_(True),
                                                             lk.target_anchor == ix.target_anchor))
        return list(self.conn.execute(sa.select(ix.target_anchor).where(
            ix.type_id == type_id, ix.attribute == attribute, ix.value == value[:255],
            linked if claimed else ~linked).order_by(ix.target_anchor).limit(5)).scalars())

    def has_target_index(self, type_id: int) -> bool:
        ix = t.target_index.c
        return self.conn.execute(sa.select(ix.target_anchor).where(ix.type_id == type_id).limit(1)).first() is not None

    def linked_anchors(self, type_id: int, target_anchors: Sequence[str]) -> dict[str, str]:
        """target anchor -> source anchor, for the live links among ``target_anchors``."""
        return {target_anchor: source_anchor for source_anchor, target_anchor, live in self.store.rows_in(
            t.links, ("source_anchor", "target_anchor", "live"), "target_anchor", sorted(set(target_anchors)),
            type_id=type_id) if live}

    def anchors_by_name(self, type_id: int, names: Sequence[str]) -> dict[str, str]:
        """target name (as given) -> source anchor, for live links whose name compares equal."""
        lk = t.links.c
        keys: dict[str, list[str]] = {}
        for name in names:  # one DN may come in several spellings (case, spaces): each is answered
            keys.setdefault(normalize_dn(name)[:255], []).append(name)
        found: dict[str, str] = {}
        for part in chunks(sorted(keys)):
            for key, source_anchor in self.conn.execute(sa.select(lk.name_key, lk.source_anchor).where(
                    lk.type_id == type_id, lk.name_key.in_(part), lk.live.is_(True))):
                found.update((name, source_anchor) for name in keys[key])
        return found

    def reserved(self, type_id: int, attribute: str, anchor: str) -> str | None:
        """The value select_unique_value reserved for ``anchor`` earlier, if any."""
        rv = t.reservations.c
        return self.conn.execute(sa.select(rv.value).where(rv.type_id == type_id, rv.attribute == attribute,
                                                           rv.anchor == anchor).limit(1)).scalar()

    def reserve_if_free(self, type_id: int, attribute: str, value: str, anchor: str) -> bool:
        """Reserve ``value`` of ``attribute`` for ``anchor`` unless a target object or another
        reservation holds it (values as folded by the caller). The reservation is one insert on
        the value's key: of two workers reserving the same value, exactly one gets it."""
        ix, rv = t.target_index.c, t.reservations.c
        value = value[:255]
        taken = self.conn.execute(sa.select(ix.target_anchor).where(
            ix.type_id == type_id, ix.attribute == attribute, ix.value == value).limit(1)).first()
        if taken is not None:
            return False
        if self.store.insert_new(t.reservations, dict(type_id=type_id, attribute=attribute, value=value, anchor=anchor)):
            return True
        holder = self.conn.execute(sa.select(rv.anchor).where(rv.type_id == type_id, rv.attribute == attribute,
                                                              rv.value == value).with_for_update(read=True)).scalar()
        return holder == anchor

    def source_hashes(self, type_id: int, anchors: Sequence[str]) -> dict[str, str]:
        """The hash of each source object as last imported (a saved plan's fingerprint of its input)."""
        return dict(self.store.rows_in(t.source_objects, ("anchor", "hash"), "anchor", sorted(set(anchors)),
                                       type_id=type_id))

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
