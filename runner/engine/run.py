"""One run of a pipeline: lock, then import -> compute -> export per object type, in manifest order.

``execute`` is the engine's single entry point for ``provision run`` and ``provision plan``. It
returns a :class:`Summary` whatever happens to individual objects; it raises only for what
stops a run before it starts (invalid manifest, lock held, unusable state store).
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import logging
import secrets as pysecrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner import durations, retries, secrets
from runner.connectors.base import (
    ConfigurationError,
    ConnectionFailed,
    Connector,
    ConnectorError,
    SystemUnavailable,
)
from runner.engine import binding, gate, notify, planfile, quarantine, reconcile, safety
from runner.engine.compute import compute_type
from runner.engine.context import RunContext, RunOptions, TypeCounts
from runner.engine.export import DELETES, FORWARD, export_type
from runner.engine.importer import import_type
from runner.engine.matching import Matcher
from runner.engine.plan import PlanItem, fingerprints, plan_items
from runner.engine.planfile import PlanWriter
from runner.engine.provlog import ProvisioningLog
from runner.engine.recovery import recover
from runner.errors import EXIT_UNAVAILABLE, Interrupted, ProvisionError, Unavailable, UsageError
from runner.manifest.model import Manifest, ObjectType
from runner.manifest.provenance import provenance
from runner.mapping.checks import load_with_connectors
from runner.mapping.mapper import Mapper
from runner.state import logquery
from runner.state.opening import Mode, open_store
from runner.state.store import now_iso

logger = logging.getLogger("provision")


@dataclass
class Summary:
    pipeline: str
    run_id: str
    status: str
    started: str
    finished: str = ""
    object_types: dict[str, TypeCounts] = field(default_factory=dict)
    taken_over: str | None = None
    # set when the pipeline is quarantined: this run stopped at the probe, or quarantined it
    quarantine: dict[str, Any] | None = None
    manifest: dict[str, Any] | None = None  # where the manifest came from (runner/manifest/provenance.py)
    refused: list[str] | None = None  # apply: why the planned operations cannot be sent as reviewed
    unplanned: int = 0  # apply: operations pending now that the plan does not hold (left for a later run)
    plan_file: str | None = None  # plan --out: where the plan was saved
    kind: str = "run"  # run, plan or apply

    def as_json(self, detail: bool = False) -> dict[str, Any]:
        """What --output json prints; ``detail``: what the runs table keeps for the run report too."""
        out = {"pipeline": self.pipeline, "run_id": self.run_id, "status": self.status,
               "started": self.started, "finished": self.finished,
               "object_types": {name: c.as_dict(detail) for name, c in self.object_types.items()}}
        if self.manifest is not None:
            out["manifest"] = self.manifest
        if self.quarantine is not None:
            out["quarantine"] = self.quarantine
        if self.stopped_by:
            out["stopped_by"] = self.stopped_by
        if self.refused is not None:
            out["refused"] = self.refused
        if self.unplanned:
            out["unplanned"] = self.unplanned
        if self.plan_file:
            out["plan_file"] = self.plan_file
        return out

    signal: int | None = None  # the signal that interrupted the run (0: its time limit)
    stopped_by: str | None = None  # what interrupted it, in words

    @property
    def exit_code(self) -> int:
        """A failed run whose passes stopped because a system could not be reached or refused the
        credentials exits 5, also when other objects failed too (the more urgent page); 1 else."""
        if self.status == "interrupted":
            return 128 + self.signal if self.signal else 3  # 0: the run's time limit
        if self.status == "failed" and any(c.unavailable for c in self.object_types.values()):
            return EXIT_UNAVAILABLE
        return {"ok": 0, "partial": 1, "failed": 1, "stopped": 3, "quarantined": 3, "refused": 3}[self.status]


def new_run_id() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + pysecrets.token_hex(3)


def selected_types(manifest: Manifest, names: tuple[str, ...]) -> list[ObjectType]:
    if not names:
        return list(manifest.object_types)
    unknown = [n for n in names if manifest.object_type(n) is None]
    if unknown:
        raise UsageError(f"no object type {', '.join(map(repr, unknown))} in {manifest.path.name}; "
                         f"it has: {', '.join(t.name for t in manifest.object_types)}")
    return [t for t in manifest.object_types if t.name in names]


Passes = Callable[[RunContext, list[ObjectType], Summary, dict[str, str | None]], None]


def execute(path: str | Path, options: RunOptions,
            on_plan_item: Callable[[PlanItem], None] | None = None,
            inspect: Callable[[RunContext], None] | None = None,
            passes: Passes | None = None) -> Summary:
    """Run (or plan, or apply a saved plan: ``options.apply``) the pipeline in ``path``.
    ``inspect`` sees the run's context once its passes are over, before the store closes
    (``check`` reads what the reconciliation found). A plan works on a store that is never
    written (:mod:`runner.state.dry`): it stages nothing a later run would trust. ``passes``:
    what runs the object types' passes once the lock is taken and the run started (default
    ``run_types``, in this process; runner/distributed/coordinator.py fans them out)."""
    loaded = load_with_connectors(path)
    manifest = loaded.manifest
    types = selected_types(manifest, options.object_types)
    store = (open_store(manifest, Mode.DRY, options.state_url) if options.dry or options.plan
             else open_store(manifest, Mode.WRITE))
    run_id = new_run_id()
    summary = Summary(manifest.name, run_id, "ok", now_iso())
    try:
        holder = store.runs.acquire_lock(manifest.name, run_id)
        if holder is not None:
            summary.taken_over = holder.describe()
            logger.warning("took over the lock of a run that is no longer alive (%s)", holder.describe())
        origin = provenance(manifest.path)
        summary.manifest = origin.as_json()
        summary.kind = kind = "plan" if options.plan else "apply" if options.apply is not None else "run"
        store.runs.start_run(run_id, manifest.name, kind, summary.started, origin.hash,
                             None if origin.commit is None else origin.commit + ("+" if origin.modified else ""))
        log = ProvisioningLog(None if options.plan else store, manifest.name, run_id,
                              None if options.plan else log_path(manifest, options.log_file))
        log.add("*", "*", "run", "started", changes={"manifest": origin.as_json()})
        for connector in loaded.connectors.values():
            connector.context.run_id = run_id
            connector.context.redact = secrets.redact
            connector.context.deadline = options.stop.deadline if options.stop else None
        ctx = RunContext(manifest, store, loaded.connectors, run_id, options, log)
        if options.progress is not None:
            ctx.progress = options.progress
        ctx.type_ids = {t.name: store.type_id(manifest.name, t.name) for t in manifest.object_types}
        ctx.due = None if options.retry_now else retries.due()
        opened: dict[str, str | None] = {}
        writer = PlanWriter(Path(options.plan_out)) if options.plan and options.plan_out else None
        try:
            if _probe_if_quarantined(ctx, types, summary, opened):
                (passes or run_types)(ctx, types, summary, opened)
            if options.plan and (on_plan_item is not None or writer is not None):
                _emit_plan(ctx, types, summary, opened, on_plan_item, writer)
            if inspect is not None:
                inspect(ctx)
        except Interrupted as stop:
            if writer is not None:
                writer.discard()
                writer = None
            store.rollback()
            log.flush()
            summary.status, summary.signal, summary.stopped_by = "interrupted", stop.signum, str(stop)
            logger.warning("%s", stop)
        finally:
            log.close()
            for connector in loaded.connectors.values():
                close_connector(connector)
        if summary.status not in ("interrupted", "quarantined", "refused"):
            summary.status = _status(summary)
        if not options.plan:
            _count_for_quarantine(ctx, summary)
            pruned = store.log.prune_log(manifest.name, retries.stamp(
                retries.now() - dt.timedelta(days=manifest.safety.log_retention)))
            if pruned:
                logger.info("provisioning log: %d entries older than %d days pruned", pruned,
                            manifest.safety.log_retention)
        summary.finished = now_iso()
        if writer is not None:
            writer.finish(planfile.header(summary.as_json(), origin.as_json(), manifest.path, options))
            summary.plan_file = str(writer.path)
        store.runs.finish_run(run_id, summary.status, summary.finished, summary.as_json(detail=True))
        if not options.plan and not options.dry:
            notify.after_run(manifest, store, summary.as_json())
        return summary
    finally:
        try:
            store.runs.release_lock(manifest.name, run_id)
        finally:
            store.close()


def release(ctx: RunContext, ot: ObjectType, mapper: Mapper, counts: TypeCounts, phases: Any) -> None:
    """The deletion guard holds this type's deletes and disables, but lets approved objects go."""
    released = ctx.released.get(ot.name)
    if counts.held and released:
        export_type(ctx, ot, mapper, counts, phases, only=released)


