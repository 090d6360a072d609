"""Faults the real server cannot make, injected by the proxy in front of it: a 429 storm, 5xx,
413 on big member PATCHes, a connection dropped after a POST was applied, slow answers."""

from __future__ import annotations

import json

from runner.connectors.base import Operation, RetryableError

from .conftest import env_for, hr_manifest
from .world import ENTERPRISE, listing, tenant_state


def test_a_run_under_a_429_storm_finishes_with_nothing_lost(provision, proxy, scim, tenant, tmp_path, monkeypatch):
    clean = scim.tenant()
    manifest = hr_manifest(tmp_path, clean, people=40, groups=4)
    for k, v in env_for(clean, tmp_path).items():
        monkeypatch.setenv(k, v)
    assert provision("run", manifest).code == 0
    expected = tenant_state(clean)

    url = f"{proxy.url}/{tenant}"
    for k, v in env_for(url, tmp_path).items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("PROVISION_STATE", str(tmp_path / "storm.db"))
    proxy.faults.throttle_writes = 120  # more 429s than there are objects, some without Retry-After
    proxy.faults.retry_after = "0"
    run = provision("run", manifest, "--output", "json")
    assert run.code == 0, run.err + run.out
    assert all(c["failed"] == 0 for c in json.loads(run.out)["object_types"].values())
    statuses = [s[3] for s in proxy.faults.requests()]
    assert statuses.count(429) == 120
    assert tenant_state(f"{scim.root}/{tenant}") == expected


def test_429_without_retry_after_and_5xx_on_reads_back_off_and_go_on(open_scim, proxy, tenant):
    proxy.faults.throttle_writes, proxy.faults.retry_after, proxy.faults.errors_5xx = 3, None, 2
    c = open_scim(f"{proxy.url}/{tenant}")
    [r] = c.apply([Operation(1, "add", "Users", attributes={"userName": "storm", "externalId": "x1"})])
    assert r.ok, r.error
    assert [s[3] for s in proxy.faults.requests("POST")] == [429, 429, 429, 201] or \
        [s[3] for s in proxy.faults.requests()].count(500) == 2
    assert c.client.stats.retries >= 5


def test_a_post_whose_answer_is_lost_is_adopted_not_duplicated(open_scim, proxy, scim, tenant):
    c = open_scim(f"{proxy.url}/{tenant}")
    proxy.faults.drop_after_post = 1
    [r] = c.apply([Operation(1, "add", "Groups", attributes={"displayName": "Dropped", "externalId": "G1"},
                             source_anchor="G1")])
    assert not r.ok and type(r.error).__name__ == "AlreadyExists", r.error  # the engine adopts it by externalId
    [found] = c.lookup("Groups", {"externalId": "G1"})
    assert [g["id"] for g in listing(f"{scim.root}/{tenant}", "Groups")] == [found.anchor]


def test_a_big_member_change_goes_in_chunks_and_a_413_halves_the_chunk(open_scim, proxy, scim, tenant):
    c = open_scim(f"{proxy.url}/{tenant}", max_members_per_patch=60)
    users = [Operation(i, "add", "Users", attributes={"userName": f"m{i:04d}", "externalId": f"m{i}"})
             for i in range(150)]
    ids = [r.anchor for r in c.apply(users)]
    [g] = c.apply([Operation(1, "add", "Groups", attributes={"displayName": "Big", "externalId": "big"})])
    proxy.faults.seen.clear()
    proxy.faults.max_patch_bytes = 1800  # ~40 members: the 60-member chunks are refused, then halved
    [r] = c.apply([Operation(2, "update", "Groups", anchor=g.anchor, add_values={"members": ids})])
    assert r.ok, r.error
    patches = proxy.faults.requests("PATCH")
    assert 413 in [s[3] for s in patches] and [s[3] for s in patches].count(204) >= 3
    [group] = listing(f"{scim.root}/{tenant}", "Groups")
    assert sorted(m["value"] for m in group["members"]) == sorted(ids), "every member arrived, none twice"
    [r] = c.apply([Operation(3, "update", "Groups", anchor=g.anchor, remove_values={"members": ids[:110]})])
    assert r.ok, r.error
    [group] = listing(f"{scim.root}/{tenant}", "Groups")
    assert sorted(m["value"] for m in group["members"]) == sorted(ids[110:])


def test_slow_answers_past_the_timeout_are_retried_then_reported(open_scim, proxy, tenant):
    c = open_scim(f"{proxy.url}/{tenant}", timeout=0.2, max_retries=1)
    proxy.faults.delay = 0.5
    [r] = c.apply([Operation(1, "update", "Users", anchor="nobody", attributes={"title": "x"})])
    assert not r.ok and isinstance(r.error, RetryableError) and "no answer within 0.2 s" in str(r.error), r.error
    assert "2 times" in str(r.error), "one try and one retry"


def test_one_slow_create_holds_back_only_the_reports_of_that_manager(provision, proxy, scim, tenant, tmp_path,
                                                                     monkeypatch):
    """Reports go out as soon as their own manager is created, not once every manager of the
    level is: one slow create (a SaaS stalling on one request) does not stall the others' reports."""
    manifest = hr_manifest(tmp_path, scim.root, people=4, groups=1)
    data = tmp_path / "manifests" / "data"
    header = "employee_id,first_name,last_name,preferred_name,email,department,title,manager_id,status,phone," \
             "hire_date,updated_at\n"
    managers = {"M1": "", "M2": ""}
    reports = {f"R{m[1]}{i}": m for m in managers for i in range(3)}
    (data / "people.csv").write_text(header + "".join(
        f"{a},{a},Person,,{a.lower()}@example.org,Sales,Analyst,{m},active,,2020-01-01,2026-01-01T00:00:00Z\n"
        for a, m in (managers | reports).items()))
    (data / "groups.csv").write_text("group_id,name,description,members,updated_at\nG1,Everyone,All,M1;M2,"
                                     "2026-01-01T00:00:00Z\n")
    url = f"{proxy.url}/{tenant}"
    for k, v in env_for(url, tmp_path).items():
        monkeypatch.setenv(k, v)
    proxy.faults.slow_post = (b"m1@example.org", 1.5)
    run = provision("run", manifest, "--output", "json")
    assert run.code == 0, run.err + run.out
    assert json.loads(run.out)["object_types"]["user"]["added"] == 8

    users = {u["externalId"]: u for u in listing(f"{scim.root}/{tenant}", "Users")}
    created = {a: u["meta"]["created"] for a, u in users.items()}
    manager = {a: (u.get(ENTERPRISE, {}).get("manager") or {}).get("value") for a, u in users.items()}
    for report, boss in reports.items():
        assert manager[report] == users[boss]["id"], f"{report} names {boss} as manager"
        assert created[report] > created[boss]
    assert all(created[r] < created["M1"] for r, boss in reports.items() if boss == "M2"), \
        f"M2's reports waited for M1's slow create: {created}"
