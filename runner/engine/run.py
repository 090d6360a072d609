"""One run of a pipeline: lock, then import -> compute -> export per object type, in manifest order.

``execute`` is the engine's single entry point for ``provision run`` and ``provision plan``. It
returns a :class:`Summary` whatever happens to individual objects; it raises only for what
stops a run before it starts (invalid manifest, lock held, unusable state store).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import secrets as pysecrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner import secrets
from runner.connectors.base import ConfigurationError, ConnectionFailed, Connector
from runner.engine import safety
from runner.engine.compute import compute_type
from runner.engine.context import RunContext, RunOptions, TypeCounts
from runner.engine.export import DELETES, FORWARD, export_type
from runner.engine.importer import import_type
from runner.engine.matching import Matcher, few_unlinked
from runner.engine.plan import PlanItem, plan_items
from runner.engine.reconcile import import_target
from runner.engine.recovery import recover
from runner.errors import Interrupted, UsageError
from runner.manifest import load_with_connectors
from runner.manifest.model import Manifest, ObjectType
from runner.mapping.mapper import Mapper
from runner.provlog import ProvisioningLog
from runner.state.store import StateStore, default_url, now_iso

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

    def as_json(self) -> dict[str, Any]:
        return {"pipeline": self.pipeline, "run_id": self.run_id, "status": self.status,
                "started": self.started, "finished": self.finished,
                "object_types": {name: c.as_dict() for name, c in self.object_types.items()}}

    signal: int | None = None  # the signal that interrupted the run

    @property
    def exit_code(self) -> int:
        if self.status == "interrupted":
            return 128 + (self.signal or 2)
        return {"ok": 0, "partial": 1, "failed": 1, "stopped": 3}[self.status]


def new_run_id() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + pysecrets.token_hex(3)


def open_store(manifest: Manifest) -> StateStore:
    return StateStore(manifest.state or default_url(manifest.path, manifest.name), manifest.base_dir)


def selected_types(manifest: Manifest, names: tuple[str, ...]) -> list[ObjectType]:
    if not names:
        return list(manifest.object_types)
    unknown = [n for n in names if manifest.object_type(n) is None]
    if unknown:
        raise UsageError(f"no object type {', '.join(map(repr, unknown))} in {manifest.path.name}; "
                         f"it has: {', '.join(t.name for t in manifest.object_types)}")
    return [t for t in manifest.object_types if t.name in names]


def execute(path: str | Path, options: RunOptions,
            on_plan_item: Callable[[PlanItem], None] | None = None) -> Summary:
    """Run (or plan) the pipeline in ``path``."""
    loaded = load_with_connectors(path)
    manifest = loaded.manifest
    types = selected_types(manifest, options.object_types)
    store = open_store(manifest)
    run_id = new_run_id()
    summary = Summary(manifest.name, run_id, "ok", now_iso())
    try:
        holder = store.acquire_lock(manifest.name, run_id)
        if holder is not None:
            summary.taken_over = holder.describe()
            logger.warning("took over the lock of a run that is no longer alive (%s)", holder.describe())
        store.start_run(run_id, manifest.name, "plan" if options.plan else "run", summary.started)
        log = ProvisioningLog(None if options.plan else store, manifest.name, run_id,
                              None if options.plan else log_path(manifest, options.log_file))
        for connector in loaded.connectors.values():
            connector.context.run_id = run_id
            connector.context.redact = secrets.redact
        ctx = RunContext(manifest, store, loaded.connectors, run_id, options, log)
        ctx.type_ids = {t.name: store.type_id(manifest.name, t.name) for t in manifest.object_types}
        try:
            _run_types(ctx, types, summary)
            if options.plan and on_plan_item is not None:
                for ot in types:
                    for item in plan_items(ctx, ot):
                        on_plan_item(item)
        except Interrupted as stop:
            store.rollback()
            log.flush()
            summary.status, summary.signal = "interrupted", stop.signum
            logger.warning("%s", stop)
        finally:
            log.close()
            for connector in loaded.connectors.values():
                close_connector(connector)
        if summary.status != "interrupted":
            summary.status = _status(summary)
        summary.finished = now_iso()
        store.finish_run(run_id, summary.status, summary.finished, summary.as_json())
        return summary
    finally:
        try:
            store.release_lock(manifest.name, run_id)
        finally:
            store.close()


def _run_types(ctx: RunContext, types: list[ObjectType], summary: Summary) -> None:
    if ctx.options.full_export and not ctx.options.plan:
        refusing = [ot.name for ot in types if not ctx.caps(ot).full_export]
        if refusing:
            raise UsageError(f"the target of {', '.join(map(repr, refusing))} does not take a full export; "
                             "run without --full-export, or choose those object types with --object-type")
    opened: dict[str, str | None] = {}  # connector name -> error that stopped it, or None when open
    ran: list[tuple[ObjectType, Mapper, TypeCounts]] = []
    if not ctx.options.plan:  # what an interrupted run left in doubt is settled before anything else
        for ot in types:
            counts = summary.object_types.setdefault(ot.name, TypeCounts())
            with _stops_the_pass(ctx, ot, counts):
                _open(ctx, [ot.target.connector], opened)
                recover(ctx, ot, Mapper(ot), counts)
    for ot in types:
        counts = summary.object_types.setdefault(ot.name, TypeCounts())
        if counts.error:
            continue
        with _stops_the_pass(ctx, ot, counts):
            ran.append((ot, _forward(ctx, ot, counts, opened), counts))
    if not ctx.options.plan:
        for ot, mapper, counts in reversed(ran):
            with _stops_the_pass(ctx, ot, counts):
                export_type(ctx, ot, mapper, counts, DELETES, hold=safety.GUARDED if counts.held else ())
    for ot in types:
        _finish_counts(ctx, ot, summary.object_types[ot.name])


def _forward(ctx: RunContext, ot: ObjectType, counts: TypeCounts, opened: dict[str, str | None]) -> Mapper:
    """Import, compute and (unless planning) every export but deletes, for one object type."""
    mapper = Mapper(ot)
    # match rules and unique values look at the target; --full also reconciles with it
    reads_target = bool(ot.match or mapper.unique) or (ctx.options.full_import and not ctx.options.plan
                                                       and ctx.target(ot).can("read"))
    _open(ctx, [ot.source.connector] + ([ot.target.connector] if reads_target or not ctx.options.plan else []),
          opened)
    if not ctx.options.no_import:
        import_type(ctx, ot, counts)
    if ctx.options.full_export:
        ctx.store.mark_all_dirty(ctx.type_ids[ot.name])
    matcher = Matcher(ctx, ot) if ot.match else None
    if ot.match and not mapper.unique and not ctx.options.full_import and ctx.target(ot).can("lookup") \
            and few_unlinked(ctx, ot):
        matcher = Matcher(ctx, ot, lookups=True)  # a handful of new objects: ask, don't read everything
        ctx.logger.info("%s: matching by lookups in the target", ot.name)
    elif reads_target:
        import_target(ctx, ot, mapper)
    compute_type(ctx, ot, mapper, counts, matcher)
    held = safety.check(ctx, ot, counts)
    if not ctx.options.plan:
        export_type(ctx, ot, mapper, counts, FORWARD, hold=safety.GUARDED if held else ())
    return mapper


def _open(ctx: RunContext, names: list[str], opened: dict[str, str | None]) -> None:
    """Open each connector once per run; one that failed to open stops every pass that needs it."""
    for name in names:
        if name not in opened:
            opened[name] = open_connector(ctx.connectors[name])
            if opened[name] is None:
                ctx.opened.add(name)
        if opened[name]:
            raise ConnectionFailed(opened[name] or "")


@contextlib.contextmanager
def _stops_the_pass(ctx: RunContext, ot: ObjectType, counts: TypeCounts) -> Iterator[None]:
    """A connection failure stops this object type's pass (recorded in its counts); others go on."""
    try:
        yield
    except (ConnectionFailed, ConfigurationError) as exc:
        ctx.store.rollback()
        counts.error = secrets.redact(str(exc))
        logger.error("%s: stopped: %s", ot.name, counts.error)
        ctx.log.flush()