def _gate(ctx: RunContext, ran: list[tuple[ObjectType, Mapper, TypeCounts]], summary: Summary,
          opened: dict[str, str | None]) -> bool:
    """apply: False (nothing is sent, status refused) when any planned object changed since the plan."""
    for ot, _, _ in ran:
        if ctx.options.apply.operations(ot.name):
            open_connectors(ctx, [ot.target.connector], opened)  # the gate reads the planned objects back
    refusals, summary.unplanned = gate.check(ctx, [(ot, counts) for ot, _, counts in ran])
    if refusals:
        summary.status = "refused"
        summary.refused = [str(r) for r in refusals]
        ctx.logger.error("apply refused: %d planned objects changed since the plan; nothing was sent", len(refusals))
        return False
    return True


def _emit_plan(ctx: RunContext, types: list[ObjectType], summary: Summary, opened: dict[str, str | None],
               on_item: Callable[[PlanItem], None] | None, writer: PlanWriter | None) -> None:
    """Hand each planned operation to ``on_item``; with a writer, save it with the fingerprints
    of its inputs (the target objects read back live: the target connector opens for this)."""
    for ot in types:
        counts = summary.object_types.get(ot.name)
        if counts is None or counts.error:
            continue
        if writer is not None:
            with stops_the_pass(ctx, ot, counts):
                open_connectors(ctx, [ot.target.connector], opened)
        mapper = Mapper(ot)
        batch: list[tuple[PlanItem, str | None]] = []
        for item, state in plan_items(ctx, ot, held=bool(counts.held)):
            if on_item is not None:
                on_item(item)
            if writer is not None:
                batch.append((item, state))
                if len(batch) >= 500:
                    writer.add_batch(fingerprints(ctx, ot, mapper, [i for i, _ in batch], live=True), batch)
                    batch = []
        if writer is not None:
            writer.add_batch(fingerprints(ctx, ot, mapper, [i for i, _ in batch], live=True), batch)


