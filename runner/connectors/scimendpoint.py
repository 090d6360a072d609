"""``scim-endpoint``: a source that is written to, not read: what Microsoft Entra (or any SCIM
client) sends to ``provision serve`` (issue 23).

``provision serve FILE`` stores each resource the client sends as the source record of its
anchor, the SCIM ``id`` the endpoint assigns, and provisions it at once (``runner/serve/pipeline.py``).
This connector is the source's declaration for everything else: validation knows its objects, and a
run (``provision run``) that reads it finds no changes. It declares ``delta_read`` and always
answers with no records, so a run never takes its empty read for "everyone was deleted": a delta
read reports nothing deleted, and the first, full read (no watermark yet) says why it is empty, so
the deletion guard refuses it if objects are there.

Its objects are ``Users`` and ``Groups`` (RFC 7643's User and Group) and the endpoints of the
further resource types the manifest declares in ``serve.resource_types`` (a Device, an
Entitlement): :func:`declared_types` reads those declarations and their RFC 7643 §7 schema
documents, and :func:`serve_problems` is what ``provision validate`` reports about them. They live
here, below the manifest layer, because the manifest's checks need them and the endpoint
(``runner/serve/schema.py``) builds its resource types from the same reading.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.connectors.base import Capabilities, Connector, Page

if TYPE_CHECKING:
    from runner.connectors.scim.protocol import ResourceInfo

#: the watermark every read returns: there is never anything new to read
WATERMARK = "provision-serve"
OBJECTS = ("Users", "Groups")
EMPTY = ("a scim-endpoint source holds only what `provision serve` received; it has nothing to read, "
         "and an empty read is never a deletion")

#: the resource types every endpoint serves (RFC 7643 §4, §4.2), by name -> endpoint
BUILT_IN = {"User": "/Users", "Group": "/Groups"}
#: the schemas the endpoint publishes of its own (RFC 7643 §4, §8.7.1, §8.7.2): not to be redefined
BUILT_IN_SCHEMAS = ("urn:ietf:params:scim:schemas:core:2.0:User",
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
                    "urn:ietf:params:scim:schemas:core:2.0:Group",
                    "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig",
                    "urn:ietf:params:scim:schemas:core:2.0:ResourceType",
                    "urn:ietf:params:scim:schemas:core:2.0:Schema")
#: paths the endpoint answers itself (RFC 7644 §3.2 and its own /health, /metrics): never a resource endpoint
RESERVED_ENDPOINTS = ("/Schemas", "/ResourceTypes", "/ServiceProviderConfig", "/Bulk", "/Me", "/.search",
                      "/health", "/metrics")
#: RFC 7643 §3.1: attributes every resource has, which a resource's own schema does not define
COMMON_ATTRIBUTES = ("id", "externalId", "meta", "schemas")
#: RFC 7643 §2.3: the data types of an attribute
TYPES = ("string", "boolean", "decimal", "integer", "dateTime", "binary", "reference", "complex")

#: (path in the manifest, message): what validation reports, placed by the manifest layer
Problems = list[tuple[tuple[str | int, ...], str]]


class ScimEndpointConnector(Connector):
    type_name = "scim-endpoint"
    config_schema = {
        "type": "object",
        "description": "A SCIM 2.0 endpoint that `provision serve` answers: what the client sends becomes "
                       "this source's objects (Users, Groups, and the endpoints of serve.resource_types), "
                       "anchored by their SCIM id. Runs read nothing from it.",
        "properties": {"type": {"const": "scim-endpoint"}},
        "additionalProperties": False,
    }

    def capabilities(self, object: str | None = None) -> Capabilities:
        return Capabilities(delta_read=True, full_export=False, operations=frozenset())

    def object_names(self) -> Sequence[str] | None:
        """None: besides Users and Groups, the manifest's ``serve.resource_types`` declare
        objects, which this block does not see; :func:`serve_problems` checks the names."""
        return None

    def read(self, object: str, partition: str | None = None, watermark: str | None = None, *,
             attributes: Sequence[str] | None = None, page_size: int | None = None) -> Iterator[Page]:
        """No records, ever; the watermark makes later runs delta reads."""
        yield Page([], watermark=WATERMARK, source_empty=None if watermark is not None else EMPTY)


# ---- further resource types, declared in the manifest's serve.resource_types ---------------------


@dataclass(frozen=True)
class DeclaredType:
    """A resource type the manifest declares: what the endpoint serves (``info``, its schema's
    attributes parsed by the same ``parse_schemas`` as every schema document here) and the schema
    document ``/Schemas`` publishes (scim2-models' rendering of what the manifest gave)."""

    info: ResourceInfo
    document: Mapping[str, Any]


def declared_types(serve: Any, base_dir: Path) -> tuple[list[DeclaredType], Problems]:
    """The resource types ``serve.resource_types`` declares (``serve``: the manifest's ``serve``
    block; schema files are relative to ``base_dir``, the manifest's folder), and every problem
    found with the manifest path it is about. A declaration with a problem is left out."""
    found: list[DeclaredType] = []
    problems: Problems = []
    entries = serve.get("resource_types") if isinstance(serve, Mapping) else None
    if not entries:
        return found, problems
    # scim2-models takes a second to import: only for manifests that declare resource types
    from scim2_models import Schema

    from runner.connectors.scim.discovery import parse_schemas
    from runner.connectors.scim.protocol import ResourceInfo
    names = {n.lower(): f"the built-in {n}" for n in BUILT_IN}
    endpoints = {e.lower(): f"the built-in {n}'s endpoint" for n, e in BUILT_IN.items()}
    endpoints |= {e.lower(): "a path the endpoint answers itself (discovery, /health, /metrics)"
                  for e in RESERVED_ENDPOINTS}
    urns = {u.lower(): "a schema the endpoint publishes itself" for u in BUILT_IN_SCHEMAS}
    for i, entry in enumerate(entries if isinstance(entries, list) else []):
        at: tuple[str | int, ...] = ("serve", "resource_types", i)
        if not isinstance(entry, Mapping):
            continue  # the JSON Schema said so
        name, endpoint = str(entry.get("name") or ""), "/" + str(entry.get("endpoint") or "").strip("/")
        before = len(problems)
        if name.lower() in names:
            problems.append(((*at, "name"), f"resource type {name!r} is already {names[name.lower()]}; "
                             "give this one another name"))
        if endpoint.lower() in endpoints:
            problems.append(((*at, "endpoint"), f"{endpoint} is already {endpoints[endpoint.lower()]}; "
                             "give this resource type another one"))
        names.setdefault(name.lower(), f"declared at serve.resource_types[{i}]")
        endpoints.setdefault(endpoint.lower(), f"serve.resource_types[{i}]'s endpoint")
        document, where, why = _schema_document(entry.get("schema"), base_dir, at)
        if why:
            problems += why
            continue
        problems += _schema_problems(document, where, urns, i)
        if len(problems) > before:
            continue
        schema_id = str(document["id"])
        urns.setdefault(schema_id.lower(), f"the schema of serve.resource_types[{i}]")
        attributes = parse_schemas([document])[schema_id]
        info = ResourceInfo(name=name, endpoint=endpoint, schema=schema_id, attributes={schema_id: attributes},
                            description=str(entry.get("description") or document.get("description") or name))
        found.append(DeclaredType(info, Schema.model_validate(dict(document)).model_dump()))
    return found, problems


@dataclass(frozen=True)
class _Where:
    """Where a schema's problems are reported: inside the manifest (an inline schema: the path of
    each problem) or at the ``schema`` key, naming the file and the place in it."""

    at: tuple[str | int, ...]
    file: Path | None = None

    def __call__(self, inner: Iterable[str | int], message: str) -> tuple[tuple[str | int, ...], str]:
        inner = tuple(inner)
        if self.file is None:
            return (*self.at, *inner), message
        place = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in inner).lstrip(".")
        return self.at, f"{self.file}: {place + ': ' if place else ''}{message}"


