"""A fanned-out run whose source is a SQL database cuts each full read into ranges of keys, one
import slice each (real RabbitMQ, PostgreSQL and worker processes): the run ends as a
single-process ``provision run`` of the same data, object by object; rows deleted from the source
are deleted, exactly those, and only once every range was read: a run in which one range could
not be read deletes nothing; a worker killed in the middle of a range loses nothing."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from conftest import read_app

from distributed.processes import wait_for
from distributed.reference import counts
from distributed.test_fanout import (
    assert_same_state,
    fanned_out_state,
    journal_slices,
    reference_state,
    submit_fanned_out,
)

CSV_SOURCE = '''  hr:
    type: csv
    path: "${env:PROVISION_DATA:-data}"
    objects:
      groups: {multi_valued: {members: ";"}}
'''
SQL_SOURCE = '''  hr:
    type: sql
    url: "${env:HR_DB_URL}"
    page_size: 200
    objects:
      people: {table: people, key: employee_id}
      groups:
        table: groups
        key: group_id
        multi_valued: {members: {table: group_members, key: group_id, value: employee_id}}
'''


def read_from_postgresql(cluster: Any, make_database: Any, delta: bool = False) -> sa.Engine:
    """The cluster's sample HR data (2,000 people, its hr.db) copied into a fresh PostgreSQL
    database, and the cluster's manifest switched to read it there: the quickstart's mapping on a
    sql source (``delta``: the people by their updated_at). Returns an engine on that database."""
    url = make_database()
    engine = sa.create_engine(url)
    hr = sqlite3.connect(Path(cluster.env["PROVISION_DATA"]) / "hr.db")
    with engine.begin() as conn:
        for table, key in (("employees", "employee_id"), ("groups", "group_id"), ("group_members", None)):
            columns = [c[1] for c in hr.execute(f"PRAGMA table_info({table})")]
            name = "people" if table == "employees" else table
            keys = key or "group_id, employee_id"
            conn.exec_driver_sql(f"CREATE TABLE {name} ({', '.join(f'{c} TEXT' for c in columns)}, "
                                 f"PRIMARY KEY ({keys}))")
            rows = [dict(zip(columns, row, strict=True)) for row in hr.execute(f"SELECT * FROM {table}")]
            conn.execute(sa.text(f"INSERT INTO {name} VALUES ({', '.join(':' + c for c in columns)})"), rows)
    hr.close()
    manifest = cluster.manifest.with_name("hr-postgresql.yaml")
    text = cluster.manifest.read_text(encoding="utf-8")
    assert CSV_SOURCE in text
    source = SQL_SOURCE.replace("key: employee_id}", "key: employee_id, delta: {watermark: updated_at}}") \
        if delta else SQL_SOURCE
    manifest.write_text(text.replace(CSV_SOURCE, source), encoding="utf-8")
    cluster.manifest = manifest
    cluster.env["HR_DB_URL"] = url
    return engine


def single_process_run(cluster: Any, tmp_path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """``provision run`` of the same manifest and source, with a SQLite state and target of its
    own: its summary and the target it leaves."""
    env = {**cluster.env, "PROVISION_TARGET": str(tmp_path / "reference.db"),
           "PROVISION_STATE_URL": f"sqlite:///{tmp_path / 'reference.db.state'}"}
    done = subprocess.run([sys.executable, "-m", "runner", "run", str(cluster.manifest), "--output", "json"],
                          env=env, cwd=cluster.folder, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), read_app(tmp_path / "reference.db")


def same_as_single_process(cluster: Any, tmp_path: Path, summary: dict[str, Any]) -> dict[str, Any]:
    reference_summary, reference_target = single_process_run(cluster, tmp_path)
    assert summary["status"] == "ok"
    assert counts(summary) == counts(reference_summary)
    assert read_app(Path(cluster.env["PROVISION_TARGET"])) == reference_target
    assert_same_state(fanned_out_state(cluster), reference_state(tmp_path))
    return counts(summary)


def range_slices(cluster: Any, object_type: str) -> list[dict[str, Any]]:
    return [s for s in journal_slices(cluster) if s["label"].startswith(f"{object_type}: import, range ")]


def deleted_in_state(cluster: Any) -> int:
    engine = sa.create_engine(cluster.env["PROVISION_STATE_URL"])
    with engine.connect() as conn:
        found = conn.execute(sa.text("SELECT count(*) FROM source_objects WHERE deleted")).scalar()
    engine.dispose()
    return found


def test_a_sql_source_read_in_ranges_on_3_workers_ends_as_a_single_process_run(cluster, databases, tmp_path):
    source = read_from_postgresql(cluster, databases)
    flag = tmp_path / "break-the-last-range"
    for name in ("w1", "w2", "w3"):
        cluster.start_worker(name=name, fault=["brokenrange.py", str(flag)])

    same_as_single_process(cluster, tmp_path, submit_fanned_out(cluster))
    target = Path(cluster.env["PROVISION_TARGET"])
    before = read_app(target)
    ranges = range_slices(cluster, "user")
    # the order status lists them in is the order workers took them: any
    assert sorted(s["label"].split(" (phase")[0] for s in ranges) == [f"user: import, range {i} of 4"
                                                                    for i in (1, 2, 3, 4)]
    assert all(s["state"] == "ok" for s in ranges) and len({s["worker"] for s in journal_slices(cluster)}) >= 2

    # ten people with accounts leave, from every part of the key range (group_members still names
    # them: the groups drop them once their accounts are gone)
    with source.begin() as conn:
        gone = list(conn.execute(sa.text("SELECT employee_id FROM people WHERE status = 'active' "
                                         "ORDER BY employee_id")).scalars())[::150][:10]
        conn.execute(sa.text("DELETE FROM people WHERE employee_id IN :gone").bindparams(
            sa.bindparam("gone", expanding=True)), {"gone": gone})

    flag.touch()  # the users' last range cannot be read (50 groups are read whole): nothing is deleted
    failed = cluster.submit("--fan-out", "--wait", "--output", "json", timeout=300)
    assert failed.returncode == 5, failed.stderr + failed.stdout
    user = counts(json.loads(failed.stdout))["user"]
    assert "connection to the HR database was lost" in user["error"] and user["deleted"] == 0, user
    assert deleted_in_state(cluster) == 0 and read_app(target) == before

    flag.unlink()
    found = same_as_single_process(cluster, tmp_path, submit_fanned_out(cluster))
    assert found["user"]["deleted"] == len(gone) == 10, found["user"]
    assert len(range_slices(cluster, "user")) == 4


def test_a_worker_killed_in_the_middle_of_a_range_loses_nothing(cluster, databases, tmp_path):
    """The doomed worker, alone on the slices' queue, dies after storing the first page of a range
    (pages of 200 rows, ranges of 500); the rescuer reads that range again over what it stored.
    The people are read by delta: the first, full read is cut in ranges, and the watermark the cut
    took is where the next run's delta read starts."""
    read_from_postgresql(cluster, databases, delta=True)
    cluster.start_worker(name="coordinator", queues="runs")
    doomed, doomed_log = cluster.start_worker(name="doomed", queues="slices", kill_slice=("import", 2))
    waiting = cluster.submit_async("--fan-out", "--wait", "--output", "json")
    wait_for(lambda: doomed.poll() is not None, 180, lambda: doomed_log.read_text()[-3000:], waiting)
    assert "killing the worker at import 2" in doomed_log.read_text()

    _, rescuer_log = cluster.start_worker(name="rescuer", queues="slices")
    out, err = waiting.communicate(timeout=300)
    assert waiting.returncode == 0, err + out
    assert "redelivered to rescuer" in rescuer_log.read_text()
    same_as_single_process(cluster, tmp_path, json.loads(out))
    assert any(s["attempts"] == 2 for s in range_slices(cluster, "user")), range_slices(cluster, "user")

    again = submit_fanned_out(cluster)  # converged: the next run has nothing to do, nor to read
    for name, c in counts(again).items():
        assert c["added"] == c["updated"] == c["deleted"] == c["failed"] == 0, (name, c)
    assert counts(again)["user"]["imported"] == 0 and range_slices(cluster, "user") == []
