"""Reading rows as records: full reads in key order, watermark and change-table delta reads.

Every read pages with a keyset (``WHERE key > last ORDER BY key LIMIT n``), so memory stays one
page whatever the table holds, and reads a page's child-table values with one query per
multi-valued attribute. A full read may be cut into ranges of keys (``Span``) that separate
processes read at once. Delta reads follow ``delta.py``: start ``overlap`` behind the watermark,
skip what the watermark says was read, stop at the highest value present when the read began.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from runner.connectors.base import Page, Record
from runner.connectors.sql import delta
from runner.connectors.sql.bound import Bound
from runner.connectors.sql.keys import (
    NoSuchKey,
    after,
    among,
    anchor_text,
    at_least,
    below,
    key_values,
    plain,
)

_AS_IS = (str, int, float, bool, type(None))  # values plain() would return unchanged: the common case, fast
MAX_SKIPPED_IN_QUERY = 5000  # sequence numbers left out in the query itself (more: skipped as they come)


def records(conn: sa.Connection, bound: Bound, rows: list[dict[str, Any]]) -> list[Record]:
    """Records of rows (a soft-deleted row as a deletion), with their child-table values."""
    spec = bound.spec
    keys = [[r[k] for k in spec.key] for r in rows]
    children = {attr: _children(conn, bound, attr, keys) for attr in bound.children}
    out = []
    for row, key in zip(rows, keys, strict=True):
        anchor = anchor_text(key)
        attributes = {k: v if type(v) in _AS_IS else plain(v) for k, v in row.items()}
        if spec.composite:
            attributes[spec.key_attribute] = anchor
        if bound.deleted(row):
            out.append(Record(attributes, anchor=anchor, partition=bound.partition, deleted=True))
            continue
        for attr, values in children.items():
            attributes[attr] = sorted(values.get(tuple(key), []), key=str)
        out.append(Record(attributes, anchor=anchor, partition=bound.partition))
    return out


def gone(bound: Bound, anchor: str) -> Record:
    """A deletion: the row of a changed anchor is not there any more."""
    attribute = bound.spec.key_attribute if bound.spec.composite else bound.spec.key[0]
    return Record({attribute: anchor}, anchor=anchor, partition=bound.partition, deleted=True)


def _children(conn: sa.Connection, bound: Bound, attr: str, keys: list[list[Any]]) -> dict[tuple, list[Any]]:
    table, owner, value = bound.children[attr]
    found: dict[tuple, list[Any]] = {}
    if not keys:
        return found
    for row in conn.execute(sa.select(*owner, value).where(among(owner, keys))):
        found.setdefault(tuple(row[:-1]), []).append(plain(row[-1]))
    return found


def _fetch(conn: sa.Connection, query: sa.Select) -> list[dict[str, Any]]:
    result = conn.execute(query)
    names = list(map(str, result.keys()))  # plain str, not SQLAlchemy's quoted_name: records hold plain data
    return [dict(zip(names, row, strict=True)) for row in result]


@dataclass(frozen=True)
class Span:
    """A part of a full read in key order: the keys from ``low`` (included) up to ``high``
    (excluded), None for no bound. The part that starts at the beginning also holds the rows whose
    key has a NULL: each database sorts NULL elsewhere, and paging past a key never reaches them.

    Its token (``Connector.ranges``) is JSON, ``{"from": [...], "to": [...]}``, key values as the
    database returned them (integers or text), so the database compares them again in the read
    as it did in the cut, under the column's own collation."""

    low: list[Any] | None = None
    high: list[Any] | None = None

    @property
    def nulls(self) -> bool:
        return self.low is None

    def where(self, keys: list[sa.ColumnElement]) -> list[sa.ColumnElement[bool]]:
        return ([at_least(keys, self.low)] if self.low is not None else []) + \
               ([below(keys, self.high)] if self.high is not None else [])

    def token(self) -> str:
        return json.dumps({"from": self.low, "to": self.high}, separators=(",", ":"))

    @classmethod
    def parse(cls, token: str, width: int) -> Span:
        """The span of a token :meth:`token` wrote for a key of ``width`` columns (ValueError otherwise)."""
        doc = json.loads(token)
        if not isinstance(doc, dict) or set(doc) != {"from", "to"}:
            raise ValueError(token)
        for edge in doc.values():
            if edge is not None and (not isinstance(edge, list) or len(edge) != width
                                     or not all(cuttable(v) for v in edge)):
                raise ValueError(token)
        return cls(doc["from"], doc["to"])


