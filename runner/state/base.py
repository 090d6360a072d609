"""What every part of the state store shares: the open connection and small helpers."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from runner.state.records import dumps

if TYPE_CHECKING:
    from runner.state.store import StateStore

CHUNK = 500  # rows per IN (...) list: far below every database's parameter limit

__all__ = ["CHUNK", "Base", "DuplicateAnchor", "Part", "chunks", "dumps", "now_iso", "record_hash", "text_hash"]


def now_iso(ago: float = 0.0) -> str:
    """Now (or ``ago`` seconds before), as the store keeps times: comparable as text."""
    when = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=ago)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def record_hash(data: Any) -> str:
    return text_hash(dumps(data))


def text_hash(text: str) -> str:
    """The hash of a record already serialised by :func:`dumps` (the import stores that text too)."""
    return hashlib.sha1(text.encode()).hexdigest()


def chunks(items: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


class DuplicateAnchor(ValueError):
    def __init__(self, anchor: str):
        super().__init__(anchor)
        self.anchor = anchor


class Base:
    """The connection the store's parts work on, and the driver-level helpers they share (the
    :class:`~runner.state.store.StateStore` is one). Not thread-safe: the engine's main thread owns it."""

    conn: sa.Connection
    engine: sa.Engine
    _growth: dict[str, list[float]]  # table -> [rows when last analyzed, rows inserted since]

    def bulk_insert(self, table: sa.Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """One driver-level executemany of tuples: the hot inserts (pending exports, links, target
        objects, the log) skip SQLAlchemy's per-parameter work, which PERF.md measured at about a
        third of an initial cycle's state cost. Values must already be plain (str, int, bool, None)."""
        if not rows:
            return
        quote, mark = self.driver_sql()
        sql = (f"INSERT INTO {quote(table.name)} ({', '.join(quote(c) for c in columns)}) "
               f"VALUES ({', '.join([mark] * len(columns))})")
        self.conn.exec_driver_sql(sql, [tuple(r) for r in rows])
        self.grew(table.name, len(rows))

    def driver_sql(self) -> tuple[Callable[[str], str], str]:
        """How this database's driver wants names quoted and parameters marked, for the hot
        statements sent without SQLAlchemy's per-parameter work."""
        return self.conn.dialect.identifier_preparer.quote, "?" if self.conn.dialect.paramstyle == "qmark" else "%s"

    def rows_in(self, table: sa.Table, columns: Sequence[str], key: str, values: Sequence[Any],
                **equal: Any) -> list[tuple[Any, ...]]:
        """``SELECT columns FROM table WHERE <equal> AND key IN (values)``, chunk by chunk, at the
        driver level: the lookups of whole pages (links, target objects) spend most of their time
        in SQLAlchemy's per-parameter work on IN lists otherwise (a third of a reconciliation's
        lookups at 10,000 objects). Values must be plain (str, int, bool)."""
        quote, _ = self.driver_sql()
        head = f"SELECT {', '.join(quote(c) for c in columns)} FROM {quote(table.name)} WHERE "
        found: list[tuple[Any, ...]] = []
        for result in self._each_chunk(head, f"{quote(table.name)}.{quote(key)}", values, (), equal):
            found.extend(result.cursor.fetchall())  # the driver's tuples, without a Row per row
            result.close()
        return found

    def update_in(self, table: sa.Table, values: dict[str, Any], key: str, keys: Sequence[Any],
                  increment: Sequence[str] = (), **equal: Any) -> None:
        """``UPDATE table SET values WHERE <equal> AND key IN (keys)``, chunk by chunk, at the
        driver level, for the same reason as :meth:`rows_in` (a full import stamps every object
        it read this way: a tenth of a no-op cycle through SQLAlchemy's IN lists). ``increment``:
        columns that also go up by one."""
        quote, mark = self.driver_sql()
        sets = [f"{quote(c)} = {mark}" for c in values] + [f"{quote(c)} = {quote(c)} + 1" for c in increment]
        head = f"UPDATE {quote(table.name)} SET {', '.join(sets)} WHERE "
        for result in self._each_chunk(head, quote(key), keys, tuple(values.values()), equal):
            result.close()

    def update_many(self, table: sa.Table, columns: Sequence[str], where: Sequence[str],
                    rows: Sequence[Sequence[Any]]) -> None:
        """One driver-level executemany of ``UPDATE table SET columns WHERE where`` (each row: the
        new values, then the key values), for the same reason as :meth:`bulk_insert`: recording a
        page of updates spent most of its time in SQLAlchemy's per-parameter work."""
        if not rows:
            return
        quote, mark = self.driver_sql()
        sql = (f"UPDATE {quote(table.name)} SET {', '.join(f'{quote(c)} = {mark}' for c in columns)} "
               f"WHERE {' AND '.join(f'{quote(k)} = {mark}' for k in where)}")
        self.conn.exec_driver_sql(sql, [tuple(r) for r in rows])

    def delete_in(self, table: sa.Table, key: str, keys: Sequence[Any], **equal: Any) -> None:
        """``DELETE FROM table WHERE <equal> AND key IN (keys)``, chunk by chunk, at the driver
        level (see :meth:`rows_in`)."""
        quote, _ = self.driver_sql()
        for result in self._each_chunk(f"DELETE FROM {quote(table.name)} WHERE ", quote(key), keys, (), equal):
            result.close()

    def _each_chunk(self, head: str, key: str, keys: Sequence[Any], before: Sequence[Any],
                    equal: dict[str, Any]) -> Iterator[Any]:
        """``head <equal> AND key IN (chunk)`` run for each chunk of ``keys`` (``key`` already
        quoted; ``before``: the values of parameters in ``head``); yields each driver result."""
        quote, mark = self.driver_sql()
        sql = head + "".join(f"{quote(k)} = {mark} AND " for k in equal)
        for part in chunks(list(keys)):
            yield self.conn.exec_driver_sql(f"{sql}{key} IN ({', '.join([mark] * len(part))})",
                                            (*before, *equal.values(), *part))

    def grew(self, table: str, rows: int) -> None:
        """PostgreSQL plans by statistics, and a table filled within one run (the first cycle of
        a million objects) still has those of an empty one: every lookup by key becomes a scan of
        the whole table, and the cycle turns quadratic (measured: 100k objects 361 s instead of
        about 60). So a table that doubled since it was last analyzed (at least 5,000 rows) is
        analyzed again at once, inside the transaction (~0.1 s, a sample of 30,000 rows); that
        happens about log2(N/5,000) times while it fills, then autovacuum keeps up. MariaDB
        estimates ranges by diving into the index, SQLite does without: neither needs it."""
        if self.conn.dialect.name != "postgresql" or not rows:
            return
        quote = self.conn.dialect.identifier_preparer.quote
        growth = self._growth.get(table)
        if growth is None:
            known = self.conn.exec_driver_sql("SELECT reltuples FROM pg_class WHERE oid = %(t)s::regclass",
                                              {"t": table}).scalar()
            growth = self._growth[table] = [max(0.0, float(known or 0)), 0.0]
        growth[1] += rows
        if growth[1] >= max(5000.0, growth[0]):
            self.conn.exec_driver_sql(f"ANALYZE {quote(table)}")
            growth[0], growth[1] = growth[0] + growth[1], 0.0

    def insert_new(self, table: sa.Table, row: dict[str, Any]) -> bool:
        """Insert ``row`` unless a row with its key (or another unique key) exists; True if this
        insert made it. One statement, so two workers racing for the same key cannot both win
        (a check followed by an insert can): ON CONFLICT DO NOTHING on PostgreSQL and SQLite,
        INSERT IGNORE on MariaDB/MySQL."""
        name = self.conn.dialect.name
        if name in ("postgresql", "sqlite"):  # RETURNING: psycopg reports no rowcount here (-1)
            if name == "postgresql":  # each import on its own: the PostgreSQL dialect alone takes 50 ms
                from sqlalchemy.dialects.postgresql import insert
            else:
                from sqlalchemy.dialects.sqlite import insert
            statement = (insert(table).values(**row).on_conflict_do_nothing()
                         .returning(*table.primary_key.columns))
            return self.conn.execute(statement).first() is not None
        return self.conn.execute(table.insert().values(**row).prefix_with("IGNORE")).rowcount == 1

    def commit(self) -> None:
        self.conn.commit()

    def rollback(self) -> None:
        self.conn.rollback()


class Part:
    """One part of the state store (its runs, imports, compute, ...): works on the store's
    connection, and reaches the store's shared helpers (``bulk_insert``, ``rows_in``, ``commit``)
    and the other parts through ``self.store``."""

    def __init__(self, store: StateStore):
        self.store = store
        self.conn = store.conn  # the store keeps one connection for its whole life
