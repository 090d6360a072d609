"""Reconciliation against the real scim2-server: the service is the truth.

The example manifest (manifests/hr-to-scim.yaml: Users with the enterprise extension and the
manager by reference, Groups with members by reference), with ``correlate: [userName]`` on users
and ``correlate: [displayName]`` on groups, provisions 40 sample people and 5 groups into a
tenant of their own. Each situation is then made by hand with plain HTTP requests, as an
administrator or another tool would, and the outcome of ``run``, ``check`` and ``check --fix`` is
asserted resource by resource: every attribute, managers and members by userName.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import check_is_clean, orphans_only_reported
from servers.scim import TOKEN, ScimServer

from .conftest import env_for, hr_manifest
from .world import ENTERPRISE, listing

PEOPLE, GROUPS = 40, 5
HEADERS = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/scim+json"}
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
USERS = "target: {connector: app, object: Users, disable: {active: false}}"
GROUPS_TARGET = "target: {connector: app, object: Groups}"
BOUNDARY = "boundary: {all: [{attribute: userName, op: ends_with, value: '@example.org'}]}"


def manifest_for(tmp_path: Path, url: str, users: str = "correlate: [userName]",
                 user_type: str = "") -> Path:
    """The example manifest copied into ``tmp_path`` (fresh HR data), users and groups correlated
    by userName and displayName; ``users`` goes into the user type's target, ``user_type`` (YAML
    lines) into the user type itself."""
    path = hr_manifest(tmp_path, url, people=PEOPLE, groups=GROUPS)
    text = path.read_text()
    assert USERS in text and GROUPS_TARGET in text
    text = text.replace(USERS, USERS[:-1] + f", {users}}}").replace(
        GROUPS_TARGET, GROUPS_TARGET[:-1] + ", correlate: [displayName]}")
    text = text.replace("    when_out_of_scope: disable", user_type + "    when_out_of_scope: disable", 1)
    path.write_text(text)
    return path


@pytest.fixture
def world(scim: ScimServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A tenant of its own and the manifest pointed at it; nothing run yet."""
    url = scim.tenant()
    manifest = manifest_for(tmp_path, url)
    for key, value in env_for(url, tmp_path).items():
        monkeypatch.setenv(key, value)
    return {"url": url, "manifest": manifest, "tmp": tmp_path, "data": tmp_path / "manifests" / "data"}


def provisioned(world: dict[str, Any], provision, manifest: Path | None = None) -> dict[str, Any]:
    first = provision("run", manifest or world["manifest"], "--output", "json")
    assert first.code == 0, first.out + first.err
    counts = first.json()["object_types"]
    assert counts["user"]["added"] > 30 and counts["group"]["added"] == GROUPS, counts
    return snapshot(world["url"])


def snapshot(url: str) -> dict[str, Any]:
    """Every User by userName (all attributes but id and meta; the manager by userName) and every
    Group by displayName (members by userName, sorted; an id that names no User as ``?id``)."""
    users = listing(url, "Users")
    names = {u["id"]: u["userName"] for u in users}
    people = {}
    for u in users:
        body = {k: v for k, v in u.items() if k not in ("id", "meta", "schemas")}
        extension = dict(body.get(ENTERPRISE, {}))
        if extension.get("manager"):
            extension["manager"] = names.get(extension["manager"].get("value"), "?")
        body[ENTERPRISE] = extension
        assert u["userName"] not in people, f"user {u['userName']} twice"
        people[u["userName"]] = body
    groups = {}
    for g in listing(url, "Groups"):
        assert g["displayName"] not in groups, f"group {g['displayName']} twice"
        groups[g["displayName"]] = {"externalId": g.get("externalId"), "members": sorted(
            names.get(m["value"], "?" + m["value"]) for m in g.get("members", []))}
    return {"users": people, "groups": groups}


def changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """What differs between two snapshots (for failure messages)."""
    out: dict[str, Any] = {}
    for kind in ("users", "groups"):
        old, new = before[kind], after[kind]
        for key in sorted(set(old) | set(new)):
            if old.get(key) != new.get(key):
                out[f"{kind}/{key}"] = (old.get(key), new.get(key))
    return out


def ids(url: str) -> dict[str, str]:
    """userName -> id, and displayName -> id for groups."""
    return {**{u["userName"]: u["id"] for u in listing(url, "Users")},
            **{g["displayName"]: g["id"] for g in listing(url, "Groups")}}


