"""Opening the state store: the one way in, by what the caller will do with it.

:func:`open_store` takes a :class:`Mode`: ``WRITE`` for what changes the state (run, apply,
approve, release, preview --apply), ``DRY`` for what must leave it as it was although the passes
write (plan, check, preview: :mod:`runner.state.dry`), ``READ`` for what only reads it (status):
it never takes the write lock, so it never makes a run wait.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from runner.manifest.model import Manifest
from runner.sqlutil import shown_url, sqlalchemy_url
from runner.state.dry import DryStore, snapshot
from runner.state.store import StateStore, state_url


class Mode(StrEnum):
    WRITE = "write"  # created or migrated as needed, and written
    DRY = "dry"  # written by the passes, nothing kept: a private snapshot or a transaction rolled back
    READ = "read"  # read only; a SQLite store that does not exist yet is not made


def open_store(manifest: Manifest, mode: Mode, url: str | None = None) -> StateStore:
    """The pipeline's state store, opened for ``mode``; ``url``: another manifest's store instead
    (a simulation computes an old manifest over the new one's state), for ``Mode.DRY`` only.

    A dry store on SQLite is a copy (the backup API, one read transaction: in WAL mode it waits
    for no writer and no writer waits for it) in a private temporary file: the passes write (the
    record, its scope, its pending export), and on the real file those writes would hold its
    write lock for the whole preview, so a run going on would fail with "database is locked". A
    dry store on a server (PostgreSQL, MariaDB) keeps its rows in one transaction that is rolled
    back: a run touching the same object's rows waits for it, it does not fail. A dry or read
    store of a pipeline that never ran is an empty one in memory: no file is left behind."""
    if url is not None and mode is not Mode.DRY:
        raise ValueError("open_store: another store's url is for a dry store only")
    if mode is Mode.WRITE:
        return StateStore(state_url(manifest), manifest.base_dir)
    url = url or state_url(manifest, create=False)
    parsed = sqlalchemy_url(url, manifest.base_dir)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return DryStore(url, manifest.base_dir) if mode is Mode.DRY else StateStore(url, manifest.base_dir,
                                                                                     read_only=True)
    file = Path(parsed.database)
    if mode is Mode.READ:
        store = StateStore(url if file.exists() else "sqlite://", manifest.base_dir, read_only=True)
    else:
        store = snapshot(file, manifest.base_dir) if file.exists() else DryStore("sqlite://", manifest.base_dir)
    store.url_shown = shown_url(parsed)
    return store
