"""The pipeline behind ``provision serve``: a :class:`~runner.serve.store.ResourceStore` whose
resources are the source objects of a manifest's ``scim-endpoint`` source (issue 23).

What the client sends becomes the source record of its anchor (the SCIM ``id`` assigned here) in
the pipeline's state store, and each write is provisioned at once, as ``provision preview --apply``
provisions one object: the record is imported (``import_page``, not a full import), computed and
exported to the object type's target for that anchor only, in a run of kind ``serve`` with the
provisioning log. The answer is the target's outcome:

* the export went through: the stored resource;
* the target rejected it (an object error): :class:`TargetRejected` with the target's message;
* a retryable failure, or the target unreachable: :class:`Retry` (503 + ``Retry-After``);
* the mapping failed for it: :class:`Invalid`.

A write that fails is undone in the state store (the source record goes back to what it was, and
is computed again), since the client was told it did not happen and will send it again.

Reads (GET, queries) answer from the stored source records, without a round trip to the target;
a filter on ``id`` or on a unique attribute (userName, Group displayName) is a lookup in an index
kept in memory (:class:`_Unique`), which also checks uniqueness on writes; other filters read
every record of the type.

Requests are provisioned concurrently on several lanes (``serve.concurrency``, default 4), each
with its own state store connection and connectors; requests for one resource run one after the
other in the order they arrive (:class:`_Objects`). What a change leaves to compute for other
objects (references by name to a renamed object, references left out until their object existed)
is brought along after it, as a run does (:meth:`PipelineStore._follow`).

The store holds the pipeline's lock for its whole life (renewing its heartbeat), so a
``provision run`` of the same manifest waits.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import queue
import re
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from runner import secrets
from runner.connectors.base import Connector, ConnectorError, RetryableError
from runner.connectors.scim.protocol import Attr, format_time
from runner.connectors.scimendpoint import WATERMARK
from runner.engine.compute import compute_type
from runner.engine.context import RunContext, RunOptions, TypeCounts
from runner.engine.export import PHASES, export_type
from runner.engine.preview import RecordingLog, ensure_open, export_one, find_target, finish_run
from runner.engine.recovery import recover
from runner.engine.run import Summary, close_connector, log_path, new_run_id
from runner.errors import UsageError
from runner.manifest.model import ObjectType
from runner.mapping.checks import load_with_connectors
from runner.mapping.mapper import Mapper
from runner.mapping.scope import compile_scope
from runner.state import tables as t
from runner.state.base import chunks
from runner.state.opening import Mode, open_store
from runner.state.store import StateStore, now_iso

from .errors import Conflict, Invalid, NotFound, PreconditionFailed, Retry, ScimError, TargetRejected
from .filters import Filter
from .patch import Operation, apply
from .schema import ID, Kind, kinds_for
from .store import Page, Record, etag_matches

log = logging.getLogger("runner.serve")

SOURCE_TYPE = "scim-endpoint"
#: seconds between renewals of the lock's heartbeat
HEARTBEAT_SECONDS = 30.0
#: what a 503 asks the client to wait, in seconds, when the target did not say
RETRY_AFTER = 30
#: attributes besides the unique ones that queries find by index (Entra may match users on externalId)
LOOKUPS = ("externalId",)
_OK = {"POST": 201, "DELETE": 204}  # the status of a write that went through, when not 200
#: requests provisioned at once, unless the manifest's ``serve.concurrency`` says otherwise
DEFAULT_LANES = 4


@dataclass(frozen=True)
class _Served:
    kind: Kind
    ot: ObjectType
    type_id: int
    mapper: Mapper

    @property
    def partition(self) -> str | None:
        return self.ot.source.partitions[0] if self.ot.source.partitions else None


class _ServeContext(RunContext):
    """A run context whose heartbeat renews the server's lock (held under its own id), not one
    taken by the request's run."""

    lock_id: str = ""

    def heartbeat(self) -> None:
        self.store.runs.heartbeat(self.pipeline, self.lock_id)


