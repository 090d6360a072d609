"""Writing one object: table writes (insert, update, delete or soft delete, child rows by
difference) and custom statements or stored procedures with bound parameters.

Values only ever travel as bound parameters: table writes through SQLAlchemy Core, custom
statements as ``:name`` placeholders of ``sqlalchemy.text``. The text of a statement comes from
the manifest alone; nothing an HR record holds is pasted into it.

The ``*_many`` functions write a batch of operations of one object with one statement per table
(an executemany, or ``IN`` lists of keys) and do exactly what the one-operation functions would
have done for each, or raise :class:`Unsure` when they cannot tell that (a row missing among the
batch's): the caller then rolls their savepoint back and applies the operations one by one.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import sqlalchemy as sa

from runner.connectors.base import NotFound, ObjectError, Operation
from runner.connectors.sql.bound import Bound
from runner.connectors.sql.keys import NoSuchKey, among, anchor_text, column_values, equals, key_values, plain

#: keys per ``IN (...)`` list (SQLite allows 32766 parameters a statement, its old builds 999)
CHUNK = 500


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
    """Adds of one shape with a single executemany (and one per child table); generated keys
    come back through RETURNING, each to its own operation (:func:`generated_keys`)."""
    spec, table = bound.spec, bound.table
    assert table is not None
    rows = [row_values(bound, op) for op in ops]
    if spec.generated_key:
        keys = generated_keys(conn, bound, rows)
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


def generated_keys(conn: sa.Connection, bound: Bound, rows: Sequence[dict[str, Any]]) -> list[list[Any]]:
    """Insert ``rows`` (one set of columns) and return the keys the database made, in the order of ``rows``.

    SQL promises no order for the rows of ``INSERT ... RETURNING`` (SQLite documents it as
    arbitrary), so each row comes back with a column that tells the batch's rows apart
    (:func:`telling_column`) and is matched to its operation by that value; SQLAlchemy then sends
    multi-row ``INSERT ... VALUES (...), (...) RETURNING`` statements ("insertmanyvalues"), in
    the chunks :func:`_sized` cuts. A value the database stored otherwise than it was sent ("007"
    into an integer column, a trigger's rewrite) matches no operation, or one already matched:
    :class:`Unsure`, and the caller goes one by one. Without such a column, SQLAlchemy's
    ``sort_by_parameter_order`` orders them: in bulk where it can (MariaDB, PostgreSQL identity
    columns), one row a statement where it cannot (SQLite, PostgreSQL serial columns).
    """
    table, keys = bound.table, bound.table_keys
    assert table is not None
    telling = telling_column(bound, rows)
    if telling is None:
        statement = table.insert().returning(*keys, sort_by_parameter_order=True)
        return [list(row) for chunk in _sized(conn, rows) for row in conn.execute(statement, chunk)]
    column, told = telling
    position = {value: i for i, value in enumerate(told)}
    found: list[list[Any] | None] = [None] * len(rows)
    statement = table.insert().returning(*keys, table.c[column])
    for returned in (row for chunk in _sized(conn, rows) for row in conn.execute(statement, chunk)):
        i = position.get(_told(returned[-1]))
        if i is None or found[i] is not None:
            raise Unsure(f"a row came back with {column} {returned[-1]!r}: no operation of the batch, or one "
                         "already matched, sent that")
        found[i] = list(returned[:-1])
    missing = sum(key is None for key in found)
    if missing:
        raise Unsure(f"{missing} of {len(rows)} inserted rows did not come back")
    return [key for key in found if key is not None]


def _sized(conn: sa.Connection, rows: Sequence[dict[str, Any]]) -> Iterator[Sequence[dict[str, Any]]]:
    """``rows`` in chunks of a power of two rows, at most 256: a multi-row INSERT is a statement
    of its own for each number of rows, and drivers keep the statements they prepared (sqlite3
    128 a connection, about 0.6 MB each at 500 rows of ten columns; psycopg after five uses), so
    a few sizes keep that memory small and reused where any size would fill it. MariaDB's drivers
    prepare nothing (they send the text): there all go at once."""
    if conn.dialect.name in ("mysql", "mariadb"):
        yield rows
        return
    start = 0
    while start < len(rows):
        size = min(256, 1 << ((len(rows) - start).bit_length() - 1))
        yield rows[start:start + size]
        start += size


def telling_column(bound: Bound, rows: Sequence[dict[str, Any]]) -> tuple[str, list[str]] | None:
    """A column sent in every one of ``rows`` whose values (text or integers) are all different,
    compared as :func:`identity` does (case and trailing spaces aside), with those values: a
    column declared unique on its own first (a user name), then text columns, then integers,
    each in table order; never the password column, nor a key column. None when no column tells
    the rows apart."""
    table, spec = bound.table, bound.spec
    assert table is not None
    if not rows:
        return None
    unique = _unique_columns(table)
    candidates = [name for name in rows[0] if name != spec.password and name not in spec.key
                  and isinstance(table.c[name].type, sa.String | sa.Integer)]
    candidates.sort(key=lambda name: (name not in unique, not isinstance(table.c[name].type, sa.String)))
    for name in candidates:
        values = [row[name] for row in rows]
        if all(type(v) is str or type(v) is int for v in values):
            told = [_told(v) for v in values]
            if len(set(told)) == len(told):
                return name, told
    return None


def _unique_columns(table: sa.Table) -> set[str]:
    """Columns a primary key, unique constraint or unique index of ``table`` covers alone."""
    sets = [[c.name for c in table.primary_key.columns]]
    sets += [[c.name for c in con.columns] for con in table.constraints if isinstance(con, sa.UniqueConstraint)]
    sets += [[c.name for c in ix.columns] for ix in table.indexes if ix.unique]
    return {names[0] for names in sets if len(names) == 1}


def _told(value: Any) -> str:
    """A value as :func:`identity` compares it (text and integers, the common case, without its type tests)."""
    if type(value) is str:
        return value.casefold().rstrip()
    if type(value) is int:
        return str(value)
    return identity((value,))[0]


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
            wanted = {plain(v): v for v in column_values(value, op.attributes.get(attr))}
            stored = {} if fresh else {plain(v): v for v in conn.execute(sa.select(value).where(owned)).scalars()}
            removed = [v for p, v in stored.items() if p not in wanted]
            added = [v for p, v in wanted.items() if p not in stored]
        else:
            removed = list(dict.fromkeys(column_values(value, op.remove_values.get(attr))))
            added = list(dict.fromkeys(column_values(value, op.add_values.get(attr))))
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


# ---- batches of operations of one object --------------------------------------------------------


class Unsure(Exception):
    """A batched statement changed another number of rows than it had operations, child rows
    came back under a key none of the operations names, or generated keys came back that cannot
    be matched to their operations: which operation found what cannot be told, so the batch is
    rolled back and applied one operation at a time."""


class Planned(NamedTuple):
    """One operation of a batch: its typed key and (updates) the columns it sets."""

    op: Operation
    key: list[Any]
    values: dict[str, Any]


def plan(bound: Bound, op: Operation) -> Planned | None:
    """The operation ready for a batch, or None when it must go alone: its anchor is no key (it
    reports NotFound), its values are refused, it changes a key column, or the table does not
    declare its key unique (a total rowcount would not tell which operation missed its row)."""
    if bound.table is None or not bound.unique_key:
        return None
    try:
        key = key_values(bound.table_keys, op.anchor)
        values = row_values(bound, op) if op.kind != "delete" else {}
    except (NoSuchKey, ObjectError):
        return None
    if any(k in values for k in bound.spec.key):
        return None
    return Planned(op, key, values)


def identity(key: Sequence[Any]) -> tuple[str, ...]:
    """A key as text the way a case-insensitive, space-padding collation would compare it: two
    operations of one batch with the same identity may be one row, so they go one by one, in order."""
    return tuple(str(plain(v)).casefold().rstrip() for v in key)


def _chunks(items: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _key_params(key: Sequence[Any]) -> dict[str, Any]:
    return {f"_key{i}": v for i, v in enumerate(key)}


def _by_key(columns: Sequence[sa.ColumnElement]) -> sa.ColumnElement[bool]:
    return sa.and_(*[c == sa.bindparam(f"_key{i}", type_=c.type) for i, c in enumerate(columns)])


def _check(conn: sa.Connection, result: sa.CursorResult, expected: int) -> None:
    """Every operation found its row: the total is theirs, keys being unique and each once."""
    if result.rowcount != expected or (expected > 1 and not conn.dialect.supports_sane_multi_rowcount):
        raise Unsure(f"{result.rowcount} rows for {expected} operations")


def update_many(conn: sa.Connection, bound: Bound, items: Sequence[Planned], *, children: bool = True) -> list[str]:
    """Updates of one object setting the same columns (no key column among them), each key once:
    one executemany ``UPDATE ... WHERE key = :key``, or, when they set no column, one query that
    all their rows are there; then (unless ``children`` is false: the caller does it) their child
    rows (:func:`children_many`). The anchors, in order."""
    table = bound.table
    assert table is not None
    names = list(items[0].values)
    if names:
        statement = table.update().where(_by_key(bound.table_keys), *bound.live(table)).values(
            {table.c[n]: sa.bindparam(f"_set{j}", type_=table.c[n].type) for j, n in enumerate(names)})
        params = [{**_key_params(item.key), **{f"_set{j}": item.values[n] for j, n in enumerate(names)}}
                  for item in items]
        _check(conn, conn.execute(statement, params), len(items))
    else:
        found = sum(conn.execute(sa.select(sa.func.count()).select_from(table).where(
            among(bound.table_keys, [item.key for item in chunk]), *bound.live(table))).scalar_one()
            for chunk in _chunks(items))
        if found != len(items):
            raise Unsure(f"{found} rows for {len(items)} operations")
    if children:
        children_many(conn, bound, items)
    return [anchor_text(item.key) for item in items]


def delete_many(conn: sa.Connection, bound: Bound, items: Sequence[Planned]) -> list[str]:
    """Deletes of one object, each key once: child rows and rows by ``IN`` lists of keys (an
    executemany for a key of several columns), or the soft_delete column set the same way."""
    table, soft = bound.table, bound.spec.soft_delete
    assert table is not None
    keys = [item.key for item in items]
    if soft is not None:
        changed = _each_key(conn, table.update().values(**{soft.column: soft.value}), bound.table_keys, keys,
                            *bound.live(table))
    else:
        for ctable, owner, _ in bound.children.values():
            _each_key(conn, ctable.delete(), owner, keys)
        changed = _each_key(conn, table.delete(), bound.table_keys, keys)
    if changed != len(items):
        raise Unsure(f"{changed} rows for {len(items)} operations")
    return [item.op.anchor or anchor_text(item.key) for item in items]


def _each_key(conn: sa.Connection, statement: sa.Update | sa.Delete, columns: Sequence[sa.ColumnElement],
              keys: Sequence[Sequence[Any]], *where: sa.ColumnElement[bool]) -> int:
    """``statement`` for the rows of ``keys``: rows changed (a total; exact only where the
    dialect's executemany rowcount is, else -1)."""
    if len(columns) == 1:
        return sum(conn.execute(statement.where(columns[0].in_([k[0] for k in chunk]), *where)).rowcount
                   for chunk in _chunks(keys))
    result = conn.execute(statement.where(_by_key(columns), *where), [_key_params(k) for k in keys])
    return result.rowcount if len(keys) == 1 or conn.dialect.supports_sane_multi_rowcount else -1


def children_many(conn: sa.Connection, bound: Bound, items: Sequence[Planned]) -> None:
    """:func:`set_children` for many owners (each once), with per child table one query of what
    is stored, one executemany delete and one executemany insert."""
    for attr, (ctable, owner, value) in bound.children.items():
        whole = [item for item in items if attr in item.op.attributes]
        delta = [item for item in items if attr not in item.op.attributes
                 and (item.op.add_values.get(attr) or item.op.remove_values.get(attr))]
        removed: list[tuple[list[Any], Any]] = []
        added: list[tuple[list[Any], Any]] = []
        if whole:
            stored = _stored(conn, owner, value, [item.key for item in whole])
            for item in whole:
                wanted = {plain(v): v for v in column_values(value, item.op.attributes.get(attr))}
                have = {plain(v): v for v in stored.get(_owner(item.key), [])}
                removed += [(item.key, v) for p, v in have.items() if p not in wanted]
                added += [(item.key, v) for p, v in wanted.items() if p not in have]
        if delta:
            adding = [item for item in delta if item.op.add_values.get(attr)]
            there = _stored(conn, owner, value, [item.key for item in adding],
                            list(dict.fromkeys(v for item in adding
                                               for v in column_values(value, item.op.add_values[attr]))))
            for item in delta:
                removed += [(item.key, v) for v in dict.fromkeys(column_values(value, item.op.remove_values.get(attr)))]
                present = {plain(v) for v in there.get(_owner(item.key), [])}
                added += [(item.key, v) for v in dict.fromkeys(column_values(value, item.op.add_values.get(attr)))
                          if plain(v) not in present]
        if removed:
            _remove(conn, ctable, owner, value, removed)
        if added:
            names = [c.name for c in owner]
            conn.execute(ctable.insert(), [{**dict(zip(names, key, strict=True)), value.name: v} for key, v in added])


def _remove(conn: sa.Connection, ctable: sa.Table, owner: Sequence[sa.Column], value: sa.Column,
            pairs: Sequence[tuple[list[Any], Any]]) -> None:
    """Delete (owner, value) child rows: one executemany; on MariaDB/MySQL, whose driver sends an
    executemany of a DELETE row by row, one ``value IN (...)`` statement per owner instead."""
    if conn.dialect.name not in ("mysql", "mariadb"):
        conn.execute(ctable.delete().where(_by_key(owner), value == sa.bindparam("_value", type_=value.type)),
                     [{**_key_params(key), "_value": v} for key, v in pairs])
        return
    by_owner: dict[tuple[str, ...], tuple[list[Any], list[Any]]] = {}
    for key, v in pairs:
        by_owner.setdefault(_owner(key), (key, []))[1].append(v)
    for key, values in by_owner.values():
        for some in _chunks(values):
            conn.execute(ctable.delete().where(equals(owner, key), value.in_(some)))


def _owner(key: Sequence[Any]) -> tuple[str, ...]:
    return tuple(str(plain(v)) for v in key)


def _stored(conn: sa.Connection, owner: Sequence[sa.Column], value: sa.Column, keys: Sequence[Sequence[Any]],
            values: Sequence[Any] | None = None) -> dict[tuple[str, ...], list[Any]]:
    """Child values stored for these owners (only those among ``values`` when given), by owner.
    A row under a key written otherwise than any asked for (another case, padding, type) is
    :class:`Unsure`: the database's comparison, not Python's, must say whose it is."""
    asked = {_owner(k) for k in keys}
    found: dict[tuple[str, ...], list[Any]] = {}
    if values is not None and not values:
        return found
    for chunk in _chunks(keys):
        for some in _chunks(values) if values is not None else [None]:
            query = sa.select(*owner, value).where(among(owner, chunk))
            if some is not None:
                query = query.where(value.in_(some))
            for row in conn.execute(query):
                who = _owner(row[:-1])
                if who not in asked:
                    raise Unsure(f"child rows under key {who!r}")
                found.setdefault(who, []).append(row[-1])
    return found
