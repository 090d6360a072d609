"""The JSON Schemas that ship with the package, and schema errors turned into located problems."""

from __future__ import annotations

import difflib
import json
from functools import cache
from importlib import resources
from typing import Any

import jsonschema
from referencing import Registry, Resource

from runner.errors import Problem
from runner.manifest.yamlfile import Located, Path_

MANIFEST = "manifest.schema.json"
MAPPING = "mapping.schema.json"


@cache
def schema_text(name: str) -> str:
    return resources.files("runner").joinpath("schemas", name).read_text(encoding="utf-8")


@cache
def load_schema(name: str) -> dict[str, Any]:
    return json.loads(schema_text(name))


@cache
def _registry() -> Registry:
    pairs = []
    for name in (MANIFEST, MAPPING):
        resource = Resource.from_contents(load_schema(name))
        pairs += [(name, resource), (load_schema(name)["$id"], resource)]
    return Registry().with_resources(pairs)


def validator(schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(schema, registry=_registry())


_TYPE_NAMES = {"string": "text", "object": "a mapping (key: value)", "array": "a list", "integer": "a whole number",
               "number": "a number", "boolean": "true or false", "null": "null"}


def _describe(value: Any) -> str:
    for py, name in ((bool, "true/false"), (int, "a number"), (float, "a number"), (str, "text"),
                     (list, "a list"), (dict, "a mapping"), (type(None), "nothing (null)")):
        if isinstance(value, py):
            return name
    return type(value).__name__


def problems(schema: dict[str, Any], data: Any, located: Located, at: Path_ = ()) -> list[Problem]:
    """Every schema violation in ``data`` (found at ``at`` in ``located``), one Problem each."""
    found: list[Problem] = []
    for error in validator(schema).iter_errors(data):
        path = (*at, *error.absolute_path)
        found.extend(_explain(error, path, located))
    return found


def _explain(error: jsonschema.ValidationError, path: Path_, located: Located) -> list[Problem]:
    v = error.validator
    if v == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = [k for k in error.instance if k not in allowed]
        out = []
        for key in extra:
            hint = difflib.get_close_matches(key, allowed, n=1)
            suggestion = f"; did you mean {hint[0]!r}?" if hint else f"; allowed: {', '.join(allowed)}"
            out.append(located.problem((*path, key), f"unknown key {key!r}{suggestion}", key=True))
        return out
    if v == "required":
        missing = [k for k in error.validator_value if k not in error.instance]
        return [located.problem(path, f"missing required key {k!r}") for k in missing]
    if v == "type":
        wanted = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        names = " or ".join(_TYPE_NAMES.get(w, w) for w in wanted)
        return [located.problem(path, f"expected {names}, got {_describe(error.instance)}")]
    if v == "enum":
        return [located.problem(path, f"must be one of: {', '.join(map(str, error.validator_value))}")]
    if v == "const":
        return [located.problem(path, f"must be {error.validator_value!r}")]
    if v == "pattern":
        return [located.problem(path, f"{error.instance!r} does not match {error.validator_value} "
                                      "(letters, digits, '_' and '-', starting with a letter)")]
    if v == "propertyNames":
        bad = error.instance if isinstance(error.instance, str) else "?"
        return [located.problem(path, f"name {bad!r}: use letters, digits, '_' and '-', starting with a letter")]
    if v in ("minProperties", "minItems"):
        return [located.problem(path, "must not be empty")]
    if v == "maxProperties" and set(error.instance) <= {"all", "any"}:
        return [located.problem(path, "use either all: or any: here; nest one inside the other to combine")]
    return [located.problem(path, error.message)]