def _probe_if_quarantined(ctx: RunContext, types: list[ObjectType], summary: Summary,
                          opened: dict[str, str | None]) -> bool:
    """A quarantined pipeline's run probes its targets first: False (stop here) while the probe
    fails; once it passes the quarantine lifts and the run goes on. Plans only say so."""
    held = ctx.store.runs.quarantine(ctx.pipeline)
    if held is None:
        return True
    if ctx.options.plan:
        logger.warning("pipeline %r is %s; a run probes its targets first", ctx.pipeline, held.describe())
        return True
    failure = quarantine.probe(ctx.connectors, types, opened)
    ctx.opened.update(name for name, error in opened.items() if error is None)
    for name, error in opened.items():
        if error is None:
            binding.check(ctx, name)
    if failure is None:
        ctx.store.runs.release_quarantine(ctx.pipeline)
        logger.warning("the probe of the targets passed: the quarantine is lifted (the pipeline was %s)",
                       held.describe())
        return True
    summary.status = "quarantined"
    summary.quarantine = {"since": held.since, "failed_runs": held.failed_runs, "reason": held.reason,
                          "probe": failure}
    logger.error("%s", quarantine.stopped_message(ctx.pipeline, held, failure))
    return False


def _count_for_quarantine(ctx: RunContext, summary: Summary) -> None:
    """A run that failed wholesale counts towards quarantine; any other finished run resets the count."""
    if summary.status in ("interrupted", "quarantined", "stopped", "refused"):
        return
    safety_ = ctx.manifest.safety
    reason = quarantine.assess(ctx.manifest, summary.object_types)
    started = ctx.store.runs.note_run(ctx.pipeline, ctx.run_id, reason, safety_.quarantine_after_runs)
    if started is not None:
        summary.quarantine = {"since": started.since, "failed_runs": started.failed_runs, "reason": started.reason}
        logger.error("pipeline %r is now quarantined after %d runs in a row that failed wholesale (%s). Later runs "
                     "probe its targets first and stop (exit 3) until the probe passes; `provision release FILE` "
                     "lifts the quarantine", ctx.pipeline, started.failed_runs, started.reason)
    elif reason is not None:
        logger.warning("this run failed wholesale (%s): %d of safety.quarantine.after_runs (%d) in a row",
                       reason, ctx.store.runs.failed_runs(ctx.pipeline), safety_.quarantine_after_runs)


