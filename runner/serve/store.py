"""Where ``provision serve`` keeps what Entra sends: the store protocol, and an in-memory store.

The protocol layer (``app.py``) speaks HTTP and SCIM; everything it is asked to keep or find goes
through a :class:`ResourceStore`. Two implement it: :class:`MemoryStore` here, for tests of the
protocol layer, and later the pipeline (the state store plus export to a target). The protocol is
kept narrow for that second one: six calls per resource type, values already conformed to the
schema (``conform.py``), PATCH already parsed into operations (``patch.py``) so that a store can
see "add one member" instead of a new list of twenty thousand, filters already parsed
(``filters.py``) so that it can answer ``userName eq "x"`` from an index.

Failures are exceptions (``errors.py``) that the app maps to SCIM errors: :class:`NotFound` 404,
:class:`Conflict` 409 ``uniqueness``, :class:`Invalid` 400, :class:`PreconditionFailed` 412 (an
``If-Match`` version that is no longer current), :class:`Retry` 503 with ``Retry-After``,
:class:`TargetRejected` with the target's own message.

Calls are synchronous, as the rest of the engine is; the app runs them in worker threads, so a
store may block on I/O and must be safe to call from several threads at once.
"""

from __future__ import annotations

import itertools
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from runner.connectors.scim.protocol import Attr

from .errors import Conflict, NotFound, PreconditionFailed
from .filters import Filter
from .patch import Operation, apply
from .schema import ID, KINDS, Kind

__all__ = ["Conflict", "NotFound", "PreconditionFailed", "Record", "Page", "ResourceStore", "MemoryStore",
           "etag_matches"]


@dataclass(frozen=True)
class Record:
    """A stored resource: its attributes as ``conform.py`` shapes them (core attributes at the top
    level, extension blocks under their URN; no ``id``, ``schemas`` or ``meta``), and the metadata
    the app puts in ``meta``. ``version`` is a weak ETag (``W/"..."``) that changes on every write.
    Callers do not change ``attributes``."""

    id: str
    kind: str
    attributes: Mapping[str, Any]
    created: datetime
    last_modified: datetime
    version: str


@dataclass(frozen=True)
class Page:
    """One page of a query: the records from ``startIndex`` on, and how many matched in all."""

    total: int
    records: list[Record]


class ResourceStore(Protocol):
    """What the protocol layer needs from where resources are kept. ``kind`` is a resource type's
    name (``"User"``, ``"Group"``); ``if_match`` is the request's ``If-Match`` header, if any, to
    check with :func:`etag_matches` in the same step as the write (RFC 7644 §3.14)."""

    def create(self, kind: str, attributes: Mapping[str, Any]) -> Record: ...

    def get(self, kind: str, resource_id: str) -> Record: ...

    def replace(self, kind: str, resource_id: str, attributes: Mapping[str, Any], *,
                if_match: str | None = None) -> Record: ...

    def patch(self, kind: str, resource_id: str, operations: Sequence[Operation], *,
              if_match: str | None = None) -> Record: ...

    def delete(self, kind: str, resource_id: str, *, if_match: str | None = None) -> None: ...

    def query(self, kind: str, filter: Filter | None, start_index: int, count: int) -> Page:
        """The records ``filter`` matches (all for None), in a stable order, from the 1-based
        ``start_index``, at most ``count`` of them, and the total that matched."""
        ...


def etag_matches(header: str | None, version: str) -> bool:
    """Whether an ``If-Match`` header allows a write to a resource at ``version`` (``*``, or one
    of its entity tags, compared weakly: ``W/"3"`` and ``"3"`` are the same version)."""
    if header is None:
        return True
    tags = [t.strip() for t in header.split(",") if t.strip()]
    if "*" in tags:
        return True
    plain = version.removeprefix("W/")
    return any(t.removeprefix("W/") == plain for t in tags)


