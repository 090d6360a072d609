"""Reaching the directory: URLs, TLS, binds, a small pool of connections, and what LDAP errors mean.

One ldap3 ``Connection`` serves one thread at a time; the engine calls ``apply`` from up to
``concurrency`` threads, so the connector keeps a pool of that many bound connections and lends
one per call. Connections are opened lazily and reused for the whole run; one that breaks
(server restart, idle timeout) is dropped and the next borrower opens a fresh one.

Certificates are verified unless ``tls_verify: false`` is set explicitly (the connector warns).
Result codes are RFC 4511 §4.1.9's; :func:`error_for` is the one place that turns them into the
engine's error classes (retry, object failure, re-create, adopt).
"""

from __future__ import annotations

import contextlib
import queue
import ssl
import threading
import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ldap3
from ldap3.core import exceptions as lx

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
)
from runner.connectors.ldap import wire
from runner.connectors.ldap.wire import Control

# RFC 4511 result codes the connector treats specially
SUCCESS, NO_SUCH_ATTRIBUTE, NO_SUCH_OBJECT, ALREADY_EXISTS = 0, 16, 32, 68
NOT_ALLOWED_ON_NON_LEAF, OBJECT_CLASS_VIOLATION, ASSERTION_FAILED = 66, 65, 122
AFFECTS_MULTIPLE_DSAS = 71  # a modDN into another database (partition)
INVALID_CREDENTIALS, INSUFFICIENT_ACCESS = 49, 50
_RETRYABLE = {3: "time limit exceeded", 51: "busy", 52: "unavailable", 80: "other (server)"}
_PERMANENT = {17: "undefined attribute type", 18: "inappropriate matching", 19: "constraint violation",
              21: "invalid attribute syntax", 34: "invalid DN syntax", 64: "naming violation",
              65: "object class violation", 67: "not allowed on RDN", 69: "object class mods prohibited",
              71: "affects multiple DSAs"}

# the connection is unusable after these: a timed-out request may still be answered on it later
BROKEN = (lx.LDAPCommunicationError, lx.LDAPResponseTimeoutError)

PERMISSIVE_MODIFY = "1.2.840.113556.1.4.1413"  # adding a present value / deleting an absent one succeeds
ASSERTION = "1.3.6.1.1.12"  # RFC 4528: the operation applies only if the entry matches a filter
POST_READ = "1.3.6.1.1.13.2"  # RFC 4527: the entry as it is after the operation
PAGED = "1.2.840.113556.1.4.319"  # RFC 2696


@dataclass(frozen=True)
class Settings:
    """The connection part of the connector's block, checked and typed."""

    url: str
    bind_dn: str | None = None
    password: str | None = None
    sasl: str | None = None  # EXTERNAL
    start_tls: bool = False
    tls_verify: bool = True
    ca_file: Path | None = None
    timeout: float = 30.0
    concurrency: int = 4

    @property
    def scheme(self) -> str:
        return urllib.parse.urlsplit(self.url).scheme.lower()

    def __repr__(self) -> str:  # the password never reaches a log or a traceback
        return f"Settings(url={self.url!r}, bind_dn={self.bind_dn!r}, sasl={self.sasl!r})"


def settings_from(config: Mapping[str, Any], base_dir: Path) -> Settings:
    url = str(config["url"])
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in ("ldap", "ldaps", "ldapi"):
        raise ConfigurationError(f"url {url!r}: use ldap://, ldaps:// or ldapi://")
    ca = config.get("ca_file")
    sasl = config.get("sasl")
    if sasl and str(sasl).upper() != "EXTERNAL":
        raise ConfigurationError(f"sasl {sasl!r}: only EXTERNAL is supported (over ldapi:// or with a client "
                                 "certificate)")
    return Settings(url=url, bind_dn=config.get("bind_dn"), password=config.get("password"),
                    sasl=str(sasl).upper() if sasl else None, start_tls=bool(config.get("start_tls", False)),
                    tls_verify=bool(config.get("tls_verify", True)),
                    ca_file=(base_dir / ca) if ca else None, timeout=float(config.get("timeout", 30)),
                    concurrency=int(config.get("concurrency", 4)))


def make_server(settings: Settings) -> ldap3.Server:
    """An ldap3 Server for the URL; TLS verifies the certificate unless told not to."""
    tls = None
    if settings.scheme == "ldaps" or settings.start_tls:
        tls = ldap3.Tls(validate=ssl.CERT_REQUIRED if settings.tls_verify else ssl.CERT_NONE,
                        ca_certs_file=str(settings.ca_file) if settings.ca_file else None,
                        version=ssl.PROTOCOL_TLS_CLIENT)
    url = settings.url
    if settings.scheme == "ldapi":  # ldap3 wants the socket path, not its URL-encoded form
        url = "ldapi://" + urllib.parse.quote(urllib.parse.unquote(url[len("ldapi://"):].rstrip("/")), safe="/")
    return ldap3.Server(url, use_ssl=settings.scheme == "ldaps", tls=tls, get_info=ldap3.NONE,
                        connect_timeout=max(1, int(settings.timeout)))


