"""The directory tree: object files of every partition, an in-memory index, locks and journals.

Layout::

    <root>/<partition>/.journal.jsonl
    <root>/<partition>/ou=sales.json                 the object "ou=sales"
    <root>/<partition>/ou=sales/uid=jsmith.json      the object "uid=jsmith,ou=sales"

The index (anchor -> :class:`Entry`, name -> entry, and how many children each name has) is
built from the files on :meth:`Tree.load`. The file's *place* decides its name: when a crash
left a moved file with its old ``name`` inside, the index uses the name its path spells. Each
entry also keeps the object's stored attributes, so ``get`` and ``lookup`` find objects without
walking the tree (only the objects found are read from disk).

Every write is safe to apply twice, because the engine sends again what a crash left in doubt:
an add of a taken name is AlreadyExists, adding a value already there or removing one already
gone changes nothing, a rename to the current name is a no-op, a delete or replace of an anchor
already gone is NotFound. The two writes that touch several files are ordered so that a crash
between them is finished by a replay or by the next :meth:`Tree.load`:

* a rename moves the children's folder *before* the object's file, so after a crash the object
  still has its old name and the replayed rename moves the file onto its children;
* a replace under another name writes the new file (which records ``replaces``) before removing
  the old one; an open that finds both removes the old one, journaled as a delete.

Thread safety, for up to ``max_concurrency`` threads calling ``apply`` at once:

* one index lock guards the index, held only for look-ups and bookkeeping, never for file I/O;
* a striped lock per anchor serializes writes to one object (read-modify-write of its file);
* one :class:`TreeLock` per partition: every write holds it shared, a rename holds it exclusive,
  because moving a folder changes the path of every object under it;
* names are reserved in the index before the file is written (an add marks its entry ``busy``),
  and every add counts against its parent, so an add and a delete of its parent can never both
  succeed, whatever the interleaving;
* a change becomes visible in the index *before* its journal line is appended, so a read that
  took its watermark before seeing an object always catches that object again in the next delta.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from runner.connectors.base import AlreadyExists, ConnectionFailed, NotFound, ObjectError, Operation

from provision_jsondir import files, names
from provision_jsondir.journal import Journal
from provision_jsondir.locks import StripedLocks, TreeLock
from provision_jsondir.names import Key
from provision_jsondir.values import Normalizations, add_values, matches, remove_values, set_attributes

DISABLED = "disabled"
REPLACES = "replaces"  # in the document of a replace's new object: the anchor it replaced


@dataclass(eq=False)
class Entry:
    """Where one object lives. Mutable: changed in place (under the index lock) by a rename."""

    anchor: str
    object: str
    partition: str
    rdns: tuple[str, ...]
    key: Key
    path: Path
    busy: bool = False  # being added, deleted or replaced: not a parent, not read
    # as stored; replaced whole (never changed in place) on each write, so a reader may keep a reference
    attributes: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return names.join(self.rdns)


class Written(NamedTuple):
    """What a write left in the tree, taken under the index lock: the connector's Result says it."""

    anchor: str
    name: str | None
    attributes: dict[str, Any] | None


def _written(entry: Entry) -> Written:
    return Written(entry.anchor, entry.name, dict(entry.attributes))


def password_hash(password: str) -> str:
    return hashlib.sha256(password.encode("utf-8")).hexdigest()