def open_connector(connector: Connector) -> str | None:
    try:
        connector.open()
    except (ConnectionFailed, ConfigurationError) as exc:
        return f"connector {connector.context.name!r}: {exc}"
    return None


def close_connector(connector: Connector) -> None:
    try:
        connector.close()
    except Exception as exc:  # closing must never hide the run's outcome
        logger.warning("closing connector %r: %s", connector.context.name, secrets.redact(str(exc)))


def _finish_counts(ctx: RunContext, ot: ObjectType, counts: TypeCounts) -> None:
    """Unchanged = objects present in the source that no action touched and that did not fail."""
    if ctx.options.plan:
        for item in plan_items(ctx, ot):
            counts.count(item.action, source_present=not item.gone)
    present = ctx.store.count_present(ctx.type_ids[ot.name])
    counts.unchanged = max(0, present - counts.touched)


def _status(summary: Summary) -> str:
    if any(c.error for c in summary.object_types.values()):
        return "failed"
    if any(c.guard for c in summary.object_types.values()):
        return "stopped"
    if any(c.failed for c in summary.object_types.values()):
        return "partial"
    return "ok"


def log_path(manifest: Manifest, cli_file: str | None) -> Path | None:
    """--log-file is relative to where the command runs; the manifest's log_file to the manifest."""
    if cli_file:
        return Path(cli_file).resolve()
    if manifest.log_file:
        return manifest.base_dir / manifest.log_file
    return None
