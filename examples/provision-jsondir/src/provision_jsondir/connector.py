"""``jsondir``: a provision connector that keeps each object as a JSON file in a directory tree.

Configuration (a connector block of a provision manifest)::

    directory:
      type: jsondir
      root: out/directory            # folder, relative to the manifest; created when missing
      objects: [users, groups]       # object types it serves; one tree can hold several
      partitions: [sales, research]  # top-level folders (default: [default])
      concurrency: 4                 # operations at once (default 4)
      password_in_first_pass: true   # an add may carry the password (default true)
      delete_add_as_replace: true    # accept one replace instead of delete + add (default true)
      normalizations: {mail: [case_insensitive]}   # applied when values are stored
      page_size: 500                 # records per page when read (default 500)
      fsync: true                    # sync each write to disk (default true)

Names are DN-style paths relative to their partition (see :mod:`provision_jsondir.names`);
anchors are generated UUIDs that survive renames. Reads with a watermark return what the
partition's change journal says changed since (see :mod:`provision_jsondir.journal`). ``get``
and ``lookup`` answer from the tree's in-memory index. Every operation is safe to apply twice
(the replay contract of connector interface 2; see :mod:`provision_jsondir.tree`).

It depends only on ``runner.connectors.base``, the public connector interface of provision
(version 2).
"""

from __future__ import annotations

import errno
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from runner.connectors.base import (
    NORMALIZATIONS,
    AttributeInfo,
    Capabilities,
    ConfigurationError,
    ConnectionFailed,
    Connector,
    ObjectError,
    ObjectInfo,
    Operation,
    Page,
    PermanentError,
    Record,
    Result,
    RetryableError,
    WatermarkExpired,
)

from provision_jsondir import names
from provision_jsondir.journal import DamagedJournal
from provision_jsondir.tree import DISABLED, Entry, Tree, Written, password_hash
from provision_jsondir.values import matches

DEFAULT_NORMALIZATIONS = {"mail": ["case_insensitive"]}
_FOLDER_NAME = r'^[^./\\:*?"<>|][^/\\:*?"<>|]*$'
# errno values worth a retry: the file system is busy or full for now.
_TRANSIENT = {errno.EAGAIN, errno.EBUSY, errno.ENOSPC, errno.EDQUOT, errno.EINTR, errno.ETIMEDOUT}


