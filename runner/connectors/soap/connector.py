"""The soap connector: WSDL operations bound in the manifest, on zeep, as a target and as a source.

zeep reads the WSDL (from a URL or a file beside the manifest, once per run) and builds and parses
the envelopes; every request goes through the shared HTTP layer (:mod:`runner.connectors.http`:
one session, auth, TLS, retries, a rate limit, secrets masked) by a zeep transport of our own, so a
SOAP service gets what SCIM and REST get. What is done with the operations (reading pages into
records, creates that never make a second record, member calls that succeed when already done) is
:class:`runner.connectors.described.DescribedApi`'s, shared with the rest connector.

Answers are zeep's objects serialised (``zeep.helpers.serialize_object``) into plain data: arrays
that zeep keeps wrapped (``{'string': [...]}``) are unwrapped, an empty array (None) stays None,
times become ISO 8601 text. A fault is mapped by its code or fault string (``faults:``); a
``Server`` fault, an HTTP 5xx or a timeout is tried again later; a fault that comes as an HTML page
(a gateway in front) is named as such.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import re
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import requests
import zeep
import zeep.exceptions
import zeep.helpers
import zeep.transports
import zeep.wsse.username

from runner.connectors import paging
from runner.connectors import template as tpl
from runner.connectors.base import (
    AlreadyExists,
    Capabilities,
    ConfigurationError,
    ConnectionFailed,
    ConnectorContext,
    ConnectorError,
    NotFound,
    ObjectError,
    Operation,
    PermanentError,
    RetryableError,
    SystemUnavailable,
    Throttled,
)
from runner.connectors.described import Call, DescribedApi, ObjectSpec, Rule
from runner.connectors.http import HttpClient, RequestLost, backoff_delay, mask, protect
from runner.connectors.jpath import search
from runner.connectors.paging import Paging
from runner.connectors.soap import config as cfg

#: statuses worth another try of a call that is safe to repeat (500 is how SOAP answers a fault)
TRANSIENT = frozenset({502, 504})


class _Transport(zeep.transports.Transport):
    """zeep's transport over our HTTP client: retries, auth, TLS and masking as every HTTP connector has."""

    def __init__(self, client: HttpClient):
        super().__init__(session=client._session())
        self.http = client
        self.state = threading.local()  # per thread: whether the call in progress is safe to send twice

    def post(self, address: str, message: bytes, headers: Mapping[str, str]) -> requests.Response:
        return self.http.request("POST", address, data=message, headers=headers,
                                 idempotent=getattr(self.state, "idempotent", False), transient=TRANSIENT)

    def _load_remote_data(self, url: str) -> bytes:
        response = self.http.request("GET", url)
        if response.status_code != 200:
            raise ConnectionFailed(f"{self.http.label}: the WSDL at {url.split('?')[0]} answered HTTP "
                                   f"{response.status_code}: check wsdl")
        return response.content


@dataclasses.dataclass
class _NoHeaders:
    """A SOAP answer as the page loop sees it: no total header, no Link."""

    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    links: Mapping[str, Mapping[str, str]] = dataclasses.field(default_factory=dict)


