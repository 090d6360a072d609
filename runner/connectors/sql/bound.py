"""One configured object bound to the database: its rows (a table or a custom SELECT) in one
partition, its key columns, child tables, change table and compiled statements.

Built once per object and partition when the connector opens (reflection asks the catalogue),
so reads and writes never look anything up by name again; every configured column is checked
here, and a missing table or column is one message naming the object.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc

from runner.connectors.base import ConnectionFailed
from runner.connectors.sql.config import ObjectSpec
from runner.sqlutil import driver_reason


@dataclass
class Bound:
    spec: ObjectSpec
    partition: str | None
    rows: sa.FromClause  # what reads select from: the table, or the custom SELECT as a subquery
    table: sa.Table | None  # what table writes change (None: query mode, statements only)
    keys: list[sa.ColumnElement]  # the key columns of ``rows``
    children: dict[str, tuple[sa.Table, list[sa.Column], sa.Column]] = field(default_factory=dict)
    changes: sa.Table | None = None
    statements: dict[str, sa.TextClause] = field(default_factory=dict)
    #: the table declares its key columns unique (a primary key, a unique constraint or index), so a
    #: batch's total rowcount tells whether every operation found its row (write.py)
    unique_key: bool = False
    #: a key column may hold NULL (a nullable column of a table or view, any column of a custom
    #: SELECT): full reads then read those rows apart, since paging in key order cannot reach them
    nullable_key: bool = True

    @property
    def table_keys(self) -> list[sa.Column]:
        assert self.table is not None
        return [self.table.c[k] for k in self.spec.key]

    @property
    def watermark(self) -> sa.ColumnElement | None:
        delta = self.spec.delta
        return self.rows.c[delta.watermark] if delta is not None and delta.watermark else None

    def live(self, rows: sa.FromClause | None = None) -> list[sa.ColumnElement[bool]]:
        """The condition that keeps soft-deleted rows out of a read (none without soft_delete)."""
        soft = self.spec.soft_delete
        if soft is None:
            return []
        return [(rows if rows is not None else self.rows).c[soft.column].is_distinct_from(soft.value)]

    def deleted(self, row: dict[str, Any]) -> bool:
        soft = self.spec.soft_delete
        return soft is not None and _same(row.get(soft.column), soft.value)

    @property
    def where(self) -> str:
        return f"object {self.spec.name!r}" + (f" in partition {self.partition!r}" if self.partition else "")


def _same(stored: Any, configured: Any) -> bool:
    if isinstance(configured, bool) or isinstance(stored, bool):
        return stored is not None and bool(stored) == bool(configured)
    return stored == configured or str(stored) == str(configured)


def bind(engine: sa.Engine, metadata: sa.MetaData, spec: ObjectSpec, partition: str | None) -> Bound:
    """Reflect and check everything ``spec`` names, in ``partition`` (a schema) or its own schema."""
    schema = partition or spec.schema
    where = f"object {spec.name!r}" + (f" in partition {partition!r}" if partition else "")
    table = _table(engine, metadata, spec.table, schema, where) if spec.table else None
    if spec.query:
        rows = _query(engine, spec, partition, where)
    else:
        assert table is not None
        rows = table
    need = list(spec.key)
    if spec.delta is not None and spec.delta.watermark:
        need.append(spec.delta.watermark)
    if spec.soft_delete is not None:
        need.append(spec.soft_delete.column)
    _columns(rows, need, where, spec.table or "the query")
    nullable_key = True
    if table is not None:
        _columns(table, [*spec.key, *([spec.password] if spec.password else []),
                         *([spec.soft_delete.column] if spec.soft_delete else [])], where, spec.table or "")
        reflected = table.info.setdefault("nullable", {c.name: c.nullable for c in table.c})
        nullable_key = spec.query is not None or any(reflected[k] for k in spec.key)
        for k in spec.key:  # a key is never null; saying so lets SQLAlchemy return generated keys in row order
            table.c[k].nullable = False
    bound = Bound(spec, partition, rows, table, [rows.c[k] for k in spec.key],
                  unique_key=table is not None and _unique(table, spec.key), nullable_key=nullable_key)
    for attr, child in spec.children.items():
        ctable = _table(engine, metadata, child.table, schema, f"{where}, attribute {attr!r}")
        _columns(ctable, [*child.key, child.value], f"{where}, attribute {attr!r}", child.table)
        if len(child.key) != len(spec.key):
            raise ConnectionFailed(f"{where}, attribute {attr!r}: the child table's key has {len(child.key)} "
                                   f"column(s), the object's {len(spec.key)}")
        bound.children[attr] = (ctable, [ctable.c[k] for k in child.key], ctable.c[child.value])
    changes = spec.delta.changes if spec.delta is not None else None
    if changes is not None:
        bound.changes = _table(engine, metadata, changes.table, changes.schema or schema, f"{where}, delta.changes")
        _columns(bound.changes, [changes.sequence, changes.anchor, changes.change_type,
                                 *([changes.object_column] if changes.object_column else [])],
                 f"{where}, delta.changes", changes.table)
    quoted = engine.dialect.identifier_preparer.quote(partition) if partition else ""
    for kind, text in spec.statements.items():
        bound.statements[kind] = sa.text(text.replace("{partition}", quoted))
    return bound


def _unique(table: sa.Table, key: tuple[str, ...]) -> bool:
    """Whether some primary key, unique constraint or unique index of ``table`` lies within the key
    columns: then no two rows share a key."""
    wanted = set(key)
    sets = [{c.name for c in table.primary_key.columns}]
    sets += [{c.name for c in con.columns} for con in table.constraints if isinstance(con, sa.UniqueConstraint)]
    sets += [{c.name for c in ix.columns} for ix in table.indexes if ix.unique and _plain_index(ix)]
    return any(s and s <= wanted for s in sets)


def _plain_index(index: sa.Index) -> bool:
    """An index of columns alone, over the whole table (not of expressions, not partial)."""
    partial = any(options.get("where") is not None for options in index.dialect_options.values())
    return not partial and len(index.expressions) == len(index.columns)


def _table(engine: sa.Engine, metadata: sa.MetaData, name: str, schema: str | None, where: str) -> sa.Table:
    key = f"{schema}.{name}" if schema else name
    if key in metadata.tables:
        return metadata.tables[key]
    try:
        return sa.Table(name, metadata, schema=schema, autoload_with=engine)
    except exc.NoSuchTableError:
        place = f" in schema {schema!r}" if schema else ""
        raise ConnectionFailed(f"{where}: table {name!r} does not exist{place}; create it (or add init_sql), "
                               "or correct the name in the connector's objects") from None


def _columns(rows: sa.FromClause, names: list[str], where: str, what: str) -> None:
    missing = [n for n in dict.fromkeys(names) if n not in rows.c]
    if missing:
        have = ", ".join(c.name for c in rows.c)
        raise ConnectionFailed(f"{where}: {what} has no column {', '.join(map(repr, missing))}; it has: {have}")


def _query(engine: sa.Engine, spec: ObjectSpec, partition: str | None, where: str) -> sa.FromClause:
    """The custom SELECT as a subquery with known columns: a key column holding integers is typed
    as such, so anchors (text) are compared as numbers."""
    assert spec.query is not None
    quoted = engine.dialect.identifier_preparer.quote(partition) if partition else ""
    text = spec.query.strip().rstrip(";").replace("{partition}", quoted)
    probe = sa.text(text).columns().subquery("q")
    try:
        with engine.connect() as conn:
            result = conn.execute(sa.select(sa.text("*")).select_from(probe).limit(1))
            names = list(result.keys())
            first = result.first()
    except exc.DBAPIError as e:
        raise ConnectionFailed(f"{where}: its query fails: {driver_reason(e)}") from None
    sample = dict(zip(names, first, strict=True)) if first is not None else {}
    return sa.text(text).columns(*[sa.column(n, sa.Integer if _integer(sample.get(n)) else sa.types.NullType)
                                   for n in names]).subquery("q")


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
