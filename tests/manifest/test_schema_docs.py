"""Every property of the shipped JSON Schemas says what it does and shows an example.

Editors (VS Code with the YAML extension, JetBrains) show a property's ``description`` on hover and
offer its ``examples`` as completions; ``provision schema`` prints the same text. An undocumented
property is one an identity engineer has to look up in the code, and an example that the schema
itself rejects teaches the wrong thing: both fail here, named by their JSON pointer.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest

from runner.manifest import schema

SCHEMAS = (schema.MANIFEST, schema.MAPPING, schema.MAPPING_TESTS)
# Keywords whose values are data (or a condition), not declarations of properties.
_DATA = {"const", "enum", "default", "examples", "if", "not"}


def _escape(name: str) -> str:
    return name.replace("~", "~0").replace("/", "~1")


def declared(node: Any, pointer: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Each property (under properties / patternProperties, at any depth: in $defs, items,
    additionalProperties, allOf/oneOf/then branches) and each $defs entry, with its JSON pointer.
    Conditions (``if``, ``not``) are tests of values, not declarations, and are skipped."""
    if isinstance(node, list):
        for i, item in enumerate(node):
            yield from declared(item, f"{pointer}/{i}")
        return
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        here = f"{pointer}/{_escape(key)}"
        if key in ("properties", "patternProperties", "$defs") and isinstance(value, dict):
            for name, sub in value.items():
                at = f"{here}/{_escape(name)}"
                yield at, sub
                yield from declared(sub, at)
        elif key not in _DATA:
            yield from declared(value, here)


@pytest.mark.parametrize("name", SCHEMAS)
def test_the_schema_is_valid_json_schema_2020_12(name: str):
    document = schema.load_schema(name)
    assert document["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(document)


@pytest.mark.parametrize("name", SCHEMAS)
def test_every_property_has_a_description_and_examples(name: str):
    missing = [f"{name}#{pointer}: no {what}"
               for pointer, sub in declared(schema.load_schema(name))
               for what in ("description", "examples")
               if not (isinstance(sub, dict) and sub.get(what))]
    assert not missing, "\n".join(missing)


@pytest.mark.parametrize("name", SCHEMAS)
def test_every_example_is_valid_against_its_own_property(name: str):
    document = schema.load_schema(name)
    wrong = []
    for pointer, sub in declared(document):
        validator = schema.validator({"$ref": f"{document['$id']}#{pointer}"})
        for i, example in enumerate(sub.get("examples", []) if isinstance(sub, dict) else []):
            for error in validator.iter_errors(example):
                wrong.append(f"{name}#{pointer}/examples/{i}: {error.message}")
    assert not wrong, "\n".join(wrong)


def test_the_walk_reaches_nested_and_conditional_properties():
    pointers = {p for p, _ in declared(schema.load_schema(schema.MANIFEST))}
    assert "/$defs/csv_connector/properties/objects/additionalProperties/properties/key" in pointers
    assert "/$defs/mapping_entry/properties/proposed/oneOf/1/properties/expression" in pointers
    assert "/$defs/object_type/properties/when_deleted/oneOf/1/properties/disable_then_delete_after" in pointers
    assert not any("/if/" in p for p in pointers)


def test_a_property_without_documentation_is_named_by_its_pointer():
    bare = {"$defs": {"x": {"description": "d", "examples": [{}],
                            "properties": {"good": {"description": "d", "examples": [1]}, "bad": {"type": "string"}}}}}
    missing = [p for p, sub in declared(bare) if not sub.get("description") or not sub.get("examples")]
    assert missing == ["/$defs/x/properties/bad"]
