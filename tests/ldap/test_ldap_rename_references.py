"""References by DN follow a renamed or moved entry, whether or not the directory rewrites them.

A person's ``manager`` and a group's ``member`` values are DNs. When the person they name moves
(a department change: ``ou=<department>``) or is renamed, the directory holds the old DN until
someone writes the new one: slapd's refint overlay does it for ``member`` when it is configured,
Active Directory does it for linked attributes, many directories do nothing. ``provision run``
must leave every reference pointing at the entry's new DN in the same run, on both kinds of
server, and a second run must send nothing. Here on a slapd without refint (its own, started for
this module and stopped by its PID) and on the session's slapd with it.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import ldap3
import pytest
from servers.slapd import Slapd

from .helpers import admin, manifest

BASE = "dc=example,dc=org"
OBJECT_TYPES = """\
  - name: user
    source: {connector: hr, object: people, anchor: id}
    target: {connector: dir, object: inetOrgPerson, name: "uid={uid},ou={ou},ou=people,dc=example,dc=org"}
    mapping:
      - {target: uid, source: id}
      - {target: cn, source: name}
      - {target: sn, source: name}
      - {target: ou, source: department}
      - {target: manager, source: manager, reference: user}
  - name: group
    source: {connector: hr, object: groups, anchor: id}
    target: {connector: dir, object: groupOfNames, name: "cn={cn},ou=groups,dc=example,dc=org"}
    mapping:
      - {target: cn, source: name}
      - {target: member, source: members, reference: user, multi_valued: true}
"""

# id, name, department, manager: a chain boss <- mid <- two reports, and a bystander
PEOPLE = [("boss", "Big Boss", "Board", ""), ("mid", "Middle Manager", "Sales", "boss"),
          ("r1", "Report One", "Sales", "mid"), ("r2", "Report Two", "Support", "mid"),
          ("other", "Other Person", "Support", "")]


def write_hr(folder: Path, people: list[tuple[str, str, str, str]], members: list[str]) -> None:
    folder.mkdir(exist_ok=True)
    with open(folder / "people.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "name", "department", "manager"])
        w.writerows(people)
    with open(folder / "groups.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "name", "members"])
        w.writerow(["G1", "Everyone", ";".join(members)])


def directory_view(server: Slapd) -> tuple[dict[str, str], dict[str, str | None], set[str]]:
    """(uid -> DN, uid -> manager DN, the group's member DNs), DNs lowercased."""
    conn = admin(server)
    conn.search(BASE, "(objectClass=inetOrgPerson)", ldap3.SUBTREE, attributes=["uid", "manager"])
    dns = {e["attributes"]["uid"][0]: e["dn"].lower() for e in conn.response}
    managers = {e["attributes"]["uid"][0]: (e["attributes"]["manager"][0].lower() if e["attributes"]["manager"]
                                            else None) for e in conn.response}
    conn.search(BASE, "(objectClass=groupOfNames)", ldap3.SUBTREE, attributes=["member"])
    [group] = conn.response
    conn.unbind()
    return dns, managers, {m.lower() for m in group["attributes"]["member"]}


def assert_references_follow(server: Slapd, people: list[tuple[str, str, str, str]], members: list[str]) -> None:
    dns, managers, member_dns = directory_view(server)
    for uid, _, department, manager in people:
        assert dns[uid] == f"uid={uid},ou={department},ou=people,{BASE}".lower()
        assert managers[uid] == (dns[manager] if manager else None), f"{uid}: manager {managers[uid]}"
    assert member_dns == {dns[m] for m in members}, member_dns


@pytest.fixture(scope="module")
def plain_slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    server = Slapd.start(tmp_path_factory.mktemp("no-refint") / "slapd", refint=False, accesslog=False)
    yield server
    server.stop()


@pytest.fixture(params=["without refint", "with refint"])
def server(request, plain_slapd: Slapd, directory: Slapd) -> Slapd:
    if request.param == "with refint":
        return directory
    from servers import ldap_contract
    ldap_contract.fresh_partitions(plain_slapd)
    return plain_slapd


def test_a_moved_manager_and_member_are_named_by_their_new_dn_in_the_same_run(provision, server, tmp_path):
    data = tmp_path / "hr"
    members = ["boss", "mid", "r1", "other"]
    write_hr(data, PEOPLE, members)
    pipe = manifest(tmp_path, server, "rename-refs", OBJECT_TYPES, data,
                    hr_objects='{groups: {multi_valued: {members: ";"}}}')
    first = provision("run", pipe, "--output", "json")
    assert first.code == 0, first.out + first.err
    assert_references_follow(server, PEOPLE, members)

    # the middle manager and the boss change department (their DNs move); r1 moves too and
    # gets a title-like change in the same run; nobody's manager *attribute* changes in the source
    moved = [("boss", "Big Boss", "Executive", ""), ("mid", "Middle Manager", "Marketing", "boss"),
             ("r1", "Report One", "Marketing", "mid"), ("r2", "Report Two", "Support", "mid"),
             ("other", "Other Person", "Support", "")]
    write_hr(data, moved, members)
    second = provision("run", pipe, "--output", "json")
    assert second.code == 0, second.out + second.err
    counts = second.json()["object_types"]
    assert counts["user"]["renamed"] == 3 and counts["user"]["failed"] == 0, counts
    assert_references_follow(server, moved, members)

    third = provision("run", pipe, "--output", "json").json()["object_types"]
    assert all(c["added"] + c["updated"] + c["renamed"] + c["failed"] == 0 for c in third.values()), third
