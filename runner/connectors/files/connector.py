"""What the csv, jsonl and ldif targets share: configuration, the image, batches, snapshots.

Each object is one file in the connector's folder (``objects.<name>.file``, by default the object's
name and the format's suffix). Two modes (``mode:``, on the connector or per object):

* ``snapshot`` (the default): the file is the whole current set of the target's objects. It is
  read when the object is first used (the target is the truth: a row deleted by hand is missing
  to the engine's reconciliation) and written whole, atomically, at the end of the run (``close``)
  and every ``flush_every`` seconds during a long one, only when something changed. Each batch is
  made durable before its results are reported by the journal (:mod:`.journal`).
* ``changes``: each operation appends a change record to the file, synced per batch before the
  results are reported. The connector keeps its own copy of the objects (``.<file>.objects.jsonl``
  beside it, written like a snapshot) to answer lookups and crash recovery, so a consumer may
  move the change file away at any time. A crash between the append and the journal repeats the
  last batch's records at most; each record carries the operation's key.

The formats fill in the hooks (:class:`FileFormat`): how a file is read, how a snapshot and a
change record are written, and what a value must look like to be written.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

from runner.connectors.base import (
    ConfigurationError,
    ConnectionFailed,
    Connector,
    ObjectError,
    Operation,
    Page,
    Record,
    Result,
    RetryableError,
)
from runner.connectors.files import journal
from runner.connectors.files.atomic import append_durably, cut_partial_tail, is_temp, replace_atomically
from runner.connectors.files.image import (
    Change,
    Entry,
    Image,
    Rules,
    apply_operation,
    matches,
    sorted_entries,
)

MODES = ("snapshot", "changes")
DEFAULT_FLUSH_EVERY = 60.0
DEFAULT_PAGE_SIZE = 1000

# Schema pieces every file target's block has (each format adds its own).
COMMON_PROPERTIES: dict[str, Any] = {
    "path": {"type": "string", "minLength": 1,
             "description": "folder that holds the files, relative to the manifest (created when missing)"},
    "mode": {"enum": list(MODES), "default": "snapshot",
             "description": "snapshot: each file is the whole current set of objects, rewritten atomically "
                            "when something changed; changes: one change record appended per operation"},
    "fsync": {"type": "boolean", "default": True,
              "description": "sync each batch and each snapshot to disk before reporting it done"},
    "flush_every": {"type": "number", "minimum": 0, "default": DEFAULT_FLUSH_EVERY,
                    "description": "seconds between snapshot writes during a long run (each run ends with one); "
                                   "0 writes the snapshot after every batch"},
    "page_size": {"type": "integer", "minimum": 1, "default": DEFAULT_PAGE_SIZE},
}
OBJECT_COMMON: dict[str, Any] = {
    "file": {"type": "string", "minLength": 1, "description": "the file's name in the folder"},
    "mode": {"enum": list(MODES), "description": "this object's mode (default: the connector's)"},
}


@dataclass(frozen=True)
class FileObject:
    """One configured object: its file and how it is kept."""

    name: str
    path: Path  # what is opened
    label: str  # the file as configured, for messages
    key: str | None  # the attribute whose value is the anchor
    mode: str
    spec: Mapping[str, Any]  # the object's own block

    @property
    def private(self) -> Path:
        """Where ``changes`` mode keeps its copy of the objects."""
        return self.path.with_name(f".{self.path.name}.objects.jsonl")


class FileTarget(Connector):
    """Base of the file targets. Subclasses set the format's facts and hooks."""

    suffix: ClassVar[str] = ""
    format_label: ClassVar[str] = ""
    terminator: ClassVar[bytes] = b"\n"  # ends each change record: a file not ending so was cut short
    key_required: ClassVar[bool] = True

    def __init__(self, config: Mapping[str, Any], context: Any):
        super().__init__(config, context)
        self._lock = threading.RLock()
        self._images: dict[str, Image] = {}
        self._dirty: set[str] = set()
        self._flushed: dict[str, float] = {}

    # ---- configuration ------------------------------------------------------------------------

    @property
    def folder(self) -> Path:
        return (self.context.base_dir / self.config["path"]).resolve()

    def _spec(self, object: str) -> Mapping[str, Any]:
        return (self.config.get("objects") or {}).get(object) or {}

    def _file_name(self, object: str) -> str:
        return self._spec(object).get("file", f"{object}{self.suffix}")

    def file_object(self, object: str) -> FileObject:
        spec = self._spec(object)
        name = self._file_name(object)
        return FileObject(object, self.folder / name, str(Path(self.config["path"]) / name), spec.get("key"),
                          spec.get("mode", self.config.get("mode", "snapshot")), spec)

    def is_target(self, object: str) -> bool:
        """Whether ``object`` is written by this connector (has a key), rather than only read."""
        return not self.key_required or bool(self._spec(object).get("key"))

    @property
    def fsync(self) -> bool:
        return bool(self.config.get("fsync", True))

    def rules(self, obj: FileObject) -> Rules:
        raise NotImplementedError

    def check(self) -> list[tuple[tuple[str | int, ...], str]]:
        problems = list(super().check())
        owners: dict[str, str] = {}
        for object in self.config.get("objects") or {}:
            name = self._file_name(object)
            if name.casefold() in owners:
                problems.append((("objects", object, "file"), f"{name!r} is the file of object "
                                 f"{owners[name.casefold()]!r} too; give each object its own file"))
            owners.setdefault(name.casefold(), object)
            if "/" in name or "\\" in name or name.startswith("."):
                problems.append((("objects", object, "file"), f"{name!r}: a file name in the folder, without "
                                 "folders and not starting with a dot"))
        return problems

    def template_problems(self, object: str, produced: Collection[str]) -> list[tuple[tuple[str | int, ...], str]]:
        """The key an object written to a file needs: set, and a mapped attribute."""
        at: tuple[str | int, ...] = ("objects", object) if object in (self.config.get("objects") or {}) else ()
        key = self._spec(object).get("key")
        if self.key_required and not key:
            return [(at, f"object {object!r} is written to a {self.format_label} file, so it needs `key:`, the "
                         "mapped attribute whose value identifies each object (e.g. key: user_name)")]
        if key and key not in produced:
            return [((*at, "key"), f"key {key!r} is not a mapped attribute of what is written to {object!r}")]
        return []

    def identity(self) -> Mapping[str, Any]:
        """The folder: a state store written for one folder must not be taken for another's."""
        return {"path": str(self.folder)}

    # ---- the image ----------------------------------------------------------------------------

    def _target(self, object: str) -> FileObject:
        obj = self.file_object(object)
        if self.key_required and not obj.key:
            raise ConfigurationError(f"object {object!r} of connector {self.context.name!r} has no key: set "
                                     f"objects.{object}.key to the mapped attribute that identifies each object")
        return obj

    def image(self, object: str) -> Image:
        """The objects of ``object``'s file, read on first use (replaying a crashed run's journal)."""
        with self._lock:
            image = self._images.get(object)
            if image is None:
                obj = self._target(object)
                image = self._load(obj)
                self._images[object] = image
                self._flushed[object] = time.monotonic()
            return image

    def _load(self, obj: FileObject) -> Image:
        _remove_temps(obj.path)
        try:
            if obj.mode == "snapshot":
                image = self._unique(obj, self.load_entries(obj) if obj.path.exists() else [])
            else:
                cut = cut_partial_tail(obj.path, self.terminator)
                if cut:
                    self.context.logger.warning("%s: cut %d bytes of a change record a crash left unfinished",
                                                obj.label, cut)
                self.check_changes_file(obj)
                image = Image.of(_read_private(obj))
        except OSError as exc:
            raise ConnectionFailed(f"cannot read {obj.label}: {exc.strerror}; check the path of connector "
                                   f"{self.context.name!r} (it resolves to {obj.path})") from None
        replayed = 0
        for anchor, entry in journal.replay(obj.path):
            replayed += 1
            if entry is None:
                image.remove(anchor)
            else:
                image.put(entry)
        image.undo_log.clear()
        if replayed:
            self._dirty.add(obj.name)
            self.context.logger.warning("%s: a run that did not finish left %d changes in its journal; they are "
                                        "written to the file now", obj.label, replayed)
        return image

    def _unique(self, obj: FileObject, located: Iterable[tuple[Entry, str]]) -> Image:
        image = Image()
        where: dict[str, str] = {}
        for entry, location in located:
            if entry.anchor in where:
                raise ConnectionFailed(f"{location}: the key {entry.anchor!r} appears again (first at "
                                       f"{where[entry.anchor]}); each object's key must be unique: fix the file")
            if entry.name is not None and image.named(entry.name) is not None:
                raise ConnectionFailed(f"{location}: the entry {entry.name!r} appears again; fix the file")
            where[entry.anchor] = location
            image.put(entry)
        image.undo_log.clear()
        return image

    def _flush(self, object: str) -> None:
        """Write ``object``'s file (snapshot) or private copy (changes) whole, then drop the journal."""
        obj = self.file_object(object)
        image = self._images[object]
        entries = sorted_entries(image.entries(), self.rules(obj).named)
        try:
            if obj.mode == "snapshot":
                replace_atomically(obj.path, lambda handle: self.render(obj, entries, handle), self.fsync)
            else:
                replace_atomically(obj.private, lambda handle: _write_private(entries, handle), self.fsync)
            journal.remove(obj.path, self.fsync)
        except OSError as exc:
            raise ConnectionFailed(f"cannot write {obj.label}: {exc.strerror}; its journal keeps what this run "
                                   "changed, and the next run writes it") from None
        self._dirty.discard(object)
        self._flushed[object] = time.monotonic()

    # ---- lifecycle ----------------------------------------------------------------------------

    def open(self) -> None:
        if self.folder.exists() and not self.folder.is_dir():
            raise ConnectionFailed(f"{self.folder} is a file; the path of connector {self.context.name!r} must "
                                   "be a folder")

    def close(self) -> None:
        """Write every file that changed (the end-of-run snapshot), then forget the images."""
        with self._lock:
            failed: ConnectionFailed | None = None
            for object in sorted(self._dirty):
                try:
                    self._flush(object)
                except ConnectionFailed as exc:
                    failed = failed or exc
            self._images.clear()
            self._dirty.clear()
        if failed is not None:
            raise failed

    # ---- reading ------------------------------------------------------------------------------

    def read(self, object: str, partition: str | None = None, watermark: str | None = None, *,
             attributes: Sequence[str] | None = None, page_size: int | None = None) -> Iterator[Page]:
        """Every object the file holds, with its anchor (a target read: reconciliation, recovery)."""
        size = page_size or self.config.get("page_size", DEFAULT_PAGE_SIZE)
        with self._lock:
            image = self.image(object)
            entries = sorted_entries(image.entries(), self.rules(self.file_object(object)).named)
        obj = self.file_object(object)
        for start in range(0, max(len(entries), 1), size):
            yield Page([self.record(obj, e) for e in entries[start:start + size]])

    def get(self, object: str, anchor: str | None = None, *, name: str | None = None,
            partition: str | None = None) -> Record | None:
        with self._lock:
            entry = self.image(object).find(anchor, name)
        return None if entry is None else self.record(self.file_object(object), entry)

    def lookup(self, object: str, values: Mapping[str, Any], *, partition: str | None = None) -> list[Record]:
        if not values:
            raise TypeError("lookup needs at least one attribute value: with none, every object would match")
        obj = self.file_object(object)
        rules = self.rules(obj)
        with self._lock:
            image = self.image(object)
            if obj.key and set(values) == {obj.key} and not isinstance(values[obj.key], list | tuple):
                entry = image.by_anchor.get(str(values[obj.key]))
                found = [entry] if entry is not None and matches(entry.attributes, values, rules.fold) else []
            else:
                found = [e for e in image.entries() if matches(e.attributes, values, rules.fold)]
        return [self.record(obj, e) for e in sorted_entries(found, rules.named)]

    def record(self, obj: FileObject, entry: Entry) -> Record:
        """An entry as a Record (a format may hide attributes it keeps, such as a password hash)."""
        return Record(dict(entry.attributes), anchor=entry.anchor, name=entry.name, location=obj.label)

    # ---- writing ------------------------------------------------------------------------------

    def apply(self, operations: Sequence[Operation]) -> Iterable[Result]:
        """Each object's operations on its image, then the batch made durable (the change records,
        then the journal), then the results. A batch that cannot be written is undone, and the
        pass stops (ConnectionFailed): its operations stay in doubt and are settled next run."""
        groups: dict[str, list[Operation]] = {}
        for op in operations:
            groups.setdefault(op.object, []).append(op)
        for object, ops in groups.items():
            with self._lock:
                results = self._apply(object, ops)
            yield from results

    def _apply(self, object: str, ops: list[Operation]) -> list[Result]:
        obj = self._target(object)
        image = self.image(object)
        rules = self.rules(obj)
        image.begin()
        results: list[Result] = []
        changes: list[Change] = []
        for op in ops:
            try:
                anchor, change = apply_operation(image, op, rules)
            except (ObjectError, RetryableError) as exc:
                results.append(Result.failed(op, exc))
                continue
            entry = image.by_anchor.get(anchor)
            results.append(Result(op.id, True, anchor, name=entry.name if entry is not None else None))
            if change is not None:
                changes.append(change)
        touched = image.touched()
        if not touched:
            return results
        try:
            if obj.mode == "changes" and changes:
                append_durably(obj.path, self.change_records(obj, changes), self.fsync, self.changes_header(obj))
            journal.append(obj.path, touched, self.fsync)
        except OSError as exc:
            image.undo()
            raise ConnectionFailed(f"cannot write {obj.label}: {exc.strerror}") from None
        image.undo_log.clear()
        self._dirty.add(object)
        if time.monotonic() - self._flushed.get(object, 0.0) >= float(self.config.get("flush_every",
                                                                                        DEFAULT_FLUSH_EVERY)):
            self._flush(object)
        return results

    # ---- the format's hooks -------------------------------------------------------------------

    def load_entries(self, obj: FileObject) -> Iterable[tuple[Entry, str]]:
        """Each object of a snapshot file, with where it is (``file:line``). ConnectionFailed for a
        file that cannot be read as one, naming the line."""
        raise NotImplementedError

    def render(self, obj: FileObject, entries: Sequence[Entry], handle: BinaryIO) -> None:
        """Write a snapshot of ``entries`` (in order) to ``handle``."""
        raise NotImplementedError

    def change_records(self, obj: FileObject, changes: Sequence[Change]) -> bytes:
        """The change records of one batch, each ending with :attr:`terminator`."""
        raise NotImplementedError

    def changes_header(self, obj: FileObject) -> bytes:
        """What a new change file starts with (a CSV header, LDIF's version line)."""
        return b""

    def check_changes_file(self, obj: FileObject) -> None:
        """ConnectionFailed when the change file there cannot take this connector's records."""


def _remove_temps(path: Path) -> None:
    """Temporary files a crash left in the middle of a snapshot write: never renamed, so never read."""
    if not path.parent.is_dir():
        return
    for leftover in path.parent.glob(f".{path.name}.*"):
        if is_temp(leftover.name):
            leftover.unlink(missing_ok=True)


def _read_private(obj: FileObject) -> Iterator[Entry]:
    try:
        handle = open(obj.private, encoding="utf-8")  # noqa: SIM115 (closed below)
    except FileNotFoundError:
        return
    with handle:
        for number, line in enumerate(handle, 1):
            try:
                yield Entry.from_json(json.loads(line))
            except (ValueError, KeyError, TypeError) as exc:
                raise ConnectionFailed(f"{obj.private}:{number}: not an object of this connector ({exc}); it is "
                                       "the connector's record of what the change file was sent: restore it, or "
                                       "remove it and run with --reconcile") from None


def _write_private(entries: Iterable[Entry], handle: BinaryIO) -> None:
    for entry in entries:
        handle.write(json.dumps(entry.as_json(), ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n")


def change_time() -> str:
    """When a change record was written (UTC, ISO 8601, seconds)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