def send(method: str, url: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    response = requests.request(method, url, json=body, headers=HEADERS, timeout=30)
    assert response.status_code < 300, (method, url, response.status_code, response.text)
    return response.json() if response.content else {}


def patch(url: str, *operations: dict[str, Any]) -> None:
    send("PATCH", url, {"schemas": [PATCH], "Operations": list(operations)})


def lose_state(world: dict[str, Any]) -> None:
    for file in world["tmp"].glob("state.db*"):
        file.unlink()


def delete_user(url: str, user_name: str, groups: list[str]) -> None:
    """DELETE a User, and take it out of its groups as a service with referential integrity does
    (scim2-server keeps a deleted user's id in Groups.members; provision leaves member values that
    name no object it manages alone, so that dangling id would stay)."""
    known = ids(url)
    send("DELETE", f"{url}/Users/{known[user_name]}")
    for group in groups:
        patch(f"{url}/Groups/{known[group]}", {"op": "remove", "path": f'members[value eq "{known[user_name]}"]'})


def test_a_user_deleted_by_hand_comes_back_in_one_run_with_its_memberships_and_reports(world, provision):
    url, manifest = world["url"], world["manifest"]
    before = provisioned(world, provision)
    linked = len(before["users"])
    reports = {n: u[ENTERPRISE]["manager"] for n, u in before["users"].items() if u[ENTERPRISE].get("manager")}
    gone = next(n for n in sorted(before["users"]) if n in reports.values()
                and any(n in g["members"] for g in before["groups"].values()))
    in_groups = sorted(g for g, e in before["groups"].items() if gone in e["members"])
    reporting = sorted(n for n, m in reports.items() if m == gone)
    known = ids(url)
    delete_user(url, gone, in_groups)
    employee = before["users"][gone]["externalId"]

    text = provision("check", manifest)
    assert text.code == 1, text.out + text.err
    assert "the target differs from what the mappings say" in text.out
    assert f"  user: {linked - 1} linked, 0 drifted, 1 missing" in text.out
    assert f"  group: {GROUPS - len(in_groups)} linked, {len(in_groups)} drifted, 0 missing" in text.out
    assert f"  missing user {employee} (target {known[gone]}) -> add" in text.out
    report = provision("check", manifest, "--output", "json")
    assert report.code == 1
    [missing] = report.differences("missing")
    assert (missing["object_type"], missing["anchor"], missing["target_anchor"]) == ("user", employee, known[gone])
    drifted = report.differences("drifted")
    assert sorted(d["anchor"] for d in drifted) == sorted(before["groups"][g]["externalId"] for g in in_groups)
    for d in drifted:
        assert d["object_type"] == "group" and d["action"] == "update"
        assert d["attributes"] == {"members": {"missing_values": [employee]}}
    # the reports' manager names an id that is gone: they get the new one
    pending = {d["anchor"] for d in report.json()["check"]["differences"] if d["situation"] == "pending"}
    assert pending == {before["users"][n]["externalId"] for n in reporting}
    assert gone not in snapshot(url)["users"], "check writes nothing to the service"

    fixed = provision("check", manifest, "--fix", "--output", "json")
    assert fixed.code == 0, fixed.out + fixed.err
    counts = fixed.json()["object_types"]
    assert (counts["user"]["added"], counts["user"]["updated"], counts["user"]["deleted"]) == (1, len(reporting), 0)
    assert counts["user"]["reconciled"]["missing"] == 1
    assert (counts["group"]["added"], counts["group"]["updated"]) == (0, len(in_groups))
    assert (now := snapshot(url)) == before, changes(before, now)
    assert ids(url)[gone] != known[gone], "a new resource, with the memberships and reports of the old"

    clean = provision("check", manifest, "--output", "json")
    assert clean.code == 0, clean.out
    check = clean.json()["check"]
    assert check["differs"] is False and check["differences"] == []
    assert check["situations"]["user"]["linked"] == linked and check["situations"]["group"]["linked"] == GROUPS

    # the same by `run --reconcile`, for a user nobody reports to
    other = next(n for n in sorted(before["users"]) if n not in reports.values())
    delete_user(url, other, [g for g, e in before["groups"].items() if other in e["members"]])
    run = provision("run", manifest, "--reconcile", "--output", "json")
    assert run.code == 0, run.err
    user = run.json()["object_types"]["user"]
    assert (user["reconciled"]["missing"], user["added"], user["updated"]) == (1, 1, 0)
    assert (now := snapshot(url)) == before, changes(before, now)


def test_values_edited_by_hand_are_listed_with_what_was_expected_and_repaired(world, provision):
    url, manifest = world["url"], world["manifest"]
    before = provisioned(world, provision)
    known = ids(url)
    name, user = next((n, u) for n, u in sorted(before["users"].items()) if u.get("phoneNumbers"))
    patch(f"{url}/Users/{known[name]}", {"op": "replace", "path": "title", "value": "Edited by hand"},
          {"op": "remove", "path": "phoneNumbers"})
    group, content = next((g, c) for g, c in sorted(before["groups"].items()) if len(c["members"]) < len(before["users"]))
    dropped = content["members"][0]
    outsider = next(n for n in sorted(before["users"]) if n not in content["members"])
    patch(f"{url}/Groups/{known[group]}", {"op": "remove", "path": f'members[value eq "{known[dropped]}"]'},
          {"op": "add", "path": "members", "value": [{"value": known[outsider]}]})
    edited = snapshot(url)
    anchor = user["externalId"]
    dropped_id, outsider_id = before["users"][dropped]["externalId"], before["users"][outsider]["externalId"]
    phone = user["phoneNumbers"][0]["value"]

    text = provision("check", manifest)
    assert text.code == 1, text.out + text.err
    assert f"  drifted user {anchor} (target {known[name]}) -> update" in text.out
    assert f'      title: expected "{user["title"]}"; found "Edited by hand"' in text.out
    assert f'      phoneNumbers[type eq "work"].value: expected "{phone}"; found null' in text.out
    assert f'      members: missing "{dropped_id}"; not expected "{outsider_id}"' in text.out

    report = provision("check", manifest, "--output", "json")
    assert report.code == 1
    by_type = {d["object_type"]: d for d in report.differences("drifted")}
    assert len(report.differences("drifted")) == 2 and set(by_type) == {"user", "group"}
    assert (by_type["user"]["anchor"], by_type["user"]["target_anchor"]) == (anchor, known[name])
    assert by_type["user"]["attributes"] == {
        "title": {"expected": user["title"], "found": "Edited by hand"},
        'phoneNumbers[type eq "work"].value': {"expected": phone, "found": None}}
    assert by_type["group"]["target_anchor"] == known[group] and by_type["group"]["action"] == "update"
    assert by_type["group"]["attributes"] == {"members": {"missing_values": [dropped_id],
                                                          "extra_values": [outsider_id]}}
    assert snapshot(url) == edited, "check writes nothing to the service"

    fixed = provision("check", manifest, "--fix", "--output", "json")
    assert fixed.code == 0, fixed.out + fixed.err
    counts = fixed.json()["object_types"]
    assert (counts["user"]["updated"], counts["group"]["updated"]) == (1, 1), counts
    assert counts["user"]["added"] == counts["group"]["added"] == 0
    assert (now := snapshot(url)) == before, changes(before, now)
    assert provision("check", manifest).code == 0


def strays(url: str) -> tuple[str, str]:
    """A user made by hand with the company's domain, and a service account outside it: their ids."""
    made = []
    for user_name in ("left.behind@example.org", "svc.backup@ops.example.net"):
        made.append(send("POST", f"{url}/Users", {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                                                    "userName": user_name, "active": True})["id"])
    return made[0], made[1]


def test_a_user_inside_the_boundary_is_deleted_and_one_outside_never_touched(world, provision):
    url = world["url"]
    manifest = manifest_for(world["tmp"], url, f"correlate: [userName], {BOUNDARY}",
                            "    reconcile: {orphan: delete}\n")
    assert provision("validate", manifest).code == 0
    before = provisioned(world, provision, manifest)
    inside, outside = strays(url)
    made = snapshot(url)
    service = send("GET", f"{url}/Users/{outside}")

    report = provision("check", manifest, "--output", "json")
    assert report.code == 1, report.out + report.err
    [orphan] = report.differences("orphan")
    assert (orphan["object_type"], orphan["anchor"], orphan["action"]) == ("user", inside, "delete")
    assert "left.behind@example.org" in orphan["note"]
    assert report.json()["check"]["situations"]["user"]["orphan"] == 1, "the service account is no orphan"
    assert snapshot(url) == made

    fixed = provision("check", manifest, "--fix", "--output", "json")
    assert fixed.code == 0, fixed.out + fixed.err
    user = fixed.json()["object_types"]["user"]
    assert (user["reconciled"]["orphan"], user["deleted"], user["added"], user["updated"]) == (1, 1, 0, 0)
    after = snapshot(url)
    assert "left.behind@example.org" not in after["users"]
    assert send("GET", f"{url}/Users/{outside}") == service, "outside the boundary: never touched (meta too)"
    del after["users"]["svc.backup@ops.example.net"]
    assert after == before, changes(before, after)
    assert provision("check", manifest).code == 0, "a user outside the boundary is not a difference"

    # many orphans at once look like a broken read: the deletion guard holds them until allowed
    for i in range(6):
        send("POST", f"{url}/Users", {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                                      "userName": f"o{i}@example.org"})
    held = provision("run", manifest, "--reconcile", "--output", "json")
    assert held.code == 3, held.out + held.err
    assert held.json()["object_types"]["user"]["held"] == 6 and held.json()["object_types"]["user"]["deleted"] == 0
    assert len(listing(url, "Users")) == len(before["users"]) + 1 + 6
    assert provision("run", manifest, "--reconcile", "--allow-deletes", "6").code == 0
    after = snapshot(url)
    assert after["users"].pop("svc.backup@ops.example.net") == made["users"]["svc.backup@ops.example.net"]
    assert after == before, changes(before, after)


def test_without_a_boundary_users_nobody_claims_are_only_reported(world, provision):
    url, manifest = world["url"], world["manifest"]
    provisioned(world, provision)
    inside, outside = strays(url)
    made = snapshot(url)

    report = provision("check", manifest, "--output", "json")
    assert report.code == 1
    orphans = report.differences("orphan")
    assert sorted(o["anchor"] for o in orphans) == sorted([inside, outside])
    assert all("action" not in o for o in orphans), "reported only: no boundary is declared"

    orphans_only_reported(provision, manifest, 2)
    assert snapshot(url) == made, "nothing deleted, nothing disabled"


def test_a_lost_state_store_links_users_by_username_and_groups_by_display_name(world, provision):
    url, manifest = world["url"], world["manifest"]
    before = provisioned(world, provision)
    known = ids(url)
    lose_state(world)

    counts = provision("run", manifest, "--output", "json").adopted(GROUPS)
    assert counts["user"]["reconciled"]["unlinked"] == len(before["users"])
    assert (now := snapshot(url)) == before, changes(before, now)
    assert ids(url) == known, "the same resources, none made again"
    groups = [g["displayName"] for g in listing(url, "Groups")]
    assert sorted(groups) == sorted(set(groups)) and len(groups) == GROUPS, "no group twice"

    check_is_clean(provision, manifest, GROUPS)


def test_two_people_claiming_one_user_collide_and_nothing_is_added_twice(world, provision):
    url, manifest, data = world["url"], world["manifest"], world["data"]
    before = provisioned(world, provision)
    lose_state(world)
    rows = (data / "people.csv").read_text().splitlines(keepends=True)
    header = rows[0].rstrip("\n").split(",")
    records = [dict(zip(header, r.rstrip("\n").split(","), strict=False)) for r in rows[1:]]
    managers = {r["manager_id"] for r in records}
    n, first = next((n, r) for n, r in enumerate(records, 1) if r["status"] == "active"
                    and r["employee_id"] not in managers)
    twin = rows[n].replace(first["employee_id"], "E9999999", 1)  # the same e-mail: the same userName
    (data / "people.csv").write_text("".join(rows + [twin]))

    run = provision("run", manifest, "--output", "json")
    assert run.code == 1, run.out + run.err
    assert run.json()["status"] == "partial"
    user = run.json()["object_types"]["user"]
    assert (user["reconciled"]["collision"], user["failed"], user["added"]) == (1, 1, 0), user
    report = provision("check", manifest, "--output", "json")
    assert report.code == 1
    [collision] = report.differences("collision")
    assert collision["object_type"] == "user" and collision["anchor"] == "E9999999"
    assert first["email"].lower() in collision["note"] and "another source object already claims" in collision["note"]
    # nobody added twice, and the user still belongs to the one it was made for (externalId unchanged)
    assert (now := snapshot(url)) == before, changes(before, now)

    again = provision("run", manifest, "--output", "json")
    assert again.code == 1 and again.json()["object_types"]["user"]["added"] == 0, "still held, still not added"
    assert len(listing(url, "Users")) == len(before["users"])


def test_a_state_pointed_at_another_tenant_stops_until_rebound(world, provision, scim, monkeypatch):
    url, manifest = world["url"], world["manifest"]
    before = provisioned(world, provision)
    other = scim.tenant()
    monkeypatch.setenv("SCIM_URL", other)

    stopped = provision("run", manifest)
    assert stopped.code == 4, stopped.out + stopped.err
    assert url in stopped.err and other in stopped.err and "--rebind" in stopped.err
    assert listing(other, "Users") == [] and listing(other, "Groups") == [], "nothing written to the new tenant"

    rebound = provision("run", manifest, "--rebind", "--output", "json")
    assert rebound.code == 0, rebound.out + rebound.err
    counts = rebound.json()["object_types"]
    assert counts["user"]["added"] == len(before["users"]) and counts["group"]["added"] == GROUPS
    assert (now := snapshot(other)) == before, changes(before, now)
    again = provision("run", manifest, "--output", "json").json()["object_types"]
    assert all(c["added"] + c["updated"] + c["deleted"] == 0 for c in again.values()), again
    assert provision("check", manifest).code == 0
    assert (now := snapshot(url)) == before, changes(before, now)  # the old tenant was not touched
