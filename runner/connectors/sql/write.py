"""Writing one object: table writes (insert, update, delete or soft delete, child rows by
difference) and custom statements or stored procedures with bound parameters.

Values only ever travel as bound parameters: table writes through SQLAlchemy Core, custom
statements as ``:name`` placeholders of ``sqlalchemy.text``. The text of a statement comes from
the manifest alone; nothing an HR record holds is pasted into it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from runner.connectors.base import NotFound, ObjectError, Operation
from runner.connectors.sql.bound import Bound
from runner.connectors.sql.keys import NoSuchKey, anchor_text, equals, key_values, plain


def row_values(bound: Bound, op: Operation) -> dict[str, Any]:
    """The row's column values: scalar attributes, plus the password in its configured column."""
    spec = bound.spec
    scalars = {k: v for k, v in op.attributes.items() if k not in spec.children and k != spec.key_attribute}
    if op.password is not None:
        if not spec.password:
            raise ObjectError(f"object {op.object!r} has no password column: set password: <column> "
                              "in its block under the sql connector's objects")
        scalars[spec.password] = op.password
    table = bound.table
    assert table is not None
    unknown = [k for k in scalars if k not in table.c]
    if unknown:
        raise ObjectError(f"table {table.name} has no column {', '.join(sorted(unknown))}")
    return scalars


def _key_of(bound: Bound, op: Operation, columns: Sequence[sa.ColumnElement]) -> list[Any]:
    try:
        return key_values(columns, op.anchor)
    except NoSuchKey:
        raise NotFound(f"{bound.where}: no row with key {op.anchor!r}") from None


def insert_many(conn: sa.Connection, bound: Bound, ops: Sequence[Operation]) -> list[str]:
    """Adds of one shape with a single executemany (and one per child table)."""
    spec, table = bound.spec, bound.table
    assert table is not None
    rows = [row_values(bound, op) for op in ops]
    if spec.generated_key:
        result = conn.execute(table.insert().returning(*bound.table_keys, sort_by_parameter_order=True), rows)
        keys = [list(row) for row in result]
    else:
        keys = [[row.get(k) for k in spec.key] for row in rows]
        if any(v is None for key in keys for v in key):
            raise ObjectError(f"no value for key column(s) {', '.join(spec.key)}")
        conn.execute(table.insert(), rows)
    for attr, (ctable, owner, value) in bound.children.items():
        pairs = [{**dict(zip([c.name for c in owner], key, strict=True)), value.name: v}
                 for key, op in zip(keys, ops, strict=True) for v in dict.fromkeys(op.attributes.get(attr) or [])]
        if pairs:
            conn.execute(ctable.insert(), pairs)
    return [anchor_text(key) for key in keys]


def add(conn: sa.Connection, bound: Bound, op: Operation) -> str:
    spec, table = bound.spec, bound.table
    assert table is not None
    values = row_values(bound, op)
    if spec.soft_delete is not None and not spec.generated_key:
        revived = _revive(conn, bound, values)
        if revived is not None:
            set_children(conn, bound, revived, op, whole=True)
            return anchor_text(revived)
    result = conn.execute(table.insert().values(**values))
    key = list(result.inserted_primary_key) if spec.generated_key else [values.get(k) for k in spec.key]
    if spec.generated_key and len(key) != len(spec.key):
        key = [values.get(k) if values.get(k) is not None else key[0] for k in spec.key]
    if any(v is None for v in key):
        raise ObjectError(f"no value for key column(s) {', '.join(spec.key)}: map them, or set generated_key")
    set_children(conn, bound, key, op, whole=True, fresh=True)
    return anchor_text(key)


def _revive(conn: sa.Connection, bound: Bound, values: dict[str, Any]) -> list[Any] | None:
    """An add of a soft-deleted row's key brings that row back with the new values."""
    soft, table = bound.spec.soft_delete, bound.table
    assert soft is not None and table is not None
    key = [values.get(k) for k in bound.spec.key]
    if any(v is None for v in key):
        return None
    result = conn.execute(table.update().where(equals(bound.table_keys, key), table.c[soft.column] == soft.value)
                          .values(**{**values, soft.column: soft.live}))
    return key if result.rowcount else None


def update(conn: sa.Connection, bound: Bound, op: Operation) -> str:
    """Update, disable or set_password: the columns sent, then child rows by difference."""
    table = bound.table
    assert table is not None
    key = _key_of(bound, op, bound.table_keys)
    values = row_values(bound, op)
    where = [equals(bound.table_keys, key), *bound.live(table)]
    if values:
        if conn.execute(table.update().where(*where).values(**values)).rowcount == 0:
            raise NotFound(f"{bound.where}: no row with key {op.anchor!r}")
        key = [values.get(k, v) for k, v in zip(bound.spec.key, key, strict=True)]
    elif conn.execute(sa.select(*bound.table_keys).where(*where)).first() is None:
        raise NotFound(f"{bound.where}: no row with key {op.anchor!r}")
    set_children(conn, bound, key, op)
    return anchor_text(key)


