"""Retries across runs: a failing export backs off (next run, 6 h, 12 h, 24 h, then daily) instead of
being sent on every run; --retry-now sends it at once; a source change retries it at once; a
permanent error is held until the source changes. The clock is runner.retries.now."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import QUICKSTART, REPO, group, person, read_app, write_hr

from runner import retries
from runner.state import tables as t
from runner.state.records import Confirmations, Failed

# the application refuses one user name, with an error of its own (a policy trigger)
REFUSE = """CREATE TRIGGER refuse_bo BEFORE INSERT ON users WHEN NEW.user_name = 'bo.park'
BEGIN SELECT RAISE(ABORT, 'rejected by the app''s naming policy'); END;"""


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime.now(dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(retries, "now", c)
    return c


@pytest.fixture
def hr(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Three people in one group; the target database exists with the refusing trigger."""
    data = tmp_path / "data"
    monkeypatch.setenv("PROVISION_DATA", str(data))
    monkeypatch.setenv("PROVISION_TARGET", str(tmp_path / "app.db"))
    people = [person("E1", "Ann", "Lee"), person("E2", "Bo", "Park"), person("E3", "Cy", "Oak")]
    groups = [group("G1", "All", ["E1", "E2", "E3"])]
    write_hr(data, people, groups)
    with sqlite3.connect(tmp_path / "app.db") as con:
        con.executescript((REPO / "manifests" / "sql" / "quickstart-target.sql").read_text() + REFUSE)

    def change(anchor: str, **values: str) -> None:
        next(p for p in people if p["employee_id"] == anchor).update(values)
        write_hr(data, people, groups)

    return change


class Runs:
    """provision run, each with its own log file: did this run send E2 to the target?"""

    def __init__(self, provision, tmp_path: Path):
        self.provision, self.tmp, self.n = provision, tmp_path, 0

    def run(self, *extra: str):
        self.n += 1
        self.log = self.tmp / f"run{self.n}.jsonl"
        result = self.provision("run", QUICKSTART, "--output", "json", "--log-file", self.log, *extra)
        self.users = result.json()["object_types"]["user"]
        return result

    def sent(self, anchor: str = "E2") -> bool:
        entries = [json.loads(line) for line in self.log.read_text().splitlines()] if self.log.exists() else []
        return any(e["anchor"] == anchor and e["object_type"] == "user" and e["action"] == "add" for e in entries)


def test_a_failing_export_backs_off_across_runs_and_retry_now_sends_it(hr, provision, tmp_path: Path, clock: Clock):
    runs = Runs(provision, tmp_path)
    first = runs.run()
    assert first.code == 1 and runs.users["failed"] == 1 and runs.users["added"] == 2
    assert runs.sent() and "naming policy" in first.err + runs.log.read_text()

    clock.advance(minutes=40)  # cron, 40 minutes later: a first failure is tried again by the next run
    assert runs.run().code == 1 and runs.sent() and runs.users["failed"] == 1
    failed_at = clock.now

    # then it waits 6 hours: runs meanwhile leave it alone, and say so
    for _ in range(3):
        clock.advance(minutes=40)
        result = runs.run()
        assert not runs.sent()
        assert result.code == 1, "the object is still not in the target"
        assert runs.users["waiting"] == 1 and runs.users["failed"] == 0 and runs.users["unchanged"] == 2
        assert "1 exports that failed in earlier runs wait for their next attempt" in result.err
    plan = provision("plan", QUICKSTART, "--output", "json").json()
    assert plan["object_types"]["user"]["waiting"] == 1 and plan["object_types"]["user"]["added"] == 0
    (item,) = [c for c in plan["changes"] if c["anchor"] == "E2"]
    assert f"next attempt at {retries.stamp(failed_at + dt.timedelta(hours=6))}" in item["error"]
    assert "naming policy" in item["error"]
    text = provision("plan", QUICKSTART).out
    assert "+ user E2: add" in text and "waiting: next attempt at" in text

    # 6 h, 12 h, 24 h, then daily: never sent before its time, always sent once it has come
    for hours in (6, 12, 24, 24, 24):
        clock.now = failed_at + dt.timedelta(hours=hours) - dt.timedelta(minutes=1)
        runs.run()
        assert not runs.sent(), f"sent before the {hours} h back-off ran out"
        clock.advance(minutes=2)
        runs.run()
        assert runs.sent(), f"not sent once the {hours} h back-off ran out"
        assert runs.users["failed"] == 1 and "waiting" not in runs.users
        failed_at = clock.now

    # the app's policy is fixed; --retry-now does not wait for tomorrow
    with sqlite3.connect(tmp_path / "app.db") as con:
        con.execute("DROP TRIGGER refuse_bo")
    clock.advance(hours=1)
    fixed = runs.run("--retry-now")
    assert fixed.code == 0, fixed.err
    assert runs.sent() and runs.users["added"] == 1 and "waiting" not in runs.users
    assert read_app(tmp_path / "app.db")["groups"][0]["members"] == ["ann.lee", "bo.park", "cy.oak"]