WHOLE = Span()


def cuttable(value: Any) -> bool:
    """Key values a range's token carries as they are: integers and text (a date or a decimal
    would come back from JSON as something the database compares differently)."""
    return isinstance(value, int | str) and not isinstance(value, bool)


def range_starts(conn: sa.Connection, bound: Bound, count: int) -> list[list[Any]]:
    """Where each of ``count`` ranges of about equal size starts, the first range left out: the
    first key of each tile of one ordered query (NTILE) over the live rows with a whole key. Keys
    equal to a start all fall in the range it starts, so ties never straddle two ranges."""
    keys = bound.keys
    names = [f"k{i}" for i in range(len(keys))]
    tiles = (sa.select(*[k.label(n) for k, n in zip(keys, names, strict=True)],
                       sa.func.ntile(count).over(order_by=keys).label("tile"))
             .where(*bound.live(), *[k.is_not(None) for k in keys]).subquery("tiles"))
    in_tile = [tiles.c[n] for n in names]
    firsts = sa.select(*in_tile, tiles.c.tile,
                       sa.func.row_number().over(partition_by=tiles.c.tile, order_by=in_tile).label("n")
                       ).subquery("firsts")
    query = sa.select(*[firsts.c[n] for n in names]).where(firsts.c.n == 1, firsts.c.tile > 1).order_by(firsts.c.tile)
    starts: list[list[Any]] = []
    for row in conn.execute(query):
        if not starts or list(row) != starts[-1]:  # a tile of one repeated key: no empty range for it
            starts.append(list(row))
    return starts


def full(conn: sa.Connection, bound: Bound, size: int, mark: delta.Mark | None, span: Span = WHOLE) -> Iterator[Page]:
    """Every live row in key order (of ``span``, one range of a read cut in ranges); the last page
    carries ``mark`` (taken before the read began, so what changes while it runs is read again
    next time). Rows whose key has a NULL come first, read apart."""
    where = [*bound.live(), *span.where(bound.keys)]
    if bound.nullable_key:
        if span.nulls:
            nulls = _fetch(conn, sa.select(bound.rows).where(*bound.live(), sa.or_(*[k.is_(None) for k in bound.keys])))
            for start in range(0, len(nulls), size):
                yield Page(records(conn, bound, nulls[start:start + size]))
        where += [k.is_not(None) for k in bound.keys]
    last: list[Any] | None = None
    held: list[Record] | None = None
    while True:
        query = sa.select(bound.rows).where(*where).order_by(*bound.keys).limit(size)
        if last is not None:
            query = query.where(after(bound.keys, last))
        rows = _fetch(conn, query)
        if held is not None:
            if not rows:
                break
            yield Page(held)
        if not rows:
            held = []
            break
        held = records(conn, bound, rows)
        last = [rows[-1][k] for k in bound.spec.key]
        if len(rows) < size:
            break
    yield Page(held or [], watermark=mark.text() if mark is not None else None)


