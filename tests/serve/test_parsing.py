"""The protocol layer's pure parts in-process: filters, PATCH parsing and applying, projection, and
the in-memory store, on the cases the HTTP tests do not reach cheaply."""

from __future__ import annotations

import time
from typing import Any

import pytest

from runner.serve.conform import conform_resource
from runner.serve.errors import Conflict, Invalid, NotFound, PreconditionFailed
from runner.serve.filters import parse_filter, parse_path
from runner.serve.patch import apply, parse_patch
from runner.serve.projection import project
from runner.serve.schema import GROUP, USER
from runner.serve.store import MemoryStore, etag_matches

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


def patched(attributes: dict[str, Any], *operations: dict[str, Any], kind: Any = USER) -> dict[str, Any]:
    return apply(kind, attributes, parse_patch(kind, {"Operations": list(operations)}))


def test_an_empty_filter_is_no_filter() -> None:
    assert parse_filter(USER, None) is None and parse_filter(USER, "  ") is None


def test_filter_names_and_keywords_are_case_insensitive() -> None:
    match = parse_filter(USER, 'USERNAME EQ "Bjensen" AND ExternalId eq "E1"')
    assert match is not None
    assert match("1", {"userName": "bjensen", "externalId": "E1"})
    assert not match("1", {"userName": "bjensen", "externalId": "e1"})  # externalId is caseExact
    by_id = parse_filter(USER, 'id eq "abc"')
    assert by_id is not None and by_id("abc", {}) and not by_id("ABC", {})
    literal = parse_filter(USER, 'active eq false and title eq "say \\"hi\\""')
    assert literal is not None and literal("1", {"active": False, "title": 'say "hi"'})


def test_patch_paths() -> None:
    path = parse_path(USER, f'{ENTERPRISE}:manager.value')
    assert (path.block, path.attr and path.attr.name, path.sub and path.sub.name) == (ENTERPRISE, "manager", "value")
    whole = parse_path(USER, ENTERPRISE.upper())
    assert (whole.block, whole.attr) == (ENTERPRISE, None)
    filtered = parse_path(USER, 'Emails[Type eq "work"].VALUE')
    assert filtered.text == 'emails[type eq "work"].value'
    with pytest.raises(Invalid) as caught:
        parse_path(USER, "emails[type eq]")
    assert caught.value.scim_type == "invalidPath"


def test_apply_leaves_the_stored_version_alone() -> None:
    stored = {"userName": "b", "emails": [{"type": "work", "value": "a@x"}], "name": {"givenName": "B"}}
    snapshot = repr(stored)
    after = patched(stored, {"op": "replace", "path": 'emails[type eq "work"].value', "value": "b@x"},
                    {"op": "replace", "path": "name.givenName", "value": "C"})
    assert repr(stored) == snapshot
    assert after["emails"] == [{"type": "work", "value": "b@x"}] and after["name"] == {"givenName": "C"}


def test_one_primary_value() -> None:
    """RFC 7644 §3.5.2: making a value primary makes the others not primary."""
    stored = {"userName": "b", "emails": [{"type": "work", "value": "a@x", "primary": True}]}
    after = patched(stored, {"op": "add", "path": "emails", "value": [{"type": "home", "value": "h@x", "primary": "True"}]})
    assert after["emails"] == [{"type": "work", "value": "a@x", "primary": False},
                               {"type": "home", "value": "h@x", "primary": True}]


def test_adding_what_is_there_changes_nothing() -> None:
    stored = {"displayName": "g", "members": [{"value": "1"}, {"value": "2"}]}
    after = patched(stored, {"op": "add", "path": "members", "value": [{"value": "2"}, {"value": "3"}]}, kind=GROUP)
    assert after["members"] == [{"value": "1"}, {"value": "2"}, {"value": "3"}]


def test_whole_extension_and_no_path_forms() -> None:
    stored = {"userName": "b"}
    after = patched(stored, {"op": "add", "path": ENTERPRISE, "value": {"schemas": [ENTERPRISE], "department": "D"}},
                    {"op": "Replace", "value": {ENTERPRISE: {"costCenter": "C"}, "name": {"familyName": "F"}}})
    assert after == {"userName": "b", ENTERPRISE: {"department": "D", "costCenter": "C"}, "name": {"familyName": "F"}}
    assert patched(after, {"op": "remove", "path": ENTERPRISE}) == {"userName": "b", "name": {"familyName": "F"}}


def test_many_member_operations_on_a_big_group_take_linear_time() -> None:
    """One request removing 1,000 members (Entra's old form) and adding 1,000 from a group of
    50,000: each operation is a dict lookup, the member list is walked a constant number of times."""
    stored = {"displayName": "g", "members": [{"value": str(n)} for n in range(50_000)]}
    body = {"Operations": [{"op": "Remove", "path": "members", "value": [{"value": str(n)} for n in range(0, 50_000, 50)]},
                           {"op": "Add", "path": "members", "value": [{"value": f"new-{n}"} for n in range(1000)]}]}
    start = time.perf_counter()
    after = apply(GROUP, stored, parse_patch(GROUP, body))
    assert time.perf_counter() - start < 0.5
    assert len(after["members"]) == 50_000 and after["members"][0] == {"value": "1"}


def test_conform_takes_entra_forms() -> None:
    body = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "UserName": "b", "active": "False",
            "department": "Top-level", "manager": None, "addresses": None, "id": "mine", "groups": [{"value": "g"}]}
    assert conform_resource(USER, body) == {"userName": "b", "active": False, ENTERPRISE: {"department": "Top-level"}}


def test_projection_never_shows_a_password() -> None:
    resource = {"schemas": [], "id": "1", "userName": "b", "password": "p", "meta": {}}
    assert "password" not in project(USER, resource)
    assert project(USER, resource, attributes="password") == {"schemas": [], "id": "1"}


def test_memory_store() -> None:
    store = MemoryStore()
    first = store.create("User", {"userName": "Ann"})
    with pytest.raises(Conflict):
        store.create("User", {"userName": "ANN"})
    with pytest.raises(NotFound):
        store.get("User", "nope")
    with pytest.raises(PreconditionFailed):
        store.replace("User", first.id, {"userName": "Ann"}, if_match='W/"999"')
    second = store.replace("User", first.id, {"userName": "Bea"}, if_match=first.version)
    assert second.version != first.version and second.created == first.created
    assert store.create("User", {"userName": "ann"}).id != first.id  # the old name is free again
    page = store.query("User", parse_filter(USER, 'userName eq "bea"'), 1, 10)
    assert (page.total, [r.id for r in page.records]) == (1, [first.id])
    store.delete("User", first.id)
    assert store.query("User", parse_filter(USER, 'userName eq "bea"'), 1, 10).total == 0
    assert etag_matches('"3", W/"4"', 'W/"4"') and etag_matches("*", 'W/"1"') and not etag_matches('W/"5"', 'W/"4"')
