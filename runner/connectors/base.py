"""The connector interface (version 2): what every connector, built in or plugin, declares and implements.

Modelled on ECMA 2.0 and the ConnId SPI. A connector declares *facts* about each object type it
serves in a frozen :class:`Capabilities` and *is* the operations it implements:

* ``capabilities(object)`` is the static declaration, used by validation before anything is
  opened; ``negotiate(object)`` is called after ``open`` and may narrow (or widen) it to what the
  server really supports (SCIM's ServiceProviderConfig, LDAP's supportedControl). The engine
  uses only the negotiated form for a run.
* ``read(object, partition, watermark, attributes=, page_size=)`` (a source, or a target the engine
  reconciles with) yields :class:`Page` objects. With ``Capabilities.delta_read`` the engine stores
  the watermark the last page returns and hands it back next run; a watermark the system no
  longer knows raises :class:`WatermarkExpired` and the engine reads everything instead.
* ``ranges(object, partition, count)`` and ``read_range(object, token, partition)`` (optional) cut
  one partition's full read into ranges that separate processes read at once (a run fanned out
  over workers): together the ranges hold every record the full read would, each exactly once.
* ``get(object, anchor=, name=, partition=)`` and ``lookup(object, values, partition=)`` find
  single objects: crash recovery uses them to learn whether an operation it sent before a kill
  was applied, and match rules use them when only a few objects are unlinked. A connector
  without them is read whole (paged) instead.
* ``apply(operations)`` (a target) yields exactly one :class:`Result` per :class:`Operation`, in
  any order, as each completes. The default dispatches each operation to ``op_<kind>``
  (``op_add``, ``op_update``, ``op_rename``, ``op_disable``, ``op_delete``, ``op_replace``,
  ``op_set_password``) returning the object's anchor or a Result; a connector that can batch
  overrides ``apply``.

Every operation must be safe to apply twice (the replay contract, ``tests/contract/test_replay.py``):
an add of an object already there is found by ``lookup`` or reported as :class:`AlreadyExists`;
adding a value already present or removing one already gone succeeds; a rename to the current
name succeeds; a delete of an absent object reports :class:`NotFound`. The engine relies on this
after a crash: it marks each operation in flight before ``apply`` and, on the next run,
resolves the ones whose result it never recorded (``runner/engine/recovery.py``).

Connectors never import the engine. They receive their block of the manifest (already
interpolated and validated against ``config_schema``) and a :class:`ConnectorContext`.

A plugin states the interface it was written for in ``interface_version``; the engine refuses
one written for another version (:data:`INTERFACE_VERSION`) with a message saying what to do.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from runner import budgets

INTERFACE_VERSION = 2

OperationKind = Literal["add", "update", "rename", "disable", "delete", "replace", "set_password"]
OPERATION_KINDS: tuple[str, ...] = (
    "add", "update", "rename", "disable", "delete", "replace", "set_password",
)

# Normalizations a connector may declare per attribute; the engine compares values through them.
NORMALIZATIONS = ("case_insensitive", "remove_diacritics", "trim", "collapse_spaces", "dn", "phone_digits")

# How an object's changes reach the target: only the attributes that changed (with values added
# and removed for multi-valued ones), every mapped attribute on each update, or the whole object.
EXPORT_STYLES = ("delta", "attributes", "whole_object")
# How a reference attribute names the object it points at: its target anchor (SQL key, SCIM id)
# or its target name (an LDAP DN).
REFERENCE_FORMS = ("anchor", "name")


# ---- errors: named for what the engine should do ------------------------------------------


class ConnectorError(Exception):
    """Base of every error a connector raises or reports in a Result."""


class ConnectionFailed(ConnectorError):
    """The pass cannot go on: the system, or what it holds, cannot be read or written as a whole
    (a CSV export cut short, a table that is missing); the pass stops, nothing more is tried."""


class SystemUnavailable(ConnectionFailed):
    """The system could not be reached, the connection to it was lost, or it refused the
    credentials (an LDAP bind, HTTP 401, a database login): the pass stops as for any
    ConnectionFailed, and the command exits 5 instead of 1, so monitoring can tell "the directory
    is down" from "some rows were bad". Raise it only where the cause is the connection or the
    login, never for what the system answered."""


class RetryableError(ConnectorError):
    """A transient failure of one operation (timeout, deadlock): it stays pending and is retried,
    later in the run and in later runs with a back-off."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class Throttled(RetryableError):
    """The system asks the client to slow down (HTTP 429, LDAP busy): the whole pass pauses for
    ``retry_after`` seconds (honoured even beyond a minute) before anything else is sent."""


