"""Delta reads on SQLite, PostgreSQL and MariaDB: a change table (the trigger method) and a
watermark column, each with its overlap for rows committed late, and a full read that hands back
a watermark the next run can start from. A watermark the source no longer reaches (a change table
reset, recreated or pruned unread; a column whose values went backwards after a restore) asks for
a full read, and `provision run` then reads everything and warns why (issue 18)."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa

from runner import sampledata
from runner.connectors.base import WatermarkExpired

from .conftest import Database, by_anchor, read_all
from .test_examples import CHANGE_TABLE, REPO, target_content

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


# ---- a watermark the source no longer reaches: a full read, with a warning that says why ------


def test_a_change_table_reset_below_the_watermark_asks_for_a_full_read(db: Database):
    """Dropped and made again (its sequence starting at 1): entries 1..3 are new changes, not the
    ones the watermark (10) says were read, so a delta read would skip them."""
    people, changes = people_tables(db)
    seed(db, people, changes)
    with db.connector(CHANGES) as connector:
        _, mark, _ = read_all(connector, "people")
        for i in range(4):
            change(db, people, changes, f"P{i}", "modify", T0, 40 + i)  # sequences 7..10
        _, mark, _ = read_all(connector, "people", mark)
        changes.drop(db.engine)
        changes.create(db.engine)
        with pytest.raises(WatermarkExpired, match="the change table changes is empty, but the last run read it "
                                                   "up to seq 10: it was emptied, recreated"):
            read_all(connector, "people", mark)
        for i in range(3):
            change(db, people, changes, f"P{i}", "modify", T0, 50 + i, name=f"After the reset {i}")
        with pytest.raises(WatermarkExpired, match="the change table changes holds seq values up to 3, below "
                                                   "the stored watermark 10: it was reset, recreated or restored"):
            read_all(connector, "people", mark)
        records, mark, _ = read_all(connector, "people")  # the full read the engine then makes
        assert by_anchor(records)["P2"].attributes["name"] == "After the reset 2"
        assert read_all(connector, "people", mark)[0] == []  # and the deltas after it are normal again


def test_a_change_table_reset_and_filled_past_the_watermark_asks_for_a_full_read(db: Database):
    """Reset, then more changes than the watermark's sequence before the next run: the highest
    sequence is past the watermark again, but the entry at the watermark names another row."""
    people, changes = people_tables(db)
    seed(db, people, changes)  # sequences 1..6, the 6th naming P5
    with db.connector(CHANGES) as connector:
        _, mark, _ = read_all(connector, "people")
        changes.drop(db.engine)
        changes.create(db.engine)
        for i in range(8):
            change(db, people, changes, f"P{i % 3}", "modify", T0, 60 + i)
        with pytest.raises(WatermarkExpired, match=r"in the change table changes, the entry at seq 6 \(the stored "
                                                   "watermark\\) now names 'P2', where the last run read one naming 'P5'"):
            read_all(connector, "people", mark)


def test_a_change_table_pruned_with_its_sequence_carrying_on_stays_a_delta(db: Database):
    """The normal life of a change table: entries already read are pruned, the sequence carries on.
    No changes, then a prune that keeps the newest entry, then new entries above it: each read is
    a delta that returns exactly what changed."""
    people, changes = people_tables(db)
    seed(db, people, changes)
    with db.connector(CHANGES) as connector:
        _, mark, _ = read_all(connector, "people")
        assert read_all(connector, "people", mark)[0] == []  # the last-read entry still there: nothing new
        db.execute(changes.delete().where(changes.c.seq < 6))  # pruned, the newest entry kept
        assert read_all(connector, "people", mark)[0] == []
        change(db, people, changes, "P1", "modify", T0, 70, name="After the prune")
        db.execute(changes.delete().where(changes.c.seq <= 6))  # pruned again: the sequence goes on at 7
        records, mark, _ = read_all(connector, "people", mark)
        assert [(r.anchor, r.attributes["name"]) for r in records] == [("P1", "After the prune")]
        assert read_all(connector, "people", mark)[0] == []


def test_a_watermark_column_that_went_backwards_asks_for_a_full_read(db: Database):
    """The table restored from a copy older than the last read: its newest updated_at (9:05) is
    below the watermark (9:30); rows changed since with stamps below it would be skipped."""
    people, changes = people_tables(db)
    seed(db, people, changes)  # updated_at 9:00 .. 9:05
    with db.connector(WATERMARK) as connector:
        _, mark, _ = read_all(connector, "people")
        change(db, people, changes, "P1", "modify", T0 + dt.timedelta(minutes=30), 7, name="Before the restore")
        _, mark, _ = read_all(connector, "people", mark)
        assert read_all(connector, "people", mark)[0] == []  # no change: a delta, nothing read
        # the restore: P1 as the older copy had it
        db.execute(people.update().where(people.c.pid == "P1").values(name="Person 1", updated_at=T0 + dt.timedelta(minutes=1)))
        with pytest.raises(WatermarkExpired, match="the highest updated_at in the table people is 2026-03-01T09:05:00, "
                                                   "below the stored watermark 2026-03-01T09:30:00: the values went "
                                                   "backwards"):
            read_all(connector, "people", mark)
        db.execute(people.delete())
        with pytest.raises(WatermarkExpired, match="the table people has no updated_at values any more"):
            read_all(connector, "people", mark)


# ---- the operator's scenario, end to end through `provision run` (SQLite, the examples' hr.db) ----


class HrDatabase:
    """The examples' hr.db, changed the way HR's application changes it: a row, and an entry in
    the change table for it."""

    def __init__(self, data: Path):
        self.path = data / "hr.db"
        self.engine = sa.create_engine(f"sqlite:///{self.path}")

    def active(self) -> list[str]:
        with self.engine.connect() as conn:
            return list(conn.execute(sa.text("SELECT employee_id FROM employees WHERE status = 'active' "
                                             "ORDER BY employee_id")).scalars())

    def newest(self) -> dt.datetime:
        with self.engine.connect() as conn:
            top = conn.execute(sa.text("SELECT max(updated_at) FROM employees")).scalar()
        return dt.datetime.strptime(top, "%Y-%m-%dT%H:%M:%SZ")

    def change(self, people: list[str], when: dt.datetime, **values: str) -> None:
        with self.engine.begin() as conn:
            for n, eid in enumerate(people):
                stamp = (when + dt.timedelta(seconds=n)).strftime("%Y-%m-%dT%H:%M:%SZ")
                sets = ", ".join(f"{k} = :{k}" for k in values)
                conn.execute(sa.text(f"UPDATE employees SET {sets}, updated_at = :stamp WHERE employee_id = :eid"),
                             {**values, "stamp": stamp, "eid": eid})
                conn.execute(sa.text("INSERT INTO changes (table_name, anchor, change_type, changed_at) "
                                     "VALUES ('employees', :eid, 'modify', :stamp)"), {"eid": eid, "stamp": stamp})

    def execute(self, *statements: str) -> None:
        with self.engine.begin() as conn:
            for statement in statements:
                conn.execute(sa.text(statement))

    def titles(self) -> dict[str, str]:
        with self.engine.connect() as conn:
            return dict(conn.execute(sa.text("SELECT employee_id, title FROM employees")).all())


@pytest.fixture
def hr_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Sample HR data (40 people, 3 groups) in hr.db, and the examples pointed at it, at a SQLite
    target and a state store in ``tmp_path``; ``run(manifest)`` is `provision run` there."""
    data = tmp_path / "data"
    sampledata.make(data, 40, 3, 1)
    monkeypatch.setenv("HR_DB_URL", f"sqlite:///{data / 'hr.db'}")
    monkeypatch.setenv("TARGET_DB_URL", f"sqlite:///{tmp_path / 'target.db'}")
    monkeypatch.setenv("PROVISION_STATE", f"sqlite:///{tmp_path / 'state.db'}")
    hr = HrDatabase(data)
    yield hr
    hr.engine.dispose()


