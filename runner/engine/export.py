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
lowers it). Worker threads live as long as the pass and take each round in small shares; while
they send one round, the main thread records the previous one's results and prepares and marks
the next, so the target's connections are not left waiting for the state store. At most two
rounds are in flight; a round waits for the one before it when it is one name depth deeper
(parents first) or holds exports that waited for an add still in flight (a manager). An operation the connector reports as retryable is tried again later in the same
run, up to MAX_RETRIES times, after a backoff (the connector's ``retry_after`` when it gives
one; a :class:`Throttled` pause is honoured in full); then it fails like any other and stays
pending. Failed exports are retried by later runs on a back-off, and one that failed with a
:class:`PermanentError` is held until its source changes (:mod:`runner.retries`): a sweep
sends only the exports that are due.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from runner.actions import Action
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
from runner.state.reconcile import GONE_PREFIX
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
SHARES_PER_THREAD = 4  # a round is dealt in this many shares per thread, so no thread idles at its end
FLUSH_EVERY = 500  # results recorded at least this often...
FLUSH_SECONDS = 1.0  # ...and at least this often
# (actions, children first?)
PHASES: tuple[tuple[tuple[Action, ...], bool], ...] = (
    ((Action.DELETE_FIRST,), True),
    ((Action.ADD, Action.REPLACE, Action.UPDATE, Action.RENAME, Action.DISABLE, Action.SET_PASSWORD), False),
    ((Action.DELETE,), True),
)
FORWARD, DELETES = PHASES[:2], PHASES[2:]
OP_KIND = {Action.DELETE_FIRST: Action.DELETE}

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
    before: dict[str, Any] = field(default_factory=dict)  # what the state knew of the target object


class Waiting(Exception):
    """The export references an object of its own type whose add has not been tried yet."""


