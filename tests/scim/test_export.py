"""The example manifest end to end against the real scim2-server: Users with the enterprise manager,
Groups with members by reference, terminations as ``active: false``, removals deleted, and a
second run that sends nothing but reads."""

from __future__ import annotations

import json

from runner import sampledata

from .conftest import env_for, hr_manifest
from .world import tenant_state


def test_hr_to_scim_provisions_then_follows_changes_and_a_rerun_only_reads(provision, proxy, scim, tenant,
                                                                            tmp_path, monkeypatch):
    url = f"{proxy.url}/{tenant}"
    manifest = hr_manifest(tmp_path, url)
    for k, v in env_for(url, tmp_path).items():
        monkeypatch.setenv(k, v)
    data = tmp_path / "manifests" / "data"

    first = provision("run", manifest, "--output", "json")
    assert first.code == 0, first.err + first.out
    state = tenant_state(f"{scim.root}/{tenant}")
    users = state["users"]
    assert users and all(u["active"] is True for u in users.values())
    managed = [u for u in users.values() if u["manager"]]
    assert managed, "some users have a manager, set as a reference to the manager's id"
    assert all(m["manager"] in users for m in managed)
    assert any(g["members"] for g in state["groups"].values())
    assert all(not m.startswith("?") for g in state["groups"].values() for m in g["members"])
    assert all(u["emails"] and u["emails"][0][0] == "work" for u in users.values())

    proxy.faults.seen.clear()
    again = provision("run", manifest, "--output", "json")
    assert again.code == 0, again.err
    counts = json.loads(again.out)["object_types"]
    assert all(c["added"] + c["updated"] + c["deleted"] + c["disabled"] == 0 for c in counts.values()), counts
    writes = [s for s in proxy.faults.requests() if s[0] != "GET"]
    assert writes == [], f"a rerun with nothing changed sends only reads, not {writes[:3]}"

    changes = sampledata.mutate(data, 9, 25.0)
    third = provision("run", manifest, "--output", "json")
    assert third.code == 0, third.err + third.out
    after = tenant_state(f"{scim.root}/{tenant}")
    by_external = {u["externalId"]: u for u in after["users"].values()}
    for gone in changes["removed"]:
        assert gone not in by_external, f"{gone} was removed from HR and must be deleted"
    for left in changes["terminated"]:
        if left in by_external:
            assert by_external[left]["active"] is False, f"{left} terminated: active false, kept"
    assert any(by_external[t]["active"] is False for t in changes["terminated"] if t in by_external)
    assert any(h in by_external for h in changes["hired"]), "new hires are created"
    fourth = provision("run", manifest, "--output", "json")
    counts = json.loads(fourth.out)["object_types"]
    assert all(c["added"] + c["updated"] + c["deleted"] + c["disabled"] == 0 for c in counts.values()), counts
