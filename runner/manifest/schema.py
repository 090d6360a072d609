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
from runner.manifest.yamlfile import Located, Path_, quoted

MANIFEST = "manifest.schema.json"
MAPPING = "mapping.schema.json"
MAPPING_TESTS = "mapping-tests.schema.json"
NAME_PATTERN = "^[A-Za-z][A-Za-z0-9_-]*$"


@cache
def schema_text(name: str) -> str:
    return resources.files("runner").joinpath("schemas", name).read_text(encoding="utf-8")


@cache
def load_schema(name: str) -> dict[str, Any]:
    return json.loads(schema_text(name))


def with_references(name: str) -> list[str]:
    """The schema ``name`` and every shipped schema it refers to (``$ref: mapping-tests.schema.json#...``),
    directly or not: what an editor needs beside it, since the references are relative file names."""
    found = [name]
    for current in found:
        for ref in _refs(load_schema(current)):
            target = ref.split("#", 1)[0]
            if target in (MANIFEST, MAPPING, MAPPING_TESTS) and target not in found:
                found.append(target)
    return found


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [ref for key, value in node.items() if key not in ("examples", "const", "enum", "default")
                      for ref in _refs(value)]
    return [ref for value in node for ref in _refs(value)] if isinstance(node, list) else []


@cache
def _registry() -> Registry:
    pairs = []
    for name in (MANIFEST, MAPPING, MAPPING_TESTS):
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


def _closest_branch(error: jsonschema.ValidationError) -> list[jsonschema.ValidationError]:
    """The errors of the alternative meant for a value of this kind (``when_deleted: 5`` is
    explained by the list of names, ``when_deleted: {typo: 30d}`` by the object form): a branch
    whose type is the value's, else one without a type (an enum)."""
    branches: dict[int, list[jsonschema.ValidationError]] = {}
    for sub in error.context or []:
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)
    kind = _JSON_TYPES.get(type(error.instance))
    alternatives = error.validator_value
    typed = [i for i in branches if alternatives[i].get("type") in (kind, [kind])]
    if kind == "integer":
        typed = typed or [i for i in branches if alternatives[i].get("type") == "number"]
    untyped = [i for i in branches if "type" not in alternatives[i]]
    chosen = (typed or untyped or [None])[0]
    return branches.get(chosen, []) if chosen is not None else []


def problems(schema: dict[str, Any], data: Any, located: Located, at: Path_ = ()) -> list[Problem]:
    """Every schema violation in ``data`` (found at ``at`` in ``located``), one Problem each."""
    found: list[Problem] = []
    for error in validator(schema).iter_errors(data):
        path = (*at, *error.absolute_path)
        found.extend(_explain(error, path, located))
    return found


_JSON_TYPES = {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer", float: "number"}


def _explain(error: jsonschema.ValidationError, path: Path_, located: Located) -> list[Problem]:
    v = error.validator
    if v in ("oneOf", "anyOf") and error.context:
        branch = _closest_branch(error)
        if branch:
            return [p for sub in branch for p in _explain(sub, (*path, *sub.relative_path), located)]
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
        if error.validator_value == NAME_PATTERN:
            message = (f"{quoted(error.instance)} is not a valid name: use letters, digits, '_' and '-', "
                       "starting with a letter")
        else:  # a connector's own schema
            message = f"{quoted(error.instance)} does not match the pattern {error.validator_value}"
        if "propertyNames" in error.absolute_schema_path:
            # A key that is not a valid name: the error's path is the mapping; point at the key.
            return [located.problem((*path, error.instance), message, key=True)]
        return [located.problem(path, message)]
    if v in ("minProperties", "minItems") or (v == "minLength" and error.validator_value == 1):
        return [located.problem(path, "must not be empty")]
    if v == "minLength":
        return [located.problem(path, f"must be at least {error.validator_value} characters long")]
    if v == "maxLength":
        unit = "character" if error.validator_value == 1 else "characters"
        return [located.problem(path, f"must be at most {error.validator_value} {unit} long")]
    if v == "minimum":
        return [located.problem(path, f"must be at least {error.validator_value}")]
    if v == "maxProperties" and set(error.instance) <= {"all", "any"}:
        return [located.problem(path, "use either all: or any: here; nest one inside the other to combine")]
    message = error.message
    if isinstance(error.instance, str):  # jsonschema quotes the value with repr(): see quoted()
        message = message.replace(repr(error.instance), quoted(error.instance))
    return [located.problem(path, message)]