def connect(settings: Settings, server: ldap3.Server, redact: Any = str) -> ldap3.Connection:
    """A bound connection, or ConnectionFailed saying what to check."""
    common: dict[str, Any] = dict(raise_exceptions=False, receive_timeout=max(1, int(settings.timeout)), auto_referrals=False,
                                  return_empty_attributes=False, read_only=False, check_names=False)
    if settings.sasl == "EXTERNAL":
        # an empty authorization identity (RFC 4422 appendix A): the server derives it (slapd
        # answers saslBindInProgress when the credentials are left out entirely)
        conn = ldap3.Connection(server, authentication=ldap3.SASL, sasl_mechanism=ldap3.EXTERNAL,
                                sasl_credentials="", **common)
    elif settings.bind_dn:
        conn = ldap3.Connection(server, user=settings.bind_dn, password=settings.password or "",
                                authentication=ldap3.SIMPLE, **common)
    else:
        conn = ldap3.Connection(server, authentication=ldap3.ANONYMOUS, **common)
    where = settings.url
    try:
        conn.open()
        if settings.start_tls and settings.scheme == "ldap" and not conn.start_tls():
            raise SystemUnavailable(f"StartTLS refused by {where}: {conn.result.get('description')}")
        if not conn.bind():
            result = conn.result or {}
            code = result.get("result")
            with contextlib.suppress(Exception):
                conn.unbind()
            if code == INVALID_CREDENTIALS:
                raise SystemUnavailable(f"{where} refused the credentials of {settings.bind_dn or 'SASL EXTERNAL'}: "
                                       "check bind_dn and password")
            raise SystemUnavailable(f"cannot bind to {where}: {redact(str(result.get('description')))} "
                                   f"{redact(str(result.get('message') or ''))}".strip())
    except lx.LDAPStartTLSError as exc:
        raise SystemUnavailable(f"StartTLS with {where} failed: {redact(str(exc))}; check ca_file") from None
    except (lx.LDAPCommunicationError, lx.LDAPSSLConfigurationError, lx.LDAPCertificateError,
            lx.LDAPSocketOpenError, ssl.SSLError, OSError) as exc:
        text = redact(str(exc))
        hint = "check ca_file (or the server's certificate)" if "certificate" in text.lower() else \
            "check the url and that the server runs"
        raise SystemUnavailable(f"cannot reach {where}: {text}; {hint}") from None
    return conn


class Pool:
    """Up to ``size`` bound connections, lent one at a time; broken ones are replaced."""

    def __init__(self, settings: Settings, redact: Any = str):
        self.settings, self.redact = settings, redact
        self.server = make_server(settings)
        self.idle: queue.LifoQueue[ldap3.Connection] = queue.LifoQueue()
        self.lock = threading.Lock()
        self.everything: list[ldap3.Connection] = []
        self.closed = False

    def _new(self) -> ldap3.Connection:
        conn = connect(self.settings, self.server, self.redact)
        with self.lock:
            self.everything.append(conn)
        return conn

    @contextlib.contextmanager
    def connection(self) -> Iterator[ldap3.Connection]:
        """Lend a connection; one that raised a communication error is discarded, not returned."""
        if self.closed:
            raise ConnectionFailed("the LDAP connector is not open")
        try:
            conn = self.idle.get_nowait()
        except queue.Empty:
            conn = self._new()
        try:
            yield conn
        except BROKEN:
            self.discard(conn)
            raise
        except BaseException:
            self.discard(conn) if conn.closed else self.idle.put(conn)
            raise
        else:
            if conn.closed:
                self.discard(conn)
            else:
                self.idle.put(conn)

    def discard(self, conn: ldap3.Connection) -> None:
        with contextlib.suppress(Exception):
            conn.unbind()
        with self.lock, contextlib.suppress(ValueError):
            self.everything.remove(conn)

    def drop_idle(self) -> None:
        while True:
            try:
                self.discard(self.idle.get_nowait())
            except queue.Empty:
                return

    def close(self) -> None:
        self.closed = True
        with self.lock:
            everything, self.everything = self.everything, []
        for conn in everything:
            with contextlib.suppress(Exception):
                conn.unbind()


# ---- controls ----------------------------------------------------------------------------------


def permissive_modify() -> Control:
    return (PERMISSIVE_MODIFY, False, None)


def assert_uuid(anchor: str) -> Control:
    """RFC 4528 Assertion control: the server applies the operation only if the entry's
    entryUUID is ``anchor`` (a UUID, so nothing in it needs escaping)."""
    return (ASSERTION, True, wire.equality_filter("entryUUID", anchor))


def post_read(attributes: list[str]) -> Control:
    """RFC 4527 Post-Read control: the answer carries these attributes of the entry as written."""
    return (POST_READ, False, wire.attribute_selection(attributes))


# ---- results -----------------------------------------------------------------------------------


def describe(result: Mapping[str, Any] | None) -> str:
    result = result or {}
    text = f"{result.get('description') or 'error'} ({result.get('result')})"
    if result.get("message"):
        text += f": {result['message']}"
    return text


def error_for(result: Mapping[str, Any] | None, what: str) -> ConnectorError | None:
    """The engine's error class for an LDAP result code (None for success): the one mapping."""
    result = result or {}
    code = result.get("result", 80)
    if code == SUCCESS:
        return None
    message = f"{what}: {describe(result)}"
    if code == NO_SUCH_OBJECT:
        return NotFound(message)
    if code == ALREADY_EXISTS:
        return AlreadyExists(message)
    if code == 51:
        return Throttled(message, retry_after=1.0)
    if code in _RETRYABLE:
        return RetryableError(message)
    if code in (INVALID_CREDENTIALS, INSUFFICIENT_ACCESS):
        return PermanentError(message + "; check the bind DN's rights")
    if code in _PERMANENT:
        return PermanentError(message)
    return ObjectError(message)


def communication_error(exc: Exception, what: str, redact: Any = str) -> RetryableError:
    """A dropped connection while an operation was in flight: its outcome is unknown, so it is
    retried (a replayed add then comes back as AlreadyExists and is adopted)."""
    return RetryableError(f"{what}: the connection to the directory broke ({redact(str(exc))}); retrying")