def run_types(ctx: RunContext, types: list[ObjectType], summary: Summary,
               opened: dict[str, str | None] | None = None) -> None:
    if ctx.options.full_export and not ctx.options.plan:
        refusing = [ot.name for ot in types if not ctx.caps(ot).full_export]
        if refusing:
            raise UsageError(f"the target of {', '.join(map(repr, refusing))} does not take a full export; "
                             "run without --full-export, or choose those object types with --object-type")
    if opened is None:
        opened = {}  # connector name -> error that stopped it, or None when open
    ran: list[tuple[ObjectType, Mapper, TypeCounts]] = []
    if not ctx.options.plan:  # what an interrupted run left in doubt is settled before anything else
        for ot in types:
            counts = summary.object_types.setdefault(ot.name, TypeCounts())
            with stops_the_pass(ctx, ot, counts):
                open_connectors(ctx, [ot.target.connector], opened)
                recover(ctx, ot, Mapper(ot), counts)
    saved = ctx.options.apply
    for ot in types:
        counts = summary.object_types.setdefault(ot.name, TypeCounts())
        if counts.error:
            continue
        with stops_the_pass(ctx, ot, counts):
            ran.append((ot, _forward(ctx, ot, counts, opened, export=saved is None), counts))
    if saved is not None:  # apply: the plan computed now must be the plan reviewed, for every type
        ran = [r for r in ran if not r[2].error]
        if not _gate(ctx, ran, summary, opened):
            for ot in types:
                finish_counts(ctx, ot, summary.object_types[ot.name])
            return
        for ot, mapper, counts in ran:
            with stops_the_pass(ctx, ot, counts):
                _export_forward(ctx, ot, mapper, counts, None, safety.GUARDED if counts.held else (),
                                only=gate.planned(ctx, ot))
                release(ctx, ot, mapper, counts, FORWARD)
    if not ctx.options.plan:
        for ot, mapper, counts in reversed(ran):
            with stops_the_pass(ctx, ot, counts):
                export_type(ctx, ot, mapper, counts, DELETES, hold=safety.GUARDED if counts.held else (),
                            only=None if saved is None else gate.planned(ctx, ot))
                release(ctx, ot, mapper, counts, DELETES)
    for ot in types:
        finish_counts(ctx, ot, summary.object_types[ot.name])


def _forward(ctx: RunContext, ot: ObjectType, counts: TypeCounts, opened: dict[str, str | None],
             export: bool = True) -> Mapper:
    """Import, compute and (unless planning, or ``export`` is False) every export but deletes,
    for one object type."""
    mapper = Mapper(ot)
    if ctx.options.simulate:  # the state store alone: no source read, no target contact
        ctx.store.compute.mark_all_dirty(ctx.type_ids[ot.name])
        _compute(ctx, ot, mapper, counts, None, None)
        return mapper
    reconciling = reconcile.why(ctx, ot, mapper)
    open_connectors(ctx, [ot.source.connector] + ([ot.target.connector] if reconciling or not ctx.options.plan else []),
          opened)
    if not ctx.options.no_import:
        import_type(ctx, ot, counts)
    if ctx.options.full_export:
        ctx.store.compute.mark_all_dirty(ctx.type_ids[ot.name])
    if ot.delete_after:  # deferred deletes whose restore window ended are decided now
        ctx.store.compute.mark_gone_since(ctx.type_ids[ot.name], now_iso(ago=durations.seconds(ot.delete_after) or 0))
    matcher = target_side(ctx, ot, mapper, reconciling)
    held = _compute(ctx, ot, mapper, counts, matcher, reconciling)
    if export and not ctx.options.plan:
        _export_forward(ctx, ot, mapper, counts, matcher, safety.GUARDED if held else ())
        release(ctx, ot, mapper, counts, FORWARD)
    return mapper


