"""The contract suite's machinery: what a connector's harness declares, and a driver the tests use.

A :class:`Harness` says how to build one connector against a real system in a temporary folder
(or a server a fixture starts), what a sample object of it looks like, and how names look. The
suite asks the connector itself what it can do (its :class:`Capabilities` for the object the
tests use, and which of ``read``, ``get``, ``lookup``, ``ping`` it implements:
``Connector.can``), and generates for it only the tests of what it declares: a connector that
lacks a capability gets no test for it, rather than a skipped one.

Test functions state what they need with the ``contract`` marker::

    @pytest.mark.contract(ops=("add", "update"), read=True, can="get", caps=("multi_valued_deltas",),
                          needs=("multi",))

* ``ops``: operation kinds the connector must list in ``Capabilities.operations``;
* ``read``: the connector implements ``read`` (the same as ``can="read"``);
* ``can``: methods the connector implements (``get``, ``lookup``, ``ping``);
* ``caps``: Capabilities fields that must be true (``!field``: false; a tuple such as
  ``correlation`` is true when not empty); ``concurrent`` means ``max_concurrency > 1``;
* ``needs``: harness fields that must be set (``multi``, ``container``, ``other_partition``,
  ``break_source``, ``verify_password``, ``page_size``, ``drop_connections``).

Markers on the module and on the function add up.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from functools import cached_property
from pathlib import Path
from typing import Any, NamedTuple

from runner.connectors.base import Capabilities, Connector, Operation, Page, Record, Result

# A place that does not exist: harnesses build (never open) a connector there to ask what it declares.
PROBE_DIR = Path("/nonexistent/provision-contract-probe")


class Made(NamedTuple):
    """What a harness factory returns: an unopened connector, the object the tests use, its partition."""

    connector: Connector
    object: str
    partition: str | None


@dataclass(frozen=True)
class Harness:
    """How the contract suite drives one connector. A new connector adds one of these to conftest.py.

    Attributes:
        name: the test id (``test_read[sql]``).
        make: ``make(tmp_path, page_size=None, server=None) -> Made``. Builds the connector without
            touching the system (the suite also calls it with ``PROBE_DIR`` and ``server=None`` at
            collection time to read the declared capabilities). ``page_size``, when given, is the
            most records a page of ``read`` may hold.
        sample: ``sample(i) -> attributes`` of the i-th sample object: values in the form the system
            stores them (so a read returns them unchanged), a multi-valued attribute as a list.
        key: the attribute that identifies an object (unique in the system: a duplicate is refused).
        text: a single-valued attribute the tests change.
        optional: a single-valued attribute the tests clear (set to None).
        multi: a multi-valued attribute (None when the system has none); ``multi_value(i)`` gives
            distinct values that are valid for it.
        name: ``name(attributes, parent) -> str | None``: the Operation.name of an object (None for
            connectors without names); ``parent`` is a container's name or None.
        container: for hierarchical connectors, ``container(label) -> (object, attributes, name)``
            of an object that can hold others (an OU); None otherwise.
        disable: the attributes a disable operation sets in the tests.
        seed: ``seed(made, tmp_path, objects)`` writes source data for the read tests; None means
            "create them with apply".
        prepare: ``prepare(tmp_path, server)`` sets the system up before the connector is built
            (writes a DDL, creates a bucket); never called at collection time.
        server: the name of a fixture that starts the real server; its value reaches make/prepare.
        other_partition: a second partition the connector is configured with (partition tests).
        break_source: ``break_source(made, tmp_path)`` makes the object unreadable (the file
            removed, the table dropped): the next read must raise ConnectionFailed.
        verify_password: ``verify_password(made, tmp_path, anchor, password) -> bool``: whether
            the system would accept that password for that object (a bind, a hash compare).
        values: per attribute, a value for normalization tests (already in normalized form).
        page_size: whether ``make`` honours ``page_size``.
        drop_connections: ``drop_connections(made, server)`` makes the server end every
            connection the connector holds (a restart, an idle timeout), for the ping test.
    """

    name: str
    make: Callable[..., Made]
    sample: Callable[[int], dict[str, Any]]
    key: str
    text: str
    optional: str
    multi: str | None = None
    multi_value: Callable[[int], Any] = str
    name_of: Callable[[Mapping[str, Any], str | None], str | None] = lambda attributes, parent: None
    container: Callable[[str], tuple[str, dict[str, Any], str]] | None = None
    disable: Mapping[str, Any] = field(default_factory=dict)
    seed: Callable[[Made, Path, Sequence[Mapping[str, Any]]], None] | None = None
    prepare: Callable[[Path, Any], None] | None = None
    server: str | None = None
    other_partition: str | None = None
    break_source: Callable[[Made, Path], None] | None = None
    verify_password: Callable[[Made, Path, str, str], bool] | None = None
    values: Mapping[str, str] = field(default_factory=dict)
    page_size: bool = True
    drop_connections: Callable[[Made, Any], None] | None = None

    def __repr__(self) -> str:
        return f"Harness({self.name})"

    # ---- what the connector declares (asked once, at collection time) -------------------------

    @cached_property
    def probe(self) -> Made:
        return self.make(PROBE_DIR, page_size=None, server=None)

    @property
    def capabilities(self) -> Capabilities:
        """What the connector declares, before open, for the object the tests use."""
        return self.probe.connector.capabilities(self.probe.object)

    def can(self, method: str) -> bool:
        assert callable(getattr(Connector, method, None)), f"Connector has no method {method!r}"
        return self.probe.connector.can(method)

    @property
    def readable(self) -> bool:
        return self.can("read")

    def qualifies(self, spec: Mapping[str, Any]) -> bool:
        """Whether this connector declares everything a test needs (see the module docstring)."""
        caps = self.capabilities
        if not set(spec.get("ops", ())) <= caps.operations:
            return False
        if spec.get("read") and not self.readable:
            return False
        if not all(self.can(method) for method in spec.get("can", ())):
            return False
        for flag in spec.get("caps", ()):
            negate = flag.startswith("!")
            flag = flag.lstrip("!")
            assert flag == "concurrent" or flag in {f.name for f in fields(Capabilities)}, f"unknown capability {flag!r}"
            value = caps.max_concurrency > 1 if flag == "concurrent" else bool(getattr(caps, flag))
            if value == negate:
                return False
        harness_fields = {f.name for f in fields(self)}
        for need in spec.get("needs", ()):
            assert need in harness_fields, f"unknown harness field {need!r} in a contract marker"
            if not getattr(self, need):
                return False
        return True


MARKER_KEYS = ("ops", "read", "can", "caps", "needs")


def requirements(markers: Iterable[Any]) -> dict[str, Any]:
    """The union of the ``contract`` markers' requirements: tuples for ops/can/caps/needs, a bool for read."""
    spec: dict[str, Any] = {"ops": (), "read": False, "can": (), "caps": (), "needs": ()}
    for marker in markers:
        assert not marker.args, "write @pytest.mark.contract(ops=..., read=..., can=..., caps=..., needs=...)"
        for key, value in marker.kwargs.items():
            assert key in MARKER_KEYS, f"unknown contract marker key {key!r}; known: {', '.join(MARKER_KEYS)}"
            if key == "read":
                spec["read"] = spec["read"] or bool(value)
            else:
                spec[key] = (*spec[key], *(value if isinstance(value, tuple | list) else (value,)))
    return spec


