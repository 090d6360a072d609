"""What the connector adapts to: a service without PATCH gets whole-object PUTs (negotiated as
``whole_object``), a PATCH answered 200 with a body is as good as 204, and a Retry-After longer
than one request should wait pauses the pass instead (Throttled)."""

from __future__ import annotations

from runner.connectors.base import Operation, Throttled

from .world import listing


def test_without_patch_updates_are_puts_of_the_whole_object(open_scim, proxy, scim, tenant):
    proxy.faults.patch_unsupported = True
    c = open_scim(f"{proxy.url}/{tenant}")
    caps = c.negotiate("Users")
    assert caps.export_style == "whole_object" and not caps.multi_valued_deltas
    [u] = c.apply([Operation(1, "add", "Users", attributes={
        "userName": "put", "externalId": "put", "title": "Old", "displayName": "Kept", "name.givenName": "G",
        'emails[type eq "home"].value': "h@x.org", 'emails[type eq "work"].value': "w@x.org", "nickName": "nick"})])
    [g] = c.apply([Operation(2, "add", "Groups", attributes={"displayName": "G", "externalId": "g"})])
    [r] = c.apply([Operation(3, "update", "Users", anchor=u.anchor, version=u.version,
                             attributes={"userName": "put", "title": "New", "name.familyName": "F",
                                         'emails[type eq "work"].value': "w2@x.org", "nickName": None})])
    assert r.ok, r.error
    [m] = c.apply([Operation(4, "update", "Groups", anchor=g.anchor, attributes={"displayName": "G",
                                                                                 "members": [u.anchor]})])
    assert m.ok, m.error
    assert not proxy.faults.requests("PATCH") and len(proxy.faults.requests("PUT")) == 2
    [user] = listing(f"{scim.root}/{tenant}", "Users")
    assert (user["title"], user["displayName"], user["externalId"]) == ("New", "Kept", "put")
    assert user["name"] == {"givenName": "G", "familyName": "F"} and "nickName" not in user
    assert sorted((e["type"], e["value"]) for e in user["emails"]) == [("home", "h@x.org"), ("work", "w2@x.org")]
    [group] = listing(f"{scim.root}/{tenant}", "Groups")
    assert [x["value"] for x in group["members"]] == [u.anchor]


def test_a_patch_answered_200_with_the_resource_is_accepted(open_scim, proxy, scim, tenant):
    proxy.faults.patch_returns_body = True
    c = open_scim(f"{proxy.url}/{tenant}")
    [u] = c.apply([Operation(1, "add", "Users", attributes={"userName": "body", "externalId": "b"})])
    [r] = c.apply([Operation(2, "update", "Users", anchor=u.anchor, version=u.version, attributes={"title": "T"})])
    assert r.ok and r.version and r.version != u.version
    assert proxy.faults.requests("PATCH")[-1][3] == 200
    assert listing(f"{scim.root}/{tenant}", "Users")[0]["title"] == "T"


def test_a_retry_after_longer_than_a_request_waits_is_throttled_with_it(open_scim, proxy, tenant):
    c = open_scim(f"{proxy.url}/{tenant}", max_retry_after=1)
    proxy.faults.throttle_writes, proxy.faults.retry_after = 1, "300"
    [r] = c.apply([Operation(1, "add", "Users", attributes={"userName": "later", "externalId": "l"})])
    assert isinstance(r.error, Throttled) and r.error.retry_after == 300
