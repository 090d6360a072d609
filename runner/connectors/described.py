"""An API described in the manifest, whatever carries it: the description's model and the flows it drives.

The rest and soap connectors differ in how a call travels (a method, a path and a JSON body; an
operation and its arguments in an envelope) and in how an answer says what happened (a status; a
fault code). Everything else is the same and lives here once:

* the description of each object type, with every default filled in (:class:`ObjectSpec`): its
  record template, where its id is, one :class:`Call` per operation, paging, delta, correlation,
  memberships as sub-resources, and the rules that say which answers mean "already exists",
  "not found" or "try again";
* the flows of :class:`DescribedApi`: what the connector declares, reading pages into records,
  lookups by a correlate call or a bounded scan, creates that never make a second record (an
  earlier attempt is looked up first), updates whose lists changed by values, member calls that
  succeed when already done, and validation of templates against what the mapping produces.

A subclass implements the transport: :meth:`DescribedApi._pages`, :meth:`DescribedApi._fetch`,
:meth:`DescribedApi._send_create`, :meth:`DescribedApi._send_update`,
:meth:`DescribedApi._send_delete` and :meth:`DescribedApi._send_member`.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import jmespath.exceptions

from runner import durations
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
    WatermarkExpired,
)
from runner.connectors.http import HttpClient, HttpSettings
from runner.connectors.jpath import search
from runner.connectors.paging import Paging

DEFAULT_MAX_SCAN = 100_000

# ---- the description --------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One call of an operation, its templates not yet filled in. ``path`` is where the call goes (a
    URL path, or a SOAP operation's name); ``body`` what it carries (a JSON body, or the operation's
    arguments)."""

    method: str
    path: str
    query: Mapping[str, Any] = field(default_factory=dict)
    headers: Mapping[str, Any] = field(default_factory=dict)
    body: Any = None
    record: str | None = None  # JMESPath: where the record (or, for list_members, the list) is in the answer
    read_first: bool = False
    values: str | None = None  # list_members: JMESPath to a member's id


@dataclass(frozen=True)
class Rule:
    """An answer that means something: by HTTP status and/or JMESPath over the body (rest), by fault
    code and/or a pattern on the fault string (soap)."""

    statuses: frozenset[int] = frozenset()
    when: str | None = None
    code: str | None = None
    message: str | None = None


@dataclass(frozen=True)
class Answers:
    exists: tuple[Rule, ...] = ()
    not_found: tuple[Rule, ...] = ()
    retry: tuple[Rule, ...] = ()


@dataclass(frozen=True)
class Delta:
    """Delta reads: a 'changed since' parameter (or argument), and the field of a record holding its change time."""

    param: str
    field: str
    overlap: float = 60.0


@dataclass(frozen=True)
class ObjectSpec:
    """One object type of the API, every default filled in."""

    name: str
    path: str
    id: str
    body: Any
    records: str | None
    list: Call
    get: Call
    create: Call
    update: Call
    delete: Call | None
    disable: Call | None
    add_member: Call | None
    remove_member: Call | None
    list_members: Call | None
    member_attribute: str | None
    paging: Paging
    delta: Delta | None
    correlate: Call | None
    idempotency_header: str | None
    answers: Answers
    normalizations: Mapping[str, tuple[str, ...]]
    max_scan: int

    @property
    def put(self) -> bool:
        return self.update.method == "PUT"

    @property
    def members(self) -> bool:
        """Memberships are changed through their own calls."""
        return bool(self.member_attribute and self.add_member and self.remove_member)


#: JSON Schema of the keys every described object has alike
OVERLAP_SCHEMA = {"oneOf": [{"type": "integer", "minimum": 0}, {"type": "string", "pattern": r"^\s*[0-9.]+\s*[smhdw]\s*$"}],
                  "description": "how far behind the newest change seen each delta read starts (default 60s)"}
NORMALIZATIONS_SCHEMA = {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}}
MAX_SCAN_SCHEMA = {"type": "integer", "minimum": 1, "default": DEFAULT_MAX_SCAN,
                   "description": "most records a lookup without correlate reads"}


def overlap_seconds(value: int | str | None) -> float:
    if value is None:
        return 60.0
    if isinstance(value, int | float):
        return float(value)
    found = durations.seconds(value)
    if found is None:
        raise ConfigurationError(f"delta.overlap {value!r}: write seconds, or a duration such as 30s, 5m")
    return found


