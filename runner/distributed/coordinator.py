"""The coordinator of a run fanned out into slices (``provision submit --fan-out``).

``provision.run`` takes the pipeline's lock and starts the run as ever (``engine/run.py:execute``);
with fan-out, the object types' passes are this module's instead of ``run_types``: the same steps
in the same order, with the heavy ones cut into slices any worker takes (runner/distributed/slices.py)
and a barrier after each phase. Per object type in manifest order:

1. import: one slice per source partition, or per range of a partition's full read where the
   source can cut it (``Connector.ranges``); what ends such a read (unseen objects marked deleted,
   the watermark, the fingerprint) is done here after the phase's barrier;
2. compute: the config-hash check here, then the scope sweep in anchor ranges, a barrier (mapping
   needs every object's ``exists_after``), then the map sweep in anchor ranges (cut again: the
   scope sweep marks referrers dirty), then here: replace pairing, the reconciliation's
   follow-ups, the deletion guard over the whole type's counts;
3. export (all but deletes): per phase (delete-first, then adds/updates/renames/disables/passwords),
   per name depth (parents first), rounds of batches of pending exports; an export that waits for
   an add in another batch goes in the next round; a round that moves nothing is followed by one
   that forces (a reference cycle, as the export pass does in one process).

Then deletes, per type in reverse order, children first (deepest depth first), in the same rounds;
held by the deletion guard as ever. Recovery, reconciliation, orphans, the guard, quarantine and
the final counts stay in the coordinator, so they judge the whole run.

The coordinator waits for a phase by polling the slices' claims; while some are still queued
(no worker free) it claims and runs them itself, in its own process and context, so a run never
deadlocks on its own waiting coordinator, and on one worker a fanned-out run costs about what
``provision run`` does.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
import uuid
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa

from runner import secrets
from runner.actions import Action
from runner.connectors.base import ConfigurationError, ConnectionFailed, SystemUnavailable
from runner.distributed import slices, tally
from runner.distributed.journal import journal_slice
from runner.distributed.journal import now_iso as now_journal
from runner.distributed.levels import reference_levels
from runner.distributed.slices import EXPORT_BATCH, Extras, claims
from runner.engine import importer, reconcile, safety
from runner.engine.compute import compute_type, follow_config, pair_replacements
from runner.engine.context import RunContext, TypeCounts
from runner.engine.export import DELETES, FORWARD, export_type
from runner.engine.matching import Matcher
from runner.engine.run import (
    Summary,
    finish_counts,
    open_connectors,
    run_types,
    stops_the_pass,
    target_side,
)
from runner.errors import ProvisionError, UsageError
from runner.manifest.model import ObjectType
from runner.mapping.mapper import Mapper
from runner.state import tables as t
from runner.state.base import chunks, now_iso
from runner.state.runs import LockLost

logger = logging.getLogger("provision")

DEFAULT_SHARDS = 4  # compute slices per sweep of a type, at most
MIN_SHARD = 500  # dirty objects per compute slice, at least
MIN_EXPORTS = 250  # pending exports per export slice, at least, when a level is cut for more workers
POLL = 0.05  # seconds between looks at a phase's claims
HEARTBEAT = 10.0  # seconds between renewals of the lock while the coordinator waits


class Coordinator:
    """The passes of one fanned-out run (``execute(..., passes=Coordinator(...))``)."""

    def __init__(self, manifest_path: str, options: dict[str, Any], task_id: str, worker: str,
                 slice_queue: str, helps: bool = True, shards: int = DEFAULT_SHARDS):
        self.path, self.options, self.task_id, self.worker = manifest_path, options, task_id, worker
        self.slice_queue, self.helps, self.shards = slice_queue, helps, max(1, shards)
        self.seq = 0  # slices so far
        self.phases = 0  # phases so far (each label says which: bench/distributed.py packs a phase's slices)
        self.ran_here: list[tuple[str, str, str, str, str, str | None]] = []  # slices run here, for the journal
        self.timings: list[dict[str, Any]] = []  # per slice: id, kind, seconds, who ran it
        self._app: Any = None

    # ---- the passes (as engine/run.py:run_types, fanned out) ----------------------------------------

    def __call__(self, ctx: RunContext, types: list[ObjectType], summary: Summary,
                 opened: dict[str, str | None]) -> None:
        store = ctx.store
        if store.engine.dialect.name == "sqlite":  # tasks.py refuses it before the run starts; this is a backstop
            raise sqlite_refused(ctx.pipeline)
        if ctx.options.plan or ctx.options.apply is not None or ctx.options.simulate:
            logger.warning("only a plain run fans out; running in this worker")
            run_types(ctx, types, summary, opened)
            return
        self.ctx = ctx
        slices.ensure_table(store.engine)
        store.commit()  # nothing of this run's transaction may stand in the way of a dead run's slices
        slices.wait_for_dead_slices(store.engine, ctx.pipeline)  # a dead run's slices have all ended
        slices.wait_for_other_slices(store)
        # counts committed with the work: the coordinator's own, and what stands of a dead attempt's
        self.tally = tally.Tally(store, ctx.run_id)
        with store.engine.connect() as conn:
            self.attempts, stands = tally.earlier_attempts(conn, ctx.run_id, self.task_id)
            tally.add_rows(conn, ctx.run_id, self.task_id, [(tally.COORDINATOR, tally.COORDINATOR)])
            conn.commit()
        self.own = self.tally.part(tally.COORDINATOR, tally.COORDINATOR)
        for ot in types:
            if ot.name in stands:
                tally.merge_counts(summary.object_types.setdefault(ot.name, TypeCounts()),
                                   tally.counts_json(stands[ot.name]))
        try:
            self._passes(ctx, types, summary, opened)
        finally:
            self.tally.close()
            for name, own in self.own.items():
                tally.merge_counts(summary.object_types.setdefault(name, TypeCounts()), tally.counts_json(own))
        for ot in types:
            finish_counts(ctx, ot, summary.object_types[ot.name])
        self._forget_claims()

    def _passes(self, ctx: RunContext, types: list[ObjectType], summary: Summary,
                opened: dict[str, str | None]) -> None:
        if ctx.options.full_export:
            refusing = [ot.name for ot in types if not ctx.caps(ot).full_export]
            if refusing:
                raise UsageError(f"the target of {', '.join(map(repr, refusing))} does not take a full export; "
                                 "run without --full-export, or choose those object types with --object-type")
        for ot in types:  # what an interrupted run left in doubt is settled before anything else
            counts = summary.object_types.setdefault(ot.name, TypeCounts())
            with stops_the_pass(ctx, ot, counts):
                open_connectors(ctx, [ot.target.connector], opened)
                slices.recover_run(ctx, ot, Mapper(ot), self._own(ot), self.attempts)
        ran: list[tuple[ObjectType, Mapper, TypeCounts]] = []
        for ot in types:
            counts = summary.object_types.setdefault(ot.name, TypeCounts())
            if counts.error:
                continue
            with stops_the_pass(ctx, ot, counts):
                ran.append((ot, self._forward(ctx, ot, counts, opened), counts))
        for ot, mapper, counts in reversed(ran):
            with stops_the_pass(ctx, ot, counts):
                self._exports(ctx, ot, mapper, counts, DELETES, safety.GUARDED if counts.held else (), None)
                self._release(ctx, ot, mapper, counts, DELETES)

    def _own(self, ot: ObjectType) -> TypeCounts:
        """What the coordinator counts itself of the type (recovery, exports it sends)."""
        return self.own.setdefault(ot.name, TypeCounts())

    def _release(self, ctx: RunContext, ot: ObjectType, mapper: Mapper, counts: TypeCounts, phases: Any) -> None:
        """``run.release`` (the guard lets approved objects go), counted as the coordinator's own."""
        if counts.held and (released := ctx.released.get(ot.name)):
            export_type(ctx, ot, mapper, self._own(ot), phases, only=released)

    def _forward(self, ctx: RunContext, ot: ObjectType, counts: TypeCounts, opened: dict[str, str | None]) -> Mapper:
        mapper = Mapper(ot)
        reconciling = reconcile.why(ctx, ot, mapper)
        open_connectors(ctx, [ot.source.connector, ot.target.connector], opened)
        self.mapper, self.matcher, self.reconciling = mapper, None, reconciling
        if not ctx.options.no_import:
            self._import(ctx, ot, counts)
        type_id = ctx.type_ids[ot.name]
        if ctx.options.full_export:
            ctx.store.compute.mark_all_dirty(type_id)
        if ot.delete_after:
            from runner import durations

            ctx.store.compute.mark_gone_since(type_id, now_iso(ago=durations.seconds(ot.delete_after) or 0))
        matcher = target_side(ctx, ot, mapper, reconciling)
        self.matcher = matcher
        held = self._compute(ctx, ot, mapper, counts, matcher, reconciling)
        hold = safety.GUARDED if held else ()
        self._exports(ctx, ot, mapper, counts, FORWARD, hold, matcher)
        self._release(ctx, ot, mapper, counts, FORWARD)
        return mapper

    def _import(self, ctx: RunContext, ot: ObjectType, counts: TypeCounts) -> None:
        """One import slice per source partition, or one per range where the source cuts the
        partition's full read in ranges; the end of such a read (what no range read is marked
        deleted, the watermark, the fingerprint) is done here, once every range is stored. A range
        that failed stops the type's pass in ``_phase``, before anything is marked deleted."""
        partitions = [p for p in ot.source.partitions if ctx.options.partition is None or p == ctx.options.partition]
        specs: list[dict[str, Any]] = []
        cuts: list[importer.RangedRead] = []
        for partition in partitions:
            label = f"{ot.name}: import" + (f" of partition {partition}" if partition else "")
            ranged = importer.cut(ctx, ot, partition, self._range_count(ctx.type_ids[ot.name], partition))
            if ranged is None:
                specs.append({"kind": "import", "partition": partition, "label": label})
                continue
            cuts.append(ranged)
            specs += [{"kind": "import", "partition": partition, "range": token, "mark": ranged.mark(i),
                       "label": f"{label}, range {i + 1} of {len(ranged.tokens)}"}
                      for i, token in enumerate(ranged.tokens)]
        results = self._phase(ot, counts, specs)
        for ranged in cuts:
            importer.end_ranges(ctx, ot, ranged, results, counts)

    def _range_count(self, type_id: int, partition: str | None) -> int:
        """How many ranges to cut a partition's full read in: one per slice the run fans out to,
        each of MIN_SHARD objects at least by what the partition held after the last run (a first
        import: as many as the fan-out; the source makes fewer of a small table)."""
        present = self.ctx.store.runs.count_present(type_id, partition)
        self.ctx.store.commit()
        return self.shards if present == 0 else max(1, min(self.shards, math.ceil(present / MIN_SHARD)))

    def _compute(self, ctx: RunContext, ot: ObjectType, mapper: Mapper, counts: TypeCounts,
                 matcher: Matcher | None, reconciling: str | None) -> bool:
        """As ``run._compute``, with ``compute_type``'s sweeps fanned out."""
        store, type_id = ctx.store, ctx.type_ids[ot.name]
        follow_config(ctx, ot)
        for kind in ("scope", "map"):
            specs = [{"kind": kind, "shard": [low, high],
                      "label": f"{ot.name}: {kind}, anchors {_shown(low)}..{_shown(high)}"}
                     for low, high in self._ranges(type_id)]
            results = self._phase(ot, counts, specs)
            if matcher is not None:
                matcher.linked += sum(r.get("linked", 0) for r in results if not r.get("inline"))
        pair_replacements(ctx, ot)
        own_references = ot.name in mapper.references.values()
        if reconciling and matcher is not None and matcher.linked and own_references:
            reconcile.resolve_references(ctx, ot, mapper)
            compute_type(ctx, ot, mapper, TypeCounts(), matcher)
        if reconciling:
            reconcile.settle_orphans(ctx, ot, mapper, counts)
        held = safety.check(ctx, ot, counts)
        if held and (kept := safety.keep_references(ctx, ot)):
            if own_references:
                compute_type(ctx, ot, mapper, TypeCounts(), matcher)
            store.compute.mark_dirty(type_id, kept)
            store.commit()
        return held

    def _exports(self, ctx: RunContext, ot: ObjectType, mapper: Mapper, counts: TypeCounts,
                 phases: tuple[tuple[tuple[str, ...], bool], ...], hold: tuple[str, ...],
                 matcher: Matcher | None) -> None:
        """The export phases, in rounds of batches; for FORWARD, then what ``_export_forward`` does
        after the pass (objects found gone, adopted, referrers by a stale name, batches a dead
        worker left in doubt): computed and exported again here."""
        type_id = ctx.type_ids[ot.name]
        self.mapper, self.matcher = mapper, matcher  # what slices run here use
        gone: dict[str, str] = {}
        adopted = recovered = 0
        for all_actions, deepest_first in phases:
            actions = tuple(a for a in all_actions if a not in hold)
            if not actions:
                continue
            verb = "/".join(str(a) for a in actions)
            while (depth := self._next_depth(type_id, actions, deepest_first)) is not None:
                force, rounds = False, 0
                while anchors := self._pending(type_id, actions, depth):
                    rounds += 1
                    sent = 0
                    # an export waits for the adds of its own type it names (a report's manager): one
                    # phase per level of those references, so a batch rarely holds anything back
                    levels = [anchors] if force or deepest_first else _merged(self._levels(type_id, anchors))
                    for n, level in enumerate(levels, 1):
                        where = f"depth {depth}, round {rounds}" + (f", level {n}" if len(levels) > 1 else "")
                        results = self._phase(ot, counts, [
                            {"kind": "export", "anchors": part, "actions": list(actions),
                             "deepest_first": deepest_first, "force": force,
                             "label": f"{ot.name}: {verb}, {where}, {len(part)} exports"}
                            for part in _batches(level, self.shards)])
                        for r in results:
                            gone.update(r.get("gone") or {})
                            adopted += r.get("adopted", 0)
                            recovered += r.get("recovered", 0)
                            sent += r.get("sent", 0)
                    if force:
                        break
                    force = sent == 0
        if phases != FORWARD:
            return
        stale = any(t_ == type_id for t_, _ in ctx.name_referrers(ot)) and ctx.store.compute.count_dirty(type_id) > 0
        if gone or adopted or stale or recovered:
            if gone:
                ctx.recreated.setdefault(ot.name, {}).update(gone)
            compute_type(ctx, ot, mapper, TypeCounts(), matcher)
            export_type(ctx, ot, mapper, self._own(ot), FORWARD, hold=hold)

    # ---- cutting ----------------------------------------------------------------------------------------

    def _ranges(self, type_id: int) -> list[tuple[str | None, str | None]]:
        """Anchor ranges [low, high) over the dirty objects of the type, about equal in count."""
        store = self.ctx.store
        total = store.compute.count_dirty(type_id)
        if total == 0:
            return []
        n = max(1, min(self.shards, math.ceil(total / MIN_SHARD)))
        so = t.source_objects.c
        cuts: list[str | None] = [None]
        for i in range(1, n):
            cut = store.conn.execute(sa.select(so.anchor).where(so.type_id == type_id, so.dirty == sa.true())
                                     .order_by(so.anchor).offset(i * total // n).limit(1)).scalar()
            if cut is not None and cut != cuts[-1]:
                cuts.append(cut)
        cuts.append(None)
        store.commit()
        return list(zip(cuts[:-1], cuts[1:], strict=True))

    def _wanted(self, type_id: int, actions: tuple[str, ...]) -> list[sa.ColumnElement[bool]]:
        """Pending exports of ``actions`` this run has not tried, not in flight, due (as the export pass)."""
        pe = t.pending.c
        cond = [pe.type_id == type_id, pe.action.in_([str(a) for a in actions]), pe.sent_run.is_(None),
                sa.or_(pe.attempted_run.is_(None), pe.attempted_run != self.ctx.run_id)]
        if self.ctx.due is not None:
            cond += [pe.held == sa.false(), pe.next_attempt <= self.ctx.due]
        return cond

    def _next_depth(self, type_id: int, actions: tuple[str, ...], deepest_first: bool) -> int | None:
        pe = t.pending.c
        edge = (sa.func.max if deepest_first else sa.func.min)(pe.depth)
        found = self.ctx.store.conn.execute(sa.select(edge).where(*self._wanted(type_id, actions))).scalar()
        self.ctx.store.commit()
        return found

    def _pending(self, type_id: int, actions: tuple[str, ...], depth: int) -> list[str]:
        pe = t.pending.c
        found = list(self.ctx.store.conn.execute(sa.select(pe.source_anchor).where(
            *self._wanted(type_id, actions), pe.depth == depth).order_by(pe.source_anchor)).scalars())
        self.ctx.store.commit()
        return found

    def _levels(self, type_id: int, anchors: list[str]) -> list[list[str]]:
        """``anchors`` in levels of the references of the type to itself (the ``refs`` table):
        :func:`runner.distributed.levels.reference_levels`."""
        rf = t.refs.c
        keys = sorted(anchors)

        def references() -> Iterator[tuple[str, str]]:
            for part in chunks(keys):
                yield from self.ctx.store.conn.execute(sa.select(rf.anchor, rf.ref_anchor).where(
                    rf.type_id == type_id, rf.ref_type_id == type_id, rf.anchor.in_(part))).tuples()

        found = reference_levels(keys, references())
        self.ctx.store.commit()
        return [anchors] if len(found) == 1 else found

    # ---- a phase: slices sent, claimed, waited for --------------------------------------------------------

    def _phase(self, ot: ObjectType, counts: TypeCounts, specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Run ``specs`` as slices (on workers, or here while nobody takes them) and wait for all;
        their counts go to ``counts``. A slice stopped by a connection failure stops the type's
        pass here once the phase is over."""
        ctx = self.ctx
        if not specs:
            return []
        ctx.heartbeat()
        ctx.store.commit()
        extras = Extras.of(ctx, self.reconciling).as_json()
        tasks: dict[str, str] = {}
        self.phases += 1
        for spec in specs:
            self.seq += 1
            spec["id"], spec["type"] = f"{ot.name}/{spec['kind']}/{self.seq}", ot.name
            spec["label"] += f" (phase {self.phases})"
            tasks[spec["id"]] = str(uuid.uuid4())
        with ctx.store.engine.connect() as conn:
            conn.execute(claims.insert(), [{"run_id": ctx.run_id, "slice_id": s["id"], "task_id": tasks[s["id"]],
                                            "kind": s["kind"], "label": s["label"], "state": "queued",
                                            "attempts": 0, "queued_at": time.time()} for s in specs])
            tally.add_rows(conn, ctx.run_id, self.task_id, [(s["id"], s["kind"]) for s in specs])
            conn.commit()
            self._send(specs, tasks, extras)
            ids = [s["id"] for s in specs]
            by_id = {s["id"]: s for s in specs}
            beat = time.monotonic()
            while True:
                rows = {r.slice_id: r for r in conn.execute(sa.select(claims).where(
                    claims.c.run_id == ctx.run_id, claims.c.slice_id.in_(ids)))}
                conn.commit()
                if all(r.state in slices.FINISHED for r in rows.values()):
                    break
                queued = [i for i in ids if rows[i].state == "queued"]
                if self.helps and queued:  # workers take slices from the front of the queue, this from the back
                    self._inline(conn, ot, by_id[queued[-1]], tasks[queued[-1]])
                    beat = time.monotonic()
                    continue
                if time.monotonic() - beat >= HEARTBEAT:
                    ctx.heartbeat()
                    ctx.store.commit()
                    beat = time.monotonic()
                ctx.check_stop()
                time.sleep(POLL)
        if self.ran_here:
            journal_slice("ran", self.task_id, self.ran_here)
            self.ran_here = []
        results = []
        problem: Exception | None = None
        for i in ids:
            row = rows[i]
            outcome = json.loads(row.result) if row.result else {}
            self.timings.append({"id": i, "kind": row.kind, "by": row.claimed_by, "worker": row.worker,
                                 "seconds": round((row.finished_at or 0) - (row.started_at or 0), 3)})
            if row.state == "stopped":
                raise LockLost(outcome.get("error") or f"slice {i}: the run's lock was taken over")
            if row.state == "failed":
                raise ProvisionError(f"slice {i} failed: {outcome.get('error') or 'no reason given'}")
            tally.merge_counts(counts, outcome.get("counts") or {})
            if outcome.get("error") and problem is None:
                problem = (SystemUnavailable if outcome.get("unavailable") else ConnectionFailed)(outcome["error"])
            results.append(outcome)
        if problem is not None:
            raise problem
        return results

    def _send(self, specs: list[dict[str, Any]], tasks: dict[str, str], extras: dict[str, Any]) -> None:
        from runner.distributed.app import app
        options = {**self.options, "fan_out": None, "time_limit": None}
        journal_slice("queued", self.task_id, self.path, self.slice_queue, self.ctx.pipeline,
                      [(tasks[s["id"]], s["kind"], s["label"]) for s in specs])
        for spec in specs:
            app.send_task("provision.slice", args=[self.path, options, self.ctx.run_id, spec, extras],
                          queue=self.slice_queue, task_id=tasks[spec["id"]])

    def _inline(self, conn: sa.Connection, ot: ObjectType, spec: dict[str, Any], task_id: str) -> None:
        """Claim and run a slice nobody took yet, here, in the run's own context."""
        ctx = self.ctx
        if not slices.claim(conn, ctx.run_id, spec["id"], "coordinator", self.worker, False):
            return
        began = now_journal()
        part = self.tally.part(spec["id"], spec["kind"]).setdefault(ot.name, TypeCounts())
        try:
            more = slices.with_retries(ctx.store, lambda: slices.work(ctx, ot, self.mapper, spec, part, self.matcher),
                                       spec["id"], lambda: self.tally.again(spec["id"]))
            ctx.log.flush()
            ctx.heartbeat()
            ctx.store.commit()
            outcome: dict[str, Any] = {"state": "done", "counts": tally.counts_json(part), "inline": True, **more}
        except (ConnectionFailed, ConfigurationError) as exc:
            ctx.store.rollback()
            outcome = {"state": "done", "counts": tally.counts_json(part), "inline": True,
                       "error": secrets.redact(str(exc)), "unavailable": isinstance(exc, SystemUnavailable)}
        except Exception as exc:
            slices.settle_claim(conn, ctx.run_id, spec["id"], "failed", {"error": secrets.redact(str(exc))})
            journal_slice("ran", self.task_id, [(task_id, self.worker, began, now_journal(), "failed",
                                                 secrets.redact(str(exc)))])
            raise
        finally:
            self.tally.drop(spec["id"])
        slices.settle_claim(conn, ctx.run_id, spec["id"], "done", outcome)
        # written with the phase's others once it is over: a connection to the journal per slice
        # would cost the run on one worker a second per 30 slices
        self.ran_here.append((task_id, self.worker, began, now_journal(),
                              "ok" if not outcome.get("error") else "failed", outcome.get("error")))

    def _forget_claims(self) -> None:
        """The run's claims and counts are not needed once it is over (a late task finds none, and
        does nothing), nor those of its dead attempts."""
        with self.ctx.store.engine.connect() as conn:
            conn.execute(claims.delete().where(claims.c.run_id.in_([self.ctx.run_id, *self.attempts])))
            tally.forget(conn, self.task_id)
            conn.commit()


def _batches(anchors: list[str], parts: int) -> list[list[str]]:
    """About equal batches: at most EXPORT_BATCH each, at least ``parts`` of them (the run's fan-out)
    when each then still holds MIN_EXPORTS."""
    n = max(1, math.ceil(len(anchors) / EXPORT_BATCH), min(parts, len(anchors) // MIN_EXPORTS))
    size = math.ceil(len(anchors) / n)
    return [anchors[i:i + size] for i in range(0, len(anchors), size)]


def _merged(levels: list[list[str]]) -> list[list[str]]:
    """Consecutive small levels in one: fewer than MIN_EXPORTS together go in one batch anyway, and
    inside one batch the export pass itself sends a manager before their reports (its rounds)."""
    out: list[list[str]] = []
    for level in levels:
        if out and len(out[-1]) + len(level) < MIN_EXPORTS:
            out[-1] = out[-1] + level
        else:
            out.append(level)
    return out


def _shown(anchor: str | None) -> str:
    return "" if anchor is None else anchor


def sqlite_refused(pipeline: str) -> UsageError:
    """The error of a fanned-out run of a pipeline whose state store is a SQLite file."""
    return UsageError(f"a run of {pipeline!r} cannot fan out: its state store is a SQLite file, one machine's, "
                      "and slices run on any worker; run it on that machine with `provision run`, or put the state "
                      "store in PostgreSQL or MariaDB")


def helps_here(slice_queue: str) -> bool:
    """Does this worker read the slices' queue (then its coordinators run slices while they wait)?"""
    queues = os.environ.get("PROVISION_WORKER_QUEUES")
    return queues is None or slice_queue in queues.split(",")


__all__ = ["Coordinator", "helps_here", "sqlite_refused", "Action"]