class MemoryStore:
    """A :class:`ResourceStore` in memory, for tests of the protocol layer: one lock around every
    call, uniqueness by index (userName, Group displayName; case-insensitive as the schema says),
    queries answered by index for ``id``/unique-attribute equality and by scan otherwise, PATCH
    applied by ``patch.apply``. Member ids are not checked against existing users: references are
    the pipeline's business."""

    def __init__(self, kinds: Mapping[str, Kind] = KINDS) -> None:
        self._kinds = dict(kinds)
        self._lock = threading.Lock()
        self._records: dict[str, dict[str, Record]] = {name: {} for name in self._kinds}
        self._unique: dict[str, dict[str, dict[Any, str]]] = {
            name: {a.name: {} for a in kind.unique} for name, kind in self._kinds.items()}
        self._versions = itertools.count(1)

    def _kind(self, kind: str) -> Kind:
        if kind not in self._kinds:
            raise NotFound(f"no resource type {kind!r}")
        return self._kinds[kind]

    def _version(self) -> str:
        return f'W/"{next(self._versions)}"'

    def _existing(self, kind: str, resource_id: str) -> Record:
        record = self._records[kind].get(resource_id)
        if record is None:
            raise NotFound(f"{kind} {resource_id} not found")
        return record

    @staticmethod
    def _key(attr: Attr, value: Any) -> Any:
        return value.casefold() if isinstance(value, str) and not attr.case_exact else value

    def _check_unique(self, kind: Kind, attributes: Mapping[str, Any], resource_id: str | None) -> None:
        for attr in kind.unique:
            value = attributes.get(attr.name)
            holder = self._unique[kind.name][attr.name].get(self._key(attr, value))
            if value is not None and holder is not None and holder != resource_id:
                raise Conflict(f"{attr.name} {value!r} is taken by {kind.name} {holder}")

    def _index(self, kind: Kind, record: Record, old: Record | None) -> None:
        for attr in kind.unique:
            index = self._unique[kind.name][attr.name]
            if old is not None and old.attributes.get(attr.name) is not None:
                index.pop(self._key(attr, old.attributes[attr.name]), None)
            if record.attributes.get(attr.name) is not None:
                index[self._key(attr, record.attributes[attr.name])] = record.id

    def create(self, kind: str, attributes: Mapping[str, Any]) -> Record:
        k = self._kind(kind)
        with self._lock:
            self._check_unique(k, attributes, None)
            now = datetime.now(UTC)
            record = Record(str(uuid.uuid4()), kind, dict(attributes), now, now, self._version())
            self._records[kind][record.id] = record
            self._index(k, record, None)
            return record

    def get(self, kind: str, resource_id: str) -> Record:
        self._kind(kind)
        with self._lock:
            return self._existing(kind, resource_id)

    def _write(self, k: Kind, old: Record, attributes: Mapping[str, Any]) -> Record:
        self._check_unique(k, attributes, old.id)
        record = replace(old, attributes=attributes, last_modified=datetime.now(UTC), version=self._version())
        self._records[k.name][old.id] = record
        self._index(k, record, old)
        return record

    def replace(self, kind: str, resource_id: str, attributes: Mapping[str, Any], *,
                if_match: str | None = None) -> Record:
        k = self._kind(kind)
        with self._lock:
            old = self._existing(kind, resource_id)
            _precondition(old, if_match)
            return self._write(k, old, dict(attributes))

    def patch(self, kind: str, resource_id: str, operations: Sequence[Operation], *,
              if_match: str | None = None) -> Record:
        k = self._kind(kind)
        with self._lock:
            old = self._existing(kind, resource_id)
            _precondition(old, if_match)
            return self._write(k, old, apply(k, old.attributes, operations))

    def delete(self, kind: str, resource_id: str, *, if_match: str | None = None) -> None:
        k = self._kind(kind)
        with self._lock:
            old = self._existing(kind, resource_id)
            _precondition(old, if_match)
            del self._records[kind][resource_id]
            for attr in k.unique:
                if old.attributes.get(attr.name) is not None:
                    self._unique[kind][attr.name].pop(self._key(attr, old.attributes[attr.name]), None)

    def query(self, kind: str, filter: Filter | None, start_index: int, count: int) -> Page:
        k = self._kind(kind)
        with self._lock:
            records = self._records[kind]
            candidates: list[Record] = list(records.values())
            if filter is not None:
                pinned = filter.equality(ID)
                for attr in k.unique:
                    value = filter.equality(attr)
                    if pinned is None and isinstance(value, str):
                        pinned = self._unique[kind][attr.name].get(self._key(attr, value), "")
                if isinstance(pinned, str):  # one candidate at most; the filter still decides
                    candidates = [records[pinned]] if pinned in records else []
                matched = [r for r in candidates if filter(r.id, r.attributes)]
            else:
                matched = candidates
        start = max(1, start_index) - 1
        return Page(len(matched), matched[start:start + max(0, count)])


def _precondition(record: Record, if_match: str | None) -> None:
    if not etag_matches(if_match, record.version):
        raise PreconditionFailed(f"{record.kind} {record.id} is at version {record.version}, not {if_match}")
