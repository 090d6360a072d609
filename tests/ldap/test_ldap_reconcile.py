"""Reconciliation against a real slapd: the directory is the truth.

The example manifest (manifests/hr-to-ldap.yaml: people as inetOrgPerson under
ou=<department>,ou=people, groups as groupOfNames with member DNs, the initial password hashed in
the add) provisions 40 sample people and 5 groups. Each situation is then made by hand with
ldap3, as an administrator, a restore or another tool would, and the outcome of ``run``,
``check`` and ``check --fix`` is asserted entry by entry: every attribute, ``member`` and the
``memberOf`` slapd's overlay keeps, passwords untouched.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ldap3
import pytest
from conftest import check_is_clean, orphans_only_reported
from servers.slapd import Slapd

from runner import sampledata

from .helpers import REPO, admin, dump

BASE = "dc=example,dc=org"  # the `directory` fixture empties it for each test
PEOPLE, GROUPS = 40, 5
USER_TARGET = "      disable: {employeeType: disabled}\n"
USER_SCOPE = "    scope:\n"


def hr_to_ldap(folder: Path, user_target: str = "", user_type: str = "") -> Path:
    """manifests/hr-to-ldap.yaml copied into ``folder``; ``user_target`` is added to the user type's
    ``target:`` block, ``user_type`` to the user type itself (YAML lines, indented as they belong)."""
    text = (REPO / "manifests" / "hr-to-ldap.yaml").read_text().replace("../mappings/", f"{REPO}/mappings/")
    assert text.count(USER_TARGET) == 1 and USER_SCOPE in text
    text = text.replace(USER_TARGET, USER_TARGET + user_target).replace(USER_SCOPE, user_type + USER_SCOPE, 1)
    path = folder / "hr-to-ldap.yaml"
    path.write_text(text)
    return path


def point_at(monkeypatch: pytest.MonkeyPatch, server: Slapd, data: Path, state: Path) -> None:
    for key, value in {"PROVISION_DATA": str(data), "LDAP_URL": server.url, "LDAP_BIND_DN": server.root_dn,
                       "LDAP_PASSWORD": server.root_password, "LDAP_BASE_DN": BASE,
                       "PROVISION_STATE": str(state)}.items():
        monkeypatch.setenv(key, value)


@pytest.fixture
def world(directory: Slapd, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Sample HR data and the example manifest pointed at the emptied slapd; nothing run yet."""
    data = tmp_path / "hr"
    sampledata.make(data, PEOPLE, GROUPS, 1)
    point_at(monkeypatch, directory, data, tmp_path / "state.db")
    return {"server": directory, "data": data, "manifest": hr_to_ldap(tmp_path), "tmp": tmp_path}


def provisioned(world: dict[str, Any], provision, manifest: Path | None = None) -> dict[str, dict[str, Any]]:
    """The first run; returns the directory it made."""
    first = provision("run", manifest or world["manifest"], "--output", "json")
    assert first.code == 0, first.out + first.err
    counts = first.json()["object_types"]
    assert counts["user"]["added"] > 30 and counts["group"]["added"] == GROUPS, counts
    return dump(world["server"], BASE)


