"""One HTTP layer for the connectors that speak HTTP (SCIM now; REST and SOAP next), on requests.

Why one module: every HTTP connector needs the same things done the same careful way, and each
is easy to get subtly wrong alone:

* a keep-alive :class:`requests.Session` per connector, its pool sized to the connector's
  concurrency;
* auth: a bearer token, HTTP basic, an API key in a header or the query, OAuth 2.0 client credentials (RFC 6749 §4.4: the token is
  fetched, cached until shortly before it expires, and fetched again on a 401), custom headers;
* TLS verification on by default, with a CA file option;
* connect and read timeouts on every request;
* retries: 429 and 503 honour ``Retry-After`` (RFC 9110 §10.2.3: seconds or an HTTP date),
  anything else transient backs off exponentially with full jitter; a POST is never re-sent
  after it may have reached the server (the caller decides: a SCIM add looks itself up);
* a client-side rate limit (``max_requests_per_second``) shared by every thread, and a budget
  (``budget:``) shared with every process that names it, through the hook in runner/budgets.py;
* :func:`error_for`, the one place an HTTP status becomes an interface error class;
* secrets never logged: the values are registered with :func:`protect`, and a filter on the
  ``requests`` and ``urllib3`` loggers masks them (their debug logging included); the
  ``http.client`` wire dump (which prints headers) is switched off for our connections.

Nothing here knows SCIM; the protocol modules build requests and read responses.
"""

from __future__ import annotations

import contextlib
import email.utils
import http.client
import logging
import os
import random
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import requests
from requests.adapters import HTTPAdapter

from runner import budgets
from runner.connectors.base import (
    AlreadyExists,
    ConfigurationError,
    ConnectionFailed,
    ConnectorError,
    NotFound,
    ObjectError,
    PermanentError,
    RetryableError,
    SystemUnavailable,
    Throttled,
    shared_budget,
)

T = TypeVar("T")
R = TypeVar("R")

#: The block keys every HTTP connector accepts, as JSON Schema properties (merge into config_schema).
AUTH_SCHEMA: dict[str, Any] = {
    "oneOf": [
        {"type": "object", "additionalProperties": False, "required": ["type"],
         "properties": {"type": {"const": "none"}}},
        {"type": "object", "additionalProperties": False, "required": ["type", "token"],
         "properties": {"type": {"const": "bearer"}, "token": {"type": "string", "minLength": 1}}},
        {"type": "object", "additionalProperties": False, "required": ["type", "username", "password"],
         "properties": {"type": {"const": "basic"}, "username": {"type": "string"}, "password": {"type": "string"}}},
        {"type": "object", "additionalProperties": False, "required": ["type", "value"],
         "oneOf": [{"required": ["header"]}, {"required": ["query"]}],
         "properties": {"type": {"const": "api_key"}, "value": {"type": "string", "minLength": 1},
                        "header": {"type": "string", "minLength": 1, "description": "e.g. X-API-Key"},
                        "query": {"type": "string", "minLength": 1, "description": "e.g. api_key"}}},
        {"type": "object", "additionalProperties": False,
         "required": ["type", "token_url", "client_id", "client_secret"],
         "properties": {"type": {"const": "oauth2"}, "token_url": {"type": "string", "minLength": 1},
                        "client_id": {"type": "string"}, "client_secret": {"type": "string"},
                        "scope": {"type": "string"}, "audience": {"type": "string"}}},
    ],
}