class Tree:
    """All partitions of one root. :meth:`load` before use, :meth:`close` after."""

    def __init__(self, root: Path, partitions: Sequence[str], normalizations: Normalizations, fsync: bool = True,
                 logger: logging.Logger | None = None):
        self.root = root
        self.partitions = tuple(partitions)
        self.normalizations = normalizations
        self.fsync = fsync
        self.logger = logger or logging.getLogger(__name__)
        self._lock = threading.Lock()
        self._by_anchor: dict[str, Entry] = {}
        self._by_key: dict[tuple[str, Key], Entry] = {}
        self._children: Counter[tuple[str, Key]] = Counter()
        self._trees = {p: TreeLock() for p in self.partitions}
        self._objects = StripedLocks()
        self.journals: dict[str, Journal] = {}
        self._unfinished: list[tuple[Entry, str]] = []  # (new object, anchor it replaces) found by load

    # ---- lifecycle ------------------------------------------------------------------------------

    def load(self) -> None:
        """Create missing folders, index every object file, open the journals."""
        try:
            for partition in self.partitions:
                (self.root / partition).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConnectionFailed(f"cannot create {exc.filename}: {exc.strerror}; check the connector's root") from None
        try:
            for partition in self.partitions:
                self._index_partition(partition)
                self.journals[partition] = Journal(self.root / partition, partition, self.fsync)
            self._finish_replaces()
        except OSError as exc:
            self.close()
            raise ConnectionFailed(f"cannot read {exc.filename}: {exc.strerror}") from None
        except ValueError as exc:  # a damaged object file or journal, a file name that is no name
            self.close()
            raise ConnectionFailed(f"{exc}; repair or remove it") from None

    def _index_partition(self, partition: str) -> None:
        base = self.root / partition
        for folder, subfolders, filenames in os.walk(base):
            subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
            parents = tuple(reversed(Path(folder).relative_to(base).parts))
            for filename in sorted(filenames):
                path = Path(folder) / filename
                if files.is_temp(filename):
                    path.unlink(missing_ok=True)  # left by a write that crashed before its rename
                    continue
                if filename.startswith(".") or not filename.endswith(files.SUFFIX):
                    continue
                self._index_file(partition, path, (filename[: -len(files.SUFFIX)], *parents))

    def _index_file(self, partition: str, path: Path, segments: tuple[str, ...]) -> None:
        try:
            rdns = tuple(names.parse_rdn(names.rdn_of(s)) for s in segments)
        except ValueError as exc:
            raise files.DamagedFile(f"{path}: its place in the tree is not a name: {exc}") from None
        doc = files.read_doc(path)
        anchor = str(doc["anchor"])
        if anchor in self._by_anchor:
            raise files.DamagedFile(f"{path}: anchor {anchor} is also in {self._by_anchor[anchor].path}")
        entry = Entry(anchor, str(doc["object"]), partition, rdns, names.key(rdns), path)
        if (partition, entry.key) in self._by_key:
            raise files.DamagedFile(f"{path}: the name {entry.name!r} is also {self._by_key[partition, entry.key].path}")
        if doc["name"] != entry.name:
            self.logger.warning("%s: holds the name %r but its place says %r; using %r",
                                path, doc["name"], entry.name, entry.name)
        entry.attributes = doc["attributes"]
        self._register(entry)
        if doc.get(REPLACES):
            self._unfinished.append((entry, str(doc[REPLACES])))

    def _finish_replaces(self) -> None:
        """Remove the old object of each replace a crash interrupted between its two files."""
        for new, old_anchor in self._unfinished:
            old = self._by_anchor.get(old_anchor)
            if old is None or old.partition != new.partition:
                continue  # the replace had finished
            self.logger.warning("%s replaced %s (%s) before a crash; removing the old object",
                                new.name, old.name, old.path)
            old.path.unlink(missing_ok=True)
            _remove_empty(files.children_folder(old.path))
            self._unregister(old)
            journal = self.journals[new.partition]
            journal.append("delete", old.anchor, old.object, old.name)
            journal.append("replace", new.anchor, new.object, new.name)
        self._unfinished = []

    def close(self) -> None:
        for journal in self.journals.values():
            journal.close()
        self.journals = {}

    # ---- index bookkeeping (callers hold self._lock) ---------------------------------------------

    def _register(self, entry: Entry) -> None:
        self._by_anchor[entry.anchor] = entry
        self._by_key[entry.partition, entry.key] = entry
        if len(entry.key) > 1:
            self._children[entry.partition, entry.key[1:]] += 1

    def _unregister(self, entry: Entry) -> None:
        self._by_anchor.pop(entry.anchor, None)
        if self._by_key.get((entry.partition, entry.key)) is entry:
            del self._by_key[entry.partition, entry.key]
        if len(entry.key) > 1:
            parent = (entry.partition, entry.key[1:])
            self._children[parent] -= 1
            if self._children[parent] <= 0:
                del self._children[parent]

    def _live(self, op: Operation) -> Entry:
        entry = self._by_anchor.get(op.anchor or "")
        if (entry is None or entry.busy or entry.object != op.object
                or (op.partition is not None and entry.partition != op.partition)):
            where = f" in partition {op.partition!r}" if op.partition else ""
            raise NotFound(f"{op.object} {op.anchor} is not there{where}")
        return entry

    def _place(self, partition: str, rdns: tuple[str, ...]) -> tuple[Path, tuple[str, ...]]:
        """(file, RDNs) of a new object named ``rdns``. Its parent must exist; the name's parent
        part is spelled the way the parent's own name is."""
        if len(rdns) == 1:
            return self.root / partition / (names.segment(rdns[0]) + files.SUFFIX), rdns
        parent = self._by_key.get((partition, names.key(rdns[1:])))
        if parent is None or parent.busy:
            raise ObjectError(f"parent {names.join(rdns[1:])!r} does not exist in partition {partition!r}; "
                              "create it first")
        folder = files.children_folder(parent.path)
        return folder / (names.segment(rdns[0]) + files.SUFFIX), (rdns[0], *parent.rdns)

    def _taken(self, partition: str, key: Key, by: Entry | None = None) -> None:
        other = self._by_key.get((partition, key))
        if other is not None and other is not by:
            raise AlreadyExists(f"{other.name!r} already exists in partition {partition!r} (anchor {other.anchor})")

    def partition_of(self, anchor: str | None, default: str) -> str:
        """The partition an anchor lives in (anchors never change partition)."""
        with self._lock:
            entry = self._by_anchor.get(anchor or "")
        return entry.partition if entry is not None else default

    # ---- finding objects (get, lookup) ----------------------------------------------------------

    def by_anchor(self, anchor: str) -> Entry | None:
        """The live entry of ``anchor``, in whatever partition (anchors are unique in the tree)."""
        with self._lock:
            entry = self._by_anchor.get(anchor)
        return entry if entry is not None and not entry.busy else None

    def by_name(self, partition: str, rdns: tuple[str, ...]) -> Entry | None:
        """The live entry named ``rdns`` in ``partition``, compared as names compare (case, spacing)."""
        with self._lock:
            entry = self._by_key.get((partition, names.key(rdns)))
        return entry if entry is not None and not entry.busy else None

    def matching(self, object: str, partition: str, wanted: Mapping[str, Any]) -> list[Entry]:
        """Live entries of one type and partition whose stored attributes equal ``wanted``.

        The candidates are taken under the index lock, compared outside it (attribute maps are
        replaced whole on each write, never changed in place), so writers are not held up."""
        with self._lock:
            candidates = [(e, e.attributes) for e in self._by_anchor.values()
                          if e.object == object and e.partition == partition and not e.busy]
        return [e for e, attributes in candidates if matches(attributes, wanted, self.normalizations)]

    # ---- writes -----------------------------------------------------------------------------------

    def add(self, op: Operation, partition: str, rdns: tuple[str, ...]) -> Written:
        with self._trees[partition].shared():
            with self._lock:
                key = names.key(rdns)
                self._taken(partition, key)
                path, rdns = self._place(partition, rdns)
                entry = Entry(str(uuid.uuid4()), op.object, partition, rdns, key, path, busy=True)
                self._register(entry)
            doc = self._new_doc(entry, op)
            try:
                files.write_doc(path, doc, self.fsync)
            except BaseException:
                with self._lock:
                    self._unregister(entry)
                raise
            with self._lock:
                entry.attributes = doc["attributes"]
                entry.busy = False
                written = _written(entry)
            self.journals[partition].append("add", entry.anchor, entry.object, entry.name)
            return written

    def _new_doc(self, entry: Entry, op: Operation, replaces: str | None = None) -> dict[str, Any]:
        attributes: dict[str, Any] = {}
        set_attributes(attributes, op.attributes, self.normalizations)
        doc: dict[str, Any] = {"anchor": entry.anchor, "name": entry.name, "object": entry.object,
                               "attributes": attributes}
        if op.password is not None:
            doc["password_hash"] = password_hash(op.password)
        if replaces is not None:
            doc[REPLACES] = replaces
        return doc

    def modify(self, op: Operation, partition: str, change: Callable[[dict[str, Any]], None], kind: str) -> Written:
        """Read, change and rewrite one object's document (update, disable, set_password)."""
        with self._trees[partition].shared(), self._objects(op.anchor or ""):
            with self._lock:
                entry = self._live(op)
            doc = files.read_doc(entry.path)
            change(doc)
            files.write_doc(entry.path, doc, self.fsync)
            with self._lock:
                entry.attributes = doc["attributes"]
                written = _written(entry)
            self.journals[partition].append(kind, entry.anchor, entry.object, entry.name)
            return written

    def update_attributes(self, op: Operation, extra: Mapping[str, Any] | None = None) -> Callable[[dict[str, Any]], None]:
        """The change an update (or, with ``extra``, a disable) makes to a document."""
        def change(doc: dict[str, Any]) -> None:
            attributes = doc["attributes"]
            set_attributes(attributes, op.attributes, self.normalizations)
            remove_values(attributes, op.remove_values, self.normalizations)
            add_values(attributes, op.add_values, self.normalizations)
            set_attributes(attributes, extra or {}, self.normalizations)
        return change

    def delete(self, op: Operation, partition: str) -> Written:
        with self._trees[partition].shared(), self._objects(op.anchor or ""):
            with self._lock:
                entry = self._live(op)
                count = self._children[partition, entry.key]
                if count:
                    raise ObjectError(f"{entry.name!r} still has {count} child object(s); delete them first")
                entry.busy = True  # no child can be added under it from now on
            try:
                entry.path.unlink(missing_ok=True)
            except BaseException:
                with self._lock:
                    entry.busy = False
                raise
            _remove_empty(files.children_folder(entry.path))
            with self._lock:
                self._unregister(entry)
            self.journals[partition].append("delete", entry.anchor, entry.object, entry.name)
            return Written(entry.anchor, None, None)

    def replace(self, op: Operation, partition: str, rdns: tuple[str, ...] | None) -> Written:
        """Delete and add in one step: a new anchor, the children (if the name stays) kept.

        Under the same name the new file takes the old one's place in one ``os.replace``. Under
        another name the new file says which anchor it replaces, so that an open after a crash
        between writing it and removing the old file finishes the replace."""
        with self._trees[partition].shared(), self._objects(op.anchor or ""):
            with self._lock:
                old = self._live(op)
                key = names.key(rdns) if rdns else old.key
                moved = key != old.key
                if moved:
                    self._taken(partition, key)
                    if self._children[partition, old.key]:
                        raise ObjectError(f"{old.name!r} has child objects: a replace may not give it another name")
                    path, rdns = self._place(partition, rdns or old.rdns)
                else:  # the same name (whatever its spelling): the new file takes the old one's place
                    path, rdns = old.path, old.rdns
                new = Entry(str(uuid.uuid4()), op.object, partition, rdns, key, path, busy=True)
                if moved:
                    self._register(new)
                    old.busy = True
            doc = self._new_doc(new, op, replaces=old.anchor if moved else None)
            wrote = False
            try:
                files.write_doc(new.path, doc, self.fsync)
                wrote = True
                if moved:
                    old.path.unlink(missing_ok=True)
            except BaseException:
                if moved and wrote:  # the old one stays: the next open must not finish this replace
                    new.path.unlink(missing_ok=True)
                with self._lock:
                    if moved:
                        self._unregister(new)
                        old.busy = False
                raise
            with self._lock:
                self._unregister(old)
                new.attributes = doc["attributes"]
                new.busy = False
                if not moved:
                    self._register(new)
                written = _written(new)
            journal = self.journals[partition]
            journal.append("delete", old.anchor, old.object, old.name)
            journal.append("replace", new.anchor, new.object, new.name)
            return written

    def rename(self, op: Operation, partition: str, rdns: tuple[str, ...]) -> Written:
        """Give an object a new name: its file moves, and the folder of its children with it.

        A rename to the name the object has (a replay) changes nothing and journals nothing."""
        with self._lock:
            entry = self._live(op)
            if not op.attributes and names.key(rdns) == entry.key and rdns[0] == entry.rdns[0]:
                return _written(entry)
        with self._trees[partition].exclusive():  # no other write in this partition meanwhile
            with self._lock:
                entry = self._live(op)
                key = names.key(rdns)
                self._taken(partition, key, by=entry)
                if key != entry.key and names.is_within(key, entry.key):
                    raise ObjectError(f"cannot move {entry.name!r} under itself ({names.join(rdns)!r})")
                if key[1:] != entry.key[1:]:
                    new_path, rdns = self._place(partition, rdns)
                else:  # same parent: only the leaf changes (perhaps only its case)
                    rdns = (rdns[0], *entry.rdns[1:])
                    new_path = entry.path.parent / (names.segment(rdns[0]) + files.SUFFIX)
                subtree = [e for e in self._by_anchor.values()
                           if e.partition == partition and e is not entry and names.is_within(e.key, entry.key)]
            old_path = entry.path
            old_folder, new_folder = files.children_folder(old_path), files.children_folder(new_path)
            doc = files.read_doc(old_path)
            doc["name"] = names.join(rdns)
            set_attributes(doc["attributes"], op.attributes, self.normalizations)
            moved = new_path != old_path
            folder_moved = _move(old_path, old_folder, new_path, new_folder) if moved else False
            try:
                files.write_doc(new_path, doc, self.fsync)
            except BaseException:
                if moved:
                    _move_back(old_path, old_folder, new_path, new_folder, folder_moved)
                raise
            self._renamed(entry, subtree, rdns, new_path, old_folder, new_folder, doc["attributes"])
            return self._journal_rename(partition, entry)

    def _renamed(self, entry: Entry, subtree: list[Entry], rdns: tuple[str, ...], new_path: Path,
                 old_folder: Path, new_folder: Path, attributes: dict[str, Any]) -> None:
        """The index after a rename: the object and everything below it under the new name."""
        depth = len(entry.rdns)
        with self._lock:
            for e in (entry, *subtree):
                self._unregister(e)
                if e is not entry:
                    e.path = new_folder / e.path.relative_to(old_folder)
                e.rdns = e.rdns[: len(e.rdns) - depth] + rdns
                e.key = names.key(e.rdns)
            entry.path = new_path
            entry.attributes = attributes
            for e in (entry, *subtree):
                self._register(e)

    def _journal_rename(self, partition: str, entry: Entry) -> Written:
        """Journal the rename, and rewrite the name inside each file below the object.

        Below it means what the index now has there: the children that moved, and children a
        crash had left in the new folder (moved before the object's file), adopted by this replay."""
        journal = self.journals[partition]
        with self._lock:
            written = _written(entry)
            below = sorted((e for e in self._by_anchor.values() if e.partition == partition
                            and e is not entry and names.is_within(e.key, entry.key)), key=lambda e: len(e.key))
        journal.append("rename", entry.anchor, entry.object, entry.name)
        for e in below:
            child = files.read_doc(e.path)
            if child["name"] != e.name:
                child["name"] = e.name
                files.write_doc(e.path, child, self.fsync)
            journal.append("rename", e.anchor, e.object, e.name)
        return written

    # ---- reads ------------------------------------------------------------------------------------

    def entries(self, object: str, partition: str | None = None) -> list[Entry]:
        """Live entries of one object type, parents before children."""
        with self._lock:
            found = [e for e in self._by_anchor.values()
                     if e.object == object and not e.busy and (partition is None or e.partition == partition)]
        return sorted(found, key=lambda e: (len(e.key), e.key[::-1]))

    def document(self, anchor: str, partition: str) -> tuple[Entry, dict[str, Any]] | None:
        """The entry and document of a live object, or None when it is gone."""
        with self._trees[partition].shared():
            with self._lock:
                entry = self._by_anchor.get(anchor)
                if entry is None or entry.busy:
                    return None
                path = entry.path
            try:
                doc = files.read_doc(path)
            except FileNotFoundError:
                return None
            # a replace under way may already have put its new object in this place
            return (entry, doc) if doc["anchor"] == anchor else None


def _move(old_path: Path, old_folder: Path, new_path: Path, new_folder: Path) -> bool:
    """Move an object's children folder, then its file; whether there was a folder to move.

    Folder first: a crash in between leaves the object under its old name, so the engine's
    replayed rename moves the file onto its children (the other order would leave a child folder
    without its parent file, whose replayed rename finds nothing left to move)."""
    new_path.parent.mkdir(parents=True, exist_ok=True)
    folder = old_folder.is_dir()
    if folder:
        os.replace(old_folder, new_folder)
    try:
        os.replace(old_path, new_path)
    except BaseException:
        if folder:
            os.replace(new_folder, old_folder)
        raise
    return folder


def _move_back(old_path: Path, old_folder: Path, new_path: Path, new_folder: Path, folder: bool) -> None:
    """Undo :func:`_move` (its file write failed)."""
    os.replace(new_path, old_path)
    if folder:
        os.replace(new_folder, old_folder)


def _remove_empty(folder: Path) -> None:
    with contextlib.suppress(OSError):  # absent, or holds something that is not ours: leave it
        folder.rmdir()
