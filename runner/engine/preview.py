"""``provision preview``: one source object through import, scope, match, mapping and diff, step
by step (on-demand provisioning, as in Entra); with ``--apply``, export that one object.

The steps are the engine's own passes restricted to one anchor (``compute_type(..., only=)``,
``export_type(..., only=)``), so a preview shows exactly what a run would decide:

1. **import**: the source is read page by page until the anchor turns up; only that record is
   stored, compared with what the state store last saw of it.
2. **scope**: every clause of the scoping filter with its result.
3. **match**: the stored link to a target object, else each match rule with its hits.
4. **mapping**: every target attribute: its rule and value (references: whether the referenced
   object is provisioned, and its target key).
5. **diff**: the pending export compute made against what the state store knows the target
   holds (add, update with old -> new values, disable, delete, or nothing to do).

Without ``--apply`` nothing is written: the passes run on a private snapshot of a SQLite state
store (deleted afterwards), or inside one transaction rolled back on a server store; a pipeline
that never ran gets an empty in-memory store. No lock is taken, a run going on is neither
disturbed nor waited for, and the target is read only for match rules. With ``--apply``, under the pipeline's lock, the object
is imported, computed and exported as a run would do it (a run of kind ``preview``, the
provisioning log), so the next run finds it unchanged. Other objects are not imported: a
reference to an object not provisioned yet is left out, and the run that provisions that object
fills it in.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner import secrets
from runner.connectors.base import ConfigurationError, ConnectionFailed, Connector, Record, SystemUnavailable
from runner.engine.compute import compute_type
from runner.engine.context import RunContext, RunOptions, TypeCounts
from runner.engine.export import PHASES, export_type
from runner.engine.matching import Matcher, fold
from runner.engine.plan import PlanItem, plan_changes
from runner.engine.provlog import MASK, ProvisioningLog
from runner.engine.reconcile import reconcile_target
from runner.engine.run import (
    Summary,
    close_connector,
    log_path,
    new_run_id,
    open_failure,
    selected_types,
    stopped_error,
)
from runner.engine.targets import keep_secrets, state_form
from runner.errors import EXIT_UNAVAILABLE, ProvisionError, Unavailable, UsageError
from runner.manifest.model import Manifest, ObjectType
from runner.mapping.checks import load_with_connectors
from runner.mapping.explain import AttributeStep, ScopeStep, explain_mapping, explain_scope
from runner.mapping.mapper import Mapper
from runner.mapping.scope import compile_scope
from runner.state.opening import Mode, open_store
from runner.state.store import StateStore, dumps, now_iso


@dataclass
class Preview:
    pipeline: str
    object_type: str
    anchor: str
    applied: bool = False
    run_id: str | None = None
    source: dict[str, Any] = field(default_factory=dict)
    read: int = 0  # source records read to find it
    imported: str = "new"  # new | changed | unchanged, against the state store
    changed: list[str] = field(default_factory=list)  # source attributes changed since last seen
    scope: list[ScopeStep] = field(default_factory=list)
    in_scope: bool = True
    linked: str | None = None  # target anchor of the stored link, before this preview
    matched: str | None = None  # target anchor the match rules found
    match_rules: list[dict[str, Any]] = field(default_factory=list)
    mapping: list[AttributeStep] = field(default_factory=list)
    references: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    target: dict[str, Any] | None = None  # what the state store knows the target holds
    target_disabled: bool = False
    change: PlanItem | None = None
    error: str | None = None  # the object could not be computed (mapping, match)
    result: dict[str, Any] | None = None  # the export, with --apply
    when_out_of_scope: str = "disable"
    target_read: str | None = None  # the linked object read from the target: read | missing | not read

    @property
    def exit_code(self) -> int:
        """0, 1 when the object failed, 5 when the export stopped because the target could not be
        reached or refused the credentials."""
        if self.result is not None and self.result.get("unavailable"):
            return EXIT_UNAVAILABLE
        failed = self.error is not None or (self.result is not None and self.result["result"] != "ok")
        return 1 if failed else 0

    def as_json(self) -> dict[str, Any]:
        return {
            "pipeline": self.pipeline, "object_type": self.object_type, "anchor": self.anchor,
            "applied": self.applied, "run_id": self.run_id,
            "import": {"status": self.imported, "changed": self.changed, "records_read": self.read,
                       "source": self.source},
            "scope": {"in_scope": self.in_scope, "clauses": [s.as_dict() for s in self.scope]},
            "match": {"linked": self.linked, "matched": self.matched, "rules": self.match_rules},
            "mapping": [a.as_dict() for a in self.mapping],
            "references": self.references,
            "target": None if self.target is None else {"data": self.target, "disabled": self.target_disabled,
                                                        "read": self.target_read},
            "diff": None if self.change is None else {"action": self.change.action, "changes": self.change.changes,
                                                      "target_anchor": self.change.target_anchor},
            "error": self.error,
            "result": self.result,
        }


class RecordingLog(ProvisioningLog):
    """The provisioning log, also keeping this run's entries to report them."""

    def __init__(self, *args: Any):
        super().__init__(*args)
        self.entries: list[dict[str, Any]] = []

    def add(self, *args: Any, **kwargs: Any) -> None:
        super().add(*args, **kwargs)
        self.entries.append(self.batch[-1])


