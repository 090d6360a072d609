"""Errors a person can act on: an unreachable server, wrong credentials, a missing table or
column (one message naming the connector and object; the pass stops as a connection failure),
and a row the database refuses (that object fails alone)."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa

from runner import sampledata
from runner.connectors.base import ConnectionFailed, ConnectorContext, ObjectError
from runner.connectors.sql import SqlConnector

from .conftest import SERVERS, Database, apply, op

REPO = Path(__file__).resolve().parents[2]


def connector(url: str, tmp_path: Path, objects: dict | None = None) -> SqlConnector:
    return SqlConnector({"type": "sql", "url": url, "objects": objects or {"people": {"table": "people", "key": "id"}},
                         "connect_timeout": 3}, ConnectorContext("hr", tmp_path))


@pytest.mark.parametrize("dialect", ["postgresql", "mariadb"])
def test_an_unreachable_server_and_wrong_credentials_say_what_to_check(dialect: str, tmp_path: Path):
    closed = sa.make_url(SERVERS[dialect]).set(port=1, database="hr")
    with pytest.raises(ConnectionFailed, match="cannot connect to .*check that the server runs"):
        connector(closed.render_as_string(hide_password=False), tmp_path).open()
    wrong = sa.make_url(SERVERS[dialect]).set(username="provision_nobody", password="s3cret-Pw-77", database="hr")
    with pytest.raises(ConnectionFailed) as caught:
        connector(wrong.render_as_string(hide_password=False), tmp_path).open()
    assert "check the user name and password" in str(caught.value)
    assert "s3cret-Pw-77" not in str(caught.value)


def test_missing_tables_and_columns_name_the_object(db: Database):
    md = sa.MetaData()
    sa.Table("people", md, sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", sa.String(20)))
    md.create_all(db.engine)
    cases = [
        ({"people": {"table": "peple", "key": "id"}}, r"object 'people': table 'peple' does not exist"),
        ({"people": {"table": "people", "key": "pid"}}, r"object 'people': people has no column 'pid'; it has: id, name"),
        ({"people": {"table": "people", "key": "id", "delta": {"watermark": "updated"}}},
         r"object 'people': people has no column 'updated'"),
        ({"people": {"table": "people", "key": "id", "delta": {"changes": {"table": "changes"}}}},
         r"object 'people', delta.changes: table 'changes' does not exist"),
        ({"people": {"query": "SELECT id, nmae FROM people", "key": "id"}}, r"object 'people': its query fails"),
    ]
    for objects, message in cases:
        with pytest.raises(ConnectionFailed, match=message):
            db.connector(objects).open()


def test_a_broken_source_stops_the_run_with_one_message(provision, tmp_path: Path, monkeypatch):
    data = tmp_path / "data"
    sampledata.make(data, 20, 2, 1)
    with sqlite3.connect(data / "hr.db") as conn:
        conn.execute("DROP TABLE changes")
    monkeypatch.setenv("HR_DB_URL", f"sqlite:///{data / 'hr.db'}")
    monkeypatch.setenv("TARGET_DB_URL", f"sqlite:///{tmp_path / 'target.db'}")
    monkeypatch.setenv("PROVISION_STATE", f"sqlite:///{tmp_path / 'state.db'}")
    result = provision("run", REPO / "manifests" / "hr-sql-to-sql.yaml", "--output", "json")
    assert result.code == 1, result.err
    assert "Traceback" not in result.err
    errors = {name: c["error"] for name, c in result.json()["object_types"].items()}
    assert errors["user"].startswith(f"connector 'hr': sqlite:///{data / 'hr.db'}: object 'employees', "
                                     "delta.changes: table 'changes' does not exist"), errors
    shutil.rmtree(data)
    monkeypatch.setenv("HR_DB_URL", f"{SERVERS['postgresql']}/nope".replace(":5432", ":1"))
    result = provision("run", REPO / "manifests" / "hr-sql-to-sql.yaml", "--output", "json")
    assert result.code == 5  # a server that cannot be reached: its own exit code, apart from bad data (1)
    assert "connector 'hr': cannot connect to" in result.json()["object_types"]["user"]["error"]


def test_a_refused_row_fails_alone(db: Database):
    md = sa.MetaData()
    sa.Table("people", md, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
             sa.Column("mail", sa.String(40), nullable=False, unique=True))
    md.create_all(db.engine)
    with db.connector({"people": {"table": "people", "key": "id"}}) as conn:
        results = apply(conn, op("add", "people", attributes={"id": 1, "mail": "a@x"}),
                        op("add", "people", attributes={"id": 2, "mail": None}),
                        op("add", "people", attributes={"id": 3, "mail": "a@x"}),
                        op("add", "people", attributes={"id": 4, "mail": "b@x"}),
                        op("update", "people", anchor="4", attributes={"mail": "a@x"}))
        assert [r.ok for r in results] == [True, False, False, True, False]
        assert all(isinstance(r.error, ObjectError) for r in results if not r.ok)
        assert sorted(r.anchor for r in conn.read("people").__next__().records) == ["1", "4"]