class JsonDirConnector(Connector):
    """Objects as JSON files in a folder tree: hierarchical names, partitions, delta reads."""

    type_name = "jsondir"
    interface_version = 2
    config_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["root", "objects"],
        "properties": {
            "type": {"const": "jsondir"},
            "root": {"type": "string", "minLength": 1,
                     "description": "folder of the tree, relative to the manifest; created when missing"},
            "objects": {"type": "array", "minItems": 1, "uniqueItems": True,
                        "items": {"type": "string", "minLength": 1},
                        "description": "object types served (each file records its own)"},
            "partitions": {"type": "array", "minItems": 1, "uniqueItems": True,
                           "items": {"type": "string", "pattern": _FOLDER_NAME},
                           "default": ["default"],
                           "description": "top-level folders, one per partition; the first is the default"},
            "concurrency": {"type": "integer", "minimum": 1, "default": 4},
            "password_in_first_pass": {"type": "boolean", "default": True},
            "delete_add_as_replace": {"type": "boolean", "default": True},
            "normalizations": {
                "type": "object",
                "description": "attribute (or *) -> normalizations applied when values are stored",
                "additionalProperties": {"type": "array", "items": {"enum": list(NORMALIZATIONS)}},
                "default": DEFAULT_NORMALIZATIONS,
            },
            "page_size": {"type": "integer", "minimum": 1, "default": 500},
            "fsync": {"type": "boolean", "default": True},
            "max_values_per_operation": {
                "type": "integer", "minimum": 0, "default": 0,
                "description": "the most values of one multi-valued attribute an operation may carry (0: no "
                               "limit); like a SaaS API that caps a group change, bigger changes come in chunks"},
        },
    }

    tree: Tree | None = None

    # ---- facts ------------------------------------------------------------------------------------

    @property
    def root(self) -> Path:
        return self.context.base_dir / self.config["root"]

    @property
    def partitions(self) -> list[str]:
        return list(self.config.get("partitions") or ["default"])

    @property
    def normalizations(self) -> dict[str, tuple[str, ...]]:
        declared = self.config.get("normalizations", DEFAULT_NORMALIZATIONS)
        return {attribute: tuple(steps) for attribute, steps in declared.items()}

    def capabilities(self, object: str | None = None) -> Capabilities:
        """The same for every object type: one tree, one set of rules.

        Names identify objects (``correlation`` empty: the engine finds an object whose add was
        lost by its name, with ``get``), because anchors are UUIDs the connector makes up on add
        (``generated_anchor``). References are stored as given: the target anchors the engine sends.
        """
        replace = self.config.get("delete_add_as_replace", True)
        operations = {"add", "update", "rename", "disable", "delete", "set_password"} | ({"replace"} if replace else set())
        return Capabilities(
            partitions=True,
            hierarchical=True,
            delta_read=True,
            full_export=True,
            delete_add_as_replace=replace,
            password_in_first_pass=self.config.get("password_in_first_pass", True),
            normalizations=self.normalizations,
            max_concurrency=self.config.get("concurrency", 4),
            operations=frozenset(operations),
            multi_valued_deltas=True,
            export_style="delta",
            reference_forms={"*": "anchor"},
            correlation=(),
            generated_anchor=True,
            max_values_per_operation=self.config.get("max_values_per_operation", 0),
        )

    def object_names(self) -> list[str]:
        return list(self.config["objects"])

    def check(self) -> list[tuple[tuple[str | int, ...], str]]:
        problems: list[tuple[tuple[str | int, ...], str]] = []
        if self.root.exists() and not self.root.is_dir():
            problems.append((("root",), f"{self.root} is a file, not a folder"))
        seen: dict[str, int] = {}
        for i, partition in enumerate(self.partitions):
            folded = partition.casefold()
            if folded in seen:
                problems.append((("partitions", i), f"{partition!r} is the same folder as "
                                 f"{self.partitions[seen[folded]]!r} on a case-insensitive file system"))
            seen.setdefault(folded, i)
        return problems

    # ---- lifecycle --------------------------------------------------------------------------------

    def open(self) -> None:
        if self.root.exists() and not self.root.is_dir():
            raise ConnectionFailed(f"{self.root} is a file; the connector's root must be a folder")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConnectionFailed(f"cannot create the root folder {self.root}: {exc.strerror}; "
                                   "check the connector's root") from None
        tree = Tree(self.root, self.partitions, self.normalizations, self.config.get("fsync", True),
                    self.context.logger)
        tree.load()
        self.tree = tree

    def identity(self) -> Mapping[str, Any]:
        """The tree's folder: a state store written for one tree must not be taken for another's."""
        return {"root": str(self.root.resolve())}

    def close(self) -> None:
        if self.tree is not None:
            self.tree.close()
            self.tree = None

    def ping(self) -> None:
        """ConnectionFailed when the tree went from under the open connector (a removed root, an
        unmounted share): writes would recreate its folders empty, and a read would find nothing."""
        self._tree()
        missing = [p for p in self.partitions if not (self.root / p).is_dir()]
        if missing:
            raise ConnectionFailed(f"the folder of partition {missing[0]!r} ({self.root / missing[0]}) is gone; "
                                   "check the connector's root")

    def _tree(self) -> Tree:
        if self.tree is None:
            raise ConnectionFailed(f"connector {self.context.name!r} is not open")
        return self.tree

    def _partition(self, partition: str | None) -> str:
        if partition is None:
            return self.partitions[0]
        if partition not in self.partitions:
            raise ObjectError(f"unknown partition {partition!r}; this connector serves {', '.join(self.partitions)}")
        return partition

    def _asked(self, object: str, partition: str | None) -> str:
        """The partition a read, get or lookup names (None: the first); a wrong object or partition
        is the manifest's mistake, so ConfigurationError."""
        if object not in self.config["objects"]:
            raise ConfigurationError(f"object {object!r} is not served; objects: {', '.join(self.config['objects'])}")
        try:
            return self._partition(partition)
        except ObjectError as exc:
            raise ConfigurationError(str(exc)) from None

    # ---- reading ----------------------------------------------------------------------------------

    def read(self, object: str, partition: str | None = None, watermark: str | None = None, *,
             attributes: Sequence[str] | None = None, page_size: int | None = None) -> Iterator[Page]:
        """Full read (``watermark`` None) or what changed since ``watermark`` in one partition.

        ``partition`` None means the first configured partition. The last page carries the
        watermark to resume from (the journal's last sequence number, as text); a delta read
        reports deleted objects as records with ``deleted=True``. A watermark the journal never
        returned raises WatermarkExpired, and the engine reads everything instead. ``attributes``
        limits what records carry; ``page_size`` overrides the configured one.
        """
        tree = self._tree()
        partition = self._asked(object, partition)
        if page_size is not None and page_size < 1:
            raise ConfigurationError(f"page_size must be at least 1, not {page_size}")
        journal = tree.journals[partition]
        mark = journal.mark()
        if watermark is None:
            records: Iterable[Record] = self._everything(tree, object, partition, attributes)
        else:
            since = _seq(watermark, mark[0], journal.path)
            records = self._changes(tree, object, partition, since, mark, attributes)
        yield from _paged(records, page_size or self.config.get("page_size", 500), str(mark[0]))

    def _everything(self, tree: Tree, object: str, partition: str,
                    attributes: Sequence[str] | None) -> Iterator[Record]:
        for entry in tree.entries(object, partition):
            found = tree.document(entry.anchor, partition)
            if found is not None:
                yield _record(*found, attributes)

    def _changes(self, tree: Tree, object: str, partition: str, since: int,
                 mark: tuple[int, int], attributes: Sequence[str] | None) -> Iterator[Record]:
        latest: dict[str, dict[str, Any]] = {}
        try:
            for change in tree.journals[partition].since(since, mark):
                latest.pop(change["anchor"], None)
                latest[change["anchor"]] = change
        except DamagedJournal as exc:
            raise ConnectionFailed(f"{exc}; a full import recovers") from None
        for anchor, change in latest.items():
            if change.get("object") != object:
                continue
            found = tree.document(anchor, partition)
            if found is None:
                yield Record({}, anchor=anchor, name=change.get("name"), partition=partition, deleted=True)
            else:
                yield _record(*found, attributes)

    def get(self, object: str, anchor: str | None = None, *, name: str | None = None,
            partition: str | None = None) -> Record | None:
        """The object with this anchor (in ``partition`` when given, else wherever it is: anchors
        are unique in the tree), or without an anchor the one with this name in ``partition``
        (None: the first), names compared as the tree compares them. None when it is not there."""
        tree = self._tree()
        where = self._asked(object, partition)
        if anchor is not None:
            entry = tree.by_anchor(anchor)
            if entry is None or (partition is not None and entry.partition != where):
                return None
        elif name is not None:
            try:
                rdns = names.parse(name)
            except names.InvalidName:
                return None  # no object can have a name the connector refuses
            entry = tree.by_name(where, rdns)
        else:
            raise TypeError("get needs an anchor or a name")
        if entry is None or entry.object != object:
            return None
        found = tree.document(entry.anchor, entry.partition)
        return _record(*found) if found is not None else None

    def lookup(self, object: str, values: Mapping[str, Any], *,
               partition: str | None = None) -> list[Record]:
        """Objects of one type in ``partition`` (None: the first) whose attributes equal ``values``,
        compared through the connector's normalizations, parents first.

        Found in the index; only the objects found are read from disk, and each is compared
        again as read, so an object changed meanwhile is not returned with values that no longer match."""
        if not values:
            raise TypeError("lookup needs at least one attribute value: with none, every object would match")
        tree = self._tree()
        where = self._asked(object, partition)
        found = []
        for entry in sorted(tree.matching(object, where, values), key=lambda e: (len(e.key), e.key[::-1])):
            read = tree.document(entry.anchor, where)
            if read is not None and matches(read[1]["attributes"], values, self.normalizations):
                found.append(_record(*read))
        return found

    def discover(self) -> Sequence[ObjectInfo]:
        """Each served object type with the attributes its stored objects have."""
        tree = self._tree()
        infos = []
        for object in self.config["objects"]:
            seen: dict[str, list[Any]] = {}
            for entry in tree.entries(object):
                found = tree.document(entry.anchor, entry.partition)
                if found is not None:
                    for attribute, value in found[1]["attributes"].items():
                        seen.setdefault(attribute, []).append(value)
            attributes = [_attribute_info(a, values) for a, values in sorted(seen.items())]
            infos.append(ObjectInfo(object, attributes, tuple(self.partitions)))
        return infos

    # ---- writing ----------------------------------------------------------------------------------

    def apply(self, operations: Sequence[Operation]) -> Iterable[Result]:
        """One Result per operation, in order. Safe to call from several threads at once.

        A Result says what the tree holds afterwards: the anchor, the name as stored (its parent
        part spelled the way the parent spells its own) and the attributes as stored (normalized)."""
        tree = self._tree()
        for op in operations:
            yield self._apply_one(tree, op)

    def _within_limit(self, op: Operation) -> None:
        """Refuse an operation carrying more values than declared (as an API answers 413)."""
        limit = self.config.get("max_values_per_operation", 0)
        if not limit:
            return
        carried = sum(len(v) for v in op.attributes.values() if isinstance(v, list))
        carried += sum(map(len, op.add_values.values())) + sum(map(len, op.remove_values.values()))
        if carried > limit:
            raise ObjectError(f"{carried} values in one operation; this tree takes at most {limit}")

    def _apply_one(self, tree: Tree, op: Operation) -> Result:
        handler = getattr(self, f"op_{op.kind}", None)
        if handler is None:
            return Result.failed(op, ObjectError(f"the jsondir connector cannot {op.kind}"))
        try:
            if op.object not in self.config["objects"]:
                raise ObjectError(f"object {op.object!r} is not served; objects: {', '.join(self.config['objects'])}")
            self._within_limit(op)
            written: Written = handler(tree, op)
        except (ObjectError, RetryableError) as exc:
            return Result.failed(op, exc)
        except OSError as exc:
            return Result.failed(op, _os_error(op, exc))
        except (names.InvalidName, TypeError) as exc:  # a name that is no name, a value JSON cannot hold
            return Result.failed(op, PermanentError(f"{op.kind} {op.name or op.anchor}: {exc}"))
        except ValueError as exc:  # a damaged object file
            return Result.failed(op, ObjectError(f"{op.kind} {op.name or op.anchor}: {exc}"))
        return Result(op.id, True, written.anchor, name=written.name, stored=written.attributes)

    def op_add(self, tree: Tree, op: Operation) -> Written:
        self._password_allowed(op)
        return tree.add(op, self._partition(op.partition), self._name(op))

    def op_update(self, tree: Tree, op: Operation) -> Written:
        return tree.modify(op, self._located(tree, op), tree.update_attributes(op), "update")

    def op_disable(self, tree: Tree, op: Operation) -> Written:
        return tree.modify(op, self._located(tree, op), tree.update_attributes(op, {DISABLED: True}), "disable")

    def op_set_password(self, tree: Tree, op: Operation) -> Written:
        if op.password is None:
            raise ObjectError("set_password without a password")
        digest = password_hash(op.password)

        def change(doc: dict[str, Any]) -> None:
            doc["password_hash"] = digest

        return tree.modify(op, self._located(tree, op), change, "set_password")

    def op_rename(self, tree: Tree, op: Operation) -> Written:
        return tree.rename(op, self._located(tree, op), self._name(op))

    def op_delete(self, tree: Tree, op: Operation) -> Written:
        return tree.delete(op, self._located(tree, op))

    def op_replace(self, tree: Tree, op: Operation) -> Written:
        if not self.config.get("delete_add_as_replace", True):
            raise ObjectError("this connector is configured with delete_add_as_replace: false; "
                              "send delete, then add")
        self._password_allowed(op)
        rdns = names.parse(op.name) if op.name is not None else None
        return tree.replace(op, self._located(tree, op), rdns)

    def _name(self, op: Operation) -> tuple[str, ...]:
        if op.name is None:
            raise ObjectError(f"{op.kind} needs a name (DN style, e.g. uid=jsmith,ou=people)")
        return names.parse(op.name)

    def _located(self, tree: Tree, op: Operation) -> str:
        """The partition of the object an operation names.

        The engine sends the partition it recorded for the object, and that one is used: an
        anchor in another partition is NotFound there. Without one (an engine or a caller that
        does not say), the object is taken where its anchor lives. A move between partitions is
        refused until the source puts the object back: the folder tree cannot carry it across."""
        if op.old_partition is not None and op.partition is not None and op.old_partition != op.partition:
            raise PermanentError(f"{op.object} {op.name or op.anchor}: cannot move from partition "
                                 f"{op.old_partition!r} to {op.partition!r}; this connector does not move "
                                 "objects between partitions (delete it and add it there)")
        if op.partition is not None:
            return self._partition(op.partition)
        if op.old_partition is not None:
            return self._partition(op.old_partition)
        return tree.partition_of(op.anchor, self.partitions[0])

    def _password_allowed(self, op: Operation) -> None:
        if op.password is not None and not self.config.get("password_in_first_pass", True):
            raise ObjectError("this connector is configured with password_in_first_pass: false; "
                              "send the password in a set_password after the add")


