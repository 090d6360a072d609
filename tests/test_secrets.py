"""Secrets never reach logs, errors, output or the state store."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from conftest import QUICKSTART, group, person, write_hr

SECRET = "S3cr3t-Initial-Passw0rd!"
TOKEN = "tok-8c1f2e9a77b0"

MANIFEST = """
version: 1
name: secrets
state: "sqlite:///{state}"
log_file: prov.log
connectors:
  hr: {{type: csv, path: "{data}"}}
  app:
    type: sql
    url: "sqlite:///{target}"
    init_sql: target.sql
    create: true
    objects:
      users: {{table: users, key: id, generated_key: true}}
object_types:
  - name: user
    source: {{connector: hr, object: people, anchor: employee_id}}
    target: {{connector: app, object: users, correlate: [user_name]}}
    mapping:
      - {{target: user_name, source: employee_id}}
      - {{target: initial_password, constant: "${{env:INITIAL_PASSWORD}}", sensitive: true, apply: on_create}}
      - {{target: pin, expression: "join('-', [employee_id, '{secret}'])", sensitive: true}}
"""

DDL = """
CREATE TABLE IF NOT EXISTS users (id INTEGER PRIMARY KEY AUTOINCREMENT, user_name TEXT UNIQUE,
                                  initial_password TEXT, pin TEXT);
"""


def dump_sqlite(path: Path) -> str:
    con = sqlite3.connect(path)
    tables = [t for (t,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    text = "\n".join(repr(row) for t in tables for row in con.execute(f"SELECT * FROM {t}"))
    con.close()
    return text


def test_sensitive_values_reach_the_target_and_nowhere_else(provision, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("INITIAL_PASSWORD", SECRET)
    data = write_hr(tmp_path / "data", [person("E1", "Ada", "One"), person("E2", "Ben", "Two")], [])
    (tmp_path / "target.sql").write_text(DDL)
    manifest = tmp_path / "secrets.yaml"
    manifest.write_text(MANIFEST.format(state=tmp_path / "state.db", data=data, target=tmp_path / "app.db",
                                        secret=SECRET))

    outputs = [provision("plan", manifest), provision("plan", manifest, "--output", "json"),
               provision("run", manifest, "--output", "json", "-v"), provision("run", manifest),
               provision("status", manifest), provision("status", manifest, "--output", "json")]
    assert all(r.code == 0 for r in outputs), [r.err for r in outputs]
    plan = json.loads(outputs[1].out)
    assert plan["changes"][0]["changes"]["initial_password"] == {
        "new": "***", "rule": "constant *** (on create only, sensitive)"}
    assert plan["changes"][0]["changes"]["pin"]["rule"].startswith("expression *** ")

    target = sqlite3.connect(tmp_path / "app.db")
    assert target.execute("SELECT initial_password, pin FROM users WHERE user_name = 'E1'").fetchone() == (
        SECRET, f"E1-{SECRET}")
    target.close()

    log = (tmp_path / "prov.log").read_text()
    assert '"initial_password":{"new":"***","old":null}' in log
    leaks = [r.out + r.err for r in outputs] + [log, dump_sqlite(tmp_path / "state.db")]
    for text in leaks:
        assert SECRET not in text


def test_secret_from_the_environment_is_masked_in_errors(provision, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("HR_API_TOKEN", TOKEN)
    monkeypatch.setenv("PROVISION_TARGET", str(tmp_path / "app.db"))
    monkeypatch.setenv("PROVISION_DATA", str(tmp_path / "nowhere"))
    manifest = tmp_path / "m.yaml"
    manifest.write_text(QUICKSTART.read_text()
                        .replace('path: "${env:PROVISION_DATA:-data}"',
                                 'path: "/nonexistent/${env:HR_API_TOKEN}"')
                        .replace("init_sql: sql/quickstart-target.sql", f"init_sql: {QUICKSTART.parent}/sql/quickstart-target.sql")
                        .replace("mapping: ../mappings/", f"mapping: {QUICKSTART.parent.parent}/mappings/"))
    write_hr(tmp_path / "nowhere", [person("E1", "Ada", "One")], [group("G1", "x", ["E1"])])
    result = provision("run", manifest, "--output", "json")
    assert result.code == 1
    assert "/nonexistent/***/people.csv" in result.out
    assert TOKEN not in result.out + result.err