def _schema_document(spec: Any, base_dir: Path, at: tuple[str | int, ...]
                     ) -> tuple[dict[str, Any], _Where, Problems]:
    """The schema document of a declaration: inline (a mapping) or read from a JSON file."""
    if isinstance(spec, Mapping):
        return dict(spec), _Where((*at, "schema")), []
    file = base_dir / str(spec)
    where = _Where((*at, "schema"), file)
    try:
        document = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}, where, [((*at, "schema"), f"schema file not found: {file} (paths are relative to the manifest's "
                            "folder)")]
    except (OSError, UnicodeDecodeError) as exc:
        return {}, where, [((*at, "schema"), f"schema file {file} cannot be read: {exc}")]
    except ValueError as exc:
        return {}, where, [((*at, "schema"), f"schema file {file} is not JSON: {exc}")]
    if not isinstance(document, dict):
        return {}, where, [where((), "an RFC 7643 §7 schema is a JSON object with id and attributes")]
    return document, where, []


def _schema_problems(document: Mapping[str, Any], where: _Where, urns: dict[str, str], index: int) -> Problems:
    """What makes ``document`` no schema this endpoint can serve (RFC 7643 §7)."""
    problems: Problems = []
    schema_id = document.get("id")
    if not isinstance(schema_id, str) or not schema_id.strip():
        problems.append(where((), "the schema has no id: give it its URN, such as "
                                  "urn:example:params:scim:schemas:core:2.0:Device (RFC 7643 §7)"))
    elif schema_id.lower() in urns:
        problems.append(where(("id",), f"{schema_id} is {urns[schema_id.lower()]}; give this schema a URN of its own"))
    elif not schema_id.lower().startswith("urn:"):
        problems.append(where(("id",), f"the schema's id is a URN (RFC 7643 §7), such as urn:example:...:Device, "
                                       f"not {schema_id!r}"))
    attributes = document.get("attributes")
    if not isinstance(attributes, list) or not attributes:
        problems.append(where(("attributes",) if "attributes" in document else (),
                              "the schema needs attributes: a list of the resource type's attributes"))
        return problems
    problems += _attribute_problems(attributes, ("attributes",), where, top=True)
    if problems:
        return problems
    from pydantic import ValidationError
    from scim2_models import Schema

    try:
        Schema.model_validate(dict(document))
    except ValidationError as exc:
        problems += [where(error["loc"], error["msg"]) for error in exc.errors()]
    return problems


