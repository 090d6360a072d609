"""The resource types this endpoint serves, their attributes, and the discovery documents about them.

Two resource types, the ones Microsoft Entra provisions: ``User`` (core schema plus the enterprise
extension, where ``employeeNumber``, ``department`` and ``manager`` live) and ``Group``. Their
schemas are scim2-models' renderings of RFC 7643 §4 and §8.7.1, so what ``/Schemas`` publishes and
what the parsers below enforce cannot drift apart: both read the same documents, through the SCIM
connector's ``parse_schemas`` (one reader of schema documents in the project, not two).

One change to the RFC's Group schema: ``displayName`` is published as required and unique
(``uniqueness: server``), because Entra matches groups by it and the store enforces it (Microsoft:
"Groups must have uniqueness on the 'displayName' value to match with Microsoft Entra ID"); the
schema says what the endpoint does.

Further resource types come from the manifest (``serve.resource_types``: a name, an endpoint and an
RFC 7643 §7 schema document): :func:`kinds_for` adds them to the two, read and checked by
``runner.connectors.scimendpoint.declared_types`` (the same reading ``provision validate`` reports
on) and parsed by the same ``parse_schemas``. Their schema documents join ``/Schemas`` and their
types ``/ResourceTypes``; an attribute with ``uniqueness: server`` is kept unique as userName is.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path
from typing import Any

from scim2_models import EnterpriseUser, Group, ResourceType, Schema, ServiceProviderConfig, User

from runner.connectors.scim.discovery import parse_resource_types, parse_schemas
from runner.connectors.scim.protocol import (
    CORE_GROUP,
    CORE_USER,
    ENTERPRISE_USER,
    EXTERNAL_ID,
    Attr,
    ResourceInfo,
)
from runner.connectors.scimendpoint import declared_types

SCHEMA_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Schema"
RESOURCE_TYPE_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
SPC_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
LIST_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:ListResponse"

#: RFC 7643 §3.1: every resource's identifier, issued by the service provider, never changed
ID = Attr("id", case_exact=True, mutability="readOnly", returned="always", uniqueness="server",
          description="the identifier of the resource, issued by this endpoint")


def _dump(model: Any) -> dict[str, Any]:
    return model.to_schema().model_dump()


@cache
def _schemas() -> tuple[str, ...]:
    """Every schema ``/Schemas`` publishes, as JSON text (made once: scim2-models takes some
    milliseconds), the served resources' first; Group's displayName made required and unique."""
    group = _dump(Group)
    for attr in group["attributes"]:
        if attr["name"] == "displayName":
            attr.update(required=True, uniqueness="server")
    docs = [_dump(User), _dump(EnterpriseUser), group, _dump(ServiceProviderConfig), _dump(ResourceType), _dump(Schema)]
    return tuple(json.dumps(d) for d in docs)


def _resource_schemas() -> list[dict[str, Any]]:
    """The schemas of the served resources (User, EnterpriseUser, Group), fresh copies."""
    return [json.loads(d) for d in _schemas()[:3]]


@dataclass(frozen=True)
class Kind:
    """One resource type this endpoint serves: its name, endpoint, schema and extensions, and the
    attribute lookups every parser needs (names are case-insensitive, RFC 7643 §2.1)."""

    info: ResourceInfo
    #: the schema document ``/Schemas`` publishes for a type the manifest declares (JSON text);
    #: None for User and Group, whose schemas are scim2-models' own
    document: str | None = None

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def endpoint(self) -> str:
        return self.info.endpoint

    @property
    def schema(self) -> str:
        return self.info.schema

    @property
    def extensions(self) -> tuple[str, ...]:
        return self.info.extensions

    def extension(self, urn: str) -> str | None:
        """The extension URN as published, for ``urn`` in any case; None if not an extension."""
        lower = urn.lower()
        return next((e for e in self.extensions if e.lower() == lower), None)

    def resolve(self, name: str, urn: str | None = None) -> tuple[str | None, Attr] | None:
        """Where attribute ``name`` lives: (None, attr) for a core or common attribute (top level of
        the resource), (extension URN, attr) for an extension's; None when there is no such
        attribute. Without ``urn``, core attributes win over extensions' (RFC 7644 §3.10)."""
        lower = name.lower()
        if urn is not None and urn.lower() != self.schema.lower():
            ext = self.extension(urn)
            attr = self.info.attributes.get(ext, {}).get(lower) if ext else None
            return (ext, attr) if attr else None
        if lower == "id":
            return None, ID
        if lower == "externalid":
            return None, EXTERNAL_ID
        attr = self.info.attributes.get(self.schema, {}).get(lower)
        if attr is not None:
            return None, attr
        if urn is not None:
            return None
        for ext in self.extensions:
            attr = self.info.attributes.get(ext, {}).get(lower)
            if attr is not None:
                return ext, attr
        return None

    def attributes_of(self, urn: str | None) -> Mapping[str, Attr]:
        """lower name -> attribute of the core schema (None) or of an extension."""
        return self.info.attributes.get(urn or self.schema, {})

    @cached_property
    def unique(self) -> tuple[Attr, ...]:
        """Core attributes whose values the store keeps unique (userName; Group displayName; a
        declared type's attributes with ``uniqueness: server`` or ``global``)."""
        return tuple(a for a in self.attributes_of(None).values() if a.uniqueness in ("server", "global"))

    @cached_property
    def required(self) -> tuple[Attr, ...]:
        return tuple(a for a in self.attributes_of(None).values() if a.required)

    def schemas_of(self, attributes: Mapping[str, Any]) -> list[str]:
        """A resource's ``schemas``: the core schema and each extension it has values in."""
        return [self.schema, *(e for e in self.extensions if attributes.get(e))]


