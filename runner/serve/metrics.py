"""The endpoint's Prometheus metrics: what ``GET /metrics`` answers.

Each app keeps its metrics in a ``CollectorRegistry`` of its own (never prometheus_client's global
one), so two apps in one process, as in the tests, count apart:

* ``provision_serve_requests_total{resource_type, method, status}``: every answered request;
* ``provision_serve_request_duration_seconds{resource_type, method}``: a latency histogram;
* ``provision_serve_requests_in_progress{resource_type, method}``;
* ``provision_serve_unauthorized_requests_total{reason}``: the 401s, by why (``auth.REASONS``);
* ``provision_serve_rate_limited_requests_total``: the 429s.

``resource_type`` is the resource type's name for its endpoint (``User``, ``Group``, a declared
``Device``), the discovery resource's name (``ServiceProviderConfig``, ``Schema``,
``ResourceType``), ``all`` for the root ``/.search``, ``Bulk``, ``Me``, ``health``, ``metrics``,
and ``other`` for any other path: labels come from a fixed set, never from what a client sends,
so no client can grow the series without bound.

A store with a ``metric_families()`` method (an iterable of ``prometheus_client.core.Metric``) adds
its own, collected at each scrape; one that fails is logged and left out of that scrape, counted in
``provision_serve_store_collect_failures_total``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import Metric
from prometheus_client.exposition import choose_encoder
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .auth import REASONS
from .schema import KINDS, Kind

log = logging.getLogger("runner.serve")

#: the latency buckets, in seconds: a write goes through to its target, which may take a while
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
_DISCOVERY = {"ServiceProviderConfig": "ServiceProviderConfig", "Schemas": "Schema",
              "ResourceTypes": "ResourceType", ".search": "all", "Bulk": "Bulk", "Me": "Me",
              "health": "health", "metrics": "metrics"}


class Metrics:
    """The metrics of one app over ``store``, whose SCIM endpoints start at ``base_path``."""

    def __init__(self, store: object, base_path: str, kinds: Mapping[str, Kind] = KINDS) -> None:
        self.base_path = base_path
        self.registry = CollectorRegistry()
        r = self.registry
        labels = ["resource_type", "method"]
        self.requests = Counter("provision_serve_requests", "SCIM requests answered, by resource type, "
                                "method and HTTP status code", [*labels, "status"], registry=r)
        self.duration = Histogram("provision_serve_request_duration_seconds", "The time from a request's "
                                  "arrival to its answer's end", labels, buckets=BUCKETS, registry=r)
        self.in_progress = Gauge("provision_serve_requests_in_progress", "Requests being answered now",
                                 labels, registry=r)
        self.unauthorized = Counter("provision_serve_unauthorized_requests", "Requests answered 401, by why "
                                    "the credential was refused", ["reason"], registry=r)
        self.rate_limited = Counter("provision_serve_rate_limited_requests", "Requests answered 429 by the "
                                    "rate limit", registry=r)
        self.store_failures = Counter("provision_serve_store_collect_failures", "Scrapes at which the store's "
                                      "own metrics failed and were left out", registry=None)
        for reason in REASONS:  # every series there from the start, so rate() sees the first 401
            self.unauthorized.labels(reason)
        self._endpoints = {kind.endpoint.strip("/"): kind.name for kind in kinds.values()} | _DISCOVERY
        if callable(getattr(store, "metric_families", None)):
            r.register(_StoreCollector(store, self.store_failures))
        r.register(self.store_failures)  # after the store's collector: a failure shows in the same scrape

    def resource_type(self, path: str) -> str:
        """The ``resource_type`` label of a request path."""
        if path in ("/health", "/metrics"):
            return path[1:]
        if self.base_path and not path.startswith(self.base_path + "/"):
            return "other"
        first = path[len(self.base_path):].strip("/").split("/", 1)[0]
        return self._endpoints.get(first, "other")

    def exposition(self, accept: str | None) -> tuple[bytes, str]:
        """The registry in the format ``accept`` asks for (Prometheus text unless OpenMetrics is
        asked for) and its content type."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type


class MetricsMiddleware:
    """ASGI middleware, outermost: counts and times every request, 401s and 429s included."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        m = self.metrics
        kind = m.resource_type(scope["path"])
        method = scope["method"] if scope["method"] in _METHODS else "other"
        status = 500  # unless an answer starts: the server's own error page

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        started = time.perf_counter()
        m.in_progress.labels(kind, method).inc()
        try:
            await self.app(scope, receive, sending)
        finally:
            m.in_progress.labels(kind, method).dec()
            m.duration.labels(kind, method).observe(time.perf_counter() - started)
            m.requests.labels(kind, method, str(status)).inc()


def metrics_endpoint(metrics: Metrics) -> Callable[[Request], Awaitable[Response]]:
    """The handler of ``GET /metrics``; collecting runs in a worker thread, as the store's own
    metrics may block on its database."""
    async def handler(request: Request) -> Response:
        body, content_type = await run_in_threadpool(metrics.exposition, request.headers.get("accept"))
        return Response(body, headers={"Content-Type": content_type})
    return handler


class _StoreCollector:
    """The store's ``metric_families()``, collected at each scrape."""

    def __init__(self, store: object, failures: Counter) -> None:
        self.store = store
        self.failures = failures

    def collect(self) -> Iterator[Metric]:
        try:
            families = list(self.store.metric_families())  # type: ignore[attr-defined]
        except Exception:
            log.exception("the store's metrics failed; this scrape leaves them out")
            self.failures.inc()
            return
        yield from families
