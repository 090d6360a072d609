"""The journal of a file target: what each batch did, durable before its results are reported.

The engine records an operation's result as soon as ``apply`` yields it, and trusts it from then
on (docs/connectors.md, "Crash safety"). A snapshot file is written whole only at the end of a
run, so each batch's outcome is first appended here, one JSON line per object it touched
(``{"anchor": A, "entry": {...}}``, or ``{"anchor": A, "gone": true}``), and synced. The next
time the file is used after a crash, the journal is replayed over what the file holds and the
file is written whole; then the journal is removed. A last line cut short by the crash is the
batch whose results were never reported: it is dropped.

The journal sits beside its file as ``.<file>.journal`` (a dot file, which folder watchers skip).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

from runner.connectors.base import ConnectionFailed
from runner.connectors.files.atomic import append_durably, sync_folder
from runner.connectors.files.image import Entry


def journal_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.journal")


def append(path: Path, touched: Mapping[str, Entry | None], fsync: bool) -> None:
    """Record the state of each object a batch touched (None: gone), durably."""
    lines = []
    for anchor, entry in touched.items():
        row = {"anchor": anchor, "gone": True} if entry is None else {"anchor": anchor, "entry": entry.as_json()}
        lines.append(json.dumps(row, ensure_ascii=False, separators=(",", ":")))
    if lines:
        append_durably(journal_path(path), ("\n".join(lines) + "\n").encode("utf-8"), fsync)


def replay(path: Path) -> Iterator[tuple[str, Entry | None]]:
    """(anchor, entry or None) for each line of the journal, in order. A last line without its
    line break is the tail of a batch a crash cut short, never reported: it is skipped."""
    journal = journal_path(path)
    try:
        handle = open(journal, "rb")  # noqa: SIM115 (closed below)
    except FileNotFoundError:
        return
    with handle:
        for number, raw in enumerate(handle, 1):
            if not raw.endswith(b"\n"):
                return
            try:
                row = json.loads(raw)
                anchor = str(row["anchor"])
                entry = None if row.get("gone") else Entry.from_json(row["entry"])
            except (ValueError, KeyError, TypeError) as exc:
                raise ConnectionFailed(f"{journal}:{number}: not a journal line of this connector ({exc}); it "
                                       "holds changes a crashed run made: restore it, or remove it and run with "
                                       "--reconcile") from None
            yield anchor, entry


def exists(path: Path) -> bool:
    return journal_path(path).exists()


def remove(path: Path, fsync: bool) -> None:
    """Drop the journal once the file holds everything it recorded."""
    journal = journal_path(path)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(journal)
        if fsync:
            sync_folder(journal.parent)
