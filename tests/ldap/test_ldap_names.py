"""DNs from templates, escaped per RFC 4514, through ``provision run`` into slapd.

Names with ``, + " \\ < > ; # =``, leading and trailing spaces and non-ASCII letters become RDN
values that slapd accepts and that parse back to exactly the source value; missing parent OUs
are created; a second run sends nothing (names compare as DNs, not as text); a changed
department moves the entry with modDN, keeping its entryUUID, and the groups it is in follow.
"""

from __future__ import annotations

import csv
from pathlib import Path

import ldap3
import pytest

from runner.names import parse_dn

from .helpers import admin, manifest

NASTY = [
    "Smith, John", "a+b", 'say "hi"', "back\\slash", "<tag>", "semi;colon", "#hash", "eq=ual",
    " leading space", "trailing space ", "Zoë Ødegård 日本",
]
DEPARTMENTS = ["R&D, EMEA", "Sales + Marketing", "#1 Team", "Ünïcode ≠ ASCII", "Legal"]

OBJECT_TYPES = """\
  - name: user
    source: {connector: hr, object: people, anchor: id}
    target: {connector: dir, object: inetOrgPerson, name: "cn={cn},ou={ou},ou=people,dc=example,dc=org"}
    mapping:
      - {target: cn, source: name}
      - {target: sn, source: name}
      - {target: ou, source: department}
      - {target: employeeNumber, source: id}
  - name: group
    source: {connector: hr, object: groups, anchor: id}
    target: {connector: dir, object: groupOfNames, name: "cn={cn},ou=groups,dc=example,dc=org"}
    mapping:
      - {target: cn, source: name}
      - {target: member, source: members, reference: user, multi_valued: true}
"""


def write_hr(folder: Path, departments: dict[str, str]) -> None:
    folder.mkdir(exist_ok=True)
    with open(folder / "people.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "name", "department"])
        for i, name in enumerate(NASTY):
            w.writerow([f"P{i}", name, departments.get(f"P{i}", DEPARTMENTS[i % len(DEPARTMENTS)])])
    with open(folder / "groups.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "name", "members"])
        w.writerow(["G1", "Everyone, really; all", ";".join(f"P{i}" for i in range(len(NASTY)))])


@pytest.fixture
def pipeline(directory, tmp_path: Path):
    data = tmp_path / "hr"
    write_hr(data, {})
    return manifest(tmp_path, directory, "ldap-names", OBJECT_TYPES, data,
                    hr_objects='{groups: {multi_valued: {members: ";"}}}'), data


def people(server) -> dict[str, tuple[str, str]]:
    """employeeNumber -> (DN as slapd holds it, entryUUID)."""
    conn = admin(server)
    conn.search("dc=example,dc=org", "(objectClass=inetOrgPerson)", ldap3.SUBTREE,
                attributes=["employeeNumber", "entryUUID"])
    found = {e["attributes"]["employeeNumber"][0]: (e["dn"], e["attributes"]["entryUUID"][0]) for e in conn.response}
    conn.unbind()
    return found


def test_every_special_character_survives_the_round_trip(provision, directory, pipeline):
    pipe, _ = pipeline
    first = provision("run", pipe, "--output", "json")
    assert first.code == 0, first.out + first.err
    found = people(directory)
    assert len(found) == len(NASTY)
    for i, name in enumerate(NASTY):
        rdns = parse_dn(found[f"P{i}"][0])
        assert rdns[0] == [("cn", name)], (name, found[f"P{i}"][0])
        assert rdns[1] == [("ou", DEPARTMENTS[i % len(DEPARTMENTS)])]
    again = provision("run", pipe, "--output", "json").json()["object_types"]
    assert all(c["added"] + c["updated"] + c["renamed"] == 0 for c in again.values()), again


def test_a_department_move_renames_with_moddn_and_the_group_follows(provision, directory, pipeline):
    pipe, data = pipeline
    assert provision("run", pipe).code == 0
    before = people(directory)
    write_hr(data, {"P0": "Brand ¬ New, Dept", "P4": "R&D, EMEA"})
    moved = provision("run", pipe, "--output", "json")
    assert moved.code == 0, moved.out + moved.err
    assert moved.json()["object_types"]["user"]["renamed"] == 2
    after = people(directory)
    assert after["P0"][1] == before["P0"][1], "modDN keeps the entryUUID: the entry was moved, not re-created"
    assert parse_dn(after["P0"][0])[1] == [("ou", "Brand ¬ New, Dept")]
    conn = admin(directory)
    conn.search("dc=example,dc=org", "(objectClass=groupOfNames)", ldap3.SUBTREE, attributes=["member"])
    [group] = conn.response
    conn.unbind()
    members = {m.lower() for m in group["attributes"]["member"]}
    assert {dn.lower() for dn, _ in after.values()} <= members
    assert before["P0"][0].lower() not in members
    assert provision("run", pipe, "--output", "json").json()["object_types"]["user"]["renamed"] == 0
