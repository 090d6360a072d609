"""The directory tree: object files of every partition, an in-memory index, locks and journals.

Layout::

    <root>/<partition>/.journal.jsonl
    <root>/<partition>/ou=sales.json                 the object "ou=sales"
    <root>/<partition>/ou=sales/uid=jsmith.json      the object "uid=jsmith,ou=sales"

The index (anchor -> :class:`Entry`, name -> entry, and how many children each name has) is
built from the files on :meth:`Tree.load`. The file's *place* decides its name: when a crash
left a moved file with its old ``name`` inside, the index uses the name its path spells.

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.connectors.base import AlreadyExists, ConnectionFailed, NotFound, ObjectError, Operation

from provision_jsondir import files, names
from provision_jsondir.journal import Journal
from provision_jsondir.locks import StripedLocks, TreeLock
from provision_jsondir.names import Key
from provision_jsondir.values import Normalizations, add_values, remove_values, set_attributes

logger = logging.getLogger(__name__)

DISABLED = "disabled"


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

    @property
    def name(self) -> str:
        return names.join(self.rdns)


def password_hash(password: str) -> str:
    return hashlib.sha256(password.encode("utf-8")).hexdigest()


class Tree:
    """All partitions of one root. :meth:`load` before use, :meth:`close` after."""

    def __init__(self, root: Path, partitions: Sequence[str], normalizations: Normalizations, fsync: bool = True):
        self.root = root
        self.partitions = tuple(partitions)
        self.normalizations = normalizations
        self.fsync = fsync
        self._lock = threading.Lock()
        self._by_anchor: dict[str, Entry] = {}
        self._by_key: dict[tuple[str, Key], Entry] = {}
        self._children: Counter[tuple[str, Key]] = Counter()
        self._trees = {p: TreeLock() for p in self.partitions}
        self._objects = StripedLocks()
        self.journals: dict[str, Journal] = {}

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
            logger.warning("%s: holds the name %r but its place says %r; using %r",
                           path, doc["name"], entry.name, entry.name)
        self._register(entry)

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

    # ---- writes -----------------------------------------------------------------------------------

    def add(self, op: Operation, partition: str, rdns: tuple[str, ...]) -> str:
        with self._trees[partition].shared():
            with self._lock:
                key = names.key(rdns)
                self._taken(partition, key)
                path, rdns = self._place(partition, rdns)
                entry = Entry(str(uuid.uuid4()), op.object, partition, rdns, key, path, busy=True)
                self._register(entry)
            try:
                files.write_doc(path, self._new_doc(entry, op), self.fsync)
            except BaseException:
                with self._lock:
                    self._unregister(entry)
                raise
            with self._lock:
                entry.busy = False
            self.journals[partition].append("add", entry.anchor, entry.object, entry.name)
            return entry.anchor

    def _new_doc(self, entry: Entry, op: Operation) -> dict[str, Any]:
        attributes: dict[str, Any] = {}
        set_attributes(attributes, op.attributes, self.normalizations)
        doc: dict[str, Any] = {"anchor": entry.anchor, "name": entry.name, "object": entry.object,
                               "attributes": attributes}
        if op.password is not None:
            doc["password_hash"] = password_hash(op.password)
        return doc

    def modify(self, op: Operation, partition: str, change: Callable[[dict[str, Any]], None], kind: str) -> str:
        """Read, change and rewrite one object's document (update, disable, set_password)."""
        with self._trees[partition].shared(), self._objects(op.anchor or ""):
            with self._lock:
                entry = self._live(op)
            doc = files.read_doc(entry.path)
            change(doc)
            files.write_doc(entry.path, doc, self.fsync)
            self.journals[partition].append(kind, entry.anchor, entry.object, entry.name)
            return entry.anchor

    def update_attributes(self, op: Operation, extra: Mapping[str, Any] | None = None) -> Callable[[dict[str, Any]], None]:
        """The change an update (or, with ``extra``, a disable) makes to a document."""
        def change(doc: dict[str, Any]) -> None:
            attributes = doc["attributes"]
            set_attributes(attributes, op.attributes, self.normalizations)
            remove_values(attributes, op.remove_values, self.normalizations)
            add_values(attributes, op.add_values, self.normalizations)
            set_attributes(attributes, extra or {}, self.normalizations)
        return change

    def delete(self, op: Operation, partition: str) -> str:
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
            return entry.anchor

    def replace(self, op: Operation, partition: str, rdns: tuple[str, ...] | None) -> str:
        """Delete and add in one step: a new anchor, the children (if the name stays) kept."""
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
            try:
                files.write_doc(new.path, self._new_doc(new, op), self.fsync)
                if new.path != old.path:
                    old.path.unlink(missing_ok=True)
            except BaseException:
                with self._lock:
                    if moved:
                        self._unregister(new)
                        old.busy = False
                raise
            with self._lock:
                self._unregister(old)
                new.busy = False
                if not moved:
                    self._register(new)
            journal = self.journals[partition]
            journal.append("delete", old.anchor, old.object, old.name)
            journal.append("replace", new.anchor, new.object, new.name)
            return new.anchor

    def rename(self, op: Operation, partition: str, rdns: tuple[str, ...]) -> str:
        """Give an object a new name: its file moves, and the folder of its children with it."""
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
            if moved:
                _move(old_path, old_folder, new_path, new_folder)
            try:
                files.write_doc(new_path, doc, self.fsync)
            except BaseException:
                if moved:
                    _move(new_path, new_folder, old_path, old_folder)
                raise
            depth = len(entry.rdns)
            with self._lock:
                for e in (entry, *subtree):
                    self._unregister(e)
                    if e is not entry:
                        e.path = new_folder / e.path.relative_to(old_folder)
                    e.rdns = e.rdns[: len(e.rdns) - depth] + rdns
                    e.key = names.key(e.rdns)
                entry.path = new_path
                for e in (entry, *subtree):
                    self._register(e)
            journal = self.journals[partition]
            journal.append("rename", entry.anchor, entry.object, entry.name)
            for e in sorted(subtree, key=lambda e: len(e.key)):
                child = files.read_doc(e.path)
                child["name"] = e.name
                files.write_doc(e.path, child, self.fsync)
                journal.append("rename", e.anchor, e.object, e.name)
            return entry.anchor

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


def _move(old_path: Path, old_folder: Path, new_path: Path, new_folder: Path) -> None:
    """Move an object file and its children's folder; put the file back if the folder cannot move."""
    new_path.parent.mkdir(parents=True, exist_ok=True)
    os.replace(old_path, new_path)
    if old_folder.is_dir():
        try:
            os.replace(old_folder, new_folder)
        except BaseException:
            os.replace(new_path, old_path)
            raise


def _remove_empty(folder: Path) -> None:
    with contextlib.suppress(OSError):  # absent, or holds something that is not ours: leave it
        folder.rmdir()
