"""A state store that is never written: ``provision preview`` without ``--apply`` and ``provision check``.

The engine's passes run on it exactly as on the real store (import, reconcile, compute, plan), so
what they show is what a run would do; nothing they write survives. A SQLite store is worked on
as a private snapshot (deleted afterwards); a server store (PostgreSQL, MariaDB) keeps
everything in one transaction that is rolled back. ``open_store(manifest, Mode.DRY)``
(:mod:`runner.state.opening`) opens one.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from pathlib import Path

from runner.errors import StateError, state_problem
from runner.state.store import StateStore, busy_timeout_seconds


class DryStore(StateStore):
    """A state store that never commits: everything the passes write is rolled back on close
    (and a snapshot's folder is removed)."""

    snapshot_folder: Path | None = None

    def commit(self) -> None:
        pass

    def close(self) -> None:
        try:
            self.conn.rollback()
            super().close()
        finally:
            if self.snapshot_folder is not None:
                shutil.rmtree(self.snapshot_folder, ignore_errors=True)


def snapshot(source: Path, base_dir: Path) -> DryStore:
    """A private copy of the SQLite state store ``source``, as a dry store removed on close."""
    folder = Path(tempfile.mkdtemp(prefix="provision-preview-"))
    copy = folder / "state.db"
    wait = busy_timeout_seconds()
    try:
        src = _read_only(source, wait)
        try:
            dst = sqlite3.connect(copy)
            # a throwaway copy: nothing to protect from a crash, so no journal and no fsync
            dst.execute("PRAGMA journal_mode=OFF")
            dst.execute("PRAGMA synchronous=OFF")
            try:
                src.backup(dst)
            except sqlite3.Error as e:  # full, unwritable: the copy's side; anything else: the store's
                name = getattr(e, "sqlite_errorname", "") or ""
                if name.startswith(("SQLITE_FULL", "SQLITE_IOERR", "SQLITE_READONLY", "SQLITE_CANTOPEN")):
                    raise StateError(f"cannot copy the state store to {folder} for the preview: {e}; free some "
                                     "space there, or set TMPDIR to a folder with room") from None
                raise _problem(e, source, wait) from None
            finally:
                dst.close()
        finally:
            src.close()
        store = DryStore(f"sqlite:///{copy}", base_dir)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    store.snapshot_folder = folder
    return store


def _read_only(source: Path, wait: float) -> sqlite3.Connection:
    """A connection that only reads ``source``: read-only where the file allows it, else an
    ordinary one told to make no change (a WAL file cannot always be opened read-only)."""
    src: sqlite3.Connection | None = None
    try:
        try:
            src = sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True, timeout=wait)
            src.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.OperationalError:
            if src is not None:
                src.close()
            src = sqlite3.connect(source, timeout=wait)
            src.execute("PRAGMA query_only=ON")
            src.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return src
    except sqlite3.Error as e:
        if src is not None:
            src.close()
        raise _problem(e, source, wait) from None


def _problem(error: sqlite3.Error, source: Path, wait: float) -> StateError:
    return state_problem(error, str(source), str(error), wait, True) or StateError(
        f"cannot read the state store {source}: {error}")
