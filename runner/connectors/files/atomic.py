"""Durable file writes: a whole file replaced atomically, and records appended durably.

A snapshot is written to a temporary file in the same folder (``.<name>.<random>.tmp``, so a
folder watcher that skips dot files never sees it), flushed, fsynced, renamed over the file with
``os.replace`` and the folder fsynced: a reader opens the old file or the new one, never half of
one, and after a crash the rename is either on disk or not. An append writes one batch in one
call, fsyncs it, and on a failure cuts the file back to where the batch began.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

TEMP_SUFFIX = ".tmp"


def _umask() -> int:
    """The process's umask (read once: setting it back and forth is not thread-safe)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


UMASK = _umask()


def replace_atomically(path: Path, write: Callable[[BinaryIO], None], fsync: bool = True) -> None:
    """Write ``path`` whole through ``write(handle)``, atomically (see the module docstring)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    try:
        try:  # mkstemp makes the file private: give it the permissions the file has, or a new file gets
            mode = path.stat().st_mode & 0o7777
        except FileNotFoundError:
            mode = 0o666 & ~UMASK
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb", buffering=1024 * 1024) as handle:
            write(handle)
            handle.flush()
            if fsync:
                os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    if fsync:
        sync_folder(path.parent)


def append_durably(path: Path, data: bytes, fsync: bool = True, header: bytes = b"") -> None:
    """Append ``data`` to ``path`` (``header`` first when the file is new or empty) and sync it.
    A failed write leaves the file as it was before."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        start = os.fstat(fd).st_size
        chunk = (header if start == 0 else b"") + data
        try:
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view):]
            if fsync:
                os.fsync(fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, start)
            raise
    finally:
        os.close(fd)
    if fsync and start == 0:
        sync_folder(path.parent)


def cut_partial_tail(path: Path, terminator: bytes) -> int:
    """Cut a last record that a crash left unfinished (the file does not end with ``terminator``)
    back to the end of the last whole one; returns the bytes cut (0 when the file is whole)."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return 0
    if size == 0:
        return 0
    with open(path, "r+b") as handle:
        window = min(size, 1024 * 1024)
        handle.seek(size - window)
        tail = handle.read(window)
        if tail.endswith(terminator):
            return 0
        at = tail.rfind(terminator)
        keep = 0 if at < 0 and window == size else (size - window + at + len(terminator) if at >= 0 else size)
        if keep == size:
            return 0  # no whole record in the last MiB: leave a file this odd alone
        handle.truncate(keep)
        return size - keep


def sync_folder(folder: Path) -> None:
    """fsync a folder, so a file created or renamed in it survives a crash (not on Windows)."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def is_temp(filename: str) -> bool:
    """A temporary file a crashed snapshot write left behind."""
    return filename.startswith(".") and filename.endswith(TEMP_SUFFIX)
