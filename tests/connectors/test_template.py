"""Body templates (runner/connectors/template.py): one template makes the create, the PATCH of what
changed and the PUT, and reads a record back into the same attributes (so reconciliation compares
like with like)."""

from __future__ import annotations

from runner.connectors import template as tpl

ACCOUNT = {
    "login": "{login}",
    "kind": "person",
    "profile": {"firstName": "{first}", "email": "{email}", "label": "{first} ({login})"},
    "emails": [{"type": "work", "value": "{email}"}],
    "active": "{active}",
    "groups": "{groups}",
}
VALUES = {"login": "ana", "first": "Ana", "email": "ana@example.org", "active": False, "groups": ["a", "b"]}


def test_a_create_keeps_types_nests_and_fills_text_and_constants():
    assert tpl.render(ACCOUNT, VALUES) == {
        "login": "ana", "kind": "person",
        "profile": {"firstName": "Ana", "email": "ana@example.org", "label": "Ana (ana)"},
        "emails": [{"type": "work", "value": "ana@example.org"}], "active": False, "groups": ["a", "b"]}


def test_a_create_leaves_out_keys_whose_value_is_null_and_array_elements_about_them():
    body = tpl.render(ACCOUNT, {**VALUES, "email": None})
    assert "email" not in body["profile"] and body["emails"] == []


def test_a_patch_sends_only_what_changed_and_a_cleared_value_as_null():
    body = tpl.render(ACCOUNT, {"email": None, "active": True}, only={"email", "active"}, nulls=True)
    assert body == {"kind": "person", "profile": {"email": None}, "emails": [{"type": "work", "value": None}],
                    "active": True}


def test_reading_a_record_back_gives_the_attributes_that_made_it():
    record = {"id": 7, **tpl.render(ACCOUNT, VALUES), "updated": "2026-01-01"}
    found = tpl.extract(ACCOUNT, record)
    assert {k: found[k] for k in ("login", "first", "email", "active", "groups")} == \
        {k: VALUES[k] for k in ("login", "first", "email", "active", "groups")}
    assert found["id"] == 7 and found["profile.firstName"] == "Ana"


def test_a_field_the_record_lacks_reads_as_null():
    assert tpl.extract(ACCOUNT, {"login": "ana"})["email"] is None


def test_without_a_template_dotted_names_nest_and_nested_fields_read_dotted():
    body = tpl.render(None, {"name.given": "Ana", "mail": "a@x", "phone": None})
    assert body == {"name": {"given": "Ana"}, "mail": "a@x"}
    assert tpl.extract(None, body) == {"name.given": "Ana", "mail": "a@x"}


def test_paths_escape_values_and_braces_can_be_written_twice():
    assert tpl.text("/users/{id}/members/{member}", {"id": "a b/c", "member": 5}, quote=True) == \
        "/users/a%20b%2Fc/members/5"
    assert tpl.text("{{literal}} {x}", {"x": True}) == "{literal} true"
    assert list(tpl.fields({"a": "{x} {y}", "b": ["{z}"], "c": 1})) == ["x", "y", "z"]
    assert tpl.composite(ACCOUNT) and not tpl.composite({"a": "{x}"})
