"""The counts of a fanned-out run, committed with the work they count (docs/distributed.md, "A
worker's death mid-slice loses nothing").

A slice counts what it does in memory, as a run does (records imported, objects added, failed,
...). Every commit of the slice also writes those counts, as they stand, to the slice's row of
``provision_counts``, in the same transaction; a rollback puts the counts in memory back to the
committed ones. So a row always holds the counts of exactly the work committed: a worker killed
mid-slice loses the counts of what it had not committed, as it loses that work. Whoever takes the
work up again starts from what stands of them (:func:`carried`):

- a slice redelivered after its worker died, or run again after a deadlock: from its own row;
- a run taken over by its redelivered coordinator (the worker running the coordinator died; the
  same task starts the run again): from every row of the dead attempt, its slices' and the
  coordinator's own (``coordinator``: what it settled of an earlier crash, what it sent itself).

What stands depends on what the work does when it is taken up again. An export never sends again
what it recorded: all of its counts stand. A map sweep maps again the objects that failed (they
stay dirty), so only its findings on proposed rules stand. An import reads its partition (or its
range of it) again from the start, and a scope sweep counts nothing: nothing of theirs stands.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, fields
from typing import Any

import sqlalchemy as sa

from runner.engine.context import TypeCounts
from runner.engine.export import keep_slowest
from runner.state.store import StateStore

COORDINATOR = "coordinator"  # the part (and kind) of what the coordinator counts itself
KEPT = 7 * 24 * 3600  # seconds the rows of a run that did not end well are kept (a finished run drops its own)

metadata = sa.MetaData()
rows = sa.Table(
    "provision_counts", metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("part", sa.String(128), primary_key=True),  # a slice's id, or "coordinator"
    sa.Column("task_id", sa.String(64), nullable=False),  # the coordinator's task: the same in a run taken over
    sa.Column("kind", sa.String(16), nullable=False),  # import, scope, map, export or coordinator
    sa.Column("counts", sa.Text, nullable=True),  # {object type: counts}, as committed
    sa.Column("written_at", sa.Float, nullable=False),
)


# ---- counts as JSON ------------------------------------------------------------------------------

_SUMMED = [f.name for f in fields(TypeCounts) if f.type in ("int", int)]


def counts_json(counts: TypeCounts) -> dict[str, Any]:
    out: dict[str, Any] = {name: getattr(counts, name) for name in _SUMMED}
    out["slowest"], out["proposed"] = counts.slowest, counts.proposed
    return out


def merge_counts(into: TypeCounts, part: dict[str, Any]) -> None:
    """Add a part's counts (a slice's, as JSON) to ``into``."""
    for name in _SUMMED:
        setattr(into, name, getattr(into, name) + int(part.get(name) or 0))
    if part.get("slowest"):
        keep_slowest(into, [(s["seconds"], s["anchor"], s["action"]) for s in part["slowest"]])
    for attr, found in (part.get("proposed") or {}).items():
        mine = (into.proposed or {}).setdefault(attr, {"differs": 0, "examples": []})
        mine["differs"] += found["differs"]
        mine["examples"] = (mine["examples"] + found["examples"])[:5]
        into.proposed = {**(into.proposed or {}), attr: mine}


def carried(kind: str, counts: dict[str, Any]) -> dict[str, Any]:
    """What stands of a part's committed counts when its work is taken up again."""
    if kind in ("export", COORDINATOR):
        return counts
    if kind == "map":
        return {"proposed": counts.get("proposed")}
    return {}


def _reset(counts: TypeCounts, to: dict[str, Any]) -> None:
    """``counts``, in place, equal to ``to`` (the summed counts, the slowest, the proposed)."""
    for name in _SUMMED:
        setattr(counts, name, 0)
    counts.slowest, counts.proposed = [], None
    merge_counts(counts, to)


# ---- the rows --------------------------------------------------------------------------------------

def add_rows(conn: sa.Connection, run_id: str, task_id: str, parts: list[tuple[str, str]]) -> None:
    """The rows of parts about to be counted, (part, kind) each, in the caller's transaction: the
    coordinator's own, or the slices of a phase (with their claims)."""
    conn.execute(rows.insert(), [{"run_id": run_id, "part": part, "task_id": task_id, "kind": kind, "counts": None,
                                  "written_at": time.time()} for part, kind in parts])


