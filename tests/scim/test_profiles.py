"""Each compatibility profile against the proxy playing a service with that deviation; without
the profile, the same service makes the connector fail clearly (so the test can fail)."""

from __future__ import annotations

from runner.connectors.base import AlreadyExists, ObjectError, Operation

from .world import listing


def users_and_group(c, n: int = 3):
    ids = [r.anchor for r in c.apply([Operation(i, "add", "Users", attributes={"userName": f"p{i}", "externalId": f"p{i}"})
                                      for i in range(n)])]
    [g] = c.apply([Operation(9, "add", "Groups", attributes={"displayName": "G", "externalId": "g",
                                                              "members": ids})])
    assert g.ok, g.error
    return ids, g.anchor


def test_no_patch_value_filters_removes_members_by_read_modify_write(open_scim, proxy, scim, tenant):
    proxy.faults.refuse_value_filter_paths = True
    strict = open_scim(f"{proxy.url}/{tenant}")
    ids, group = users_and_group(strict)
    [refused] = strict.apply([Operation(1, "update", "Groups", anchor=group, remove_values={"members": ids[:1]})])
    assert not refused.ok and "filters in PATCH paths are not supported" in str(refused.error)

    c = open_scim(f"{proxy.url}/{tenant}", profile="no-patch-value-filters")
    [r] = c.apply([Operation(2, "update", "Groups", anchor=group, remove_values={"members": ids[:2]},
                             add_values={"members": ids[:1]})])
    assert r.ok, r.error
    [stored] = listing(f"{scim.root}/{tenant}", "Groups")
    assert sorted(m["value"] for m in stored["members"]) == sorted([ids[0], ids[2]])
    patch = [r for r in proxy.faults.requests("PATCH") if r[1].endswith(f"/Groups/{group}")][-1]
    assert patch[2].get("If-Match"), "the rewrite is guarded by the version it read"


def test_string_booleans_are_sent_and_read_as_the_service_keeps_them(open_scim, proxy, scim, tenant):
    proxy.faults.booleans_as_strings = True
    c = open_scim(f"{proxy.url}/{tenant}", profile="string-booleans")
    [r] = c.apply([Operation(1, "add", "Users", attributes={"userName": "b", "externalId": "b", "active": True})])
    assert r.ok, r.error
    [d] = c.apply([Operation(2, "disable", "Users", anchor=r.anchor, attributes={"active": False})])
    assert d.ok, d.error
    assert c.get("Users", r.anchor).attributes["active"] is False
    plain = open_scim(f"{proxy.url}/{tenant}")
    assert plain.get("Users", r.anchor).attributes["active"] == "False", "the service really sends strings"


def test_untyped_conflicts_are_taken_for_already_exists_only_with_the_profile(open_scim, proxy, tenant):
    proxy.faults.conflict_without_scim_type = True
    strict = open_scim(f"{proxy.url}/{tenant}")
    op = Operation(1, "add", "Users", attributes={"userName": "dup", "externalId": "dup"})
    assert next(iter(strict.apply([op]))).ok
    [second] = strict.apply([op])
    assert type(second.error) is ObjectError and "profile: untyped-conflicts" in str(second.error)
    lenient = open_scim(f"{proxy.url}/{tenant}", profile="untyped-conflicts")
    [third] = lenient.apply([op])
    assert isinstance(third.error, AlreadyExists)


def test_no_externalid_filter_looks_up_by_reading_the_listing(open_scim, proxy, tenant):
    proxy.faults.refuse_external_id_filter = True
    c = open_scim(f"{proxy.url}/{tenant}", profile="no-externalid-filter", page_size=2)
    anchors = [r.anchor for r in c.apply([Operation(i, "add", "Users", attributes={"userName": f"x{i}",
                                                                                   "externalId": f"X-{i}"})
                                          for i in range(5)])]
    assert [r.anchor for r in c.lookup("Users", {"externalId": "X-3"})] == [anchors[3]]
    assert c.lookup("Users", {"externalId": "x-3"}) == [], "externalId is caseExact"
    strict = open_scim(f"{proxy.url}/{tenant}")
    import pytest

    from runner.connectors.base import ConnectionFailed
    with pytest.raises(ConnectionFailed, match="cannot filter on externalId"):
        strict.lookup("Users", {"externalId": "X-3"})