def export_type(ctx: RunContext, ot: ObjectType, mapper: Mapper, counts: TypeCounts,
                phases: tuple[tuple[tuple[str, ...], bool], ...] = PHASES,
                only: Collection[str] | None = None, hold: Collection[str] = ()) -> dict[str, str]:
    """Run the given export phases for one object type. The engine runs FORWARD for every type in
    manifest order, then DELETES in reverse order, so objects that contain or reference others
    (users inside an OU, members of a group) are deleted before what they point at.

    ``only``: export just the pending exports of these anchors (``provision preview --apply``).
    ``hold``: actions not to send this run (the deletion guard); they stay pending.

    Returns the objects found gone from the target by an update (source anchor -> the target
    anchor they had): their links are dropped, and the caller computes and exports them again,
    so they are created again in the same run."""
    ensure_alive(ctx, ot)
    exporter = _Exporter(ctx, ot, mapper, counts, only)
    try:
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
    finally:
        exporter.close()
    ctx.store.prune_tombstones(ctx.type_ids[ot.name])
    ctx.heartbeat()
    ctx.store.commit()
    return exporter.gone


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
        self.gone: dict[str, str] = {}  # source anchor -> target anchor, of objects an update found gone
        self.exists: list[PendingExport] = []  # adds that found their object already there
        self.exists_why: dict[str, str] = {}
        self.next_id = 0  # operation ids, unique within the pass: rounds overlap
        self.flight: dict[int, Prepared] = {}  # operation id -> sent, no result yet
        self.flight_adds: set[str] = set()  # source anchors of adds sent and not yet recorded or adopted
        self.flight_depth: int | None = None
        self.failure: ConnectionFailed | None = None
        self.crash: BaseException | None = None  # a connector bug in a worker: re-raised here
        self.workers = _Workers(self.connector, self.threads, self.caps.batch_size) if self.threads > 1 else None

    def close(self) -> None:
        if self.workers is not None:
            self.workers.close()

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
                self.store.update_pending(self.type_id, add_anchor, Action.REPLACE, add.change, old_target)
                self.store.drop_pending(self.type_id, [delete_anchor])
            else:
                self.store.update_pending(self.type_id, delete_anchor, Action.DELETE_FIRST, gone.change, old_target)
        self.store.commit()

    def sweep(self, actions: Sequence[str], deepest_first: bool, force: bool) -> tuple[int, int]:
        """One pass over the pending exports not yet tried this run. Returns (sent, still waiting)."""
        sent = waiting = 0
        self.again = 0
        after: tuple[int, str] | None = None
        while rows := self.store.pending_page(self.type_id, self.ctx.run_id, actions, after, BATCH, deepest_first,
                                              due=self.ctx.due):
            last = rows[-1]
            after = (-last.depth if deepest_first else last.depth, last.source_anchor)
            remaining = rows if self.only is None else [r for r in rows if r.source_anchor in self.only]
            again = False
            while remaining:  # within a page, send in rounds so a manager goes before their reports
                if self._busy() and (again or remaining[0].depth != self.flight_depth):
                    self._settle()  # held rows wait for what they reference; children for their parents
                ready, held = self._prepare(remaining, force)
                for level in _levels(ready):
                    if self._busy() and level[0].row.depth != self.flight_depth:
                        self._settle()
                    self._submit(level)
                    self._settle(rounds_left=1)  # the one just handed over runs while the next is prepared
                if self.ctx.options.stop:
                    self._settle()
                    self.ctx.check_stop()
                if not ready:
                    break
                sent += len(ready)
                remaining, again = held, True
            waiting += len(remaining)
        self._settle()
        self.ctx.check_stop()
        return sent, waiting + self.again

    # ---- preparing operations -----------------------------------------------------------------

    def _prepare(self, rows: Sequence[PendingExport], force: bool) -> tuple[list[Prepared], list[PendingExport]]:
        anchors = [r.target_anchor for r in rows if r.target_anchor]
        self.before = self.store.targets_data(self.type_id, anchors) if anchors else {}
        self.versions = self.store.target_versions(self.type_id, anchors) if anchors and self.caps.versioned else {}
        refs = self._referenced(rows)
        targets = {(rt, form): self._known(rt, form, anchors, live_only=True) for (rt, form), anchors in refs.items()}
        own = self.ot.name
        own_refs = set().union(*(a for (rt, _), a in refs.items() if rt == own))
        own_known = set().union(*(targets[k].keys() for k in targets if k[0] == own))
        waiting_adds = set() if force or not own_refs else self.store.pending_adds(
            self.type_id, own_refs - own_known, self.ctx.run_id, due=self.ctx.due) | (own_refs & self.flight_adds)
        ready: list[Prepared] = []
        held: list[PendingExport] = []
        for row in rows:
            self.next_id += 1
            try:
                ready.append(self._operation(self.next_id, row, targets, waiting_adds))
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

    @property
    def _whole_lists(self) -> bool:
        """Multi-valued changes go out as whole lists (what the target holds, changed), not as values."""
        return not self.caps.multi_valued_deltas or self.caps.export_style != "delta"

    def _referenced(self, rows: Sequence[PendingExport]) -> dict[tuple[str, str], set[str]]:
        """The objects the rows' references name, by type and form; for changes sent as whole lists,
        the values the target holds too (each is sent again)."""
        refs: dict[tuple[str, str], set[str]] = defaultdict(set)
        for row in rows:
            parts = [row.change.set, row.change.add, row.change.remove]
            if self._whole_lists and (row.change.add or row.change.remove):
                before = self.before.get(row.target_anchor or "", ({}, False))[0]
                parts.append({a: before.get(a) or [] for a in set(row.change.add) | set(row.change.remove)})
            for part in parts:
                for attr, value in part.items():
                    ref_type = self.mapper.references.get(attr)
                    if ref_type is not None:
                        refs[(ref_type, self.caps.reference_form(attr))].update(str(v) for v in as_list(value))
        return refs

    def _operation(self, index: int, row: PendingExport, targets: dict[tuple[str, str], dict[str, str]],
                   waiting_adds: set[str]) -> Prepared:
        change, action = row.change, row.action
        prepared = Prepared(row, Operation(index, action, self.ot.target.object),
                            before=self.before.get(row.target_anchor or "", ({}, False))[0])
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
        if self._whole_lists and (add_values or remove_values):
            before = prepared.before
            for attr in set(add_values) | set(remove_values):
                full = (set(before.get(attr, [])) | set(prepared.kept_add.get(attr, []))) - set(prepared.removed.get(attr, []))
                attributes[attr], _ = self._resolve(attr, sorted(full, key=str), targets, set(), prepared)
            add_values, remove_values = {}, {}
        kind, password = OP_KIND.get(action, action), None
        passwords = {a: attributes.pop(a) for a in list(attributes) if a in self.mapper.passwords}
        if action == Action.RENAME:
            if change.attribute_changes():
                prepared.followup = self._next(row, Action.UPDATE, Change(set=change.set, add=change.add,
                                                                     remove=change.remove, old=change.old,
                                                                     followup=True))
            attributes, add_values, remove_values, prepared.kept_set, prepared.kept_add, prepared.removed = \
                {}, {}, {}, {}, {}, {}
        elif passwords:
            password = next(iter(passwords.values()))
            first_pass = kind in (Action.ADD, Action.REPLACE) and self.caps.password_in_first_pass
            only_password = kind in (Action.UPDATE, Action.SET_PASSWORD) and not (attributes or add_values or remove_values)
            if only_password:
                kind = Action.SET_PASSWORD
            elif not first_pass:
                for attr in passwords:  # the object is created without it; the state learns it with the second step
                    prepared.kept_set.pop(attr, None)
                prepared.followup = self._next(row, Action.SET_PASSWORD,
                                               Change(set={a: SENSITIVE for a in passwords}, followup=True))
                password = None
        if chunked is not None and prepared.followup is None:
            prepared.followup = self._next(row, Action.UPDATE, chunked[3])
        prepared.op = Operation(
            index, kind, self.ot.target.object, anchor=row.target_anchor,
            name=change.name or row.name, attributes=attributes, add_values=add_values,
            remove_values=remove_values, password=password, partition=change.partition or row.partition,
            old_name=change.old_name, key=operation_key(self.ctx, self.ot, row), source_anchor=row.source_anchor,
            attempt=row.attempts + 1, old_partition=change.old_partition,
            version=self.versions.get(row.target_anchor or "") if row.action != Action.ADD else None)
        return prepared

    def _next(self, row: PendingExport, action: str, change: Change) -> PendingExport:
        return PendingExport(row.source_anchor, action, row.target_anchor, change, row.change.name or row.name,
                             row.depth, row.change.partition or row.partition)

    def _chunk(self, row: PendingExport) -> tuple[dict[str, list[Any]], dict[str, list[Any]],
                                                  dict[str, list[Any]], Change] | None:
        """Split a multi-valued change bigger than the connector takes in one operation:
        (lists to set now, values to add now, values to remove now, the rest as a follow-up)."""
        limit = self.caps.max_values_per_operation
        if not limit or row.action not in (Action.ADD, Action.UPDATE) or self._needs_password_step(row):
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
        return row.action in (Action.ADD, Action.REPLACE) and not self.caps.password_in_first_pass and \
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
        return [known[str(v)] if str(v) in known else str(v)[len(GONE_PREFIX):] for v in values
                if str(v) in known or str(v).startswith(GONE_PREFIX)]  # the old anchor of a re-created object

    # ---- sending and recording ----------------------------------------------------------------

    def _busy(self) -> bool:
        return bool(self.flight) or (self.workers is not None and self.workers.rounds_in_flight() > 0)

    def _submit(self, prepared: list[Prepared]) -> None:
        """Mark a round in flight (committed), then hand it over. With one thread it is sent and
        recorded here; with several, the workers take it while this thread prepares the next
        round, so the target's connections do not wait for the state store."""
        self.store.mark_sent(self.type_id, self.ctx.run_id, [p.row.source_anchor for p in prepared])
        self._flush()
        for p in prepared:
            self.flight[p.op.id] = p
            if p.row.action == Action.ADD:
                self.flight_adds.add(p.row.source_anchor)
        self.flight_depth = prepared[0].row.depth
        if self.workers is None:
            ops = [p.op for p in prepared]
            try:
                for result in self.connector.apply(ops):
                    self._take(result)
            except ConnectionFailed as exc:
                self._chunk_done(ops, started=True, failure=exc)
            else:
                self._chunk_done(ops, started=True, failure=None)
            self._settle()
            return
        self.workers.submit([p.op for p in prepared])

    def _settle(self, rounds_left: int = 0) -> None:
        """Record results until at most ``rounds_left`` rounds are in flight; when none is, resolve
        the adds that found their object already there. A connection failure is raised once
        everything sent before it is recorded: what was sent without a result stays in doubt for
        the next run, what was never sent is not."""
        processed = False
        while self.workers is not None and \
                self.workers.rounds_in_flight() > (0 if self.failure or self.crash else rounds_left):
            processed = True
            item = self.workers.inbox.get()
            if isinstance(item, _ChunkDone):
                self.workers.finished(item)
                self._chunk_done(item.ops, item.started, item.failure)
            elif isinstance(item, _Crash):
                self.crash = self.crash or item.error
                self.workers.cancel()
            else:
                self._take(item)
            if self.ctx.options.stop or self.failure is not None:
                self.workers.cancel()  # what no worker has started yet is not sent this run
        if processed or rounds_left == 0 or self.failure is not None:
            self._flush()  # the next round is prepared against what this one confirmed
        if rounds_left == 0 or self.failure is not None:
            if self.exists and self.failure is None:
                self.again += resolve(self.ctx, self.ot, self.mapper, self.exists, self.counts, self.exists_why)
                self.exists, self.exists_why = [], {}
            self.flight_adds.clear()
        if self.crash is not None:  # everything in flight was recorded above
            crash, self.crash = self.crash, None
            raise crash
        if self.failure is not None:
            failure, self.failure = self.failure, None
            raise failure

    def _take(self, result: Result) -> None:
        p = self.flight.pop(result.op_id, None)
        if p is None:
            return  # a connector must report each operation once; ignore anything else
        self._record(p, result)
        if p.row.action == Action.ADD and not (self.exists and self.exists[-1] is p.row):
            self.flight_adds.discard(p.row.source_anchor)  # one that found its object there waits for adoption
        self._maybe_flush()

    def _chunk_done(self, ops: list[Operation], started: bool, failure: ConnectionFailed | None) -> None:
        """A share came back, after every result it produced. What it never sent is sent again
        later; after a connection failure, what it sent without a result stays in doubt (marked
        in flight) for the next run's recovery; otherwise an operation without a result failed."""
        if failure is not None:
            self.failure = self.failure or failure
        for op in ops:
            p = self.flight.pop(op.id, None)
            if p is None:
                continue
            if p.row.action == Action.ADD:
                self.flight_adds.discard(p.row.source_anchor)
            if not started:
                self.done.resend.append(p.row.source_anchor)
            elif failure is None:
                self._failed(p.row, "the connector reported no result for this operation")

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
        if not result.ok and not (action in (Action.DELETE, Action.DELETE_FIRST) and isinstance(result.error, NotFound)):
            self._record_failure(row, action, result.error)
            return
        digest = self.store.sensitive_digest
        name = result.name or p.op.name
        partition = p.op.partition
        target_anchor = str(result.anchor or row.target_anchor or "")
        if action in (Action.ADD, Action.REPLACE):
            data = {k: stored_form(k, v, self.mapper, digest) for k, v in p.kept_set.items()}
            data.update(self._stored(result))
            if action == Action.REPLACE:
                done.deletes.append(Deleted(row.change.replaces or "", row.target_anchor, row.change.replaces_gone))
                self.counts.count(Action.DELETE, source_present=not row.change.replaces_gone)
            done.adds.append(Added(row.source_anchor, target_anchor, data, name, partition, result.version))
            changes = changes_for_log(p.kept_set, None, self.mapper.sensitive)
        elif action in (Action.DELETE, Action.DELETE_FIRST):
            done.deletes.append(Deleted(row.source_anchor, row.target_anchor, row.change.gone))
            changes = {}
        else:
            before = p.before
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
                                        action == Action.DISABLE, name, partition, result.version, added, removed,
                                        tuple(sorted({*p.kept_set, *p.kept_add, *p.removed}))))
            changes = self._log_changes(p, before)
            if action == Action.RENAME:
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
        if isinstance(error, NotFound) and action in (Action.UPDATE, Action.DISABLE, Action.RENAME, Action.SET_PASSWORD):
            # gone from the target (deleted by hand): the link goes, and the run computes and
            # sends it again as an add (export_type returns these)
            done.recompute.append(Recompute(row.source_anchor, row.target_anchor or ""))
            done.settled.append(row.source_anchor)
            self.gone[row.source_anchor] = row.target_anchor or ""
            self.ctx.log.add(self.ot.name, row.source_anchor, OP_KIND.get(action, action), "failed",
                             error=f"{_error_text(error)}; the object is gone from the target: it is created again",
                             target_anchor=row.target_anchor)
            return
        if isinstance(error, NotFound) and action == Action.REPLACE:
            # the object it replaces is gone already: an add of the new one is all that is left
            row.change.replaces = None
            done.followups.append(PendingExport(row.source_anchor, Action.ADD, None, row.change, row.name, row.depth,
                                                row.partition))
            done.settled.append(row.source_anchor)
            self.again += 1
            return
        if isinstance(error, AlreadyExists) and action == Action.ADD:
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