def start_mark(conn: sa.Connection, bound: Bound, overlap: float | None) -> delta.Mark:
    """The watermark a full read hands back: the highest value now, and what sits in its window."""
    if bound.changes is not None:
        seq, where = _changes_columns(bound)
        high = conn.execute(sa.select(sa.func.max(seq)).where(*where)).scalar()
        mark = delta.Mark("changes", "number", plain(high))
        if high is not None:
            mark.at = _anchor_at(conn, bound, high)
        window = delta.DEFAULT_SEQUENCE_OVERLAP if overlap is None else overlap
        if high is not None and window:
            floor = delta.lower_bound(mark, window)
            mark.seen = {str(s): plain(s) for s in conn.execute(
                sa.select(seq).where(*where, seq > floor, seq <= high)).scalars()}
        return mark
    column = bound.watermark
    assert column is not None
    high = conn.execute(sa.select(sa.func.max(column))).scalar()
    if high is None:
        return delta.Mark("watermark")
    mark = delta.Mark("watermark", delta.kind_of(high), high)
    window = _time_overlap(mark, overlap)
    floor = delta.lower_bound(mark, window)
    if window:
        query = sa.select(*bound.keys, column).where(column >= floor, column <= high)
        mark.seen = {anchor_text(r[:-1]): delta.plain_mark(r[-1]) for r in conn.execute(query)}
    else:
        mark.seen = {anchor_text(r[:-1]): delta.plain_mark(r[-1])
                     for r in conn.execute(sa.select(*bound.keys, column).where(column == high))}
    return mark


def _time_overlap(mark: delta.Mark, overlap: float | None) -> float:
    if overlap is not None:
        return overlap
    return 0 if mark.kind == "number" else delta.DEFAULT_TIME_OVERLAP


def since_watermark(conn: sa.Connection, bound: Bound, size: int, text: str, overlap: float | None) -> Iterator[Page]:
    """Rows whose watermark column reached the window's floor, in (watermark, key) order, minus
    those the watermark says were read already; soft-deleted ones as deletions."""
    mark = delta.parse(text, "watermark")
    column = bound.watermark
    assert column is not None
    high = conn.execute(sa.select(sa.func.max(column))).scalar()
    delta.check_watermark(_rows_name(bound), bound.spec.delta.watermark, mark, high)  # type: ignore[union-attr,arg-type]
    if high is None:
        yield Page([], watermark=mark.text())
        return
    if mark.kind is None:
        mark.kind = delta.kind_of(high)
    window = _time_overlap(mark, overlap)
    floor = delta.lower_bound(mark, window)
    order = [column, *bound.keys]
    base = sa.select(bound.rows).where(column <= high)
    if floor is not None:
        base = base.where(column >= floor)
    last: list[Any] | None = None
    while True:
        query = base.order_by(*order).limit(size)
        if last is not None:
            query = query.where(after(order, last))
        rows = _fetch(conn, query)
        fresh = []
        for row in rows:
            anchor = anchor_text([row[k] for k in bound.spec.key])
            value = delta.plain_mark(row[bound.spec.delta.watermark])  # type: ignore[union-attr]
            if mark.seen.get(anchor) != value:
                fresh.append(row)
                mark.seen[anchor] = value
        if rows:
            top = rows[-1][bound.spec.delta.watermark]  # type: ignore[union-attr]
            mark.value = top if mark.value is None or top > mark.value else mark.value
            mark.seen = delta.trim(mark.seen, delta.lower_bound(mark, window), mark.kind)
            last = [rows[-1][c.name] for c in order]
        done = len(rows) < size
        yield Page(records(conn, bound, fresh), watermark=mark.text())
        if done:
            return


def _rows_name(bound: Bound) -> str:
    """How messages name what an object is read from: its table, or its custom query."""
    if bound.spec.query or bound.table is None:
        return f"the query of object {bound.spec.name!r}"
    return f"the table {bound.table.fullname}"


def _anchor_at(conn: sa.Connection, bound: Bound, number: Any) -> str | None:
    """The anchor the change-table entry at sequence ``number`` names (the watermark's fingerprint)."""
    table, changes = bound.changes, bound.spec.delta.changes  # type: ignore[union-attr]
    assert table is not None and changes is not None
    found = conn.execute(sa.select(sa.func.max(table.c[changes.anchor])).where(table.c[changes.sequence] == number))
    value = found.scalar()
    return None if value is None else str(value)