class ObjectError(ConnectorError):
    """The system rejected this one object (constraint, bad value): that object fails, the run goes on.
    It is tried again in later runs, with a back-off."""


class PermanentError(ObjectError):
    """The system will keep rejecting this object until its source data changes (a schema
    violation, a value out of range): it is not retried until the source object changes."""


class NotFound(ObjectError):
    """The object to update or delete is not there (the engine re-creates it, or forgets it on delete)."""


class AlreadyExists(ObjectError):
    """An add collided with an existing object. The engine looks it up by its correlation and
    adopts it, instead of retrying the add."""


class WatermarkExpired(ConnectorError):
    """``read`` was given a watermark the system no longer knows (a pruned change log): the
    engine falls back to a full read, which finds what was deleted meanwhile."""


class ConfigurationError(ConnectorError):
    """The connector's block in the manifest is unusable in a way its schema could not tell."""


# ---- data crossing the interface -------------------------------------------------------------


@dataclass(frozen=True)
class Capabilities:
    """Facts a connector declares about one object type. Behaviours are methods it has or lacks.

    Attributes:
        partitions: the connector serves several independent partitions (naming contexts, schemas).
        hierarchical: object names are paths with parents (DN style); the engine creates parents
            first, deletes children first, and treats a changed name as a rename.
        delta_read: ``read`` honours a watermark and returns only what changed since it.
        full_export: the connector accepts a re-send of every object's whole state.
        delete_add_as_replace: one ``replace`` operation instead of delete + add of the same object.
        password_in_first_pass: an ``add`` may carry the password; otherwise the engine sends a
            separate ``set_password`` after the add.
        normalizations: per attribute, the normalizations the system applies when it stores values
            (e.g. ``{"mail": ("case_insensitive",)}``); ``"*"`` applies to every attribute.
        max_concurrency: how many operations the system takes at once (the engine uses threads).
        operations: which operation kinds ``apply`` accepts (empty for a source-only connector).
        multi_valued_deltas: updates of multi-valued attributes may be sent as values to add and
            remove instead of the whole list.
        export_style: one of :data:`EXPORT_STYLES`; ``whole_object`` (a REST PUT) gets every
            mapped attribute on each update, ``attributes`` every attribute that changed in full.
        reference_forms: per reference attribute (``"*"`` for all), :data:`REFERENCE_FORMS`: how
            its values name other objects. Default: the target anchor.
        correlation: attributes that find an object the engine created when its result was lost
            (a natural unique key such as ``user_name``); the manifest's ``target.correlate``
            replaces it. Empty: the object's name (hierarchical), else the manifest must say.
        generated_anchor: the system assigns the anchor on add (a sequence, a UUID), so the
            anchor alone cannot find an object whose add was lost.
        max_values_per_operation: the most values of one multi-valued attribute one update may
            add or remove (big group changes go in chunks); 0 means no limit.
        versioned: results carry a version (ETag, entryCSN) the engine sends back as a precondition.
        batch_size: how many operations one ``apply`` call sends together (a /Bulk request, an
            executemany); the engine deals each thread shares of at least this many where a
            round has them. 1: each operation travels alone, so shares can be small.
    """

    partitions: bool = False
    hierarchical: bool = False
    delta_read: bool = False
    full_export: bool = True
    delete_add_as_replace: bool = False
    password_in_first_pass: bool = True
    normalizations: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    max_concurrency: int = 1
    operations: frozenset[str] = frozenset()
    multi_valued_deltas: bool = True
    export_style: str = "delta"
    reference_forms: Mapping[str, str] = field(default_factory=dict)
    correlation: tuple[str, ...] = ()
    generated_anchor: bool = False
    max_values_per_operation: int = 0
    versioned: bool = False
    batch_size: int = 1

    def reference_form(self, attribute: str) -> str:
        return self.reference_forms.get(attribute, self.reference_forms.get("*", "anchor"))