def _kinds() -> dict[str, Kind]:
    schemas = parse_schemas(_resource_schemas())
    types = [ResourceType.from_resource(User[EnterpriseUser]).model_dump(),
             ResourceType.from_resource(Group).model_dump()]
    return {info.name: Kind(info) for info in parse_resource_types(types, schemas)}


#: the served resource types by name ("User", "Group")
KINDS: dict[str, Kind] = _kinds()
USER = KINDS["User"]
GROUP = KINDS["Group"]
if (USER.schema, GROUP.schema, USER.extensions) != (CORE_USER, CORE_GROUP, (ENTERPRISE_USER,)):
    raise RuntimeError(f"scim2-models describes other resource types than RFC 7643's: {KINDS}")


def kinds_for(settings: Mapping[str, Any] | None, base_dir: str | Path) -> dict[str, Kind]:
    """The resource types an endpoint with the manifest's ``serve`` block ``settings`` serves:
    User and Group, then each of ``serve.resource_types`` in the manifest's order (schema files
    relative to ``base_dir``, the manifest's folder). Raise ValueError naming each problem (a
    manifest loaded with its checks has none)."""
    declared, problems = declared_types(settings or {}, Path(base_dir))
    if problems:
        raise ValueError("; ".join(f"{'.'.join(str(p) for p in path)}: {message}" for path, message in problems))
    return {**KINDS, **{d.info.name: Kind(d.info, json.dumps(d.document)) for d in declared}}


# ---- discovery (RFC 7644 §4, RFC 7643 §5-7) --------------------------------------------------------


def schema_documents(base: str, kinds: Iterable[Kind] = KINDS.values()) -> list[dict[str, Any]]:
    """``/Schemas``: the served resources' schemas (User, EnterpriseUser, Group, then those of the
    declared ``kinds``), then the ones describing discovery itself (RFC 7643 §8.7.2), each with
    ``meta.location``."""
    builtin = [json.loads(d) for d in _schemas()]
    declared = [json.loads(k.document) for k in kinds if k.document]
    docs = builtin[:3] + declared + builtin[3:]
    for doc in docs:
        doc["meta"] = {"resourceType": "Schema", "location": f"{base}/Schemas/{doc['id']}"}
    return docs


def resource_type_documents(base: str, kinds: Iterable[Kind] = KINDS.values()) -> list[dict[str, Any]]:
    """``/ResourceTypes`` (RFC 7643 §6)."""
    docs = []
    for kind in kinds:
        doc: dict[str, Any] = {"schemas": [RESOURCE_TYPE_SCHEMA], "id": kind.name, "name": kind.name,
                               "description": kind.info.description or kind.name,
                               "endpoint": kind.endpoint, "schema": kind.schema,
                               "meta": {"resourceType": "ResourceType",
                                        "location": f"{base}/ResourceTypes/{kind.name}"}}
        if kind.extensions:
            doc["schemaExtensions"] = [{"schema": e, "required": e in kind.info.required_extensions}
                                       for e in kind.extensions]
        docs.append(doc)
    return docs


def service_provider_config(base: str, max_results: int) -> dict[str, Any]:
    """``/ServiceProviderConfig`` (RFC 7643 §5): what this endpoint supports, truthfully: PATCH,
    filters (``eq`` joined by ``and``, the operators Entra uses), ETags; no bulk, sort or password
    change."""
    return {
        "schemas": [SPC_SCHEMA],
        "patch": {"supported": True},
        "bulk": {"supported": False, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": True, "maxResults": max_results},
        "changePassword": {"supported": False},
        "sort": {"supported": False},
        "etag": {"supported": True},
        "authenticationSchemes": [{
            "type": "oauthbearertoken", "name": "OAuth Bearer Token", "primary": True,
            "description": "A long-lived bearer token in the Authorization header (Entra's Secret Token)",
            "specUri": "https://www.rfc-editor.org/info/rfc6750"}],
        "meta": {"resourceType": "ServiceProviderConfig", "location": f"{base}/ServiceProviderConfig"},
    }
