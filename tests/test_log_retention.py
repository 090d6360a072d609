"""Provisioning log retention: entries older than safety.log_retention days (default 30) are pruned
from the state store at the end of every run; other pipelines' entries and --log-file are kept."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path

from conftest import QUICKSTART

from runner import retries


def plant(state: Path, pipeline: str, days_ago: float, anchor: str) -> None:
    when = retries.stamp(dt.datetime.now(dt.UTC) - dt.timedelta(days=days_ago))
    entry = {"time": when, "run_id": "old-run", "pipeline": pipeline, "object_type": "user", "anchor": anchor,
             "action": "update", "result": "ok"}
    with sqlite3.connect(state) as con:
        con.execute("INSERT INTO provisioning_log (run_id, time, pipeline, object_type, anchor, action, result, entry) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    ("old-run", when, pipeline, "user", anchor, "update", "ok", json.dumps(entry)))


def anchors(state: Path, run_id: str = "old-run") -> set[tuple[str, str]]:
    with sqlite3.connect(state) as con:
        return set(con.execute("SELECT pipeline, anchor FROM provisioning_log WHERE run_id = ?", (run_id,)))


def test_old_log_entries_are_pruned_at_the_end_of_a_run(quickstart_env, provision, tmp_path: Path):
    quickstart_env(30, 3)
    log_file = tmp_path / "log.jsonl"
    first = provision("run", QUICKSTART, "--output", "json", "--log-file", log_file)
    assert first.code == 0
    state = tmp_path / "app.db.state"
    for days, anchor in ((400, "A-400"), (31, "A-31"), (29, "A-29"), (1, "A-1")):
        plant(state, "quickstart", days, anchor)
    plant(state, "another-pipeline", 400, "B-400")  # a shared store: other pipelines keep theirs

    plan = provision("plan", QUICKSTART)  # a plan writes nothing, and prunes nothing
    assert plan.code == 0 and len(anchors(state)) == 5

    again = provision("run", QUICKSTART, "--log-file", log_file)
    assert again.code == 0, again.err
    assert anchors(state) == {("quickstart", "A-29"), ("quickstart", "A-1"), ("another-pipeline", "B-400")}
    assert anchors(state, first.json()["run_id"]), "the first run's entries are recent: kept"
    assert len(log_file.read_text().splitlines()) >= 30, "the --log-file is the user's: never pruned"


def test_the_retention_is_set_in_the_manifest(quickstart_copy: Path, provision, tmp_path: Path):
    from runner import sampledata

    sampledata.make(tmp_path / "data", 20, 2, 3)
    text = quickstart_copy.read_text()
    quickstart_copy.write_text(text.replace("version: 1\n", "version: 1\nsafety: {log_retention: 7}\n", 1))
    assert provision("run", quickstart_copy).code == 0
    state = tmp_path / "app.db.state"
    for days, anchor in ((8, "A-8"), (6, "A-6")):
        plant(state, "quickstart", days, anchor)
    assert provision("run", quickstart_copy).code == 0
    assert anchors(state) == {("quickstart", "A-6")}

    quickstart_copy.write_text(text.replace("version: 1\n", "version: 1\nsafety: {log_retention: 0}\n", 1))
    invalid = provision("run", quickstart_copy)
    assert invalid.code == 2 and "safety.log_retention" in invalid.err


def test_pruning_is_a_range_delete_on_the_time_index(quickstart_env, provision, tmp_path: Path):
    """A log of millions of entries is pruned without reading it whole: the statement a run sends
    is answered from the (pipeline, time) index."""
    import sqlalchemy as sa

    quickstart_env(5, 1)
    sent: list[tuple[str, tuple]] = []

    def seen(_conn, _cursor, statement, parameters, _context, _many):
        if statement.lstrip().upper().startswith("DELETE FROM PROVISIONING_LOG"):
            sent.append((statement, tuple(parameters)))

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", seen)
    try:
        assert provision("run", QUICKSTART).code == 0
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", seen)
    (statement, parameters), = sent
    with sqlite3.connect(tmp_path / "app.db.state") as con:
        plan = " ".join(row[-1] for row in con.execute("EXPLAIN QUERY PLAN " + statement, parameters))
    assert "USING INDEX provisioning_log_time (pipeline=? AND time<?)" in plan