class SoapConnector(DescribedApi):
    """A SOAP 1.1/1.2 service: WSDL operations bound per object type in the manifest, on zeep, as target or source."""

    type_name = "soap"
    interface_version = 2
    config_schema = cfg.CONFIG_SCHEMA
    record_kind = "a SOAP record"
    object_spec = staticmethod(cfg.object_spec)

    def __init__(self, config: Mapping[str, Any], context: ConnectorContext):
        super().__init__(config, context)
        self.zeep: zeep.Client | None = None
        self.service: Any = None
        self.transport: _Transport | None = None

    # ---- facts --------------------------------------------------------------------------------

    def capabilities(self, object: str | None = None) -> Capabilities:
        """What the described operations allow: no create, no add; no update, no update or disable."""
        caps = super().capabilities(object)
        spec = self.specs.get(object or "")
        if spec is None:
            return caps
        ops = set(caps.operations)
        if not spec.create.path:
            ops.discard("add")
        if not spec.update.path:
            ops -= {"update", "set_password"} | ({"disable"} if spec.disable is None else set())
        return dataclasses.replace(caps, operations=frozenset(ops))

    def check(self) -> list[tuple[tuple[str | int, ...], str]]:
        problems = self._spec_problems()
        wsdl = str(self.config.get("wsdl", ""))
        if not wsdl.startswith(("http://", "https://")):
            path = self._wsdl_location()
            if not Path(path).is_file():
                problems.append((("wsdl",), f"no WSDL file at {path}"))
            else:  # a file: the operations and arguments can be checked before anything runs
                try:
                    client = zeep.Client(path)
                except Exception as exc:  # noqa: BLE001 - zeep raises many kinds for a broken WSDL
                    problems.append((("wsdl",), f"{path} is not a WSDL zeep can read: {str(exc)[:200]}"))
                else:
                    problems += self._binding_problems(client)
        return problems

    def _templates(self, raw: Mapping[str, Any]) -> Iterator[tuple[tuple[str, ...], Any]]:
        yield ("body",), raw.get("body")
        for kind in ("get", "create", "update", "delete", "disable", "add_member", "remove_member", "correlate"):
            call = raw.get(kind)
            if isinstance(call, Mapping):
                yield (kind, "args"), call.get("args")

    # ---- lifecycle ----------------------------------------------------------------------------

    def open(self) -> None:
        self.client = HttpClient(self.settings, label=self._label(), logger=self.context.logger,
                                 user_agent="provision-soap")
        self.transport = _Transport(self.client)
        auth = self.settings.auth
        wsse = None
        if auth.get("type") == "wsse":
            protect(auth.get("password"))
            wsse = zeep.wsse.username.UsernameToken(auth["username"], auth["password"],
                                                    use_digest=bool(auth.get("digest", False)))
        try:
            self.zeep = zeep.Client(self._wsdl_location(), transport=self.transport, wsse=wsse,
                                    service_name=self.config.get("service"), port_name=self.config.get("port"))
        except ConnectorError:
            raise
        except (requests.RequestException, zeep.exceptions.Error, OSError, ValueError) as exc:
            raise ConnectionFailed(f"{self._label()}: cannot read the WSDL {self._wsdl_shown()}: "
                                   f"{mask(str(exc))[:300]}") from None
        address = self.config.get("address")
        try:
            self.service = (self.zeep.create_service(self._binding_name(), address) if address
                            else self.zeep.service)
        except (zeep.exceptions.Error, ValueError, KeyError, AttributeError) as exc:
            raise ConfigurationError(f"{self._label()}: {exc}") from None
        problems = self._binding_problems(self.zeep)
        if problems:
            raise ConfigurationError(f"{self._label()}: " + "; ".join(
                f"{'.'.join(map(str, where))}: {message}" for where, message in problems))

    def close(self) -> None:
        super().close()
        self.zeep = self.service = self.transport = None

    def ping(self) -> None:
        if self.zeep is None:
            raise ConnectionFailed(f"{self._label()}: not open")

    def identity(self) -> Mapping[str, Any]:
        return {"service": self.config.get("address") or self._wsdl_shown()}

    def server_info(self) -> Mapping[str, Any]:
        """The WSDL's services, ports and operations with their argument types (``provision discover``)."""
        if self.zeep is None:
            return {"wsdl": self._wsdl_shown()}
        info: dict[str, Any] = {"wsdl": self._wsdl_shown()}
        for service in self.zeep.wsdl.services.values():
            for port in service.ports.values():
                for name, operation in sorted(port.binding._operations.items()):
                    info[f"{service.name}.{port.name}.{name}"] = _signature(operation, self.zeep)
        return info

    # ---- the transport ------------------------------------------------------------------------

    def _pages(self, spec: ObjectSpec, call: Call, values: Mapping[str, Any], *, records: str | None,
               what: str, size: int | None = None, extra: Mapping[str, Any] | None = None,
               first_only: bool = False) -> Iterator[list[Any]]:
        args = {**tpl.render(call.body, values), **(extra or {})}
        listing = call is spec.list  # the others (a correlate getUser, list_members) answer in one go

        def fetch(operation: str, params: Mapping[str, Any] | None, what: str) -> tuple[Any, _NoHeaders]:
            try:
                answer = self._invoke(spec, operation, dict(params or {}), what, reading=True)
            except NotFound:
                if listing:
                    raise
                answer = None  # a correlate call that finds nothing
            if isinstance(answer, Mapping) and records is None:
                answer = [answer]  # one record
            return ([] if answer is None else answer), _NoHeaders()

        return paging.pages(fetch, call.path, args, spec.paging if listing else Paging(), records,
                            size or spec.paging.size, what=what, first_only=first_only)

    def _fetch(self, spec: ObjectSpec, anchor: str) -> dict[str, Any] | None:
        if not spec.get.path:  # no get operation: the list, compared
            found = [r for page in self._pages(spec, spec.list, {}, records=spec.records,
                                               what=f"{self._label()}: list {spec.name}")
                     for r in page if str(search(spec.id, r)) == anchor]
            return found[0] if found else None
        what = f"{self._label()}: {spec.get.path} {anchor}"
        try:
            answer = self._invoke(spec, spec.get.path, tpl.render(spec.get.body, {"id": anchor}), what, reading=True)
        except NotFound:
            return None
        raw = search(spec.get.record, answer)
        return raw if isinstance(raw, dict) else None

    def _send_create(self, spec: ObjectSpec, op: Operation, values: Mapping[str, Any]) -> str:
        what = self._what(op)
        args = tpl.render(spec.create.body, values)
        try:
            answer = self._invoke(spec, spec.create.path, args, what, idempotent=False)
        except RequestLost as exc:
            self._adopt_if_there(spec, op, values, lost=True)
            raise RetryableError(str(exc)) from None
        raw = search(spec.create.record, answer)
        anchor = search(spec.id, raw) if isinstance(raw, Mapping) else None
        if anchor is None:
            raise ObjectError(f"{what}: the service created the record but its answer holds no id at {spec.id!r}: "
                              "set the object's id (a JMESPath over the answer) or create.record")
        return str(anchor)

    def _send_update(self, spec: ObjectSpec, op: Operation, call: Call, values: Mapping[str, Any],
                     current: dict[str, Any] | None) -> None:
        if call is spec.update and values and not set(values) & set(tpl.fields(call.body)):
            return  # nothing the update operation takes changed (a key's spelling it cannot change)
        clear_as = ((self.config.get("objects") or {}).get(spec.name) or {}).get("clear_as")
        context = {"id": op.anchor, **{k: clear_as if v is None else v for k, v in values.items()}}
        args = tpl.render(call.body, context, only=set(values)) if values else tpl.render(call.body, context)
        self._invoke(spec, call.path, args, self._what(op), answer=False)

    def _send_delete(self, spec: ObjectSpec, op: Operation) -> None:
        call = spec.delete
        assert call is not None
        self._invoke(spec, call.path, tpl.render(call.body, {"id": op.anchor, **op.attributes}), self._what(op),
                     answer=False)

    def _send_member(self, spec: ObjectSpec, op: Operation, call: Call, context: Mapping[str, Any],
                     what: str) -> ConnectorError | None:
        try:
            self._invoke(spec, call.path, tpl.render(call.body, context), what, answer=False)
        except (AlreadyExists, NotFound, ObjectError, RetryableError) as exc:
            return exc
        return None

    # ---- calling an operation -----------------------------------------------------------------

    def _invoke(self, spec: ObjectSpec, operation: str, args: Mapping[str, Any], what: str, *,
                reading: bool = False, idempotent: bool = True, answer: bool = True) -> Any:
        """Call ``operation`` with ``args``; the answer as plain data. Faults and transport failures
        become the interface's errors (a read that fails stops the pass: ConnectionFailed)."""
        if self.service is None or self.transport is None:
            raise ConnectionFailed(f"{self._label()}: not open")
        self.transport.state.idempotent = idempotent
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._invoke_once(spec, operation, args, what, reading, answer)
            except (RetryableError, ConnectionFailed) as exc:
                # a Server fault or a gateway's page on a call that is safe to repeat: again, after a pause
                transient = isinstance(exc, RetryableError) or getattr(exc, "transient", False)
                if not (idempotent and transient) or attempt > self.settings.max_retries:
                    raise
                time.sleep(backoff_delay(attempt, self.settings.backoff, self.settings.max_backoff))

    def _invoke_once(self, spec: ObjectSpec, operation: str, args: Mapping[str, Any], what: str,
                     reading: bool, wanted: bool) -> Any:
        assert self.service is not None
        try:
            method = getattr(self.service, operation)
            answer = method(**args)
        except ConnectorError as exc:  # from our transport: ConnectionFailed, RequestLost, RetryableError
            if reading and not isinstance(exc, ConnectionFailed):
                raise ConnectionFailed(self.context.redact(str(exc))) from None
            raise
        except zeep.exceptions.Fault as fault:
            raise self._fault_error(spec, fault, what, reading) from None
        except zeep.exceptions.TransportError as exc:
            raise self._transport_error(exc, what, reading) from None
        except (TypeError, zeep.exceptions.ValidationError, AttributeError) as exc:
            raise PermanentError(f"{what}: {operation}({', '.join(args)}): {mask(str(exc))[:300]}") from None
        except zeep.exceptions.XMLSyntaxError as exc:
            error = RetryableError(f"{what}: {operation} answered something that is not XML ({str(exc)[:120]})")
            raise (ConnectionFailed(str(error)) if reading else error) from None
        return plain(zeep.helpers.serialize_object(answer, dict)) if wanted else None

    def _fault_error(self, spec: ObjectSpec, fault: zeep.exceptions.Fault, what: str, reading: bool) -> ConnectorError:
        code = str(fault.code or "")
        local = code.rsplit(":", 1)[-1]
        text = mask(str(fault.message or ""))[:300]
        if not code and fault.detail is not None and b"<html" in _bytes(fault.detail).lower():
            text = f"an HTML page ({_title(_bytes(fault.detail))}), not a SOAP answer"
        message = self.context.redact(f"{what}: SOAP fault {local or '(no code)'}: {text}")
        if _matches(spec.answers.not_found, local, text):
            return NotFound(message)
        if not reading and _matches(spec.answers.exists, local, text):
            return AlreadyExists(message)
        retry = _matches(spec.answers.retry, local, text) or local.startswith("Server") or not code
        error: ConnectorError = RetryableError(message) if retry else ObjectError(message)
        return _stops(message, transient=retry) if reading else error

    def _transport_error(self, exc: zeep.exceptions.TransportError, what: str, reading: bool) -> ConnectorError:
        status = int(exc.status_code or 0)
        content = _bytes(exc.content or b"")
        detail = f"an HTML page ({_title(content)})" if b"<html" in content.lower() else \
            (content[:120].decode("utf-8", "replace").strip() or "no body")
        message = self.context.redact(f"{what}: HTTP {status}: {detail}")
        if status in (401, 407):
            return SystemUnavailable(f"{message} (the credentials were refused: check auth)")
        if status == 403:
            return ConnectionFailed(f"{message} (the credentials may not do this: check the account's permissions)")
        if reading:
            return _stops(message, transient=status >= 500 or status in (408, 429))
        if status in (429, 503):
            return Throttled(f"{message} (the service asks to slow down)")
        if status >= 500 or status == 408:
            return RetryableError(message)
        return ObjectError(message)

    # ---- the WSDL -------------------------------------------------------------------------------

    def _wsdl_location(self) -> str:
        wsdl = str(self.config.get("wsdl", ""))
        if wsdl.startswith(("http://", "https://", "file://")):
            return wsdl
        path = Path(wsdl)
        return str(path if path.is_absolute() else self.context.base_dir / path)

    def _wsdl_shown(self) -> str:
        return mask(self._wsdl_location().split("?")[0])

    def _binding_name(self) -> str:
        assert self.zeep is not None
        port = self.zeep.service._binding
        return str(port.name)

    def _binding_problems(self, client: zeep.Client) -> list[tuple[tuple[str | int, ...], str]]:
        """Operations the manifest names that the WSDL lacks, and arguments an operation does not take."""
        operations: dict[str, Any] = {}
        for service in client.wsdl.services.values():
            if self.config.get("service") and service.name != self.config["service"]:
                continue
            for port in service.ports.values():
                if self.config.get("port") and port.name != self.config["port"]:
                    continue
                operations.update(port.binding._operations)
        problems: list[tuple[tuple[str | int, ...], str]] = []
        raw_objects = self.config.get("objects") or {}
        for name, raw in raw_objects.items():
            for kind in ("list", "get", "create", "update", "delete", "disable", "add_member", "remove_member",
                         "list_members", "correlate"):
                call = raw.get(kind) if isinstance(raw, Mapping) else None
                if not isinstance(call, Mapping):
                    continue
                operation = operations.get(call["operation"])
                if operation is None:
                    close = sorted(operations)
                    problems.append((("objects", name, kind, "operation"),
                                     f"the WSDL has no operation {call['operation']!r}; it has: {', '.join(close)}"))
                    continue
                takes = _argument_names(operation)
                extra = {self.specs[name].delta.param} if kind == "list" and self.specs[name].delta else set()
                if kind == "list" and self.specs[name].paging.style != "none":
                    p = self.specs[name].paging
                    extra |= {x for x in (p.size_param, p.offset_param if p.style == "offset" else None,
                                          p.page_param if p.style == "page" else None,
                                          p.cursor_param if p.style == "cursor" else None) if x}
                for arg in [*(call.get("args") or {}), *sorted(extra)]:
                    if takes is not None and arg not in takes:
                        problems.append((("objects", name, kind, "args"),
                                         f"{call['operation']} takes no argument {arg!r}; it takes: "
                                         f"{', '.join(takes) or 'none'}"))
        return problems


