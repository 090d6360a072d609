"""Bugs found while building spine v2, each shown the way a user meets it."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from test_capabilities import DELTA_MANIFEST

from runner.connectors.base import Capabilities
from runner.engine.diff import comparer, same_name
from runner.mapping.names import render
from runner.names import normalize_dn, parse_dn

DIRECTORY = """
version: 1
name: rehire
connectors:
  hr: {{type: csv, path: "{tmp}/hr"}}
  dir:
    type: jsondir
    root: "{tmp}/dir"
    objects: [orgunits, users]
    partitions: [corp]
object_types:
  - name: orgunit
    source: {{connector: hr, object: units, anchor: ou}}
    target: {{connector: dir, object: orgunits, name: "ou={{ou}}", partition: corp}}
    mapping:
      - {{target: ou, source: ou}}
  - name: user
    source: {{connector: hr, object: people, anchor: employee_id}}
    target: {{connector: dir, object: users, name: "uid={{uid}},ou={{dept}}", partition: corp, disable: {{active: false}}}}
    scope: {{all: [{{attribute: status, op: eq, value: active}}]}}
    when_out_of_scope: disable
    mapping:
      - {{target: uid, source: uid}}
      - {{target: dept, source: dept}}
      - {{target: active, constant: true}}
"""


def test_a_disabled_person_rehired_into_another_department_is_moved(tmp_path: Path, provision):
    """A disable used to erase the recorded name, so the rehire was never moved."""
    (tmp_path / "hr").mkdir()
    (tmp_path / "hr" / "units.csv").write_text("ou\nEngineering\nSales\n")
    people = tmp_path / "hr" / "people.csv"
    manifest = tmp_path / "m.yaml"
    manifest.write_text(DIRECTORY.format(tmp=tmp_path))

    def names() -> dict[str, dict]:
        docs = [json.loads(f.read_text()) for f in (tmp_path / "dir").rglob("*.json")]
        return {d["name"]: d["attributes"] for d in docs if d["object"] == "users"}

    people.write_text("employee_id,uid,dept,status\nE1,ann,Engineering,active\n")
    assert provision("run", manifest).code == 0
    people.write_text("employee_id,uid,dept,status\nE1,ann,Engineering,terminated\n")
    assert provision("run", manifest).code == 0
    assert names()["uid=ann,ou=Engineering"]["active"] is False
    people.write_text("employee_id,uid,dept,status\nE1,ann,Sales,active\n")
    result = provision("run", manifest, "--output", "json")
    assert result.code == 0, result.out
    assert result.json()["object_types"]["user"]["renamed"] == 1
    assert list(names()) == ["uid=ann,ou=Sales"] and names()["uid=ann,ou=Sales"]["active"] is True


def test_a_person_moved_to_another_source_partition_is_not_deleted_by_the_old_ones_full_read(tmp_path: Path,
                                                                                           provision):
    """The moved object used to keep its old partition: the old partition's next full read then
    took it for deleted."""
    from provision_jsondir import JsonDirConnector

    from runner.connectors.base import ConnectorContext, Operation

    (tmp_path / "app.sql").write_text("CREATE TABLE IF NOT EXISTS users (id INTEGER PRIMARY KEY AUTOINCREMENT,"
                                      " employee_id TEXT UNIQUE, title TEXT);")
    manifest = tmp_path / "delta.yaml"
    manifest.write_text(DELTA_MANIFEST.format(tmp=tmp_path))
    hr = JsonDirConnector({"root": str(tmp_path / "hr"), "objects": ["people"], "partitions": ["emea", "amer"]},
                          ConnectorContext("hr", tmp_path))
    hr.open()
    first = list(hr.apply([Operation(0, "add", "people", name="uid=e1", partition="emea",
                                     attributes={"employee_id": "E1", "title": "Engineer"}),
                           Operation(1, "add", "people", name="uid=e2", partition="emea",
                                     attributes={"employee_id": "E2", "title": "Engineer"})]))
    assert provision("run", manifest).code == 0
    moved = list(hr.apply([Operation(0, "delete", "people", anchor=first[0].anchor, partition="emea"),
                           Operation(1, "add", "people", name="uid=e1", partition="amer",
                                     attributes={"employee_id": "E1", "title": "Engineer"})]))
    assert all(r.ok for r in moved)
    hr.close()
    assert provision("run", manifest).code == 0
    full = provision("run", manifest, "--full", "--output", "json")
    assert full.code == 0, full.out
    assert full.json()["object_types"]["user"]["deleted"] == 0
    with sqlite3.connect(tmp_path / "app.db") as con:
        assert sorted(e for (e,) in con.execute("SELECT employee_id FROM users")) == ["E1", "E2"]


@pytest.mark.parametrize(("a", "b"), [
    ("CN=Smith\\, John,OU=People,DC=example", "cn=smith\\2C john , ou=people,dc=EXAMPLE"),
    ("cn=a+sn=b,dc=x", "SN=B + cn=A,dc=x"),
    ("cn=Zo\\C3\\AB,dc=x", "cn=ZOË,dc=x"),
    ("cn=\\#1,dc=x", "CN=\\231,DC=X"),
    ("uid=o\\'neil,dc=x", "uid=O'Neil,dc=x"),
])
def test_names_that_are_the_same_dn_compare_equal(a: str, b: str):
    assert normalize_dn(a) == normalize_dn(b)
    assert same_name(a, b, Capabilities(hierarchical=True))
    assert comparer({"manager": ("dn",)})("manager", a) == comparer({"manager": ("dn",)})("manager", b)


@pytest.mark.parametrize(("a", "b"), [
    ("cn=a\\ ,dc=x", "cn=a,dc=x"),          # an escaped trailing space is part of the value
    ("cn=a\\,b,dc=x", "cn=a,cn=b,dc=x"),    # an escaped comma does not split the RDN
    ("cn=a+sn=b,dc=x", "cn=a,sn=b,dc=x"),   # a multi-valued RDN is one level, not two
])
def test_names_that_differ_do_not(a: str, b: str):
    assert normalize_dn(a) != normalize_dn(b)
    assert not same_name(a, b, Capabilities(hierarchical=True))


@pytest.mark.parametrize("value", ["Smith, John", "a+b", '"quoted"', "back\\slash", "<x>", "semi;colon", "#lead",
                                   " spaces ", "eq=ual", "Zoë Ødegård"])
def test_a_rendered_name_parses_back_to_the_value(value: str):
    """Every RDN value escaped per RFC 4514 parses back to itself: names never split or shift."""
    dn = render("cn={cn},ou=people", {"cn": value})
    assert parse_dn(dn) == [[("cn", value)], [("ou", "people")]]