HTTP_PROPERTIES: dict[str, Any] = {
    "url": {"type": "string", "minLength": 1, "description": "the service's base URL"},
    "auth": AUTH_SCHEMA,
    "headers": {"type": "object", "additionalProperties": {"type": "string"},
                "description": "sent with every request (an API key header, a tenant id)"},
    "verify_tls": {"type": "boolean", "default": True},
    "ca_file": {"type": "string", "description": "PEM file of the CAs to trust instead of the system's"},
    "timeout": {"type": "number", "exclusiveMinimum": 0, "default": 30, "description": "read timeout, seconds"},
    "connect_timeout": {"type": "number", "exclusiveMinimum": 0, "default": 10},
    "max_retries": {"type": "integer", "minimum": 0, "default": 5},
    "backoff": {"type": "number", "minimum": 0, "default": 0.5, "description": "first backoff, seconds"},
    "max_backoff": {"type": "number", "minimum": 0, "default": 30},
    "max_retry_after": {"type": "number", "minimum": 0, "default": 120,
                        "description": "the longest Retry-After waited for inside one request; longer "
                                       "ones pause the whole export pass instead (Throttled)"},
    "max_requests_per_second": {"type": "number", "minimum": 0, "default": 0, "description": "0: no limit"},
    "concurrency": {"type": "integer", "minimum": 1, "maximum": 64, "default": 4},
    "budget": budgets.SCHEMA,
}

# statuses worth another try: the server asked us to wait, or a gateway/server hiccup
THROTTLE_STATUSES = frozenset({429, 503})
TRANSIENT_STATUSES = frozenset({500, 502, 504})
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH"})


# ---- secrets -------------------------------------------------------------------------------------

_secrets: set[str] = set()
_secrets_lock = threading.Lock()


def protect(*values: str | None) -> None:
    """Register secret values: they are masked in every record of the requests/urllib3 loggers."""
    with _secrets_lock:
        _secrets.update(v for v in values if v and len(v) >= 4)


def mask(text: str) -> str:
    """``text`` with every registered secret replaced by ``***``."""
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, "***")
    return text


class _SecretFilter(logging.Filter):
    """Masks registered secrets in log records of the HTTP libraries (their debug logging included)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _secrets:
            message = record.getMessage()
            masked = mask(message)
            if masked != message:
                record.msg, record.args = masked, ()
        return True


_FILTER = _SecretFilter()
for _name in ("urllib3", "urllib3.connectionpool", "requests", "requests_oauthlib", "oauthlib"):
    logging.getLogger(_name).addFilter(_FILTER)


class _QuietAdapter(HTTPAdapter):
    """An adapter whose connections never dump the wire (http.client prints headers, tokens included)."""

    def get_connection_with_tls_context(self, *args: Any, **kwargs: Any) -> Any:
        pool = super().get_connection_with_tls_context(*args, **kwargs)
        pool.ConnectionCls.debuglevel = 0
        return pool


# ---- settings ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HttpSettings:
    """An HTTP connector's block, read once (see :data:`HTTP_PROPERTIES` for the keys)."""

    base_url: str
    auth: Mapping[str, Any] = field(default_factory=lambda: {"type": "none"})
    headers: Mapping[str, str] = field(default_factory=dict)
    verify: bool | str = True
    timeout: tuple[float, float] = (10.0, 30.0)
    max_retries: int = 5
    backoff: float = 0.5
    max_backoff: float = 30.0
    max_retry_after: float = 120.0
    max_requests_per_second: float = 0.0
    concurrency: int = 4
    budget: Mapping[str, Any] | None = None  # a shared budget (runner/budgets.py)

    @classmethod
    def from_config(cls, config: Mapping[str, Any], base_dir: Path) -> HttpSettings:
        verify: bool | str = bool(config.get("verify_tls", True))
        if verify and config.get("ca_file"):
            path = Path(config["ca_file"])
            verify = str(path if path.is_absolute() else base_dir / path)
        auth = dict(config.get("auth") or {"type": "none"})
        protect(auth.get("token"), auth.get("password"), auth.get("client_secret"), auth.get("value"))
        return cls(
            base_url=str(config.get("url", "")).rstrip("/"),
            auth=auth,
            headers=dict(config.get("headers") or {}),
            verify=verify,
            timeout=(float(config.get("connect_timeout", 10)), float(config.get("timeout", 30))),
            max_retries=int(config.get("max_retries", 5)),
            backoff=float(config.get("backoff", 0.5)),
            max_backoff=float(config.get("max_backoff", 30)),
            max_retry_after=float(config.get("max_retry_after", 120)),
            max_requests_per_second=float(config.get("max_requests_per_second", 0)),
            concurrency=int(config.get("concurrency", 4)),
            budget=dict(config["budget"]) if config.get("budget") else None,
        )