def run_example(provision, manifest: Path) -> tuple[dict, str]:
    """One `provision run` that must succeed: its counts per type, and what it warned about."""
    result = provision("run", manifest, "--output", "json")
    assert result.code == 0, result.err + result.out
    return result.json()["object_types"], result.err


def accounts(tmp_path: Path) -> dict[str, dict]:
    return {a["employee_id"]: a for a in target_content(f"sqlite:///{tmp_path / 'target.db'}")["accounts"]}


def test_a_reset_change_table_makes_the_next_run_read_everything_and_say_why(provision, hr_example, tmp_path):
    """Issue 18: the change table was reset (emptied, its sequence starting again at 1) after a run
    that read up to sequence 20; then HR changed 17 people, 3 of them terminated. The next run
    sees that the table's newest sequence (17) is below the watermark, says so, reads everything
    and brings every change over. Without that check it imported none of them."""
    hr = hr_example
    first, _ = run_example(provision, CHANGE_TABLE)
    assert first["user"]["imported"] == 40
    people = hr.active()
    hr.change(people[:20], hr.newest(), title="Before the reset")  # sequences 1..20
    delta, warned = run_example(provision, CHANGE_TABLE)
    assert (delta["user"]["imported"], warned) == (20, "")

    hr.execute("DELETE FROM changes", "DELETE FROM sqlite_sequence WHERE name = 'changes'")  # the reset
    changed, terminated = people[5:19], people[19:22]
    hr.change(changed, hr.newest(), title="After the reset")  # sequences 1..14
    hr.change(terminated, hr.newest(), status="terminated")  # 15..17
    counts, warned = run_example(provision, CHANGE_TABLE)
    assert ("provision: user: the change table changes holds seq values up to 17, below the stored watermark 20: "
            "it was reset, recreated or restored from an older copy; reading everything instead") in warned
    assert counts["user"]["imported"] == 40  # the full read
    assert counts["user"]["disabled"] == 3 and counts["user"]["failed"] == 0
    target = accounts(tmp_path)
    assert {eid: target[eid]["title"] for eid in changed} == dict.fromkeys(changed, "After the reset")
    assert [eid for eid in terminated if target[eid]["active"]] == []
    assert {eid for eid, a in target.items() if a["title"] != hr.titles()[eid]} == set()

    # and then it is a delta again: nothing changed, nothing read, no warning ...
    again, warned = run_example(provision, CHANGE_TABLE)
    assert (again["user"]["imported"], again["group"]["imported"], warned) == (0, 0, "")
    # ... also after the usual prune (the newest entry kept), with the sequence carrying on above it
    hr.execute("DELETE FROM changes WHERE seq < 17")
    hr.change(people[:2], hr.newest(), title="After the prune")  # sequences 18, 19
    pruned, warned = run_example(provision, CHANGE_TABLE)
    assert (pruned["user"]["imported"], pruned["user"]["updated"], warned) == (2, 2, "")


