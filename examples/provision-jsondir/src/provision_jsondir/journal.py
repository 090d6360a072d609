"""The change journal of one partition: ``<root>/<partition>/.journal.jsonl``.

Every successful write appends one line::

    {"seq": 42, "time": "2024-05-01T12:00:00.123456+00:00", "anchor": "...", "kind": "update",
     "name": "uid=jsmith,ou=people", "partition": "default", "object": "users"}

``seq`` counts from 1 in each partition and is the watermark a delta read returns. A line is
appended *after* the object file is written, under the journal's lock, so every change a line
names is already on disk when a reader sees the line. A crash between the two writes loses that
change from delta reads only (a full read always shows the tree as it is). On open, a last line
cut short by a crash is truncated away.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

FILE_NAME = ".journal.jsonl"


class DamagedJournal(ValueError):
    """A journal line that is not what this connector writes."""


class Journal:
    """Append-only change journal of one partition; safe to share between threads."""

    def __init__(self, folder: Path, partition: str, fsync: bool = True):
        self.path = folder / FILE_NAME
        self.partition = partition
        self.fsync = fsync
        self._lock = threading.Lock()
        self.last_seq, self._size = _repair_tail(self.path)
        self._handle: BinaryIO | None = open(self.path, "ab")  # noqa: SIM115 (closed in close())

    def append(self, kind: str, anchor: str, object: str, name: str) -> int:
        """Record one change; returns its sequence number."""
        with self._lock:
            if self._handle is None:
                raise OSError(f"journal {self.path} is closed")
            seq = self.last_seq + 1
            entry = {"seq": seq, "time": dt.datetime.now(dt.UTC).isoformat(), "anchor": anchor,
                     "kind": kind, "name": name, "partition": self.partition, "object": object}
            line = json.dumps(entry, ensure_ascii=False).encode("utf-8") + b"\n"
            self._handle.write(line)
            self._handle.flush()
            if self.fsync:
                os.fsync(self._handle.fileno())
            self.last_seq, self._size = seq, self._size + len(line)
            return seq

    def mark(self) -> tuple[int, int]:
        """(last sequence number, journal size in bytes): a consistent point to read up to."""
        with self._lock:
            return self.last_seq, self._size

    def since(self, seq: int, upto: tuple[int, int]) -> Iterator[dict[str, Any]]:
        """The entries after ``seq``, up to the point ``upto`` returned by :meth:`mark`."""
        last, size = upto
        if last <= seq:
            return
        with open(self.path, "rb") as handle:
            read = 0
            for raw in handle:
                read += len(raw)
                if read > size:
                    return
                entry = _entry(raw, self.path)
                if entry["seq"] > seq:
                    yield entry

    def close(self) -> None:
        with self._lock:
            if self._handle is not None:
                self._handle.close()
                self._handle = None


def _entry(raw: bytes, path: Path) -> dict[str, Any]:
    try:
        entry = json.loads(raw)
    except ValueError:
        raise DamagedJournal(f"{path}: a line is not JSON: {raw[:80]!r}") from None
    if not isinstance(entry, dict) or not isinstance(entry.get("seq"), int) or "anchor" not in entry:
        raise DamagedJournal(f"{path}: a line is not a journal entry: {raw[:80]!r}")
    return entry


def _repair_tail(path: Path) -> tuple[int, int]:
    """(last seq, size) of the journal, creating it, and cutting a partial last line away."""
    if not path.exists():
        path.touch()
        return 0, 0
    with open(path, "r+b") as handle:
        size = handle.seek(0, os.SEEK_END)
        data, pos = b"", size
        while pos > 0 and data.count(b"\n") < 2:
            step = min(65536, pos)
            pos -= step
            handle.seek(pos)
            data = handle.read(step) + data
        end = data.rfind(b"\n")
        if end < 0:  # no complete line at all
            handle.truncate(0)
            return 0, 0
        keep = pos + end + 1
        if keep != size:
            handle.truncate(keep)
        start = data.rfind(b"\n", 0, end)
        return _entry(data[start + 1:end], path)["seq"], keep