@dataclass(frozen=True)
class Record:
    """One object read from a system.

    ``anchor`` is the object's immutable key in that system when the connector knows it (a
    target's generated id); for a source, the engine takes the anchor from the attribute the
    manifest names, so connectors may leave it None. ``version`` is the system's version of the
    object (ETag, entryCSN), when it has one. ``error`` marks a record the connector could not
    read properly (a CSV row with too few cells): that object fails with the message and keeps
    what the state knew of it, instead of being read with wrong values.
    """

    attributes: Mapping[str, Any]
    anchor: str | None = None
    name: str | None = None
    partition: str | None = None
    deleted: bool = False
    version: str | None = None
    error: str | None = None
    #: where the record was read, for messages: ``data/people.csv:17``, a DN, a row id
    location: str | None = None


@dataclass(frozen=True)
class Page:
    """A batch of records. ``watermark`` (delta reads) is where the next read should resume.

    ``source_empty`` is set on the only page of a read whose source is well formed but holds no
    objects (a CSV header and no rows): it says why, so the engine can refuse to take it for
    "everyone left"."""

    records: Sequence[Record]
    watermark: str | None = None
    source_empty: str | None = None


@dataclass(frozen=True)
class Ranges:
    """A partition's full read cut into ranges that separate processes read on their own
    (:meth:`Connector.ranges`, :meth:`Connector.read_range`).

    Attributes:
        tokens: one per range, opaque to the engine: short text (JSON suits) that it stores and
            hands back to ``read_range`` unchanged, in another process, maybe on another machine.
            Together the ranges hold every record a full ``read`` of the partition would return,
            each in exactly one range, whatever the order the ranges are read in.
        watermark: with ``delta_read``, where the next delta read resumes once every range has
            been read; taken before the cut, as a full read takes it before it lists the data, so
            a change made while the ranges are read is read again next time. None otherwise.
    """

    tokens: Sequence[str]
    watermark: str | None = None


@dataclass(frozen=True)
class Operation:
    """One change to one object, as the engine asks for it.

    Attributes:
        id: the engine's handle for this operation within one ``apply`` call; the Result carries it back.
        kind: add | update | rename | disable | delete | replace | set_password.
        object: the connector's object name (table, objectClass, SCIM resource type).
        anchor: the target anchor (None for add).
        name: the object's name for hierarchical or named connectors: the new name on add and
            rename, the recorded name otherwise (also on disable and delete).
        attributes: for add/replace, every attribute; for update/disable, the attributes to set
            (a multi-valued attribute set here is replaced whole). None means clear.
        add_values / remove_values: for update, values to add to / remove from multi-valued
            attributes (only when the connector declares ``multi_valued_deltas``).
        password: for add (when ``password_in_first_pass``) and set_password.
        partition: the partition the object lives in (the new one on a move).
        old_name: for rename, the name before.
        key: a stable identity of this change (pipeline, object type, source anchor, revision):
            the same on every re-send of it, different for the next change. Usable as an
            idempotency key or request id.
        source_anchor: the source object's anchor (a SCIM ``externalId``).
        attempt: 1 on the first send of this change, 2 on the next...
        version: the version the engine last saw (ETag, entryCSN), a precondition for the change.
        old_partition: for a move between partitions, where the object was.
    """

    id: int
    kind: str
    object: str
    anchor: str | None = None
    name: str | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)
    add_values: Mapping[str, Sequence[Any]] = field(default_factory=dict)
    remove_values: Mapping[str, Sequence[Any]] = field(default_factory=dict)
    password: str | None = field(default=None, repr=False)
    partition: str | None = None
    old_name: str | None = None
    key: str = ""
    source_anchor: str | None = None
    attempt: int = 1
    version: str | None = None
    old_partition: str | None = None


@dataclass(frozen=True)
class Result:
    """The outcome of one Operation.

    ``anchor`` is the object's anchor afterwards (new on add). A connector may say what the
    target stored: ``name`` (an assigned DN), ``version`` (a new ETag) and ``stored`` (attribute
    values as the system normalised them); the state records them.
    """

    op_id: int
    ok: bool
    anchor: str | None = None
    error: ConnectorError | None = None
    name: str | None = None
    version: str | None = None
    stored: Mapping[str, Any] | None = None

    @classmethod
    def failed(cls, op: Operation, error: ConnectorError) -> Result:
        return cls(op.id, False, op.anchor, error)


