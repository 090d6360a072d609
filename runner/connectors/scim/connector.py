"""The SCIM 2.0 connector (RFC 7643/7644): a thin facade over :mod:`.protocol` and the shared HTTP layer.

Objects are a server's resource types by endpoint name (``Users``, ``Groups``, or any type its
/ResourceTypes declares). Anchors are the server's ``id``s; ``externalId`` carries the source
anchor (the correlation that finds an object whose add was lost), references (``manager``,
``members``) are ids. /ServiceProviderConfig, /ResourceTypes and /Schemas are read once at
``open``; ``negotiate`` narrows what the engine may ask to what the server announced (no PATCH:
whole-object PUTs; no ETags: no preconditions; no changePassword: no ``set_password``).
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import requests

from runner.connectors.base import (
    AlreadyExists,
    AttributeInfo,
    Capabilities,
    ConfigurationError,
    ConnectionFailed,
    Connector,
    ConnectorContext,
    NotFound,
    ObjectError,
    ObjectInfo,
    Operation,
    Page,
    PermanentError,
    Record,
    Result,
    RetryableError,
    Throttled,
    WatermarkExpired,
)
from runner.connectors.http import (
    HTTP_PROPERTIES,
    HttpClient,
    HttpSettings,
    PayloadTooLarge,
    RequestLost,
    VersionConflict,
    check_settings,
    error_for,
    retry_after_seconds,
)
from runner.connectors.scim import discovery
from runner.connectors.scim import profiles as profile_mod
from runner.connectors.scim import protocol as p

DEFAULT_PAGE = 100
DEFAULT_MEMBERS_PER_PATCH = 1000
DEFAULT_PAYLOAD = 1_000_000


class ScimConnector(Connector):
    """SCIM 2.0 service provider (Users, Groups, any declared resource type) over HTTP, as target or source."""

    type_name = "scim"
    interface_version = 2
    config_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["url"],
        "properties": {
            "type": {"const": "scim"},
            **HTTP_PROPERTIES,
            "profile": {"oneOf": [{"enum": list(profile_mod.PROFILES)},
                                  {"type": "array", "items": {"enum": list(profile_mod.PROFILES)}}]},
            "page_size": {"type": "integer", "minimum": 1, "default": DEFAULT_PAGE},
            "max_members_per_patch": {"type": "integer", "minimum": 1, "default": DEFAULT_MEMBERS_PER_PATCH,
                                      "description": "most values one PATCH adds or removes (Miro: 8000)"},
            "max_payload_size": {"type": "integer", "minimum": 1024,
                                 "description": "most bytes one request body holds (default: the server's "
                                                "bulk maxPayloadSize, else 1 MB); a 413 halves it"},
            "bulk": {"type": "boolean", "default": False,
                     "description": "send adds through /Bulk when the server supports it"},
            "objects": {
                "type": "object",
                "additionalProperties": {
                    "type": "object", "additionalProperties": False,
                    "properties": {
                        "delta": {"type": "boolean", "default": False,
                                  "description": "read changes by meta.lastModified (deletions only show "
                                                 "in full reads: set source.full_import_every)"},
                    },
                },
            },
        },
    }

    def __init__(self, config: Mapping[str, Any], context: ConnectorContext):
        super().__init__(config, context)
        self.settings = HttpSettings.from_config(config, context.base_dir)
        try:
            self.profile = profile_mod.resolve(config.get("profile"))
        except KeyError as exc:
            raise ConfigurationError(str(exc.args[0])) from None
        self.page_size = int(config.get("page_size", DEFAULT_PAGE))
        self.members_per_patch = int(config.get("max_members_per_patch", DEFAULT_MEMBERS_PER_PATCH))
        self.client: HttpClient | None = None
        self.features = p.Features()
        self.types: dict[str, p.ResourceInfo] = {}
        self._payload = int(config.get("max_payload_size") or 0)
        self._locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()

    # ---- facts --------------------------------------------------------------------------------

    def object_names(self) -> Sequence[str] | None:
        objects = self.config.get("objects")
        return list(objects) if objects else None

    def _object_config(self, object: str | None) -> Mapping[str, Any]:
        return (self.config.get("objects") or {}).get(object or "", {}) or {}

    def capabilities(self, object: str | None = None) -> Capabilities:
        users = (object or "").lower() in ("users", "user")
        ops = {"add", "update", "disable", "delete"} | ({"set_password"} if users else set())
        return Capabilities(
            operations=frozenset(ops),
            delta_read=bool(self._object_config(object).get("delta", False)),
            max_concurrency=self.settings.concurrency,
            generated_anchor=True,
            correlation=("externalId",),
            max_values_per_operation=self.members_per_patch,
            normalizations={"userName": ("case_insensitive",)} if users else {},
            versioned=True,
        )

    def negotiate(self, object: str) -> Capabilities:
        caps = self.capabilities(object)
        ops = set(caps.operations)
        if not self.features.change_password:
            ops.discard("set_password")
        whole = not self.features.patch
        bulk = bool(self.config.get("bulk") and self.features.bulk)
        return Capabilities(**{**caps.__dict__, "operations": frozenset(ops), "versioned": self.features.etag,
                               "export_style": "whole_object" if whole else caps.export_style,
                               "multi_valued_deltas": not whole,
                               "batch_size": (self.features.bulk_max_operations or 1) if bulk else 1})

    def check(self) -> list[tuple[tuple[str | int, ...], str]]:
        return check_settings(self.config, self.context.base_dir)

    # ---- lifecycle ----------------------------------------------------------------------------

    def open(self) -> None:
        self.client = HttpClient(self.settings, label=f"scim connector {self.context.name!r}",
                                 logger=self.context.logger, user_agent="provision-scim")
        body = self._discovery("/ServiceProviderConfig")
        try:
            self.features = discovery.parse_service_provider_config(body or {})
        except discovery.DiscoveryError as exc:
            raise ConnectionFailed(f"{self._label()}: /ServiceProviderConfig is not a SCIM service provider "
                                   f"configuration ({exc}): check url") from None
        schemas: dict[str, dict[str, p.Attr]] = {}
        schema_docs = self._discovery("/Schemas", optional=True)
        if schema_docs is not None:
            try:
                schemas = discovery.parse_schemas(p.list_page(schema_docs).resources)
            except ValueError as exc:  # a broken /Schemas should not stop a run: the RFC's are known
                self.context.logger.warning("%s: /Schemas is not readable (%s); using the schemas of RFC 7643",
                                            self._label(), str(exc).splitlines()[0])
        for urn, attributes in discovery.rfc_schemas().items():
            schemas.setdefault(urn, attributes)
        types_doc = self._discovery("/ResourceTypes", optional=True)
        if types_doc is not None:
            try:
                infos = discovery.parse_resource_types(p.list_page(types_doc).resources, schemas)
            except ValueError as exc:
                raise ConnectionFailed(f"{self._label()}: /ResourceTypes is not a list of SCIM resource types "
                                       f"({exc}): check url") from None
        else:  # RFC 7644 §4 makes it mandatory, but some services omit it: the RFC's two types
            infos = discovery.parse_resource_types([
                {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"], "id": "User", "name": "User",
                 "endpoint": "/Users", "schema": p.CORE_USER,
                 "schemaExtensions": [{"schema": p.ENTERPRISE_USER, "required": False}]},
                {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"], "id": "Group", "name": "Group",
                 "endpoint": "/Groups", "schema": p.CORE_GROUP}], schemas)
        self.types = {i.object_name.lower(): i for i in infos}
        self.types.update({i.name.lower(): i for i in infos if i.name.lower() not in self.types})
        if not self._payload:
            self._payload = self.features.bulk_max_payload or DEFAULT_PAYLOAD
        missing = [o for o in self.object_names() or () if o.lower() not in self.types]
        if missing:
            raise ConfigurationError(f"{self._label()}: the server serves no resource type {', '.join(missing)}; "
                                     f"it serves {', '.join(sorted({i.object_name for i in infos}))}")

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None

    def ping(self) -> None:
        if self.client is None:
            raise ConnectionFailed(f"{self._label()}: not open")

    # ---- describing -------------------------------------------------------------------------------

    def discover(self) -> Sequence[ObjectInfo]:
        names = self.object_names()
        infos = {i.object_name: i for i in self.types.values()}
        chosen = [infos[n] if n in infos else self._info(n) for n in names] if names else list(infos.values())
        out = []
        for info in chosen:
            attributes = [AttributeInfo("externalId", description="the source anchor (correlation)")]
            for urn in (info.schema, *info.extensions):
                for attr in info.attributes.get(urn, {}).values():
                    if attr.name in p.COMMON_SERVER or attr.name == "externalId":
                        continue
                    attributes.extend(_attribute_infos(info.short_name(urn, attr) if urn != info.schema else attr.name,
                                                       attr))
            out.append(ObjectInfo(names[[n.lower() for n in names].index(info.object_name.lower())]
                                  if names and info.object_name.lower() in [n.lower() for n in names]
                                  else info.object_name, attributes, complete=True, description=info.description))
        return out

    def identity(self) -> Mapping[str, Any]:
        """The service's base URL (a tenant is part of it in every SCIM service we know)."""
        return {"service": self.settings.base_url.rstrip("/")}

    def server_info(self) -> Mapping[str, Any]:
        infos = {i.object_name: i for i in self.types.values()}
        return {
            "url": self.settings.base_url,
            "profile": list(self.profile.names),
            **self.features.as_dict(),
            "resource_types": {n: {"endpoint": i.endpoint, "schema": i.schema, "extensions": list(i.extensions)}
                               for n, i in infos.items()},
            "max_payload_size": self._payload,
            "max_members_per_patch": self.members_per_patch,
        }

    # ---- reading ----------------------------------------------------------------------------------

    def read(self, object: str, partition: str | None = None, watermark: str | None = None, *,
             attributes: Sequence[str] | None = None, page_size: int | None = None) -> Iterator[Page]:
        info = self._info(object, fail=ConnectionFailed)
        delta = bool(self._object_config(object).get("delta")) and watermark is not None
        if delta:
            try:
                p.parse_time(str(watermark))
            except ValueError:
                raise WatermarkExpired(f"{self._label()}: {watermark!r} is not a watermark this connector "
                                       "returned") from None
        count = page_size or self.page_size
        if self.features.max_results:
            count = min(count, self.features.max_results)
        params: dict[str, Any] = {"count": count}
        if delta:
            params["filter"] = p.since_filter(str(watermark))
        start, pages, newest, started = 1, 0, None, None
        while True:
            response = self._get(info.endpoint, {**params, "startIndex": start}, reading=True)
            if started is None:
                started = _server_time(response)
            try:
                page = p.list_page(response.json())
            except ValueError as exc:
                raise ConnectionFailed(f"{self._label()}: {info.endpoint} did not answer a SCIM list ({exc})") from None
            records = [self._record(info, r, dict(response.headers)) for r in page.resources]
            pages += 1
            for r in page.resources:
                stamp = p.last_modified(r)
                if stamp and (newest is None or p.parse_time(stamp) > p.parse_time(newest)):
                    newest = stamp
            start += len(page.resources)
            last = not page.resources or start > page.total
            if last:
                yield Page(records, watermark=self._watermark(watermark, newest, started, pages))
                return
            yield Page(records)

    def _watermark(self, old: str | None, newest: str | None, started: Any, pages: int) -> str:
        """Where the next delta read resumes. One page is one answer, a consistent view: the newest
        change it holds. Several pages are not (an object changed while we paged may have moved to
        a page already read): a second before the server's clock at the first page, so that change
        is read again next time rather than lost."""
        safe = p.format_time(started - timedelta(seconds=1)) if started is not None else None
        if newest is None:
            return old or safe or "1970-01-01T00:00:00.000000Z"
        if pages > 1 and safe is not None and p.parse_time(safe) < p.parse_time(newest):
            return safe
        return newest

    def _record(self, info: p.ResourceInfo, resource: Mapping[str, Any], headers: Mapping[str, str] | None = None) -> Record:
        attributes = p.flatten(info, resource, strings_as_booleans=self.profile.booleans_as_strings)
        meta = resource.get("meta") if isinstance(resource.get("meta"), Mapping) else {}
        return Record(attributes, anchor=str(resource.get("id")), version=p.etag_of({}, resource),
                      location=str(meta.get("location") or f"{info.endpoint}/{resource.get('id')}"))

    def get(self, object: str, anchor: str | None = None, *, name: str | None = None,
            partition: str | None = None) -> Record | None:
        if anchor is None:
            return None
        info = self._info(object, fail=ConnectionFailed)
        response = self._send("GET", f"{info.endpoint}/{anchor}", what=f"{object} {anchor}", reading=True)
        if response.status_code == 404:
            return None
        self._raise_for(response, f"{object} {anchor}", reading=True)
        resource = response.json()
        record = self._record(info, resource)
        version = p.etag_of(dict(response.headers), resource)
        return Record(record.attributes, record.anchor, version=version, location=record.location)

    def lookup(self, object: str, values: Mapping[str, Any], *, partition: str | None = None) -> list[Record]:
        info = self._info(object, fail=ConnectionFailed)
        if not values:
            return []
        if not self.profile.filter_external_id and "externalId" in values or not self.features.filter:
            return self._scan(info, values)
        try:
            filter = p.lookup_filter(info, values)
        except ValueError as exc:
            raise ConnectionFailed(f"{self._label()}: cannot look {object} up: {exc}") from None
        found: list[Record] = []
        start = 1
        while True:
            response = self._get(info.endpoint, {"filter": filter, "startIndex": start, "count": self.page_size},
                                 reading=True)
            page = p.list_page(response.json())
            found.extend(self._record(info, r) for r in page.resources)
            start += len(page.resources)
            if not page.resources or start > page.total:
                return found

    def _scan(self, info: p.ResourceInfo, values: Mapping[str, Any]) -> list[Record]:
        """A lookup the server cannot filter: read the listing and compare here (as it would: case-
        insensitively where the schema says caseExact is false)."""
        def same(name: str, a: Any, b: Any) -> bool:
            if isinstance(a, str) and isinstance(b, str):
                try:
                    exact = name == "externalId" or p.resolve(info, name).attr.case_exact
                except ValueError:
                    exact = True
                return a == b if exact else a.casefold() == b.casefold()
            return a == b
        return [r for page in self.read(info.object_name) for r in page.records
                if all(same(k, r.attributes.get(k), v) for k, v in values.items())]

    # ---- writing ------------------------------------------------------------------------------

    def op_add(self, op: Operation) -> Result:
        info = self._info(op.object)
        what = self._what(op)
        external_id = op.attributes.get("externalId") or op.source_anchor
        # an earlier attempt may have landed (its answer lost): never make a second object
        if op.attempt > 1 and external_id and self.lookup(op.object, {"externalId": external_id}):
            raise AlreadyExists(f"{what}: an object with externalId {external_id!r} is there already "
                                "(an earlier attempt of this add)")
        body = self._body(info, op.attributes, external_id, op.password, what)
        try:
            response = self._send("POST", info.endpoint, json=body, what=what)
        except RequestLost as exc:
            if external_id and self.lookup(op.object, {"externalId": external_id}):
                raise AlreadyExists(f"{what}: the add reached the server before the connection broke") from None
            raise RetryableError(str(exc)) from None
        self._raise_for(response, what)
        resource = _json(response)
        anchor = str(resource.get("id") or _id_from_location(response.headers.get("Location")) or "")
        if not anchor:
            raise ObjectError(f"{what}: the server created the object but answered without its id")
        return Result(op.id, True, anchor, version=p.etag_of(dict(response.headers), resource))

    def op_update(self, op: Operation) -> Result:
        return self._modify(op, op.attributes, op.add_values, op.remove_values)

    def op_disable(self, op: Operation) -> Result:
        return self._modify(op, op.attributes, {}, {})

    def op_set_password(self, op: Operation) -> Result:
        if op.password is None:
            raise ObjectError(f"{self._what(op)}: set_password without a password")
        info = self._info(op.object)
        if not self.features.patch:
            return self._put(op, info, {}, password=op.password)
        return self._patch(op, info, [{"op": "replace", "path": "password", "value": op.password}])

    def op_delete(self, op: Operation) -> Result:
        info = self._info(op.object)
        what = self._what(op)
        response = self._send("DELETE", f"{info.endpoint}/{op.anchor}", what=what)
        self._raise_for(response, what)
        return Result(op.id, True, op.anchor)

    def _modify(self, op: Operation, attributes: Mapping[str, Any], add: Mapping[str, Sequence[Any]],
                remove: Mapping[str, Sequence[Any]]) -> Result:
        info = self._info(op.object)
        what = self._what(op)
        if op.anchor is None:
            raise NotFound(f"{what}: no anchor")
        if not self.features.patch:
            return self._put(op, info, attributes)
        try:
            ops = p.set_operations(info, attributes, booleans_as_strings=self.profile.booleans_as_strings)
            if self.profile.patch_value_filters:
                ops += p.value_operations(info, add, remove)
            elif add or remove:
                return self._rewrite_values(op, info, ops, add, remove)
        except ValueError as exc:
            raise PermanentError(f"{what}: {exc}") from None
        return self._patch(op, info, ops)

    def _patch(self, op: Operation, info: p.ResourceInfo, ops: list[dict[str, Any]], *,
               reread_on_conflict: bool = True) -> Result:
        """The operations in as few PATCH requests as the limits allow, each with If-Match when the
        object's version is known. 412: the object is read again and the rest goes out against the
        new version (the operations are the engine's intended changes, valid on any version); the
        Result then carries what the server really holds, so the next run diffs against that.
        413: the request is split in two and each half sent (nothing is dropped)."""
        what = self._what(op)
        if not ops:
            return Result(op.id, True, op.anchor, version=op.version)
        version = op.version if self.features.etag else None
        conflicted = False
        pending = p.split_by_size(ops, self._payload, self.members_per_patch)
        missing_targets: frozenset[str] = frozenset()
        while pending:
            group = pending.pop(0)
            headers = {"If-Match": version} if version else None
            response = self._send("PATCH", f"{info.endpoint}/{op.anchor}", json=p.patch_body(group),
                                  headers=headers, what=what)
            status = response.status_code
            if status == 412 and not conflicted and reread_on_conflict:
                conflicted = True
                fresh = self.get(op.object, op.anchor)
                if fresh is None:
                    raise NotFound(f"{what}: the object is gone")
                version = fresh.version
                pending.insert(0, group)
                continue
            if status == 413:
                if len(group) == 1 and not _splittable(group[0]):
                    raise PermanentError(f"{what}: the server refuses even one operation as too large (HTTP 413)")
                pending[:0] = _halve(group)
                continue
            if status == 400 and not missing_targets:
                fail = p.failure(status, _json(response), response.text)
                if fail.kind == "no_target":  # a value filter matched nothing: add those elements instead
                    current = self._resource(info, str(op.anchor))
                    missing_targets = frozenset(o["path"] for o in group if o["op"] == "replace"
                                                and "[" in o.get("path", "") and not _matches(info, current, o["path"]))
                    if missing_targets:
                        pending.insert(0, [_as_add(o) if o["path"] in missing_targets else o for o in group])
                        continue
            self._raise_for(response, what)
            version = p.etag_of(dict(response.headers), _json(response)) or version
        stored = None
        if conflicted:  # only then: the engine computes the object again when stored differs from its belief
            fresh = self.get(op.object, op.anchor)
            if fresh is not None:
                version, stored = fresh.version or version, dict(fresh.attributes)
        return Result(op.id, True, op.anchor, version=version, stored=stored)

    def _resource(self, info: p.ResourceInfo, anchor: str) -> dict[str, Any]:
        response = self._send("GET", f"{info.endpoint}/{anchor}", what=f"{info.object_name} {anchor}")
        self._raise_for(response, f"{self._label()}: {info.object_name} {anchor}")
        return _json(response)

    def _rewrite_values(self, op: Operation, info: p.ResourceInfo, ops: list[dict[str, Any]],
                        add: Mapping[str, Sequence[Any]], remove: Mapping[str, Sequence[Any]]) -> Result:
        """Members changed on a server that cannot filter PATCH paths: read the list, change it, replace
        it whole, guarded by If-Match (a concurrent change makes the server refuse, and we start over).
        One object's lists are changed by one thread at a time."""
        what = self._what(op)
        with self._lock_for(f"{info.endpoint}/{op.anchor}"):
            for _ in range(5):
                current = self.get(op.object, op.anchor)
                if current is None:
                    raise NotFound(f"{what}: the object is gone")
                whole = dict(attributes_of(current, set(add) | set(remove)))
                for name in set(add) | set(remove):
                    whole[name] = p.apply_patch_locally(list(whole.get(name) or []), add.get(name, ()),
                                                        remove.get(name, ()))
                rewrite = ops + p.set_operations(info, whole)
                try:
                    return self._patch(_with_version(op, current.version), info, rewrite, reread_on_conflict=False)
                except VersionConflict:
                    continue
            raise RetryableError(f"{what}: the object kept changing while its values were rewritten")

    def _put(self, op: Operation, info: p.ResourceInfo, attributes: Mapping[str, Any],
             password: str | None = None, *, first: bool = True) -> Result:
        """An update on a server without PATCH (RFC 7644 §3.5.1): the whole resource, what the engine
        sent (whole_object) laid over what the server holds, guarded by If-Match; a 412 (it changed
        meanwhile) starts once more from what it holds then."""
        what = self._what(op)
        current = self._resource(info, str(op.anchor))
        try:
            body = p.overlay(info, current, attributes, booleans_as_strings=self.profile.booleans_as_strings)
        except ValueError as exc:
            raise PermanentError(f"{what}: {exc}") from None
        if password is not None:
            body["password"] = password
        version = p.etag_of({}, current) if self.features.etag else None
        if first and op.version and self.features.etag:
            version = op.version
        response = self._send("PUT", f"{info.endpoint}/{op.anchor}", json=body,
                              headers={"If-Match": version} if version else None, what=what)
        if response.status_code == 412 and first:
            result = self._put(op, info, attributes, password, first=False)
            fresh = self.get(op.object, op.anchor)
            return dataclasses.replace(result, stored=dict(fresh.attributes) if fresh else None)
        self._raise_for(response, what)
        return Result(op.id, True, op.anchor, version=p.etag_of(dict(response.headers), _json(response)))

    def _body(self, info: p.ResourceInfo, attributes: Mapping[str, Any], external_id: str | None,
              password: str | None, what: str) -> dict[str, Any]:
        try:
            return p.build_resource(info, attributes, external_id=external_id, password=password,
                                    booleans_as_strings=self.profile.booleans_as_strings)
        except ValueError as exc:
            raise PermanentError(f"{what}: {exc}") from None

    # ---- HTTP, errors ----------------------------------------------------------------------------

    def _discovery(self, path: str, optional: bool = False) -> Any:
        response = self._send("GET", path, what=f"{self._label()}: {path}", reading=True)
        if optional and response.status_code in (404, 405, 501):
            return None
        self._raise_for(response, f"{self._label()}: {path}", reading=True)
        try:
            return response.json()
        except ValueError:
            raise ConnectionFailed(f"{self._label()}: {path} did not answer JSON: check url (it should end at "
                                   "the SCIM base, e.g. https://host/scim/v2)") from None

    def _get(self, path: str, params: Mapping[str, Any], reading: bool) -> requests.Response:
        response = self._send("GET", path, params=params, what=f"{self._label()}: {path}", reading=reading)
        self._raise_for(response, f"{self._label()}: {path}", reading=reading)
        return response

    def _send(self, method: str, path: str, *, what: str, json: Any = None, params: Mapping[str, Any] | None = None,
              headers: Mapping[str, str] | None = None, reading: bool = False) -> requests.Response:
        if self.client is None:
            raise ConnectionFailed(f"{self._label()}: not open")
        wire = {"Accept": p.MEDIA_TYPE}
        if json is not None:
            wire["Content-Type"] = p.MEDIA_TYPE
        wire.update(headers or {})
        return self.client.request(method, path, json=json, params=params, headers=wire, reading=reading)

    def _raise_for(self, response: requests.Response, what: str, reading: bool = False) -> None:
        """Nothing for a 2xx answer (RFC 7644 §3.12); else the interface error (see :meth:`_error`)."""
        status = response.status_code
        if 200 <= status < 300:
            return
        raise self._error(status, _json(response), response.text, what, reading=reading,
                          retry_after=retry_after_seconds(response.headers.get("Retry-After")))

    def _error(self, status: int, body: Mapping[str, Any], text: str, what: str, *, reading: bool = False,
               retry_after: float | None = None) -> Exception:
        """The interface error for a SCIM failure, in this one place (a whole answer or one /Bulk operation)."""
        fail = p.failure(status, body, text)
        kind = fail.kind
        if status == 409 and fail.scim_type is None and not self.profile.conflict_without_scim_type:
            return ObjectError(f"{what}: HTTP 409 without scimType: {fail.detail or 'conflict'} (if this service "
                               "means 'already exists' by it, set profile: untyped-conflicts)")
        if status == 409 and kind != "exists" and fail.scim_type is not None:
            return ObjectError(f"{what}: HTTP 409 ({fail.scim_type}): {fail.detail}")
        error = error_for(status, what, fail.detail, retry_after=retry_after, kind=kind)
        if reading and not isinstance(error, ConnectionFailed) and status not in (404,):
            return ConnectionFailed(self.context.redact(f"{error}"))
        if isinstance(error, ConnectionFailed):  # a SystemUnavailable (HTTP 401) stays one
            return type(error)(self.context.redact(str(error)))
        return error

    # ---- /Bulk (RFC 7644 §3.7) ------------------------------------------------------------------

    def apply(self, operations: Sequence[Operation]) -> Iterable[Result]:
        """First sends go through /Bulk when ``bulk: true`` and the server supports it; the rest
        (and re-sends, which look themselves up first) one request each."""
        if not (self.config.get("bulk") and self.features.bulk):
            yield from super().apply(operations)
            return
        adds = [op for op in operations if op.kind == "add" and op.attempt == 1]
        chosen = {op.id for op in adds}
        yield from self._bulk_adds(adds)
        yield from super().apply([op for op in operations if op.id not in chosen])

    def _bulk_adds(self, ops: Sequence[Operation]) -> Iterator[Result]:
        """Adds in /Bulk requests within maxOperations and maxPayloadSize, each operation named by a
        bulkId so its outcome is found in the answer whatever order the server reports in."""
        entries, by_bulk_id = [], {}
        for op in ops:
            try:
                info = self._info(op.object)
                body = self._body(info, op.attributes, op.attributes.get("externalId") or op.source_anchor,
                                  op.password, self._what(op))
            except ObjectError as exc:
                yield Result.failed(op, exc)
                continue
            bulk_id = f"op{op.id}"
            by_bulk_id[bulk_id] = op
            entries.append(p.bulk_post(info.endpoint, bulk_id, body))
        pending = p.bulk_groups(entries, self.features.bulk_max_operations, self._payload)
        while pending:
            group = pending.pop(0)
            members = [by_bulk_id[e["bulkId"]] for e in group]
            try:
                response = self._send("POST", "/Bulk", json=p.bulk_body(group), what=f"{self._label()}: /Bulk")
            except RequestLost as exc:  # which of them landed? each looks itself up
                for op in members:
                    yield self._settle_lost(op, exc)
                continue
            if response.status_code == 413 and len(group) > 1:
                pending[:0] = [group[:len(group) // 2], group[len(group) // 2:]]
                continue
            if not 200 <= response.status_code < 300:
                error = self._error(response.status_code, _json(response), response.text, f"{self._label()}: /Bulk",
                                    retry_after=retry_after_seconds(response.headers.get("Retry-After")))
                if isinstance(error, ConnectionFailed):
                    raise error
                for op in members:
                    yield Result.failed(op, error)  # type: ignore[arg-type]
                continue
            outcomes = p.bulk_outcomes(_json(response))
            for entry, op in zip(group, members, strict=True):
                outcome = outcomes.get(entry["bulkId"], p.BulkOutcome(0))
                if 200 <= outcome.status < 300 and outcome.anchor:
                    yield Result(op.id, True, outcome.anchor, version=outcome.version)
                elif outcome.status:
                    error = self._error(outcome.status, dict(outcome.error or {}), "", self._what(op))
                    yield Result.failed(op, error if not isinstance(error, ConnectionFailed) else ObjectError(str(error)))
                else:
                    yield Result.failed(op, RetryableError(f"{self._what(op)}: the /Bulk answer did not mention "
                                                           "this operation"))

    def _settle_lost(self, op: Operation, exc: Exception) -> Result:
        external_id = op.attributes.get("externalId") or op.source_anchor
        if external_id and self.lookup(op.object, {"externalId": external_id}):
            return Result.failed(op, AlreadyExists(f"{self._what(op)}: the add reached the server before the "
                                                   "connection broke"))
        return Result.failed(op, RetryableError(str(exc)))

    # ---- small helpers --------------------------------------------------------------------------

    def _info(self, object: str, fail: type[Exception] = ObjectError) -> p.ResourceInfo:
        info = self.types.get(object.lower())
        if info is None:
            if not self.types:
                raise ConnectionFailed(f"{self._label()}: not open")
            known = sorted({i.object_name for i in self.types.values()})
            raise fail(f"{self._label()}: the server serves no resource type {object!r}; it serves {', '.join(known)}")
        return info

    def _label(self) -> str:
        return f"scim connector {self.context.name!r}"

    def _what(self, op: Operation) -> str:
        who = op.anchor or op.source_anchor or "new object"
        return f"{self._label()}: {op.kind} {op.object} {who}"

    def _lock_for(self, key: str) -> threading.Lock:
        with self._locks_lock:
            return self._locks.setdefault(key, threading.Lock())


# ---- module helpers -------------------------------------------------------------------------------


def _json(response: requests.Response) -> dict[str, Any]:
    """The body as a dict; ``{}`` for 204 and for bodies that are not JSON objects."""
    if response.status_code == 204 or not response.content:
        return {}
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _id_from_location(location: str | None) -> str | None:
    return location.rstrip("/").rsplit("/", 1)[-1] if location else None


def _server_time(response: requests.Response) -> Any:
    try:
        return parsedate_to_datetime(response.headers["Date"])
    except (KeyError, TypeError, ValueError):
        return None


def _splittable(op: Mapping[str, Any]) -> bool:
    return isinstance(op.get("value"), list) and len(op["value"]) > 1


def _halve(group: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """A PATCH the server found too large, as two (an add of many values cut in the middle)."""
    if len(group) > 1:
        mid = len(group) // 2
        return [group[:mid], group[mid:]]
    op = group[0]
    mid = len(op["value"]) // 2
    return [[{**op, "value": op["value"][:mid]}], [{**op, "value": op["value"][mid:]}]]


def _matches(info: p.ResourceInfo, resource: Mapping[str, Any], path_text: str) -> bool:
    """Whether some element of the resource matches the value filter of ``path_text``."""
    path = p.parse_path(path_text)
    block = resource.get(path.urn, {}) if path.urn else resource
    items = block.get(path.attr) if isinstance(block, Mapping) else None
    pinned = p.filter_equalities(path.filter or "")
    return any(isinstance(i, Mapping) and all(i.get(k) == v for k, v in pinned.items()) for i in items or [])


def _as_add(op: Mapping[str, Any]) -> dict[str, Any]:
    """``replace emails[type eq "work"].value = v`` as ``add emails = [{type: work, value: v}]``."""
    path = p.parse_path(op["path"])
    item = dict(p.filter_equalities(path.filter or ""))
    item[path.sub or "value"] = op["value"]
    return {"op": "add", "path": p.Path(None, path.attr).text(path.urn), "value": [item]}


def _with_version(op: Operation, version: str | None) -> Operation:
    return dataclasses.replace(op, version=version)


def attributes_of(record: Record, names: Iterable[str]) -> dict[str, Any]:
    return {n: record.attributes.get(n) for n in names}


def _attribute_infos(name: str, attr: p.Attr) -> list[AttributeInfo]:
    """The names a manifest can map for one schema attribute (sub-attributes, typed elements)."""
    def info(n: str, a: p.Attr, multi: bool = False) -> AttributeInfo:
        return AttributeInfo(n, type="reference" if a.is_reference else a.type, multi_valued=multi,
                             required=a.required, syntax=a.type, read_only=a.mutability in ("readOnly", "immutable")
                             and a.mutability == "readOnly",
                             normalizations=() if a.case_exact or a.type != "string" else ("case_insensitive",),
                             description=(a.description or "")[:200] or None)
    if attr.type != "complex":
        return [info(name, attr, attr.multi)]
    if attr.is_reference and not attr.multi:
        return [info(name, attr)]
    if attr.multi:
        out = [info(name, attr, True)] if "value" in attr.subs else []
        kind = attr.subs.get("type")
        for canonical in (kind.canonical if kind else ()):
            for sub in attr.subs.values():
                if sub.name != "type":
                    out.append(info(f'{name}[type eq "{canonical}"].{sub.name}', sub))
        return out
    return [info(f"{name}.{sub.name}", sub) for sub in attr.subs.values()]


__all__ = ["ScimConnector", "Throttled", "PayloadTooLarge"]
