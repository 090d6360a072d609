"""What every part of the state store shares: the open connection and small helpers."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa

from runner.state.records import dumps

CHUNK = 500  # rows per IN (...) list: far below every database's parameter limit

__all__ = ["CHUNK", "Base", "DuplicateAnchor", "chunks", "dumps", "now_iso", "record_hash"]


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def record_hash(data: Any) -> str:
    return hashlib.sha1(dumps(data).encode()).hexdigest()


def chunks(items: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


class DuplicateAnchor(ValueError):
    def __init__(self, anchor: str):
        super().__init__(anchor)
        self.anchor = anchor


class Base:
    """The connection the store's parts work on. Not thread-safe: the engine's main thread owns it."""

    conn: sa.Connection
    engine: sa.Engine

    def bulk_insert(self, table: sa.Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """One driver-level executemany of tuples: the hot inserts (pending exports, links, target
        objects, the log) skip SQLAlchemy's per-parameter work, which PERF.md measured at about a
        third of an initial cycle's state cost. Values must already be plain (str, int, bool, None)."""
        if not rows:
            return
        quote = self.conn.dialect.identifier_preparer.quote
        mark = "?" if self.conn.dialect.paramstyle == "qmark" else "%s"
        sql = (f"INSERT INTO {quote(table.name)} ({', '.join(quote(c) for c in columns)}) "
               f"VALUES ({', '.join([mark] * len(columns))})")
        self.conn.exec_driver_sql(sql, [tuple(r) for r in rows])

    def commit(self) -> None:
        self.conn.commit()

    def rollback(self) -> None:
        self.conn.rollback()
