"""Slices of a run fanned out over workers: what one slice does, and the claims that keep each
slice done exactly once (docs/distributed.md, "The fan-out").

A slice is a part of one pass of one object type, under the coordinator's run id:

- ``import``: one source partition read into the state store (``importer.import_partition``), or
  one range of a partition's full read cut in ranges (``importer.import_range``);
- ``scope`` / ``map``: the compute's two sweeps over one range of anchors, [low, high), of the
  dirty source objects (``compute.scope_sweep`` / ``map_sweep`` with ``shard=``);
- ``export``: a batch of at most 2,000 pending exports named by anchor, of one export phase
  (actions, name depth), sent as the export pass sends them (``only=``).

**Claims.** Each slice is a row of ``provision_slices`` in the state store's database, written
``queued`` by the coordinator before the slice's task is sent. Whoever runs it first claims it
(one UPDATE from ``queued`` to ``running``): a worker that took the task, or the coordinator itself
while it waits (so a pool with one free slot cannot deadlock on a coordinator waiting for slices
nobody runs). A task redelivered after its worker died takes over a claim held by a task (never one
the coordinator holds: the coordinator's death ends the run). The outcome (counts, what the
coordinator must do next) is written to the row; the coordinator polls the rows of a phase.

**Counts.** A slice's counts are committed with its work (tally.py): a slice redelivered, or run
again after a deadlock, starts from what stands of those its dead attempt committed, so the run's
counts are those of a run nobody killed.

**Fencing.** A slice commits nothing without renewing the run's lock in the same transaction
(``store.commit`` is fenced), so a slice of a run whose lock was taken over stops with nothing
written. For its whole life it also holds a shared row lock on the pipeline's row of
``provision_slice_locks``, in a transaction of a connection of its own; a coordinator that took a
dead run's lock over locks that row exclusively before its crash recovery, so it waits until every
slice of the dead run has ended (and whatever they sent is marked in flight, for the recovery to
settle) before it reads anything in doubt. Row locks behave alike on PostgreSQL and MariaDB, and
the server drops them with the connection of a process that dies.
"""

from __future__ import annotations

import json
import logging
import os
import random
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from runner import secrets
from runner.actions import Action
from runner.connectors.base import ConfigurationError, ConnectionFailed, SystemUnavailable
from runner.distributed import tally
from runner.distributed.tally import counts_json
from runner.engine import importer, recovery
from runner.engine.compute import compute_type, map_sweep, scope_sweep
from runner.engine.context import RunContext, RunOptions, TypeCounts
from runner.engine.export import Exporter, ensure_alive, keep_slowest
from runner.engine.matching import Matcher
from runner.engine.provlog import ProvisioningLog
from runner.engine.recovery import recover, resolve
from runner.engine.run import close_connector, log_path, open_failure
from runner.manifest.model import ObjectType
from runner.mapping.checks import load_with_connectors
from runner.mapping.mapper import Mapper
from runner.state import tables as t
from runner.state.base import chunks
from runner.state.opening import Mode, open_store
from runner.state.records import PendingExport
from runner.state.runs import LockLost
from runner.state.store import StateStore

logger = logging.getLogger("provision")

EXPORT_BATCH = 2000  # pending exports per export slice (the export pass's page)
RETRIES = 6  # a slice that hit a deadlock or a serialization failure is run again (rolled back) up to this