@dataclass
class _ChunkDone:
    """A worker finished a share: every result it produced is in the inbox before this."""

    round: int
    ops: list[Operation]
    started: bool
    failure: ConnectionFailed | None


class _Workers:
    """Threads that apply shares of operations as they are handed over, for connectors that take
    several at once. Results (and a :class:`_ChunkDone` per share) arrive in one inbox that only
    the main thread reads: it alone owns the state store. A round is dealt into small shares so a
    slow operation holds up one thread, not the round; each share holds different objects, so the
    order of one object's operations never depends on thread timing."""

    def __init__(self, connector: Any, threads: int, batch_size: int = 1):
        self.connector, self.count, self.batch_size = connector, threads, max(1, batch_size)
        # SimpleQueue: each hand-over without queue.Queue's locking in Python, which the threads
        # would contend for (with the main thread) on every result
        self.work: queue.SimpleQueue[tuple[int, list[Operation]] | None] = queue.SimpleQueue()
        self.inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.open: dict[int, int] = {}  # round -> shares not finished
        self.rounds = 0
        self.cancelled = False
        self.threads = [threading.Thread(target=self._run, name=f"export-{i}", daemon=True) for i in range(threads)]
        for thread in self.threads:
            thread.start()

    def submit(self, ops: list[Operation]) -> None:
        self.rounds += 1
        # small shares, so no thread idles at the round's end; as big as the connector batches
        # (a /Bulk request), as long as every thread still gets one
        size = max(-(-len(ops) // (self.count * SHARES_PER_THREAD)), min(self.batch_size, -(-len(ops) // self.count)))
        shares = [ops[i:i + size] for i in range(0, len(ops), size)]
        self.open[self.rounds] = len(shares)
        for share in shares:
            self.work.put((self.rounds, share))

    def rounds_in_flight(self) -> int:
        return len(self.open)

    def finished(self, done: _ChunkDone) -> None:
        self.open[done.round] -= 1
        if not self.open[done.round]:
            del self.open[done.round]

    def cancel(self) -> None:
        """Shares not started yet come back unsent (a stop was asked for, or a connection failed);
        the pool takes no more work after this."""
        self.cancelled = True

    def close(self) -> None:
        """Stop the threads once their current share is done; shares not started are dropped
        (after an error in the pass nobody would record them: they stay marked in flight)."""
        self.cancel()
        for _ in self.threads:
            self.work.put(None)
        for thread in self.threads:
            thread.join()

    def _run(self) -> None:
        while (item := self.work.get()) is not None:
            number, ops = item
            if self.cancelled:
                self.inbox.put(_ChunkDone(number, ops, False, None))
                continue
            failure = None
            try:
                for result in self.connector.apply(ops):
                    self.inbox.put(result)
            except ConnectionFailed as exc:
                failure = exc
            except BaseException as exc:  # noqa: BLE001 - handed to the main thread, re-raised there
                self.inbox.put(_Crash(exc))
            self.inbox.put(_ChunkDone(number, ops, True, failure))


@dataclass
class _Crash:
    error: BaseException


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