def earlier_attempts(conn: sa.Connection, run_id: str, task_id: str) -> tuple[set[str], dict[str, TypeCounts]]:
    """The run ids of dead attempts of this run (the task's other runs), and what stands of their
    counts, per object type. Read once their slices have all stopped."""
    found = conn.execute(sa.select(rows.c.run_id, rows.c.kind, rows.c.counts).where(
        rows.c.task_id == task_id, rows.c.run_id != run_id)).all()
    conn.commit()
    stands: dict[str, TypeCounts] = {}
    for row in found:
        for name, part in json.loads(row.counts or "{}").items():
            merge_counts(stands.setdefault(name, TypeCounts()), carried(row.kind, part))
    return {row.run_id for row in found}, stands


def forget(conn: sa.Connection, task_id: str) -> None:
    """A run that ended: the rows of every attempt of it go (a late duplicate of its task must not
    take them for a dead attempt's)."""
    conn.execute(rows.delete().where(rows.c.task_id == task_id))


def prune(conn: sa.Connection) -> None:
    """Rows of runs that ended long ago without dropping theirs (killed, or failed)."""
    conn.execute(rows.delete().where(rows.c.written_at < time.time() - KEPT))


# ---- counts written with every commit ------------------------------------------------------------

@dataclass
class _Part:
    kind: str
    counts: dict[str, TypeCounts]  # object type -> counts
    committed: str  # the counts (JSON) of the committed work, as they stand for this attempt
    written: str | None  # what the row holds now (None: not known, after a rollback)


class Tally:
    """The parts one process counts for one run: each commit of ``store`` first writes the counts of
    every part that changed, in the same transaction; each rollback puts them back."""

    def __init__(self, store: StateStore, run_id: str):
        self.store, self.run_id = store, run_id
        self.parts: dict[str, _Part] = {}
        self._commit, self._rollback = store.commit, store.rollback
        store.commit = self.commit  # type: ignore[method-assign]
        store.rollback = self.rollback  # type: ignore[method-assign]

    def part(self, part: str, kind: str) -> dict[str, TypeCounts]:
        """The counts of ``part`` by object type, starting from what stands of its row (a dead
        attempt's); the caller fills them (``setdefault(type, TypeCounts())``)."""
        text = self.store.conn.execute(sa.select(rows.c.counts).where(
            rows.c.run_id == self.run_id, rows.c.part == part)).scalar()
        counts: dict[str, TypeCounts] = {}
        for name, found in json.loads(text or "{}").items():
            merge_counts(counts.setdefault(name, TypeCounts()), carried(kind, found))
        self.parts[part] = _Part(kind, counts, _dumps(counts), text)
        return counts

    def again(self, part: str) -> None:
        """The part's work starts again from what was committed (after a deadlock): its counts
        are what stands of the committed ones."""
        p = self.parts[part]
        stands = {name: carried(p.kind, c) for name, c in json.loads(p.committed).items()}
        for name, counts in p.counts.items():
            _reset(counts, stands.get(name, {}))

    def drop(self, part: str) -> None:
        self.parts.pop(part, None)

    def close(self) -> None:
        """The store's commit and rollback are its own again."""
        self.store.commit, self.store.rollback = self._commit, self._rollback  # type: ignore[method-assign]

    def commit(self) -> None:
        written = []
        for name, p in self.parts.items():
            text = _dumps(p.counts)
            if text != p.written:
                self.store.conn.execute(rows.update().where(rows.c.run_id == self.run_id, rows.c.part == name)
                                        .values(counts=text, written_at=time.time()))
                written.append((p, text))
        try:
            self._commit()
        except BaseException:
            for p, _ in written:
                p.written = None
            raise
        for p, text in written:
            p.written = text
        for p in self.parts.values():
            p.committed = p.written or p.committed

    def rollback(self) -> None:
        self._rollback()
        for p in self.parts.values():
            committed = json.loads(p.committed)
            for name, counts in p.counts.items():
                _reset(counts, committed.get(name, {}))
            p.written = None


def _dumps(counts: dict[str, TypeCounts]) -> str:
    return json.dumps({name: counts_json(c) for name, c in counts.items()}, sort_keys=True, default=str)
