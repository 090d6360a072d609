"""The rest connector: any JSON API described in the manifest, as a target and as a source.

Built on the shared HTTP layer (:mod:`runner.connectors.http`: one session, auth, TLS, timeouts,
Retry-After, backoff, a rate limit, secrets masked); this module only knows what the manifest
says about the API (:mod:`.config`), fills templates (:mod:`.template`) and pages through lists
(:mod:`.paging`).

Anchors are the API's ids (as text). Crash safety: every operation is safe to send twice. An add
whose answer was lost (a dropped connection, a kill) is found again by the ``correlate`` query
(``/users?email={email}``) or a bounded scan of the list, and adopted; where the API takes an
idempotency key, each add carries its operation's key, so a re-send returns the first answer
instead of a second record. An update or delete of a record that is gone reports NotFound (the
engine re-creates it, or counts it deleted); a member added twice or removed twice is fine.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import jmespath
import requests

from runner.connectors import paging
from runner.connectors import template as tpl
from runner.connectors.base import (
    AlreadyExists,
    ConfigurationError,
    ConnectionFailed,
    ConnectorError,
    NotFound,
    ObjectError,
    Operation,
    RetryableError,
)
from runner.connectors.described import Answers, Call, DescribedApi, ObjectSpec, Rule
from runner.connectors.http import (
    HttpClient,
    RequestLost,
    check_settings,
    error_for,
    retry_after_seconds,
)
from runner.connectors.jpath import search
from runner.connectors.rest import config as cfg


class RestConnector(DescribedApi):
    """A JSON API over HTTP, described in the manifest (collections, calls, paging, answers), as target or source."""

    type_name = "rest"
    interface_version = 2
    config_schema = cfg.CONFIG_SCHEMA
    record_kind = "a JSON object"
    object_spec = staticmethod(cfg.object_spec)

    # ---- facts --------------------------------------------------------------------------------

    def _whole(self, spec: ObjectSpec) -> bool:
        """A PUT that does not read the record first sends every mapped attribute."""
        return (spec.put and not spec.update.read_first) or super()._whole(spec)

    def check(self) -> list[tuple[tuple[str | int, ...], str]]:
        return [*check_settings(self.config, self.context.base_dir), *self._spec_problems()]

    def _templates(self, raw: Mapping[str, Any]) -> Iterator[tuple[tuple[str, ...], Any]]:
        return templates(raw)

    # ---- lifecycle ----------------------------------------------------------------------------

    def open(self) -> None:
        if not self.settings.base_url:
            raise ConfigurationError(f"{self._label()}: url is required")
        self.client = HttpClient(self.settings, label=self._label(), logger=self.context.logger,
                                 user_agent="provision-rest")

    def ping(self) -> None:
        if self.client is None:
            raise ConnectionFailed(f"{self._label()}: not open")

    def identity(self) -> Mapping[str, Any]:
        return {"service": self.settings.base_url}

    def server_info(self) -> Mapping[str, Any]:
        def described(s: ObjectSpec) -> str:
            facts = [s.path, f"paging {s.paging.style}", f"update by {s.update.method}"]
            facts += ["delta"] if s.delta else []
            facts += [f"correlate by {', '.join(self._correlation(s))}"] if s.correlate else []
            facts += [f"idempotency key in {s.idempotency_header}"] if s.idempotency_header else []
            facts += [f"members of {s.member_attribute} as sub-resources"] if s.add_member else []
            return ", ".join(facts)
        return {"url": self.settings.base_url, **{f"object {n}": described(s) for n, s in self.specs.items()}}

    # ---- the transport ------------------------------------------------------------------------

    def _pages(self, spec: ObjectSpec, call: Call, values: Mapping[str, Any], *, records: str | None,
               what: str, size: int | None = None, extra: Mapping[str, Any] | None = None,
               first_only: bool = False) -> Iterator[list[Any]]:
        params = {**self._query(call, values), **(extra or {})}
        return paging.pages(self._get_json, self._path(call, values), params, spec.paging, records,
                            size or spec.paging.size, what=what, first_only=first_only)

    def _fetch(self, spec: ObjectSpec, anchor: str) -> dict[str, Any] | None:
        path = self._path(spec.get, {"id": anchor})
        what = f"{self._label()}: GET {path}"
        response = self._send("GET", path, what=what, params=self._query(spec.get, {"id": anchor}), reading=True)
        error = self._error(spec, response, what, reading=True)
        if isinstance(error, NotFound):
            return None
        if error is not None:
            raise error
        raw = search(spec.get.record, _json_body(response, what))
        return raw if isinstance(raw, dict) else None

    def _send_create(self, spec: ObjectSpec, op: Operation, values: Mapping[str, Any]) -> str:
        what = self._what(op)
        call = spec.create
        headers = self._headers(call, values)
        if spec.idempotency_header and op.key:
            headers[spec.idempotency_header] = op.key
        body = tpl.render(call.body, values)
        path = self._path(call, values)
        try:
            response = self._send(call.method, path, what=what, json=body, headers=headers,
                                  params=self._query(call, values))
        except RequestLost as exc:
            if spec.idempotency_header and op.key:  # the key makes a re-send return the first answer
                response = self._send(call.method, path, what=what, json=body, headers=headers,
                                      params=self._query(call, values))
            else:
                self._adopt_if_there(spec, op, values, lost=True)
                raise RetryableError(str(exc)) from None
        error = self._error(spec, response, what)
        if error is not None:
            raise error
        raw = search(call.record, _json_body(response, what, empty_ok=True))
        anchor = search(spec.id, raw) if isinstance(raw, Mapping) else None
        anchor = anchor if anchor is not None else _id_from_location(response.headers.get("Location"))
        if anchor is None:
            raise ObjectError(f"{what}: the API created the record but its answer holds no id at {spec.id!r} "
                              "and no Location header: set the object's id (a JMESPath) or create.record")
        return str(anchor)

    def _send_update(self, spec: ObjectSpec, op: Operation, call: Call, values: Mapping[str, Any],
                     current: dict[str, Any] | None) -> None:
        what = self._what(op)
        names = set(values)
        if call.method == "PUT" and call.read_first:
            current = current if current is not None else self._fetch(spec, str(op.anchor))
            if current is None:
                raise NotFound(f"{what}: the record is gone")
            body: Any = _overlay(current, tpl.render(call.body, values, only=names, nulls=True))
        elif call.method == "PUT":
            body = tpl.render(call.body, values)
        else:
            body = tpl.render(call.body, values, only=names, nulls=True) if values else None
        context = {"id": op.anchor, **values}
        path = self._path(call, context)
        response = self._send(call.method, path, what=what, json=body, params=self._query(call, context),
                              headers=self._headers(call, context))
        error = self._error(spec, response, what)
        if error is not None:
            raise error

    def _send_delete(self, spec: ObjectSpec, op: Operation) -> None:
        call = spec.delete
        assert call is not None
        values = {"id": op.anchor, **op.attributes}
        response = self._send(call.method, self._path(call, values), what=self._what(op),
                              params=self._query(call, values), headers=self._headers(call, values))
        error = self._error(spec, response, self._what(op))
        if error is not None:
            raise error

    def _send_member(self, spec: ObjectSpec, op: Operation, call: Call, context: Mapping[str, Any],
                     what: str) -> ConnectorError | None:
        response = self._send(call.method, self._path(call, context), what=what, params=self._query(call, context),
                              headers=self._headers(call, context),
                              json=tpl.render(call.body, context) if call.body is not None else None)
        return self._error(spec, response, what)

    # ---- HTTP -----------------------------------------------------------------------------------

    def _send(self, method: str, path: str, *, what: str, json: Any = None, params: Mapping[str, Any] | None = None,
              headers: Mapping[str, str] | None = None, reading: bool = False) -> requests.Response:
        if self.client is None:
            raise ConnectionFailed(f"{self._label()}: not open")
        wire = {"Accept": "application/json", **(headers or {})}
        return self.client.request(method, path, json=json, params=params or None, headers=wire, reading=reading)

    def _get_json(self, path: str, params: Mapping[str, Any] | None, what: str) -> tuple[Any, requests.Response]:
        """One page of a list: its JSON body and the response (for Link and total headers)."""
        response = self._send("GET", path, what=what, params=params, reading=True)
        error = self._error(None, response, what, reading=True)
        if error is not None:
            raise error
        return _json_body(response, what), response

    def _error(self, spec: ObjectSpec | None, response: requests.Response, what: str,
               reading: bool = False) -> ConnectorError | None:
        """None for a success; else the interface error the manifest's answers (or HTTP) say it is."""
        status = response.status_code
        if 200 <= status < 300:
            return None
        body = _maybe_json(response)
        answers = spec.answers if spec is not None else Answers()
        detail = _detail(body, response)
        message = f"{what}: HTTP {status}" + (f": {detail}" if detail else "")
        if _matches(answers.not_found, status, body):
            return NotFound(self.context.redact(message))
        if not reading and _matches(answers.exists, status, body):
            return AlreadyExists(self.context.redact(message))
        if _matches(answers.retry, status, body):
            error: ConnectorError = RetryableError(self.context.redact(message))
        else:
            error = error_for(status, what, detail, retry_after=retry_after_seconds(response.headers.get("Retry-After")))
            if isinstance(error, AlreadyExists):  # a 409 the manifest's answers do not call "exists"
                error = ObjectError(str(error))
        if (reading and not isinstance(error, NotFound)) or isinstance(error, ConnectionFailed):
            stops = type(error) if isinstance(error, ConnectionFailed) else ConnectionFailed  # SystemUnavailable stays one
            return stops(self.context.redact(str(error)))
        return error

    # ---- templates --------------------------------------------------------------------------------

    def _path(self, call: Call, values: Mapping[str, Any]) -> str:
        try:
            return tpl.text(call.path, values, quote=True)
        except tpl.Missing as exc:
            raise ObjectError(f"{self._label()}: {call.method} {call.path} needs {{{exc.args[0]}}}, which has no "
                              "value") from None

    def _query(self, call: Call, values: Mapping[str, Any]) -> dict[str, Any]:
        return self._fill(call.query, values, f"{call.method} {call.path}: query")

    def _headers(self, call: Call, values: Mapping[str, Any]) -> dict[str, str]:
        return {k: str(v) for k, v in self._fill(call.headers, values, f"{call.method} {call.path}: headers").items()}

    def _fill(self, templates: Mapping[str, Any], values: Mapping[str, Any], where: str) -> dict[str, Any]:
        out = {}
        for key, value in templates.items():
            if isinstance(value, str):
                try:
                    value = tpl.text(value, values)
                except tpl.Missing as exc:
                    raise ObjectError(f"{self._label()}: {where} {key} needs {{{exc.args[0]}}}, which has no "
                                      "value") from None
            elif isinstance(value, bool):
                value = "true" if value else "false"
            out[key] = value
        return out


