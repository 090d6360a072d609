"""Results are recorded here, and only here, so the state store has one writer during the pass.

Confirmations gather in memory and go to the store in one commit at least every FLUSH_EVERY
results or FLUSH_SECONDS: a commit per result would make the state store the bottleneck, and a
kill loses nothing, since what was sent and not recorded is still marked in flight (the next
run's recovery settles it). Each commit renews the run's lock in the same transaction (fencing).

A failure is not the end of an export: an update that finds its object gone has it created again
this run, an add that finds it there already has it adopted, a retryable error is tried again
later in this run with a backoff, and anything else stays pending for a later run
(:mod:`runner.retries`).
"""

from __future__ import annotations

import heapq
import time
from typing import Any

from runner.actions import Action
from runner.connectors.base import (
    AlreadyExists,
    ConnectorError,
    NotFound,
    PermanentError,
    Result,
    RetryableError,
    Throttled,
)
from runner.engine.context import RunContext, TypeCounts
from runner.engine.diff import stored_form, stored_forms
from runner.engine.export.operations import OP_KIND, Prepared
from runner.engine.provlog import changes_for_log
from runner.engine.recovery import resolve
from runner.manifest.model import ObjectType
from runner.mapping.mapper import Mapper
from runner.state.records import (
    Added,
    Confirmations,
    Deleted,
    Dropped,
    Failed,
    PendingExport,
    Recompute,
    Updated,
)
from runner.state.values import as_rows

SLOWEST = 5  # operations named per pass and run
FLUSH_EVERY = 2000  # results recorded at least this often...
FLUSH_SECONDS = 1.0  # ...and at least this often

MAX_RETRIES = 3  # in-run retries of an operation the connector calls retryable (timeouts, throttling)
FIRST_BACKOFF = 0.5  # seconds; doubles per retry unless the connector says how long (retry_after)
MAX_BACKOFF = 60.0  # cap of our own backoff; a Throttled retry_after is honoured beyond it


