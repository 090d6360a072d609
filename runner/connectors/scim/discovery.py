"""A SCIM server's discovery documents, read: /ServiceProviderConfig, /Schemas, /ResourceTypes
(RFC 7643 §5-7, RFC 7644 §4).

Why not scim2-models, which ``provision serve`` builds its documents with: importing it costs
0.3 s of CPU (pydantic builds some fifty models and reads their docstrings from source), paid
by every run that opens a SCIM connector to read three small documents once: 6% of a 2,000-user
run (issue 25's budget against a raw client is 25%), and most of an on-demand run of one person.
The reading here keeps to what scim2-models accepts where a server could differ: attribute names
in any case (RFC 7643 §2.1), booleans as ``"true"``, the RFC's words for types, mutability,
returned and uniqueness in any case. It is more tolerant in one way, on purpose: keys it does
not know (a vendor's) are ignored rather than refused. The RFC's own schemas (User, the
enterprise extension, Group), assumed where a server lists none, are kept in
``rfc7643-schemas.json``, written from scim2-models; ``tests/scim/test_discovery.py`` checks that
they still agree and that these readers read what scim2-models reads.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

from runner.connectors.scim.protocol import Attr, Features, ResourceInfo, any_case

SPC_URN = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
_SPC_KEYS = frozenset({"schemas", "id", "meta", "documentationuri", "patch", "bulk", "filter", "changepassword",
                       "sort", "etag", "authenticationschemes"})
TYPES = ("string", "boolean", "decimal", "integer", "dateTime", "binary", "reference", "complex")
MUTABILITY = ("readOnly", "readWrite", "immutable", "writeOnly")
RETURNED = ("always", "never", "default", "request")
UNIQUENESS = ("none", "server", "global")


class DiscoveryError(ValueError):
    """A discovery document that is not what the RFC describes; the message says where."""


def _object(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise DiscoveryError(f"{where} is not a JSON object")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise DiscoveryError(f"{where} is not a list")
    return value


def _flag(doc: Mapping[str, Any], name: str, where: str, default: bool = False) -> bool:
    value = any_case(doc, name)
    value = getattr(value, "value", value)  # scim2-models' own enums (Required, CaseExact), from serve
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise DiscoveryError(f"{where}.{name} is {value!r}, not true or false")


def _word(doc: Mapping[str, Any], name: str, words: tuple[str, ...], default: str, where: str) -> str:
    value = any_case(doc, name)
    value = getattr(value, "value", value)
    if value is None:
        return default
    found = next((w for w in words if isinstance(value, str) and w.lower() == value.lower()), None)
    if found is None:
        raise DiscoveryError(f"{where}.{name} is {value!r}, not one of {', '.join(words)}")
    return found


def _count(doc: Mapping[str, Any], name: str, where: str) -> int:
    value = any_case(doc, name)
    if value is None:
        return 0
    try:
        return int(value)
    except (TypeError, ValueError):
        raise DiscoveryError(f"{where}.{name} is {value!r}, not a number") from None


def _text(doc: Mapping[str, Any], name: str, where: str, required: bool = False) -> str | None:
    value = any_case(doc, name)
    if value is None:
        if required:
            raise DiscoveryError(f"{where} has no {name}")
        return None
    if not isinstance(value, str):
        raise DiscoveryError(f"{where}.{name} is {value!r}, not text")
    return value


def parse_service_provider_config(doc: Any) -> Features:
    """/ServiceProviderConfig -> :class:`Features` (a missing block means "not supported").
    DiscoveryError when it is not a service provider configuration: another kind of document
    (``schemas`` naming something else, or none of its attributes), or a block that is not one."""
    doc = _object(doc, "the document")
    schemas = _list(any_case(doc, "schemas"), "schemas")
    if schemas and SPC_URN.lower() not in {str(s).lower() for s in schemas}:
        raise DiscoveryError(f"its schemas are {schemas}, not {SPC_URN}")
    if doc and not any(isinstance(k, str) and k.lower() in _SPC_KEYS for k in doc):
        raise DiscoveryError(f"it has none of a service provider configuration's attributes (it has {sorted(doc)[:5]})")
    blocks = {}
    for name in ("patch", "bulk", "filter", "changePassword", "sort", "etag"):
        block = any_case(doc, name)
        blocks[name] = None if block is None else _object(block, name)

    def on(name: str) -> bool:
        block = blocks[name]
        return block is not None and _flag(block, "supported", name)

    bulk, found = blocks["bulk"], blocks["filter"]
    schemes = [_object(s, f"authenticationSchemes[{i}]") for i, s in
               enumerate(_list(any_case(doc, "authenticationSchemes"), "authenticationSchemes"))]
    return Features(
        patch=on("patch"), bulk=on("bulk"),
        bulk_max_operations=_count(bulk, "maxOperations", "bulk") if bulk else 0,
        bulk_max_payload=_count(bulk, "maxPayloadSize", "bulk") if bulk else 0,
        filter=on("filter"), max_results=_count(found, "maxResults", "filter") if found else 0,
        etag=on("etag"), change_password=on("changePassword"), sort=on("sort"),
        auth_schemes=tuple(str(any_case(s, "type")) for s in schemes if any_case(s, "type") is not None),
    )


def _attr(doc: Any, where: str) -> Attr:
    doc = _object(doc, where)
    name = _text(doc, "name", where, required=True)
    assert name is not None
    where = f"{where} ({name})"
    subs = [_attr(s, f"{where}.subAttributes[{i}]") for i, s in enumerate(_list(any_case(doc, "subAttributes"),
                                                                              f"{where}.subAttributes"))]
    canonical = _list(any_case(doc, "canonicalValues"), f"{where}.canonicalValues")
    return Attr(name=name, type=_word(doc, "type", TYPES, "string", where),
                multi=_flag(doc, "multiValued", where), subs={s.name.lower(): s for s in subs},
                case_exact=_flag(doc, "caseExact", where),
                mutability=_word(doc, "mutability", MUTABILITY, "readWrite", where),
                returned=_word(doc, "returned", RETURNED, "default", where),
                required=_flag(doc, "required", where),
                uniqueness=_word(doc, "uniqueness", UNIQUENESS, "none", where),
                description=_text(doc, "description", where), canonical=tuple(str(c) for c in canonical))


def parse_schemas(resources: Iterable[Any]) -> dict[str, dict[str, Attr]]:
    """/Schemas (RFC 7643 §7) -> schema URN -> lower attribute name -> Attr."""
    found: dict[str, dict[str, Attr]] = {}
    for i, doc in enumerate(resources):
        doc = _object(doc, f"schema {i}")
        urn = _text(doc, "id", f"schema {i}", required=True)
        where = f"schema {urn}"
        attrs = [_attr(a, f"{where} attributes[{n}]") for n, a in enumerate(_list(any_case(doc, "attributes"),
                                                                                  f"{where} attributes"))]
        found[str(urn)] = {a.name.lower(): a for a in attrs}
    return found


def parse_resource_types(resources: Iterable[Any], schemas: Mapping[str, Mapping[str, Attr]]) -> list[ResourceInfo]:
    """/ResourceTypes (RFC 7643 §6) joined with the schemas they name."""
    infos = []
    for i, doc in enumerate(resources):
        doc = _object(doc, f"resource type {i}")
        where = f"resource type {any_case(doc, 'name') or i}"
        name = _text(doc, "name", where, required=True)
        endpoint = _text(doc, "endpoint", where, required=True)
        schema = _text(doc, "schema", where, required=True)
        assert name is not None and endpoint is not None and schema is not None
        extensions = []
        for n, ext in enumerate(_list(any_case(doc, "schemaExtensions"), f"{where}.schemaExtensions")):
            ext = _object(ext, f"{where}.schemaExtensions[{n}]")
            urn = _text(ext, "schema", f"{where}.schemaExtensions[{n}]", required=True)
            extensions.append((str(urn), _flag(ext, "required", f"{where}.schemaExtensions[{n}]")))
        urns = [schema, *(e for e, _ in extensions)]
        infos.append(ResourceInfo(
            name=name, endpoint="/" + endpoint.strip("/"), schema=schema,
            extensions=tuple(e for e, _ in extensions), required_extensions=tuple(e for e, r in extensions if r),
            attributes={u: schemas.get(u, {}) for u in urns}, description=_text(doc, "description", where)))
    return infos


@cache
def rfc_schema_documents() -> tuple[dict[str, Any], ...]:
    """RFC 7643's User, enterprise User and Group schemas as scim2-models writes them (§4, §8.7.1)."""
    return tuple(json.loads((Path(__file__).parent / "rfc7643-schemas.json").read_text(encoding="utf-8")))


@cache
def rfc_schemas() -> dict[str, dict[str, Attr]]:
    """The attributes of :func:`rfc_schema_documents`, by schema URN."""
    return parse_schemas(rfc_schema_documents())