def check_settings(config: Mapping[str, Any], base_dir: Path) -> list[tuple[tuple[str | int, ...], str]]:
    """Problems the schema cannot see: a URL that is not http(s), a CA file that is not there."""
    problems: list[tuple[tuple[str | int, ...], str]] = []
    url = str(config.get("url", ""))
    if not url.startswith(("http://", "https://")):
        problems.append((("url",), f"{url!r} is not an http:// or https:// URL"))
    ca = config.get("ca_file")
    if ca:
        path = Path(ca) if Path(ca).is_absolute() else base_dir / ca
        if not path.is_file():
            problems.append((("ca_file",), f"no CA file at {path}"))
    auth = config.get("auth") or {}
    if auth.get("type") == "oauth2" and not str(auth.get("token_url", "")).startswith(("http://", "https://")):
        problems.append((("auth", "token_url"), "the token endpoint must be an http:// or https:// URL"))
    problems += budgets.problems(config)
    return problems


# ---- pacing --------------------------------------------------------------------------------------


class RateLimiter:
    """At most ``rate`` requests a second across every thread of one connector (0: no limit).

    Requests are spaced evenly rather than let through in bursts: the SaaS limits this serves
    (Miro's 5 group PATCHes per 30 s, Entra's per-tenant rates) count over short windows."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.clock, self.sleep = clock, sleep
        self.next_at = 0.0
        self.lock = threading.Lock()

    def wait(self) -> None:
        if not self.interval:
            return
        with self.lock:
            now = self.clock()
            at = max(now, self.next_at)
            self.next_at = at + self.interval
        if at > now:
            self.sleep(at - now)


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with full jitter (a uniform draw below ``base * 2**(attempt-1)``, capped),
    so that many clients throttled at once do not come back at the same instant."""
    ceiling = min(cap, base * 2 ** max(attempt - 1, 0))
    return (rng or random).uniform(0, ceiling) if ceiling > 0 else 0.0


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` in seconds: a number of seconds or an HTTP date (RFC 9110 §10.2.3); None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def bounded_map(fn: Callable[[T], R], items: Iterable[T], concurrency: int) -> Iterator[R]:
    """``fn`` over ``items`` with at most ``concurrency`` calls at once; results in completion order."""
    items = list(items)
    if concurrency <= 1 or len(items) <= 1:
        yield from map(fn, items)
        return
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        futures = [pool.submit(fn, item) for item in items]
        for future in futures:
            yield future.result()


# ---- auth ----------------------------------------------------------------------------------------


class ClientCredentials(requests.auth.AuthBase):
    """OAuth 2.0 client credentials (RFC 6749 §4.4): a token fetched on first use, cached until a
    minute before ``expires_in`` says it ends, fetched again then or after a 401."""

    def __init__(self, settings: HttpSettings, session_factory: Callable[[], requests.Session],
                 proxies: Callable[[str], Mapping[str, str]] = lambda url: {}):
        auth = settings.auth
        self.token_url, self.client_id, self.client_secret = auth["token_url"], auth["client_id"], auth["client_secret"]
        self.scope, self.audience = auth.get("scope"), auth.get("audience")
        self.settings, self.session_factory, self.proxies = settings, session_factory, proxies
        self.token: str | None = None
        self.expires_at = 0.0
        self.lock = threading.Lock()
        self.fetched = 0  # how many tokens were fetched (tests, the run log)

    def current(self, force: bool = False) -> str:
        with self.lock:
            if force or self.token is None or time.monotonic() >= self.expires_at:
                self._fetch()
            assert self.token is not None
            return self.token

    def invalidate(self, token: str) -> None:
        with self.lock:
            if self.token == token:
                self.token = None

    def _fetch(self) -> None:
        form = {"grant_type": "client_credentials"}
        if self.scope:
            form["scope"] = self.scope
        if self.audience:
            form["audience"] = self.audience
        try:
            response = self.session_factory().post(
                self.token_url, data=form, auth=(self.client_id, self.client_secret),
                timeout=self.settings.timeout, proxies=self.proxies(self.token_url))
        except requests.RequestException as exc:
            raise SystemUnavailable(f"cannot reach the OAuth token endpoint {self.token_url}: {_reason(exc)}") from None
        if response.status_code != 200:
            raise SystemUnavailable(f"the OAuth token endpoint {self.token_url} refused the client credentials "
                                   f"(HTTP {response.status_code}): check auth.client_id and auth.client_secret")
        try:
            body = response.json()
            token = str(body["access_token"])
        except (ValueError, KeyError, TypeError):
            raise ConnectionFailed(f"the OAuth token endpoint {self.token_url} answered without an access_token") from None
        protect(token)
        lifetime = float(body.get("expires_in") or 3600)
        self.token = token
        self.expires_at = time.monotonic() + max(lifetime - 60, lifetime / 2)
        self.fetched += 1

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.current()}"
        return request


# ---- the client ----------------------------------------------------------------------------------


class RequestLost(RetryableError):
    """The connection broke after a request that is not safe to repeat (a POST) may have reached
    the server: whether it was applied is unknown, and the caller must find out (look it up)."""


@dataclass
class Stats:
    """What one client sent, by method and by status (the run log; tests count requests with it)."""

    methods: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    retries: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, method: str, status: int | None) -> None:
        with self.lock:
            self.methods[method] += 1
            if status is not None:
                self.statuses[status] += 1

    def writes(self) -> int:
        return sum(n for m, n in self.methods.items() if m != "GET")


class HttpClient:
    """Requests to one service, with its auth, timeouts, retries and rate limit. Thread-safe.

    ``request`` returns the final response whatever its status (the caller maps it with
    :func:`error_for` or its own protocol checks); it raises :class:`ConnectionFailed` when the
    service cannot be reached after the retries, :class:`RequestLost` for a POST whose fate is unknown.
    """

    def __init__(self, settings: HttpSettings, *, label: str, logger: logging.Logger | None = None,
                 user_agent: str = "provision", sleep: Callable[[float], None] = time.sleep):
        self.settings, self.label = settings, label
        self.logger = logger or logging.getLogger(f"provision.http.{label}")
        self.user_agent, self.sleep = user_agent, sleep
        self.limiter = RateLimiter(settings.max_requests_per_second)
        self.budget = shared_budget(settings.budget, label)
        self.stats = Stats()
        self.session: requests.Session | None = None
        self.oauth: ClientCredentials | None = None
        self._lock = threading.Lock()
        self._rng = random.Random()
        self._proxy_cache: dict[str, Mapping[str, str]] = {}
        if settings.auth.get("type") == "oauth2":
            self.oauth = ClientCredentials(settings, self._session, self._proxies)

    def _session(self) -> requests.Session:
        with self._lock:
            if self.session is None:
                session = requests.Session()
                adapter = _QuietAdapter(pool_connections=2, pool_maxsize=max(self.settings.concurrency, 4),
                                        max_retries=0)
                session.mount("http://", adapter)
                session.mount("https://", adapter)
                # The environment (proxies, a CA bundle, .netrc) is read here once, not on every request
                # as requests does by default: that lookup costs more than the rest of a request's
                # client side (py-spy on bench/soap_export.py). Proxies are looked up once per host.
                session.trust_env = False
                session.verify = self.settings.verify if self.settings.verify is not True else \
                    os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
                session.headers["User-Agent"] = self.user_agent
                session.headers.update(self.settings.headers)
                auth = self.settings.auth
                if auth.get("type") == "bearer":
                    session.headers["Authorization"] = f"Bearer {auth['token']}"
                elif auth.get("type") == "basic":
                    session.auth = (auth["username"], auth["password"])
                elif auth.get("type") == "api_key" and auth.get("header"):
                    session.headers[auth["header"]] = auth["value"]
                elif auth.get("type") == "api_key":
                    session.params = {auth["query"]: auth["value"]}  # type: ignore[assignment]
                elif self.oauth is not None:
                    session.auth = self.oauth
                elif self.settings.base_url:
                    session.auth = requests.utils.get_netrc_auth(self.settings.base_url)
                http.client.HTTPConnection.debuglevel = 0
                self.session = session
            return self.session

    def _proxies(self, url: str) -> Mapping[str, str]:
        """The proxies the environment (HTTP_PROXY, HTTPS_PROXY, NO_PROXY) names for ``url``'s host, looked up once."""
        parts = urllib.parse.urlsplit(url)
        key = f"{parts.scheme}://{parts.netloc}"
        found = self._proxy_cache.get(key)
        if found is None:
            found = self._proxy_cache[key] = requests.utils.get_environ_proxies(key)
        return found

    def close(self) -> None:
        with self._lock:
            if self.session is not None:
                self.session.close()
                self.session = None

    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else f"{self.settings.base_url}{path}"

    def request(self, method: str, path: str, *, json: Any = None, params: Mapping[str, Any] | None = None,
                headers: Mapping[str, str] | None = None, data: bytes | None = None,
                idempotent: bool | None = None, transient: frozenset[int] = TRANSIENT_STATUSES,
                reading: bool = False) -> requests.Response:
        """Send one request, retrying what is safe to retry; the final response.

        ``idempotent`` overrides what the method says (a SOAP read is a POST that is safe to send
        again); ``transient``: the statuses worth another try of an idempotent request (SOAP answers
        its faults with 500, so it leaves 500 out). ``reading``: a read that still gets no answer
        after the retries stops the pass (ConnectionFailed), where a write's would be tried again
        later (RetryableError)."""
        session, url, s = self._session(), self.url(path), self.settings
        safe = method in IDEMPOTENT if idempotent is None else idempotent
        attempt = 0
        refreshed = False
        while True:
            attempt += 1
            self.limiter.wait()
            try:
                with self.budget.slot() if self.budget is not None else contextlib.nullcontext():
                    response = session.request(method, url, json=json, params=params, headers=headers, data=data,
                                               proxies=self._proxies(url),
                                               timeout=s.timeout, allow_redirects=False)
            except requests.exceptions.SSLError as exc:
                raise SystemUnavailable(f"{self.label}: TLS verification of {s.base_url} failed ({_reason(exc)}): "
                                       "give the server's CA in ca_file (verify_tls: false only for tests)") from None
            except requests.RequestException as exc:
                self.stats.add(method, None)
                sent = _maybe_sent(exc)
                if sent and not safe:
                    raise RequestLost(f"{self.label}: the connection broke during {method} {_path(url)} "
                                      f"({_reason(exc)}); it may or may not have been applied") from None
                if attempt > s.max_retries and isinstance(exc, requests.exceptions.ReadTimeout):
                    fails = SystemUnavailable if reading else RetryableError
                    raise fails(f"{self.label}: {method} {_path(url)} got no answer within {s.timeout[1]:g} s, "
                                f"{attempt} times (raise timeout if the service is slow)") from None
                if attempt > s.max_retries:
                    raise SystemUnavailable(f"{self.label}: cannot reach {s.base_url} ({_reason(exc)}) after "
                                           f"{attempt} tries: check url and that the service is up") from None
                self._pause(backoff_delay(attempt, s.backoff, s.max_backoff, self._rng), method, url, "no answer")
                continue
            self.stats.add(method, response.status_code)
            status = response.status_code
            if status == 401 and self.oauth is not None and not refreshed:
                refreshed = True  # the token expired early or was revoked: one new token, one more try
                self.oauth.invalidate(response.request.headers.get("Authorization", "")[7:])
                continue
            if attempt > s.max_retries:
                return response
            if status in THROTTLE_STATUSES:
                wait = retry_after_seconds(response.headers.get("Retry-After"))
                if wait is not None and wait > s.max_retry_after:
                    return response  # too long to wait inside one call: the caller pauses the pass (Throttled)
                if wait is None:
                    wait = backoff_delay(attempt, s.backoff, s.max_backoff, self._rng)
                self._pause(wait, method, url, f"HTTP {status}")
                continue
            if status in transient and safe:
                self._pause(backoff_delay(attempt, s.backoff, s.max_backoff, self._rng), method, url, f"HTTP {status}")
                continue
            return response

    def _pause(self, seconds: float, method: str, url: str, why: str) -> None:
        with self.stats.lock:
            self.stats.retries += 1
        self.logger.debug("%s %s: %s, trying again in %.2f s", method, _path(url), why, seconds)
        if seconds > 0:
            self.sleep(seconds)


def _maybe_sent(exc: requests.RequestException) -> bool:
    """False when the request certainly never reached the server (refused, connect timeout)."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return False
    if isinstance(exc, requests.exceptions.ConnectionError):
        text = repr(exc)
        return not any(s in text for s in ("NewConnectionError", "Connection refused", "Name or service",
                                           "Failed to resolve"))
    return True


def _path(url: str) -> str:
    return url.split("?", 1)[0]


def _reason(exc: BaseException) -> str:
    """A short, secret-free reason for a transport error."""
    text = str(exc)
    for marker in ("Caused by ", "Failed to establish a new connection: "):
        if marker in text:
            text = text.split(marker, 1)[1]
    return mask(text.strip("()'\" "))[:300]


# ---- errors: the one mapping from HTTP to the interface's error classes --------------------------


def error_for(status: int, what: str, detail: str = "", *, retry_after: float | None = None,
              kind: str | None = None) -> ConnectorError:
    """The interface error for an HTTP failure ``status`` of ``what`` (a message prefix naming the
    connector and object). ``detail`` is the server's own message; ``kind`` a protocol's finer code
    (SCIM's scimType) that the caller already resolved to one of ``exists``/``permanent``."""
    detail = mask(detail.strip())[:500]
    message = f"{what}: HTTP {status}" + (f": {detail}" if detail else "")
    if status in (401, 407):
        return SystemUnavailable(f"{message} (the credentials were refused: check auth)")
    if status == 403:
        return ConnectionFailed(f"{message} (the credentials may not do this: check the account's permissions)")
    if status == 404 or status == 410:
        return NotFound(message)
    if status == 409 or kind == "exists":
        return AlreadyExists(message)
    if status == 412:
        return VersionConflict(message)
    if status == 413:
        return PayloadTooLarge(message)
    if status in THROTTLE_STATUSES:
        return Throttled(f"{message} (the service asks to slow down)", retry_after)
    if status in TRANSIENT_STATUSES or status == 408:
        return RetryableError(message, retry_after)
    if 400 <= status < 500:
        return PermanentError(message) if kind == "permanent" or status in (400, 422) else ObjectError(message)
    return ObjectError(message)


class VersionConflict(ObjectError):
    """HTTP 412: the object changed since the version we hold (If-Match): re-read it and re-apply."""


class PayloadTooLarge(ObjectError):
    """HTTP 413: the request was too big: send it in smaller pieces."""


def require_settings(settings: HttpSettings, label: str) -> None:
    if not settings.base_url:
        raise ConfigurationError(f"{label}: url is required")