class Recorder:
    """Records the results of one object type's export pass, and what the run does next about
    them: ``again`` counts the follow-up steps and retries the current sweep made (the caller
    resets it), ``gone`` collects the objects an update found gone from the target."""

    def __init__(self, ctx: RunContext, ot: ObjectType, mapper: Mapper, counts: TypeCounts):
        self.ctx, self.ot, self.mapper, self.counts = ctx, ot, mapper, counts
        self.store = ctx.store
        self.type_id = ctx.type_ids[ot.name]
        self.name_referrers = ctx.name_referrers(ot)
        self.done = Confirmations(name_referrers=self.name_referrers)
        self.flushed_at = time.monotonic()
        self.retries: dict[str, int] = {}  # anchor -> retries this run (only objects that hit a retryable error)
        self.wait = 0.0  # seconds to wait before the next sweep, for the retries it holds
        self.throttled = False  # the target asked us to slow down: its pause is honoured in full
        self.again = 0  # follow-up steps and retries made by the current round
        self.gone: dict[str, str] = {}  # source anchor -> target anchor, of objects an update found gone
        self.exists: list[PendingExport] = []  # adds that found their object already there
        self.exists_why: dict[str, str] = {}
        self.sent = 0  # results recorded so far, of about ``total`` pending (for the progress display)
        self.total: int | None = None
        self.phase = "export"  # or "delete": the passes a progress display shows apart
        self.slowest: list[tuple[float, str, str]] = []  # a heap of the SLOWEST slowest operations

    def timed(self, row: PendingExport, seconds: float) -> None:
        """Keep the slowest operations of the pass (the run report names them)."""
        if len(self.slowest) < SLOWEST:
            heapq.heappush(self.slowest, (seconds, row.source_anchor, str(row.action)))
        elif seconds > self.slowest[0][0]:
            heapq.heapreplace(self.slowest, (seconds, row.source_anchor, str(row.action)))

    def maybe_flush(self) -> None:
        if len(self.done) >= FLUSH_EVERY or time.monotonic() - self.flushed_at >= FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        """Record the confirmations, failures and log entries gathered so far in one commit,
        fenced by the run's lock."""
        self.sent += len(self.done)
        self.store.exports.record(self.type_id, self.ctx.run_id, self.done)
        self.ctx.progress.report(self.ot.name, self.phase, self.sent, self.total)
        self.ctx.log.flush()
        self.ctx.heartbeat()
        self.store.commit()
        self.done = Confirmations(name_referrers=self.name_referrers)
        self.flushed_at = time.monotonic()

    def back_off(self) -> None:
        """Wait before the next sweep, when it holds retries."""
        if self.wait:
            pause = self.wait if self.throttled else min(self.wait, MAX_BACKOFF)
            self.ctx.logger.info("%s: waiting %.1f s before retrying", self.ot.name, pause)
            time.sleep(pause)
            self.wait, self.throttled = 0.0, False

    def adopt(self) -> None:
        """Look up and adopt the objects adds found already there; call once none is in flight."""
        if self.exists:
            self.again += resolve(self.ctx, self.ot, self.mapper, self.exists, self.counts, self.exists_why)
            self.exists, self.exists_why = [], {}

    def unsent(self, row: PendingExport) -> None:
        """The operation was never handed to the connector: it is sent again, not left in doubt."""
        self.done.resend.append(row.source_anchor)

    def record(self, p: Prepared, result: Result) -> bool:
        """Record one result; True when it is an add that found its object there, which stays in
        flight until it is adopted (:meth:`adopt`)."""
        row, action, done = p.row, p.row.action, self.done
        if not result.ok and not (action in (Action.DELETE, Action.DELETE_FIRST) and isinstance(result.error, NotFound)):
            return self._record_failure(row, action, result.error)
        digest = self.store.sensitive_digest
        name = result.name or p.op.name
        partition = p.op.partition
        target_anchor = str(result.anchor or row.target_anchor or "")
        if action in (Action.ADD, Action.REPLACE):
            data = stored_forms(p.kept_set, self.mapper, digest)
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
        return False

    def _record_failure(self, row: PendingExport, action: str, error: ConnectorError | None) -> bool:
        done = self.done
        if self.ctx.errors is not None and error is not None:
            self.ctx.errors[(self.ot.name, row.source_anchor)] = error
        if isinstance(error, NotFound) and action in (Action.UPDATE, Action.DISABLE, Action.RENAME, Action.SET_PASSWORD):
            # gone from the target (deleted by hand): the link goes, and the run computes and
            # sends it again as an add (export_type returns these)
            done.recompute.append(Recompute(row.source_anchor, row.target_anchor or ""))
            done.settled.append(row.source_anchor)
            self.gone[row.source_anchor] = row.target_anchor or ""
            self.ctx.log.add(self.ot.name, row.source_anchor, OP_KIND.get(action, action), "failed",
                             error=f"{_error_text(error)}; the object is gone from the target: it is created again",
                             target_anchor=row.target_anchor)
            return False
        if isinstance(error, NotFound) and action == Action.REPLACE:
            # the object it replaces is gone already: an add of the new one is all that is left
            row.change.replaces = None
            done.followups.append(PendingExport(row.source_anchor, Action.ADD, None, row.change, row.name, row.depth,
                                                row.partition))
            done.settled.append(row.source_anchor)
            self.again += 1
            return False
        if isinstance(error, AlreadyExists) and action == Action.ADD:
            # an object made by someone else, or by a run whose result was lost: it is looked up
            # by its correlation and adopted once this round is recorded (it stays in flight
            # until then, so a kill meanwhile leaves it to the next run's recovery)
            self.exists.append(row)
            self.exists_why[row.source_anchor] = _error_text(error)
            return True
        if isinstance(error, RetryableError) and self._retry(row, error):
            return False
        self.failed(row, _error_text(error), permanent=isinstance(error, PermanentError))
        return False

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

    def failed(self, row: PendingExport, error: str, permanent: bool = False) -> None:
        """The export failed this run: it stays pending, for a later run to try when it is due."""
        self.done.failures.append(Failed(row.source_anchor, error, permanent))
        self.counts.failed += 1
        self.counts.touched += not row.change.gone
        self.ctx.log.add(self.ot.name, row.source_anchor, OP_KIND.get(row.action, row.action), "failed",
                         error=error, target_anchor=row.target_anchor)


def _error_text(error: ConnectorError | None) -> str:
    if error is None:
        return "failed without a reason"
    return f"{type(error).__name__}: {error}"
