"""The export pass: send pending exports to the target and record each confirmation.

**Crash safety.** Before a round of operations goes to the connector, their pending exports are
marked in flight (``sent_run``) and that mark is committed. Results are recorded as they stream
back, at least every FLUSH_EVERY results or FLUSH_SECONDS, each commit clearing the marks of
what it records. A run killed anywhere (kill -9, OOM, a cron timeout) therefore leaves every
operation either recorded, or marked in doubt; never "applied but not recorded" looking like
"never sent". The next run resolves the ones in doubt before anything else
(:mod:`runner.engine.recovery`). Every commit renews the run's lock in the same transaction, so
a run whose lock was taken over cannot record anything (fencing).

**Order.**
1. Objects whose anchor changed (a delete and an add claiming the same name): one ``replace``
   when the connector declares DeleteAddAsReplace, else their deletes go first.
2. Adds, updates, renames and disables, parents before children (by name depth).
3. Deletes, children before parents (a group drops a member before the member is deleted).

References are rendered just before sending, in the form the target declares for the attribute:
its target anchor (SQL keys, SCIM ids) or its target name (LDAP DNs). An export that points at
an object of its own type whose add is still waiting is held back to a later round of the same
run, so a report is created after their manager; when no round makes progress (a cycle), the
rest go out with the unresolved references left out, recorded, and filled in once the object
exists.

Some changes take two operations: a password the connector cannot take inside the create (no
ExportPasswordInFirstPass) follows as ``set_password``; a rename with attribute changes is
followed by an update; a multi-valued change larger than the connector takes at once
(``max_values_per_operation``) goes in chunks. The next step is stored as a pending export in
the same commit that records the first, so a run killed in between finishes the job next time.

Operations go to the connector in parallel, as many at once as it declares (``concurrency:``
lowers it). An operation the connector reports as retryable is tried again later in the same
run, up to MAX_RETRIES times, after a backoff (the connector's ``retry_after`` when it gives
one; a :class:`Throttled` pause is honoured in full); then it fails like any other and stays
pending. Failed exports are retried by later runs on a back-off, and one that failed with a
:class:`PermanentError` is held until its source changes (:mod:`runner.engine.retries`): a sweep
sends only the exports that are due.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import defaultdict
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from runner.connectors.base import (
    AlreadyExists,
    Capabilities,
    ConnectionFailed,
    ConnectorError,
    NotFound,
    Operation,
    PermanentError,
    Result,
    RetryableError,
    Throttled,
)
from runner.engine.context import RunContext, TypeCounts
from runner.engine.diff import SENSITIVE, stored_form
from runner.engine.recovery import resolve
from runner.manifest.model import ObjectType
from runner.mapping.mapper import Mapper, MappingFailed, as_list
from runner.provlog import changes_for_log
from runner.state.records import (
    Added,
    Change,
    Confirmations,
    Deleted,
    Dropped,
    Failed,
    PendingExport,
    Recompute,
    Updated,
)
from runner.state.values import as_rows

BATCH = 500
FLUSH_EVERY = 500  # results recorded at least this often...
FLUSH_SECONDS = 1.0  # ...and at least this often
# (actions, children first?)
PHASES: tuple[tuple[tuple[str, ...], bool], ...] = (
    (("delete_first",), True),
    (("add", "replace", "update", "rename", "disable", "set_password"), False),
    (("delete",), True),
)
FORWARD, DELETES = PHASES[:2], PHASES[2:]
OP_KIND = {"delete_first": "delete"}

MAX_RETRIES = 3  # in-run retries of an operation the connector calls retryable (timeouts, throttling)
FIRST_BACKOFF = 0.5  # seconds; doubles per retry unless the connector says how long (retry_after)
MAX_BACKOFF = 60.0  # cap of our own backoff; a Throttled retry_after is honoured beyond it


def operation_key(ctx: RunContext, ot: ObjectType, row: PendingExport) -> str:
    """The stable identity of one pending change: the same on every re-send, new for the next change."""
    return f"{ctx.pipeline}/{ot.name}/{row.source_anchor}/{row.revision}"


@dataclass
class Prepared:
    """One pending export turned into an Operation, with what the state should record on success."""

    row: PendingExport
    op: Operation
    kept_set: dict[str, Any] = field(default_factory=dict)
    kept_add: dict[str, list[Any]] = field(default_factory=dict)
    removed: dict[str, list[Any]] = field(default_factory=dict)
    dropped: dict[str, set[str]] = field(default_factory=dict)  # ref type -> anchors left out
    followup: PendingExport | None = None  # the next step, stored once this one is confirmed


class Waiting(Exception):
    """The export references an object of its own type whose add has not been tried yet."""


def export_type(ctx: RunContext, ot: ObjectType, mapper: Mapper, counts: TypeCounts,
                phases: tuple[tuple[tuple[str, ...], bool], ...] = PHASES,
                only: Collection[str] | None = None, hold: Collection[str] = ()) -> None:
    """Run the given export phases for one object type. The engine runs FORWARD for every type in
    manifest order, then DELETES in reverse order, so objects that contain or reference others
    (users inside an OU, members of a group) are deleted before what they point at.

    ``only``: export just the pending exports of these anchors (``provision preview --apply``).
    ``hold``: actions not to send this run (the deletion guard); they stay pending."""
    ensure_alive(ctx, ot)
    exporter = _Exporter(ctx, ot, mapper, counts, only)
    if phases[0] == PHASES[0] and only is None:
        exporter.pair_replacements()
    for all_actions, deepest_first in phases:
        actions = tuple(a for a in all_actions if a not in hold)
        if not actions:
            continue
        force = False
        while True:
            sent, waiting = exporter.sweep(actions, deepest_first, force)
            if not waiting:
                break
            force = sent == 0  # no progress: a reference cycle; send the rest without those references
            exporter.back_off()
    ctx.store.prune_tombstones(ctx.type_ids[ot.name])
    ctx.heartbeat()
    ctx.store.commit()


def ensure_alive(ctx: RunContext, ot: ObjectType) -> None:
    """Reopen the target connection when it died while import and compute ran."""
    connector = ctx.target(ot)
    try:
        connector.ping()
    except ConnectionFailed as exc:
        ctx.logger.warning("%s: the target connection was lost (%s); reconnecting", ot.name, exc)
        connector.close()
        connector.open()


def concurrency(caps: Capabilities, ot: ObjectType) -> int:
    return max(1, min(caps.max_concurrency, ot.target.concurrency or caps.max_concurrency))


class _Exporter:
    def __init__(self, ctx: RunContext, ot: ObjectType, mapper: Mapper, counts: TypeCounts,
                 only: Collection[str] | None = None):
        self.ctx, self.ot, self.mapper, self.counts = ctx, ot, mapper, counts
        self.only = only
        self.store = ctx.store
        self.type_id = ctx.type_ids[ot.name]
        self.connector = ctx.target(ot)
        self.caps = ctx.caps(ot)
        self.threads = concurrency(self.caps, ot)
        self.done = Confirmations()
        self.flushed_at = time.monotonic()
        self.before: dict[str, tuple[dict[str, Any], bool]] = {}
        self.versions: dict[str, str] = {}  # target anchor -> recorded version, sent as a precondition
        self.retries: dict[str, int] = {}  # anchor -> retries this run (only objects that hit a retryable error)
        self.wait = 0.0  # seconds to wait before the next sweep, for the retries it holds
        self.throttled = False  # the target asked us to slow down: its pause is honoured in full
        self.again = 0  # follow-up steps and retries made by the current round
        self.exists: list[PendingExport] = []  # adds that found their object already there
        self.exists_why: dict[str, str] = {}

    def back_off(self) -> None:
        if self.wait:
            pause = self.wait if self.throttled else min(self.wait, MAX_BACKOFF)
            self.ctx.logger.info("%s: waiting %.1f s before retrying", self.ot.name, pause)
            time.sleep(pause)
            self.wait, self.throttled = 0.0, False

    def pair_replacements(self) -> None:
        """An add that takes the name a delete frees is the same object with a new anchor."""
        for add_anchor, delete_anchor, old_target in self.store.name_collisions(self.type_id):
            rows = {r.source_anchor: r for r in self.store.all_pending_for(self.type_id, [add_anchor, delete_anchor])}
            add, gone = rows[add_anchor], rows[delete_anchor]
            if self.caps.delete_add_as_replace:
                add.change.replaces, add.change.replaces_gone = delete_anchor, gone.change.gone
                self.store.update_pending(self.type_id, add_anchor, "replace", add.change, old_target)
                self.store.drop_pending(self.type_id, [delete_anchor])
            else:
                self.store.update_pending(self.type_id, delete_anchor, "delete_first", gone.change, old_target)
        self.store.commit()

    def sweep(self, actions: Sequence[str], deepest_first: bool, force: bool) -> tuple[int, int]:
        """One pass over the pending exports not yet tried this run. Returns (sent, still waiting)."""
        sent = waiting = 0
        after: tuple[int, str] | None = None
        while rows := self.store.pending_page(self.type_id, self.ctx.run_id, actions, after, BATCH, deepest_first,
                                              due=self.ctx.due):
            last = rows[-1]
            after = (-last.depth if deepest_first else last.depth, last.source_anchor)
            remaining = rows if self.only is None else [r for r in rows if r.source_anchor in self.only]
            while remaining:  # within a page, send in rounds so a manager goes before their reports
                self.again = 0
                ready, held = self._prepare(remaining, force)
                if ready:
                    self._send(ready)  # marks, sends and records: flushed when it returns
                else:
                    self._flush()
                self.ctx.check_stop()
                if not ready:
                    break
                sent += len(ready)
                waiting += self.again
                remaining = held
            waiting += len(remaining)
        return sent, waiting

    # ---- preparing operations -----------------------------------------------------------------

    def _prepare(self, rows: Sequence[PendingExport], force: bool) -> tuple[list[Prepared], list[PendingExport]]:
        refs = self._referenced(rows)
        targets = {(rt, form): self._known(rt, form, anchors, live_only=True) for (rt, form), anchors in refs.items()}
        own = self.ot.name
        own_refs = set().union(*(a for (rt, _), a in refs.items() if rt == own))
        own_known = set().union(*(targets[k].keys() for k in targets if k[0] == own))
        waiting_adds = set() if force or not own_refs else self.store.pending_adds(
            self.type_id, own_refs - own_known, self.ctx.run_id, due=self.ctx.due)
        anchors = [r.target_anchor for r in rows if r.target_anchor]
        self.before = self.store.targets_data(self.type_id, anchors) if anchors else {}
        self.versions = self.store.target_versions(self.type_id, anchors) if anchors and self.caps.versioned else {}
        ready: list[Prepared] = []
        held: list[PendingExport] = []
        for i, row in enumerate(rows):
            try:
                ready.append(self._operation(i, row, targets, waiting_adds))
            except Waiting:
                held.append(row)
            except MappingFailed as exc:
                self._failed(row, f"cannot derive sensitive value: {exc}")
        return ready, held

    def _known(self, ref_type: str, form: str, anchors: Collection[str], live_only: bool) -> dict[str, str]:
        """source anchor -> how the target names it (its anchor, or its name)."""
        type_id = self.ctx.type_ids[ref_type]
        if form == "name":
            return self.store.target_names(type_id, anchors, live_only=live_only)
        return self.store.target_anchors(type_id, anchors, live_only=live_only)

    def _referenced(self, rows: Sequence[PendingExport]) -> dict[tuple[str, str], set[str]]:
        refs: dict[tuple[str, str], set[str]] = defaultdict(set)
        for row in rows:
            for part in (row.change.set, row.change.add, row.change.remove):
                for attr, value in part.items():
                    ref_type = self.mapper.references.get(attr)
                    if ref_type is not None:
                        refs[(ref_type, self.caps.reference_form(attr))].update(str(v) for v in as_list(value))
        return refs

    def _operation(self, index: int, row: PendingExport, targets: dict[tuple[str, str], dict[str, str]],
                   waiting_adds: set[str]) -> Prepared:
        change, action = row.change, row.action
        prepared = Prepared(row, Operation(index, action, self.ot.target.object))
        chunked = self._chunk(row)
        set_values = dict(change.set)
        if chunked is not None:  # a first chunk now; the rest follows once it is confirmed
            set_values.update(chunked[0])
        attributes: dict[str, Any] = {}
        clear: dict[str, Any] | None = None
        for attr, value in set_values.items():
            if value == SENSITIVE:
                clear = clear or self._clear_values(row.source_anchor)
                value = clear.get(attr)
            attributes[attr], prepared.kept_set[attr] = self._resolve(attr, value, targets, waiting_adds, prepared)
        add_values: dict[str, list[Any]] = {}
        for attr, values in (chunked[1] if chunked else change.add).items():
            add_values[attr], prepared.kept_add[attr] = self._resolve(attr, values, targets, waiting_adds, prepared)
        remove_values: dict[str, list[Any]] = {}
        for attr, values in (chunked[2] if chunked else change.remove).items():
            prepared.removed[attr] = list(values)
            remove_values[attr] = self._resolve_removed(attr, values)
        whole_lists = not self.caps.multi_valued_deltas or self.caps.export_style != "delta"
        if whole_lists and (add_values or remove_values):
            before = self.before.get(row.target_anchor or "", ({}, False))[0]
            for attr in set(add_values) | set(remove_values):
                full = (set(before.get(attr, [])) | set(prepared.kept_add.get(attr, []))) - set(prepared.removed.get(attr, []))
                attributes[attr], _ = self._resolve(attr, sorted(full, key=str), targets, set(), prepared)
            add_values, remove_values = {}, {}
        kind, password = OP_KIND.get(action, action), None
        passwords = {a: attributes.pop(a) for a in list(attributes) if a in self.mapper.passwords}
        if action == "rename":
            if change.attribute_changes():
                prepared.followup = self._next(row, "update", Change(set=change.set, add=change.add,
                                                                     remove=change.remove, old=change.old,
                                                                     followup=True))
            attributes, add_values, remove_values, prepared.kept_set, prepared.kept_add, prepared.removed = \
                {}, {}, {}, {}, {}, {}
        elif passwords:
            password = next(iter(passwords.values()))
            first_pass = kind in ("add", "replace") and self.caps.password_in_first_pass
            only_password = kind in ("update", "set_password") and not (attributes or add_values or remove_values)
            if only_password:
                kind = "set_password"
            elif not first_pass:
                for attr in passwords:  # the object is created without it; the state learns it with the second step
                    prepared.kept_set.pop(attr, None)
                prepared.followup = self._next(row, "set_password",
                                               Change(set={a: SENSITIVE for a in passwords}, followup=True))
                password = None
        if chunked is not None and prepared.followup is None:
            prepared.followup = self._next(row, "update", chunked[3])
        prepared.op = Operation(
            index, kind, self.ot.target.object, anchor=row.target_anchor,
            name=change.name or row.name, attributes=attributes, add_values=add_values,
            remove_values=remove_values, password=password, partition=change.partition or row.partition,
            old_name=change.old_name, key=operation_key(self.ctx, self.ot, row), source_anchor=row.source_anchor,
            attempt=row.attempts + 1, old_partition=change.old_partition,
            version=self.versions.get(row.target_anchor or "") if row.action != "add" else None)
        return prepared

    def _next(self, row: PendingExport, action: str, change: Change) -> PendingExport:
        return PendingExport(row.source_anchor, action, row.target_anchor, change, row.change.name or row.name,
                             row.depth, row.change.partition or row.partition)

    def _chunk(self, row: PendingExport) -> tuple[dict[str, list[Any]], dict[str, list[Any]],
                                                  dict[str, list[Any]], Change] | None:
        """Split a multi-valued change bigger than the connector takes in one operation:
        (lists to set now, values to add now, values to remove now, the rest as a follow-up)."""
        limit = self.caps.max_values_per_operation
        if not limit or row.action not in ("add", "update") or self._needs_password_step(row):
            return None
        sets = {a: v for a, v in row.change.set.items() if a in self.mapper.multi_valued and isinstance(v, list)}
        total = sum(map(len, sets.values())) + sum(map(len, row.change.add.values())) + \
            sum(map(len, row.change.remove.values()))
        if total <= limit:
            return None
        budget = limit
        now_set, now_add, now_remove, rest = {}, {}, {}, Change(followup=True)
        for source, now, later in ((row.change.remove, now_remove, rest.remove), (sets, now_set, rest.add),
                                   (row.change.add, now_add, rest.add)):
            for attr, values in source.items():
                take = values[:budget]
                budget -= len(take)
                now[attr] = take
                if values[len(take):]:
                    later.setdefault(attr, []).extend(values[len(take):])
        return now_set, now_add, now_remove, rest

    def _needs_password_step(self, row: PendingExport) -> bool:
        return row.action in ("add", "replace") and not self.caps.password_in_first_pass and \
            any(a in self.mapper.passwords for a in row.change.set)

    def _clear_values(self, anchor: str) -> dict[str, Any]:
        """Sensitive values are never stored: map the source object again to get them."""
        data = self.store.source_data(self.type_id, anchor)
        return self.mapper.map(data) if data is not None else {}

    def _resolve(self, attr: str, value: Any, targets: dict[tuple[str, str], dict[str, str]],
                 waiting_adds: set[str], prepared: Prepared) -> tuple[Any, Any]:
        """(value to send, value to record): references become target anchors or names; missing
        ones are left out."""
        ref_type = self.mapper.references.get(attr)
        if ref_type is None:
            return value, value
        known = targets.get((ref_type, self.caps.reference_form(attr)), {})
        if ref_type == self.ot.name and any(str(v) in waiting_adds for v in as_list(value)):
            raise Waiting
        missing = {str(v) for v in as_list(value) if str(v) not in known}
        if missing:
            prepared.dropped.setdefault(ref_type, set()).update(missing)
        if isinstance(value, list):
            kept = [v for v in value if str(v) not in missing]
            return [known[str(v)] for v in kept], kept
        if value is None or str(value) in missing:
            return None, None
        return known[str(value)], value

    def _resolve_removed(self, attr: str, values: list[Any]) -> list[Any]:
        ref_type = self.mapper.references.get(attr)
        if ref_type is None:
            return list(values)
        known = self._known(ref_type, self.caps.reference_form(attr), [str(v) for v in values], live_only=False)
        return [known[str(v)] for v in values if str(v) in known]

    # ---- sending and recording ----------------------------------------------------------------

    def _send(self, prepared: list[Prepared]) -> None:
        """Mark the round in flight (committed), then send it one depth at a time (a parent is
        confirmed before its children go out, even in parallel), recording results as they come.
        If the connection fails, what was confirmed is committed before the pass stops; what was
        sent without a result stays in doubt for the next run, what was never sent is not."""
        self.store.mark_sent(self.type_id, self.ctx.run_id, [p.row.source_anchor for p in prepared])
        self._flush()
        by_id = {p.op.id: p for p in prepared}
        seen: set[int] = set()
        failure: ConnectionFailed | None = None
        levels = _levels(prepared)
        for number, level in enumerate(levels):
            sent_ids = {p.op.id for p in level}
            for result in self._stream([p.op for p in level]):
                if isinstance(result, ConnectionFailed):
                    failure = result
                    break
                if result.op_id in seen or result.op_id not in sent_ids:
                    continue  # a connector must report each operation once; ignore anything else
                seen.add(result.op_id)
                self._record(by_id[result.op_id], result)
                self._maybe_flush()
            if failure is not None or (self.ctx.options.stop and number < len(levels) - 1):
                self.done.resend += [p.row.source_anchor for later in levels[number + 1:] for p in later]
                break
        if failure is None:
            for op_id, p in by_id.items():
                if op_id not in seen and p.row.source_anchor not in self.done.resend:
                    self._failed(p.row, "the connector reported no result for this operation")
        self._flush()
        if self.exists:
            self.again += resolve(self.ctx, self.ot, self.mapper, self.exists, self.counts, self.exists_why)
            self.exists, self.exists_why = [], {}
        if failure is not None:
            raise failure

    def _stream(self, ops: list[Operation]) -> Iterator[Result | ConnectionFailed]:
        """Results as the connector produces them, from as many threads as it takes at once.

        Each operation is in exactly one share; the shares hold different objects, so the order
        of one object's operations never depends on thread timing. Results arrive in the main
        thread (which alone owns the state store); a connection failure comes last, after every
        result that arrived before it."""
        if self.threads == 1 or len(ops) == 1:
            try:
                yield from self.connector.apply(ops)
            except ConnectionFailed as exc:
                yield exc
            return
        shares = [s for s in (ops[i::self.threads] for i in range(self.threads)) if s]
        # unbounded: it never holds more than this level's results and a marker per thread; a
        # SimpleQueue hands each result over without queue.Queue's locking in Python, which the
        # worker threads would contend for (with the main thread) on every result
        inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        done_marker = object()

        def run(share: list[Operation]) -> None:
            try:
                for result in self.connector.apply(share):
                    inbox.put(result)
            except BaseException as exc:  # noqa: BLE001 - handed to the main thread, re-raised there
                inbox.put(exc)
            finally:
                inbox.put(done_marker)

        workers = [threading.Thread(target=run, args=(s,), name=f"export-{i}", daemon=True)
                   for i, s in enumerate(shares)]
        for w in workers:
            w.start()
        running, failure, crash = len(workers), None, None
        while running:
            item = inbox.get()
            if item is done_marker:
                running -= 1
            elif isinstance(item, ConnectionFailed):
                failure = failure or item
            elif isinstance(item, BaseException):
                crash = crash or item
            else:
                yield item
        for w in workers:
            w.join()
        if crash is not None:
            raise crash
        if failure is not None:
            yield failure

    def _maybe_flush(self) -> None:
        if len(self.done) >= FLUSH_EVERY or time.monotonic() - self.flushed_at >= FLUSH_SECONDS:
            self._flush()

    def _flush(self) -> None:
        """Record the confirmations, failures and log entries gathered so far in one commit,
        fenced by the run's lock."""
        self.store.record(self.type_id, self.ctx.run_id, self.done)
        self.ctx.log.flush()
        self.ctx.heartbeat()
        self.store.commit()
        self.done = Confirmations()
        self.flushed_at = time.monotonic()

    def _record(self, p: Prepared, result: Result) -> None:
        row, action, done = p.row, p.row.action, self.done
        if not result.ok and not (action in ("delete", "delete_first") and isinstance(result.error, NotFound)):
            self._record_failure(row, action, result.error)
            return
        digest = self.store.sensitive_digest
        name = result.name or p.op.name
        partition = p.op.partition
        target_anchor = str(result.anchor or row.target_anchor or "")
        if action in ("add", "replace"):
            data = {k: stored_form(k, v, self.mapper, digest) for k, v in p.kept_set.items()}
            data.update(self._stored(result))
            if action == "replace":
                done.deletes.append(Deleted(row.change.replaces or "", row.target_anchor, row.change.replaces_gone))
                self.counts.count("delete", source_present=not row.change.replaces_gone)
            done.adds.append(Added(row.source_anchor, target_anchor, data, name, partition, result.version))
            changes = changes_for_log(p.kept_set, None, self.mapper.sensitive)
        elif action in ("delete", "delete_first"):
            done.deletes.append(Deleted(row.source_anchor, row.target_anchor, row.change.gone))
            changes = {}
        else:
            before = self.before.get(row.target_anchor or "", ({}, False))[0]
            # multi-valued attributes kept as value rows change by difference, never rewritten whole
            data = {k: v for k, v in before.items() if not as_rows(v)}
            added, removed = dict(p.kept_add), dict(p.removed)
            for attr in set(added) | set(removed):
                if attr in data:  # a list kept inside the object's data (values too long for rows)
                    data[attr] = sorted((set(data[attr]) | set(added.pop(attr, []))) - set(removed.pop(attr, [])),
                                        key=str)
            for attr, value in p.kept_set.items():
                data[attr] = stored_form(attr, value, self.mapper, digest)
            stored = self._stored(result)
            if any(data.get(k) != v for k, v in stored.items()
                   if k not in p.kept_set and k not in self.mapper.multi_valued):
                # the target holds other values than the state knew (it re-read the object after a
                # version conflict): compute the object again next run, against what is there
                done.dirty.append(row.source_anchor)
            data.update(stored)
            done.updates.append(Updated(row.source_anchor, row.target_anchor or "", target_anchor, data,
                                        action == "disable", name, partition, result.version, added, removed))
            changes = self._log_changes(p, before)
            if action == "rename":
                changes["__name__"] = {"old": row.change.old_name, "new": name}
        if p.followup is not None:
            p.followup.target_anchor = target_anchor
            done.followups.append(p.followup)
            self.again += 1
        for ref_type, anchors in p.dropped.items():
            done.dropped += [Dropped(row.source_anchor, self.ctx.type_ids[ref_type], a) for a in anchors]
        if not row.change.followup:
            self.counts.count(action, source_present=not row.change.gone)
        self.ctx.log.add(self.ot.name, row.source_anchor, OP_KIND.get(action, action), "ok", changes=changes,
                         target_anchor=target_anchor or None)

    def _record_failure(self, row: PendingExport, action: str, error: ConnectorError | None) -> None:
        done = self.done
        if isinstance(error, NotFound) and action in ("update", "disable", "rename", "set_password"):
            done.recompute.append(Recompute(row.source_anchor, row.target_anchor or ""))
            done.settled.append(row.source_anchor)
            self._failed(row, f"{error}; the object is gone from the target and will be created again "
                              "on the next run", record=False)
            return
        if isinstance(error, NotFound) and action == "replace":
            # the object it replaces is gone already: an add of the new one is all that is left
            row.change.replaces = None
            done.followups.append(PendingExport(row.source_anchor, "add", None, row.change, row.name, row.depth,
                                                row.partition))
            done.settled.append(row.source_anchor)
            self.again += 1
            return
        if isinstance(error, AlreadyExists) and action == "add":
            # an object made by someone else, or by a run whose result was lost: it is looked up
            # by its correlation and adopted once this round is recorded (it stays in flight
            # until then, so a kill meanwhile leaves it to the next run's recovery)
            self.exists.append(row)
            self.exists_why[row.source_anchor] = _error_text(error)
            return
        if isinstance(error, RetryableError) and self._retry(row, error):
            return
        self._failed(row, _error_text(error), permanent=isinstance(error, PermanentError))

    def _stored(self, result: Result) -> dict[str, Any]:
        """Values the target says it stored (normalised), for attributes that are not references."""
        if not result.stored:
            return {}
        return {k: v for k, v in result.stored.items()
                if k in self.mapper.names and k not in self.mapper.references and k not in self.mapper.sensitive}

    def _log_changes(self, p: Prepared, before: dict[str, Any]) -> dict[str, Any]:
        """Single values as old/new; multi-valued ones as the values added and removed, never whole lists."""
        changes = changes_for_log(p.kept_set, {k: before.get(k) for k in p.kept_set}, self.mapper.sensitive)
        for attr, values in p.kept_add.items():
            if values:
                changes.setdefault(attr, {})["add"] = values
        for attr, values in p.removed.items():
            if values:
                changes.setdefault(attr, {})["remove"] = values
        return changes

    def _retry(self, row: PendingExport, error: RetryableError) -> bool:
        """Keep a retryable failure for a later sweep of this run, with backoff; False once spent."""
        tries = self.retries.get(row.source_anchor, 0) + 1
        if tries > MAX_RETRIES:
            return False
        self.retries[row.source_anchor] = tries
        self.done.retries.append(Failed(row.source_anchor, _error_text(error)))
        self.again += 1
        pause = error.retry_after if error.retry_after is not None else FIRST_BACKOFF * 2 ** (tries - 1)
        self.throttled = self.throttled or isinstance(error, Throttled)
        self.wait = max(self.wait, pause)
        return True

    def _failed(self, row: PendingExport, error: str, permanent: bool = False, record: bool = True) -> None:
        if record:
            self.done.failures.append(Failed(row.source_anchor, error, permanent))
        self.counts.failed += 1
        self.counts.touched += not row.change.gone
        self.ctx.log.add(self.ot.name, row.source_anchor, OP_KIND.get(row.action, row.action), "failed",
                         error=error, target_anchor=row.target_anchor)


def _levels(prepared: list[Prepared]) -> list[list[Prepared]]:
    """Consecutive operations of the same name depth (the page comes sorted by depth)."""
    levels: list[list[Prepared]] = []
    for p in prepared:
        if levels and levels[-1][0].row.depth == p.row.depth:
            levels[-1].append(p)
        else:
            levels.append([p])
    return levels


def _error_text(error: ConnectorError | None) -> str:
    if error is None:
        return "failed without a reason"
    return f"{type(error).__name__}: {error}"
