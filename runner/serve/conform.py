"""Incoming values made into the shape the store keeps, or refused with a reason.

A store receives attributes in one shape, whatever the client sent: attribute names as the schema
spells them (clients may use any case, RFC 7643 §2.1), core attributes at the top level and
extension attributes in their extension's block, no ``null`` or empty values (RFC 7643 §2.5: they
mean "unassigned"), no read-only attributes (RFC 7644 §3.3: "SHALL be ignored"). Values are kept as
sent otherwise (Microsoft: "Values sent should be stored in the same format they were sent"); the
few forms Entra sends that the RFC does not are accepted and normalised here, once:

* booleans as strings (``"active": "False"``, Entra's PATCH without the ``aadOptscim062020`` flag);
* a single-valued reference as a bare id or a one-element list (``manager``: ``"id"``,
  ``[{"$ref": ..., "value": "id"}]``), and ``"$ref": null`` in references;
* extension attributes at the top level (Microsoft's own example POSTs ``department`` there).

Anything else that does not fit the schema is refused with 400 ``invalidValue`` naming the
attribute, so the administrator sees what to fix in the attribute mappings.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from runner.connectors.scim.protocol import Attr

from .errors import Invalid
from .schema import Kind

_SKIPPED = frozenset({"schemas", "id", "meta"})


def is_empty(value: Any) -> bool:
    """Unassigned (RFC 7643 §2.5): null, an empty list, an empty object."""
    return value is None or value == [] or value == {}


def conform_resource(kind: Kind, body: Any) -> dict[str, Any]:
    """A POST or PUT body -> the attributes a store keeps (see the module docstring)."""
    if not isinstance(body, Mapping):
        raise Invalid("the body must be a JSON object", scim_type="invalidSyntax")
    out: dict[str, Any] = {}
    for key, value in body.items():
        if not isinstance(key, str) or key.lower() in _SKIPPED or is_empty(value):
            continue
        if key.lower().startswith("urn:"):
            _conform_block(kind, key, value, out)
            continue
        found = kind.resolve(key)
        if found is None:
            raise Invalid(f"{kind.name} has no attribute {key!r} (GET /Schemas lists the ones this endpoint keeps)")
        urn, attr = found
        if attr.mutability == "readOnly":
            continue
        conformed = conform_value(attr, value, attr.name)
        if not is_empty(conformed):
            (out.setdefault(urn, {}) if urn else out)[attr.name] = conformed
    check_required(kind, out)
    return out


def _conform_block(kind: Kind, key: str, value: Any, out: dict[str, Any]) -> None:
    """An extension's block (``"urn:...:enterprise:2.0:User": {...}``) or a fully qualified attribute."""
    ext = kind.extension(key)
    if ext is None:
        urn, _, name = key.rpartition(":")
        found = kind.resolve(name, urn) if urn else None
        if found is None:
            raise Invalid(f"{kind.name} has no schema extension or attribute {key!r} "
                          f"(its extensions: {', '.join(kind.extensions) or 'none'})")
        block, attr = found
        if attr.mutability != "readOnly":
            conformed = conform_value(attr, value, key)
            if not is_empty(conformed):
                (out.setdefault(block, {}) if block else out)[attr.name] = conformed
        return
    if not isinstance(value, Mapping):
        raise Invalid(f"{ext} must be a JSON object of that extension's attributes")
    for name, sub_value in value.items():
        if str(name).lower() == "schemas":
            continue
        found = kind.resolve(name, ext)
        if found is None:
            raise Invalid(f"{ext} has no attribute {name!r}")
        _, attr = found
        if attr.mutability == "readOnly" or is_empty(sub_value):
            continue
        conformed = conform_value(attr, sub_value, f"{ext}:{attr.name}")
        if not is_empty(conformed):
            out.setdefault(ext, {})[attr.name] = conformed


def check_required(kind: Kind, attributes: Mapping[str, Any]) -> None:
    """Refuse a resource without its required core attributes (userName; Group displayName)."""
    for attr in kind.required:
        if is_empty(attributes.get(attr.name)):
            raise Invalid(f"{attr.name} is required for a {kind.name}")


def conform_value(attr: Attr, value: Any, where: str) -> Any:
    """The value of ``attr`` as kept: checked against its type, booleans from strings, complex
    values with their sub-attributes' names as the schema spells them; None when unassigned."""
    if is_empty(value):
        return None
    if attr.multi:
        items = value if isinstance(value, list) else [value]
        kept = [v for v in (conform_single(attr, item, where) for item in items) if not is_empty(v)]
        return kept or None
    if isinstance(value, list):
        if len(value) == 1 and attr.type == "complex":  # Entra: "manager": [{"value": id}]
            value = value[0]
        else:
            raise Invalid(f"{where} has one value, not a list")
    return conform_single(attr, value, where)


def conform_single(attr: Attr, value: Any, where: str) -> Any:
    """One value of ``attr`` (one element of a multi-valued attribute)."""
    if attr.type != "complex":
        return conform_simple(attr, value, where)
    if not isinstance(value, Mapping):
        if isinstance(value, str) and "value" in attr.subs:  # a bare id for a reference
            return {"value": value}
        raise Invalid(f"{where} is complex: send an object of its sub-attributes")
    out: dict[str, Any] = {}
    for key, sub_value in value.items():
        sub = attr.subs.get(str(key).lower())
        if sub is None:
            raise Invalid(f"{where} has no sub-attribute {key!r} "
                          f"(it has {', '.join(s.name for s in attr.subs.values())})")
        if sub.mutability == "readOnly" or is_empty(sub_value):
            continue
        out[sub.name] = conform_simple(sub, sub_value, f"{where}.{sub.name}")
    if attr.is_reference and out and "value" not in out:
        raise Invalid(f"{where} needs a value (the id of the resource it refers to)")
    return out or None


def conform_simple(attr: Attr, value: Any, where: str) -> Any:
    """A value of a simple type (RFC 7643 §2.3), booleans accepted as "true"/"false" in any case."""
    kind = attr.type
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        raise Invalid(f"{where} is a boolean: true or false, not {value!r}")
    if kind == "integer":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise Invalid(f"{where} is an integer, not {value!r}")
    if kind == "decimal":
        if isinstance(value, int | float) and not isinstance(value, bool):
            return value
        raise Invalid(f"{where} is a number, not {value!r}")
    if not isinstance(value, str):
        raise Invalid(f"{where} is a string ({kind}), not {type(value).__name__} {value!r}")
    if kind == "dateTime":
        try:
            datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise Invalid(f"{where} is an xsd:dateTime such as 2008-01-23T04:56:22Z, not {value!r}") from None
    return value
