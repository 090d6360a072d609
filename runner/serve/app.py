"""The SCIM 2.0 service provider that Microsoft Entra provisions into: a starlette app over a store.

``create_app(store, token=...)`` (or ``authenticator=``, ``auth.py``) answers, under ``base_path``
(``/scim``; Entra's Tenant URL is ``https://host/scim``):

* ``/Users`` and ``/Groups`` (and the endpoint of each further resource type in ``kinds``,
  ``schema.kinds_for``): POST (201 + ``Location``), GET by id, GET with ``filter``,
  ``startIndex``, ``count`` (a ListResponse, RFC 7644 §3.4.2), POST ``/.search`` (§3.4.3, also at
  the root across both types), PUT (§3.5.1), PATCH (§3.5.2), DELETE (204);
* ``/Schemas``, ``/ResourceTypes``, ``/ServiceProviderConfig`` (discovery, §4; other methods 405);
* ``/health`` (here and at the root), without authentication: ``{"status": "ok"}``, or what the
  store's ``health()`` says when it has one (503 when its ``status`` is ``"down"``);
* ``/metrics`` (here and at the root): Prometheus metrics (``metrics.py``), without authentication
  unless ``metrics_public=False``; never rate-limited, a scrape does not spend Entra's budget.

Around every request: its metrics, then the bearer credential (``Authorization: Bearer ...``, a
static token compared in constant time or a JWT, ``auth.py``; otherwise 401 with a SCIM error
saying why and ``WWW-Authenticate``, RFC 6750 §3), then the rate limit (429 with ``Retry-After``).
Every resource carries ``meta`` (``resourceType``, ``created``, ``lastModified``, ``location``,
``version``) and an ``ETag`` header; ``If-Match`` makes PUT, PATCH and DELETE conditional (412 when
stale), ``If-None-Match`` makes GET answer 304 (§3.14). Every answer is ``application/scim+json``;
every error is an RFC 7644 §3.12 error body (``errors.py``), 404 and 405 from routing included.

PATCH answers 200 with the user for ``/Users`` (what Microsoft's examples show) and 204 for
``/Groups`` (Microsoft: "Update to the group PATCH request should yield an HTTP 204 No Content in
the response. Returning a body with a list of all the members isn't advisable"), unless the request
asks for ``attributes``/``excludedAttributes``, when §3.5.2 requires 200 with the resource.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from runner.connectors.scim.protocol import MEDIA_TYPE, format_time

from .auth import Authenticator, Either, KeysUnavailable, Refused, StaticTokens, bearer_credential
from .conform import conform_resource
from .errors import Invalid, NotFound, ScimError, error_body, lookup
from .filters import Filter, parse_filter
from .metrics import Metrics, MetricsMiddleware, metrics_endpoint
from .patch import parse_patch
from .projection import project
from .ratelimit import RateLimit, TokenBucket
from .schema import (
    KINDS,
    LIST_RESPONSE,
    Kind,
    resource_type_documents,
    schema_documents,
    service_provider_config,
)
from .store import Page, Record, ResourceStore, etag_matches

log = logging.getLogger("runner.serve")

#: the most resources one page of a query holds (``count`` above it is cut to it), and the default
MAX_RESULTS = 1000
DEFAULT_COUNT = 100
#: the ``Retry-After`` of a 503 when the issuer's signing keys cannot be fetched
KEYS_RETRY_AFTER = 30

Handler = Callable[[Request], Awaitable[Response]]


def scim_response(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    """A response in ``application/scim+json`` (RFC 7644 §3.1; Microsoft: "The header for all the
    responses should be of content-Type: application/scim+json")."""
    content = b"" if body is None else json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    return Response(content, status, dict(headers or {}), media_type=MEDIA_TYPE)


def error_response(status: int, detail: str | None, scim_type: str | None = None,
                   headers: Mapping[str, str] | None = None) -> Response:
    return scim_response(error_body(status, detail, scim_type), status, headers)


def create_app(store: ResourceStore, *, token: str | Sequence[str] | None = None,
               authenticator: Authenticator | None = None, base_path: str = "/scim",
               rate_limit: RateLimit | None = None, metrics_public: bool = True,
               kinds: Mapping[str, Kind] | None = None) -> Starlette:
    """The SCIM endpoint over ``store``.

    Args:
        token: the bearer token Entra sends (its "Secret Token"; several for a rotation).
        authenticator: who else may call (``auth.from_settings``: OAuth JWTs); with ``token``
            too, either is accepted. One of the two is required: the endpoint never runs open.
        rate_limit: an optional request-rate limit.
        metrics_public: whether ``/metrics`` answers without a credential (a scraper has none).
        kinds: the resource types served, by name (``schema.kinds_for`` a manifest's ``serve``
            block); default User and Group. Each gets its routes and is listed by discovery.
    """
    tokens = [token] if isinstance(token, str) else list(token or [])
    if any(not t for t in tokens) or (not tokens and authenticator is None):
        raise ValueError("the SCIM endpoint needs a bearer token: it never runs without authentication")
    if tokens:
        authenticator = Either(StaticTokens(tokens), authenticator)
    assert authenticator is not None
    base_path = "/" + base_path.strip("/") if base_path.strip("/") else ""
    served = dict(KINDS if kinds is None else kinds)
    api = _Api(store, base_path, served)
    metrics = Metrics(store, base_path, served)
    health, scrape = _health(store), metrics_endpoint(metrics)
    routes = [Route("/health", health, methods=["GET"]), Route(f"{base_path}/health", health, methods=["GET"]),
              Route("/metrics", scrape, methods=["GET"]), Route(f"{base_path}/metrics", scrape, methods=["GET"])]
    for kind in served.values():
        collection = f"{base_path}{kind.endpoint}"
        routes += [
            Route(collection, api.for_kind(api.list, kind), methods=["GET"]),
            Route(collection, api.for_kind(api.create, kind), methods=["POST"]),
            Route(f"{collection}/.search", api.for_kind(api.search, kind), methods=["POST"]),
            Route(f"{collection}/{{id}}", api.for_kind(api.get, kind), methods=["GET"]),
            Route(f"{collection}/{{id}}", api.for_kind(api.replace, kind), methods=["PUT"]),
            Route(f"{collection}/{{id}}", api.for_kind(api.patch, kind), methods=["PATCH"]),
            Route(f"{collection}/{{id}}", api.for_kind(api.delete, kind), methods=["DELETE"]),
        ]
    routes += [
        Route(f"{base_path}/.search", _answering(api.search_all), methods=["POST"]),
        Route(f"{base_path}/ServiceProviderConfig", _answering(api.service_provider_config), methods=["GET"]),
        Route(f"{base_path}/Schemas", _answering(api.schemas), methods=["GET"]),
        Route(f"{base_path}/Schemas/{{id}}", _answering(api.schema), methods=["GET"]),
        Route(f"{base_path}/ResourceTypes", _answering(api.resource_types), methods=["GET"]),
        Route(f"{base_path}/ResourceTypes/{{id}}", _answering(api.resource_type), methods=["GET"]),
        Route(f"{base_path}/Bulk", _not_implemented("bulk operations (RFC 7644 §3.7)"), methods=["POST"]),
        Route(f"{base_path}/Me", _not_implemented("/Me (RFC 7644 §3.11)"),
              methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
    ]
    metrics_paths = {"/metrics", f"{base_path}/metrics"}
    guard = Middleware(_Guard, authenticator=authenticator,
                       open_paths={"/health", f"{base_path}/health"} | (metrics_paths if metrics_public else set()),
                       unlimited_paths=metrics_paths, bucket=TokenBucket(rate_limit) if rate_limit else None,
                       metrics=metrics)
    return Starlette(routes=routes, middleware=[Middleware(MetricsMiddleware, metrics=metrics), guard],
                     exception_handlers={HTTPException: _http_error})


# ---- around every request: authentication, rate limit ----------------------------------------------------


def _challenge(refused: Refused) -> str:
    """RFC 6750 §3: no ``error`` when the request had no credential; else ``invalid_token`` with
    the reason as ``error_description`` (its characters limited to what §3 allows)."""
    if refused.reason == "missing":
        return 'Bearer realm="SCIM"'
    description = "".join(c if " " <= c <= "~" and c not in '"\\' else "?" for c in refused.detail)
    return f'Bearer realm="SCIM", error="invalid_token", error_description="{description}"'


class _Guard:
    """ASGI middleware: the bearer credential, then the rate limit; ``open_paths`` pass untouched,
    ``unlimited_paths`` skip the rate limit."""

    def __init__(self, app: ASGIApp, authenticator: Authenticator, open_paths: set[str],
                 unlimited_paths: set[str], bucket: TokenBucket | None, metrics: Metrics) -> None:
        self.app = app
        self.authenticator = authenticator
        self.open_paths = open_paths
        self.unlimited_paths = unlimited_paths
        self.bucket = bucket
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.open_paths:
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        try:
            credential = bearer_credential(headers.get("authorization"))
            # a JWKS may have to be fetched: off the event loop
            await run_in_threadpool(self.authenticator.check, credential)
        except Refused as refused:
            self.metrics.unauthorized.labels(refused.reason).inc()
            client = (scope.get("client") or ("?",))[0]
            log.info("401 for %s %s from %s: %s", scope["method"], scope["path"], client, refused.reason)
            await error_response(401, refused.detail,
                                 headers={"WWW-Authenticate": _challenge(refused)})(scope, receive, send)
            return
        except KeysUnavailable as e:
            await error_response(503, str(e), headers={"Retry-After": str(KEYS_RETRY_AFTER)})(scope, receive, send)
            return
        wait = self.bucket.take() if self.bucket and scope["path"] not in self.unlimited_paths else None
        if wait is not None:
            self.metrics.rate_limited.inc()
            seconds = max(1, int(wait + 0.999))
            await error_response(429, f"too many requests; try again in {seconds} s",
                                 headers={"Retry-After": str(seconds)})(scope, receive, send)
            return
        await self.app(scope, receive, send)


# ---- errors ---------------------------------------------------------------------------------------------


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    detail = {404: f"no such endpoint: {request.url.path}",
              405: f"{request.method} is not supported on {request.url.path}"}.get(exc.status_code, exc.detail)
    return error_response(exc.status_code, detail, headers=exc.headers)


def _answering(handler: Handler) -> Handler:
    """``handler`` with every exception turned into a SCIM error answer here, an unexpected one
    into 500 (logged with its traceback), so the client always gets a SCIM error body and the
    connection stays usable."""
    async def answering(request: Request) -> Response:
        try:
            return await handler(request)
        except ScimError as e:
            return scim_response(e.body(), e.status, e.headers)
        except Exception:
            log.exception("SCIM %s %s failed", request.method, request.url.path)
            return error_response(500, "the endpoint failed on this request; its log has the details")
    return answering


def _not_implemented(what: str) -> Handler:
    async def handler(request: Request) -> Response:
        return error_response(501, f"this endpoint does not support {what}")
    return handler


def _health(store: object) -> Handler:
    """``/health``: ``{"status": "ok"}``, or the store's ``health()`` dict when it has that method
    (``"status"`` ``"ok"`` unless it says ``"degraded"`` or ``"down"``; ``"down"`` answers 503, so a
    load balancer stops sending). A ``health()`` that fails is ``down``."""
    check = getattr(store, "health", None)

    async def health(request: Request) -> Response:
        if not callable(check):
            return Response(b'{"status":"ok"}', media_type="application/json")
        try:
            body = dict(await run_in_threadpool(check))
        except Exception:
            log.exception("the store's health check failed")
            body = {"status": "down", "detail": "the store's health check failed; the log has the details"}
        body.setdefault("status", "ok")
        content = json.dumps(body, ensure_ascii=False, separators=(",", ":"), default=str).encode()
        return Response(content, 503 if body["status"] == "down" else 200, media_type="application/json")
    return health


# ---- the API --------------------------------------------------------------------------------------------


async def _body(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw)
    except ValueError:
        raise Invalid("the body is not JSON", scim_type="invalidSyntax") from None


def _integer(value: Any, name: str, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise Invalid(f"{name} is an integer, not {value!r}") from None


def _paging(start: Any, count: Any) -> tuple[int, int]:
    """RFC 7644 §3.4.2.4: a startIndex below 1 counts as 1, a negative count as 0; a count above
    :data:`MAX_RESULTS` (published as ``filter.maxResults``) is cut to it."""
    return max(1, _integer(start, "startIndex", 1)), min(MAX_RESULTS, max(0, _integer(count, "count", DEFAULT_COUNT)))


def _names(value: Any) -> str | None:
    """``attributes`` of a SearchRequest (a list) or a query string (comma-separated)."""
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return None if value is None else str(value)


def _list_response(resources: list[dict[str, Any]], total: int, start: int) -> dict[str, Any]:
    return {"schemas": [LIST_RESPONSE], "totalResults": total, "itemsPerPage": len(resources),
            "startIndex": start, "Resources": resources}


class _Api:
    """The handlers, over one store; ``base_path`` is where the SCIM endpoints start."""

    def __init__(self, store: ResourceStore, base_path: str, kinds: Mapping[str, Kind]) -> None:
        self.store = store
        self.base_path = base_path
        self.kinds = kinds

    def base(self, request: Request) -> str:
        """The absolute URL of the endpoint root, for ``meta.location`` and ``Location``."""
        return str(request.base_url).rstrip("/") + self.base_path

    @staticmethod
    def for_kind(handler: Callable[[Kind, Request], Awaitable[Response]], kind: Kind) -> Handler:
        async def bound(request: Request) -> Response:
            return await handler(kind, request)
        return _answering(bound)

    def render(self, kind: Kind, record: Record, base: str) -> dict[str, Any]:
        """A stored record as a SCIM resource: ``schemas``, ``id``, its attributes, ``meta``."""
        body: dict[str, Any] = {"schemas": kind.schemas_of(record.attributes), "id": record.id}
        body.update(record.attributes)
        body["meta"] = {"resourceType": kind.name, "created": format_time(record.created),
                        "lastModified": format_time(record.last_modified),
                        "location": f"{base}{kind.endpoint}/{record.id}", "version": record.version}
        return body

    def resource_response(self, kind: Kind, record: Record, request: Request, status: int = 200) -> Response:
        base = self.base(request)
        params = request.query_params
        body = project(kind, self.render(kind, record, base), lookup(params, "attributes"),
                       lookup(params, "excludedAttributes"))
        headers = {"ETag": record.version}
        if status == 201:
            headers["Location"] = body["meta"]["location"]
        return scim_response(body, status, headers)

    # -- resources --

    async def create(self, kind: Kind, request: Request) -> Response:
        attributes = conform_resource(kind, await _body(request))
        record = await run_in_threadpool(self.store.create, kind.name, attributes)
        return self.resource_response(kind, record, request, 201)

    async def get(self, kind: Kind, request: Request) -> Response:
        record = await run_in_threadpool(self.store.get, kind.name, request.path_params["id"])
        if_none_match = request.headers.get("if-none-match")
        if if_none_match and etag_matches(if_none_match, record.version):
            return Response(status_code=304, headers={"ETag": record.version})
        return self.resource_response(kind, record, request)

    async def replace(self, kind: Kind, request: Request) -> Response:
        attributes = conform_resource(kind, await _body(request))
        record = await run_in_threadpool(self.store.replace, kind.name, request.path_params["id"], attributes,
                                         if_match=request.headers.get("if-match"))
        return self.resource_response(kind, record, request)

    async def patch(self, kind: Kind, request: Request) -> Response:
        operations = parse_patch(kind, await _body(request))
        record = await run_in_threadpool(self.store.patch, kind.name, request.path_params["id"], operations,
                                         if_match=request.headers.get("if-match"))
        params = request.query_params
        shaped = lookup(params, "attributes") is not None or lookup(params, "excludedAttributes") is not None
        if kind.name == "Group" and not shaped:
            return Response(status_code=204, headers={"ETag": record.version})
        return self.resource_response(kind, record, request)

    async def delete(self, kind: Kind, request: Request) -> Response:
        await run_in_threadpool(self.store.delete, kind.name, request.path_params["id"],
                                if_match=request.headers.get("if-match"))
        return Response(status_code=204)

    # -- queries --

    async def query(self, kinds: Sequence[Kind], request: Request, params: Mapping[str, Any]) -> Response:
        """A ListResponse for ``filter``/``startIndex``/``count`` over one resource type or, for
        the root ``/.search``, several one after the other."""
        start, count = _paging(lookup(params, "startIndex"), lookup(params, "count"))
        text = lookup(params, "filter")
        filters: list[tuple[Kind, Filter | None]] = []
        refused: Invalid | None = None
        for kind in kinds:
            try:
                filters.append((kind, parse_filter(kind, text)))
            except Invalid as e:  # at the root, a filter on userName leaves the groups out
                refused = e
        if not filters and refused is not None:
            raise refused
        base = self.base(request)
        attributes, excluded = _names(lookup(params, "attributes")), _names(lookup(params, "excludedAttributes"))
        skip, room, total = start - 1, count, 0
        resources: list[dict[str, Any]] = []
        for kind, parsed in filters:
            page: Page = await run_in_threadpool(self.store.query, kind.name, parsed, skip + 1, room)
            total += page.total
            resources += [project(kind, self.render(kind, r, base), attributes, excluded) for r in page.records]
            skip = max(0, skip - page.total)
            room -= len(page.records)
        return scim_response(_list_response(resources, total, start))

    async def list(self, kind: Kind, request: Request) -> Response:
        return await self.query([kind], request, request.query_params)

    async def search(self, kind: Kind, request: Request) -> Response:
        return await self.query([kind], request, await self.search_body(request))

    async def search_all(self, request: Request) -> Response:
        return await self.query(list(self.kinds.values()), request, await self.search_body(request))

    @staticmethod
    async def search_body(request: Request) -> Mapping[str, Any]:
        body = await _body(request)
        if not isinstance(body, Mapping):
            raise Invalid("a SearchRequest is a JSON object", scim_type="invalidSyntax")
        return body

    # -- discovery --

    async def service_provider_config(self, request: Request) -> Response:
        return scim_response(service_provider_config(self.base(request), MAX_RESULTS))

    async def schemas(self, request: Request) -> Response:
        docs = schema_documents(self.base(request), self.kinds.values())
        return scim_response(_list_response(docs, len(docs), 1))

    async def schema(self, request: Request) -> Response:
        wanted = request.path_params["id"]
        for doc in schema_documents(self.base(request), self.kinds.values()):
            if doc["id"].lower() == wanted.lower():
                return scim_response(doc)
        raise NotFound(f"no schema {wanted}")

    async def resource_types(self, request: Request) -> Response:
        docs = resource_type_documents(self.base(request), self.kinds.values())
        return scim_response(_list_response(docs, len(docs), 1))

    async def resource_type(self, request: Request) -> Response:
        wanted = request.path_params["id"]
        for doc in resource_type_documents(self.base(request), self.kinds.values()):
            if doc["id"].lower() == wanted.lower():
                return scim_response(doc)
        raise NotFound(f"no resource type {wanted}")