def _record(entry: Entry, doc: dict[str, Any], attributes: Sequence[str] | None = None) -> Record:
    """A record of a stored object; with ``attributes``, only those of them it has."""
    stored = doc["attributes"]
    carried = dict(stored) if attributes is None else {a: stored[a] for a in attributes if a in stored}
    return Record(carried, anchor=entry.anchor, name=entry.name, partition=entry.partition)


def _paged(records: Iterable[Record], size: int, watermark: str) -> Iterator[Page]:
    """Pages of ``size`` records; only the last carries the watermark (there is always one)."""
    page: list[Record] = []
    for record in records:
        if len(page) == size:
            yield Page(page)
            page = []
        page.append(record)
    yield Page(page, watermark)


def _seq(watermark: str, last: int, journal: Path) -> int:
    """The journal sequence number of a watermark; WatermarkExpired (the engine reads everything
    instead) for one this journal cannot have returned."""
    try:
        seq = int(watermark)
    except ValueError:
        raise WatermarkExpired(f"watermark {watermark!r} is not one this connector returned "
                               "(a journal sequence number); a full import recovers") from None
    if seq < 0:
        raise WatermarkExpired(f"watermark {seq} is not a journal sequence number; a full import recovers")
    if seq > last:
        raise WatermarkExpired(f"watermark {seq} is past the end of {journal} (last {last}): the journal "
                               "was reset or replaced; a full import recovers")
    return seq


def _attribute_info(name: str, values: list[Any]) -> AttributeInfo:
    multi = any(isinstance(v, list) for v in values)
    scalars = [x for v in values for x in (v if isinstance(v, list) else [v]) if x is not None]
    kinds = {_type_name(x) for x in scalars}
    return AttributeInfo(name, kinds.pop() if len(kinds) == 1 else "string", multi_valued=multi)


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, dict):
        return "object"
    return "string"


def _os_error(op: Operation, exc: OSError) -> ObjectError | RetryableError:
    what = f"{op.kind} {op.name or op.anchor}: {exc.strerror or exc}" + (f" ({exc.filename})" if exc.filename else "")
    if exc.errno in _TRANSIENT:
        return RetryableError(what)
    return ObjectError(what)