def test_a_source_change_sends_a_waiting_export_at_once_and_restarts_the_back_off(hr, provision, tmp_path: Path,
                                                                                  clock: Clock):
    runs = Runs(provision, tmp_path)
    runs.run()
    clock.advance(minutes=40)
    runs.run()
    clock.advance(minutes=40)
    runs.run()
    assert not runs.sent() and runs.users["waiting"] == 1  # backing off for 6 hours

    hr("E2", title="Staff Engineer")  # HR changes the record: compute writes a new export
    runs.run()
    assert runs.sent() and runs.users["failed"] == 1, "a changed object is sent at once"
    clock.advance(minutes=40)
    runs.run()
    assert runs.sent(), "its back-off started again: the first failure is retried by the next run"
    clock.advance(minutes=40)
    runs.run()
    assert not runs.sent() and runs.users["waiting"] == 1

    hr("E2", email="bo.parker@example.org")  # the fix that matters: a name the app takes
    ok = runs.run()
    assert ok.code == 0, ok.err
    assert runs.users["added"] == 1 and "bo.parker" in read_app(tmp_path / "app.db")["users"]


def test_a_permanent_error_is_held_until_the_source_changes(hr, provision, tmp_path: Path, clock: Clock,
                                                            monkeypatch: pytest.MonkeyPatch):
    """Fault injection: the target answers PermanentError for E2 (a value it will never take)."""
    from runner.connectors.base import PermanentError, Result
    from runner.connectors.sql import SqlConnector

    with sqlite3.connect(tmp_path / "app.db") as con:
        con.execute("DROP TRIGGER refuse_bo")
    real_apply = SqlConnector.apply

    def refusing(self, operations):
        rest = [op for op in operations if op.source_anchor != "E2"]
        for op in operations:
            if op.source_anchor == "E2":
                yield Result.failed(op, PermanentError("department code out of range"))
        if rest:
            yield from real_apply(self, rest)

    monkeypatch.setattr(SqlConnector, "apply", refusing)
    runs = Runs(provision, tmp_path)
    assert runs.run().code == 1 and runs.sent() and runs.users["failed"] == 1

    for days in (1, 30):  # not retried on any schedule
        clock.advance(days=days)
        held = runs.run()
        assert not runs.sent()
        assert held.code == 1 and runs.users["blocked"] == 1 and runs.users["failed"] == 0
        assert "held until their source objects change" in held.err
    plan = provision("plan", QUICKSTART, "--output", "json").json()
    assert plan["object_types"]["user"]["blocked"] == 1
    assert "blocked until the source object changes" in next(c for c in plan["changes"] if c["anchor"] == "E2")["error"]

    runs.run("--retry-now")  # a person asks for it: sent, refused again
    assert runs.sent() and runs.users["failed"] == 1
    runs.run()
    assert not runs.sent() and runs.users["blocked"] == 1

    hr("E2", department="Sales")  # the source changes: sent at once
    runs.run()
    assert runs.sent() and runs.users["failed"] == 1
    monkeypatch.setattr(SqlConnector, "apply", real_apply)  # the target would take it now...
    runs.run()
    assert not runs.sent() and runs.users["blocked"] == 1, "...but nothing is sent until the source changes"
    hr("E2", department="Engineering")
    assert runs.run().code == 0 and runs.users["added"] == 1
    assert "bo.park" in read_app(tmp_path / "app.db")["users"]


