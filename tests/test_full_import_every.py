"""``source.full_import_every``: a delta source is read whole now and then, so a deletion its
change log never recorded (a file removed by hand, a row deleted behind the trigger's back) still
reaches the target. The source is the jsondir plugin, whose delta reads follow its journal."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import sqlalchemy as sa
from provision_jsondir.connector import JsonDirConnector

from runner.connectors.base import ConnectorContext, Operation

MANIFEST = """
version: 1
name: every
state: "sqlite:///{state}"
connectors:
  hr: {{type: jsondir, root: hr, objects: [people]}}
  app:
    type: sql
    url: "sqlite:///{app}"
    create: true
    init_sql: app.sql
    objects:
      users: {{table: users, key: user_name}}
object_types:
  - name: user
    source: {{connector: hr, object: people, anchor: employee_id, full_import_every: {every}}}
    target: {{connector: app, object: users}}
    when_deleted: delete
    mapping:
      - {{target: user_name, source: employee_id}}
      - {{target: display_name, source: display_name}}
"""


def _hr(tmp_path: Path, count: int) -> JsonDirConnector:
    hr = JsonDirConnector({"type": "jsondir", "root": "hr", "objects": ["people"]}, ConnectorContext("hr", tmp_path))
    hr.open()
    ops = [Operation(i, "add", "people", name=f"cn=e{i}", attributes={"employee_id": f"e{i}", "display_name": f"E {i}"})
           for i in range(count)]
    assert all(r.ok for r in hr.apply(ops))
    hr.close()
    return hr


def _setup(tmp_path: Path, every: str) -> Path:
    _hr(tmp_path, 4)
    (tmp_path / "app.sql").write_text("CREATE TABLE IF NOT EXISTS users (user_name TEXT PRIMARY KEY, display_name TEXT);")
    manifest = tmp_path / "m.yaml"
    manifest.write_text(MANIFEST.format(state=tmp_path / "state.db", app=tmp_path / "app.db", every=every))
    return manifest


def _users(tmp_path: Path) -> set[str]:
    with sqlite3.connect(tmp_path / "app.db") as db:
        return {r[0] for r in db.execute("SELECT user_name FROM users")}


def _remove_behind_the_journal(tmp_path: Path, name: str) -> None:
    """Delete a source object's file by hand: the journal, and so a delta read, never hears of it."""
    files = [p for p in (tmp_path / "hr").rglob("*.json") if json.loads(p.read_text()).get("attributes", {})
             .get("employee_id") == name]
    assert len(files) == 1, files
    files[0].unlink()


def test_every_third_run_reads_whole_and_finds_what_the_journal_missed(tmp_path: Path, provision) -> None:
    manifest = _setup(tmp_path, "3")
    assert provision("run", manifest).code == 0                     # run 1: first run, full
    assert _users(tmp_path) == {"e0", "e1", "e2", "e3"}
    _remove_behind_the_journal(tmp_path, "e2")
    for _ in range(2):                                               # runs 2 and 3: deltas miss it
        result = provision("run", manifest)
        assert result.code == 0, result.out + result.err
        assert "e2" in _users(tmp_path)
    result = provision("run", manifest, "--output", "json")          # run 4: full, finds it gone
    assert result.code == 0, result.out + result.err
    assert _users(tmp_path) == {"e0", "e1", "e3"}
    assert provision("run", manifest).code == 0                      # run 5: a delta again
    assert _users(tmp_path) == {"e0", "e1", "e3"}


def test_a_duration_forces_a_full_read_once_the_last_one_is_older(tmp_path: Path, provision) -> None:
    manifest = _setup(tmp_path, "7d")
    assert provision("run", manifest).code == 0
    _remove_behind_the_journal(tmp_path, "e1")
    assert provision("run", manifest).code == 0
    assert "e1" in _users(tmp_path)                                  # a day later: still a delta
    state = sa.create_engine(f"sqlite:///{tmp_path / 'state.db'}")
    with state.begin() as conn:                                      # the last full import, 8 days ago
        conn.execute(sa.text("UPDATE watermarks SET value = :v WHERE side = 'full'"),
                     {"v": json.dumps({"at": "2026-01-01T00:00:00+00:00", "deltas": 1})})
    result = provision("run", manifest)
    assert result.code == 0, result.out + result.err
    assert _users(tmp_path) == {"e0", "e2", "e3"}


def test_full_import_every_is_rejected_in_a_bad_form(tmp_path: Path, provision) -> None:
    manifest = _setup(tmp_path, "weekly")
    result = provision("validate", manifest)
    assert result.code == 2
    assert "full_import_every" in result.out + result.err


def test_full_import_every_on_a_source_without_deltas_is_pointed_out(tmp_path: Path, provision) -> None:
    manifest = _setup(tmp_path, "3")
    manifest.write_text(manifest.read_text().replace("{type: jsondir, root: hr, objects: [people]}",
                                                     "{type: csv, path: hr}"))
    result = provision("validate", manifest)
    assert result.code == 2
    assert "full_import_every changes nothing" in result.out + result.err
    assert "m.yaml:" in result.out + result.err
