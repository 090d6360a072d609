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

    def commit(self) -> None:
        self.conn.commit()

    def rollback(self) -> None:
        self.conn.rollback()
