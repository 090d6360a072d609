"""The connector space on SQLAlchemy Core: every query the engine's passes need.

One :class:`StateStore` object holds the connection, and one part per thing it serves, each in
its own module: runs and locks (:mod:`.runs`), import (:mod:`.imports`), multi-valued attributes
(:mod:`.values`), compute (:mod:`.compute`), export (:mod:`.exports`), reconciliation with the
target (:mod:`.reconcile`), the provisioning log (:mod:`.log`) and approvals (:mod:`.approvals`);
:mod:`runner.state.opening` opens it for a run, a dry run or a reader. Work is done in pages with
indexes, never by loading a whole object type into memory, and writes are batched: the caller
commits once per page (import, compute) or per stretch of results (export), so a run killed at
any point keeps everything confirmed before it.
"""

from __future__ import annotations

import hashlib
import secrets as pysecrets
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event, exc

from runner.errors import StateError, state_problem
from runner.manifest.model import Manifest
from runner.sqlutil import driver_reason as _reason
from runner.sqlutil import shown_url, sqlalchemy_url
from runner.state import tables as t
from runner.state.approvals import Approvals
from runner.state.base import CHUNK, Base, DuplicateAnchor, chunks, dumps, now_iso, record_hash
from runner.state.compute import Compute
from runner.state.exports import Exports
from runner.state.imports import Imports
from runner.state.log import Log
from runner.state.reconcile import Reconcile
from runner.state.records import (
    Added,
    Change,
    Confirmations,
    Deleted,
    Dropped,
    Failed,
    PendingExport,
    Recompute,
    SourceRow,
    Updated,
)
from runner.state.runs import LockHolder, LockLost, Runs
from runner.state.tables import IncompatibleStore, migrate
from runner.state.values import Values

__all__ = ["CHUNK", "Added", "Change", "Confirmations", "Deleted", "Dropped", "DuplicateAnchor", "Failed",
           "LockHolder", "LockLost", "PendingExport", "Recompute", "SourceRow", "StateStore", "Updated",
           "chunks", "default_url", "dumps", "state_url", "now_iso", "record_hash"]


def default_url(manifest_path: Path, pipeline: str) -> str:
    """``.provision/<name>.db`` beside the manifest; the folder ignores itself in git."""
    folder = manifest_path.parent / ".provision"
    folder.mkdir(exist_ok=True)
    ignore = folder / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# provision's state: never commit it\n*\n")
    return f"sqlite:///{(folder / f'{pipeline}.db').resolve()}"


def state_url(manifest: Manifest, create: bool = True) -> str:
    """The manifest's state store: ``state:``, else the default beside the manifest (with
    ``create=False``, its folder is not made: readers of a pipeline that never ran leave nothing)."""
    if manifest.state is not None:
        return manifest.state
    file = manifest.path.parent / ".provision" / f"{manifest.name}.db"
    return default_url(manifest.path, manifest.name) if create or file.exists() else f"sqlite:///{file}"