def _change_table_now(conn: sa.Connection, bound: Bound, number: Any) -> delta.ChangeTableNow:
    """The change table's lowest and highest sequence and the anchor at ``number``, in one
    statement of three index lookups (each a scalar subquery, so every database answers MIN and
    MAX from the index's ends instead of scanning)."""
    table, changes = bound.changes, bound.spec.delta.changes  # type: ignore[union-attr]
    assert table is not None and changes is not None
    seq, anchor = table.c[changes.sequence], table.c[changes.anchor]
    oldest, newest, at = conn.execute(sa.select(
        sa.select(sa.func.min(seq)).scalar_subquery(),
        sa.select(sa.func.max(seq)).scalar_subquery(),
        sa.select(sa.func.max(anchor)).where(seq == number).scalar_subquery())).one()
    return delta.ChangeTableNow(plain(oldest), plain(newest), None if at is None else str(at))


def _changes_columns(bound: Bound) -> tuple[sa.Column, list[sa.ColumnElement[bool]]]:
    changes = bound.spec.delta.changes  # type: ignore[union-attr]
    table = bound.changes
    assert changes is not None and table is not None
    where = [table.c[changes.object_column] == changes.object_value] if changes.object_column else []
    return table.c[changes.sequence], where


def since_changes(conn: sa.Connection, bound: Bound, size: int, text: str, overlap: float | None) -> Iterator[Page]:
    """The rows the change table names after the watermark's sequence, read as they are now: a
    row that is gone is a deletion, whatever the change type says."""
    mark = delta.parse(text, "changes")
    window = delta.DEFAULT_SEQUENCE_OVERLAP if overlap is None else overlap
    seq, where = _changes_columns(bound)
    table = bound.changes
    assert table is not None
    changes = bound.spec.delta.changes  # type: ignore[union-attr]
    if mark.value is not None:
        delta.check_changes(table.fullname, changes.sequence, mark, _change_table_now(conn, bound, mark.value))  # type: ignore[union-attr]
    high = conn.execute(sa.select(sa.func.max(seq)).where(*where)).scalar()
    if high is None:
        yield Page([], watermark=mark.text())
        return
    floor = delta.lower_bound(mark, window)
    anchor_column = table.c[changes.anchor]  # type: ignore[union-attr]
    emitted: set[str] = set()
    last = floor
    while True:
        query = sa.select(seq, anchor_column).where(*where, seq <= high).order_by(seq).limit(size)
        if last is not None:
            query = query.where(seq > last)
        if mark.seen and len(mark.seen) <= MAX_SKIPPED_IN_QUERY:  # the overlap's entries read before: not again
            query = query.where(seq.not_in([int(s) for s in mark.seen]))
        entries = list(conn.execute(query))
        anchors: list[str] = []
        for number, anchor in entries:
            if str(number) in mark.seen:
                continue
            mark.seen[str(number)] = plain(number)
            anchor = str(anchor)
            if anchor not in emitted:
                emitted.add(anchor)
                anchors.append(anchor)
        found = _rows_of(conn, bound, anchors)
        page = records(conn, bound, [found[a] for a in anchors if a in found])
        page += [gone(bound, a) for a in anchors if a not in found]
        if entries:
            last = entries[-1][0]
            if mark.value is None or last > mark.value:
                mark.value, mark.at = plain(last), str(entries[-1][1])
            mark.seen = delta.trim(mark.seen, delta.lower_bound(mark, window), "number")
        done = len(entries) < size
        yield Page(page, watermark=mark.text())
        if done:
            return


def _rows_of(conn: sa.Connection, bound: Bound, anchors: list[str]) -> dict[str, dict[str, Any]]:
    """The current rows of these anchors (soft-deleted ones included: they read as deletions)."""
    keys = []
    for anchor in anchors:
        try:
            keys.append(key_values(bound.keys, anchor))
        except NoSuchKey:
            continue  # cannot be a key of this table: reported as gone
    if not keys:
        return {}
    rows = _fetch(conn, sa.select(bound.rows).where(among(bound.keys, keys)))
    return {anchor_text([r[k] for k in bound.spec.key]): r for r in rows}