def _attribute_problems(attributes: list[Any], at: tuple[str | int, ...], where: _Where, top: bool) -> Problems:
    """Names, types and duplicates of a schema's attributes (and of their sub-attributes)."""
    problems: Problems = []
    seen: set[str] = set()
    for j, attr in enumerate(attributes):
        here = (*at, j)
        if not isinstance(attr, Mapping):
            problems.append(where(here, "an attribute is an object with name and type"))
            continue
        name = attr.get("name")
        if not isinstance(name, str) or not name:
            problems.append(where(here, "the attribute has no name"))
            continue
        if top and name.lower() in (c.lower() for c in COMMON_ATTRIBUTES):
            problems.append(where((*here, "name"), f"{name} is common to every resource (RFC 7643 §3.1): "
                                                   "the endpoint keeps it; leave it out of the schema"))
        if name.lower() in seen:
            problems.append(where((*here, "name"), f"attribute {name!r} is defined twice (names are "
                                                   "case-insensitive, RFC 7643 §2.1)"))
        seen.add(name.lower())
        kind = attr.get("type", "string")
        if kind not in TYPES:
            problems.append(where((*here, "type"), f"attribute {name!r} has the unknown type {kind!r}; "
                                                   f"RFC 7643 §2.3 types: {', '.join(TYPES)}"))
        subs = attr.get("subAttributes")
        if kind == "complex":
            if not isinstance(subs, list) or not subs:
                problems.append(where(here, f"complex attribute {name!r} needs subAttributes"))
            elif not top:
                problems.append(where((*here, "type"), f"{name!r}: a complex attribute has no complex "
                                                       "sub-attributes (RFC 7643 §2.3.8)"))
            else:
                problems += _attribute_problems(subs, (*here, "subAttributes"), where, top=False)
        if attr.get("uniqueness", "none") in ("server", "global") and (attr.get("multiValued") or kind == "complex"):
            problems.append(where((*here, "uniqueness"), f"{name!r}: only a single-valued simple attribute "
                                                         "can be kept unique here"))
    return problems


def object_problems(endpoints: Iterable[str], sources: Iterable[tuple[tuple[str | int, ...], str]]) -> Problems:
    """Each ``(path, object)`` of an object type whose source is a scim-endpoint must name a
    served endpoint: Users, Groups or one of ``endpoints`` (names are case-insensitive)."""
    served = [*(e.strip("/") for e in BUILT_IN.values()), *(e.strip("/") for e in endpoints)]
    problems: Problems = []
    for path, name in sources:
        if name.lower() not in (s.lower() for s in served):
            problems.append((path, f"a scim-endpoint serves {', '.join(served)}, not {name!r}; declare further "
                                   "resource types in serve.resource_types (an endpoint and a schema)"))
    return problems


def serve_problems(serve: Any, base_dir: Path, sources: Iterable[tuple[tuple[str | int, ...], str]]) -> Problems:
    """What ``provision validate`` reports about ``serve.resource_types`` and the objects of the
    scim-endpoint sources (``sources``: each one's manifest path and object name). An object
    naming a declared endpoint whose declaration has problems is not reported again."""
    _, problems = declared_types(serve, base_dir)
    entries = serve.get("resource_types") if isinstance(serve, Mapping) else None
    endpoints = [str(e.get("endpoint") or "") for e in entries or [] if isinstance(e, Mapping)]
    return problems + object_problems(endpoints, sources)
