"""Templates: how mapped attributes become a JSON body (or SOAP arguments), a path or a query, and a record
becomes attributes. Shared by the connectors that describe an API in the manifest (rest, soap).

A body template is JSON (YAML in the manifest) whose strings may name attributes in braces:

* a string that is exactly ``"{email}"`` takes the attribute's value with its type (a boolean, a
  number, a list, an object), so ``active: "{active}"`` sends ``true``, not ``"True"``;
* a string with text around the braces (``"{first} {last}"``) is text; ``{{`` and ``}}`` are braces;
* anything else (numbers, booleans, strings without braces) is a constant;
* objects and arrays nest; a key whose value is null or not given is left out (a create), or sent
  as null (an update, which clears it).

The same template read backwards turns a record into attributes: each ``"{name}"`` placeholder
takes the value found at its place in the record (an array element found by the template
element's constants, ``{type: work, value: "{email}"}``). Without a template, a body is the
attributes themselves (a dotted name nests: ``name.given`` -> ``{"name": {"given": ...}}``) and a
record's attributes are its fields, nested ones dotted. So one template serves create, update
and read, and reconciliation compares what was sent with what is there.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterator, Mapping
from typing import Any

_FIELD = re.compile(r"\{([^{}]+)\}")
_WHOLE = re.compile(r"^\{([^{}]+)\}$")

#: placeholders the connector fills itself: the object's id and a member's id
BUILT_IN = frozenset({"id", "member"})


class Missing(Exception):
    """A text template names an attribute without a value (the key is left out)."""


def fields(template: Any) -> Iterator[str]:
    """Every attribute a template names, in order, with repeats."""
    if isinstance(template, str):
        for found in _FIELD.finditer(template.replace("{{", "").replace("}}", "")):
            yield found.group(1).strip()
    elif isinstance(template, Mapping):
        for value in template.values():
            yield from fields(value)
    elif isinstance(template, list):
        for value in template:
            yield from fields(value)


def whole_field(template: Any) -> str | None:
    """The attribute a string that is exactly one placeholder names, else None."""
    if isinstance(template, str):
        found = _WHOLE.match(template)
        if found:
            return found.group(1).strip()
    return None


def text(template: str, values: Mapping[str, Any], quote: bool = False) -> str:
    """A text template filled in; ``quote`` escapes each value for a URL path segment."""
    def one(found: re.Match[str]) -> str:
        name = found.group(1).strip()
        value = values.get(name)
        if value is None:
            raise Missing(name)
        if isinstance(value, bool):
            value = "true" if value else "false"
        value = str(value)
        return urllib.parse.quote(value, safe="") if quote else value
    parts = template.split("{{")
    return "{".join("}".join(_FIELD.sub(one, p) for p in part.split("}}")) for part in parts)


def composite(template: Any) -> bool:
    """Whether some string of the template builds text from placeholders (it needs every value)."""
    if isinstance(template, str):
        return whole_field(template) is None and any(True for _ in fields(template))
    if isinstance(template, Mapping):
        return any(composite(v) for v in template.values())
    if isinstance(template, list):
        return any(composite(v) for v in template)
    return False


_ABSENT = object()


def render(template: Any, values: Mapping[str, Any], *, only: set[str] | None = None, nulls: bool = False) -> Any:
    """The body for ``values``. ``only``: keep only the parts that name one of these attributes (a
    PATCH of what changed; constants beside them stay). ``nulls``: send a null value as null (an
    update clears it) instead of leaving the key out."""
    if template is None:
        return _plain(values, only, nulls)
    out = _render(template, values, only, nulls)
    return {} if out is _ABSENT else out


def _render(template: Any, values: Mapping[str, Any], only: set[str] | None, nulls: bool) -> Any:
    named = set(fields(template))
    if only is not None and named - BUILT_IN and not named & only:
        return _ABSENT  # a part about attributes that did not change (constants and {id} always stay)
    if isinstance(template, str):
        name = whole_field(template)
        if name is not None:
            value = values.get(name, _ABSENT)
            if value is None:
                return None if nulls else _ABSENT
            return value
        if not named:
            return template
        try:
            return text(template, values)
        except Missing:
            return None if nulls else _ABSENT
    if isinstance(template, Mapping):
        out = {k: _render(v, values, only, nulls) for k, v in template.items()}
        kept = {k: v for k, v in out.items() if v is not _ABSENT}
        if named and only is None and not any(True for k in kept if any(True for _ in fields(template[k]))):
            return _ABSENT  # only constants left: an element about a value that is not there
        return kept
    if isinstance(template, list):
        items = [_render(v, values, only, nulls) for v in template]
        return [v for v in items if v is not _ABSENT and v is not None]
    return template


def _plain(values: Mapping[str, Any], only: set[str] | None, nulls: bool) -> dict[str, Any]:
    """Without a template: the attributes themselves, dotted names nested."""
    out: dict[str, Any] = {}
    for name, value in values.items():
        if only is not None and name not in only or value is None and not nulls:
            continue
        *parents, leaf = name.split(".")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


def extract(template: Any, record: Any) -> dict[str, Any]:
    """A record's attributes: its fields (nested ones dotted), then what the template's placeholders find."""
    found = flatten(record) if isinstance(record, Mapping) else {}
    if template is not None:
        _extract(template, record, found)
    return found


def _extract(template: Any, node: Any, out: dict[str, Any]) -> None:
    name = whole_field(template)
    if name is not None:
        out[name] = None if node is _ABSENT else node
        return
    if isinstance(template, Mapping):
        for key, sub in template.items():
            _extract(sub, node.get(key, _ABSENT) if isinstance(node, Mapping) else _ABSENT, out)
    elif isinstance(template, list):
        items = node if isinstance(node, list) else []
        for element in template:
            _extract(element, _element(element, items), out)


def _element(template: Any, items: list[Any]) -> Any:
    """The record's array element matching a template element's constants (``type: work``)."""
    if not isinstance(template, Mapping):
        return items[0] if len(items) == 1 and whole_field(template) is None else _ABSENT
    pinned = {k: v for k, v in template.items() if not isinstance(v, Mapping | list) and not list(fields(v))}
    for item in items:
        if isinstance(item, Mapping) and all(item.get(k) == v for k, v in pinned.items()):
            return item
    return _ABSENT


def flatten(record: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested objects as dotted names; lists as they are."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def paths(template: Any, prefix: str = "") -> dict[str, str]:
    """Record field (dotted) -> the attribute its placeholder names, for ``discover``."""
    out: dict[str, str] = {}
    name = whole_field(template)
    if name is not None:
        out[prefix.rstrip(".") or name] = name
    elif isinstance(template, Mapping):
        for key, sub in template.items():
            out.update(paths(sub, f"{prefix}{key}."))
    elif isinstance(template, list):
        for element in template:
            out.update(paths(element, prefix.rstrip(".") + "[]."))
    return out