metadata = sa.MetaData()
claims = sa.Table(
    "provision_slices", metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("slice_id", sa.String(128), primary_key=True),
    sa.Column("task_id", sa.String(64), nullable=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("label", sa.Text, nullable=True),
    sa.Column("state", sa.String(16), nullable=False),  # queued, running, done, failed, stopped
    sa.Column("claimed_by", sa.String(16), nullable=True),  # task | coordinator
    sa.Column("worker", sa.Text, nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("queued_at", sa.Float, nullable=True),
    sa.Column("started_at", sa.Float, nullable=True),
    sa.Column("finished_at", sa.Float, nullable=True),
    sa.Column("result", sa.Text, nullable=True),
)
FINISHED = ("done", "failed", "stopped")
locks = sa.Table(
    "provision_slice_locks", metadata,
    sa.Column("pipeline", sa.String(255), primary_key=True),  # a row per pipeline, locked, never changed
)


KEPT = 7 * 24 * 3600  # seconds the claims of a run that did not end well are kept (a finished run drops its own)


def ensure_table(engine: sa.Engine) -> None:
    """The tables of fanned-out runs (claims, locks, counts), made when missing; claims and counts
    of runs that ended long ago (killed ones) go."""
    with engine.connect() as conn:
        for tables in (metadata, tally.metadata):
            try:
                tables.create_all(conn, checkfirst=True)
                conn.commit()
            except sa.exc.SQLAlchemyError:  # another process made them at the same moment
                conn.rollback()
                tables.create_all(conn, checkfirst=True)
                conn.commit()
        conn.execute(claims.delete().where(claims.c.queued_at < time.time() - KEPT))
        tally.prune(conn)
        conn.commit()


def claim(conn: sa.Connection, run_id: str, slice_id: str, by: str, worker: str, redelivered: bool) -> bool:
    """Take the slice (True), or leave it: done already, running elsewhere, or gone with its run."""
    c = claims.c
    cond = c.state == "queued"
    if redelivered:  # the worker that had this task died: its claim is void (the coordinator's never is)
        cond = sa.or_(cond, sa.and_(c.state == "running", c.claimed_by == "task"))
    done = conn.execute(claims.update().where(c.run_id == run_id, c.slice_id == slice_id, cond).values(
        state="running", claimed_by=by, worker=worker, attempts=c.attempts + 1, started_at=time.time()))
    conn.commit()
    return done.rowcount == 1


def settle_claim(conn: sa.Connection, run_id: str, slice_id: str, state: str, result: dict[str, Any]) -> None:
    c = claims.c
    conn.execute(claims.update().where(c.run_id == run_id, c.slice_id == slice_id).values(
        state=state, finished_at=time.time(), result=json.dumps(result, default=str)))
    conn.commit()


@contextmanager
def slices_of(engine: sa.Engine, pipeline: str) -> Iterator[None]:
    """Held while a slice runs: a shared lock on the pipeline's row of ``provision_slice_locks``,
    in a transaction left open on a connection of its own until the slice ends (or its process
    dies, and the server drops the connection)."""
    with engine.connect() as conn:
        _lock_row(conn, pipeline, shared=True)
        try:
            yield
        finally:
            conn.rollback()


def wait_for_dead_slices(engine: sa.Engine, pipeline: str) -> None:
    """Block until no slice of any earlier run of the pipeline is running (a coordinator that took
    a dead run's lock over calls this before it settles what that run left in doubt): the
    pipeline's row locked exclusively, which waits for every shared holder to let go. A lock
    wait timeout (MariaDB's ``innodb_lock_wait_timeout``, 50 s by default; PostgreSQL's
    ``lock_timeout`` when set) ends one wait, not the waiting."""
    with engine.connect() as conn:
        waited = 0
        while True:
            try:
                _lock_row(conn, pipeline, shared=False)
                conn.rollback()
                return
            except sa.exc.DBAPIError as exc:
                conn.rollback()
                if not _lock_wait_timeout(exc):
                    raise
                waited += 1
                logger.warning("still waiting for the slices of a dead run of %s to stop (%d lock waits so far)",
                               pipeline, waited)


def _lock_row(conn: sa.Connection, pipeline: str, shared: bool) -> None:
    """Lock the pipeline's row (made first when missing), shared or exclusive, in the connection's
    transaction: held until it ends."""
    query = sa.select(locks.c.pipeline).where(locks.c.pipeline == pipeline).with_for_update(read=shared)
    if conn.execute(query).first() is not None:
        return
    conn.rollback()
    try:
        conn.execute(locks.insert().values(pipeline=pipeline))
        conn.commit()
    except sa.exc.IntegrityError:  # another process made it at the same moment
        conn.rollback()
    conn.execute(query).one()


# ---- the context a slice runs in ----------------------------------------------------------------

@dataclass
class Extras:
    """What the coordinator knows that a slice's context needs (sent with the slice)."""

    due: str | None = None
    reconciled: dict[str, str] | None = None
    recreated: dict[str, dict[str, str]] | None = None
    drifted_before: dict[str, dict[str, dict[str, Any]]] | None = None
    reconciling: str | None = None  # why the type was reconciled this run (its matcher correlates)

    @classmethod
    def of(cls, ctx: RunContext, reconciling: str | None) -> Extras:
        return cls(ctx.due, dict(ctx.reconciled), ctx.recreated, ctx.drifted_before, reconciling)

    def as_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def fence_commits(store: StateStore, pipeline: str, run_id: str) -> None:
    """Every commit of this store renews the run's lock in the same transaction first (LockLost,
    nothing committed, when the lock was taken over): compute commits are fenced too."""
    commit = store.commit

    def fenced() -> None:
        store.runs.heartbeat(pipeline, run_id)
        commit()

    store.commit = fenced  # type: ignore[method-assign]


def wait_for_other_slices(store: StateStore) -> None:
    """An export that names an object of its own type whose add another slice has in flight waits
    for it, as for an add in flight in its own pass (without this it would go out without the
    reference: the add is neither pending nor recorded yet). So does one whose add another slice
    recorded between the export's look at the links and this look at the pending exports (it is
    linked now: the next sweep finds it)."""
    pending_actions = store.exports.pending_actions

    def pending_or_in_flight(type_id: int, anchors: Any, run_id: str, due: str | None = None,
                             actions: Any = (Action.ADD,)) -> set[str]:
        anchors = set(anchors)
        found = pending_actions(type_id, anchors, run_id, due, actions)
        pe, lk = t.pending.c, t.links.c
        for part in chunks(sorted(anchors - found)):
            found.update(a for a, action in store.conn.execute(sa.select(pe.source_anchor, pe.action).where(
                pe.type_id == type_id, pe.source_anchor.in_(part), pe.sent_run == run_id)) if action in actions)
        if Action.ADD in actions:
            for part in chunks(sorted(anchors - found)):
                found.update(store.conn.execute(sa.select(lk.source_anchor).where(
                    lk.type_id == type_id, lk.source_anchor.in_(part), lk.live == sa.true())).scalars())
        return found

    store.exports.pending_actions = pending_or_in_flight  # type: ignore[method-assign]


def matcher_for(ctx: RunContext, ot: ObjectType, reconciling: str | None) -> Matcher | None:
    """The matcher compute links with, as ``run.target_side`` makes it (the reconciliation itself
    is the coordinator's)."""
    if reconciling:
        matcher = Matcher(ctx, ot, correlate=True, link=ot.reconcile.unlinked == "link")
    elif ot.match:
        matcher = Matcher(ctx, ot, lookups=True)
    else:
        return None
    return matcher if matcher.rules else None


# ---- what a slice does ------------------------------------------------------------------------------

def work(ctx: RunContext, ot: ObjectType, mapper: Mapper, spec: dict[str, Any], counts: TypeCounts,
         matcher: Matcher | None) -> dict[str, Any]:
    """Do one slice in ``ctx`` (a worker's slice context, or the coordinator's own); counts go to
    ``counts``. Returns what the coordinator needs beyond the counts."""
    kind, type_id = spec["kind"], ctx.type_ids[ot.name]
    if kind == "import" and "range" in spec:
        # run again (a conflict, a redelivery): read over what an earlier attempt of the range stamped
        again, spec["again"] = bool(spec.get("again")), True
        return importer.import_range(ctx, ot, spec.get("partition"), spec["range"], spec["mark"], counts, again)
    if kind == "import":
        importer.import_partition(ctx, ot, spec.get("partition"), counts)
        return {}
    if kind == "scope":
        scope_sweep(ctx, ot, type_id, shard=tuple(spec["shard"]))  # type: ignore[arg-type]
        return {}
    if kind == "map":
        linked = matcher.linked if matcher is not None else 0
        map_sweep(ctx, ot, type_id, mapper, counts, matcher, shard=tuple(spec["shard"]))  # type: ignore[arg-type]
        return {"linked": (matcher.linked if matcher is not None else 0) - linked}
    if kind == "export":
        return export_batch(ctx, ot, mapper, counts, spec)
    raise ValueError(f"unknown slice kind {kind!r}")


def export_batch(ctx: RunContext, ot: ObjectType, mapper: Mapper, counts: TypeCounts,
                 spec: dict[str, Any]) -> dict[str, Any]:
    """Send one batch of pending exports as the export pass sends a page (rounds, depths, retries),
    except that a sweep that makes no progress stops rather than forcing: what it holds waits for
    adds in other slices, and the coordinator runs another round (forced only when a whole round
    made none: a reference cycle). Operations a dead attempt of this slice left in flight are
    settled against the target first, as crash recovery settles a dead run's."""
    type_id = ctx.type_ids[ot.name]
    anchors = set(spec["anchors"])
    ensure_alive(ctx, ot)
    recovered = settle_in_doubt(ctx, ot, mapper, counts, anchors)
    exporter = Exporter(ctx, ot, mapper, counts, anchors)
    exporter.recorder.phase = "delete" if Action.DELETE in spec["actions"] else "export"
    exporter.recorder.total = len(anchors)
    actions = tuple(Action(a) for a in spec["actions"])
    sent_total = waiting = 0
    try:
        force = bool(spec.get("force"))
        while True:
            sent, waiting = exporter.sweep(actions, bool(spec["deepest_first"]), force)
            sent_total += sent
            if not waiting or (sent == 0 and not exporter.recorder.wait):
                break
            exporter.recorder.back_off()
    finally:
        exporter.flight.close()
    keep_slowest(counts, exporter.recorder.slowest)
    ctx.store.exports.prune_tombstones(type_id)
    ctx.heartbeat()
    ctx.store.commit()
    return {"sent": sent_total, "waiting": waiting, "gone": exporter.recorder.gone,
            "adopted": ctx.adopted.pop(ot.name, 0), "recovered": recovered}


def settle_in_doubt(ctx: RunContext, ot: ObjectType, mapper: Mapper, counts: TypeCounts, anchors: set[str]) -> int:
    """The batch's exports this run marked in flight and never recorded: only a dead attempt of
    this very slice can have left them (a batch's anchors are its own in its round). Settled as
    this run's own (:func:`settle_own`); those it sends again are pending and untried again."""
    type_id = ctx.type_ids[ot.name]
    pe = t.pending.c
    rows = []
    for part in chunks(sorted(anchors)):
        found = [a for (a,) in ctx.store.conn.execute(sa.select(pe.source_anchor).where(
            pe.type_id == type_id, pe.source_anchor.in_(part), pe.sent_run == ctx.run_id))]
        if found:
            rows += [r for r in ctx.store.exports.all_pending_for(type_id, found) if r.sent_run == ctx.run_id]
    if not rows:
        return 0
    ctx.logger.warning("%s: %d exports a dead attempt of this slice left in flight; settling them against the "
                       "target", ot.name, len(rows))
    settle_own(ctx, ot, mapper, counts, rows)
    return len(rows)


def settle_own(ctx: RunContext, ot: ObjectType, mapper: Mapper, counts: TypeCounts,
               rows: list[PendingExport]) -> None:
    """Exports of this very run that a dead attempt of it left in flight (a slice whose worker
    died; a run taken over by its own redelivered coordinator), settled against the target with
    crash recovery's ``resolve`` and computed again at once, in one transaction with their counts.
    Each counts once, as in a run nobody killed: under its action when nothing is left to send for
    its object (an add found there and adopted, an update found applied, a delete found done), or
    when what is left is sent; one that cannot be settled (several target objects match an add)
    fails, and stays in doubt."""
    type_id = ctx.type_ids[ot.name]
    with _one_commit(ctx.store):
        resolve(ctx, ot, mapper, rows, TypeCounts())  # counted below, not as recovered (an earlier run's)
        anchors = sorted({r.source_anchor for r in rows})
        compute_type(ctx, ot, mapper, TypeCounts(), None, only=set(anchors))  # the adopted, the re-read
        left: dict[str, PendingExport] = {}
        for part in chunks(anchors):
            left.update((r.source_anchor, r) for r in ctx.store.exports.all_pending_for(type_id, part))
        for row in rows:
            now = left.get(row.source_anchor)
            if now is not None and now.sent_run is not None:
                counts.failed += 1
                counts.touched += not row.change.gone
            elif now is None and not row.change.followup:
                if row.action == Action.REPLACE and row.change.replaces:
                    counts.count(Action.DELETE, source_present=not row.change.replaces_gone)
                counts.count(row.action, source_present=not row.change.gone)


@contextmanager
def _one_commit(store: StateStore) -> Iterator[None]:
    """The commits of what runs inside become one, at the end: all of it lands (with the counts
    of it), or none."""
    commit = store.commit
    store.commit = lambda: None  # type: ignore[method-assign]
    try:
        yield
    finally:
        store.commit = commit  # type: ignore[method-assign]
    commit()


def recover_run(ctx: RunContext, ot: ObjectType, mapper: Mapper, counts: TypeCounts, attempts: set[str]) -> None:
    """Crash recovery at the start of a fanned-out run: what a dead attempt of this very run left
    in flight (``attempts``: its run ids, the same task's) is settled as this run's own
    (:func:`settle_own`); what an older run left, as crash recovery settles it (``recovered``)."""
    if not attempts:
        recover(ctx, ot, mapper, counts)
        return
    after: str | None = None
    while rows := ctx.store.exports.in_doubt(ctx.type_ids[ot.name], ctx.run_id, after, recovery.PAGE):
        after = rows[-1].source_anchor
        if own := [r for r in rows if r.sent_run in attempts]:
            ctx.logger.warning("%s: %d exports a dead attempt of this run left in flight; settling them against "
                               "the target", ot.name, len(own))
            settle_own(ctx, ot, mapper, counts, own)
        if older := [r for r in rows if r.sent_run not in attempts]:
            resolve(ctx, ot, mapper, older, counts)


def with_retries(store: StateStore, step: Callable[[], dict[str, Any]], label: str,
                 again: Callable[[], None] | None = None) -> dict[str, Any]:
    """Run ``step``; on a deadlock, a serialization failure or a lock wait timeout (two slices
    writing rows of each other: a referrer marked dirty by one while the other cleans it) roll back
    and run it again: every sweep carries on from what was committed. ``again`` is called before
    each new attempt (the slice's counts go back to what stands of the committed ones)."""
    for attempt in range(RETRIES):
        try:
            return step()
        except Exception as exc:
            if not _conflict(exc) or attempt == RETRIES - 1:
                raise
            store.rollback()
            if again is not None:
                again()
            pause = random.uniform(0.05, 0.3) * (attempt + 1)
            logger.warning("slice %s: %s; running it again in %.2f s", label, _first_line(exc), pause)
            time.sleep(pause)
    raise AssertionError("unreachable")


# what makes a slice run again: PostgreSQL's deadlock, serialization failure and lock timeout
# (SQLSTATE); MariaDB's deadlock and lock wait timeout (error numbers)
CONFLICTS = ("40P01", "40001", "55P03", 1213, 1205)
LOCK_WAITS = ("55P03", 1205)


def _conflict(exc: BaseException | None) -> bool:
    return any(code in CONFLICTS for code in _codes(exc))


def _lock_wait_timeout(exc: BaseException | None) -> bool:
    return any(code in LOCK_WAITS for code in _codes(exc))


def _codes(exc: BaseException | None) -> Iterator[str | int]:
    """The SQLSTATEs (psycopg) and error numbers (PyMySQL) in the exception's chain: the state
    store's own error (StateError) wraps the driver's."""
    seen = 0
    while exc is not None and seen < 10:
        for found in (exc, getattr(exc, "orig", None)):
            if isinstance(getattr(found, "sqlstate", None), str):
                yield found.sqlstate  # type: ignore[union-attr]
            args = getattr(found, "args", None) or ()
            if args and isinstance(args[0], int):
                yield args[0]
        exc = exc.__cause__ or exc.__context__
        seen += 1


def _first_line(exc: BaseException) -> str:
    return secrets.redact(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)


# ---- a slice on a worker ---------------------------------------------------------------------------

def perform(manifest_path: str, options: RunOptions, run_id: str, spec: dict[str, Any], extras: dict[str, Any],
            worker: str, redelivered: bool, started: Callable[[], None] | None = None) -> dict[str, Any]:
    """Run one slice in this process (a worker's), claimed first. The outcome: ``{"state":
    "done"|"skipped"|"stopped"|"failed", ...}`` with the counts and what :func:`work` returned."""
    engine, pipeline = _claims_engine(manifest_path)
    with slices_of(engine, pipeline), engine.connect() as side:
        if not claim(side, run_id, spec["id"], "task", worker, redelivered):
            return {"state": "skipped"}  # the coordinator ran it, or its run is over: nothing loaded for it
        if started is not None:
            started()
        try:
            loaded = load_with_connectors(Path(manifest_path))
            ot = loaded.manifest.object_type(spec["type"])
            assert ot is not None, spec["type"]
            store = open_store(loaded.manifest, Mode.WRITE)
        except Exception as exc:
            settle_claim(side, run_id, spec["id"], "failed", {"error": secrets.redact(f"{type(exc).__name__}: {exc}")})
            raise
        try:
            try:
                outcome = _perform(loaded, store, options, run_id, {**spec, "again": redelivered}, extras, ot)
            except Exception as exc:  # a bug: the coordinator fails the run rather than wait forever
                store.rollback()
                settle_claim(side, run_id, spec["id"], "failed", {"error": secrets.redact(f"{type(exc).__name__}: {exc}")})
                raise
            settle_claim(side, run_id, spec["id"], outcome["state"], outcome)
            return outcome
        finally:
            for connector in loaded.connectors.values():
                close_connector(connector)
            store.close()


_engines: dict[tuple[int, str], tuple[sa.Engine, str]] = {}


def _claims_engine(manifest_path: str) -> tuple[sa.Engine, str]:
    """An engine on the pipeline's state store for claims (and the pipeline's name), one per
    process and manifest: a slice that is not this worker's to run costs a claim, not a load."""
    key = (os.getpid(), manifest_path)
    if key not in _engines:
        from runner.mapping.checks import load
        from runner.sqlutil import sqlalchemy_url
        from runner.state.store import state_url

        manifest = load(Path(manifest_path))
        _engines[key] = (sa.create_engine(sqlalchemy_url(state_url(manifest, create=False), manifest.base_dir),
                                          pool_size=1, max_overflow=2, pool_pre_ping=True), manifest.name)
    return _engines[key]


def _perform(loaded: Any, store: StateStore, options: RunOptions, run_id: str, spec: dict[str, Any],
             extras: dict[str, Any], ot: ObjectType) -> dict[str, Any]:
    manifest = loaded.manifest
    log = ProvisioningLog(store, manifest.name, run_id, log_path(manifest, options.log_file))
    ctx = RunContext(manifest, store, loaded.connectors, run_id, options, log)
    ctx.type_ids = {o.name: store.type_id(manifest.name, o.name) for o in manifest.object_types}
    ex = Extras(**extras)
    ctx.due = ex.due
    ctx.reconciled = dict(ex.reconciled or {})
    ctx.recreated = {k: dict(v) for k, v in (ex.recreated or {}).items()}
    ctx.drifted_before = ex.drifted_before or {}
    fence_commits(store, manifest.name, run_id)
    wait_for_other_slices(store)
    tallied = tally.Tally(store, run_id)  # counts committed with the work (from a dead attempt's, when redelivered)
    counts = tallied.part(spec["id"], spec["kind"]).setdefault(ot.name, TypeCounts())
    try:
        store.commit()  # the fence, before anything: a slice of a run taken over does nothing
        needs = [ot.source.connector] if spec["kind"] == "import" else (
            [ot.target.connector] if spec["kind"] in ("map", "export") else [])
        for name in needs:
            failure = open_failure(loaded.connectors[name])
            if failure is not None:
                raise failure
            ctx.opened.add(name)
            loaded.connectors[name].context.run_id = run_id
            loaded.connectors[name].context.redact = secrets.redact
        mapper = Mapper(ot)
        matcher = matcher_for(ctx, ot, ex.reconciling) if spec["kind"] == "map" else None
        more = with_retries(store, lambda: work(ctx, ot, mapper, spec, counts, matcher), spec["id"],
                            lambda: tallied.again(spec["id"]))
        log.flush()
        store.commit()
    except LockLost as exc:
        store.rollback()
        logger.warning("slice %s of run %s stopped: %s", spec["id"], run_id, exc)
        return {"state": "stopped", "error": str(exc)}
    except (ConnectionFailed, ConfigurationError) as exc:
        store.rollback()
        return {"state": "done", "counts": counts_json(counts), "error": secrets.redact(str(exc)),
                "unavailable": isinstance(exc, SystemUnavailable)}
    finally:
        log.close()
    return {"state": "done", "counts": counts_json(counts), **more}


def worker_name(request_hostname: str | None) -> str:
    return request_hostname or socket.gethostname()
