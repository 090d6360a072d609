"""/Bulk (RFC 7644 §3.7) for adds, with ``bulk: true``: requests within the server's maxOperations
and maxPayloadSize, outcomes matched by bulkId, a duplicate inside a bulk refused alone, an
answer lost to a dropped connection settled by looking each object up."""

from __future__ import annotations

import dataclasses
import json

from runner.connectors.base import AlreadyExists, Operation

from .conftest import env_for, hr_manifest
from .world import listing, tenant_state


def users(n: int, start: int = 0) -> list[Operation]:
    return [Operation(100 + i, "add", "Users", attributes={"userName": f"b{i:03d}", "externalId": f"B{i}"},
                      source_anchor=f"B{i}") for i in range(start, start + n)]


def test_adds_go_in_bulk_requests_within_max_operations_and_max_payload(open_scim, proxy, scim, tenant):
    c = open_scim(f"{proxy.url}/{tenant}", bulk=True)
    c.features = dataclasses.replace(c.features, bulk_max_operations=7)
    results = list(c.apply(users(30)))
    assert all(r.ok for r in results) and len({r.anchor for r in results}) == 30
    assert [s[3] for s in proxy.faults.requests("POST")] == [200] * 5, "30 adds in bulks of at most 7"
    assert sorted(u["id"] for u in listing(f"{scim.root}/{tenant}", "Users")) == sorted(r.anchor for r in results)
    assert all(r.version for r in results)

    proxy.faults.seen.clear()
    c._payload = 1500  # a small maxPayloadSize: each request body stays under it
    assert all(r.ok for r in c.apply(users(20, 30)))
    bulks = proxy.faults.requests("POST")
    assert len(bulks) >= 3 and all(int(s[2]["Content-Length"]) <= 1500 for s in bulks)


def test_a_duplicate_inside_a_bulk_fails_alone_as_already_exists(open_scim, tenant, scim):
    c = open_scim(bulk=True)
    ops = users(3) + [dataclasses.replace(users(1)[0], id=999)]
    results = {r.op_id: r for r in c.apply(ops)}
    assert [results[o.id].ok for o in ops[:3]] == [True] * 3
    assert isinstance(results[999].error, AlreadyExists)


def test_a_bulk_whose_answer_is_lost_is_settled_by_lookups(open_scim, proxy, scim, tenant):
    c = open_scim(f"{proxy.url}/{tenant}", bulk=True)
    proxy.faults.drop_after_post = 1
    results = list(c.apply(users(4)))
    assert all(isinstance(r.error, AlreadyExists) for r in results), [r.error for r in results]
    assert len(listing(f"{scim.root}/{tenant}", "Users")) == 4


def test_the_example_manifest_with_bulk_gives_the_same_tenant(provision, scim, tmp_path, monkeypatch):
    plain, bulk = scim.tenant(), scim.tenant()
    manifest = hr_manifest(tmp_path, plain, people=30, groups=3)
    for k, v in env_for(plain, tmp_path).items():
        monkeypatch.setenv(k, v)
    assert provision("run", manifest).code == 0
    bulk_manifest = manifest.with_name("bulk.yaml")
    bulk_manifest.write_text(manifest.read_text().replace("    concurrency: 4\n", "    concurrency: 4\n    bulk: true\n"))
    monkeypatch.setenv("SCIM_URL", bulk)
    monkeypatch.setenv("PROVISION_STATE", str(tmp_path / "bulk-state.db"))
    run = provision("run", bulk_manifest, "--output", "json")
    assert run.code == 0, run.err
    assert json.loads(run.out)["object_types"]["user"]["failed"] == 0
    assert tenant_state(bulk) == tenant_state(plain)


def test_a_run_with_several_threads_fills_its_bulk_requests(provision, proxy, tenant, tmp_path, monkeypatch):
    """The engine deals a round to its threads in shares at least as big as the connector batches
    (Capabilities.batch_size: the server's maxOperations with bulk on), as long as each thread
    gets one: 40 new people in one round (no manager to wait for) at concurrency 4 go in one
    /Bulk per thread, not in the 16 small shares an operation-at-a-time connector gets."""
    url = f"{proxy.url}/{tenant}"
    manifest = hr_manifest(tmp_path, url, people=40, groups=1)
    manifest.write_text(manifest.read_text().replace("    concurrency: 4\n", "    concurrency: 4\n    bulk: true\n"))
    mapping = tmp_path / "mappings" / "person-to-scim-user.yaml"
    mapping.write_text(mapping.read_text().replace("    source: manager_id\n    reference: user\n",
                                                   "    constant: null\n"))
    for k, v in env_for(url, tmp_path).items():
        monkeypatch.setenv(k, v)
    run = provision("run", manifest, "--output", "json")
    assert run.code == 0, run.err
    added = json.loads(run.out)["object_types"]["user"]["added"]
    assert added > 30
    bulks = [s for s in proxy.faults.requests("POST") if s[1].endswith("/Bulk")]
    assert len(bulks) <= 4 + 1, f"{added} adds in {len(bulks)} bulk requests"  # users: one per thread; the group
