"""The SOAP service as a source: listUsers paged by offset/limit into a SQLite table, then only what
changed since the last read (modifiedSince), and every other run a full read that finds deletions."""

from __future__ import annotations

import json
import sqlite3

from servers.soapservice import PASSWORD, USER

MANIFEST = """
version: 1
name: soap-source
state: "sqlite:///{state}"
connectors:
  svc:
    type: soap
    wsdl: "{wsdl}"
    auth: {{type: basic, username: "{user}", password: "${{env:SOAP_PASSWORD}}"}}
    objects:
      users:
        id: userName
        list: {{operation: listUsers}}
        paging: {{style: offset, offset_param: offset, size_param: limit, size: 2}}
        delta: {{arg: modifiedSince, field: lastModified, overlap: 0}}
  app:
    type: sql
    url: "sqlite:///{db}"
    create: true
    init_sql: schema.sql
    objects: {{accounts: {{table: accounts, key: id, generated_key: true}}}}
object_types:
  - name: account
    source: {{connector: svc, object: users, anchor: userName, full_import_every: 2}}
    target: {{connector: app, object: accounts, correlate: [login]}}
    when_deleted: delete
    mapping:
      - {{target: login, source: userName}}
      - {{target: mail, source: email}}
"""


def rows(db) -> dict[str, str]:
    with sqlite3.connect(db) as conn:
        return dict(conn.execute("SELECT login, mail FROM accounts"))


def test_delta_reads_take_only_changes_and_a_full_read_finds_deletions(provision, tmp_path, soapservice,
                                                                       monkeypatch):
    monkeypatch.setenv("SOAP_PASSWORD", PASSWORD)
    (tmp_path / "schema.sql").write_text("CREATE TABLE IF NOT EXISTS accounts (id INTEGER PRIMARY KEY "
                                         "AUTOINCREMENT, login TEXT UNIQUE, mail TEXT);")
    db = tmp_path / "app.db"
    manifest = tmp_path / "m.yaml"
    manifest.write_text(MANIFEST.format(state=tmp_path / "state.db", wsdl=soapservice.wsdl, user=USER, db=db))
    client = soapservice.client()
    for i in range(7):
        client.service.createUser(user={"userName": f"u{i}", "email": f"u{i}@example.org"})

    first = provision("run", manifest, "--output", "json")
    assert first.code == 0, first.err
    assert json.loads(first.out)["object_types"]["account"]["imported"] == 7
    assert rows(db) == {f"u{i}": f"u{i}@example.org" for i in range(7)}

    client.service.updateUser(user={"userName": "u2", "email": "new@example.org"})
    client.service.deleteUser(userName="u4")
    second = provision("run", manifest, "--output", "json")
    counts = json.loads(second.out)["object_types"]["account"]
    assert second.code == 0 and counts["imported"] <= 2 and counts["updated"] == 1, counts
    assert rows(db)["u2"] == "new@example.org" and "u4" in rows(db)

    third = provision("run", manifest, "--output", "json")
    counts = json.loads(third.out)["object_types"]["account"]
    assert third.code == 0 and counts["imported"] == 6 and counts["deleted"] == 1, counts
    assert "u4" not in rows(db)