# ---- module helpers -------------------------------------------------------------------------------


def templates(raw: Mapping[str, Any]) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every template of a rest object block that mapped values fill, by where it is."""
    yield ("body",), raw.get("body")
    for kind in ("get", "create", "update", "delete", "disable", "add_member", "remove_member"):
        call = raw.get(kind)
        if isinstance(call, Mapping):
            for key in ("path", "query", "headers", "body"):
                yield (kind, key), call.get(key)
    correlate = raw.get("correlate")
    if isinstance(correlate, Mapping):
        yield ("correlate", "query"), correlate.get("query")


def _overlay(current: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """``current`` with ``changes`` laid over it: nested objects merged, a null removes the key."""
    out = copy.deepcopy(dict(current))
    for key, value in changes.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _overlay(out[key], value)
        else:
            out[key] = value
    return out


def _matches(rules: Sequence[Rule], status: int, body: Any) -> bool:
    for rule in rules:
        if rule.statuses and status not in rule.statuses:
            continue
        if rule.when is not None:
            try:
                if not search(rule.when, body):
                    continue
            except jmespath.exceptions.JMESPathError:
                continue
        return True
    return False


def _maybe_json(response: requests.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return None


def _json_body(response: requests.Response, what: str, empty_ok: bool = False) -> Any:
    """The answer's JSON; a clear message for an HTML page or other text (a proxy, a login page)."""
    if not response.content and empty_ok:
        return None
    try:
        return response.json()
    except ValueError:
        raise ConnectionFailed(f"{what}: HTTP {response.status_code} answered {_not_json(response)}, not JSON: "
                               "check url and the object's path") from None


def _not_json(response: requests.Response) -> str:
    text = response.text or ""
    kind = response.headers.get("Content-Type", "").split(";")[0] or "no content type"
    if "html" in kind or text.lstrip()[:15].lower().startswith(("<!doctype", "<html")):
        title = text.split("<title>", 1)[1].split("</title>", 1)[0].strip() if "<title>" in text else ""
        return f"an HTML page{f' ({title[:80]})' if title else ''}"
    return f"{kind} ({text.strip()[:80]!r})" if text.strip() else "an empty body"


def _detail(body: Any, response: requests.Response) -> str:
    """The API's own words about a failure: a message field where there is one."""
    if body is None:
        return _not_json(response) if response.content else ""
    if isinstance(body, Mapping):
        for key in ("message", "detail", "error_description", "error", "title", "errors"):
            value = body.get(key)
            if isinstance(value, Mapping):
                inner = value.get("message") or value.get("detail") or value.get("code")
                if inner:
                    return str(inner)[:300]
            elif value:
                return (value if isinstance(value, str) else json.dumps(value))[:300]
    return json.dumps(body)[:300]


def _id_from_location(location: str | None) -> str | None:
    return location.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1] if location else None
