"""Anchors of one or more key columns: their text form, the typed values a query binds, and the
keyset predicate that pages through rows in key order. Pure, apart from building expressions."""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import operator
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa


class NoSuchKey(Exception):
    """An anchor that cannot be a value of the key (text for an integer key, too few parts): no such row."""


def plain(value: Any) -> Any:
    """A database value as JSON-friendly data, so it can be hashed, compared and stored."""
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    return value


def anchor_text(values: Sequence[Any]) -> str:
    """The anchor of a row from its key values: the value itself for one column, else the parts
    joined by ``/`` (``%`` and ``/`` inside a part written ``%25`` and ``%2F``)."""
    if len(values) == 1:
        return str(plain(values[0]))
    return "/".join(str(plain(v)).replace("%", "%25").replace("/", "%2F") for v in values)


def anchor_parts(anchor: str, width: int) -> list[str]:
    if width == 1:
        return [anchor]
    parts = anchor.split("/")
    if len(parts) != width:
        raise NoSuchKey(anchor)
    return [p.replace("%2F", "/").replace("%25", "%") for p in parts]


def typed(column: sa.ColumnElement, text: str | None) -> Any:
    """Anchors travel as strings; integer key columns want integers back (exactly: '1abc' is not 1)."""
    if text is not None and isinstance(column.type, sa.Integer):
        if not text.strip().lstrip("-").isdigit():
            raise NoSuchKey(text)
        return int(text)
    return text


def column_values(column: sa.ColumnElement, values: Any) -> list[Any]:
    """Values bound for ``column`` as its type wants them: references arrive as anchors, which are
    text, and PostgreSQL compares no ``bigint`` with a ``varchar`` (nor does Python compare a
    stored 5 with a wanted "5"). What cannot be an integer is left for the database to refuse."""
    values = list(values or [])
    if not isinstance(column.type, sa.Integer):
        return values
    return [typed(column, v) if isinstance(v, str) and v.strip().lstrip("-").isdigit() else v for v in values]


def key_values(columns: Sequence[sa.ColumnElement], anchor: str | None) -> list[Any]:
    """The typed key values an anchor stands for (NoSuchKey when it cannot be one)."""
    if anchor is None:
        raise NoSuchKey(anchor)
    return [typed(c, part) for c, part in zip(columns, anchor_parts(anchor, len(columns)), strict=True)]


def equals(columns: Sequence[sa.ColumnElement], values: Sequence[Any]) -> sa.ColumnElement[bool]:
    return sa.and_(*[c == v for c, v in zip(columns, values, strict=True)])


def after(columns: Sequence[sa.ColumnElement], values: Sequence[Any]) -> sa.ColumnElement[bool]:
    """``(c1, c2) > (v1, v2)`` spelt as ``c1 > v1 OR (c1 = v1 AND c2 > v2)``: MariaDB range-scans
    that form, not the row-value comparison (../shared/PERF.md)."""
    return _beyond(columns, values, operator.gt, operator.gt)


def at_least(columns: Sequence[sa.ColumnElement], values: Sequence[Any]) -> sa.ColumnElement[bool]:
    """``(c1, c2) >= (v1, v2)``, spelt as :func:`after` spells ``>``."""
    return _beyond(columns, values, operator.gt, operator.ge)


def below(columns: Sequence[sa.ColumnElement], values: Sequence[Any]) -> sa.ColumnElement[bool]:
    """``(c1, c2) < (v1, v2)``, spelt as :func:`after` spells ``>``."""
    return _beyond(columns, values, operator.lt, operator.lt)


def _beyond(columns: Sequence[sa.ColumnElement], values: Sequence[Any], op: Callable[[Any, Any], Any],
            last: Callable[[Any, Any], Any]) -> sa.ColumnElement[bool]:
    """Key order past ``values``: ``op`` on the first column that differs, ``last`` on the last one."""
    clauses = []
    for i, column in enumerate(columns):
        compare = last if i == len(columns) - 1 else op
        clauses.append(sa.and_(*[columns[j] == values[j] for j in range(i)], compare(column, values[i])))
    return sa.or_(*clauses)


def among(columns: Sequence[sa.ColumnElement], keys: Sequence[Sequence[Any]]) -> sa.ColumnElement[bool]:
    """Rows whose key is one of ``keys``: ``IN`` for one column, a row-value ``IN`` for several."""
    if len(columns) == 1:
        return columns[0].in_([k[0] for k in keys])
    return sa.tuple_(*columns).in_([tuple(k) for k in keys])
