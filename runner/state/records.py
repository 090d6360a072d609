"""The records that cross between the engine's passes and the state store.

A pending export is a typed record (:class:`PendingExport` with its :class:`Change`), stored as
one row of ``pending_exports``; what an export round confirmed is a :class:`Confirmations` of
named records, written by ``store.exports.record`` in a few statements.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, NamedTuple

from runner.actions import Action
from runner.jsontext import dumps, loads


@dataclass
class Change:
    """What one pending export asks of the target.

    Attributes:
        set: attribute -> value to set (add: every attribute). Sensitive values are a marker,
            re-derived from the source at export time, never stored.
        add / remove: multi-valued attribute -> values to add / remove (by difference).
        old: single-valued attribute -> the value it replaces (for the plan and the log). Never
            a multi-valued list: a one-member change to a big group stays small.
        name / old_name: the name the object should have, and had (rename).
        partition / old_partition: the partition it should be in, and was in (a move).
        gone: the source object no longer exists (a delete or disable because of it).
        full: a re-send of every mapped attribute (``--full-export``).
        followup: the second step of an earlier operation (password after add, update after
            rename): not counted again.
        replaces / replaces_gone: a replace: the source anchor of the object it replaces, and
            whether that one is gone from the source.
    """

    set: dict[str, Any] = field(default_factory=dict)
    add: dict[str, list[Any]] = field(default_factory=dict)
    remove: dict[str, list[Any]] = field(default_factory=dict)
    old: dict[str, Any] = field(default_factory=dict)
    name: str | None = None
    old_name: str | None = None
    partition: str | None = None
    old_partition: str | None = None
    gone: bool = False
    full: bool = False
    followup: bool = False
    replaces: str | None = None
    replaces_gone: bool = False

    def to_json(self) -> str:
        return dumps({name: value for name in _CHANGE_FIELDS if (value := getattr(self, name))})

    @classmethod
    def from_json(cls, text: str) -> Change:
        return cls(**loads(text))

    def attribute_changes(self) -> bool:
        return bool(self.set or self.add or self.remove)


_CHANGE_FIELDS = tuple(f.name for f in fields(Change))


@dataclass
class PendingExport:
    """One object's pending export, as compute decides it and export reads it back.

    ``name`` and ``partition`` are where the object lives now (recorded), so every operation can
    say it; ``change.name`` / ``change.partition`` are where it should be. ``revision`` changes
    each time compute rewrites the export; with the source anchor it makes the operation's key.
    ``sent_run`` is set while the export is in flight: a run that dies before recording the result
    leaves it set, and the next run resolves it before anything else. ``next_attempt``, ``held``
    and ``failed_runs`` are its retry state after failures (``runner/retries.py``).
    """

    source_anchor: str
    action: Action
    target_anchor: str | None
    change: Change
    name: str | None = None
    depth: int = 0
    partition: str | None = None
    attempts: int = 0
    last_error: str | None = None
    revision: str = ""
    sent_run: str | None = None
    next_attempt: str = ""  # not sent before this time ('': due now)
    held: bool = False  # failed with a permanent error: not sent until the source object changes
    failed_runs: int = 0  # runs in a row in which it failed

    def waiting(self, due: str | None) -> str | None:
        """Why a run whose exports are due up to ``due`` does not send this one: "blocked" (held
        after a permanent error), "waiting" (its next attempt is later), or None (it is sent).
        ``due`` None: everything is due (``--retry-now``)."""
        if due is None or self.sent_run is not None:
            return None
        if self.held:
            return "blocked"
        return "waiting" if self.next_attempt > due else None


@dataclass
class SourceRow:
    """A dirty source object with its link and what the target is known to hold."""

    anchor: str
    data: dict[str, Any]
    deleted: bool
    in_scope: bool | None
    exists_after: bool
    target_anchor: str | None
    link_live: bool
    target_data: dict[str, Any] | None
    disabled: bool
    target_name: str | None = None
    target_partition: str | None = None
    partition: str | None = None
    gone_at: str | None = None  # when the source stopped holding it


class Added(NamedTuple):
    """An object the target now holds for the first time (an add, or one adopted after a crash)."""

    source_anchor: str
    target_anchor: str
    data: dict[str, Any]
    name: str | None
    partition: str | None = None
    version: str | None = None


class Updated(NamedTuple):
    """What an update (or a re-read) leaves in the target. ``data``: single values, and any
    multi-valued attribute set whole; ``added`` / ``removed``: values a multi-valued attribute
    gained and lost (recorded as value rows, never as a rewritten list)."""

    source_anchor: str
    old_target_anchor: str
    target_anchor: str
    data: dict[str, Any]
    disabled: bool
    name: str | None
    partition: str | None = None
    version: str | None = None
    added: dict[str, list[Any]] | None = None
    removed: dict[str, list[Any]] | None = None
    sent: tuple[str, ...] = ()  # the attributes this update wrote (the next read confirms them)


class Deleted(NamedTuple):
    source_anchor: str
    target_anchor: str | None
    source_gone: bool


class Failed(NamedTuple):
    """An export that failed. ``permanent``: the target will reject it until the source changes
    (it is held, not retried on a schedule)."""

    source_anchor: str
    error: str
    permanent: bool = False


class Recompute(NamedTuple):
    """What we knew of the target object is wrong (it vanished): forget it, compute again."""

    source_anchor: str
    target_anchor: str


class Dropped(NamedTuple):
    """A reference left out at export because its object does not exist in the target yet."""

    source_anchor: str
    ref_type_id: int
    ref_anchor: str


@dataclass
class Confirmations:
    """What one stretch of an export (or a recovery) changed, for ``store.exports.record``."""

    adds: list[Added] = field(default_factory=list)
    updates: list[Updated] = field(default_factory=list)
    followups: list[PendingExport] = field(default_factory=list)  # a second step for the same object
    deletes: list[Deleted] = field(default_factory=list)
    failures: list[Failed] = field(default_factory=list)
    retries: list[Failed] = field(default_factory=list)  # to be tried again later in this run
    recompute: list[Recompute] = field(default_factory=list)
    dropped: list[Dropped] = field(default_factory=list)
    dirty: list[str] = field(default_factory=list)  # compute these source objects again (adopted, re-read)
    settled: list[str] = field(default_factory=list)  # pending exports resolved without a write: drop them
    resend: list[str] = field(default_factory=list)  # in-doubt exports found not applied: send again
    # (type id, attribute) of every reference that names objects of this type by their target name
    # (an LDAP manager or member DN): a rename recorded here leaves those values stale in the target
    name_referrers: tuple[tuple[int, str], ...] = ()

    def __len__(self) -> int:
        return (len(self.adds) + len(self.updates) + len(self.followups) + len(self.deletes) + len(self.failures)
                + len(self.retries) + len(self.recompute) + len(self.dropped) + len(self.dirty) + len(self.settled)
                + len(self.resend))