# ---- module helpers -------------------------------------------------------------------------------


def plain(value: Any) -> Any:
    """zeep's serialised answer as plain data: wrapped arrays unwrapped, times as ISO 8601 text."""
    if isinstance(value, Mapping):
        if len(value) == 1:
            (only,) = value.values()
            if isinstance(only, list):
                return [plain(v) for v in only]
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat() if value.tzinfo else value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def _stops(message: str, transient: bool) -> ConnectionFailed:
    """A read that failed stops the pass; ``transient`` ones (a Server fault, a 5xx) are first tried again."""
    error = ConnectionFailed(message)
    error.transient = transient  # type: ignore[attr-defined]
    return error


def _matches(rules: Sequence[Rule], code: str, text: str) -> bool:
    for rule in rules:
        if rule.code and rule.code.rsplit(":", 1)[-1] != code:
            continue
        if rule.message and not re.search(rule.message, text):
            continue
        return True
    return False


def _argument_names(operation: Any) -> list[str] | None:
    """The names an operation's input takes (document/literal wrapped and rpc alike); None if unknown."""
    try:
        return [name for name, _ in operation.input.body.type.elements]
    except AttributeError:
        try:
            return [name for name, _ in operation.input.body.type.elements_nested]
        except AttributeError:
            return None


def _signature(operation: Any, client: zeep.Client) -> str:
    try:
        return f"({operation.input.signature(as_output=False)}) -> {operation.output.signature(as_output=True)}"
    except Exception:  # noqa: BLE001 - a description only
        return "(signature not readable)"


def _bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    try:
        from lxml import etree
        return bytes(etree.tostring(value))
    except (TypeError, ValueError, ImportError):
        return str(value).encode()


def _title(content: bytes) -> str:
    found = re.search(rb"<title>(.*?)</title>", content, re.I | re.S)
    return found.group(1).decode("utf-8", "replace").strip()[:80] if found else "no title"


__all__ = ["SoapConnector", "plain"]
