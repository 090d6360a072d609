"""The export pass: send pending exports to the target and record each confirmation.

Order:
1. Objects whose anchor changed (a delete and an add claiming the same name): one ``replace``
   when the connector declares DeleteAddAsReplace, else their deletes go first.
2. Adds, updates, renames and disables, parents before children (by name depth).
3. Deletes, children before parents (a group drops a member before the member is deleted).

References are resolved to target anchors just before sending. An export that points at an
object of its own type whose add is still waiting is held back to a later round of the same run,
so a report is created after their manager; when no round makes progress (a cycle), the rest go
out with the unresolved references left out, recorded, and filled in once the object exists.

Some changes take two operations: a password the connector cannot take inside the create (no
ExportPasswordInFirstPass) follows as ``set_password``; a rename with attribute changes is
followed by an update. The second step is stored as a pending export as soon as the first is
confirmed, so a run killed in between finishes the job next time.

Operations go to the connector in parallel, as many at once as it declares (``concurrency:``
lowers it); results are written to the state store round by round, each exactly once. An
operation the connector reports as retryable (a timeout, throttling) is tried again later in the
same run, up to MAX_RETRIES times, after a backoff (the connector's ``retry_after`` when it
gives one); then it fails like any other and stays pending for the next run.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from runner.connectors.base import (
    AlreadyExists,
    Capabilities,
    ConnectionFailed,
    ConnectorError,
    NotFound,
    Operation,
    Result,
    RetryableError,
)
from runner.engine.context import RunContext, TypeCounts
from runner.engine.diff import SENSITIVE, stored_form
from runner.manifest.model import ObjectType
from runner.mapping.mapper import Mapper, MappingFailed, as_list
from runner.provlog import changes_for_log
from runner.state.store import Confirmations, Pending, PendingRow

BATCH = 500
# (actions, children first?)
PHASES: tuple[tuple[tuple[str, ...], bool], ...] = (
    (("delete_first",), True),
    (("add", "replace", "update", "rename", "disable", "set_password"), False),
    (("delete",), True),
)
FORWARD, DELETES = PHASES[:2], PHASES[2:]
OP_KIND = {"delete_first": "delete"}


@dataclass
class Prepared:
    """One pending export turned into an Operation, with what the state should record on success."""

    row: PendingRow
    op: Operation
    kept_set: dict[str, Any] = field(default_factory=dict)
    kept_add: dict[str, list[Any]] = field(default_factory=dict)
    removed: dict[str, list[Any]] = field(default_factory=dict)
    dropped: dict[str, set[str]] = field(default_factory=dict)  # ref type -> anchors left out
    followup: Pending | None = None  # the second step, stored once this one is confirmed


class Waiting(Exception):
    """The export references an object of its own type whose add has not been tried yet."""


def export_type(ctx: RunContext, ot: ObjectType, mapper: Mapper, counts: TypeCounts,
                phases: tuple[tuple[tuple[str, ...], bool], ...] = PHASES,
                only: Collection[str] | None = None) -> None:
    """Run the given export phases for one object type. The engine runs FORWARD for every type in
    manifest order, then DELETES in reverse order, so objects that contain or reference others
    (users inside an OU, members of a group) are deleted before what they point at.

    ``only``: export just the pending exports of these anchors (``provision preview --apply``)."""
    exporter = _Exporter(ctx, ot, mapper, counts, only)
    if phases[0] == PHASES[0] and only is None:
        exporter.pair_replacements()
    for actions, deepest_first in phases:
        force = False
        while True:
            sent, waiting = exporter.sweep(actions, deepest_first, force)
            if not waiting:
                break
            force = sent == 0  # no progress: a reference cycle; send the rest without those references
            exporter.back_off()
    ctx.store.prune_tombstones(ctx.type_ids[ot.name])
    ctx.store.commit()


MAX_RETRIES = 3  # in-run retries of an operation the connector calls retryable (timeouts, throttling)
FIRST_BACKOFF = 0.5  # seconds; doubles per retry unless the connector says how long (retry_after)
MAX_BACKOFF = 60.0


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
        self.caps = self.connector.capabilities()
        self.threads = concurrency(self.caps, ot)
        self.done = Confirmations()
        self.before: dict[str, tuple[dict[str, Any], bool]] = {}
        self.retries: dict[str, int] = {}  # anchor -> retries this run (only objects that hit a retryable error)
        self.wait = 0.0  # seconds to wait before the next sweep, for the retries it holds

    def back_off(self) -> None:
        if self.wait:
            self.ctx.logger.info("%s: waiting %.1f s before retrying", self.ot.name, self.wait)
            time.sleep(min(self.wait, MAX_BACKOFF))
            self.wait = 0.0

    def pair_replacements(self) -> None:
        """An add that takes the name a delete frees is the same object with a new anchor."""
        for add_anchor, delete_anchor, old_target in self.store.name_collisions(self.type_id):
            rows = {r.source_anchor: r for r in self.store.all_pending_for(self.type_id, [add_anchor, delete_anchor])}
            add, gone = rows[add_anchor], rows[delete_anchor]
            if self.caps.delete_add_as_replace:
                payload = add.payload | {"replaces": delete_anchor, "replaces_gone": bool(gone.payload.get("gone"))}
                self.store.update_pending(self.type_id, add_anchor, "replace", payload, old_target)
                self.store.drop_pending(self.type_id, [delete_anchor])
            else:
                self.store.update_pending(self.type_id, delete_anchor, "delete_first", gone.payload, old_target)
        self.store.commit()

    def sweep(self, actions: Sequence[str], deepest_first: bool, force: bool) -> tuple[int, int]:
        """One pass over the pending exports not yet tried this run. Returns (sent, still waiting)."""
        sent = waiting = 0
        after: tuple[int, str] | None = None
        while rows := self.store.pending_page(self.type_id, self.ctx.run_id, actions, after, BATCH, deepest_first):
            last = rows[-1]
            after = (-last.depth if deepest_first else last.depth, last.source_anchor)
            remaining = rows if self.only is None else [r for r in rows if r.source_anchor in self.only]
            while remaining:  # within a page, send in rounds so a manager goes before their reports
                self.done = Confirmations()
                ready, held = self._prepare(remaining, force)
                if ready:
                    self._send(ready)
                self._flush()
                if not ready:
                    break
                sent += len(ready)
                waiting += len(self.done.followups) + len(self.done.retries)
                remaining = held
            waiting += len(remaining)
        return sent, waiting

    # ---- preparing operations -----------------------------------------------------------------

    def _prepare(self, rows: Sequence[PendingRow], force: bool) -> tuple[list[Prepared], list[PendingRow]]:
        refs = self._referenced(rows)
        targets = {rt: self.store.target_anchors(self.ctx.type_ids[rt], anchors) for rt, anchors in refs.items()}
        own = self.ot.name
        waiting_adds = set() if force or own not in refs else self.store.pending_adds(
            self.type_id, refs[own] - targets.get(own, {}).keys(), self.ctx.run_id)
        anchors = [r.target_anchor for r in rows if r.target_anchor]
        self.before = self.store.targets_data(self.type_id, anchors) if anchors else {}
        ready: list[Prepared] = []
        held: list[PendingRow] = []
        for i, row in enumerate(rows):
            try:
                ready.append(self._operation(i, row, targets, waiting_adds))
            except Waiting:
                held.append(row)
            except MappingFailed as exc:
                self._failed(row, f"cannot derive sensitive value: {exc}")
        return ready, held

    def _referenced(self, rows: Sequence[PendingRow]) -> dict[str, set[str]]:
        refs: dict[str, set[str]] = defaultdict(set)
        for row in rows:
            for part in ("set", "add", "remove"):
                for attr, value in row.payload.get(part, {}).items():
                    ref_type = self.mapper.references.get(attr)
                    if ref_type is not None:
                        refs[ref_type].update(str(v) for v in as_list(value))
        return refs

    def _operation(self, index: int, row: PendingRow, targets: dict[str, dict[str, str]],
                   waiting_adds: set[str]) -> Prepared:
        payload, action = row.payload, row.action
        prepared = Prepared(row, Operation(index, action, self.ot.target.object))
        attributes: dict[str, Any] = {}
        clear: dict[str, Any] | None = None
        for attr, value in payload.get("set", {}).items():
            if value == SENSITIVE:
                clear = clear or self._clear_values(row.source_anchor)
                value = clear.get(attr)
            attributes[attr], prepared.kept_set[attr] = self._resolve(attr, value, targets, waiting_adds, prepared)
        add_values: dict[str, list[Any]] = {}
        for attr, values in payload.get("add", {}).items():
            add_values[attr], prepared.kept_add[attr] = self._resolve(attr, values, targets, waiting_adds, prepared)
        remove_values: dict[str, list[Any]] = {}
        for attr, values in payload.get("remove", {}).items():
            prepared.removed[attr] = list(values)
            remove_values[attr] = self._resolve_removed(attr, values)
        if not self.caps.multi_valued_deltas and (add_values or remove_values):
            before = self.before.get(row.target_anchor or "", ({}, False))[0]
            for attr in set(add_values) | set(remove_values):
                full = (set(before.get(attr, [])) | set(prepared.kept_add.get(attr, []))) - set(prepared.removed.get(attr, []))
                attributes[attr], _ = self._resolve(attr, sorted(full, key=str), targets, set(), prepared)
            add_values, remove_values = {}, {}
        kind, password = OP_KIND.get(action, action), None
        passwords = {a: attributes.pop(a) for a in list(attributes) if a in self.mapper.passwords}
        if action == "rename":
            changes = {k: payload[k] for k in ("set", "add", "remove", "old") if payload.get(k)}
            if changes:
                prepared.followup = Pending(row.source_anchor, "update", row.target_anchor, changes | {"followup": True},
                                            row.name, row.depth)
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
                prepared.followup = Pending(row.source_anchor, "set_password", row.target_anchor,
                                            {"set": {a: SENSITIVE for a in passwords}, "followup": True},
                                            row.name, row.depth)
                password = None
        prepared.op = Operation(index, kind, self.ot.target.object, anchor=row.target_anchor,
                                name=payload.get("name", row.name), attributes=attributes, add_values=add_values,
                                remove_values=remove_values, password=password,
                                partition=payload.get("partition"), old_name=payload.get("old_name"))
        return prepared

    def _clear_values(self, anchor: str) -> dict[str, Any]:
        """Sensitive values are never stored: map the source object again to get them."""
        data = self.store.source_data(self.type_id, anchor)
        return self.mapper.map(data) if data is not None else {}

    def _resolve(self, attr: str, value: Any, targets: dict[str, dict[str, str]], waiting_adds: set[str],
                 prepared: Prepared) -> tuple[Any, Any]:
        """(value to send, value to record): references become target anchors; missing ones are left out."""
        ref_type = self.mapper.references.get(attr)
        if ref_type is None:
            return value, value
        known = targets.get(ref_type, {})
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
        known = self.store.target_anchors(self.ctx.type_ids[ref_type], [str(v) for v in values], live_only=False)
        return [known[str(v)] for v in values if str(v) in known]

    # ---- sending and recording ----------------------------------------------------------------

    def _send(self, prepared: list[Prepared]) -> None:
        """Send a round: one depth at a time (a parent is confirmed before its children go out, even
        in parallel), recording each result. If the connection fails, what was confirmed is
        committed before the pass stops; operations with no result stay pending."""
        by_id = {p.op.id: p for p in prepared}
        seen: set[int] = set()
        failure: ConnectionFailed | None = None
        for level in _levels(prepared):
            results, failure = self._apply([p.op for p in level])
            for result in results:
                if result.op_id in seen or result.op_id not in by_id:
                    continue  # a connector must report each operation once; ignore anything else
                seen.add(result.op_id)
                self._record(by_id[result.op_id], result)
            if failure is not None:
                break
        for op_id, p in by_id.items():
            if op_id not in seen and failure is None:
                self._failed(p.row, "the connector reported no result for this operation")
        if failure is not None:
            self._flush()
            raise failure

    def _apply(self, ops: list[Operation]) -> tuple[list[Result], ConnectionFailed | None]:
        """Hand the operations to the connector, split over as many threads as it takes at once.

        Each operation is in exactly one share; the shares hold different objects, so the order
        of one object's operations never depends on thread timing. Results that arrived before a
        connection failure are kept."""
        shares = [ops] if self.threads == 1 or len(ops) == 1 else [ops[i::self.threads] for i in range(self.threads)]

        def run(share: list[Operation]) -> tuple[list[Result], ConnectionFailed | None]:
            got: list[Result] = []
            try:
                for result in self.connector.apply(share):
                    got.append(result)
            except ConnectionFailed as exc:
                return got, exc
            return got, None

        if len(shares) == 1:
            return run(shares[0])
        results: list[Result] = []
        failure: ConnectionFailed | None = None
        with ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="export") as pool:
            for got, error in pool.map(run, [share for share in shares if share]):
                results.extend(got)
                failure = failure or error
        return results, failure

    def _flush(self) -> None:
        """Record the round's confirmations, failures and log entries in one commit."""
        self.store.record(self.type_id, self.ctx.run_id, self.done)
        self.ctx.log.flush()
        self.ctx.heartbeat()
        self.store.commit()

    def _record(self, p: Prepared, result: Result) -> None:
        row, action, done = p.row, p.row.action, self.done
        if not result.ok and not (action in ("delete", "delete_first") and isinstance(result.error, NotFound)):
            if isinstance(result.error, NotFound) and action in ("update", "disable", "rename", "set_password"):
                done.recompute.append((row.source_anchor, row.target_anchor or ""))
                self._failed(row, f"{result.error}; the object is gone from the target and will be "
                                  "created again on the next run")
                return
            if isinstance(result.error, AlreadyExists) and action == "add":
                done.recompute.append((row.source_anchor, ""))
                self._failed(row, f"{result.error}; the next run computes the object again, and its match "
                                  "rules (match:) can adopt the existing one")
                return
            if isinstance(result.error, RetryableError) and self._retry(row, result.error):
                return
            self._failed(row, _error_text(result.error))
            return
        digest = self.store.sensitive_digest
        name = p.op.name
        if action in ("add", "replace"):
            data = {k: stored_form(k, v, self.mapper, digest) for k, v in p.kept_set.items()}
            if action == "replace":
                done.deletes.append((row.payload["replaces"], row.target_anchor, row.payload["replaces_gone"]))
                self.counts.count("delete", source_present=not row.payload["replaces_gone"])
            done.adds.append((row.source_anchor, str(result.anchor), data, name))
            changes = changes_for_log(p.kept_set, None, self.mapper.sensitive)
        elif action in ("delete", "delete_first"):
            done.deletes.append((row.source_anchor, row.target_anchor, bool(row.payload.get("gone"))))
            changes = {}
        else:
            before = self.before.get(row.target_anchor or "", ({}, False))[0]
            data = dict(before)
            for attr, value in p.kept_set.items():
                data[attr] = stored_form(attr, value, self.mapper, digest)
            for attr, values in p.kept_add.items():
                data[attr] = sorted({*data.get(attr, []), *values}, key=str)
            for attr, values in p.removed.items():
                data[attr] = sorted(set(data.get(attr, [])) - set(values), key=str)
            new_anchor = str(result.anchor or row.target_anchor)
            done.updates.append((row.source_anchor, row.target_anchor or "", new_anchor, data,
                                 action == "disable", name))
            changes = changes_for_log(data, {k: before.get(k) for k in data}, self.mapper.sensitive)
            if action == "rename":
                changes["__name__"] = {"old": row.payload.get("old_name"), "new": name}
        if p.followup is not None:
            p.followup.target_anchor = str(result.anchor or row.target_anchor)
            done.followups.append(p.followup)
        for ref_type, anchors in p.dropped.items():
            done.dropped += [(row.source_anchor, self.ctx.type_ids[ref_type], a) for a in anchors]
        if not row.payload.get("followup"):
            self.counts.count(action, source_present=not row.payload.get("gone"))
        self.ctx.log.add(self.ot.name, row.source_anchor, OP_KIND.get(action, action), "ok", changes=changes,
                         target_anchor=str(result.anchor or row.target_anchor or "") or None)

    def _retry(self, row: PendingRow, error: RetryableError) -> bool:
        """Keep a retryable failure for a later sweep of this run, with backoff; False once spent."""
        tries = self.retries.get(row.source_anchor, 0) + 1
        if tries > MAX_RETRIES:
            return False
        self.retries[row.source_anchor] = tries
        self.done.retries.append((row.source_anchor, _error_text(error)))
        pause = error.retry_after if error.retry_after is not None else FIRST_BACKOFF * 2 ** (tries - 1)
        self.wait = max(self.wait, pause)
        return True

    def _failed(self, row: PendingRow, error: str) -> None:
        self.done.failures.append((row.source_anchor, error))
        self.counts.failed += 1
        self.counts.touched += not row.payload.get("gone")
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