class _Lane:
    """What one request at a time works with: a connection to the state store and the connectors
    (opened when first needed). Requests run on several lanes at once; the state store and the
    target take their writes concurrently (SQLite serialises its short transactions, the targets'
    round trips overlap)."""

    def __init__(self, manifest_path: str | Path) -> None:
        loaded = load_with_connectors(manifest_path)
        self.manifest = loaded.manifest
        self.connectors = loaded.connectors
        self.opened: set[str] = set()
        self.store = open_store(self.manifest, Mode.WRITE)

    def close(self) -> None:
        for name in self.opened:
            close_connector(self.connectors[name])
        self.opened.clear()
        self.store.close()


class _Objects:
    """One lock per resource id: requests for one object run one after the other, in the order
    they arrive (per-object ordering); requests for different objects run at once."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, tuple[threading.Lock, int]] = {}

    @contextlib.contextmanager
    def hold(self, *ids: str) -> Iterator[None]:
        """Hold the locks of ``ids``, taken in sorted order (two holders of several never wait on
        each other in a cycle)."""
        wanted = sorted(set(ids))
        locks = []
        with self._guard:
            for i in wanted:
                lock, users = self._locks.get(i) or (threading.Lock(), 0)
                self._locks[i] = (lock, users + 1)
                locks.append(lock)
        try:
            for lock in locks:
                lock.acquire()
            yield
        finally:
            for lock in locks:
                if lock.locked():
                    lock.release()
            with self._guard:
                for i in wanted:
                    lock, users = self._locks[i]
                    if users == 1:
                        del self._locks[i]
                    else:
                        self._locks[i] = (lock, users - 1)


class _Unique:
    """The values each served type keeps unique (userName; Group displayName) -> the resource
    holding it, and the values of :data:`LOOKUPS` (externalId) -> the resources holding them, in
    memory: a create checks uniqueness without reading every stored resource, and a query
    ``userName eq "x"`` or ``externalId eq "y"`` is a lookup. Built once at start from the state
    store; this server is its only writer (it holds the pipeline's lock). A write reserves its
    unique values before it is provisioned and gives them back if it fails, so two concurrent
    creates of one userName cannot both succeed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[tuple[str, str], dict[Any, str]] = {}
        self._found: dict[tuple[str, str], dict[Any, set[str]]] = {}

    @staticmethod
    def key(attr: Attr, value: Any) -> Any:
        return value.casefold() if isinstance(value, str) and not attr.case_exact else value

    @staticmethod
    def lookups(kind: Kind) -> list[Attr]:
        core = kind.attributes_of(None)
        return [core[name.lower()] for name in LOOKUPS if name.lower() in core]

    def add(self, kind: Kind, resource_id: str, attributes: Mapping[str, Any]) -> None:
        for attr in kind.unique:
            if attributes.get(attr.name) is not None:
                self._held.setdefault((kind.name, attr.name), {})[self.key(attr, attributes[attr.name])] = resource_id
        self._index(kind, resource_id, attributes, None)

    def holder(self, kind: Kind, attr: Attr, value: Any) -> str | None:
        with self._lock:
            return self._held.get((kind.name, attr.name), {}).get(self.key(attr, value))

    def holding(self, kind: Kind, attr: Attr, value: Any) -> list[str]:
        with self._lock:
            return sorted(self._found.get((kind.name, attr.name), {}).get(self.key(attr, value), ()))

    def _index(self, kind: Kind, resource_id: str, new: Mapping[str, Any] | None,
               old: Mapping[str, Any] | None) -> None:
        for attr in self.lookups(kind):
            index = self._found.setdefault((kind.name, attr.name), {})
            before, after = (old or {}).get(attr.name), (new or {}).get(attr.name)
            if isinstance(before, str | int) and (ids := index.get(self.key(attr, before))):
                ids.discard(resource_id)
                if not ids:
                    del index[self.key(attr, before)]
            if isinstance(after, str | int):
                index.setdefault(self.key(attr, after), set()).add(resource_id)

    @contextlib.contextmanager
    def reserve(self, kind: Kind, resource_id: str, new: Mapping[str, Any] | None,
                old: Mapping[str, Any] | None) -> Iterator[None]:
        """Take ``new``'s unique values for ``resource_id`` (Conflict when another holds one),
        giving up ``old``'s; put everything back as it was when the block fails, and index the
        lookups once it went through."""
        undo: list[tuple[dict[Any, str], Any, str | None]] = []
        with self._lock:
            for attr in kind.unique:
                index = self._held.setdefault((kind.name, attr.name), {})
                value = (new or {}).get(attr.name)
                if value is not None and index.get(self.key(attr, value), resource_id) != resource_id:
                    raise Conflict(f"{attr.name} {value!r} is taken by {kind.name} {index[self.key(attr, value)]}")
            for attr in kind.unique:
                index = self._held[(kind.name, attr.name)]
                before, after = (old or {}).get(attr.name), (new or {}).get(attr.name)
                if before is not None and index.get(self.key(attr, before)) == resource_id:
                    undo.append((index, self.key(attr, before), resource_id))
                    del index[self.key(attr, before)]
                if after is not None:
                    undo.append((index, self.key(attr, after), index.get(self.key(attr, after))))
                    index[self.key(attr, after)] = resource_id
        try:
            yield
        except BaseException:
            with self._lock:
                for index, key, holder in reversed(undo):
                    if holder is None:
                        index.pop(key, None)
                    else:
                        index[key] = holder
            raise
        with self._lock:
            self._index(kind, resource_id, new, old)


class PipelineStore:
    """The :class:`~runner.serve.store.ResourceStore` over the pipeline of ``manifest_path``;
    ``lanes``: how many requests are provisioned at once (default: the manifest's
    ``serve.concurrency``, else 4)."""

    def __init__(self, manifest_path: str | Path, *, heartbeat_seconds: float = HEARTBEAT_SECONDS,
                 lanes: int | None = None) -> None:
        loaded = load_with_connectors(manifest_path)
        self.manifest = manifest = loaded.manifest
        self.connectors = loaded.connectors
        #: the manifest's ``serve`` block, interpolated (``token``)
        self.settings: dict[str, Any] = dict((loaded.located.data or {}).get("serve") or {})
        try:  # User, Group and the manifest's serve.resource_types (checked when it was loaded)
            #: the resource types this endpoint serves, by name: what ``create_app(kinds=...)`` routes
            self.kinds: dict[str, Kind] = kinds_for(self.settings, manifest.path.parent)
        except ValueError as e:
            raise UsageError(f"{manifest.path.name}: {e}") from None
        served: list[tuple[Kind, ObjectType]] = []
        for ot in manifest.object_types:
            if manifest.connectors[ot.source.connector].type != SOURCE_TYPE:
                continue
            kind = next((k for k in self.kinds.values()
                         if k.endpoint.strip("/").lower() == ot.source.object.lower()), None)
            if kind is None:
                endpoints = ", ".join(k.endpoint.strip("/") for k in self.kinds.values())
                raise UsageError(f"{ot.name}: a {SOURCE_TYPE} source serves {endpoints}, not {ot.source.object!r}")
            if any(k.name == kind.name for k, _ in served):
                raise UsageError(f"{ot.name}: {ot.source.object} is the source of two object types")
            served.append((kind, ot))
        if not served:
            raise UsageError(f"{manifest.path.name}: no object type has a {SOURCE_TYPE} source: nothing to serve")
        count = lanes or int(self.settings.get("concurrency") or DEFAULT_LANES)
        self._lock = threading.Lock()  # the heartbeat's store (``self.store``), apart from the lanes'
        self._opened: set[str] = set()
        self._objects = _Objects()
        self._unique = _Unique()
        self._lanes: queue.SimpleQueue[_Lane] = queue.SimpleQueue()
        self._all_lanes: list[_Lane] = []
        self.store = open_store(manifest, Mode.WRITE)
        self.lock_id = f"serve-{new_run_id()}"
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None
        try:
            holder = self.store.runs.acquire_lock(manifest.name, self.lock_id)
            if holder is not None:
                log.warning("took over the lock of a run that is no longer alive (%s)", holder.describe())
            self.type_ids = {t_.name: self.store.type_id(manifest.name, t_.name) for t_ in manifest.object_types}
            self._served = {kind.name: _Served(kind, ot, self.type_ids[ot.name], Mapper(ot)) for kind, ot in served}
            for s in self._served.values():  # runs read this source as deltas from now on: it has none
                for partition in s.ot.source.partitions:
                    if self.store.imports.watermark(s.type_id, "source", partition) is None:
                        self.store.imports.set_watermark(s.type_id, "source", partition, WATERMARK)
                ensure_open(self.connectors, s.ot.target.connector, self._opened)
            self.store.commit()
            self._recover()
            for s in self._served.values():
                for data in _present(self.store, s):
                    self._unique.add(s.kind, str(data["id"]), data)
                    if secret := [f for f in _write_only(s) if f in data]:  # a request killed before it forgot them
                        self.store.imports.forget_values(s.type_id, str(data["id"]), secret)
            self.store.commit()
            for _ in range(max(1, count)):
                lane = _Lane(manifest_path)
                self._all_lanes.append(lane)
                self._lanes.put(lane)
        except BaseException:
            self._close_all()
            raise
        self._beat = threading.Thread(target=self._heartbeats, args=(heartbeat_seconds,), name="serve-heartbeat",
                                      daemon=True)
        self._beat.start()

    # ---- life -------------------------------------------------------------------------------------

    def _heartbeats(self, every: float) -> None:
        while not self._stop.wait(every):
            with self._lock:
                try:
                    self.store.runs.heartbeat(self.manifest.name, self.lock_id)
                    self.store.commit()
                except Exception:
                    log.exception("renewing the pipeline's lock failed")

    def close(self) -> None:
        """Release the lock, close the lanes, the targets and the state store."""
        self._stop.set()
        if self._beat is not None:
            self._beat.join(timeout=5)
        with self._lock:
            self._close_all()

    def _close_all(self) -> None:
        for lane in self._all_lanes:
            try:
                lane.close()
            except Exception:
                log.exception("closing a lane failed")
        self._all_lanes.clear()
        try:
            self.store.runs.release_lock(self.manifest.name, self.lock_id)
        except Exception:
            log.exception("releasing the pipeline's lock failed")
        for name in self._opened:
            close_connector(self.connectors[name])
        self._opened.clear()
        self.store.close()

    def __enter__(self) -> PipelineStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def instances(self, connector: str) -> list[Connector]:
        """Every instance of the manifest's connector ``connector``: the one recovery uses and each
        lane's (fault injection in tests patches them all)."""
        return [self.connectors[connector], *(lane.connectors[connector] for lane in self._all_lanes)]

    @contextlib.contextmanager
    def _lane(self) -> Iterator[_Lane]:
        lane = self._lanes.get()
        try:
            yield lane
        finally:
            lane.store.rollback()  # nothing half-done stays open on a lane
            self._lanes.put(lane)

    def _context(self, store: StateStore, connectors: dict[str, Connector], opened: set[str], run_id: str,
                 entries: RecordingLog) -> RunContext:
        ctx = _ServeContext(self.manifest, store, connectors, run_id, RunOptions(), entries)
        ctx.lock_id = self.lock_id
        ctx.opened = opened
        ctx.type_ids = self.type_ids
        return ctx

    def health(self) -> dict[str, Any]:
        """For ``/health``: whether the state store answers, and the lanes free now."""
        try:
            with self._lane() as lane:
                lane.store.conn.execute(sa.select(1)).scalar()
        except Exception as exc:
            return {"status": "down", "detail": f"the state store does not answer: {secrets.redact(str(exc))}"}
        return {"status": "ok", "pipeline": self.manifest.name, "lanes": len(self._all_lanes)}

    def _recover(self) -> None:
        """Settle what an endpoint (or run) killed in the middle of a request left behind, before
        the first request: exports in doubt (sent, no result recorded) get the crash recovery a
        run starts with (runner/engine/recovery.py), and writes recorded but not exported yet (a
        kill between the two) are computed and exported, as the request would have done. In a
        run of kind ``serve``, recorded only when there was something to settle."""
        store = self.store
        actions = tuple(a for phase, _ in PHASES for a in phase)
        left = {s.kind.name: (store.exports.has_in_doubt(s.type_id, ""), store.compute.count_dirty(s.type_id)
                              + store.runs.count_pending(s.type_id, actions)) for s in self._served.values()}
        store.rollback()
        if not any(doubt or waiting for doubt, waiting in left.values()):
            return
        with self._serve_run(store, self.connectors, self._opened) as (ctx, counts):
            for s in self._served.values():
                c = counts[s.ot.name]
                if left[s.kind.name][0]:
                    anchors = [row.source_anchor for row in store.exports.in_doubt(s.type_id, ctx.run_id, None,
                                                                                   100_000)]
                    recover(ctx, s.ot, s.mapper, c)
                    # what recovery leaves to send again (an add the target never got) goes now, as a run sends it
                    store.compute.mark_dirty(s.type_id, sorted(anchors))
                    store.commit()
                compute_type(ctx, s.ot, s.mapper, c, None)
                store.commit()
                if store.runs.count_pending(s.type_id, actions):
                    ensure_open(self.connectors, s.ot.target.connector, self._opened)
                    export_type(ctx, s.ot, s.mapper, c, PHASES)

    @contextlib.contextmanager
    def _serve_run(self, store: StateStore, connectors: dict[str, Connector],
                   opened: set[str]) -> Iterator[tuple[RunContext, dict[str, TypeCounts]]]:
        """A run of kind ``serve`` over every served type (recovery on start, what a request
        brings along): its context and counts, its provisioning log flushed and its summary
        recorded, ``failed`` (rolled back) when the block raises."""
        run_id, started = new_run_id(), now_iso()
        store.runs.start_run(run_id, self.manifest.name, "serve", started)
        entries = RecordingLog(store, self.manifest.name, run_id, log_path(self.manifest, None))
        counts = {s.ot.name: TypeCounts() for s in self._served.values()}
        status = "failed"
        try:
            yield self._context(store, connectors, opened, run_id, entries), counts
            entries.flush()
            status = "partial" if any(c.failed for c in counts.values()) else "ok"
        finally:
            entries.close()
            if status == "failed":
                store.rollback()
            summary = Summary(self.manifest.name, run_id, status, started, now_iso(), counts)
            store.runs.finish_run(run_id, status, summary.finished, summary.as_json())

    # ---- ResourceStore ----------------------------------------------------------------------------

    def create(self, kind: str, attributes: Mapping[str, Any]) -> Record:
        s = self._kind(kind)
        resource_id = uuid.uuid4().hex
        now = format_time(datetime.now(UTC))
        data = {**attributes, "id": resource_id, "meta": {"created": now, "lastModified": now, "version": 'W/"1"'}}
        with self._objects.hold(resource_id), self._unique.reserve(s.kind, resource_id, attributes, None), \
                self._lane() as lane:
            self._provision(lane, s, resource_id, data, None, "POST")
        self._follow()
        return _record(s.kind.name, data)

    def get(self, kind: str, resource_id: str) -> Record:
        s = self._kind(kind)
        with self._lane() as lane:
            return _record(s.kind.name, _existing(lane.store, s, resource_id))

    def replace(self, kind: str, resource_id: str, attributes: Mapping[str, Any], *,
                if_match: str | None = None) -> Record:
        return self._change(kind, resource_id, if_match, "PUT", lambda s, old: dict(attributes))

    def patch(self, kind: str, resource_id: str, operations: Sequence[Operation], *,
              if_match: str | None = None) -> Record:
        return self._change(kind, resource_id, if_match, "PATCH",
                            lambda s, old: apply(s.kind, _attributes(old), operations))

    def delete(self, kind: str, resource_id: str, *, if_match: str | None = None) -> None:
        s = self._kind(kind)
        with self._objects.hold(resource_id), self._lane() as lane:
            old = _existing(lane.store, s, resource_id)
            _precondition(s, old, if_match)
            with self._unique.reserve(s.kind, resource_id, None, old):
                self._provision(lane, s, resource_id, None, old, "DELETE")
        self._follow()

    def query(self, kind: str, filter: Filter | None, start_index: int, count: int) -> Page:
        if kind not in self._served:  # a type this pipeline does not take has no resources (root /.search)
            return Page(0, [])
        s = self._kind(kind)
        with self._lane() as lane:
            pinned = self._pinned(s, filter)
            found = _present(lane.store, s) if pinned is None else _some(lane.store, s, pinned)
        records = [_record(s.kind.name, d) for d in found]
        matched = [r for r in records if filter is None or filter(r.id, r.attributes)]
        matched.sort(key=lambda r: (r.created, r.id))
        start = max(1, start_index) - 1
        return Page(len(matched), matched[start:start + max(0, count)])

    # ---- the state store --------------------------------------------------------------------------

    def _kind(self, kind: str) -> _Served:
        if kind not in self._served:
            raise NotFound(f"this endpoint serves no {kind} resources (no object type has {kind}s as its source)")
        return self._served[kind]

    def _pinned(self, s: _Served, filter: Filter | None) -> list[str] | None:
        """The few resource ids a filter can match, from ``id`` or a unique attribute's equality
        (the filter still decides); None when it pins none (every stored resource is read)."""
        if filter is None:
            return None
        value = filter.equality(ID)
        if isinstance(value, str):
            return [value]
        for attr in s.kind.unique:
            value = filter.equality(attr)
            if value is not None:
                holder = self._unique.holder(s.kind, attr, value)
                return [holder] if holder else []
        for attr in self._unique.lookups(s.kind):
            value = filter.equality(attr)
            if value is not None:
                return self._unique.holding(s.kind, attr, value)
        return None

    def _change(self, kind: str, resource_id: str, if_match: str | None, operation: str,
                change: Callable[[_Served, dict[str, Any]], dict[str, Any]]) -> Record:
        s = self._kind(kind)
        with self._objects.hold(resource_id), self._lane() as lane:
            old = _existing(lane.store, s, resource_id)
            _precondition(s, old, if_match)
            attributes = change(s, old)
            meta = dict(old.get("meta") or {})
            meta["lastModified"] = format_time(datetime.now(UTC))
            meta["version"] = f'W/"{_version_number(meta.get("version")) + 1}"'
            data = {**attributes, "id": old["id"], "meta": meta}
            with self._unique.reserve(s.kind, resource_id, attributes, old):
                self._provision(lane, s, resource_id, data, old, operation)
        self._follow()
        return _record(s.kind.name, data)

    def _provision(self, lane: _Lane, s: _Served, anchor: str, data: dict[str, Any] | None,
                   old: dict[str, Any] | None, operation: str) -> None:
        """Store ``data`` as the source record of ``anchor`` (None: deleted), then compute and
        export that object in a run of kind ``serve``; raise the SCIM error its outcome calls for,
        after putting the source record back to ``old`` (None: it did not exist). The client's
        ``operation`` (POST, PUT, PATCH, DELETE) and its answer join the provisioning log, after
        what the export did (``scim PATCH``, ok or failed with the detail the client got)."""
        manifest, store = self.manifest, lane.store
        run_id, started = new_run_id(), now_iso()
        store.runs.start_run(run_id, manifest.name, "serve", started)
        entries = RecordingLog(store, manifest.name, run_id, log_path(manifest, None))
        ctx = self._context(store, lane.connectors, lane.opened, run_id, entries)
        counts = TypeCounts(imported=1)
        finished = False
        try:
            self._import(ctx, s, anchor, data)
            failure = self._sync(ctx, s, anchor, data, counts, entries)
            if failure is not None:  # the client is told it did not happen: the state store forgets it too
                self._import(ctx, s, anchor, old)
                self._sync(ctx, s, anchor, old, TypeCounts(), entries, export=False)
            if data is not None and (secret := [f for f in _write_only(s) if f in data]):
                store.imports.forget_values(s.type_id, anchor, secret)  # exported (or undone): never at rest
            entries.add(s.ot.name, anchor, f"scim {operation}", "ok" if failure is None else "failed",
                        changes={"answer": {"new": failure.status if failure else _OK.get(operation, 200)}},
                        error=None if failure is None else failure.detail)
            entries.flush()
            finish_run(store, manifest, s.ot, run_id, started, counts)
            finished = True
        finally:
            entries.close()
            if not finished:
                store.rollback()
                store.runs.finish_run(run_id, "failed", now_iso(), {"pipeline": manifest.name, "run_id": run_id})
        if failure is not None:
            raise failure

    def _import(self, ctx: RunContext, s: _Served, anchor: str, data: dict[str, Any] | None) -> None:
        store = ctx.store
        if data is None:
            store.imports.mark_deleted(s.type_id, [anchor])
        else:
            store.imports.import_page(s.type_id, [(anchor, data)], full=False, partition=s.partition)
        store.compute.mark_dirty(s.type_id, [anchor])
        ctx.heartbeat()
        store.commit()

    def _sync(self, ctx: RunContext, s: _Served, anchor: str, data: dict[str, Any] | None, counts: TypeCounts,
              entries: RecordingLog, export: bool = True) -> Exception | None:
        """Compute ``anchor`` and export its change; the SCIM error for a failure, else None."""
        store = ctx.store
        seen = len(entries.entries)
        in_scope = data is not None and bool(compile_scope(s.ot.scope)(data))
        try:
            _, _, matcher = find_target(ctx, s.ot, s.mapper, ctx.opened, anchor, in_scope)
            compute_type(ctx, s.ot, s.mapper, counts, matcher, only={anchor})
            store.commit()
        except Exception as exc:
            store.rollback()
            log.exception("computing %s %s failed", s.ot.name, anchor)
            return Retry(f"the pipeline could not compute this {s.kind.name}: {exc}", retry_after=RETRY_AFTER)
        failed = [e for e in entries.entries[seen:] if e["result"] == "failed"]
        if failed:
            return Invalid(f"the mapping of {s.ot.name} failed for this {s.kind.name}: {failed[-1]['error']}")
        if not export or not store.exports.all_pending_for(s.type_id, [anchor]):
            return None
        ctx.errors = {}
        result = export_one(ctx, s.ot, s.mapper, counts, ctx.opened, anchor, entries)
        if result["result"] == "ok":
            return None
        return _answer(ctx.errors.get((s.ot.name, anchor)), counts.error,
                       str(result.get("error") or "the target did not take the change"))

    def _follow(self) -> None:
        """Bring along what a change left to compute: a rename or move leaves the objects that
        name it by its old name marked (a report's ``manager`` DN, a group's ``member`` DN:
        ``stale_names``), an add the objects whose reference to it was left out while it did not
        exist. A run would send them in the same run, and so does the request, once its own
        object is done (holding their locks, none of its own). Their failures are in the
        provisioning log and their next change retries them; they do not fail the request, whose
        own change went through."""
        with self._lane() as lane:
            store = lane.store
            marked = {s.kind.name: store.compute.count_dirty(s.type_id) for s in self._served.values()}
            store.rollback()
            if not any(marked.values()):
                return
            try:
                with self._serve_run(store, lane.connectors, lane.opened) as (ctx, counts):
                    for s in self._served.values():
                        if marked[s.kind.name]:
                            self._bring_along(ctx, s, counts[s.ot.name])
            except Exception:
                log.exception("bringing along what a change left to compute failed")

    def _bring_along(self, ctx: RunContext, s: _Served, counts: TypeCounts) -> None:
        store = ctx.store
        anchors: set[str] = set()
        after: str | None = None
        while rows := store.compute.dirty_rows(s.type_id, after, 500, targets=False):
            after = rows[-1].anchor
            anchors.update(r.anchor for r in rows)
        store.rollback()
        for part in chunks(sorted(anchors)):
            with self._objects.hold(*part):
                compute_type(ctx, s.ot, s.mapper, counts, None, only=set(part))
                store.commit()
                if store.exports.all_pending_for(s.type_id, part):
                    ensure_open(ctx.connectors, s.ot.target.connector, ctx.opened)
                    export_type(ctx, s.ot, s.mapper, counts, PHASES, only=set(part))


def _write_only(s: _Served) -> list[str]:
    """The attributes a client writes and never reads back (``returned: never``: the password):
    kept in the source record only until the request's export went out."""
    return [a.name for a in s.kind.attributes_of(None).values() if a.returned == "never"]


def _present(store: StateStore, s: _Served) -> list[dict[str, Any]]:
    so = t.source_objects.c
    rows = store.conn.execute(sa.select(so.data).where(so.type_id == s.type_id, so.deleted.is_(False)))
    found = [json.loads(data) for (data,) in rows]
    store.rollback()  # end the read transaction
    return found


def _some(store: StateStore, s: _Served, anchors: list[str]) -> list[dict[str, Any]]:
    so = t.source_objects.c
    rows = store.conn.execute(sa.select(so.data).where(so.type_id == s.type_id, so.anchor.in_(anchors),
                                                       so.deleted.is_(False)))
    found = [json.loads(data) for (data,) in rows]
    store.rollback()
    return found


def _existing(store: StateStore, s: _Served, resource_id: str) -> dict[str, Any]:
    so = t.source_objects.c
    row = store.conn.execute(sa.select(so.data, so.deleted).where(
        so.type_id == s.type_id, so.anchor == resource_id)).first()
    store.rollback()
    if row is None or row.deleted:
        raise NotFound(f"{s.kind.name} {resource_id} not found")
    return json.loads(row.data)


def _answer(error: Exception | None, stopped: str | None, text: str) -> ScimError:
    """The SCIM error for an export that failed, by what failed: the connection (``stopped``: the
    pass stopped) or a retryable error (a timeout, a deadlock, throttling) is 503 with the
    target's own ``Retry-After`` when it gave one; anything else the target refused is its
    message, which Entra shows in its provisioning logs."""
    if stopped is not None:
        return Retry(f"the target cannot take the change now: {stopped}", retry_after=RETRY_AFTER)
    if isinstance(error, RetryableError):
        wait = RETRY_AFTER if error.retry_after is None else max(1, math.ceil(error.retry_after))
        return Retry(f"the target cannot take the change now: {error}", retry_after=wait)
    if isinstance(error, ConnectorError):
        return TargetRejected(str(error) or text)
    return TargetRejected(text)  # failed before reaching the target (a value it could not derive)


def _version_number(version: Any) -> int:
    digits = re.sub(r"\D", "", str(version or ""))
    return int(digits) if digits else 0


def _attributes(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k not in ("id", "meta", "schemas")}


def _record(kind: str, data: Mapping[str, Any]) -> Record:
    meta = data.get("meta") or {}
    created = _time(meta.get("created"))
    return Record(str(data["id"]), kind, _attributes(data), created, _time(meta.get("lastModified")) or created,
                  str(meta.get("version") or 'W/"1"'))


def _time(text: Any) -> datetime:
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return datetime.now(UTC)


def _precondition(s: _Served, data: Mapping[str, Any], if_match: str | None) -> None:
    version = str((data.get("meta") or {}).get("version") or "")
    if not etag_matches(if_match, version):
        raise PreconditionFailed(f"{s.kind.name} {data['id']} is at version {version}, not {if_match}")