# ---- a store written by provision before retries across runs ---------------------------------

V2_COLUMNS = {("pending_exports", c) for c in ("revision", "sent_run", "partition", "next_attempt", "held",
                                                "failed_runs")} | {("target_objects", "partition"),
                                                                   ("target_objects", "version"),
                                                                   ("links", "target_name"), ("links", "name_key")}
V2_TABLES = {"target_values", "quarantine"}
V2_INDEXES = {"pending_in_flight", "links_name", "provisioning_log_time"}
# schema version 3 (the state store at a million objects) added these and dropped import_seen and pending_order
V2_COLUMNS |= {("source_objects", "seen")}
V2_TABLES |= {"reservations"}
V2_INDEXES |= {"pending_action", "links_live_anchor", "target_index_anchor"}


def _version_1_store(url: str) -> None:
    """The tables as schema version 1 had them, holding an export that failed before the upgrade."""
    v1 = sa.MetaData()
    for table in t.metadata.sorted_tables:
        if table.name in V2_TABLES:
            continue
        columns = [c._copy() for c in table.columns if (table.name, c.name) not in V2_COLUMNS]
        indexes = [sa.Index(i.name, *(c.name for c in i.columns)) for i in table.indexes
                   if i.name not in V2_INDEXES and not str(i.name).startswith("ix_")]
        uniques = [sa.UniqueConstraint(*(c.name for c in u.columns), name=u.name) for u in table.constraints
                   if isinstance(u, sa.UniqueConstraint)]
        if table.name == "pending_exports":
            indexes.append(sa.Index("pending_order", "type_id", "depth", "source_anchor"))
        sa.Table(table.name, v1, *columns, *indexes, *uniques)
    sa.Table("import_seen", v1, sa.Column("type_id", sa.Integer, primary_key=True),
             sa.Column("anchor", sa.String(255), primary_key=True))
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        v1.create_all(conn)
        conn.execute(v1.tables["provision_meta"].insert().values(key="schema_version", value="1"))
        conn.execute(v1.tables["pending_exports"].insert().values(
            type_id=1, source_anchor="E1", action="add", depth=0, payload="{}", attempts=2,
            last_error="ObjectError: timeout"))
    engine.dispose()


def _upgraded_store_keeps_retrying(url: str, base: Path, clock: Clock) -> None:
    from runner.state.store import StateStore

    store = StateStore(url, base)
    try:
        version = store.conn.execute(sa.select(t.meta.c.value).where(t.meta.c.key == "schema_version")).scalar()
        assert version == str(t.SCHEMA_VERSION)
        # the export that failed before the upgrade is due at once, and backs off from now on
        (row,) = store.exports.pending_page(1, "run-1", ["add"], None, 10, due=retries.due())
        assert (row.source_anchor, row.attempts, row.next_attempt, row.held) == ("E1", 2, "", False)
        for run in ("run-1", "run-2"):
            store.exports.record(1, run, Confirmations(failures=[Failed("E1", "ObjectError: timeout")]))
        waiting = store.exports.waiting(1, "run-3", retries.due())
        assert waiting.waiting == 1 and waiting.first == retries.stamp(clock.now + dt.timedelta(hours=6))
        assert store.exports.pending_page(1, "run-3", ["add"], None, 10, due=retries.due()) == []
        # quarantine and log retention have their table and index
        assert store.runs.note_run("p", "run-3", "every object type's pass stopped", 1) is not None
        assert store.runs.quarantine("p") is not None
        assert store.log.prune_log("p", retries.due()) == 0
        store.commit()
    finally:
        store.close()


def test_a_version_1_store_is_upgraded_with_retry_state(tmp_path: Path, clock: Clock):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    _version_1_store(url)
    _upgraded_store_keeps_retrying(url, tmp_path, clock)


def test_a_version_1_server_store_is_upgraded_with_retry_state(server_database: str, tmp_path: Path, clock: Clock):
    _version_1_store(server_database)
    _upgraded_store_keeps_retrying(server_database, tmp_path, clock)
