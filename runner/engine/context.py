"""What the passes of one run share: the manifest, the state store, connectors, counts, the log."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from runner.actions import COUNTED_AS
from runner.connectors.base import Capabilities, Connector
from runner.engine.progress import SILENT, Progress
from runner.engine.provlog import ProvisioningLog
from runner.errors import Interrupted
from runner.manifest.model import Manifest, ObjectType
from runner.state.store import StateStore


@dataclass
class TypeCounts:
    """Per object type and run. Each object counts under exactly one action."""

    imported: int = 0
    added: int = 0
    updated: int = 0
    renamed: int = 0
    disabled: int = 0
    deleted: int = 0
    unchanged: int = 0
    failed: int = 0
    recovered: int = 0  # exports of an interrupted run settled against the target at the start of this one
    held: int = 0  # deletes and disables the deletion guard held back
    waiting: int = 0  # exports that failed in earlier runs, not sent by this one: next attempt later
    blocked: int = 0  # exports held after a permanent error until their source object changes
    guard: str | None = None  # why the deletion guard stopped this type
    # what a reconciliation found, per situation (linked, drifted, missing, ...); None: none ran
    reconciled: dict[str, int] | None = None
    error: str | None = None  # set when the whole pass stopped (connection failed)
    unavailable: bool = False  # it stopped because a system could not be reached or refused the credentials
    # rules under review (proposed:): per attribute, objects whose value would differ, and examples
    proposed: dict[str, Any] | None = None
    out_of_scope: int = 0  # objects the source has outside the scope, with nothing to do (apart from unchanged)
    not_sent: int = 0  # objects with an export due that this run did not send (it stopped; the guard held it)
    first_failures: list[dict[str, str]] = field(default_factory=list)  # the first objects that failed, named
    slowest: list[dict[str, Any]] = field(default_factory=list)  # the slowest operations: anchor, action, seconds
    touched: int = 0  # objects still in the source that got an action or failed (not reported)
    present: int = 0  # objects in the source at the end of the run (not reported)
    removed_present: int = 0  # of those, disabled or deleted this run while still in the source (not reported)

    def as_dict(self, detail: bool = False) -> dict[str, Any]:
        """The counts as reported; ``detail`` adds what the run report reads (the slowest operations)."""
        out = asdict(self)
        del out["touched"], out["present"], out["removed_present"]
        if not detail:
            del out["slowest"]
        if out["error"] is None:
            del out["error"]
        for key in ("recovered", "held", "waiting", "blocked", "guard", "reconciled", "proposed", "not_sent",
                    "first_failures", "slowest", "unavailable"):
            if key in out and not out[key]:
                del out[key]
        return out

    def count(self, action: str, source_present: bool) -> None:
        """Count one object under the report key of a pending ``action`` (add -> added, ...)."""
        key = COUNTED_AS[action]
        setattr(self, key, getattr(self, key) + 1)
        self.touched += source_present
        if source_present and key in ("disabled", "deleted"):
            self.removed_present += 1


@dataclass
class RunOptions:
    plan: bool = False
    object_types: tuple[str, ...] = ()
    no_import: bool = False
    log_file: str | None = None
    full_export: bool = False  # re-send every in-scope object's mapped attributes
    full_import: bool = False  # ignore delta watermarks: read everything
    partition: str | None = None  # only this source partition
    stop: StopFlag | None = None  # set by a signal handler: finish what is in flight, then stop
    allow_deletes: int | None = None  # --allow-deletes N (-1: all): let the deletion guard pass
    retry_now: bool = False  # --retry-now: send exports that failed before now, ignoring their back-off
    reconcile: bool = False  # --reconcile: read the target and react per situation (engine/reconcile.py)
    rebind: bool = False  # --rebind: the target is another system now; reconcile everything with it
    dry: bool = False  # a store that is never written (check, preview); every plan is dry too
    plan_out: str | None = None  # plan --out: save the plan here, with its inputs' fingerprints
    plan_expires: float = 72 * 3600.0  # seconds a saved plan stays valid
    # a simulation (plan --against): compute from the state store alone, every object afresh, no
    # connector opened; state_url: the store to work on (a copy of it), when not the manifest's own
    simulate: bool = False
    state_url: str | None = None
    progress: Progress | None = None  # where each pass reports how far it is (the CLI's display)
    # apply: the saved plan (runner/engine/planfile.py:SavedPlan) whose operations alone are sent
    apply: Any = None


class StopFlag:
    """A request to stop (SIGINT, SIGTERM, or the run's time limit passing): the engine finishes
    and records what is in flight, then raises :class:`runner.errors.Interrupted` at the next
    safe point. A time limit lets a cron job end cleanly before the scheduler kills it."""

    def __init__(self, deadline: float | None = None, time_limit: str | None = None) -> None:
        self.signal: int | None = None
        self.deadline = deadline  # time.monotonic() value
        self.time_limit = time_limit  # as the operator wrote it, for messages

    def set(self, signum: int) -> None:
        self.signal = signum

    def expired(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def __bool__(self) -> bool:
        return self.signal is not None or self.expired()


@dataclass
class RunContext:
    manifest: Manifest
    store: StateStore
    connectors: dict[str, Connector]
    run_id: str
    options: RunOptions
    log: ProvisioningLog
    type_ids: dict[str, int] = field(default_factory=dict)
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("provision"))
    negotiated: dict[tuple[str, str], Capabilities] = field(default_factory=dict)
    opened: set[str] = field(default_factory=set)  # connectors open for this run
    # exports whose next attempt (after failures) is later than this are not sent; None: all are
    # (provision preview --apply, run --retry-now). runner/retries.py
    due: str | None = None
    # object types this run reconciled with their target -> the mark of that read (engine/reconcile.py)
    reconciled: dict[str, str] = field(default_factory=dict)
    linked_seen: dict[str, int] = field(default_factory=dict)  # type -> linked objects its reconciliation read
    gone: dict[str, set[str]] = field(default_factory=dict)  # type -> target anchors found missing this run
    # type -> source anchor -> old target anchor, of objects an update found gone and this run added again
    recreated: dict[str, dict[str, str]] = field(default_factory=dict)
    # type -> how many objects an add found already there and adopted in the export (computed again in this run)
    adopted: dict[str, int] = field(default_factory=dict)
    progress: Progress = SILENT  # how far each pass is (engine/progress.py); the CLI shows it
    # type -> approved objects the deletion guard lets through while it holds the others (engine/safety.py)
    released: dict[str, set[str]] = field(default_factory=dict)
    # (type, source anchor) -> the connector's error for an export that failed this run; kept only
    # when a caller asks (provision serve answers with it: 503 and its Retry-After, or the rejection)
    errors: dict[tuple[str, str], Exception] | None = None
    # type -> source anchor -> the drifted attributes the previous reconciliation found (confirming exports)
    drifted_before: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    holds_lock: bool = True  # False for a preview, which takes no lock and disturbs no run

    @property
    def pipeline(self) -> str:
        return self.manifest.name

    def source(self, ot: ObjectType) -> Connector:
        return self.connectors[ot.source.connector]

    def target(self, ot: ObjectType) -> Connector:
        return self.connectors[ot.target.connector]

    def caps(self, ot: ObjectType) -> Capabilities:
        """The target's capabilities for ``ot`` as negotiated once it is open (static before)."""
        return self._capabilities(ot.target.connector, ot.target.object)

    def source_caps(self, ot: ObjectType) -> Capabilities:
        return self._capabilities(ot.source.connector, ot.source.object)

    def _capabilities(self, connector: str, object: str) -> Capabilities:
        """Negotiated once per run and connector object, after open; the static declaration before."""
        if connector not in self.opened:
            return self.connectors[connector].capabilities(object)
        if (connector, object) not in self.negotiated:
            self.negotiated[(connector, object)] = self.connectors[connector].negotiate(object)
        return self.negotiated[(connector, object)]

    def name_referrers(self, ot: ObjectType) -> tuple[tuple[int, str], ...]:
        """(type id, attribute) of every mapping that references objects of ``ot`` by their target
        name (an LDAP DN): what a rename of one of them leaves stale (``stale_names``)."""
        return tuple((self.type_ids[other.name], m.target) for other in self.manifest.object_types
                     if other.name in self.type_ids
                     for m in other.mapping if m.reference == ot.name
                     and self.caps(other).reference_form(m.target) == "name")

    def heartbeat(self) -> None:
        """Renew the lock inside the transaction about to commit (fencing: raises LockLost); a
        context that holds no lock (a preview without --apply) has none to renew."""
        if self.holds_lock:
            self.store.runs.heartbeat(self.pipeline, self.run_id)

    def check_stop(self) -> None:
        """Stop at a safe point once a signal asked for it (everything before is recorded)."""
        stop = self.options.stop
        if stop:
            raise Interrupted(stop.signal or 0, stop.time_limit)
