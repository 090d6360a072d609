"""The export pass: send pending exports to the target and record each confirmation.

**Crash safety.** Before a round of operations goes to the connector, their pending exports are
marked in flight (``sent_run``) and that mark is committed (:mod:`.flight`). Results are recorded
as they stream back, at least every FLUSH_EVERY results or FLUSH_SECONDS, each commit clearing the
marks of what it records (:mod:`.record`). A run killed anywhere (kill -9, OOM, a cron timeout)
therefore leaves every operation either recorded, or marked in doubt; never "applied but not
recorded" looking like "never sent". The next run resolves the ones in doubt before anything else
(:mod:`runner.engine.recovery`). Every commit renews the run's lock in the same transaction, so
a run whose lock was taken over cannot record anything (fencing).

**Order.**
1. Objects whose anchor changed (a delete and an add claiming the same name): their deletes go
   first (``delete_first``), or they go as one ``replace``: compute decided which
   (:func:`runner.engine.compute.pair_replacements`).
2. Adds, updates, renames and disables, parents before children (by name depth).
3. Deletes, children before parents (a group drops a member before the member is deleted).

References are rendered just before sending, in the form the target declares for the attribute:
its target anchor (SQL keys, SCIM ids) or its target name (LDAP DNs) (:mod:`.operations`). An
export that points at an object of its own type whose add is still waiting is held back to a later
round of the same run, so a report is created after their manager; when no round makes progress
(a cycle), the rest go out with the unresolved references left out, recorded, and filled in once
the object exists.

**Two-step changes.** A password the connector cannot take inside the create (no
ExportPasswordInFirstPass) follows as ``set_password``; a rename with attribute changes is
followed by an update; a multi-valued change larger than the connector takes at once
(``max_values_per_operation``) goes in chunks (:mod:`.operations`). The next step is stored as a
pending export in the same commit that records the first, so a run killed in between finishes
the job next time.

**Concurrency.** Operations go to the connector in parallel, as many at once as it declares
(``concurrency:`` lowers it). Worker threads live as long as the pass and take each round in
small shares (:mod:`.workers`); while they send one round, the main thread records the previous
one's results and prepares and marks the next, so the target's connections are not left waiting
for the state store. At most two rounds are in flight; a round waits for the one before it when
it is one name depth deeper (parents first) or holds exports that waited for an add still in
flight (a manager).

**Failures.** An operation the connector reports as retryable is tried again later in the same
run, up to MAX_RETRIES times, after a backoff (the connector's ``retry_after`` when it gives one;
a :class:`Throttled` pause is honoured in full); then it fails like any other and stays pending
(:mod:`.record`). Failed exports are retried by later runs on a back-off, and one that failed
with a :class:`PermanentError` is held until its source changes (:mod:`runner.retries`): a sweep
sends only the exports that are due.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from runner.actions import Action
from runner.connectors.base import ConnectionFailed
from runner.engine.context import RunContext, TypeCounts
from runner.engine.export.flight import Flight, levels
from runner.engine.export.operations import Operations, Prepared
from runner.engine.export.record import SLOWEST, Recorder
from runner.manifest.model import ObjectType
from runner.mapping.mapper import Mapper
from runner.state.records import PendingExport

__all__ = ["DELETES", "FORWARD", "PHASES", "export_type"]

BATCH = 2000  # pending exports read per page: a round, and a commit on each side, per page at most
# (actions, children first?)
PHASES: tuple[tuple[tuple[Action, ...], bool], ...] = (
    ((Action.DELETE_FIRST,), True),
    ((Action.ADD, Action.REPLACE, Action.UPDATE, Action.RENAME, Action.DISABLE, Action.SET_PASSWORD), False),
    ((Action.DELETE,), True),
)
FORWARD, DELETES = PHASES[:2], PHASES[2:]


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
    exporter = Exporter(ctx, ot, mapper, counts, only)
    exporter.recorder.phase = "delete" if phases == DELETES else "export"
    exporter.recorder.total = len(only) if only is not None else ctx.store.runs.count_pending(
        ctx.type_ids[ot.name], tuple(a for actions, _ in phases for a in actions if a not in hold))
    try:
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
                exporter.recorder.back_off()
    finally:
        exporter.flight.close()
    ctx.progress.report(ot.name, exporter.recorder.phase, exporter.recorder.sent, finished=True)
    keep_slowest(counts, exporter.recorder.slowest)
    ctx.store.exports.prune_tombstones(ctx.type_ids[ot.name])
    ctx.heartbeat()
    ctx.store.commit()
    return exporter.recorder.gone


def keep_slowest(counts: TypeCounts, found: list[tuple[float, str, str]]) -> None:
    """The type's slowest operations of the run, over all its passes (at most SLOWEST)."""
    mine = counts.slowest + [{"anchor": a, "action": action, "seconds": round(s, 3)} for s, a, action in found]
    counts.slowest = sorted(mine, key=lambda o: -o["seconds"])[:SLOWEST]


def ensure_alive(ctx: RunContext, ot: ObjectType) -> None:
    """Reopen the target connection when it died while import and compute ran."""
    connector = ctx.target(ot)
    try:
        connector.ping()
    except ConnectionFailed as exc:
        ctx.logger.warning("%s: the target connection was lost (%s); reconnecting", ot.name, exc)
        connector.close()
        connector.open()