def preview(path: str | Path, object_type: str, anchor: str, apply: bool = False) -> Preview:
    """Take the source object ``anchor`` of ``object_type`` through every step; export it if ``apply``."""
    loaded = load_with_connectors(path)
    manifest = loaded.manifest
    ot = selected_types(manifest, (object_type,))[0]
    out = Preview(manifest.name, ot.name, anchor, applied=apply, when_out_of_scope=ot.when_out_of_scope)
    opened: set[str] = set()
    try:
        ensure_open(loaded.connectors, ot.source.connector, opened)
        found = _find(ot, loaded.connectors[ot.source.connector], anchor, out)
        if found is None:
            raise UsageError(f"no {ot.name} with {ot.source.anchor} = {anchor!r} in "
                             f"{ot.source.connector}/{ot.source.object} ({out.read} records read)")
        record, partition = found
        store = open_store(manifest, Mode.WRITE if apply else Mode.DRY)
        try:
            _steps(manifest, ot, loaded.connectors, opened, store, out, record, partition)
        finally:
            store.close()
    finally:
        for name in opened:
            close_connector(loaded.connectors[name])
    return out


def _read_linked(ctx: RunContext, ot: ObjectType, mapper: Mapper, anchor: str, target_anchor: str) -> str:
    """Read the linked object from the target, so the diff is against what it holds now, not
    what the state remembers (a value edited by hand, an object deleted by hand): "read",
    "missing" (gone: the link goes and the object is created again), or "not read" (the
    connector cannot look single objects up)."""
    connector, store, type_id = ctx.target(ot), ctx.store, ctx.type_ids[ot.name]
    if not connector.can("get"):
        return "not read"
    name = store.imports.target_name(type_id, target_anchor)
    try:
        record = connector.get(ot.target.object, target_anchor, name=name, partition=ot.target.partition
                               if ot.target.partition and "{" not in ot.target.partition else None)
    except (ConnectionFailed, ConfigurationError) as exc:
        raise stopped_error(exc, f"{ot.name}: reading {target_anchor} from the target: {exc}") from None
    if record is None:
        store.exports.unlink(type_id, [(anchor, target_anchor)])
        store.commit()
        return "missing"
    if record.anchor is None:
        record = Record(record.attributes, target_anchor, record.name, record.partition, version=record.version)
    read = state_form(ctx, ot, mapper, [record])[0]
    old = store.exports.targets_data(type_id, [target_anchor]).get(target_anchor, ({}, False))[0]
    read = keep_secrets(read, old, mapper)
    store.imports.store_targets(type_id, [read], overwrite=True)
    store.commit()
    return "read"


def ensure_open(connectors: dict[str, Connector], name: str, opened: set[str]) -> None:
    if name in opened:
        return
    failure = open_failure(connectors[name])
    if failure is not None:
        raise stopped_error(failure)
    opened.add(name)


def _find(ot: ObjectType, connector: Connector, anchor: str, out: Preview) -> tuple[dict[str, Any], str | None] | None:
    """The source record with ``anchor``, read page by page; nothing else is kept."""
    for partition in ot.source.partitions:
        pages = connector.read(ot.source.object, partition, None)
        try:
            for page in _pages(pages, ot):
                for record in page.records:
                    if record.deleted:
                        continue
                    out.read += 1
                    value = record.attributes.get(ot.source.anchor)
                    if value not in (None, "") and str(value) == anchor:
                        return dict(record.attributes), partition
        finally:
            close = getattr(pages, "close", None)
            if close is not None:
                close()
    return None


def _pages(pages: Any, ot: ObjectType) -> Iterator[Any]:
    try:
        yield from pages
    except (ConnectionFailed, ConfigurationError) as exc:
        raise stopped_error(exc, f"{ot.name}: reading {ot.source.connector}/{ot.source.object}: {exc}") from None


