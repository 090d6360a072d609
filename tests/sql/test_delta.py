"""Delta reads on SQLite, PostgreSQL and MariaDB: a change table (the trigger method) and a
watermark column, each with its overlap for rows committed late, and a full read that hands back
a watermark the next run can start from."""

from __future__ import annotations

import datetime as dt
import json

import pytest
import sqlalchemy as sa

from runner.connectors.base import WatermarkExpired

from .conftest import Database, by_anchor, read_all

T0 = dt.datetime(2026, 3, 1, 9, 0, 0)


def people_tables(db: Database) -> tuple[sa.Table, sa.Table]:
    md = sa.MetaData()
    people = sa.Table("people", md, sa.Column("pid", sa.String(16), primary_key=True),
                      sa.Column("name", sa.String(64)), sa.Column("updated_at", sa.DateTime),
                      sa.Column("version", sa.Integer), sa.Column("gone", sa.Integer, server_default="0"))
    changes = sa.Table("changes", md, sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
                       sa.Column("table_name", sa.String(32)), sa.Column("anchor", sa.String(16)),
                       sa.Column("change_type", sa.String(8)), sa.Column("changed_at", sa.DateTime))
    md.create_all(db.engine)
    return people, changes


def seed(db: Database, people: sa.Table, changes: sa.Table, n: int = 6) -> None:
    db.execute(people.insert().values([{"pid": f"P{i}", "name": f"Person {i}", "updated_at": T0 + dt.timedelta(minutes=i),
                                        "version": i} for i in range(n)]))
    db.execute(changes.insert().values([{"table_name": "people", "anchor": f"P{i}", "change_type": "add",
                                         "changed_at": T0} for i in range(n)]))


def change(db: Database, people: sa.Table, changes: sa.Table, pid: str, kind: str, when: dt.datetime,
           version: int, seq: int | None = None, **values: object) -> None:
    if kind == "add":
        db.execute(people.insert().values(pid=pid, updated_at=when, version=version, **values))
    elif kind == "modify":
        db.execute(people.update().where(people.c.pid == pid).values(updated_at=when, version=version, **values))
    else:
        db.execute(people.delete().where(people.c.pid == pid))
    row = {"table_name": "people", "anchor": pid, "change_type": kind, "changed_at": when}
    db.execute(changes.insert().values(**row, **({"seq": seq} if seq is not None else {})))


CHANGES = {"people": {"table": "people", "key": "pid",
                      "delta": {"changes": {"table": "changes", "object_column": "table_name"}, "overlap": 5}}}


def test_a_change_table_gives_exactly_what_changed_and_deletions(db: Database):
    people, changes = people_tables(db)
    seed(db, people, changes)
    # an entry for another table in the same change table is not this object's business
    db.execute(changes.insert().values(table_name="groups", anchor="P1", change_type="delete", changed_at=T0))
    with db.connector(CHANGES) as connector:
        records, mark, _ = read_all(connector, "people")
        assert sorted(by_anchor(records)) == [f"P{i}" for i in range(6)]
        assert mark is not None
        assert read_all(connector, "people", mark)[0] == []  # nothing changed: nothing read

        later = T0 + dt.timedelta(hours=1)
        change(db, people, changes, "P1", "modify", later, 10, name="Renamed")
        change(db, people, changes, "P1", "modify", later, 11, name="Renamed twice")
        change(db, people, changes, "P2", "delete", later, 0)
        change(db, people, changes, "P9", "add", later, 1, name="New")
        change(db, people, changes, "P8", "add", later, 1, name="Short-lived")
        change(db, people, changes, "P8", "delete", later, 0)
        records, mark2, _ = read_all(connector, "people", mark)
        found = by_anchor(records)  # each anchor once, however many entries it has
        assert sorted(found) == ["P1", "P2", "P8", "P9"]
        assert found["P1"].attributes["name"] == "Renamed twice" and not found["P1"].deleted
        assert found["P9"].attributes["name"] == "New"
        assert found["P2"].deleted and found["P2"].attributes == {"pid": "P2"}
        assert found["P8"].deleted  # added and removed since: gone is gone, whatever the entries say
        assert read_all(connector, "people", mark2)[0] == []


def test_a_change_committed_late_inside_the_overlap_is_read_once(db: Database):
    """A transaction that took sequence 7 committed after one that took 8 was read: the next read
    goes back 5 sequence numbers (overlap: 5) and finds it; entries it read already are skipped."""
    people, changes = people_tables(db)
    seed(db, people, changes)  # sequences 1..6
    with db.connector(CHANGES) as connector:
        _, mark, _ = read_all(connector, "people")
        change(db, people, changes, "P3", "modify", T0, 20, seq=8, name="Early committer")
        records, mark, _ = read_all(connector, "people", mark)
        assert [r.anchor for r in records] == ["P3"]
        change(db, people, changes, "P4", "modify", T0, 21, seq=7, name="Late committer")
        records, mark, _ = read_all(connector, "people", mark)
        assert [(r.anchor, r.attributes["name"]) for r in records] == [("P4", "Late committer")]
        assert read_all(connector, "people", mark)[0] == []


