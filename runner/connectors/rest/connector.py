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
import difflib
import json
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from typing import Any

import jmespath
import requests

from runner import durations
from runner.connectors import paging
from runner.connectors import template as tpl
from runner.connectors.base import (
    AlreadyExists,
    AttributeInfo,
    Capabilities,
    ConfigurationError,
    ConnectionFailed,
    Connector,
    ConnectorContext,
    ConnectorError,
    NotFound,
    ObjectError,
    ObjectInfo,
    Operation,
    Page,
    Record,
    Result,
    RetryableError,
    WatermarkExpired,
)
from runner.connectors.http import (
    HttpClient,
    HttpSettings,
    RequestLost,
    check_settings,
    error_for,
    retry_after_seconds,
)
from runner.connectors.jpath import search
from runner.connectors.rest import config as cfg


class RestConnector(Connector):
    """A JSON API over HTTP, described in the manifest (collections, calls, paging, answers), as target or source."""

    type_name = "rest"
    interface_version = 2
    config_schema = cfg.CONFIG_SCHEMA

    def __init__(self, config: Mapping[str, Any], context: ConnectorContext):
        super().__init__(config, context)
        self.settings = HttpSettings.from_config(config, context.base_dir)
        try:
            self.specs = {name: cfg.object_spec(name, block or {}, config)
                          for name, block in (config.get("objects") or {}).items()}
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigurationError(f"{self._label()}: {exc}") from None
        self.client: HttpClient | None = None

    # ---- facts --------------------------------------------------------------------------------

    def object_names(self) -> Sequence[str] | None:
        return list(self.specs)

    def capabilities(self, object: str | None = None) -> Capabilities:
        spec = self.specs.get(object or "")
        if spec is None:
            return Capabilities(operations=frozenset({"add", "update", "disable", "delete"}),
                                max_concurrency=self.settings.concurrency, generated_anchor=True,
                                password_in_first_pass=False, multi_valued_deltas=False,
                                export_style="attributes")
        ops = {"add", "update", "disable"} | ({"delete"} if spec.delete else set())
        if self._takes_password(spec, spec.update):
            ops.add("set_password")
        members = bool(spec.member_attribute and spec.add_member and spec.remove_member)
        whole = (spec.put and not spec.update.read_first) or tpl.composite(spec.update.body)
        return Capabilities(
            operations=frozenset(ops),
            delta_read=spec.delta is not None,
            max_concurrency=self.settings.concurrency,
            generated_anchor=True,
            correlation=tuple(dict.fromkeys(tpl.fields(spec.correlate.query))) if spec.correlate else (),
            normalizations=dict(spec.normalizations),
            export_style="whole_object" if whole else ("delta" if members else "attributes"),
            multi_valued_deltas=members and not whole,
            password_in_first_pass=self._takes_password(spec, spec.create),
        )

    @staticmethod
    def _takes_password(spec: cfg.ObjectSpec, call: cfg.Call) -> bool:
        """Whether the call's body places ``{password}`` (a password is sent nowhere else)."""
        return "password" in set(tpl.fields(call.body))

    def check(self) -> list[tuple[tuple[str | int, ...], str]]:
        problems = list(check_settings(self.config, self.context.base_dir))
        for name, spec in self.specs.items():
            at = ("objects", name)
            for where, expression in cfg.expressions(spec).items():
                problem = cfg.compile_problem(expression)
                if problem:
                    problems.append(((*at, *where), problem))
            if spec.paging.style == "cursor" and not spec.paging.next:
                own = "paging" in ((self.config.get("objects") or {}).get(name) or {})
                problems.append(((*at, "paging") if own else ("paging",),
                                 "paging style cursor needs next: where the next page's token is in the answer "
                                 "(a JMESPath such as meta.next_cursor)"))
            if bool(spec.add_member) != bool(spec.remove_member) or (spec.add_member and not spec.member_attribute):
                problems.append((at, "membership sub-resources need add_member, remove_member and "
                                     "member_attribute (the attribute they manage) together"))
        return problems

    def template_problems(self, object: str, produced: Collection[str]) -> list[tuple[tuple[str | int, ...], str]]:
        """Placeholders of the object's templates that name no attribute the mapping produces."""
        spec = self.specs.get(object)
        if spec is None:
            return []
        raw = (self.config.get("objects") or {}).get(object) or {}
        known = set(produced) | tpl.BUILT_IN | {"password"}
        problems = []
        for where, part in _templates(raw):
            for name in dict.fromkeys(tpl.fields(part)):
                if name not in known:
                    close = difflib.get_close_matches(name, sorted(produced), n=1)
                    hint = f"; did you mean {{{close[0]}}}?" if close else ""
                    problems.append((("objects", object, *where),
                                     f"the template names {{{name}}}, which no mapping to {object!r} produces{hint} "
                                     f"(mapped: {', '.join(sorted(produced)) or 'nothing'})"))
        return problems

    # ---- lifecycle ----------------------------------------------------------------------------

    def open(self) -> None:
        if not self.settings.base_url:
            raise ConfigurationError(f"{self._label()}: url is required")
        self.client = HttpClient(self.settings, label=self._label(), logger=self.context.logger,
                                 user_agent="provision-rest")

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None

    def ping(self) -> None:
        if self.client is None:
            raise ConnectionFailed(f"{self._label()}: not open")

    def identity(self) -> Mapping[str, Any]:
        return {"service": self.settings.base_url}

    # ---- reading ------------------------------------------------------------------------------

    def read(self, object: str, partition: str | None = None, watermark: str | None = None, *,
             attributes: Sequence[str] | None = None, page_size: int | None = None) -> Iterator[Page]:
        spec = self._spec(object, ConnectionFailed)
        params = self._query(spec.list, {})
        newest: Any = None
        if spec.delta is not None and watermark is not None:
            since = _since(watermark, spec.delta.overlap, self._label())
            params[spec.delta.param] = since
            newest = json.loads(watermark)
        pending: list[Record] = []
        for raw in paging.pages(self._get_json, spec.list.path, params, spec.paging, spec.records,
                                page_size or spec.paging.size, what=f"{self._label()}: list {object}"):
            records = [self._record(spec, r) for r in raw]
            if spec.delta is not None:
                for r in raw:
                    stamp = search(spec.delta.field, r)
                    if stamp is not None and (newest is None or _later(stamp, newest)):
                        newest = stamp
            if pending:
                yield Page(pending)
            pending = records
        mark = json.dumps(newest) if spec.delta is not None and newest is not None else None
        yield Page(pending, watermark=mark)

    def get(self, object: str, anchor: str | None = None, *, name: str | None = None,
            partition: str | None = None) -> Record | None:
        if anchor is None:
            return None
        spec = self._spec(object, ConnectionFailed)
        raw = self._fetch(spec, anchor)
        return None if raw is None else self._record(spec, raw)

    def lookup(self, object: str, values: Mapping[str, Any], *, partition: str | None = None) -> list[Record]:
        spec = self._spec(object, ConnectionFailed)
        if not values:
            return []
        what = f"{self._label()}: look up {object}"
        if spec.correlate is not None and set(tpl.fields(spec.correlate.query)) <= set(values):
            params = self._query(spec.correlate, values)
            found = self._matching(spec, values, paging.pages(
                self._get_json, spec.correlate.path, params, spec.paging, spec.records, spec.paging.size, what=what))
            folded = any("case_insensitive" in self._folding(spec, k) for k in values)
            if found or not folded:
                return found
            # the API may filter case-sensitively what it holds case-insensitively: compare the list
        pages = paging.pages(self._get_json, spec.list.path, self._query(spec.list, {}), spec.paging,
                             spec.records, spec.paging.size, what=what)
        return self._matching(spec, values, pages, limit=spec.max_scan, what=what)

    def _matching(self, spec: cfg.ObjectSpec, values: Mapping[str, Any], pages: Iterator[list[Any]],
                  limit: int | None = None, what: str = "") -> list[Record]:
        """The records of ``pages`` whose values equal ``values`` (as the API compares them)."""
        found, seen = [], 0
        for raw in pages:
            for r in raw:
                record = self._record(spec, r)
                if all(self._same(spec, k, record.attributes.get(k), v) for k, v in values.items()):
                    found.append(record)
            seen += len(raw)
            if limit is not None and seen >= limit:
                raise ConnectionFailed(f"{what}: more than max_scan={limit} records to compare; declare correlate "
                                       f"(a query that finds one {spec.name} by its values) or raise max_scan")
        return found

    def discover(self) -> Sequence[ObjectInfo]:
        """Per object, the fields one page of its list returns, with the type each sample has."""
        out = []
        for name, spec in self.specs.items():
            sample: dict[str, set[str]] = {}
            multi: set[str] = set()
            for raw in paging.pages(self._get_json, spec.list.path, self._query(spec.list, {}), spec.paging,
                                    spec.records, 20, what=f"{self._label()}: list {name}", first_only=True):
                for r in raw:
                    for field, value in (tpl.flatten(r) if isinstance(r, Mapping) else {}).items():
                        sample.setdefault(field, set()).add(_type_name(value))
                        if isinstance(value, list):
                            multi.add(field)
            mapped = tpl.paths(spec.body)
            attributes = []
            for field in sorted(sample):
                kinds = sorted(sample[field] - {"null"}) or ["null"]
                attribute = mapped.get(field)
                note = f"API field {field}" + (f", mapped as {attribute}" if attribute and attribute != field else "")
                attributes.append(AttributeInfo(attribute or field, type="/".join(kinds), multi_valued=field in multi,
                                                syntax="/".join(kinds), description=note))
            out.append(ObjectInfo(name, attributes, description=f"{spec.path} ({len(sample)} fields seen)"))
        return out

    def server_info(self) -> Mapping[str, Any]:
        def described(s: cfg.ObjectSpec) -> str:
            facts = [s.path, f"paging {s.paging.style}", f"update by {s.update.method}"]
            facts += ["delta"] if s.delta else []
            facts += [f"correlate by {', '.join(dict.fromkeys(tpl.fields(s.correlate.query)))}"] if s.correlate else []
            facts += [f"idempotency key in {s.idempotency_header}"] if s.idempotency_header else []
            facts += [f"members of {s.member_attribute} as sub-resources"] if s.add_member else []
            return ", ".join(facts)
        return {"url": self.settings.base_url, **{f"object {n}": described(s) for n, s in self.specs.items()}}

    def _record(self, spec: cfg.ObjectSpec, raw: Any) -> Record:
        if not isinstance(raw, Mapping):
            raise ConnectionFailed(f"{self._label()}: a {spec.name} record is not a JSON object: {str(raw)[:80]}")
        anchor = search(spec.id, raw)
        attributes = tpl.extract(spec.body, raw)
        if spec.list_members is not None and spec.member_attribute and anchor is not None:
            attributes[spec.member_attribute] = self._members(spec, str(anchor))
        return Record(attributes, anchor=None if anchor is None else str(anchor),
                      location=f"{spec.path}/{anchor}")

    def _members(self, spec: cfg.ObjectSpec, anchor: str) -> list[str]:
        call = spec.list_members
        assert call is not None
        path = self._path(call, {"id": anchor})
        out: list[str] = []
        for raw in paging.pages(self._get_json, path, self._query(call, {"id": anchor}), spec.paging, call.record,
                                spec.paging.size, what=f"{self._label()}: members of {spec.name} {anchor}"):
            for item in raw:
                value = search(call.values, item) if call.values else item
                if value is not None:
                    out.append(str(value))
        return out

    def _fetch(self, spec: cfg.ObjectSpec, anchor: str) -> dict[str, Any] | None:
        """The record as the API holds it, or None when it is not there."""
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

    @staticmethod
    def _folding(spec: cfg.ObjectSpec, name: str) -> tuple[str, ...]:
        return spec.normalizations.get(name, spec.normalizations.get("*", ()))

    def _same(self, spec: cfg.ObjectSpec, name: str, a: Any, b: Any) -> bool:
        if isinstance(a, str) and isinstance(b, str):
            return a.casefold() == b.casefold() if "case_insensitive" in self._folding(spec, name) else a == b
        return a == b or (a is not None and b is not None and str(a) == str(b))

    # ---- writing ------------------------------------------------------------------------------

    def apply(self, operations: Sequence[Operation]) -> Iterable[Result]:
        """Each operation by its ``op_<kind>``; a kind the object's description does not allow
        (a delete where ``delete: false``, a password where no template places one) is refused."""
        allowed: dict[str, frozenset[str]] = {}
        for op in operations:
            if op.object not in allowed:
                allowed[op.object] = self.capabilities(op.object).operations if op.object in self.specs else frozenset()
            if op.kind not in allowed[op.object]:
                yield Result.failed(op, ObjectError(f"{self._what(op)}: the manifest's description of "
                                                    f"{op.object!r} allows no {op.kind}"))
                continue
            yield from super().apply([op])

    def op_add(self, op: Operation) -> Result:
        spec = self._spec(op.object)
        what = self._what(op)
        values = dict(op.attributes)
        if op.password is not None and self._takes_password(spec, spec.create):
            values["password"] = op.password
        members = values.pop(spec.member_attribute, None) if spec.add_member and spec.member_attribute else None
        if op.attempt > 1:  # an earlier attempt may have landed (its answer lost): never make a second record
            self._adopt_if_there(spec, op, values, what)
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
                self._adopt_if_there(spec, op, values, what, lost=True)
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
        anchor = str(anchor)
        if members:
            added = self._change_members(spec, op, anchor, list(members), [])
            if added is not None:
                return Result(op.id, True, anchor, stored={spec.member_attribute: added})  # type: ignore[dict-item]
        return Result(op.id, True, anchor)

    def op_update(self, op: Operation) -> Result:
        return self._modify(op, spec_call=None)

    def op_disable(self, op: Operation) -> Result:
        spec = self._spec(op.object)
        return self._modify(op, spec_call=spec.disable)

    def op_set_password(self, op: Operation) -> Result:
        if op.password is None:
            raise ObjectError(f"{self._what(op)}: set_password without a password")
        return self._modify(op, spec_call=None, extra={"password": op.password})

    def op_delete(self, op: Operation) -> Result:
        spec = self._spec(op.object)
        if spec.delete is None:
            raise ObjectError(f"{self._what(op)}: the manifest says this API's {op.object} are not deleted")
        values = {"id": op.anchor, **op.attributes}
        path = self._path(spec.delete, values)
        response = self._send(spec.delete.method, path, what=self._what(op), params=self._query(spec.delete, values),
                              headers=self._headers(spec.delete, values))
        error = self._error(spec, response, self._what(op))
        if error is not None:
            raise error
        return Result(op.id, True, op.anchor)

    def _modify(self, op: Operation, spec_call: cfg.Call | None, extra: Mapping[str, Any] | None = None) -> Result:
        spec = self._spec(op.object)
        what = self._what(op)
        if op.anchor is None:
            raise NotFound(f"{what}: no anchor")
        values = {**op.attributes, **(extra or {})}
        adds = {k: list(v) for k, v in op.add_values.items()}
        removes = {k: list(v) for k, v in op.remove_values.items()}
        member = spec.member_attribute if spec.add_member else None
        member_adds, member_removes = adds.pop(member or "", []), removes.pop(member or "", [])
        if member and member in values:  # a whole list: what changes against what the API holds
            wanted = [str(v) for v in values.pop(member) or []]
            held = self._members(spec, op.anchor) if spec.list_members else []
            member_adds += [v for v in wanted if v not in held]
            member_removes += [v for v in held if v not in wanted]
        current: dict[str, Any] | None = None
        if adds or removes:  # other lists changed by values: the whole list, from what the API holds
            current = self._fetch(spec, op.anchor)
            if current is None:
                raise NotFound(f"{what}: the record is gone")
            held_values = tpl.extract(spec.body, current)
            for name in set(adds) | set(removes):
                now = [v for v in held_values.get(name) or [] if v not in removes.get(name, [])]
                values[name] = now + [v for v in adds.get(name, []) if v not in now]
        call = spec_call or spec.update
        if values:
            self._send_update(spec, op, call, values, current)
        elif spec_call is not None:
            self._send_update(spec, op, call, {}, current)
        if member_adds or member_removes:
            changed = self._change_members(spec, op, op.anchor, member_adds, member_removes)
            if changed is not None and spec.list_members is not None:
                return Result(op.id, True, op.anchor,
                              stored={member: self._members(spec, op.anchor)})  # type: ignore[dict-item]
        return Result(op.id, True, op.anchor)

    def _send_update(self, spec: cfg.ObjectSpec, op: Operation, call: cfg.Call, values: Mapping[str, Any],
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

    def _change_members(self, spec: cfg.ObjectSpec, op: Operation, anchor: str, add: list[Any],
                        remove: list[Any]) -> list[str] | None:
        """Members through their sub-resources, one call each. An add of a member already there and a
        remove of one already gone succeed. Returns None when every call succeeded, else the members
        that were added (an add) so the state records what the API holds; raises on a remove that failed."""
        done: list[str] = []
        for kind, members in (("add_member", add), ("remove_member", remove)):
            call: cfg.Call = getattr(spec, kind)
            for member in members:
                context = {"id": anchor, "member": str(member)}
                path = self._path(call, context)
                what = f"{self._what(op)}: {kind} {member}"
                response = self._send(call.method, path, what=what, params=self._query(call, context),
                                      headers=self._headers(call, context),
                                      json=tpl.render(call.body, context) if call.body is not None else None)
                error = self._error(spec, response, what)
                if error is None or (kind == "add_member" and isinstance(error, AlreadyExists)) or \
                        (kind == "remove_member" and isinstance(error, NotFound)):
                    if kind == "add_member":
                        done.append(str(member))
                    continue
                if op.kind == "add" and not isinstance(error, ConnectionFailed):
                    self.context.logger.warning("%s", error)
                    return done
                raise error
        return None

    def _adopt_if_there(self, spec: cfg.ObjectSpec, op: Operation, values: Mapping[str, Any], what: str,
                        lost: bool = False) -> None:
        """Raise AlreadyExists when the record this add makes is there already (the engine adopts it)."""
        correlation = self.capabilities(op.object).correlation
        if not correlation or any(values.get(a) is None for a in correlation):
            return
        if self.lookup(op.object, {a: values[a] for a in correlation}):
            why = "the add reached the API before the connection broke" if lost else \
                "an earlier attempt of this add"
            raise AlreadyExists(f"{what}: a record with {', '.join(f'{a}={values[a]!r}' for a in correlation)} "
                                f"is there already ({why})")

    # ---- HTTP -----------------------------------------------------------------------------------

    def _send(self, method: str, path: str, *, what: str, json: Any = None, params: Mapping[str, Any] | None = None,
              headers: Mapping[str, str] | None = None, reading: bool = False) -> requests.Response:
        if self.client is None:
            raise ConnectionFailed(f"{self._label()}: not open")
        wire = {"Accept": "application/json", **(headers or {})}
        try:
            return self.client.request(method, path, json=json, params=params or None, headers=wire)
        except RequestLost:
            raise
        except RetryableError as exc:
            if reading:
                raise ConnectionFailed(self.context.redact(str(exc))) from None
            raise

    def _get_json(self, path: str, params: Mapping[str, Any] | None, what: str) -> tuple[Any, requests.Response]:
        """One page of a list: its JSON body and the response (for Link and total headers)."""
        response = self._send("GET", path, what=what, params=params, reading=True)
        error = self._error(None, response, what, reading=True)
        if error is not None:
            raise error
        return _json_body(response, what), response

    def _error(self, spec: cfg.ObjectSpec | None, response: requests.Response, what: str,
               reading: bool = False) -> ConnectorError | None:
        """None for a success; else the interface error the manifest's answers (or HTTP) say it is."""
        status = response.status_code
        if 200 <= status < 300:
            return None
        body = _maybe_json(response)
        answers = spec.answers if spec is not None else cfg.Answers()
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
        if reading and not isinstance(error, NotFound):
            return ConnectionFailed(self.context.redact(str(error)))
        if isinstance(error, ConnectionFailed):
            return ConnectionFailed(self.context.redact(str(error)))
        return error

    # ---- templates --------------------------------------------------------------------------------

    def _path(self, call: cfg.Call, values: Mapping[str, Any]) -> str:
        try:
            return tpl.text(call.path, values, quote=True)
        except tpl.Missing as exc:
            raise ObjectError(f"{self._label()}: {call.method} {call.path} needs {{{exc.args[0]}}}, which has no "
                              "value") from None

    def _query(self, call: cfg.Call, values: Mapping[str, Any]) -> dict[str, Any]:
        return self._fill(call.query, values, f"{call.method} {call.path}: query")

    def _headers(self, call: cfg.Call, values: Mapping[str, Any]) -> dict[str, str]:
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

    # ---- small helpers ------------------------------------------------------------------------

    def _spec(self, object: str, fail: type[ConnectorError] = ObjectError) -> cfg.ObjectSpec:
        spec = self.specs.get(object)
        if spec is None:
            raise fail(f"{self._label()}: no object {object!r} is described; described: {', '.join(self.specs)}")
        return spec

    def _label(self) -> str:
        return f"rest connector {self.context.name!r}"

    def _what(self, op: Operation) -> str:
        who = op.anchor or op.source_anchor or "new record"
        return f"{self._label()}: {op.kind} {op.object} {who}"


# ---- module helpers -------------------------------------------------------------------------------


def _templates(raw: Mapping[str, Any]) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every template of an object block that mapped values fill, by where it is."""
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


def _matches(rules: Sequence[cfg.Rule], status: int, body: Any) -> bool:
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


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, list):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return "string"


def _later(a: Any, b: Any) -> bool:
    try:
        return a > b
    except TypeError:
        return str(a) > str(b)


def _since(watermark: str, overlap: float, label: str) -> Any:
    """Where a delta read starts: ``overlap`` behind the newest change time the last read saw."""
    try:
        value = json.loads(watermark)
    except ValueError:
        raise WatermarkExpired(f"{label}: {watermark!r} is not a watermark this connector returned") from None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value - overlap
    if not isinstance(value, str):
        raise WatermarkExpired(f"{label}: {watermark!r} is not a watermark this connector returned")
    if not overlap:
        return value
    try:
        return durations.earlier_iso(value, overlap)
    except ValueError:
        raise WatermarkExpired(f"{label}: the watermark {value!r} is not an ISO 8601 time: reading everything") \
            from None