# ---- the driver -----------------------------------------------------------------------------------

_AUTO: Any = object()


class Driver:
    """One open connector of a harness, with the helpers every contract test uses.

    Every ``apply`` through the driver checks the basic contract: exactly one Result per
    Operation, carrying that operation's id, and an error only when not ok.
    """

    def __init__(self, harness: Harness, made: Made, tmp_path: Path, server: Any = None):
        self.harness, self.made, self.tmp_path, self.server = harness, made, tmp_path, server
        self.connector, self.object, self.partition = made
        self.caps = self.connector.negotiate(self.object)  # what the engine uses for a run
        self._ids = itertools.count(101, 7)  # not 0, 1, 2...: a connector must echo the ids, not count

    def next_id(self) -> int:
        return next(self._ids)

    # ---- building operations ------------------------------------------------------------------

    def sample(self, i: int, **changes: Any) -> dict[str, Any]:
        attributes = self.harness.sample(i)
        attributes.update(changes)
        return attributes

    def name(self, attributes: Mapping[str, Any], parent: str | None = None) -> str | None:
        return self.harness.name_of(attributes, parent)

    def op(self, kind: str, **fields: Any) -> Operation:
        """An operation as the engine builds it: its partition, and a key that stays the same on a re-send."""
        fields.setdefault("object", self.object)
        fields.setdefault("partition", self.partition)
        op_id = self.next_id()
        fields.setdefault("key", f"contract/{self.harness.name}/{op_id}")
        return Operation(op_id, kind, **fields)

    def replay(self, op: Operation) -> Operation:
        """``op`` sent again, as the engine does when a crash lost its result: same key, next attempt."""
        return dataclasses.replace(op, id=self.next_id(), attempt=op.attempt + 1)

    def add_op(self, attributes: Mapping[str, Any], *, name: Any = _AUTO, parent: str | None = None,
               **fields: Any) -> Operation:
        if name is _AUTO:
            name = self.name(attributes, parent)
        return self.op("add", attributes=dict(attributes), name=name, **fields)

    # ---- applying -----------------------------------------------------------------------------

    def apply(self, *ops: Operation) -> list[Result]:
        """Apply ``ops`` in one call; the Results in the order of ``ops``."""
        results = list(self.connector.apply(list(ops)))
        return self.check_results(ops, results)

    @staticmethod
    def check_results(ops: Sequence[Operation], results: Sequence[Result]) -> list[Result]:
        assert all(isinstance(r, Result) for r in results), results
        assert sorted(r.op_id for r in results) == sorted(op.id for op in ops), (
            f"one Result per Operation: sent ids {[op.id for op in ops]}, got {[r.op_id for r in results]}")
        for r in results:
            assert r.ok == (r.error is None), f"a Result has an error exactly when it is not ok: {r}"
        by_id = {r.op_id: r for r in results}
        return [by_id[op.id] for op in ops]

    def one(self, kind: str, **fields: Any) -> Result:
        [result] = self.apply(self.op(kind, **fields))
        return result

    def ok(self, op: Operation) -> str:
        """Apply one operation that must succeed; its anchor."""
        [result] = self.apply(op)
        assert result.ok, f"{op.kind} failed: {type(result.error).__name__}: {result.error}"
        assert isinstance(result.anchor, str) and result.anchor, f"{op.kind} returned no anchor: {result}"
        return result.anchor

    def add(self, attributes: Mapping[str, Any], **kw: Any) -> str:
        return self.ok(self.add_op(attributes, **kw))

    def seed(self, objects: Sequence[Mapping[str, Any]]) -> None:
        """Put ``objects`` in the system: the harness's own way (a file) or with one apply of adds."""
        if self.harness.seed is not None:
            self.harness.seed(self.made, self.tmp_path, objects)
            return
        results = self.apply(*(self.add_op(o) for o in objects))
        assert all(r.ok for r in results), [r.error for r in results if not r.ok]

    def add_container(self, label: str) -> tuple[str, str]:
        """(anchor, name) of a new container object (hierarchical connectors)."""
        assert self.harness.container is not None
        object, attributes, name = self.harness.container(label)
        return self.ok(self.op("add", object=object, attributes=attributes, name=name)), name

    def update(self, anchor: str, **fields: Any) -> Result:
        return self.one("update", anchor=anchor, **fields)

    # ---- reading ------------------------------------------------------------------------------

    def pages(self, watermark: str | None = None, partition: Any = _AUTO, object: str | None = None) -> list[Page]:
        partition = self.partition if partition is _AUTO else partition
        pages = list(self.connector.read(object or self.object, partition, watermark))
        assert all(isinstance(p, Page) for p in pages), pages
        assert all(isinstance(r, Record) for p in pages for r in p.records)
        if self.caps.delta_read:
            assert pages, "a delta-reading connector returns at least one page: the last carries the watermark"
            assert pages[-1].watermark is not None, "the last page of a delta-reading connector carries a watermark"
        return pages

    def read(self, watermark: str | None = None, **kw: Any) -> tuple[list[Record], str | None]:
        pages = self.pages(watermark, **kw)
        return [r for p in pages for r in p.records], (pages[-1].watermark if pages else None)

    def records(self, **kw: Any) -> list[Record]:
        return self.read(**kw)[0]

    def by_anchor(self, **kw: Any) -> dict[str, Record]:
        records = self.records(**kw)
        anchors = [r.anchor for r in records]
        assert None not in anchors, "a connector that can be written to reads back every object with its anchor"
        assert len(set(anchors)) == len(anchors), f"an object read twice in one read: {anchors}"
        return {str(r.anchor): r for r in records}

    def get(self, anchor: str, **kw: Any) -> Record | None:
        """The object with ``anchor`` as a whole read finds it (every connector that reads has this)."""
        return self.by_anchor(**kw).get(anchor)

    # ---- finding single objects: the connector's get and lookup ---------------------------------

    def fetch(self, anchor: str | None = None, *, name: str | None = None, partition: Any = _AUTO) -> Record | None:
        """``connector.get``, checked: a Record carrying its anchor, or None."""
        partition = self.partition if partition is _AUTO else partition
        found = self.connector.get(self.object, anchor, name=name, partition=partition)
        assert found is None or isinstance(found, Record), f"get returns a Record or None, not {found!r}"
        if found is not None:
            assert isinstance(found.anchor, str) and found.anchor, f"get returned a record without its anchor: {found}"
            assert not found.deleted, "get returns what is there: never a deleted record"
        return found

    def lookup(self, values: Mapping[str, Any], *, partition: Any = _AUTO) -> list[Record]:
        """``connector.lookup``, checked: a list of Records, each with its anchor, none twice."""
        partition = self.partition if partition is _AUTO else partition
        found = self.connector.lookup(self.object, dict(values), partition=partition)
        assert isinstance(found, list) and all(isinstance(r, Record) for r in found), f"lookup returns a list: {found!r}"
        anchors = [r.anchor for r in found]
        assert all(isinstance(a, str) and a for a in anchors), f"lookup returned records without anchors: {found}"
        assert len(set(anchors)) == len(anchors), f"lookup returned an object twice: {anchors}"
        return found

    def correlation(self) -> tuple[str, ...]:
        """The attributes that find an object: the declared correlation, else the harness key (what a
        manifest's ``target.correlate`` would name)."""
        return tuple(self.caps.correlation) or (self.harness.key,)

    def by_key(self, records: Iterable[Record]) -> dict[Any, Record]:
        found: dict[Any, Record] = {}
        for record in records:
            key = record.attributes.get(self.harness.key)
            assert key not in found, f"{self.harness.key}={key!r} read twice"
            found[key] = record
        return found

    # ---- comparing ----------------------------------------------------------------------------

    def comparable(self, attributes: Mapping[str, Any]) -> dict[str, Any]:
        """Attributes as compared: a multi-valued attribute is a set (systems keep no order)."""
        return {k: sorted(v, key=str) if isinstance(v, list | tuple) else v for k, v in attributes.items()}

    def assert_holds(self, record: Record | None, expected: Mapping[str, Any]) -> None:
        """``record`` holds ``expected`` (other attributes, such as a generated key, may be there too)."""
        assert record is not None, "the object is not read back"
        actual = {k: record.attributes.get(k) for k in expected}
        assert self.comparable(actual) == self.comparable(expected)

    @staticmethod
    def same_name(a: str | None, b: str | None) -> bool:
        """Names compare the way directories compare DNs: case and spaces around commas do not count."""
        def fold(name: str | None) -> str | None:
            return None if name is None else ",".join(p.strip() for p in name.split(",")).casefold()
        return fold(a) == fold(b)

    def files_containing(self, needle: str) -> list[Path]:
        """Every file under the test's folder whose bytes contain ``needle`` (UTF-8 or UTF-16)."""
        forms = [needle.encode("utf-8"), needle.encode("utf-16-le")]
        return [p for p in self.tmp_path.rglob("*") if p.is_file() and any(f in p.read_bytes() for f in forms)]
