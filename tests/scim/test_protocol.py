"""The pure protocol functions, and the filters they build taken literally by the real server."""

from __future__ import annotations

import pytest

from runner.connectors.base import Operation
from runner.connectors.scim import protocol as p


def test_filter_values_are_escaped_as_json_strings():
    assert p.eq("userName", 'o"brien\\x') == 'userName eq "o\\"brien\\\\x"'
    assert p.eq("userName", "Łukasz Ødegård") == 'userName eq "Łukasz Ødegård"'
    assert p.eq("active", True) == "active eq true"


@pytest.mark.parametrize("name", ['o"brien', "back\\slash", "Łukasz Ødegård", "a) or (userName pr", "tab\there"])
def test_lookup_finds_exactly_the_user_whatever_characters_the_name_has(open_scim, name):
    c = open_scim()
    results = list(c.apply([Operation(1, "add", "Users", attributes={"userName": name, "externalId": name}),
                            Operation(2, "add", "Users", attributes={"userName": "other", "externalId": "o"})]))
    assert all(r.ok for r in results), [r.error for r in results]
    assert [r.anchor for r in c.lookup("Users", {"userName": name})] == [results[0].anchor]
    assert [r.anchor for r in c.lookup("Users", {"externalId": name})] == [results[0].anchor]


def test_paths_parse_with_filters_sub_attributes_and_urns():
    assert p.parse_path('emails[type eq "work"].value') == p.Path(None, "emails", 'type eq "work"', "value")
    urn = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
    assert p.parse_path(f"{urn}:manager") == p.Path(urn, "manager")
    assert p.parse_path("name.givenName") == p.Path(None, "name", None, "givenName")
    with pytest.raises(ValueError):
        p.parse_path("emails[type eq")


def test_typed_elements_sub_attributes_and_extensions_round_trip(open_scim):
    c = open_scim()
    attributes = {"userName": "rt", "externalId": "rt", 'emails[type eq "work"].value': "w@x.org",
                  'emails[type eq "home"].value': "h@x.org", "name.givenName": "G", "employeeNumber": "7",
                  "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department": "D"}
    [r] = c.apply([Operation(1, "add", "Users", attributes=attributes)])
    got = c.get("Users", r.anchor).attributes
    assert got['emails[type eq "work"].value'] == "w@x.org" and got['emails[type eq "home"].value'] == "h@x.org"
    assert got["name.givenName"] == "G" and got["employeeNumber"] == "7" and got["department"] == "D"
    # a typed element that is not there yet is added; one that is, replaced; None removes it
    [u] = c.apply([Operation(2, "update", "Users", anchor=r.anchor, attributes={
        'phoneNumbers[type eq "work"].value': "+1 555", 'emails[type eq "work"].value': "w2@x.org",
        'emails[type eq "home"].value': None})])
    assert u.ok, u.error
    got = c.get("Users", r.anchor).attributes
    assert got['phoneNumbers[type eq "work"].value'] == "+1 555" and got['emails[type eq "work"].value'] == "w2@x.org"
    assert 'emails[type eq "home"].value' not in got


def test_an_unknown_attribute_fails_that_object_with_close_names(open_scim):
    c = open_scim()
    [r] = c.apply([Operation(1, "add", "Users", attributes={"userName": "u", "dispalyName": "x"})])
    assert not r.ok and "dispalyName" in str(r.error) and "displayName" in str(r.error)


def test_split_by_size_keeps_every_value_within_both_limits():
    ops = [{"op": "add", "path": "members", "value": [{"value": f"id{i:05d}"} for i in range(1000)]}] + \
        [{"op": "remove", "path": f'members[value eq "r{i}"]'} for i in range(30)]
    groups = p.split_by_size(ops, 4000, 150)
    assert all(p.body_size(p.patch_body(g)) <= 4000 for g in groups)
    values = [v["value"] for g in groups for o in g if o["op"] == "add" for v in o["value"]]
    assert values == [f"id{i:05d}" for i in range(1000)]
    assert sum(o["op"] == "remove" for g in groups for o in g) == 30


def test_discovery_adapts_and_describes(open_scim):
    c = open_scim()
    info = c.server_info()
    assert info["patch"] and info["etag"] and info["bulk_max_operations"] == 1000
    [users, groups] = sorted(c.discover(), key=lambda i: i.name)[::-1] if False else \
        sorted(c.discover(), key=lambda i: i.name != "Users")
    names = {a.name for a in users.attributes}
    assert users.complete and {"userName", "manager", "employeeNumber", 'emails[type eq "work"].value'} <= names
    assert "members" in {a.name for a in groups.attributes}
