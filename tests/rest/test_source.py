"""A JSON API as the source: json-server's users read into a SQLite table, then only what changed
since the last read (`updatedAt_gte`), and every few runs a full read that finds deletions."""

from __future__ import annotations

import json
import sqlite3

import requests
from servers.jsonserver import TOKEN

AUTH = {"Authorization": f"Bearer {TOKEN}"}

MANIFEST = """
version: 1
name: rest-source
state: "sqlite:///{state}"
connectors:
  api:
    type: rest
    url: "{url}"
    auth: {{type: bearer, token: "${{env:REST_TOKEN}}"}}
    paging: {{style: offset, offset_param: _start, size_param: _limit, total_header: X-Total-Count, size: 2}}
    objects:
      users:
        delta: {{param: updatedAt_gte, field: updatedAt, overlap: 0}}
  app:
    type: sql
    url: "sqlite:///{db}"
    create: true
    init_sql: schema.sql
    objects: {{accounts: {{table: accounts, key: id, generated_key: true}}}}
object_types:
  - name: account
    source: {{connector: api, object: users, anchor: employeeId, full_import_every: 2}}
    target: {{connector: app, object: accounts, correlate: [employee_id]}}
    when_deleted: delete
    mapping:
      - {{target: employee_id, source: employeeId}}
      - {{target: mail, source: contact.email}}
"""


def people(url: str, n: int) -> list[dict]:
    return [requests.post(f"{url}/users", json={"employeeId": f"E{i}", "userName": f"u{i}",
                                                 "email": f"u{i}@example.org",
                                                 "contact": {"email": f"u{i}@example.org"}},
                          headers=AUTH, timeout=10).json() for i in range(n)]


def rows(db) -> dict[str, str]:
    with sqlite3.connect(db) as conn:
        return dict(conn.execute("SELECT employee_id, mail FROM accounts"))


def test_delta_reads_take_only_changes_and_a_full_read_every_third_run_finds_deletions(
        provision, tmp_path, jsonserver, monkeypatch):
    monkeypatch.setenv("REST_TOKEN", TOKEN)
    (tmp_path / "schema.sql").write_text("CREATE TABLE IF NOT EXISTS accounts (id INTEGER PRIMARY KEY "
                                         "AUTOINCREMENT, employee_id TEXT UNIQUE, mail TEXT);")
    db = tmp_path / "app.db"
    manifest = tmp_path / "m.yaml"
    manifest.write_text(MANIFEST.format(state=tmp_path / "state.db", url=jsonserver.url, db=db))
    made = people(jsonserver.url, 7)

    first = provision("run", manifest, "--output", "json")
    assert first.code == 0, first.err
    assert json.loads(first.out)["object_types"]["account"]["imported"] == 7
    assert rows(db) == {f"E{i}": f"u{i}@example.org" for i in range(7)}, "nested fields read as dotted names"

    requests.patch(f"{jsonserver.url}/users/{made[2]['id']}", json={"contact": {"email": "new@example.org"}},
                   headers=AUTH, timeout=10).raise_for_status()
    requests.delete(f"{jsonserver.url}/users/{made[4]['id']}", headers=AUTH, timeout=10).raise_for_status()
    second = provision("run", manifest, "--output", "json")
    counts = json.loads(second.out)["object_types"]["account"]
    assert second.code == 0 and counts["imported"] <= 2 and counts["updated"] == 1, counts
    assert rows(db)["E2"] == "new@example.org"
    assert "E4" in rows(db), "an 'updated since' read cannot see a deletion"

    third = provision("run", manifest, "--output", "json")  # full_import_every: 2 -> two delta runs since the full one: this one is full
    counts = json.loads(third.out)["object_types"]["account"]
    assert third.code == 0 and counts["imported"] == 6 and counts["deleted"] == 1, counts
    assert "E4" not in rows(db)
