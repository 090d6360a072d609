"""ETags (RFC 7644 §3.14), the first versioned connector: the version a write returns is recorded
by the engine and sent back as If-Match; a stale one (someone changed the object) gets 412, and
the connector reads the object again, re-applies the change on the new version and reports what
the server holds, so the next diff starts from the truth."""

from __future__ import annotations

import json

import requests
from servers.scim import TOKEN

from runner.connectors.base import Operation

from .conftest import env_for, hr_manifest


def test_negotiation_says_versioned_when_the_server_has_etags(open_scim):
    assert open_scim().negotiate("Users").versioned


def test_if_match_with_the_recorded_version_and_412_rereads_and_reapplies(open_scim, proxy, scim, tenant):
    c = open_scim(f"{proxy.url}/{tenant}")
    [added] = c.apply([Operation(1, "add", "Users", attributes={"userName": "etag", "externalId": "e"})])
    assert added.version
    [r] = c.apply([Operation(2, "update", "Users", anchor=added.anchor, version=added.version,
                             attributes={"title": "First"})])
    assert r.ok and r.version and r.version != added.version
    patch = proxy.faults.requests("PATCH")[-1]
    assert patch[2].get("If-Match") == added.version and patch[3] == 204

    # someone else changes the object: our recorded version is stale now
    requests.patch(f"{scim.root}/{tenant}/Users/{added.anchor}", headers={"Authorization": f"Bearer {TOKEN}",
                   "Content-Type": "application/scim+json"},
                   json={"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                         "Operations": [{"op": "replace", "path": "displayName", "value": "Theirs"}]}, timeout=5)
    [again] = c.apply([Operation(3, "update", "Users", anchor=added.anchor, version=r.version,
                                 attributes={"title": "Second"})])
    assert again.ok, again.error
    statuses = [s[3] for s in proxy.faults.requests("PATCH")[-2:]]
    assert statuses == [412, 204], "the stale version was refused, the change re-applied on the new one"
    assert again.stored["title"] == "Second" and again.stored["displayName"] == "Theirs", again.stored
    assert again.version == c.get("Users", added.anchor).version


def test_through_the_engine_a_change_made_by_someone_else_is_corrected_next_run(provision, proxy, scim, tenant,
                                                                                 tmp_path, monkeypatch):
    url = f"{proxy.url}/{tenant}"
    manifest = hr_manifest(tmp_path, url, people=10, groups=1)
    for k, v in env_for(url, tmp_path).items():
        monkeypatch.setenv(k, v)
    assert provision("run", manifest).code == 0
    users = requests.get(f"{scim.root}/{tenant}/Users", headers={"Authorization": f"Bearer {TOKEN}"},
                         timeout=5).json()["Resources"]
    victim = users[0]
    requests.patch(f"{scim.root}/{tenant}/Users/{victim['id']}", headers={"Authorization": f"Bearer {TOKEN}",
                   "Content-Type": "application/scim+json"},
                   json={"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                         "Operations": [{"op": "replace", "path": "title", "value": "Changed by hand"}]}, timeout=5)
    people = tmp_path / "manifests" / "data" / "people.csv"
    lines = people.read_text().splitlines()
    header = lines[0].split(",")
    for i, line in enumerate(lines[1:], 1):
        cells = line.split(",")
        if cells[0] == victim["externalId"]:
            cells[header.index("department")] = "Moved"
            lines[i] = ",".join(cells)
    people.write_text("\n".join(lines) + "\n")
    proxy.faults.seen.clear()
    assert provision("run", manifest).code == 0
    assert [s[3] for s in proxy.faults.requests("PATCH")] == [412, 204]
    proxy.faults.seen.clear()
    third = provision("run", manifest, "--output", "json")
    assert third.code == 0
    # the state learnt the title someone else set (stored), so the diff sees it and puts HR's back
    fixed = requests.get(f"{scim.root}/{tenant}/Users/{victim['id']}", headers={"Authorization": f"Bearer {TOKEN}"},
                         timeout=5).json()
    assert fixed["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["department"] == "Moved"
    assert json.loads(third.out)["object_types"]["user"]["updated"] == 1, third.out
    assert fixed.get("title") == victim.get("title"), "HR's title is back"
