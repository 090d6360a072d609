"""No secret at rest or in output: sentinel secrets planted everywhere are found nowhere.

Secrets come in through environment variables with harmless names, a ``${file:...}``, a URL's
query string and a password mapping; the run is forced to fail one object. Then stdout and
stderr of run, plan, preview, status and test (a failing mapping test), the --log-file, and a dump of every state-store table
are searched: every sentinel reaches the target where it belongs, and appears nowhere else.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from conftest import person, write_hr

SENTINELS = {"env": "Sentinel-Env-7f3a", "file": "Sentinel-File-92bc", "url": "Sentinel-Url-41de",
             "password": "Sentinel-Pw-c0d1"}

MANIFEST = """
version: 1
name: sentinels
state: "sqlite:///{tmp}/state.db"
log_file: prov.log
connectors:
  hr: {{type: csv, path: data}}
  app:
    type: sql
    url: "sqlite:///{tmp}/app.db?sslpassword=${{env:CONN_OPTION}}"
    create: true
    init_sql: target.sql
    objects:
      users: {{table: users, key: id, generated_key: true, password: pw}}
object_types:
  - name: user
    source: {{connector: hr, object: people, anchor: employee_id}}
    target: {{connector: app, object: users, correlate: [user_name]}}
    mapping:
      - {{target: user_name, expression: "lower(last_name)"}}
      - {{target: cost_center, constant: "${{env:COST_CENTER}}"}}
      - {{target: api_note, constant: "${{file:note.txt}}"}}
      - {{target: pw, expression: "join('-', ['${{env:PW_PREFIX}}', employee_id])", password: true, apply: on_create}}
"""

DDL = """
CREATE TABLE IF NOT EXISTS users (id INTEGER PRIMARY KEY AUTOINCREMENT, user_name TEXT UNIQUE,
                                  cost_center TEXT, api_note TEXT, pw TEXT);
"""


@pytest.mark.filterwarnings("ignore:Query string argument")  # SQLite ignores the planted URL option, as it should
def test_planted_secrets_appear_nowhere_but_the_target(provision, tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COST_CENTER", SENTINELS["env"])      # a name that does not look secret
    monkeypatch.setenv("CONN_OPTION", SENTINELS["url"])
    monkeypatch.setenv("PW_PREFIX", SENTINELS["password"])
    (tmp_path / "note.txt").write_text(SENTINELS["file"])
    (tmp_path / "target.sql").write_text(DDL)
    manifest = tmp_path / "m.yaml"
    manifest.write_text(MANIFEST.format(tmp=tmp_path))
    # a mapping test that fails (a wrong expectation) and so prints what the mapping gave
    (tmp_path / "m.mapping-tests.yaml").write_text(
        "version: 1\ntests:\n  - name: everything shown\n    object_type: user\n"
        "    input: {employee_id: E9, last_name: Lee}\n"
        "    expect: {user_name: not-lee, cost_center: wrong, api_note: wrong, pw: wrong}\n")
    # two people with one last name: the second add is refused (a forced failure with its error text)
    write_hr(tmp_path / "data", [person("E1", "Ann", "Lee"), person("E2", "Bo", "Lee"), person("E3", "Cy", "Park")], [])

    outputs = []
    for args in (("run", manifest), ("run", manifest, "--output", "json"), ("plan", manifest),
                 ("plan", manifest, "--output", "json"), ("status", manifest), ("status", manifest, "--output", "json"),
                 ("preview", manifest, "--object-type", "user", "--anchor", "E2"), ("test", manifest)):
        result = provision(*args)
        outputs += [result.out, result.err]
    assert "UNIQUE constraint failed" in "".join(outputs), "the forced failure happened"
    assert "FAIL" in "".join(outputs), "the mapping test failed and showed its diff"

    with sqlite3.connect(tmp_path / "app.db") as con:
        rows = con.execute("SELECT cost_center, api_note, pw FROM users").fetchall()
    assert rows and all(r[0] == SENTINELS["env"] and r[1] == SENTINELS["file"] and SENTINELS["password"] in r[2]
                        for r in rows), "the values do reach the target"

    dump = []
    with sqlite3.connect(tmp_path / "state.db") as con:
        for (table,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
            dump += [repr(row) for row in con.execute(f'SELECT * FROM "{table}"')]
    places = {"output": "\n".join(outputs), "log file": (tmp_path / "prov.log").read_text(),
              "state store": "\n".join(dump)}
    found = {(kind, where) for kind, sentinel in SENTINELS.items() for where, text in places.items()
             if sentinel in text}
    assert found == set(), f"secrets found: {sorted(found)}"