def _steps(manifest: Manifest, ot: ObjectType, connectors: dict[str, Connector], opened: set[str],
           store: StateStore, out: Preview, record: dict[str, Any], partition: str | None) -> None:
    run_id = new_run_id()
    started = now_iso()
    if out.applied:
        holder = store.runs.acquire_lock(manifest.name, run_id)
        if holder is not None:
            logging.getLogger("provision").warning("took over the lock of a run that is no longer alive (%s)",
                                                   holder.describe())
        out.run_id = run_id
        store.runs.start_run(run_id, manifest.name, "preview", started)
    log = RecordingLog(store if out.applied else None, manifest.name, run_id,
                       log_path(manifest, None) if out.applied else None)
    ctx = RunContext(manifest, store, connectors, run_id, RunOptions(plan=not out.applied), log,
                     holds_lock=out.applied)
    ctx.opened = opened  # the same set: connectors opened by the steps below count for capabilities
    counts = TypeCounts(imported=1)
    finished = False
    try:
        ctx.type_ids = {t.name: store.type_id(manifest.name, t.name) for t in manifest.object_types}
        type_id = ctx.type_ids[ot.name]
        mapper = Mapper(ot)

        # 1. import: this record only, as a run stores it
        anchor = out.anchor
        stored = json.loads(dumps(record))
        before = store.exports.source_data(type_id, anchor)
        if before is not None:
            out.changed = sorted(k for k in set(before) | set(stored) if before.get(k) != stored.get(k))
            out.imported = "changed" if out.changed else "unchanged"
        out.source = _masked_source(ot, mapper, {k: stored.get(k) for k in record})
        store.imports.import_page(type_id, [(anchor, record)], full=False, partition=partition)
        store.compute.mark_dirty(type_id, [anchor])  # evaluated again even when unchanged
        store.commit()

        # 2. scope
        out.scope = explain_scope(ot.scope, stored)
        out.in_scope = bool(compile_scope(ot.scope)(stored))

        # 3. match: the stored link, else the match rules (which need the target's objects)
        out.linked, out.target_read, matcher = find_target(ctx, ot, mapper, opened, anchor, out.in_scope)
        if matcher is not None:
            out.match_rules = list(_explain_rules(ctx, matcher, type_id, stored))

        # 4. and 5. mapping and diff: the compute pass, for this anchor only
        compute_type(ctx, ot, mapper, counts, matcher, only={anchor})
        store.commit()
        if out.linked is None:
            out.matched = store.exports.target_anchors(type_id, [anchor]).get(anchor)
        target_anchor = out.linked or out.matched
        if target_anchor is not None:
            data, out.target_disabled = store.exports.targets_data(type_id, [target_anchor]).get(target_anchor, ({}, False))
            out.target = {k: MASK if k in mapper.sensitive and v is not None else v for k, v in data.items()}
        out.mapping = explain_mapping(ot, stored)
        out.references = _references(ctx, mapper, out.mapping)
        failed = [e for e in log.entries if e["result"] == "failed"]
        if failed:
            out.error = f"{failed[-1]['action']}: {failed[-1]['error']}"
        pending = store.exports.all_pending_for(type_id, [anchor])
        if pending:
            row = pending[0]
            out.change = PlanItem(ot.name, anchor, row.action, plan_changes(row.change, mapper),
                                  row.target_anchor, row.last_error)

        # 6. export, with --apply
        if out.applied:
            if out.change is not None:
                out.result = export_one(ctx, ot, mapper, counts, opened, anchor, log)
            log.flush()
            finish_run(store, manifest, ot, run_id, started, counts)
            finished = True
    finally:
        log.close()
        if out.applied:
            if not finished:  # stopped by an error: the run record says so
                store.rollback()
                store.runs.finish_run(run_id, "failed", now_iso(), {"pipeline": manifest.name, "run_id": run_id})
            store.runs.release_lock(manifest.name, run_id)