def target_side(ctx: RunContext, ot: ObjectType, mapper: Mapper, reconciling: str | None) -> Matcher | None:
    """Reconcile with the target when due (engine/reconcile.py); the matcher compute links with."""
    if reconciling:
        reconcile.reconcile_target(ctx, ot, mapper, reconciling)
        matcher = Matcher(ctx, ot, correlate=True, link=ot.reconcile.unlinked == "link")
    else:
        ctx.store.reconcile.drop_orphan_exports(ctx.type_ids[ot.name])  # decided by a reconciliation, for it alone
        reconcile.count_run_without(ctx, ot)
        if not ot.match:
            return None
        matcher = Matcher(ctx, ot, lookups=True)  # a handful of new objects since the target was read
        ctx.logger.info("%s: matching by lookups in the target", ot.name)
    return matcher if matcher.rules else None


def _compute(ctx: RunContext, ot: ObjectType, mapper: Mapper, counts: TypeCounts, matcher: Matcher | None,
             reconciling: str | None) -> bool:
    """Compute, settle what the reconciliation found, and apply the deletion guard (True: it
    holds this type's deletes and disables)."""
    compute_type(ctx, ot, mapper, counts, matcher)
    own_references = ot.name in mapper.references.values()  # a manager: objects of this type refer to others
    if reconciling and matcher is not None and matcher.linked and own_references:
        reconcile.resolve_references(ctx, ot, mapper)  # adopted objects referencing adopted objects
        compute_type(ctx, ot, mapper, TypeCounts(), matcher)
    if reconciling:
        reconcile.settle_orphans(ctx, ot, mapper, counts)
    held = safety.check(ctx, ot, counts)
    if held and (kept := safety.keep_references(ctx, ot)):
        if own_references:  # the held objects' referrers of this type (a manager's reports)
            compute_type(ctx, ot, mapper, TypeCounts(), matcher)
        ctx.store.compute.mark_dirty(ctx.type_ids[ot.name], kept)
        ctx.store.commit()
    return held


def _export_forward(ctx: RunContext, ot: ObjectType, mapper: Mapper, counts: TypeCounts, matcher: Matcher | None,
                    hold: tuple[str, ...], only: set[str] | None = None) -> None:
    """Every export but deletes. Updates that found their object deleted by hand: created again
    now, with what of this type refers to them; adds that found their object there already (made
    by hand meanwhile, a 409): adopted, then updated now to what the mappings say (computed again:
    exports count, not computes); objects of this type that name a renamed one (a manager's DN):
    sent the new name now."""
    gone = export_type(ctx, ot, mapper, counts, FORWARD, hold=hold, only=only)
    adopted = ctx.adopted.pop(ot.name, 0)
    type_id = ctx.type_ids[ot.name]
    stale = any(t == type_id for t, _ in ctx.name_referrers(ot)) and ctx.store.compute.count_dirty(type_id) > 0
    if gone or adopted or stale:
        if gone:
            ctx.recreated.setdefault(ot.name, {}).update(gone)
        compute_type(ctx, ot, mapper, TypeCounts(), matcher)
        export_type(ctx, ot, mapper, counts, FORWARD, hold=hold, only=only)


def open_connectors(ctx: RunContext, names: list[str], opened: dict[str, Any]) -> None:
    """Open each connector once per run; one that failed to open stops every pass that needs it
    (``opened``: name -> None when open, else why not: the error, or its message)."""
    for name in names:
        if name not in opened:
            opened[name] = open_failure(ctx.connectors[name])
            if opened[name] is None:
                ctx.opened.add(name)
                binding.check(ctx, name)
        failure = opened[name]
        if failure:
            raise failure if isinstance(failure, ConnectorError) else ConnectionFailed(failure)


@contextlib.contextmanager
def stops_the_pass(ctx: RunContext, ot: ObjectType, counts: TypeCounts) -> Iterator[None]:
    """A connection failure stops this object type's pass (recorded in its counts); others go on."""
    try:
        yield
    except (ConnectionFailed, ConfigurationError) as exc:
        ctx.store.rollback()
        counts.error = secrets.redact(str(exc))
        counts.unavailable = counts.unavailable or isinstance(exc, SystemUnavailable)
        logger.error("%s: stopped: %s", ot.name, counts.error)
        ctx.log.flush()