def test_a_restored_source_table_makes_the_next_run_read_everything_and_say_why(provision, hr_example, tmp_path):
    """The HR database restored from a copy older than the last run: the changes the watermark
    column carried (stamped an hour on) are gone, and the rows HR changed on the restored copy
    carry stamps below the watermark, beyond its 5-minute overlap. The next run sees the column's
    newest value below the watermark, says so and reads everything: the target matches the
    restored HR data, with the changes made since, and the 3 terminated people disabled."""
    hr, manifest = hr_example, REPO / "manifests" / "hr-sql-watermark.yaml"
    run_example(provision, manifest)
    shutil.copy(hr.path, hr.path.with_name("backup.db"))
    people, before = hr.active(), hr.newest()
    hr.change(people[:10], before + dt.timedelta(hours=1), title="Lost in the restore")
    delta, warned = run_example(provision, manifest)
    assert (delta["user"]["imported"], warned) == (10, "")

    hr.engine.dispose()
    shutil.copy(hr.path.with_name("backup.db"), hr.path)  # the restore
    changed, terminated = people[5:19], people[19:22]
    hr.change(changed, before + dt.timedelta(minutes=10), title="After the restore")
    hr.change(terminated, before + dt.timedelta(minutes=20), status="terminated")
    counts, warned = run_example(provision, manifest)
    newest = (before + dt.timedelta(minutes=20, seconds=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    watermark = (before + dt.timedelta(hours=1, seconds=9)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert (f"provision: user: the highest updated_at in the table employees is {newest}, below the stored "
            f"watermark {watermark}: the values went backwards (the table was restored from an older copy, or "
            "the rows holding the newest values were deleted); reading everything instead") in warned
    assert counts["user"]["imported"] == 40 and counts["user"]["disabled"] == 3
    target = accounts(tmp_path)
    titles = hr.titles()
    assert {eid: a["title"] for eid, a in target.items()} == {eid: titles[eid] for eid in target}  # lost ones too
    assert [eid for eid, a in target.items() if a["title"] == "Lost in the restore"] == []
    assert [eid for eid in terminated if target[eid]["active"]] == []

    again, warned = run_example(provision, manifest)
    assert (again["user"]["imported"], warned) == (0, "")