def test_a_pruned_change_table_asks_for_a_full_read(db: Database):
    people, changes = people_tables(db)
    seed(db, people, changes)
    with db.connector(CHANGES) as connector:
        _, mark, _ = read_all(connector, "people")
        change(db, people, changes, "P1", "modify", T0, 3, seq=50)
        db.execute(changes.delete().where(changes.c.seq < 50))  # the DBA pruned the history
        with pytest.raises(WatermarkExpired, match="pruned"):
            read_all(connector, "people", mark)
        with pytest.raises(WatermarkExpired):  # a watermark of the other method is not taken for this one
            read_all(connector, "people", json.dumps({"mode": "watermark", "v": 3, "seen": {}}))


def test_change_table_pages_resume_where_a_killed_run_stopped(db: Database):
    people, changes = people_tables(db)
    seed(db, people, changes)
    with db.connector(CHANGES) as connector:
        _, mark, _ = read_all(connector, "people")
        later = T0 + dt.timedelta(hours=1)
        for i in range(6):
            change(db, people, changes, f"P{i}", "modify", later, 30 + i, name=f"Changed {i}")
        pages = list(connector.read("people", None, mark, page_size=2))
        assert [len(p.records) for p in pages if p.records] == [2, 2, 2]
        assert all(p.watermark for p in pages)  # every page: a place to resume from
        # the run died after the first page was recorded: the next read brings the other four, once
        records, _, _ = read_all(connector, "people", pages[0].watermark)
        assert sorted(by_anchor(records)) == ["P2", "P3", "P4", "P5"]


WATERMARK = {"people": {"table": "people", "key": "pid", "delta": {"watermark": "updated_at", "overlap": "10m"},
                        "soft_delete": {"column": "gone", "value": 1, "live": 0}}}


def test_a_watermark_column_gives_what_changed_and_skips_what_was_read(db: Database):
    people, changes = people_tables(db)
    seed(db, people, changes)  # updated_at 9:00 .. 9:05, all inside the 10-minute overlap
    with db.connector(WATERMARK) as connector:
        records, mark, _ = read_all(connector, "people")
        assert len(records) == 6
        assert read_all(connector, "people", mark)[0] == []  # the overlap re-reads them: recognised, skipped
        change(db, people, changes, "P1", "modify", T0 + dt.timedelta(minutes=30), 7, name="Moved on")
        change(db, people, changes, "P7", "add", T0 + dt.timedelta(minutes=31), 1, name="Hired")
        db.execute(people.update().where(people.c.pid == "P3").values(gone=1, updated_at=T0 + dt.timedelta(minutes=32)))
        records, mark, _ = read_all(connector, "people", mark)
        found = by_anchor(records)
        assert sorted(found) == ["P1", "P3", "P7"]
        assert found["P1"].attributes["name"] == "Moved on" and not found["P1"].deleted
        assert found["P3"].deleted  # soft-deleted rows read as deletions
        # committed late: a row stamped 9:25, inside the overlap behind 9:32, after the read above
        change(db, people, changes, "P4", "modify", T0 + dt.timedelta(minutes=25), 8, name="Late")
        records, mark, _ = read_all(connector, "people", mark)
        assert [(r.anchor, r.attributes["name"]) for r in records] == [("P4", "Late")]
        assert read_all(connector, "people", mark)[0] == []
        # a full read leaves soft-deleted rows out
        assert sorted(by_anchor(read_all(connector, "people")[0])) == ["P0", "P1", "P2", "P4", "P5", "P7"]


def test_a_numeric_watermark_pages_through_equal_values(db: Database):
    """Many rows with one version value, read two at a time: none lost, none twice."""
    people, changes = people_tables(db)
    seed(db, people, changes, n=3)
    objects = {"people": {"table": "people", "key": "pid", "delta": {"watermark": "version"}}}
    with db.connector(objects) as connector:
        _, mark, _ = read_all(connector, "people")
        db.execute(people.insert().values([{"pid": f"Q{i}", "name": "bulk", "version": 100} for i in range(5)]))
        pages = list(connector.read("people", None, mark, page_size=2))
        assert sorted(r.anchor for p in pages for r in p.records) == [f"Q{i}" for i in range(5)]
        first = {r.anchor for r in pages[0].records}
        assert first  # the run died after its first page was recorded: the rest comes next time, once
        resumed, mark, _ = read_all(connector, "people", pages[0].watermark)
        assert sorted(by_anchor(resumed)) == sorted({f"Q{i}" for i in range(5)} - first)
        assert read_all(connector, "people", mark)[0] == []


def test_text_timestamps_shift_in_their_own_format(db: Database):
    """hr.db keeps updated_at as ISO 8601 text ('2026-01-01T08:00:05Z'): the overlap is subtracted
    as time and written back the same way, so the text comparison still orders it right."""
    md = sa.MetaData()
    rows = sa.Table("rows", md, sa.Column("id", sa.String(8), primary_key=True), sa.Column("stamp", sa.String(32)))
    md.create_all(db.engine)
    db.execute(rows.insert().values([{"id": "a", "stamp": "2026-01-01T08:00:00Z"},
                                     {"id": "b", "stamp": "2026-01-01T08:59:59Z"}]))
    objects = {"rows": {"table": "rows", "key": "id", "delta": {"watermark": "stamp", "overlap": "1h"}}}
    with db.connector(objects) as connector:
        _, mark, _ = read_all(connector, "rows")
        db.execute(rows.insert().values(id="c", stamp="2026-01-01T08:30:00Z"))  # late, inside the hour
        db.execute(rows.insert().values(id="d", stamp="2026-01-01T07:30:00Z"))  # beyond the overlap: not seen
        assert [r.anchor for r in read_all(connector, "rows", mark)[0]] == ["c"]