def compile_problem(expression: str) -> str | None:
    try:
        jmespath.compile(expression)
    except jmespath.exceptions.JMESPathError as exc:
        reason = str(exc).splitlines()[0].removeprefix("Invalid jmespath expression: ").rstrip(": ")
        return f"{expression!r} is not a JMESPath expression ({reason})"
    return None


def expressions(spec: ObjectSpec) -> dict[tuple[str, ...], str]:
    """Every JMESPath expression of the object, by where it is in the block (to check they compile)."""
    found = {("id",): spec.id, ("records",): spec.records, ("paging", "next"): spec.paging.next,
             ("paging", "total"): spec.paging.total, ("delta", "field"): spec.delta.field if spec.delta else None,
             ("list_members", "values"): spec.list_members.values if spec.list_members else None}
    for kind in ("list", "get", "create", "update", "disable"):
        call = getattr(spec, kind)
        if call is not None:
            found[(kind, "record")] = call.record
    for kind in ("exists", "not_found", "retry"):
        for i, rule in enumerate(getattr(spec.answers, kind)):
            found[("answers", kind, str(i), "when")] = rule.when
    return {k: v for k, v in found.items() if v}


# ---- the flows ------------------------------------------------------------------------------------


class DescribedApi(Connector):
    """What a connector over an API described in the manifest does, whatever carries its calls.

    A subclass sets ``object_spec``: the function that reads one object's block (with the
    connector's block for its defaults) into an :class:`ObjectSpec`."""

    #: what a record is called in messages ("a JSON object", "a SOAP record")
    record_kind: str = "an object"
    object_spec: ClassVar[Callable[[str, Mapping[str, Any], Mapping[str, Any]], ObjectSpec]]

    def __init__(self, config: Mapping[str, Any], context: ConnectorContext):
        super().__init__(config, context)
        self.settings = HttpSettings.from_config(config, context.base_dir)
        self.concurrency = self.settings.concurrency
        try:
            self.specs: dict[str, ObjectSpec] = {
                name: type(self).object_spec(name, block or {}, config)
                for name, block in (config.get("objects") or {}).items()}
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigurationError(f"{self._label()}: {exc}") from None
        self.client: HttpClient | None = None
        self._allowed: dict[str, frozenset[str]] = {}  # object -> the operation kinds its description allows

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None

    # ---- transport: the subclass's part ---------------------------------------------------------

    def _pages(self, spec: ObjectSpec, call: Call, values: Mapping[str, Any], *, records: str | None,
               what: str, size: int | None = None, extra: Mapping[str, Any] | None = None,
               first_only: bool = False) -> Iterator[list[Any]]:
        """The raw records of each page of a list ``call`` (``extra``: more parameters, a delta's)."""
        raise NotImplementedError

    def _fetch(self, spec: ObjectSpec, anchor: str) -> dict[str, Any] | None:
        """The record as the API holds it, or None when it is not there."""
        raise NotImplementedError

    def _send_create(self, spec: ObjectSpec, op: Operation, values: Mapping[str, Any]) -> str:
        """Create the record; its anchor. Raises the interface's errors."""
        raise NotImplementedError

    def _send_update(self, spec: ObjectSpec, op: Operation, call: Call, values: Mapping[str, Any],
                     current: dict[str, Any] | None) -> None:
        raise NotImplementedError

    def _send_delete(self, spec: ObjectSpec, op: Operation) -> None:
        raise NotImplementedError

    def _send_member(self, spec: ObjectSpec, op: Operation, call: Call, context: Mapping[str, Any],
                     what: str) -> ConnectorError | None:
        """One add_member/remove_member call; the error its answer means, None for a success."""
        raise NotImplementedError

    def _templates(self, raw: Mapping[str, Any]) -> Iterator[tuple[tuple[str, ...], Any]]:
        """Every template of an object block that mapped values fill, by where it is."""
        raise NotImplementedError

    def _label(self) -> str:
        return f"{self.type_name} connector {self.context.name!r}"

    def _whole(self, spec: ObjectSpec) -> bool:
        """Whether an update must carry every mapped attribute (text built from several values)."""
        return tpl.composite(spec.update.body)

    # ---- facts --------------------------------------------------------------------------------

    def object_names(self) -> Sequence[str] | None:
        return list(self.specs)

    def capabilities(self, object: str | None = None) -> Capabilities:
        spec = self.specs.get(object or "")
        if spec is None:
            return Capabilities(operations=frozenset({"add", "update", "disable", "delete"}),
                                max_concurrency=self.concurrency, generated_anchor=True,
                                password_in_first_pass=False, multi_valued_deltas=False,
                                export_style="attributes")
        ops = {"add", "update", "disable"} | ({"delete"} if spec.delete else set())
        if self._takes_password(spec.update):
            ops.add("set_password")
        whole = self._whole(spec)
        return Capabilities(
            operations=frozenset(ops),
            delta_read=spec.delta is not None,
            max_concurrency=self.concurrency,
            generated_anchor=True,
            correlation=self._correlation(spec),
            normalizations=dict(spec.normalizations),
            export_style="whole_object" if whole else ("delta" if spec.members else "attributes"),
            multi_valued_deltas=spec.members and not whole,
            password_in_first_pass=self._takes_password(spec.create),
        )

    @staticmethod
    def _correlation(spec: ObjectSpec) -> tuple[str, ...]:
        if spec.correlate is None:
            return ()
        return tuple(a for a in dict.fromkeys([*tpl.fields(spec.correlate.query), *tpl.fields(spec.correlate.body)])
                     if a not in tpl.BUILT_IN)

    @staticmethod
    def _takes_password(call: Call) -> bool:
        """Whether the call's body places ``{password}`` (a password is sent nowhere else)."""
        return "password" in set(tpl.fields(call.body))

    def _spec_problems(self) -> list[tuple[tuple[str | int, ...], str]]:
        """JMESPath that does not compile, paging that cannot work, member calls that come apart."""
        problems: list[tuple[tuple[str | int, ...], str]] = []
        for name, spec in self.specs.items():
            at = ("objects", name)
            for where, expression in expressions(spec).items():
                problem = compile_problem(expression)
                if problem:
                    problems.append(((*at, *where), problem))
            if spec.paging.style == "cursor" and not spec.paging.next:
                own = "paging" in ((self.config.get("objects") or {}).get(name) or {})
                problems.append(((*at, "paging") if own else ("paging",),
                                 "paging style cursor needs next: where the next page's token is in the answer "
                                 "(a JMESPath such as meta.next_cursor)"))
            if bool(spec.add_member) != bool(spec.remove_member) or (spec.add_member and not spec.member_attribute):
                problems.append((at, "membership calls need add_member, remove_member and member_attribute (the "
                                     "attribute they manage) together"))
        return problems

    def template_problems(self, object: str, produced: Collection[str]) -> list[tuple[tuple[str | int, ...], str]]:
        """Placeholders of the object's templates that name no attribute the mapping produces."""
        if object not in self.specs:
            return []
        raw = (self.config.get("objects") or {}).get(object) or {}
        known = set(produced) | tpl.BUILT_IN | {"password"}
        problems = []
        for where, part in self._templates(raw):
            for name in dict.fromkeys(tpl.fields(part)):
                if name not in known:
                    close = difflib.get_close_matches(name, sorted(produced), n=1)
                    hint = f"; did you mean {{{close[0]}}}?" if close else ""
                    problems.append((("objects", object, *where),
                                     f"the template names {{{name}}}, which no mapping to {object!r} produces{hint} "
                                     f"(mapped: {', '.join(sorted(produced)) or 'nothing'})"))
        return problems

    # ---- reading ------------------------------------------------------------------------------

    def read(self, object: str, partition: str | None = None, watermark: str | None = None, *,
             attributes: Sequence[str] | None = None, page_size: int | None = None) -> Iterator[Page]:
        spec = self._spec(object, ConnectionFailed)
        extra: dict[str, Any] = {}
        newest: Any = None
        if spec.delta is not None and watermark is not None:
            extra[spec.delta.param] = since(watermark, spec.delta.overlap, self._label())
            newest = json.loads(watermark)
        pending: list[Record] = []
        for raw in self._pages(spec, spec.list, {}, records=spec.records, what=f"{self._label()}: list {object}",
                               size=page_size, extra=extra):
            records = [self._record(spec, r) for r in raw]
            if spec.delta is not None:
                for r in raw:
                    stamp = search(spec.delta.field, r)
                    if stamp is not None and (newest is None or _later(stamp, newest)):
                        newest = stamp
            if pending:
                yield Page(pending)
            pending = records
        mark = json.dumps(newest, default=str) if spec.delta is not None and newest is not None else None
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
        if spec.correlate is not None and set(self._correlation(spec)) <= set(values):
            found = self._matching(spec, values, self._pages(spec, spec.correlate, values, records=spec.records,
                                                             what=what))
            folded = any("case_insensitive" in self._folding(spec, k) for k in values)
            if found or not folded:
                return found
            # the API may search case-sensitively what it holds case-insensitively: compare the list
        pages = self._pages(spec, spec.list, {}, records=spec.records, what=what)
        return self._matching(spec, values, pages, limit=spec.max_scan, what=what)

    def _matching(self, spec: ObjectSpec, values: Mapping[str, Any], pages: Iterable[list[Any]],
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
                                       f"(a call that finds one {spec.name} by its values) or raise max_scan")
        return found

    def discover(self) -> Sequence[ObjectInfo]:
        """Per object, the fields one page of its list returns, with the type each sample has."""
        out = []
        for name, spec in self.specs.items():
            sample: dict[str, set[str]] = {}
            multi: set[str] = set()
            for raw in self._pages(spec, spec.list, {}, records=spec.records, what=f"{self._label()}: list {name}",
                                   size=20, first_only=True):
                for r in raw:
                    for field_name, value in (tpl.flatten(r) if isinstance(r, Mapping) else {}).items():
                        sample.setdefault(field_name, set()).add(type_name(value))
                        if isinstance(value, list):
                            multi.add(field_name)
            mapped = tpl.paths(spec.body)
            attributes = []
            for field_name in sorted(sample):
                kinds = sorted(sample[field_name] - {"null"}) or ["null"]
                attribute = mapped.get(field_name)
                note = f"API field {field_name}" + (f", mapped as {attribute}" if attribute and attribute != field_name
                                                    else "")
                attributes.append(AttributeInfo(attribute or field_name, type="/".join(kinds),
                                                multi_valued=field_name in multi, syntax="/".join(kinds),
                                                description=note))
            where = spec.path or spec.list.path
            out.append(ObjectInfo(name, attributes, description=f"{where} ({len(sample)} fields seen)"))
        return out

    def _record(self, spec: ObjectSpec, raw: Any) -> Record:
        if not isinstance(raw, Mapping):
            raise ConnectionFailed(f"{self._label()}: a {spec.name} record is not {self.record_kind}: {str(raw)[:80]}")
        anchor = search(spec.id, raw)
        attributes = tpl.extract(spec.body, raw)
        if spec.list_members is not None and spec.member_attribute and anchor is not None:
            attributes[spec.member_attribute] = self._members(spec, str(anchor))
        return Record(attributes, anchor=None if anchor is None else str(anchor),
                      location=f"{spec.path or spec.name}/{anchor}")

    def _members(self, spec: ObjectSpec, anchor: str) -> list[str]:
        call = spec.list_members
        assert call is not None
        out: list[str] = []
        for raw in self._pages(spec, call, {"id": anchor}, records=call.record,
                               what=f"{self._label()}: members of {spec.name} {anchor}"):
            for item in raw:
                value = search(call.values, item) if call.values else item
                if value is not None:
                    out.append(str(value))
        return out

    @staticmethod
    def _folding(spec: ObjectSpec, name: str) -> tuple[str, ...]:
        return spec.normalizations.get(name, spec.normalizations.get("*", ()))

    def _same(self, spec: ObjectSpec, name: str, a: Any, b: Any) -> bool:
        if isinstance(a, str) and isinstance(b, str):
            return a.casefold() == b.casefold() if "case_insensitive" in self._folding(spec, name) else a == b
        return a == b or (a is not None and b is not None and str(a) == str(b))

    # ---- writing ------------------------------------------------------------------------------

    def apply(self, operations: Sequence[Operation]) -> Iterable[Result]:
        """Each operation by its ``op_<kind>``; a kind the object's description does not allow
        (a delete where ``delete: false``, a password where no template places one) is refused."""
        allowed = self._allowed  # the description does not change: asked once per object, not per call
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
        values = dict(op.attributes)
        if op.password is not None and self._takes_password(spec.create):
            values["password"] = op.password
        members = values.pop(spec.member_attribute, None) if spec.members and spec.member_attribute else None
        if op.attempt > 1:  # an earlier attempt may have landed (its answer lost): never make a second record
            self._adopt_if_there(spec, op, values)
        anchor = self._send_create(spec, op, values)
        if members:
            added = self._change_members(spec, op, anchor, list(members), [])
            if added is not None:
                return Result(op.id, True, anchor, stored={spec.member_attribute: added})  # type: ignore[dict-item]
        return Result(op.id, True, anchor)

    def op_update(self, op: Operation) -> Result:
        return self._modify(op, None)

    def op_disable(self, op: Operation) -> Result:
        return self._modify(op, self._spec(op.object).disable)

    def op_set_password(self, op: Operation) -> Result:
        if op.password is None:
            raise ObjectError(f"{self._what(op)}: set_password without a password")
        return self._modify(op, None, extra={"password": op.password})

    def op_delete(self, op: Operation) -> Result:
        spec = self._spec(op.object)
        if spec.delete is None:
            raise ObjectError(f"{self._what(op)}: the manifest says this API's {op.object} are not deleted")
        self._send_delete(spec, op)
        return Result(op.id, True, op.anchor)

    def _modify(self, op: Operation, special: Call | None, extra: Mapping[str, Any] | None = None) -> Result:
        spec = self._spec(op.object)
        if op.anchor is None:
            raise NotFound(f"{self._what(op)}: no anchor")
        values = {**op.attributes, **(extra or {})}
        adds = {k: list(v) for k, v in op.add_values.items()}
        removes = {k: list(v) for k, v in op.remove_values.items()}
        member = spec.member_attribute if spec.members else None
        member_adds, member_removes = adds.pop(member or "", []), removes.pop(member or "", [])
        if member and member in values:  # a whole list: what changes against what the API holds
            wanted = [str(v) for v in values.pop(member) or []]
            held = self._held_members(spec, op.anchor)
            member_adds += [v for v in wanted if v not in held]
            member_removes += [v for v in held if v not in wanted]
        current: dict[str, Any] | None = None
        if adds or removes:  # other lists changed by values: the whole list, from what the API holds
            current = self._fetch(spec, op.anchor)
            if current is None:
                raise NotFound(f"{self._what(op)}: the record is gone")
            held_values = tpl.extract(spec.body, current)
            for name in set(adds) | set(removes):
                now = [v for v in held_values.get(name) or [] if v not in removes.get(name, [])]
                values[name] = now + [v for v in adds.get(name, []) if v not in now]
        if values or special is not None:
            self._send_update(spec, op, special or spec.update, values, current)
        if member_adds or member_removes:
            self._change_members(spec, op, op.anchor, member_adds, member_removes)
        return Result(op.id, True, op.anchor)

    def _held_members(self, spec: ObjectSpec, anchor: str) -> list[str]:
        """The members the API holds: by their own list call, else from the record."""
        if spec.list_members is not None:
            return self._members(spec, anchor)
        current = self._fetch(spec, anchor)
        held = tpl.extract(spec.body, current).get(spec.member_attribute or "") if current else None
        return [str(v) for v in held or []]

    def _change_members(self, spec: ObjectSpec, op: Operation, anchor: str, add: list[Any],
                        remove: list[Any]) -> list[str] | None:
        """Members through their own calls, one each. An add of a member already there and a remove
        of one already gone succeed. Returns None when every call succeeded; on a create whose member
        call failed, the members that were added (the state records what the API holds, and the
        next run adds the rest); otherwise a failed call raises."""
        done: list[str] = []
        for kind, members in (("add_member", add), ("remove_member", remove)):
            call: Call = getattr(spec, kind)
            for member in members:
                what = f"{self._what(op)}: {kind} {member}"
                error = self._send_member(spec, op, call, {"id": anchor, "member": str(member)}, what)
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

    def _adopt_if_there(self, spec: ObjectSpec, op: Operation, values: Mapping[str, Any], lost: bool = False) -> None:
        """Raise AlreadyExists when the record this add makes is there already (the engine adopts it)."""
        correlation = self._correlation(spec)
        if not correlation or any(values.get(a) is None for a in correlation):
            return
        if self.lookup(op.object, {a: values[a] for a in correlation}):
            why = "the add reached the API before the connection broke" if lost else "an earlier attempt of this add"
            raise AlreadyExists(f"{self._what(op)}: a record with "
                                f"{', '.join(f'{a}={values[a]!r}' for a in correlation)} is there already ({why})")

    # ---- small helpers ------------------------------------------------------------------------

    def _spec(self, object: str, fail: type[ConnectorError] = ObjectError) -> ObjectSpec:
        spec = self.specs.get(object)
        if spec is None:
            raise fail(f"{self._label()}: no object {object!r} is described; described: {', '.join(self.specs)}")
        return spec

    def _what(self, op: Operation) -> str:
        who = op.anchor or op.source_anchor or "new record"
        return f"{self._label()}: {op.kind} {op.object} {who}"


# ---- module helpers -------------------------------------------------------------------------------


def type_name(value: Any) -> str:
    """A JSON type's name for a value (discover)."""
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


def since(watermark: str, overlap: float, label: str) -> Any:
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
