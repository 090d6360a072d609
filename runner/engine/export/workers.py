"""Threads that send operations to connectors taking several at once, so one slow operation (or
the state store's commits) does not leave the target's connections idle.

The threads never touch the state store: results come back through one inbox that only the main
thread reads, since it alone records them (:mod:`runner.engine.export.record`).
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

from runner.connectors.base import Capabilities, ConnectionFailed, Operation
from runner.manifest.model import ObjectType

SHARES_PER_THREAD = 4  # a round is dealt in this many shares per thread, so no thread idles at its end


def concurrency(caps: Capabilities, ot: ObjectType) -> int:
    """Operations sent at once: as many as the connector declares, fewer if the manifest says so."""
    return max(1, min(caps.max_concurrency, ot.target.concurrency or caps.max_concurrency))


@dataclass
class ChunkDone:
    """A worker finished a share: every result it produced is in the inbox before this."""

    round: int
    ops: list[Operation]
    started: bool
    failure: ConnectionFailed | None


@dataclass
class Crash:
    """A connector bug in a worker, handed to the main thread to be raised there."""

    error: BaseException


class Workers:
    """Threads that apply shares of operations as they are handed over, for connectors that take
    several at once. Results (and a :class:`ChunkDone` per share) arrive in one inbox that only
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

    def finished(self, done: ChunkDone) -> None:
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
                self.inbox.put(ChunkDone(number, ops, False, None))
                continue
            failure = None
            try:
                last = time.monotonic()
                for result in self.connector.apply(ops):  # each with how long it took to come back
                    now = time.monotonic()
                    self.inbox.put((result, now - last))
                    last = now
            except ConnectionFailed as exc:
                failure = exc
            except BaseException as exc:  # noqa: BLE001 - handed to the main thread, re-raised there
                self.inbox.put(Crash(exc))
            self.inbox.put(ChunkDone(number, ops, True, failure))