def open_failure(connector: Connector) -> ConnectionFailed | ConfigurationError | None:
    """Open ``connector``: None, or the error that stopped it, of the same class (a
    SystemUnavailable stays one) with the connector's name before its message."""
    try:
        connector.open()
    except (ConnectionFailed, ConfigurationError) as exc:
        named = copy.copy(exc)
        named.args = (f"connector {connector.context.name!r}: {exc}",)
        return named
    return None


def open_connector(connector: Connector) -> str | None:
    """Open ``connector``: None, or why it could not be opened."""
    failure = open_failure(connector)
    return None if failure is None else str(failure)


def stopped_error(exc: ConnectionFailed | ConfigurationError, message: str | None = None) -> ProvisionError:
    """The command's error for a connector failure that stops it (``message``: the text, default the
    failure's own): :class:`Unavailable` (exit 5) when a system could not be reached or refused the
    credentials, else a plain ProvisionError (exit 1)."""
    text = secrets.redact(message if message is not None else str(exc))
    return Unavailable(text) if isinstance(exc, SystemUnavailable) else ProvisionError(text)


def close_connector(connector: Connector) -> None:
    try:
        connector.close()
    except Exception as exc:  # closing must never hide the run's outcome
        logger.warning("closing connector %r: %s", connector.context.name, secrets.redact(str(exc)))


def finish_counts(ctx: RunContext, ot: ObjectType, counts: TypeCounts) -> None:
    """Each object present in the source counts once: under the action it got (or failed), as
    waiting or blocked after earlier failures, not sent (due, but this run stopped or held it),
    out of scope with nothing to do, or else unchanged."""
    type_id = ctx.type_ids[ot.name]
    if ctx.options.plan:
        for item, state in plan_items(ctx, ot, held=bool(counts.held)):
            if state is None:
                counts.count(item.action, source_present=not item.gone)
            else:
                setattr(counts, state, getattr(counts, state) + 1)
                counts.touched += not item.gone
    else:
        ctx.store.approvals.prune_approvals(type_id)
        ctx.store.commit()
        waiting = ctx.store.exports.waiting(type_id, ctx.run_id, ctx.due)
        counts.waiting, counts.blocked = waiting.waiting, waiting.blocked
        counts.touched += waiting.present
        if waiting.waiting:
            logger.warning("%s: %d exports that failed in earlier runs wait for their next attempt (the first "
                           "at %s); `provision run --retry-now` sends them now", ot.name, waiting.waiting,
                           waiting.first)
        if waiting.blocked:
            logger.warning("%s: %d exports that failed with a permanent error are held until their source "
                           "objects change; `provision run --retry-now` sends them anyway", ot.name, waiting.blocked)
        counts.not_sent = ctx.store.exports.left_pending(type_id, ctx.run_id, ctx.due)
        if counts.failed:
            ctx.log.flush()
            counts.first_failures = [
                {"anchor": e["anchor"], "action": e["action"], "error": e.get("error") or ""}
                for e in reversed(logquery.entries(ctx.store, ctx.pipeline, object_type=ot.name, result="failed",
                                                   run_id=ctx.run_id, limit=FAILURES_NAMED))]
    counts.present = ctx.store.runs.count_present(type_id)
    quiet = ctx.store.runs.count_out_of_scope(type_id)
    # objects disabled by this run are out of scope with nothing pending now, and counted as disabled
    counts.out_of_scope = quiet if ctx.options.plan else max(0, quiet - counts.removed_present)
    if counts.error:  # the pass stopped: nothing can be said to be unchanged
        counts.unchanged = 0
    else:
        counts.unchanged = max(0, counts.present - counts.touched - counts.not_sent - counts.out_of_scope)


FAILURES_NAMED = 3  # per object type in a run's summary; provision logs lists them all


def _status(summary: Summary) -> str:
    if any(c.error for c in summary.object_types.values()):
        return "failed"
    if any(c.guard for c in summary.object_types.values()):
        return "stopped"
    if any(c.failed or c.waiting or c.blocked for c in summary.object_types.values()):
        return "partial"  # some objects failed, in this run or in earlier ones and wait to be retried
    return "ok"


def log_path(manifest: Manifest, cli_file: str | None) -> Path | None:
    """--log-file is relative to where the command runs; the manifest's log_file to the manifest."""
    if cli_file:
        return Path(cli_file).resolve()
    if manifest.log_file:
        return manifest.base_dir / manifest.log_file
    return None
