"""The connector interface: what every connector (built in or plugin) declares and implements.

Modelled on ECMA 2.0 and the ConnId SPI. A connector declares *facts* about itself in a frozen
:class:`Capabilities` and *is* the operations it implements:

* ``read(object, partition, watermark)`` (required for a source) yields :class:`Page` objects.
  A connector that can read changes since a watermark sets ``Capabilities.delta_read``; the
  engine stores the watermark the last page returns and hands it back next run.
* ``apply(operations)`` (required for a target) yields exactly one :class:`Result` per
  :class:`Operation`, in any order. The default implementation dispatches each operation to a
  method ``op_<kind>`` (``op_add``, ``op_update``, ``op_rename``, ``op_disable``, ``op_delete``,
  ``op_replace``, ``op_set_password``) returning the object's anchor; a connector that can
  batch overrides ``apply`` instead.
* ``discover()`` (optional) describes object types and attributes.

Connectors never import the engine. They receive their block of the manifest (already
interpolated and validated against ``config_schema``) and a :class:`ConnectorContext`.

Interface version: :data:`INTERFACE_VERSION`. A plugin states the version it was written for in
``interface_version``; the engine refuses a plugin written for a newer interface.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

INTERFACE_VERSION = 1

OperationKind = Literal["add", "update", "rename", "disable", "delete", "replace", "set_password"]
OPERATION_KINDS: tuple[str, ...] = (
    "add", "update", "rename", "disable", "delete", "replace", "set_password",
)

# Normalizations a connector may declare per attribute; the engine compares values through them.
NORMALIZATIONS = ("case_insensitive", "remove_diacritics", "trim", "collapse_spaces", "dn", "phone_digits")


# ---- errors: named for what the engine should do ------------------------------------------


class ConnectorError(Exception):
    """Base of every error a connector raises or reports in a Result."""


class ConnectionFailed(ConnectorError):
    """The system cannot be reached or refused the credentials: the pass stops, nothing more is tried."""


class RetryableError(ConnectorError):
    """A transient failure (timeout, throttling, deadlock): the operation stays pending and is retried."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class ObjectError(ConnectorError):
    """The system rejected this one object (constraint, bad value): that object fails, the run goes on."""


class NotFound(ObjectError):
    """The object to update or delete is not there (the engine re-creates it, or forgets it on delete)."""


class AlreadyExists(ObjectError):
    """An add collided with an existing object. The object fails this run and is computed again
    next run, when the object type's match rules can adopt the existing one."""


class ConfigurationError(ConnectorError):
    """The connector's block in the manifest is unusable in a way its schema could not tell."""


# ---- data crossing the interface -------------------------------------------------------------


@dataclass(frozen=True)
class Capabilities:
    """Facts a connector declares about itself. Behaviours are methods it has or lacks.

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


@dataclass(frozen=True)
class Record:
    """One object read from a system.

    ``anchor`` is the object's immutable key in that system when the connector knows it (a
    target's generated id); for a source, the engine takes the anchor from the attribute the
    manifest names, so connectors may leave it None.
    """

    attributes: Mapping[str, Any]
    anchor: str | None = None
    name: str | None = None
    partition: str | None = None
    deleted: bool = False


@dataclass(frozen=True)
class Page:
    """A batch of records. ``watermark`` (delta reads) is where the next read should resume."""

    records: Sequence[Record]
    watermark: str | None = None


@dataclass(frozen=True)
class Operation:
    """One change to one object, as the engine asks for it.

    Attributes:
        id: the engine's handle for this operation; the Result carries it back.
        kind: add | update | rename | disable | delete | replace | set_password.
        object: the connector's object name (table, objectClass, SCIM resource type).
        anchor: the target anchor (None for add).
        name: the object's name for hierarchical or named connectors (new name for rename).
        attributes: for add/replace, every attribute; for update/disable, the attributes to set
            (a multi-valued attribute set here is replaced whole). None means clear.
        add_values / remove_values: for update, values to add to / remove from multi-valued
            attributes (only when the connector declares ``multi_valued_deltas``).
        password: for add (when ``password_in_first_pass``) and set_password.
        partition: the partition the object lives in.
        old_name: for rename, the name before.
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


@dataclass(frozen=True)
class Result:
    """The outcome of one Operation. ``anchor`` is the object's anchor afterwards (new on add)."""

    op_id: int
    ok: bool
    anchor: str | None = None
    error: ConnectorError | None = None

    @classmethod
    def failed(cls, op: Operation, error: ConnectorError) -> Result:
        return cls(op.id, False, op.anchor, error)


@dataclass(frozen=True)
class AttributeInfo:
    name: str
    type: str = "string"
    multi_valued: bool = False
    required: bool = False


@dataclass(frozen=True)
class ObjectInfo:
    name: str
    attributes: Sequence[AttributeInfo] = ()
    partitions: Sequence[str] = ()


@dataclass(frozen=True)
class ConnectorContext:
    """What the engine tells a connector about where it runs.

    ``base_dir`` is the manifest's folder: relative paths in the connector's block resolve there.
    """

    name: str
    base_dir: Path


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
    def capabilities(self) -> Capabilities:
        return Capabilities()

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

    # reading
    def read(self, object: str, partition: str | None = None,
             watermark: str | None = None) -> Iterator[Page]:
        """Yield pages of records. With a watermark (delta_read), only what changed since it."""
        raise NotImplementedError(f"connector type {self.type_name!r} cannot be read")

    def discover(self) -> Sequence[ObjectInfo]:
        """Describe the object types and attributes this connector serves."""
        return [ObjectInfo(name) for name in (self.object_names() or ())]

    # writing
    def apply(self, operations: Sequence[Operation]) -> Iterable[Result]:
        """Carry out operations; yield one Result per operation.

        Errors about one object are reported in its Result (never raised); ConnectionFailed is
        raised and stops the pass. The default dispatches to a method per kind.
        """
        for op in operations:
            handler = getattr(self, f"op_{op.kind}", None)
            if handler is None:
                yield Result.failed(op, ObjectError(f"connector type {self.type_name!r} cannot {op.kind}"))
                continue
            try:
                anchor = handler(op)
            except (ObjectError, RetryableError) as exc:
                yield Result.failed(op, exc)
            else:
                yield Result(op.id, True, anchor if anchor is not None else op.anchor)

    def __enter__(self) -> Connector:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