def changes(before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """What differs between two dumps, entry by entry and attribute by attribute (for failure messages)."""
    out: dict[str, Any] = {}
    for dn in sorted(set(before) | set(after)):
        old, new = before.get(dn), after.get(dn)
        if old is None or new is None:
            out[dn] = "added" if old is None else "gone"
        elif old != new:
            out[dn] = {a: (old.get(a), new.get(a)) for a in set(old) | set(new) if old.get(a) != new.get(a)}
    return out


def people(tree: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {dn: e for dn, e in tree.items() if "inetOrgPerson" in e["objectClass"]}


def groups(tree: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {dn: e for dn, e in tree.items() if "groupOfNames" in e["objectClass"]}


def member_nobody_reports_to(tree: dict[str, dict[str, Any]], skip: int = 0) -> tuple[str, dict[str, Any]]:
    """A person in some group, never a group's only member, who manages nobody: (relative DN, entry)."""
    managers = {m for e in people(tree).values() for m in e.get("manager", [])}
    for dn, entry in sorted(people(tree).items()):
        memberships = [g for g in groups(tree).values() if dn in g["member"]]
        if memberships and dn not in managers and all(len(g["member"]) > 1 for g in memberships):
            if skip == 0:
                return dn, entry
            skip -= 1
    raise AssertionError("the sample data has no such person")


def passwords(server: Slapd) -> dict[str, list[bytes]]:
    conn = admin(server)
    conn.search(BASE, "(objectClass=inetOrgPerson)", ldap3.SUBTREE, attributes=["userPassword"])
    found = {e["dn"].lower(): sorted(e["raw_attributes"]["userPassword"]) for e in conn.response
             if e.get("type") == "searchResEntry"}
    conn.unbind()
    return found


def ldap(server: Slapd, action: str, dn: str, *args: Any) -> None:
    conn = admin(server)
    getattr(conn, action)(dn, *args)
    assert conn.result["result"] == 0, (action, dn, conn.result)
    conn.unbind()


def replace(server: Slapd, dn: str, **values: list[str]) -> None:
    ldap(server, "modify", dn, {k: [(ldap3.MODIFY_REPLACE, v)] for k, v in values.items()})


def full(rel: str) -> str:
    return f"{rel},{BASE}"


def dn_of(entry: dict[str, Any]) -> str:
    """A person's DN spelled as provision writes it (the manifest's template), for values written by hand."""
    return f"uid={entry['uid'][0]},ou={entry['ou'][0]},ou=people,{BASE}"





def test_an_entry_deleted_by_hand_comes_back_in_one_run_with_its_group_memberships(world, provision):
    server, manifest = world["server"], world["manifest"]
    before = provisioned(world, provision)
    linked = len(people(before))
    gone, entry = member_nobody_reports_to(before)
    in_groups = sorted(g for g, e in groups(before).items() if gone in e["member"])
    ldap(server, "delete", full(gone))
    after_delete = dump(server, BASE)
    assert gone not in after_delete
    assert not [g for g in in_groups if gone in after_delete[g]["member"]], "refint took it out of its groups"

    assert provision("run", manifest).code == 0
    assert gone not in dump(server, BASE), "a delta run trusts the state: this is what reconciliation is for"

    text = provision("check", manifest)
    assert text.code == 1, text.out + text.err
    assert "the target differs from what the mappings say" in text.out
    assert f"  user: {linked - 1} linked, 0 drifted, 1 missing, 0 unlinked" in text.out
    assert f"  group: {GROUPS - len(in_groups)} linked, {len(in_groups)} drifted, 0 missing" in text.out
    employee = entry["employeeNumber"][0]
    assert f"  missing user {employee} (target " in text.out
    report = provision("check", manifest, "--output", "json")
    assert report.code == 1
    [missing] = report.differences("missing")
    assert (missing["object_type"], missing["anchor"], missing["action"]) == ("user", employee, "add")
    drifted = report.differences("drifted")
    assert sorted(d["name"].lower() for d in drifted) == sorted(full(g) for g in in_groups)
    for d in drifted:
        assert (d["object_type"], d["action"]) == ("group", "update")
        assert d["attributes"] == {"member": {"missing_values": [employee]}}
    assert dump(server, BASE) == after_delete, "check writes nothing to the directory"

    fixed = provision("check", manifest, "--fix", "--output", "json")
    assert fixed.code == 0, fixed.out + fixed.err
    counts = fixed.json()["object_types"]
    assert (counts["user"]["added"], counts["user"]["updated"], counts["user"]["deleted"]) == (1, 0, 0)
    assert counts["user"]["reconciled"]["missing"] == 1
    assert (counts["group"]["added"], counts["group"]["updated"]) == (0, len(in_groups))
    # the entry, its memberships, and nothing else
    now = dump(server, BASE)
    assert now == before, changes(before, now)

    clean = provision("check", manifest, "--output", "json")
    assert clean.code == 0, clean.out
    check = clean.json()["check"]
    assert check["differs"] is False and check["differences"] == []
    assert check["situations"]["user"]["linked"] == linked and check["situations"]["group"]["linked"] == GROUPS

    # the same by `run --reconcile`, for another person
    gone, _ = member_nobody_reports_to(before, skip=1)
    ldap(server, "delete", full(gone))
    run = provision("run", manifest, "--reconcile", "--output", "json")
    assert run.code == 0, run.err
    user = run.json()["object_types"]["user"]
    assert user["reconciled"]["missing"] == 1 and user["added"] == 1
    now = dump(server, BASE)
    assert now == before, changes(before, now)


def test_values_edited_by_hand_are_listed_with_what_was_expected_and_repaired(world, provision):
    server, manifest = world["server"], world["manifest"]
    before = provisioned(world, provision)
    everyone = people(before)
    person, entry = next((dn, e) for dn, e in sorted(everyone.items()) if e.get("telephoneNumber"))
    replace(server, full(person), title=["Edited by hand"], telephoneNumber=[])
    group, members = sorted(groups(before).items())[0]
    dropped = members["member"][0]
    outsider = next(dn for dn in sorted(everyone) if dn not in members["member"])
    ldap(server, "modify", full(group), {"member": [(ldap3.MODIFY_DELETE, [dn_of(everyone[dropped])]),
                                                   (ldap3.MODIFY_ADD, [dn_of(everyone[outsider])])]})
    edited = dump(server, BASE)
    employee = entry["employeeNumber"][0]
    dropped_id, outsider_id = everyone[dropped]["employeeNumber"][0], everyone[outsider]["employeeNumber"][0]

    text = provision("check", manifest)
    assert text.code == 1, text.out + text.err
    assert "0 missing" in text.out and "  user: " in text.out and "1 drifted" in text.out
    assert f'      title: expected "{entry["title"][0]}"; found "Edited by hand"' in text.out
    assert f'      telephoneNumber: expected "{entry["telephoneNumber"][0]}"; found null' in text.out
    assert f'      member: missing "{dropped_id}"; not expected "{outsider_id}"' in text.out

    report = provision("check", manifest, "--output", "json")
    assert report.code == 1
    user_drift, group_drift = sorted(report.differences("drifted"), key=lambda d: d["object_type"], reverse=True)
    assert (user_drift["object_type"], user_drift["anchor"], user_drift["action"]) == ("user", employee, "update")
    assert user_drift["name"].lower() == full(person)
    assert user_drift["attributes"] == {
        "title": {"expected": entry["title"][0], "found": "Edited by hand"},
        "telephoneNumber": {"expected": entry["telephoneNumber"][0], "found": None}}
    assert (group_drift["object_type"], group_drift["action"]) == ("group", "update")
    assert group_drift["name"].lower() == full(group)
    assert group_drift["attributes"] == {"member": {"missing_values": [dropped_id], "extra_values": [outsider_id]}}
    assert dump(server, BASE) == edited, "check writes nothing to the directory"

    fixed = provision("check", manifest, "--fix", "--output", "json")
    assert fixed.code == 0, fixed.out + fixed.err
    counts = fixed.json()["object_types"]
    assert (counts["user"]["updated"], counts["group"]["updated"]) == (1, 1), counts
    assert counts["user"]["added"] == counts["group"]["added"] == 0
    now = dump(server, BASE)
    assert now == before, changes(before, now)
    assert provision("check", manifest).code == 0


BOUNDARY = '      boundary: {under: "ou=people,${env:LDAP_BASE_DN}"}\n'
ORPHAN_DELETE = "    reconcile: {orphan: delete}\n"


def strays(server: Slapd) -> tuple[str, str]:
    """An entry made by hand inside ou=people and a service account under ou=services: their DNs."""
    inside = f"uid=left.behind,ou=Sales,ou=people,{BASE}"
    outside = f"uid=svc.backup,ou=services,{BASE}"
    ldap(server, "add", f"ou=services,{BASE}", ["organizationalUnit"], {"ou": "services"})
    for dn in (inside, outside):
        uid = dn.split(",")[0][4:]
        ldap(server, "add", dn, ["inetOrgPerson"], {"uid": uid, "cn": uid, "sn": uid, "employeeType": "active"})
    return inside, outside


def test_an_entry_inside_the_boundary_is_deleted_and_one_outside_never_touched(world, provision):
    server = world["server"]
    manifest = hr_to_ldap(world["tmp"], BOUNDARY, ORPHAN_DELETE)
    assert provision("validate", manifest).code == 0
    before = provisioned(world, provision, manifest)
    inside, outside = strays(server)
    made = dump(server, BASE)
    service = made[outside.lower().removesuffix("," + BASE)]

    report = provision("check", manifest, "--output", "json")
    assert report.code == 1, report.out + report.err
    [orphan] = report.differences("orphan")
    assert orphan["object_type"] == "user" and orphan["name"].lower() == inside.lower()
    assert orphan["action"] == "delete" and "left.behind" in orphan["note"]
    assert report.json()["check"]["situations"]["user"]["orphan"] == 1, "the service account is no orphan"
    assert dump(server, BASE) == made

    fixed = provision("check", manifest, "--fix", "--output", "json")
    assert fixed.code == 0, fixed.out + fixed.err
    user = fixed.json()["object_types"]["user"]
    assert (user["reconciled"]["orphan"], user["deleted"], user["added"], user["updated"]) == (1, 1, 0, 0)
    after = dump(server, BASE)
    assert inside.lower().removesuffix("," + BASE) not in after
    assert after[outside.lower().removesuffix("," + BASE)] == service, "outside the boundary: never touched"
    assert {dn: e for dn, e in after.items() if "services" not in dn} == before
    assert provision("check", manifest).code == 0, "an entry outside the boundary is not a difference"

    # many orphans at once look like a broken read: the deletion guard holds them until allowed
    many = [f"uid=o{i},ou=Sales,ou=people,{BASE}" for i in range(6)]
    for dn in many:
        ldap(server, "add", dn, ["inetOrgPerson"], {"cn": dn[4:6], "sn": dn[4:6]})
    held = provision("run", manifest, "--reconcile", "--output", "json")
    assert held.code == 3, held.out + held.err
    assert held.json()["object_types"]["user"]["held"] == 6 and held.json()["object_types"]["user"]["deleted"] == 0
    assert all(full_dn.lower().removesuffix("," + BASE) in dump(server, BASE) for full_dn in many)
    assert provision("run", manifest, "--reconcile", "--allow-deletes", "6").code == 0
    now = dump(server, BASE)
    assert {dn: e for dn, e in now.items() if "services" not in dn} == before, changes(before, now)


def test_without_a_boundary_entries_nobody_claims_are_only_reported(world, provision):
    server, manifest = world["server"], world["manifest"]
    provisioned(world, provision)
    inside, outside = strays(server)
    made = dump(server, BASE)

    report = provision("check", manifest, "--output", "json")
    assert report.code == 1
    orphans = report.differences("orphan")
    assert sorted(o["name"].lower() for o in orphans) == sorted([inside.lower(), outside.lower()])
    assert all("action" not in o for o in orphans), "reported only: no boundary is declared"

    orphans_only_reported(provision, manifest, 2)
    assert dump(server, BASE) == made, "nothing deleted, nothing disabled"


def test_a_lost_state_store_links_entries_by_dn_instead_of_adding_them_twice(world, provision):
    server, manifest = world["server"], world["manifest"]
    before = provisioned(world, provision)
    secrets_before = passwords(server)
    for file in world["tmp"].glob("state.db*"):
        file.unlink()

    counts = provision("run", manifest, "--output", "json").adopted(GROUPS)  # as they are: managers kept
    assert counts["user"]["reconciled"]["unlinked"] == len(people(before))
    # no entry twice, no group twice, memberships as they were
    now = dump(server, BASE)
    assert len(people(now)) == len(people(before)) and len(groups(now)) == GROUPS
    assert now == before, changes(before, now)
    assert passwords(server) == secrets_before, "an adopted entry keeps its password (apply: on_create)"
    check_is_clean(provision, manifest, GROUPS)


def test_two_people_claiming_one_entry_collide_and_nothing_is_added_twice(world, provision):
    server, manifest, data = world["server"], world["manifest"], world["data"]
    before = provisioned(world, provision)
    for file in world["tmp"].glob("state.db*"):
        file.unlink()
    rows = (data / "people.csv").read_text().splitlines(keepends=True)
    header = rows[0].rstrip("\n").split(",")
    records = [dict(zip(header, r.rstrip("\n").split(","), strict=False)) for r in rows[1:]]
    managers = {r["manager_id"] for r in records}
    in_groups = (data / "groups.csv").read_text()
    n, first = next((n, r) for n, r in enumerate(records, 1) if r["status"] == "active"
                    and r["employee_id"] not in managers and r["employee_id"] not in in_groups)
    twin = rows[n].replace(first["employee_id"], "E9999999", 1)  # same e-mail and department: the same DN
    (data / "people.csv").write_text("".join(rows + [twin]))

    run = provision("run", manifest, "--output", "json")
    assert run.code == 1, run.out + run.err
    assert run.json()["status"] == "partial"
    user = run.json()["object_types"]["user"]
    assert (user["reconciled"]["collision"], user["failed"], user["added"]) == (1, 1, 0), user
    dn = f"uid={first['email'].split('@')[0]},ou={first['department']},ou=people,{BASE}"
    report = provision("check", manifest, "--output", "json")
    assert report.code == 1
    [collision] = report.differences("collision")
    assert collision["object_type"] == "user" and collision["anchor"] == "E9999999"
    assert dn in collision["note"] and "another source object already claims" in collision["note"]
    now = dump(server, BASE)
    assert len(people(now)) == len(people(before)), "nobody added twice"
    # the entry still belongs to the one it was made for (employeeNumber unchanged)
    assert now == before, changes(before, now)

    again = provision("run", manifest, "--output", "json")
    assert again.code == 1 and again.json()["object_types"]["user"]["added"] == 0, "still held, still not added"
    assert len(people(dump(server, BASE))) == len(people(before))


def test_a_state_pointed_at_another_directory_stops_until_rebound(world, provision, monkeypatch, tmp_path: Path):
    server, manifest = world["server"], world["manifest"]
    before = provisioned(world, provision)
    # the same directory under another address (its ldapi socket) holds the objects: followed
    monkeypatch.setenv("LDAP_URL", server.ldapi_url)
    moved = provision("run", manifest, "--output", "json")
    assert moved.code == 0, moved.out + moved.err
    assert "holds the objects the state knows" in moved.err
    assert all(c["added"] + c["updated"] + c["deleted"] == 0 for c in moved.json()["object_types"].values())

    other = Slapd.start(tmp_path / "other-slapd")
    try:
        point_at(monkeypatch, other, world["data"], tmp_path / "state.db")
        stopped = provision("run", manifest)
        assert stopped.code == 4, stopped.out + stopped.err
        assert server.ldapi_url in stopped.err and other.url in stopped.err and "--rebind" in stopped.err
        assert dump(other, BASE) == {}, "nothing written to the new directory"

        rebound = provision("run", manifest, "--rebind", "--output", "json")
        assert rebound.code == 0, rebound.out + rebound.err
        counts = rebound.json()["object_types"]
        assert counts["user"]["added"] == len(people(before)) and counts["group"]["added"] == GROUPS
        assert dump(other, BASE) == before
        again = provision("run", manifest, "--output", "json").json()["object_types"]
        assert all(c["added"] + c["updated"] + c["deleted"] == 0 for c in again.values()), again
        assert provision("check", manifest).code == 0
    finally:
        other.stop()
    assert (now := dump(server, BASE)) == before, changes(before, now)  # the old directory was not touched