@dataclass(frozen=True)
class AttributeInfo:
    """One attribute as the system describes it (``provision discover``, ``validate --online``).

    ``syntax`` is the system's own type name (an LDAP syntax OID's name, a SQL column type);
    ``normalizations`` what the system applies when it compares values (its matching rules)."""

    name: str
    type: str = "string"
    multi_valued: bool = False
    required: bool = False
    syntax: str | None = None
    normalizations: tuple[str, ...] = ()
    read_only: bool = False
    description: str | None = None


@dataclass(frozen=True)
class ObjectInfo:
    """One object type as the system describes it. ``complete`` says ``attributes`` lists every
    attribute the object may hold, so ``validate --online`` may reject a mapping to any other."""

    name: str
    attributes: Sequence[AttributeInfo] = ()
    partitions: Sequence[str] = ()
    complete: bool = False
    description: str | None = None


def _no_redaction(text: str) -> str:
    return text


@dataclass
class ConnectorContext:
    """What the engine tells a connector about where and how it runs.

    ``base_dir`` is the manifest's folder: relative paths in the connector's block resolve there.
    ``logger`` carries the connector's name; ``run_id`` (set before ``open``) suits request ids;
    ``redact`` masks secrets in text the connector logs or raises; ``deadline`` (a
    ``time.monotonic()`` value, or None) is when the run must stop: long calls should not pass it.
    """

    name: str
    base_dir: Path
    run_id: str | None = None
    deadline: float | None = None
    redact: Callable[[str], str] = _no_redaction
    logger: logging.Logger = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.logger is None:
            self.logger = logging.getLogger(f"provision.connector.{self.name}")


def shared_budget(block: Mapping[str, Any] | None, label: str) -> budgets.Budget | None:
    """The shared budget a connector's ``budget:`` block names (runner/budgets.py), from the
    provider the command line or a worker installed; None without a block. ``label`` names the
    connector in messages."""
    if not block:
        return None
    provider = budgets.provider()
    if provider is None:
        raise ConfigurationError(f"{label}: budget {block['name']!r} is shared through a budget store that this "
                                 "process has not set up (provision's command line and workers do, with "
                                 "runner.distributed.budgets)")
    return provider(block, label)

# ---- the base class -------------------------------------------------------------------------


