"""SCIM 2.0 as pure functions: build requests, read responses. No I/O here (the connector sends).

References: RFC 7643 (the schema: attributes, resources, the enterprise extension) and RFC 7644
(the protocol: filters §3.4.2.2, paging §3.4.2.4, PATCH §3.5.2, bulk §3.7, ETags §3.14, errors
§3.12). Discovery documents are read by :mod:`.discovery`; resources travel as plain dicts (a
pydantic round trip per object would cost more than the HTTP request on the hot path).

Attribute names, as a manifest writes them and as records carry them:

* ``userName``, ``active``: a core attribute; ``name.givenName``: a sub-attribute;
* ``emails``: a multi-valued complex attribute as the list of its ``value`` sub-attributes;
  ``members`` the same (the ids of the members: references as target anchors);
* ``emails[type eq "work"].value``: one element picked by a value filter (RFC 7644 §3.5.2 valuePath);
* ``employeeNumber``, ``department``, ``manager``: an extension attribute by its own name when
  no core attribute has that name (``manager`` is the manager's id, RFC 7643 §4.3), or fully
  qualified: ``urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager``;
* a custom schema's attributes likewise, by name or by ``<schema URN>:<attribute>``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
LIST_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
SEARCH_REQUEST = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE_USER = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
MEDIA_TYPE = "application/scim+json"

# attributes every resource has that the server owns (RFC 7643 §3.1): never sent, never mapped
COMMON_SERVER = frozenset({"id", "meta", "schemas"})


# ---- the schema, as discovery found it ------------------------------------------------------------


@dataclass(frozen=True)
class Attr:
    """One attribute of a schema (RFC 7643 §7), reduced to what building and reading needs."""

    name: str
    type: str = "string"
    multi: bool = False
    subs: Mapping[str, Attr] = field(default_factory=dict)
    case_exact: bool = False
    mutability: str = "readWrite"
    returned: str = "default"
    required: bool = False
    uniqueness: str = "none"
    description: str | None = None
    canonical: tuple[str, ...] = ()

    @property
    def is_reference(self) -> bool:
        """A complex attribute standing for another resource by its ``value`` (manager, members)."""
        return self.type == "complex" and "value" in self.subs and "$ref" in self.subs


#: RFC 7643 §3.1: set by the client, caseExact, what this connector keeps the source anchor in
EXTERNAL_ID = Attr("externalId", case_exact=True, description="the identifier of the resource in the client")


@dataclass(frozen=True)
class ResourceInfo:
    """One resource type the server serves (RFC 7644 §4 /ResourceTypes with its /Schemas)."""

    name: str  # "User"
    endpoint: str  # "/Users"
    schema: str  # the core schema's URN
    extensions: tuple[str, ...] = ()
    required_extensions: tuple[str, ...] = ()
    attributes: Mapping[str, Mapping[str, Attr]] = field(default_factory=dict)  # schema URN -> lower name -> Attr
    description: str | None = None

    @property
    def object_name(self) -> str:
        """The name a manifest uses: the endpoint without its slash (``Users``)."""
        return self.endpoint.strip("/")

    def find(self, name: str) -> tuple[str, Attr] | None:
        """(schema URN, attribute) of a top-level attribute name: core first, then the extensions."""
        lower = name.lower()
        for urn in (self.schema, *self.extensions):
            attr = self.attributes.get(urn, {}).get(lower)
            if attr is not None:
                return urn, attr
        if lower == "externalid":  # a common attribute (RFC 7643 §3.1), not listed in the schemas
            return self.schema, EXTERNAL_ID
        return None

    def short_name(self, urn: str, attr: Attr) -> str:
        """How records name an extension attribute: its own name, unless a core attribute or an
        earlier extension has that name too (then ``<URN>:<name>``)."""
        found = self.find(attr.name)
        return attr.name if urn == self.schema or (found and found[0] == urn) else f"{urn}:{attr.name}"


@dataclass(frozen=True)
class Features:
    """What /ServiceProviderConfig says the server supports (RFC 7643 §5)."""

    patch: bool = True
    bulk: bool = False
    bulk_max_operations: int = 0
    bulk_max_payload: int = 0
    filter: bool = True
    max_results: int = 0
    etag: bool = False
    change_password: bool = False
    sort: bool = False
    auth_schemes: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.__dict__.items()}


# ---- attribute paths ----------------------------------------------------------------------------

_URN_PATH = re.compile(r"^(urn:[^\[\]]+):([A-Za-z$][\w$-]*)(.*)$", re.IGNORECASE)
_PATH = re.compile(r"^([A-Za-z$][\w$-]*)(?:\[(.+)\])?(?:\.([A-Za-z$][\w$-]*))?$")
_EQ = re.compile(r'^\s*([A-Za-z$][\w$-]*)\s+eq\s+("(?:[^"\\]|\\.)*"|true|false|null|-?\d+(?:\.\d+)?)\s*$', re.IGNORECASE)


@dataclass(frozen=True)
class Path:
    """A parsed attribute name: ``[urn:]attr[[filter]][.sub]`` (RFC 7644 §3.5.2 PATH)."""

    urn: str | None
    attr: str
    filter: str | None = None  # the text inside [...]
    sub: str | None = None

    def text(self, urn: str | None = None) -> str:
        """The path as PATCH sends it; extension attributes fully qualified (RFC 7644 §3.5.2)."""
        base = f"{urn}:{self.attr}" if urn else self.attr
        return base + (f"[{self.filter}]" if self.filter else "") + (f".{self.sub}" if self.sub else "")


def parse_path(name: str) -> Path:
    """``emails[type eq "work"].value`` -> Path(None, "emails", 'type eq "work"', "value")."""
    urn = None
    m = _URN_PATH.match(name)
    if m and m.group(1).count(":") >= 3:
        urn, rest = m.group(1), m.group(2) + m.group(3)
    else:
        rest = name
    p = _PATH.match(rest)
    if not p:
        raise ValueError(f"{name!r} is not a SCIM attribute path (attr, attr.sub, attr[filter].sub, urn:...:attr)")
    return Path(urn, p.group(1), p.group(2), p.group(3))


def filter_equalities(text: str) -> dict[str, Any]:
    """The sub-attribute values a value filter of ``a eq v [and b eq w]`` pins (what an element
    written through that path must carry); ValueError for anything richer."""
    pinned: dict[str, Any] = {}
    for part in re.split(r"\s+and\s+", text, flags=re.IGNORECASE):
        m = _EQ.match(part)
        if not m:
            raise ValueError(f"only 'sub eq value' filters (joined by 'and') can be written to, not [{text}]")
        pinned[m.group(1)] = json.loads(m.group(2))
    return pinned


@dataclass(frozen=True)
class Resolved:
    """A manifest attribute resolved against a resource type: where it lives and what it is."""

    name: str
    path: Path
    urn: str  # the schema holding it
    attr: Attr
    sub: Attr | None  # the sub-attribute addressed, if any
    core: bool = True  # in the resource type's core schema (else an extension)

    @property
    def qualified(self) -> str | None:
        """The URN to put before the attribute in a PATCH path: only for extensions."""
        return None if self.core else self.urn


def resolve(info: ResourceInfo, name: str) -> Resolved:
    """Where ``name`` lives in ``info``; ValueError naming the attribute when the schema has no such thing."""
    path = parse_path(name)
    if path.urn:
        attr = info.attributes.get(path.urn, {}).get(path.attr.lower())
        urn = path.urn
        if attr is None:
            known = [u for u in info.attributes]
            raise ValueError(f"{info.object_name} has no attribute {path.attr!r} in schema {path.urn} "
                             f"(its schemas: {', '.join(known)})")
    else:
        found = info.find(path.attr)
        if found is None:
            raise ValueError(f"{info.object_name} has no attribute {path.attr!r}"
                             + _close(path.attr, [a.name for m in info.attributes.values() for a in m.values()]))
        urn, attr = found
    sub = None
    if path.sub:
        sub = attr.subs.get(path.sub.lower())
        if sub is None:
            raise ValueError(f"{info.object_name}: {attr.name} has no sub-attribute {path.sub!r}"
                             + _close(path.sub, [s.name for s in attr.subs.values()]))
    if path.filter and not attr.multi:
        raise ValueError(f"{info.object_name}: [{path.filter}] picks values of a multi-valued attribute; "
                         f"{attr.name} has one value")
    return Resolved(name, path, urn, attr, sub, urn == info.schema)


def _close(word: str, candidates: Iterable[str]) -> str:
    import difflib
    close = difflib.get_close_matches(word, list(dict.fromkeys(candidates)), n=3, cutoff=0.6)
    return f" (did you mean {', '.join(close)}?)" if close else ""


# ---- filters (RFC 7644 §3.4.2.2) -------------------------------------------------------------------


def literal(value: Any) -> str:
    """A filter comparison value: a JSON literal, so quotes and backslashes are escaped and
    non-ASCII text is kept as UTF-8 (RFC 7644 §3.4.2.2: compValue = false / null / true / number /
    string, string as in RFC 7159)."""
    if isinstance(value, bool) or value is None or isinstance(value, int | float):
        return json.dumps(value)
    return json.dumps(str(value), ensure_ascii=False)


def eq(path: str, value: Any) -> str:
    return f"{path} eq {literal(value)}"


def all_of(clauses: Sequence[str]) -> str:
    return " and ".join(f"({c})" if " or " in c else c for c in clauses)


def lookup_filter(info: ResourceInfo, values: Mapping[str, Any]) -> str:
    """The filter finding resources whose attributes equal ``values`` (several: all must match)."""
    clauses = []
    for name, value in values.items():
        r = resolve(info, name)
        if r.attr.is_reference or (r.attr.multi and r.attr.type == "complex" and not r.path.sub):
            target = f"{r.path.text(r.qualified)}.value"
        else:
            target = r.path.text(r.qualified)
        if r.path.filter:  # emails[type eq "work"].value eq "x" -> emails[type eq "work" and value eq "x"]
            sub = r.path.sub or "value"
            base = f"{r.qualified}:{r.path.attr}" if r.qualified else r.path.attr
            clauses.append(f"{base}[{r.path.filter} and {eq(sub, value)}]")
            continue
        clauses.append(eq(target, value))
    return all_of(clauses)


def since_filter(watermark: str) -> str:
    """Resources modified after ``watermark`` (RFC 7644 §3.4.2.2 ``gt`` on a dateTime)."""
    return f"meta.lastModified gt {literal(watermark)}"


def parse_time(text: str) -> datetime:
    """An xsd:dateTime as SCIM sends it (RFC 7643 §2.3.5); ValueError when it is not one."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


