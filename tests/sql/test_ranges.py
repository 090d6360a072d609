"""A full read cut in ranges (``ranges`` / ``read_range``), on SQLite, PostgreSQL and MariaDB:
the database cuts the rows at keys it orders itself, and every row is read in exactly one range,
whether the keys are integers, text under a collation that is not Python's, several columns, or
NULL."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

import sqlalchemy as sa

from runner.connectors.base import Record

from .conftest import Database, read_all


def read_ranges(connector: Any, object: str, count: int, page_size: int = 3) -> list[list[Record]]:
    """The records of each range of one cut, read in pages of ``page_size``."""
    cut = connector.ranges(object, None, count)
    assert cut is not None and 2 <= len(cut.tokens) <= count, cut
    return [[r for page in connector.read_range(object, token, page_size=page_size) for r in page.records]
            for token in cut.tokens]


def once_each(ranges: list[list[Record]], whole: list[Record], column: str) -> None:
    """Every row of the whole read in exactly one range, with the same values."""
    keys = Counter(r.attributes[column] for part in ranges for r in part)
    assert [k for k, n in keys.items() if n > 1] == []
    assert sorted(keys, key=repr) == sorted((r.attributes[column] for r in whole), key=repr)
    assert sorted(repr(dict(r.attributes)) for part in ranges for r in part) == \
        sorted(repr(dict(r.attributes)) for r in whole)


def test_integer_keys_are_cut_into_ranges_of_about_equal_size(db: Database):
    md = sa.MetaData()
    people = sa.Table("people", md, sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
                      sa.Column("name", sa.String(20)), sa.Column("gone", sa.Boolean))
    md.create_all(db.engine)
    ids = [*range(-30, 600, 7), 10**12 + 7]  # gaps, negatives, a key past 32 bits
    with db.engine.begin() as conn:
        conn.execute(people.insert(), [{"id": i, "name": f"p{i}", "gone": i % 10 == 3} for i in ids])
    objects = {"people": {"table": "people", "key": "id", "soft_delete": {"column": "gone", "value": True}}}
    with db.connector(objects) as connector:
        ranges = read_ranges(connector, "people", 4)
        whole = read_all(connector, "people")[0]
        once_each(ranges, whole, "id")
        assert not any(r.attributes["gone"] for part in ranges for r in part)  # soft-deleted rows: in none
        sizes = [len(part) for part in ranges]
        assert len(sizes) == 4 and max(sizes) - min(sizes) <= 1, sizes


def test_text_keys_are_cut_under_the_columns_collation(db: Database):
    """Case and accents order differently under the database's collation (SQLite NOCASE, an ICU
    collation on PostgreSQL, MariaDB's case- and accent-insensitive default) than in Python: the
    database both cuts and reads, so each row still lands once."""
    collate = {"sqlite": " COLLATE NOCASE", "postgresql": ' COLLATE "und-x-icu"', "mariadb": ""}[db.dialect]
    db.execute(f"CREATE TABLE staff (code VARCHAR(20){collate} PRIMARY KEY, name VARCHAR(20))")
    prefixes = ["a", "B", "é", "E", "z", "Ø", "ß", " x", "10", "9", "Zoë", "zoe-"]
    codes = [f"{p}{i}" for i, p in enumerate(prefixes * 8)]  # unique even when case and accents are ignored
    with db.engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO staff (code, name) VALUES (:code, :name)"),
                     [{"code": c, "name": c.upper()} for c in codes])
    with db.connector({"staff": {"table": "staff", "key": "code"}}) as connector:
        ranges = read_ranges(connector, "staff", 5, page_size=4)
        once_each(ranges, read_all(connector, "staff")[0], "code")
        assert len(ranges) == 5


def test_rows_whose_key_is_null_are_read_once_in_the_first_range(db: Database):
    """A key column that may be NULL (a view's, a nullable column's): those rows sort first on
    SQLite and MariaDB, last on PostgreSQL, and paging past a key never reaches them; they are
    read apart, in the range that starts at the beginning, and by a whole read on every database."""
    db.execute("CREATE TABLE badges (number INTEGER, holder VARCHAR(20))")
    rows = [{"number": None if i % 6 == 0 else i, "holder": f"h{i}"} for i in range(40)]
    with db.engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO badges (number, holder) VALUES (:number, :holder)"), rows)
    with db.connector({"badges": {"table": "badges", "key": "number"}}) as connector:
        whole = read_all(connector, "badges", page_size=4)[0]
        assert sorted(r.attributes["holder"] for r in whole) == sorted(r["holder"] for r in rows)
        ranges = read_ranges(connector, "badges", 3, page_size=2)
        once_each(ranges, whole, "holder")
        nulls = [[r.attributes["holder"] for r in part if r.attributes["number"] is None] for part in ranges]
        assert len(nulls[0]) == 7 and not any(nulls[1:]), nulls


def test_a_key_of_several_columns_is_cut_on_all_of_them(db: Database):
    md = sa.MetaData()
    accounts = sa.Table("accounts", md, sa.Column("region", sa.String(8), primary_key=True),
                        sa.Column("number", sa.Integer, primary_key=True, autoincrement=False),
                        sa.Column("name", sa.String(20)))
    md.create_all(db.engine)
    with db.engine.begin() as conn:  # few regions: the cuts fall inside a region, on the number
        conn.execute(accounts.insert(), [{"region": r, "number": n, "name": f"{r}{n}"}
                                         for r in ("eu", "us") for n in range(25)])
    objects = {"accounts": {"table": "accounts", "key": ["region", "number"]}}
    with db.connector(objects) as connector:
        ranges = read_ranges(connector, "accounts", 4)
        once_each(ranges, read_all(connector, "accounts")[0], "_anchor")
        assert [len(part) for part in ranges] == [13, 13, 12, 12]


def test_the_cut_of_a_delta_source_carries_the_watermark_taken_before_it(db: Database):
    """What changes while the ranges are read comes back in the next delta read."""
    db.execute("CREATE TABLE people (id INTEGER PRIMARY KEY, name VARCHAR(20), version INTEGER)")
    with db.engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO people VALUES (:id, :name, 1)"), [{"id": i, "name": f"p{i}"} for i in range(30)])
    objects = {"people": {"table": "people", "key": "id", "delta": {"watermark": "version"}}}
    with db.connector(objects) as connector:
        cut = connector.ranges("people", None, 3)
        assert cut is not None and cut.watermark is not None
        db.execute("UPDATE people SET name = 'changed', version = 2 WHERE id = 7")
        pages = [p for token in cut.tokens for p in connector.read_range("people", token)]
        assert all(p.watermark is None for p in pages)
        changed = read_all(connector, "people", cut.watermark)[0]
        assert [(r.attributes["id"], r.attributes["name"]) for r in changed] == [(7, "changed")]


def test_keys_that_are_not_integers_or_text_and_tiny_tables_are_not_cut(db: Database):
    db.execute("CREATE TABLE days (day DATE PRIMARY KEY, note VARCHAR(20))",
               "CREATE TABLE one (id INTEGER PRIMARY KEY, note VARCHAR(20))", "INSERT INTO one VALUES (1, 'x')")
    with db.engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO days VALUES (:day, 'x')"),
                     [{"day": dt.date(2026, 1, 1) + dt.timedelta(days=i)} for i in range(10)])
    with db.connector({"days": {"table": "days", "key": "day"}, "one": {"table": "one", "key": "id"}}) as connector:
        assert connector.ranges("days", None, 3) is None  # read whole, as without ranges
        assert connector.ranges("one", None, 3) is None