class Connector:
    """Base class for connectors. Subclasses set ``type_name`` and ``config_schema``.

    The constructor must not touch the network: validation builds connectors to ask them about
    their objects. ``open`` connects; ``close`` releases everything, and is always called.
    """

    type_name: ClassVar[str] = ""
    interface_version: ClassVar[int] = INTERFACE_VERSION
    #: JSON Schema (2020-12) of this connector's block in the manifest, ``type`` excluded.
    config_schema: ClassVar[Mapping[str, Any]] = {"type": "object"}

    def __init__(self, config: Mapping[str, Any], context: ConnectorContext):
        self.config = config
        self.context = context

    # facts
    def capabilities(self, object: str | None = None) -> Capabilities:
        """What the connector declares for ``object`` (None: what holds for every object), before open."""
        return Capabilities()

    def negotiate(self, object: str) -> Capabilities:
        """What really holds for ``object`` once open (the server may support less or more)."""
        return self.capabilities(object)

    def object_names(self) -> Sequence[str] | None:
        """The object names this configuration serves, or None when any name may be valid."""
        return None

    def check(self) -> list[tuple[tuple[str | int, ...], str]]:
        """Problems in the configuration that the schema cannot express: (path in block, message)."""
        return []

    # lifecycle
    def open(self) -> None:
        """Connect. Raise ConnectionFailed with a message that says what to check."""

    def close(self) -> None:
        """Disconnect and release resources. Must be safe to call after a failed open."""

    def ping(self) -> None:
        """Raise ConnectionFailed if the connection is no longer usable (the engine then reopens
        it). The default trusts the connection."""

    # reading
    def read(self, object: str, partition: str | None = None, watermark: str | None = None, *,
             attributes: Sequence[str] | None = None, page_size: int | None = None) -> Iterator[Page]:
        """Yield pages of records. With a watermark (delta_read), only what changed since it.

        ``attributes`` limits what records carry (None: everything mapped); ``page_size`` is the
        most records a page should hold (None: the connector's own default)."""
        raise NotImplementedError(f"connector type {self.type_name!r} cannot be read")

    def ranges(self, object: str, partition: str | None, count: int) -> Ranges | None:
        """Cut a full read of ``object`` in ``partition`` into at most ``count`` ranges of about
        equal size, each read by ``read_range``; None when the connector cannot (the default).

        The engine asks only for full reads (a delta read is never cut), and reads each range once
        more when the process reading it died. Fewer ranges than ``count`` are fine (a small
        table); one range, or None, means the partition is read whole, as ever."""
        return None

    def read_range(self, object: str, token: str, partition: str | None = None, *,
                   attributes: Sequence[str] | None = None, page_size: int | None = None) -> Iterator[Page]:
        """Yield pages of the records of one range (``token``, from :meth:`ranges`), as ``read``
        yields a full read's, without a watermark. Raise ConnectionFailed for a token this
        connector did not make."""
        raise NotImplementedError(f"connector type {self.type_name!r} cannot read ranges")

    def fingerprint(self, object: str, partition: str | None = None) -> str | None:
        """A digest of everything a full ``read`` of the object would return, when the connector
        can tell it far more cheaply than by reading (a file's bytes and how they are parsed);
        None when it cannot. Equal fingerprints promise equal reads: the engine then skips the
        read of a source that has not changed since its last full import."""
        return None

    def get(self, object: str, anchor: str | None = None, *, name: str | None = None,
            partition: str | None = None) -> Record | None:
        """The object with this anchor (or, without one, this name), or None when it is not there."""
        raise NotImplementedError(f"connector type {self.type_name!r} cannot look objects up")

    def lookup(self, object: str, values: Mapping[str, Any], *,
               partition: str | None = None) -> list[Record]:
        """Objects whose attributes equal ``values`` (all of them; compared as the system compares)."""
        raise NotImplementedError(f"connector type {self.type_name!r} cannot look objects up")

    def discover(self) -> Sequence[ObjectInfo]:
        """Describe the object types and attributes this connector serves (after ``open`` when it
        asks the system: a subschema, /Schemas, the database catalogue)."""
        return [ObjectInfo(name) for name in (self.object_names() or ())]

    def server_info(self) -> Mapping[str, Any]:
        """Facts about the system an operator writing a mapping wants to know, after ``open``
        (protocol version, supported controls or features, limits), as plain printable values.
        ``provision discover`` prints them; the default knows none."""
        return {}

    def identity(self) -> Mapping[str, Any]:
        """Which system this is, after ``open``: what the server says it is (host and database, a
        directory's naming contexts, a service's URL and tenant), as plain printable values. The
        state store remembers it per connector, and a run that finds another system behind the
        same manifest stops instead of taking an empty target for "everything was deleted". The
        default, ``{}``, binds to nothing; values must not hold secrets."""
        return {}

    def name_problem(self, object: str, name: str, partition: str | None = None) -> str | None:
        """Why the target cannot hold an object under this rendered ``name`` (a DN outside every
        naming context, an empty RDN), or None. Called for every name compute renders, before
        anything is written; the object fails with the message. The default accepts any name."""
        return None

    def template_problems(self, object: str, produced: Collection[str]) -> list[tuple[tuple[str | int, ...], str]]:
        """Names the connector's own block uses for ``object`` (body or query templates) that no
        attribute the mapping ``produced`` gives, as (path in block, message); validation reports
        them before anything runs. The default uses none."""
        return []

    def can(self, method: str) -> bool:
        """Whether this connector implements ``read``, ``get``, ``lookup`` or ``ranges`` (behaviours
        it has or lacks)."""
        return getattr(type(self), method) is not getattr(Connector, method)

    # writing
    def apply(self, operations: Sequence[Operation]) -> Iterable[Result]:
        """Carry out operations; yield one Result per operation as each completes.

        Errors about one object are reported in its Result (never raised); ConnectionFailed is
        raised and stops the pass. The default dispatches to a method per kind.
        """
        for op in operations:
            handler = getattr(self, f"op_{op.kind}", None)
            if handler is None:
                yield Result.failed(op, ObjectError(f"connector type {self.type_name!r} cannot {op.kind}"))
                continue
            try:
                outcome = handler(op)
            except (ObjectError, RetryableError) as exc:
                yield Result.failed(op, exc)
            else:
                if isinstance(outcome, Result):
                    yield outcome
                else:
                    yield Result(op.id, True, outcome if outcome is not None else op.anchor)

    def __enter__(self) -> Connector:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