class Exporter:
    """One object type's pass: reads pages of pending exports and moves them through preparation
    (:class:`Operations`), sending (:class:`Flight`) and recording (:class:`Recorder`)."""

    def __init__(self, ctx: RunContext, ot: ObjectType, mapper: Mapper, counts: TypeCounts,
                 only: Collection[str] | None = None):
        self.ctx, self.only = ctx, only
        self.store = ctx.store
        self.type_id = ctx.type_ids[ot.name]
        self.operations = Operations(ctx, ot, mapper)
        self.recorder = Recorder(ctx, ot, mapper, counts)
        self.flight = Flight(ctx, ot, self.recorder)

    def _page(self, actions: Sequence[str], after: tuple[int, str] | None, deepest_first: bool) -> list[PendingExport]:
        """The next page of pending exports; a few named objects (``only``) come in one page."""
        exports = self.store.exports
        if self.only is not None and len(self.only) <= BATCH:
            return [] if after is not None else exports.pending_among(
                self.type_id, self.ctx.run_id, actions, self.only, deepest_first, due=self.ctx.due)
        return exports.pending_page(self.type_id, self.ctx.run_id, actions, after, BATCH, deepest_first,
                                    due=self.ctx.due)

    def sweep(self, actions: Sequence[str], deepest_first: bool, force: bool) -> tuple[int, int]:
        """One pass over the pending exports not yet tried this run. Returns (sent, still waiting).

        Within a page, an export that names an add of its own type not settled yet (a report's
        manager) is held, and sent as soon as what it names is recorded rather than after the
        whole round: with fifteen levels of managers, a barrier per level left the target's
        connections idle at every level and prepared every held row again each time."""
        flight, recorder = self.flight, self.recorder
        sent = waiting = 0
        recorder.again = 0
        after: tuple[int, str] | None = None
        while rows := self._page(actions, after, deepest_first):
            last = rows[-1]
            after = (-last.depth if deepest_first else last.depth, last.source_anchor)
            todo = rows if self.only is None else [r for r in rows if r.source_anchor in self.only]
            page = _Held()
            while todo:
                if flight.busy() and todo[0].depth != flight.depth:
                    flight.settle()  # children wait for their parents
                ready, held, failed = self.operations.prepare(todo, force, flight.unsettled)
                for row, error in failed:
                    recorder.failed(row, error)
                self._send(ready)
                sent += len(ready)
                page.sent.update(p.row.source_anchor for p in ready)
                waiting += page.hold(held)
                if self.ctx.options.stop:
                    flight.settle()
                    self.ctx.check_stop()
                todo = self._ripe(page)
            waiting += len(page.rows)
        flight.settle()
        self.ctx.check_stop()
        return sent, waiting + recorder.again

    def _send(self, ready: list[Prepared]) -> None:
        """Hand the prepared operations over, a name depth at a time (parents before children)."""
        flight = self.flight
        for level in levels(ready):
            if flight.busy() and level[0].row.depth != flight.depth:
                flight.settle()
            flight.submit(level)
            flight.settle(rounds_left=1)  # the one just handed over runs while the next is prepared

    def _ripe(self, page: _Held) -> list[PendingExport]:
        """The held rows of the page whose wait is over, after recording results for as long as
        that may still change; [] when nothing more can be sent from this page now (the rest
        waits for the next sweep: what it names failed, is on a later page, or a cycle)."""
        flight = self.flight
        while page.rows:
            blocked = flight.unsettled | page.rows.keys()
            waits = page.waits()
            if not waits:
                return []
            if ripe := [row for row, awaited in waits if not awaited & blocked]:
                self.recorder.flush()  # the store must know the target anchors they name
                page.release(ripe)
                return ripe
            if flight.busy() and not flight.stopping:
                flight.settle_some(flight.low_water)
            elif flight.busy() or flight.unsettled:
                # a failure (settle_some takes nothing more then: this loop would spin forever)
                # is raised here once what is in flight is recorded; with nothing in flight,
                # adds that found their object already there are adopted now
                flight.settle()
            else:
                return []
        return []


@dataclass
class _Held:
    """One page's exports held for an add of their own type that this page sends."""

    rows: dict[str, tuple[PendingExport, set[str]]] = field(default_factory=dict)  # source anchor -> (row, awaited)
    sent: set[str] = field(default_factory=set)  # what the page sent: only that can end a wait here
    released: dict[str, set[str]] = field(default_factory=dict)  # source anchor -> what it waited for when released

    def hold(self, held: list[tuple[PendingExport, set[str]]]) -> int:
        """Hold these; returns how many of them are given up for this sweep instead: held again
        for nothing but what they waited for when released (the store still has it pending: a
        retry backing off), which this page will not settle."""
        given_up = 0
        for row, awaited in held:
            before = self.released.get(row.source_anchor)
            if before is not None and awaited <= before:
                given_up += 1
                continue
            self.rows[row.source_anchor] = (row, awaited)
        return given_up

    def waits(self) -> list[tuple[PendingExport, set[str]]]:
        """The held rows whose wait this page can end: all they wait for was sent here."""
        return [(row, awaited) for row, awaited in self.rows.values() if awaited <= self.sent]

    def release(self, rows: list[PendingExport]) -> None:
        for row in rows:
            _, awaited = self.rows.pop(row.source_anchor)
            self.released[row.source_anchor] = self.released.get(row.source_anchor, set()) | awaited
