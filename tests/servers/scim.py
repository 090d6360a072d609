"""SCIM servers for tests and benchmarks: the real ``scim2-server``, and a fault proxy in front of it.

``ScimServer.start()`` runs ``scim2-server`` (PyPI, in this venv; :func:`runner.demo.scim.start`, as
``provision demo scim`` does) on 127.0.0.1 with a free port,
a bearer token and ``--dynamic-tenants``, so each test takes a tenant of its own
(``server.tenant()`` -> a fresh base URL, empty) instead of a server of its own; ``stop()`` ends
it by its PID.

``FaultProxy`` is a small real HTTP server (threads, HTTP/1.1 keep-alive) that forwards to a real
SCIM server and injects what the real one cannot produce: 429 storms (with or without
Retry-After), 5xx, 413 for PATCH bodies above a size, slow answers, connections dropped before
or after the request is applied, and the deviations of the compatibility profiles (PATCH paths
with value filters refused, booleans stored as strings, 409 without scimType, no filter on
externalId). It also serves a tiny OAuth 2.0 token endpoint (``/token``, client credentials),
records every request it saw (method, path, headers), and can refuse Bearer tokens it did not
issue. Faults are set per test through :class:`Faults`.

The proxy also stands in front of the rest connector's servers (``jsonserver.py``, ``restapp.py``):
``FaultProxy(json_server.url, token=jsonserver.TOKEN)`` checks and forwards that token instead. For
them it forwards the query string, ``Idempotency-Key`` and ``X-API-Key`` upstream and ``Link``,
``X-Total-Count``, ``Allow``, ``WWW-Authenticate`` and ``Idempotent-Replayed`` back (``Link`` URLs
rewritten to point at the proxy), and adds faults a gateway produces: 502 with an HTML page
(``html_errors``), connections dropped before or after any request is applied
(``drop_before_forward``, ``drop_before_answer``), and ``passthrough_auth`` to let the upstream
judge the client's own credentials (API keys, Basic, its own OAuth tokens).

It stands in front of the soap connector's service (``soapservice.py``) too, with
``faults.passthrough_auth = True`` (the service judges the client's Basic auth itself) and
``FaultProxy(service.url, rewrite_body_urls=True)``: the ``SOAPAction`` header goes upstream, the
answer's ``Content-Type`` comes back, and the upstream's URL in GET answers (the WSDL's
``soap:address``) is rewritten to the proxy's, so a zeep client made from ``proxy.url + "/?wsdl"``
sends its calls through the proxy. ``soap_fault_500`` answers POSTs with a SOAP 1.1 Server fault.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests

from runner.demo import scim
from runner.demo.process import free_port

from .process import stop

TOKEN = "scim-test-token-8d1f0c"  # a throwaway server's; never a real secret


@dataclass
class ScimServer:
    """A running scim2-server process."""

    port: int
    process: subprocess.Popen[bytes]
    token: str = TOKEN
    log: Path | None = None

    @classmethod
    def start(cls, folder: Path, token: str = TOKEN) -> ScimServer:
        port = free_port()
        process = scim.start(folder, port, token, dynamic_tenants=True)
        return cls(port, process, token, folder / "scim2-server.log")

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def tenant(self, name: str | None = None) -> str:
        """The base URL of a tenant nobody has used: an empty server of its own."""
        return f"{self.root}/{name or 't' + secrets.token_hex(6)}"

    def stop(self) -> None:
        stop(self.process)


# ---- the fault proxy ---------------------------------------------------------------------------------


@dataclass
class Faults:
    """What the proxy does to the requests it forwards (all off by default). Thread-safe enough for tests."""

    #: answer 429 to this many write requests (not GETs), then pass them through
    throttle_writes: int = 0
    throttle_status: int = 429
    retry_after: str | None = "0"
    #: answer 500 to this many requests of any kind (idempotent ones are retried by the client)
    errors_5xx: int = 0
    #: a PATCH body larger than this (bytes) is refused with 413 (0: never)
    max_patch_bytes: int = 0
    #: seconds to wait before answering each request
    delay: float = 0.0
    #: (text, seconds): a POST whose body holds the text waits that long before it is forwarded (one slow create)
    slow_post: tuple[bytes, float] | None = None
    #: close the connection without an answer for the next N POSTs, after forwarding them (applied, answer lost)
    drop_after_post: int = 0
    #: the same for the next N requests of any method (applied upstream, answer lost)
    drop_before_answer: int = 0
    #: close the connection without an answer for the next N requests, without forwarding them (not applied)
    drop_before_forward: int = 0
    #: answer the next N requests of any kind 502 with an HTML page, as a gateway in front would (not applied)
    html_errors: int = 0
    #: the status those HTML pages come with (a gateway's 502, or an application server's 500)
    html_status: int = 502
    #: answer the next N POSTs 500 with a SOAP 1.1 fault envelope (faultcode soap:Server, faultstring
    #: 'internal error'), as a failing SOAP service would (not forwarded, so not applied)
    soap_fault_500: int = 0
    #: the service announces no PATCH (ServiceProviderConfig patch.supported false) and refuses it with 501
    patch_unsupported: bool = False
    #: a PATCH is answered 200 with the resource (RFC 7644 §3.5.2 allows either) instead of 204
    patch_returns_body: bool = False
    #: profile deviations
    refuse_value_filter_paths: bool = False
    booleans_as_strings: bool = False
    conflict_without_scim_type: bool = False
    refuse_external_id_filter: bool = False
    #: OAuth: Bearer tokens must be ones /token issued (the upstream token is then added by the proxy)
    oauth: bool = False
    client_id: str = "provision-client"
    client_secret: str = "oauth-client-secret-71c2"
    token_lifetime: int = 3600
    #: Basic auth instead (username, password), translated to the upstream token
    basic: tuple[str, str] | None = None
    #: no auth check nor /token here: the client's Authorization goes upstream as sent (a REST upstream
    #: judges its own API keys, Basic passwords and OAuth tokens)
    passthrough_auth: bool = False
    seen: list[tuple[str, str, dict[str, str], int]] = field(default_factory=list)
    issued: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def take(self, name: str) -> bool:
        """Use up one of counter ``name``; True if there was one."""
        with self.lock:
            left = getattr(self, name)
            if left > 0:
                setattr(self, name, left - 1)
                return True
            return False

    def record(self, method: str, path: str, headers: dict[str, str], status: int) -> None:
        with self.lock:
            self.seen.append((method, path, headers, status))

    def requests(self, method: str | None = None) -> list[tuple[str, str, dict[str, str], int]]:
        with self.lock:
            return [s for s in self.seen if method is None or s[0] == method]


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up waiting (a timeout test) is not an error of the proxy; anything else is."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class FaultProxy:
    """A threaded HTTP/1.1 server forwarding ``/<path>`` to ``upstream/<path>`` with :class:`Faults`."""

    def __init__(self, upstream: str, token: str = TOKEN, rewrite_location: bool = False,
                 rewrite_body_urls: bool = False):
        """``token``: the Bearer token clients must send, also sent upstream. ``rewrite_location``: a
        ``Location`` naming the upstream is rewritten to name the proxy (``Link`` always is).
        ``rewrite_body_urls``: the upstream's URL in the body of a GET answer (a WSDL's ``soap:address``)
        is rewritten to the proxy's."""
        self.upstream, self.token, self.rewrite_location = upstream.rstrip("/"), token, rewrite_location
        self.rewrite_body_urls = rewrite_body_urls
        self.faults = Faults()
        self.session = requests.Session()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go in two writes: no 40 ms delayed-ACK stall

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                proxy.handle(self)

            do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

        self.httpd = _Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def reset(self) -> Faults:
        self.faults = Faults()
        return self.faults

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # ---- one request ----------------------------------------------------------------------------

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        # The faults of the test that sent the request: a slow request of an earlier test, answered
        # after the next test reset the proxy, is logged where that earlier test looks, not here.
        f = h.faults = self.faults  # type: ignore[attr-defined]
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        method, path = h.command, h.path
        headers = {k: v for k, v in h.headers.items()}
        if f.delay:
            time.sleep(f.delay)
        if method == "POST" and f.slow_post is not None and f.slow_post[0] in body:
            time.sleep(f.slow_post[1])
        if f.take("html_errors"):
            return self._raw(h, f.html_status, _BAD_GATEWAY, method, path, headers, {"Content-Type": "text/html"})
        if f.take("drop_before_forward"):
            return self._drop(h, method, path, headers)
        if path.endswith("/token") and method == "POST" and not f.passthrough_auth:
            return self._token(h, body)
        if not f.passthrough_auth and not self._authorised(f, headers):
            return self._answer(h, 401, {"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
                                         "status": "401", "detail": "unauthorised"}, method, path, headers)
        if method != "GET" and f.take("throttle_writes"):
            extra = {"Retry-After": f.retry_after} if f.retry_after is not None else {}
            return self._answer(h, f.throttle_status, {"detail": "slow down"}, method, path, headers, extra)
        if f.take("errors_5xx"):
            return self._answer(h, 500, {"detail": "internal error"}, method, path, headers)
        if method == "POST" and f.take("soap_fault_500"):
            return self._raw(h, 500, _SOAP_SERVER_FAULT, method, path, headers,
                             {"Content-Type": "text/xml; charset=utf-8"})
        if method == "PATCH" and f.max_patch_bytes and len(body) > f.max_patch_bytes:
            return self._answer(h, 413, {"detail": "payload too large"}, method, path, headers)
        if method == "PATCH" and f.refuse_value_filter_paths and b"[" in body:
            doc = json.loads(body)
            if any("[" in str(o.get("path", "")) for o in doc.get("Operations", [])):
                return self._answer(h, 400, {"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
                                             "status": "400", "scimType": "invalidPath",
                                             "detail": "filters in PATCH paths are not supported"},
                                    method, path, headers)
        if method == "PATCH" and f.patch_unsupported:
            return self._answer(h, 501, {"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": "501",
                                         "detail": "PATCH is not supported"}, method, path, headers)
        if f.refuse_external_id_filter and "externalId" in urllib.parse.unquote(path) and "filter=" in path:
            return self._answer(h, 400, {"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": "400",
                                         "scimType": "invalidFilter", "detail": "cannot filter on externalId"},
                                method, path, headers)
        if f.booleans_as_strings and body:
            body = _booleans_to_strings_in(body, to_wire=False)
        forwarded = ("content-type", "if-match", "accept", "idempotency-key", "x-api-key", "soapaction")
        upstream_headers = {k: v for k, v in headers.items() if k.lower() in forwarded}
        if not f.passthrough_auth:
            upstream_headers["Authorization"] = f"Bearer {self.token}"
        elif "Authorization" in headers:
            upstream_headers["Authorization"] = headers["Authorization"]
        answer = self.session.request(method, self.upstream + path, data=body or None, headers=upstream_headers,
                                      timeout=30)
        if (method == "POST" and f.take("drop_after_post")) or f.take("drop_before_answer"):
            return self._drop(h, method, path, headers)
        content = answer.content
        status = answer.status_code
        if method == "PATCH" and f.patch_returns_body and status == 204:
            again = self.session.get(self.upstream + path.split("?")[0], headers=upstream_headers, timeout=30)
            content, status = again.content, 200
        if f.patch_unsupported and path.endswith("/ServiceProviderConfig"):
            doc = json.loads(content)
            doc["patch"] = {"supported": False}
            content = json.dumps(doc).encode()
        if self.rewrite_body_urls and method == "GET" and content:
            # the upstream's URL, not a longer port that starts with the same digits
            content = re.sub(re.escape(self.upstream.encode()) + rb"(?![0-9])", self.url.encode(), content)
        if f.booleans_as_strings and content and ("/Users" in path or "/Groups" in path):
            content = _booleans_to_strings_in(content, to_wire=True)
        if answer.status_code == 409 and f.conflict_without_scim_type:
            doc = json.loads(content)
            doc.pop("scimType", None)
            content = json.dumps(doc).encode()
        extra = {k: v for k, v in answer.headers.items() if k in ("ETag", "Location", "Content-Type", "Date")}
        # answer.headers is case-insensitive: these go back spelt as here, whatever the upstream's case
        for name in ("Link", "X-Total-Count", "Allow", "WWW-Authenticate", "Idempotent-Replayed"):
            if name in answer.headers:
                extra[name] = answer.headers[name]
        if "Link" in extra:
            extra["Link"] = extra["Link"].replace(self.upstream + "/", self.url + "/")
        if self.rewrite_location and "Location" in extra:
            extra["Location"] = extra["Location"].replace(self.upstream + "/", self.url + "/")
        return self._raw(h, status, content, method, path, headers, extra)

    def _drop(self, h: BaseHTTPRequestHandler, method: str, path: str, headers: dict[str, str]) -> None:
        """Close the connection without an answer (recorded with status -1)."""
        h.faults.record(method, path, headers, -1)  # type: ignore[attr-defined]
        h.close_connection = True
        with contextlib.suppress(OSError):
            h.connection.shutdown(socket.SHUT_RDWR)

    def _authorised(self, f: Faults, headers: dict[str, str]) -> bool:
        given = headers.get("Authorization", "")
        if f.oauth:
            return given.startswith("Bearer ") and given[7:] in f.issued
        if f.basic:
            import base64
            return given == "Basic " + base64.b64encode(f"{f.basic[0]}:{f.basic[1]}".encode()).decode()
        return given == f"Bearer {self.token}"

    def _token(self, h: BaseHTTPRequestHandler, body: bytes) -> None:
        import base64
        f = h.faults  # type: ignore[attr-defined]
        form = urllib.parse.parse_qs(body.decode())
        auth = h.headers.get("Authorization", "")
        ok = auth == "Basic " + base64.b64encode(f"{f.client_id}:{f.client_secret}".encode()).decode() and \
            form.get("grant_type") == ["client_credentials"]
        if not ok:
            return self._answer(h, 401, {"error": "invalid_client"}, "POST", "/token", dict(h.headers))
        token = "issued-" + secrets.token_hex(8)
        with f.lock:
            f.issued.append(token)
        return self._answer(h, 200, {"access_token": token, "token_type": "Bearer", "expires_in": f.token_lifetime},
                            "POST", "/token", dict(h.headers))

    def _answer(self, h: BaseHTTPRequestHandler, status: int, doc: Any, method: str, path: str,
                headers: dict[str, str], extra: dict[str, str] | None = None) -> None:
        self._raw(h, status, json.dumps(doc).encode(), method, path, headers,
                  {"Content-Type": "application/scim+json", **(extra or {})})

    def _raw(self, h: BaseHTTPRequestHandler, status: int, content: bytes, method: str, path: str,
             headers: dict[str, str], extra: dict[str, str]) -> None:
        h.faults.record(method, path, headers, status)  # type: ignore[attr-defined]
        h.send_response(status)
        for k, v in extra.items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(content)))
        h.end_headers()
        if content:
            h.wfile.write(content)


_BOOL_STR = re.compile(rb'"(True|False)"')
_SOAP_SERVER_FAULT = (b'<?xml version="1.0" encoding="UTF-8"?>\n'
                      b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
                      b"<soap:Fault><faultcode>soap:Server</faultcode><faultstring>internal error</faultstring>"
                      b"</soap:Fault></soap:Body></soap:Envelope>")
_BAD_GATEWAY = b"<html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1></body></html>"


def _booleans_to_strings_in(content: bytes, *, to_wire: bool) -> bytes:
    """The string-booleans deviation: the service sends "True"/"False" and takes them (and real booleans)."""
    if to_wire:
        return content.replace(b": true", b': "True"').replace(b": false", b': "False"')
    return _BOOL_STR.sub(lambda m: b"true" if m.group(1) == b"True" else b"false", content)


@contextlib.contextmanager
def running(folder: Path) -> Iterator[ScimServer]:
    server = ScimServer.start(folder)
    try:
        yield server
    finally:
        server.stop()