class StateStore(Base):
    """One open state store. Not thread-safe: the engine's main thread owns it.

    The store itself keeps the connection and its life (``conn``, ``engine``, ``url_shown``,
    ``commit``, ``rollback``, ``close``), the driver-level helpers its parts share
    (``bulk_insert``, ``rows_in``, ``insert_new``) and what every pass needs: the object types'
    ids and config hashes, and the salted digest of sensitive values. Everything else is in one
    part each, working on the same connection and reaching the others through the store:

    - ``runs``: the pipeline's lock (and its heartbeat), runs, quarantine, and the counts of a type;
    - ``imports``: source objects page by page, watermarks, target objects as read, the match
      index, select_unique_value's reservations, links looked up by target anchor or name;
    - ``values``: the values of multi-valued target attributes, one row each;
    - ``compute``: dirty marks, scope, references, and the pending exports compute decides;
    - ``exports``: pending exports in export order, in-flight marks, and recording what the
      target confirmed (links, target objects);
    - ``reconcile``: what a reconciliation read and found (orphans, findings), and which system
      each target is (bindings);
    - ``log``: the provisioning log's entries;
    - ``approvals``: held deletes and disables approved object by object.
    """

    runs: Runs
    imports: Imports
    values: Values
    compute: Compute
    exports: Exports
    reconcile: Reconcile
    log: Log
    approvals: Approvals

    def __init__(self, url: str, base_dir: Path, *, read_only: bool = False):
        """Open (creating or migrating) the store at ``url``.

        On SQLite (WAL, see :func:`_sqlite_pragmas`) every transaction of a store that writes
        begins ``IMMEDIATE``: it takes the write lock first, waiting up to the busy timeout for it.
        A deferred transaction that reads and then writes fails at once with "database is locked"
        when another connection holds the lock (SQLite cannot wait there without risking a
        deadlock), so waiting only works this way. ``read_only`` stores (``status``) begin deferred
        and never take the write lock while they only read: they never make a run wait.

        Driver errors that are the machine's doing (locked, full, read-only, unreadable, damaged,
        a server gone) become :class:`StateError` naming the store and what to do (exit 4)."""
        parsed = sqlalchemy_url(url, base_dir)
        self.url_shown = shown_url(parsed)
        where = self.url_shown
        if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
            where = parsed.database  # a person looks for the file
            try:
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise StateError(f"cannot create the folder of the state store {parsed.database}: {e.strerror}; "
                                 "create it, or give the user running provision write access") from None
        wait = busy_timeout_seconds()

        def translate(context: Any) -> None:
            sql_error = context.sqlalchemy_exception
            problem = state_problem(context.original_exception, where,
                                    _reason(sql_error) if sql_error is not None else str(context.original_exception),
                                    wait, isinstance(sql_error, exc.OperationalError))
            if problem is not None:
                raise problem from None

        try:
            self.engine = sa.create_engine(parsed)
            event.listen(self.engine, "handle_error", translate)
            if self.engine.dialect.name == "sqlite":
                begin = "BEGIN" if read_only else "BEGIN IMMEDIATE"

                @event.listens_for(self.engine, "connect")
                def _connect(dbapi_connection: Any, _record: Any) -> None:
                    dbapi_connection.isolation_level = None  # SQLAlchemy's savepoint recipe: we say BEGIN
                    _sqlite_pragmas(dbapi_connection, _record)

                @event.listens_for(self.engine, "begin")
                def _begin(conn: sa.Connection) -> None:
                    conn.exec_driver_sql(begin)
            migrate(self.engine)
            self.conn = self.engine.connect()
        except IncompatibleStore as e:
            raise StateError(f"{self.url_shown}: {e}") from None
        except exc.SQLAlchemyError as e:
            raise StateError(f"cannot open the state store {self.url_shown}: {_reason(e)}") from None
        self._salt: str | None = None
        self._growth = {}
        self.runs, self.imports, self.values = Runs(self), Imports(self), Values(self)
        self.compute, self.exports, self.reconcile = Compute(self), Exports(self), Reconcile(self)
        self.log, self.approvals = Log(self), Approvals(self)

    def close(self) -> None:
        self.conn.close()
        self.engine.dispose()

    # ---- identity of object types ------------------------------------------------------------

    def type_id(self, pipeline: str, name: str) -> int:
        """The object type's number, made on first use: insert-or-fetch on the (pipeline, name)
        key, so two runners starting at once get the same number."""
        c = t.object_types.c
        query = sa.select(c.id).where(c.pipeline == pipeline, c.name == name)
        found = self.conn.execute(query).scalar()
        if found is None:
            self.insert_new(t.object_types, dict(pipeline=pipeline, name=name))
            # a locking read sees the row another runner committed after our first read began
            # (MariaDB's repeatable read would otherwise still show our first snapshot)
            found = self.conn.execute(query.with_for_update(read=True)).scalar_one()
            self.commit()
        return found

    def config_hash(self, type_id: int) -> str | None:
        c = t.object_types.c
        return self.conn.execute(sa.select(c.config_hash).where(c.id == type_id)).scalar()

    def set_config_hash(self, type_id: int, value: str) -> None:
        self.conn.execute(t.object_types.update().where(t.object_types.c.id == type_id).values(config_hash=value))

    def sensitive_digest(self, value: Any) -> str:
        """A salted digest standing in for a sensitive value, so it can be compared but not read."""
        if self._salt is None:
            c = t.meta.c
            self._salt = self.conn.execute(sa.select(c.value).where(c.key == "salt")).scalar()
            if self._salt is None:  # the first run: one salt for good, whoever inserts it first
                self.insert_new(t.meta, dict(key="salt", value=pysecrets.token_hex(16)))
                self._salt = self.conn.execute(sa.select(c.value).where(c.key == "salt")
                                               .with_for_update(read=True)).scalar_one()
                self.commit()
        return "sha256:" + hashlib.sha256((self._salt + dumps(value)).encode()).hexdigest()[:32]


BUSY_TIMEOUT_SECONDS = 30.0  # default wait for a SQLite state store another process holds locked


def busy_timeout_seconds() -> float:
    """Seconds to wait for a locked SQLite state store: PROVISION_STATE_BUSY_TIMEOUT, else 30."""
    import os

    try:
        value = float(os.environ.get("PROVISION_STATE_BUSY_TIMEOUT", BUSY_TIMEOUT_SECONDS))
    except ValueError:
        return BUSY_TIMEOUT_SECONDS
    return value if value >= 0 else BUSY_TIMEOUT_SECONDS


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL: readers (status) never block the run, and the run never blocks them; a writer that
    finds the write lock taken waits up to the busy timeout (transactions begin IMMEDIATE, see
    :meth:`StateStore.__init__`). Temporary storage in memory (below)."""
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_seconds() * 1000)}")  # first: the next pragma may wait
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # statement journals (an UPDATE of many rows inside a longer transaction) and the IN lists'
    # ephemeral tables in memory, not in temporary files: a delta cycle of 1% of 100,000 people
    # wrote 6,800 pages to /var/tmp through syscalls. They stay small: every page query walks
    # an index (tests/test_query_plans.py), nothing sorts a whole table.
    cursor.execute("PRAGMA temp_store=MEMORY")
    cursor.close()