def format_time(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


# ---- resources -> records ---------------------------------------------------------------------------


def _from_wire(attr: Attr, value: Any, strings_as_booleans: bool) -> Any:
    if strings_as_booleans and attr.type == "boolean" and isinstance(value, str):
        return value.strip().lower() == "true"
    return value


def flatten(info: ResourceInfo, resource: Mapping[str, Any], *, strings_as_booleans: bool = False) -> dict[str, Any]:
    """A resource's attributes under the names a manifest uses (see the module docstring)."""
    out: dict[str, Any] = {}
    for urn in (info.schema, *info.extensions):
        schema = info.attributes.get(urn, {})
        block = resource if urn == info.schema else resource.get(urn)
        if not isinstance(block, Mapping):
            continue
        for key, value in block.items():
            if urn == info.schema and (key in COMMON_SERVER or key.startswith("urn:")):
                continue
            attr = schema.get(key.lower())
            if attr is None:
                if urn == info.schema and key == "externalId":
                    out["externalId"] = value
                continue
            name = info.short_name(urn, attr) if urn != info.schema else attr.name
            _flatten_one(out, name, attr, value, strings_as_booleans)
    return out


def _flatten_one(out: dict[str, Any], name: str, attr: Attr, value: Any, sab: bool) -> None:
    if value is None:
        return
    if attr.type != "complex":
        out[name] = [_from_wire(attr, v, sab) for v in value] if attr.multi and isinstance(value, list) \
            else _from_wire(attr, value, sab)
        return
    if attr.multi:
        items = [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []
        if "value" in attr.subs:
            out[name] = [i.get("value") for i in items if i.get("value") is not None]
        if "type" in attr.subs:
            for item in items:
                kind = item.get("type")
                if not isinstance(kind, str):
                    continue
                for sub_key, sub_value in item.items():
                    if sub_key == "type" or sub_value is None:
                        continue
                    sub = attr.subs.get(sub_key.lower())
                    key = f'{name}[type eq {literal(kind)}].{sub.name if sub else sub_key}'
                    out.setdefault(key, _from_wire(sub, sub_value, sab) if sub else sub_value)
        return
    if not isinstance(value, Mapping):
        return
    if attr.is_reference:
        if value.get("value") is not None:
            out[name] = value["value"]
        return
    for sub_key, sub_value in value.items():
        sub = attr.subs.get(sub_key.lower())
        if sub is not None and sub_value is not None:
            out[f"{name}.{sub.name}"] = _from_wire(sub, sub_value, sab)


# ---- records -> resources (POST, PUT) -----------------------------------------------------------------


def _to_wire(attr: Attr | None, value: Any, booleans_as_strings: bool) -> Any:
    if booleans_as_strings and isinstance(value, bool):
        return "True" if value else "False"
    return value


def element(r: Resolved, value: Any, bas: bool = False) -> Any:
    """The JSON value of attribute ``r`` (without a filter or sub-attribute) for ``value``."""
    if r.attr.is_reference and not r.attr.multi:
        return None if value is None else {"value": value}
    if r.attr.multi and r.attr.type == "complex":
        values = value if isinstance(value, list | tuple) else [value]
        return [v if isinstance(v, Mapping) else {"value": _to_wire(r.attr.subs.get("value"), v, bas)}
                for v in values if v is not None]
    return _to_wire(r.attr, value, bas)


def build_resource(info: ResourceInfo, attributes: Mapping[str, Any], *, external_id: str | None = None,
                   password: str | None = None, booleans_as_strings: bool = False) -> dict[str, Any]:
    """The body of a POST or PUT (RFC 7644 §3.3, §3.5.1) for a record's attributes."""
    body: dict[str, Any] = {"schemas": [info.schema]}
    for name, value in attributes.items():
        if value is None or value == []:
            continue
        if name == "externalId":
            body["externalId"] = value
            continue
        r = resolve(info, name)
        block = body
        if r.urn != info.schema:
            block = body.setdefault(r.urn, {})
            if r.urn not in body["schemas"]:
                body["schemas"].append(r.urn)
        key = r.attr.name
        if r.path.filter:
            pinned = filter_equalities(r.path.filter)
            items = block.setdefault(key, [])
            target = next((i for i in items if all(i.get(k) == v for k, v in pinned.items())), None)
            if target is None:
                target = dict(pinned)
                items.append(target)
            target[r.sub.name if r.sub else "value"] = _to_wire(r.sub, value, booleans_as_strings)
        elif r.path.sub:
            block.setdefault(key, {})[r.sub.name if r.sub else r.path.sub] = _to_wire(r.sub, value, booleans_as_strings)
        elif r.attr.multi and r.attr.type == "complex" and isinstance(block.get(key), list):
            block[key].extend(element(r, value, booleans_as_strings))
        else:
            block[key] = element(r, value, booleans_as_strings)
    for urn in info.required_extensions:
        if urn not in body:
            body[urn] = {}
            body["schemas"].append(urn)
    if external_id is not None and "externalId" not in body:
        body["externalId"] = external_id
    if password is not None:
        body["password"] = password
    return body


def overlay(info: ResourceInfo, resource: Mapping[str, Any], attributes: Mapping[str, Any], *,
            booleans_as_strings: bool = False) -> dict[str, Any]:
    """The body of a PUT (RFC 7644 §3.5.1, which replaces the whole resource): what the server
    holds with ``attributes`` laid over it. Sub-attributes and typed elements (``emails[type eq
    "work"]``) are changed one by one, so what the manifest does not map survives; None removes."""
    out = {k: v for k, v in resource.items() if k != "meta"}
    new = build_resource(info, {k: v for k, v in attributes.items() if v is not None and v != []},
                         booleans_as_strings=booleans_as_strings)
    out["schemas"] = list(dict.fromkeys([*(resource.get("schemas") or []), *new["schemas"]]))

    def lay(target: dict[str, Any], source: Mapping[str, Any]) -> None:
        for key, value in source.items():
            old = target.get(key)
            if isinstance(value, dict) and isinstance(old, dict):
                target[key] = {**old, **value}
            elif isinstance(value, list) and isinstance(old, list) and value and all(
                    isinstance(v, Mapping) and "type" in v for v in value):
                kinds = {v["type"] for v in value}
                target[key] = [o for o in old if not (isinstance(o, Mapping) and o.get("type") in kinds)] + value
            else:
                target[key] = value

    for key, value in new.items():
        if key == "schemas":
            continue
        if key.startswith("urn:") and isinstance(value, dict):
            block = dict(out.get(key) or {})
            lay(block, value)
            out[key] = block
        else:
            lay(out, {key: value})
    for name, value in attributes.items():
        if value is not None and value != []:
            continue
        if name == "externalId":
            out.pop("externalId", None)
            continue
        r = resolve(info, name)
        block = out if r.core else out.get(r.urn, {})
        if r.path.filter:
            pinned = filter_equalities(r.path.filter)
            block[r.attr.name] = [i for i in block.get(r.attr.name) or []
                                  if not all(i.get(k) == v for k, v in pinned.items())]
        elif r.path.sub and isinstance(block.get(r.attr.name), dict):
            block[r.attr.name].pop(r.sub.name if r.sub else r.path.sub, None)
        else:
            block.pop(r.attr.name, None)
    return out


# ---- PATCH (RFC 7644 §3.5.2) ------------------------------------------------------------------------


def patch_body(operations: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return {"schemas": [PATCH_OP], "Operations": list(operations)}


def set_operations(info: ResourceInfo, attributes: Mapping[str, Any], *, booleans_as_strings: bool = False,
                   add_when_missing: frozenset[str] = frozenset()) -> list[dict[str, Any]]:
    """PATCH operations setting ``attributes`` (None removes, a list replaces the whole list).

    A value-filtered path (``emails[type eq "work"].value``) is a ``replace`` (RFC 7644 §3.5.2.3),
    which the server refuses with ``noTarget`` when no element matches yet; names listed in
    ``add_when_missing`` are sent as an ``add`` of a new element instead (§3.5.2.1)."""
    ops: list[dict[str, Any]] = []
    for name, value in attributes.items():
        if name == "externalId":
            ops.append({"op": "remove", "path": "externalId"} if value is None else
                       {"op": "replace", "path": "externalId", "value": value})
            continue
        r = resolve(info, name)
        path = r.path.text(r.qualified)
        if value is None or value == []:
            remove_path = r.path.text(r.qualified) if not r.path.filter else \
                Path(None, r.path.attr, r.path.filter).text(r.qualified)
            ops.append({"op": "remove", "path": remove_path})
            continue
        if r.path.filter:
            if name in add_when_missing:
                item = dict(filter_equalities(r.path.filter))
                item[r.sub.name if r.sub else "value"] = _to_wire(r.sub, value, booleans_as_strings)
                ops.append({"op": "add", "path": Path(None, r.path.attr).text(r.qualified), "value": [item]})
            else:
                ops.append({"op": "replace", "path": path, "value": _to_wire(r.sub, value, booleans_as_strings)})
            continue
        if r.path.sub:
            ops.append({"op": "replace", "path": path, "value": _to_wire(r.sub, value, booleans_as_strings)})
            continue
        ops.append({"op": "replace", "path": path, "value": element(r, value, booleans_as_strings)})
    return ops


def value_operations(info: ResourceInfo, add_values: Mapping[str, Sequence[Any]],
                     remove_values: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """PATCH operations adding and removing values of multi-valued attributes: one ``add`` with the
    new elements (§3.5.2.1: adding one already there changes nothing), one ``remove`` per value by a
    value filter ``members[value eq "id"]`` (§3.5.2.2: removing one already gone is no error)."""
    ops: list[dict[str, Any]] = []
    for name, values in remove_values.items():
        r = resolve(info, name)
        base = Path(None, r.path.attr).text(r.qualified)
        for v in values:
            if r.attr.type == "complex":
                ops.append({"op": "remove", "path": f"{base}[{eq('value', v)}]"})
            else:
                ops.append({"op": "remove", "path": base, "value": [v]})
    for name, values in add_values.items():
        if values:
            r = resolve(info, name)
            ops.append({"op": "add", "path": Path(None, r.path.attr).text(r.qualified), "value": element(r, list(values))})
    return ops


def chunks(values: Sequence[Any], size: int) -> Iterator[list[Any]]:
    size = max(1, size)
    for i in range(0, len(values), size):
        yield list(values[i:i + size])


def body_size(body: Any) -> int:
    return len(json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode())


def split_by_size(ops: Sequence[dict[str, Any]], limit: int, count: int) -> list[list[dict[str, Any]]]:
    """PATCH operations in request-sized groups: at most ``count`` member values per request and
    ``limit`` bytes per body (a server's maxPayloadSize; Miro refuses 800 KB with 413). An ``add``
    with more values than fit is cut into several."""
    pieces: list[dict[str, Any]] = []
    for op in ops:
        values = op.get("value")
        if op["op"] == "add" and isinstance(values, list) and len(values) > count:
            pieces.extend({**op, "value": part} for part in chunks(values, count))
        else:
            pieces.append(op)
    groups: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    size = body_size(patch_body([]))
    values_in = 0
    for op in pieces:
        n = len(op["value"]) if isinstance(op.get("value"), list) else 1
        s = body_size(op) + 1
        if current and (size + s > limit or values_in + n > count):
            groups.append(current)
            current, size, values_in = [], body_size(patch_body([])), 0
        current.append(op)
        size += s
        values_in += n
    if current:
        groups.append(current)
    return groups


def apply_patch_locally(members: list[Any], add: Sequence[Any], remove: Sequence[Any]) -> list[Any]:
    """The member list after adds and removes, for servers that cannot filter in a PATCH path
    (read-modify-write): order kept, nothing twice."""
    gone = {str(v) for v in remove}
    kept = [m for m in members if str(m) not in gone]
    seen = {str(m) for m in kept}
    for v in add:
        if str(v) not in seen:
            kept.append(v)
            seen.add(str(v))
    return kept


# ---- bulk (RFC 7644 §3.7) -------------------------------------------------------------------------------


def bulk_body(operations: Sequence[Mapping[str, Any]], fail_on_errors: int | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"schemas": [BULK_REQUEST], "Operations": list(operations)}
    if fail_on_errors is not None:
        body["failOnErrors"] = fail_on_errors
    return body


def bulk_post(endpoint: str, bulk_id: str, data: Mapping[str, Any]) -> dict[str, Any]:
    return {"method": "POST", "path": endpoint, "bulkId": bulk_id, "data": dict(data)}


def bulk_groups(operations: Sequence[Mapping[str, Any]], max_operations: int, max_payload: int) -> list[list[Mapping[str, Any]]]:
    """Bulk operations in requests within the server's maxOperations and maxPayloadSize."""
    groups: list[list[Mapping[str, Any]]] = []
    current: list[Mapping[str, Any]] = []
    empty = body_size(bulk_body([]))
    size = empty
    for op in operations:
        s = body_size(op) + 1
        if current and ((max_operations and len(current) >= max_operations) or (max_payload and size + s > max_payload)):
            groups.append(current)
            current, size = [], empty
        current.append(op)
        size += s
    if current:
        groups.append(current)
    return groups


@dataclass(frozen=True)
class BulkOutcome:
    """One operation's outcome in a BulkResponse (RFC 7644 §3.7.3)."""

    status: int
    anchor: str | None = None
    version: str | None = None
    error: Mapping[str, Any] | None = None


def bulk_outcomes(body: Mapping[str, Any]) -> dict[str, BulkOutcome]:
    """bulkId -> its outcome: status, the resource id from its location, its version, the error response."""
    out: dict[str, BulkOutcome] = {}
    for op in body.get("Operations") or []:
        status_raw = op.get("status")
        if isinstance(status_raw, Mapping):  # RFC 7644 §3.7.3's example nests {"code": ...}
            status_raw = status_raw.get("code")
        location = op.get("location")
        anchor = str(location).rstrip("/").rsplit("/", 1)[-1] if location else None
        out[str(op.get("bulkId"))] = BulkOutcome(int(status_raw or 0), anchor, op.get("version"), op.get("response"))
    return out


# ---- responses -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ListPage:
    resources: list[Mapping[str, Any]]
    total: int
    start: int
    per_page: int


def list_page(body: Any) -> ListPage:
    """A ListResponse (RFC 7644 §3.4.2): its resources and paging numbers; ValueError when it is not one."""
    if not isinstance(body, Mapping):
        raise ValueError("the answer is not a JSON object")
    resources = body.get("Resources", [])
    if not isinstance(resources, list):
        raise ValueError("Resources is not a list")
    total = int(body.get("totalResults", len(resources)))
    return ListPage([r for r in resources if isinstance(r, Mapping)], total, int(body.get("startIndex", 1) or 1),
                    int(body.get("itemsPerPage", len(resources)) or len(resources)))


@dataclass(frozen=True)
class Failure:
    """A SCIM error response (RFC 7644 §3.12) in the terms the connector decides on."""

    status: int
    scim_type: str | None
    detail: str

    @property
    def kind(self) -> str | None:
        """``exists`` for a uniqueness conflict, ``permanent`` for a value the server will keep refusing,
        ``no_target`` for a value filter that matched nothing, ``too_many`` for a filter result too big."""
        t = (self.scim_type or "").lower()
        if t == "uniqueness":
            return "exists"
        if t == "notarget":
            return "no_target"
        if t == "toomany":
            return "too_many"
        if t in ("invalidvalue", "invalidsyntax", "mutability", "invalidpath", "invalidfilter", "sensitive"):
            return "permanent"
        return None


def any_case(doc: Mapping[str, Any], name: str) -> Any:
    """``doc[name]`` with the name compared without case (RFC 7643 §2.1); None when absent."""
    if name in doc:
        return doc[name]
    lower = name.lower()
    return next((v for k, v in doc.items() if isinstance(k, str) and k.lower() == lower), None)


def failure(status: int, body: Any, text: str = "") -> Failure:
    """The error of a non-2xx answer; tolerant of servers that send plain text or no scimType."""
    if isinstance(body, Mapping) and ERROR in (body.get("schemas") or [ERROR]):
        scim_type = any_case(body, "scimType")
        return Failure(status, str(scim_type) if scim_type is not None else None, str(any_case(body, "detail") or ""))
    return Failure(status, None, text.strip()[:300])


def etag_of(headers: Mapping[str, str], resource: Mapping[str, Any] | None) -> str | None:
    """A resource's version: the ETag header, else meta.version (RFC 7644 §3.14)."""
    tag = headers.get("ETag")
    if tag:
        return tag
    if isinstance(resource, Mapping):
        meta = resource.get("meta")
        if isinstance(meta, Mapping) and meta.get("version"):
            return str(meta["version"])
    return None


def last_modified(resource: Mapping[str, Any]) -> str | None:
    meta = resource.get("meta")
    return str(meta["lastModified"]) if isinstance(meta, Mapping) and meta.get("lastModified") else None
