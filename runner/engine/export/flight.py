"""Handing rounds of operations to the connector so a crash can never pass for "never sent".

A round's pending exports are marked in flight, and that mark committed, before the round goes
out; the mark is cleared by the commit that records the result. A kill anywhere in between leaves
the operation in doubt, for the next run's recovery (:mod:`runner.engine.recovery`).

With worker threads, a round is handed over and this thread returns to prepare and mark the next
while the workers send it: at most two rounds are in flight, and results are recorded as they
come back.
"""

from __future__ import annotations

import time

from runner.actions import Action
from runner.connectors.base import ConnectionFailed, Operation, Result
from runner.engine.context import RunContext
from runner.engine.export.operations import Prepared
from runner.engine.export.record import Recorder
from runner.engine.export.workers import ChunkDone, Crash, Workers, concurrency
from runner.manifest.model import ObjectType


def levels(prepared: list[Prepared]) -> list[list[Prepared]]:
    """Consecutive operations of the same name depth (the page comes sorted by depth)."""
    out: list[list[Prepared]] = []
    for p in prepared:
        if out and out[-1][0].row.depth == p.row.depth:
            out[-1].append(p)
        else:
            out.append([p])
    return out


class Flight:
    """The rounds of one object type's export pass that are sent and not yet recorded."""

    def __init__(self, ctx: RunContext, ot: ObjectType, recorder: Recorder):
        self.ctx, self.recorder = ctx, recorder
        self.store = ctx.store
        self.type_id = ctx.type_ids[ot.name]
        self.connector = ctx.target(ot)
        caps = ctx.caps(ot)
        threads = concurrency(caps, ot)
        self.ops: dict[int, Prepared] = {}  # operation id -> sent, no result yet
        # source anchors of adds and renames sent and not yet recorded (or adopted): what names them waits
        self.unsettled: set[str] = set()
        self.depth: int | None = None  # the name depth of the last round handed over
        self.failure: ConnectionFailed | None = None
        self.crash: BaseException | None = None  # a connector bug in a worker: re-raised here
        self.workers = Workers(self.connector, threads, caps.batch_size) if threads > 1 else None
        # held exports are released when no more than this is in flight: enough left to keep every
        # thread busy while the next round is prepared and marked
        self.low_water = threads * 4
        # bound once: called for every result
        self._record, self._maybe_flush = recorder.record, recorder.maybe_flush

    def close(self) -> None:
        if self.workers is not None:
            self.workers.close()

    def busy(self) -> bool:
        return bool(self.ops) or (self.workers is not None and self.workers.rounds_in_flight() > 0)

    @property
    def stopping(self) -> bool:
        """A connection failed or a worker crashed: only :meth:`settle` goes on (it records what
        is in flight, then raises); :meth:`settle_some` takes nothing more."""
        return self.failure is not None or self.crash is not None

    def submit(self, prepared: list[Prepared]) -> None:
        """Mark a round in flight (committed), then hand it over. With one thread it is sent and
        recorded here; with several, the workers take it while this thread prepares the next
        round, so the target's connections do not wait for the state store."""
        self.store.exports.mark_sent(self.type_id, self.ctx.run_id, [p.row.source_anchor for p in prepared])
        self.recorder.flush()
        for p in prepared:
            self.ops[p.op.id] = p
            if p.row.action in (Action.ADD, Action.RENAME):
                self.unsettled.add(p.row.source_anchor)
        self.depth = prepared[0].row.depth
        if self.workers is None:
            ops = [p.op for p in prepared]
            try:
                last = time.monotonic()
                for result in self.connector.apply(ops):
                    now = time.monotonic()
                    self._take(result, now - last)
                    last = now
            except ConnectionFailed as exc:
                self._chunk_done(ops, started=True, failure=exc)
            else:
                self._chunk_done(ops, started=True, failure=None)
            self.settle()
            return
        self.workers.submit([p.op for p in prepared])

    def settle(self, rounds_left: int = 0) -> None:
        """Record results until at most ``rounds_left`` rounds are in flight; when none is, resolve
        the adds that found their object already there. A connection failure is raised once
        everything sent before it is recorded: what was sent without a result stays in doubt for
        the next run, what was never sent is not."""
        processed = False
        while self.workers is not None and \
                self.workers.rounds_in_flight() > (0 if self.failure or self.crash else rounds_left):
            processed = True
            self._receive()
        if processed or rounds_left == 0 or self.failure is not None:
            self.recorder.flush()  # the next round is prepared against what this one confirmed
        if rounds_left == 0 or self.failure is not None:
            if self.failure is None:
                self.recorder.adopt()
            self.unsettled.clear()
        if self.crash is not None:  # everything in flight was recorded above
            crash, self.crash = self.crash, None
            raise crash
        if self.failure is not None:
            failure, self.failure = self.failure, None
            raise failure

    def settle_some(self, ops_left: int) -> None:
        """Record results until at most ``ops_left`` operations are in flight, and at least one
        result (or share) came back: the caller looks at what settled and tops the workers up,
        so they are never left idle behind a round's last operations. Nothing is committed here
        (the recorder flushes as it always does); a failure or a crash is left for :meth:`settle`."""
        workers = self.workers
        if workers is None:
            return
        processed = False
        while workers.rounds_in_flight() and not (self.failure or self.crash) and \
                (not processed or len(self.ops) > ops_left):
            processed = True
            self._receive()

    def _receive(self) -> None:
        """Take one item from the workers' inbox (blocking)."""
        workers = self.workers
        assert workers is not None
        item = workers.inbox.get()
        if isinstance(item, ChunkDone):
            workers.finished(item)
            self._chunk_done(item.ops, item.started, item.failure)
        elif isinstance(item, Crash):
            self.crash = self.crash or item.error
            workers.cancel()
        else:
            self._take(*item)
        if self.ctx.options.stop or self.failure is not None:
            workers.cancel()  # what no worker has started yet is not sent this run

    def _take(self, result: Result, seconds: float) -> None:
        p = self.ops.pop(result.op_id, None)
        if p is None:
            return  # a connector must report each operation once; ignore anything else
        self.recorder.timed(p.row, seconds)
        adopting = self._record(p, result)  # an add that found its object there waits for adoption
        if not adopting:
            self.unsettled.discard(p.row.source_anchor)
        self._maybe_flush()

    def _chunk_done(self, ops: list[Operation], started: bool, failure: ConnectionFailed | None) -> None:
        """A share came back, after every result it produced. What it never sent is sent again
        later; after a connection failure, what it sent without a result stays in doubt (marked
        in flight) for the next run's recovery; otherwise an operation without a result failed."""
        if failure is not None:
            self.failure = self.failure or failure
        for op in ops:
            p = self.ops.pop(op.id, None)
            if p is None:
                continue
            self.unsettled.discard(p.row.source_anchor)
            if not started:
                self.recorder.unsent(p.row)
            elif failure is None:
                self.recorder.failed(p.row, "the connector reported no result for this operation")