def find_target(ctx: RunContext, ot: ObjectType, mapper: Mapper, opened: set[str], anchor: str,
                in_scope: bool) -> tuple[str | None, str | None, Matcher | None]:
    """The target object source object ``anchor`` is linked to, before compute: (the stored link,
    read again from the target and dropped when it is gone there; how the target read went, see
    :func:`_read_linked`; the matcher for its match rules when it has no link, is in scope and the
    type has rules: they need the target's values, read here)."""
    store, type_id = ctx.store, ctx.type_ids[ot.name]
    linked = store.exports.target_anchors(type_id, [anchor]).get(anchor)
    target_read = None
    matcher = None
    if linked is not None:
        ensure_open(ctx.connectors, ot.target.connector, opened)
        target_read = _read_linked(ctx, ot, mapper, anchor, linked)
        if target_read == "missing":
            linked = None
    if linked is None and ot.match and in_scope:
        ensure_open(ctx.connectors, ot.target.connector, opened)
        try:
            reconcile_target(ctx, ot, mapper, "preview: match rules need the target's values", missing=False)
        except (ConnectionFailed, ConfigurationError) as exc:
            raise stopped_error(exc, f"{ot.name}: reading the target for match rules: {exc}") from None
        matcher = Matcher(ctx, ot)
    return linked, target_read, matcher


def export_one(ctx: RunContext, ot: ObjectType, mapper: Mapper, counts: TypeCounts, opened: set[str],
               anchor: str, log: RecordingLog) -> dict[str, Any]:
    """Export the pending change of source object ``anchor`` (every phase, this anchor only) and
    say how it went: ``{"result": "ok"|"failed", "action", "target_anchor", "error"}``. A pass
    stopped by a connection or configuration failure is rolled back and sets ``counts.error``."""
    store, type_id = ctx.store, ctx.type_ids[ot.name]
    seen = len(log.entries)
    try:
        ensure_open(ctx.connectors, ot.target.connector, opened)
        export_type(ctx, ot, mapper, counts, PHASES, only={anchor})
    except (ProvisionError, ConnectionFailed, ConfigurationError) as exc:
        store.rollback()
        counts.error = secrets.redact(str(exc))
        counts.unavailable = isinstance(exc, (Unavailable, SystemUnavailable))
        return {"result": "failed", "error": counts.error, **({"unavailable": True} if counts.unavailable else {})}
    done = [e for e in log.entries[seen:] if e["action"] != "match"]
    last = done[-1] if done else {"result": "failed", "error": "nothing was exported"}
    return {"result": last["result"], "action": last.get("action"),
            "target_anchor": store.exports.target_anchors(type_id, [anchor]).get(anchor),
            "error": last.get("error")}


def finish_run(store: StateStore, manifest: Manifest, ot: ObjectType, run_id: str, started: str,
               counts: TypeCounts) -> None:
    """Record the end of a one-object run: its status and summary."""
    counts.unchanged = max(0, 1 - counts.touched)
    status = "failed" if counts.error else "partial" if counts.failed else "ok"
    summary = Summary(manifest.name, run_id, status, started, now_iso(), {ot.name: counts})
    store.runs.finish_run(run_id, status, summary.finished, summary.as_json())


def _masked_source(ot: ObjectType, mapper: Mapper, record: dict[str, Any]) -> dict[str, Any]:
    """The source record, with attributes copied into sensitive target attributes masked."""
    hidden = {m.source for m in ot.mapping if m.source and m.target in mapper.sensitive}
    return {k: MASK if k in hidden and v is not None else v for k, v in record.items()}


def _explain_rules(ctx: RunContext, matcher: Matcher, type_id: int, record: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Each match rule: the value it looks for and the unlinked target objects holding it."""
    for label, get, target_attr in matcher.rules:
        try:
            value = get(record, {}, None)
        except Exception as exc:  # as in Matcher.find: a rule that cannot be evaluated does not match
            yield {"rule": f"{label} -> {target_attr}", "value": None, "hits": [], "error": str(exc)}
            continue
        hits = [] if value in (None, "") else ctx.store.imports.match_candidates(
            type_id, target_attr, fold(value, target_attr, matcher.normalizations))
        yield {"rule": f"{label} -> {target_attr}", "value": value, "hits": hits}


def _references(ctx: RunContext, mapper: Mapper, steps: list[AttributeStep]) -> dict[str, list[dict[str, Any]]]:
    """For each reference value: is the referenced object provisioned (after this run), and its target key."""
    out: dict[str, list[dict[str, Any]]] = {}
    for step in steps:
        ref_type = mapper.references.get(step.target)
        if ref_type is None or step.error is not None or step.value in (None, []):
            continue
        values = [str(v) for v in (step.value if isinstance(step.value, list) else [step.value])]
        type_id = ctx.type_ids[ref_type]
        exists = ctx.store.compute.exists_after(type_id, values)
        keys = ctx.store.exports.target_anchors(type_id, values)
        out[step.target] = [{"anchor": v, "provisioned": v in exists, "target_anchor": keys.get(v)} for v in values]
    return out


# ---- text ------------------------------------------------------------------------------------------