def delete(conn: sa.Connection, bound: Bound, op: Operation) -> str:
    """Remove the row and its child rows, or with soft_delete mark it deleted (children kept)."""
    table, soft = bound.table, bound.spec.soft_delete
    assert table is not None
    key = _key_of(bound, op, bound.table_keys)
    if soft is not None:
        result = conn.execute(table.update().where(equals(bound.table_keys, key), *bound.live(table))
                              .values(**{soft.column: soft.value}))
    else:
        for ctable, owner, _ in bound.children.values():
            conn.execute(ctable.delete().where(equals(owner, key)))
        result = conn.execute(table.delete().where(equals(bound.table_keys, key)))
    if result.rowcount == 0:
        raise NotFound(f"{bound.where}: no row with key {op.anchor!r}")
    return op.anchor or anchor_text(key)


def set_children(conn: sa.Connection, bound: Bound, key: Sequence[Any], op: Operation, *,
                 whole: bool = False, fresh: bool = False) -> None:
    """Child rows of one owner: a whole list is written as the difference from what is stored
    (rows inserted and deleted, never all deleted and re-inserted); values added or removed as
    such, where adding one already there and removing one already gone both succeed."""
    for attr, (ctable, owner, value) in bound.children.items():
        owned = equals(owner, key)
        row = dict(zip([c.name for c in owner], key, strict=True))
        if attr in op.attributes or whole:
            wanted = {plain(v): v for v in op.attributes.get(attr) or []}
            stored = {} if fresh else {plain(v): v for v in conn.execute(sa.select(value).where(owned)).scalars()}
            removed = [v for p, v in stored.items() if p not in wanted]
            added = [v for p, v in wanted.items() if p not in stored]
        else:
            removed = list(dict.fromkeys(op.remove_values.get(attr, ())))
            added = list(dict.fromkeys(op.add_values.get(attr, ())))
            if added:
                there = {plain(v) for v in conn.execute(sa.select(value).where(owned, value.in_(added))).scalars()}
                added = [v for v in added if plain(v) not in there]
        if removed:
            conn.execute(ctable.delete().where(owned, value.in_(removed)))
        if added:
            conn.execute(ctable.insert(), [{**row, value.name: v} for v in added])


def by_statement(conn: sa.Connection, bound: Bound, op: Operation) -> str:
    """Run the object's custom statement for this kind of operation.

    Parameters: every scalar attribute by name (one the operation does not carry is NULL),
    ``:_anchor`` (and ``:_anchor_<column>`` per key column), ``:_password``, ``:_partition``,
    ``:_name``. A statement that returns a row gives the anchor of an add (``RETURNING id``, a
    procedure's result); one that changes no row reports NotFound.
    """
    statement = bound.statements[op.kind]
    spec = bound.spec
    names = set(statement._bindparams)
    params: dict[str, Any] = dict.fromkeys(names)
    for k, v in op.attributes.items():
        if k in names and not isinstance(v, list | tuple | set):
            params[k] = v
    if op.anchor is not None:
        try:
            parts = key_values(bound.table_keys if bound.table is not None else bound.keys, op.anchor)
        except NoSuchKey:
            if op.kind != "add":
                raise NotFound(f"{bound.where}: no row with key {op.anchor!r}") from None
            parts = []
        if parts:
            params["_anchor"] = parts[0] if len(parts) == 1 else op.anchor
            for column, part in zip(spec.key, parts, strict=True):
                params[f"_anchor_{column}"] = part
    params.update({"_password": op.password, "_partition": op.partition, "_name": op.name})
    result = conn.execute(statement, {k: v for k, v in params.items() if k in names})
    returned = None
    if result.returns_rows:
        first = result.first()
        returned = list(first) if first is not None else None
        if op.kind != "add" and first is None:
            raise NotFound(f"{bound.where}: the {op.kind} statement found no row with key {op.anchor!r}")
    elif result.rowcount == 0:
        raise NotFound(f"{bound.where}: the {op.kind} statement changed no row (key {op.anchor!r})")
    if op.kind == "add":
        key = returned[: len(spec.key)] if returned else [op.attributes.get(k) for k in spec.key]
        if any(v is None for v in key) and spec.generated_key and result.lastrowid and len(spec.key) == 1:
            key = [result.lastrowid]
        if not key or any(v is None for v in key):
            raise ObjectError(f"{bound.where}: the add statement gave no key: end it with RETURNING "
                              f"{', '.join(spec.key)} (or SELECT it in the procedure), or map the key column")
        if bound.children:
            set_children(conn, bound, _typed(bound, key), op, whole=True, fresh=True)
        return anchor_text(key)
    if op.kind != "delete" and bound.children and bound.table is not None:
        set_children(conn, bound, key_values(bound.table_keys, op.anchor), op)
    return op.anchor or ""


def _typed(bound: Bound, key: list[Any]) -> list[Any]:
    columns = bound.table_keys if bound.table is not None else bound.keys
    return key_values(columns, anchor_text(key))
