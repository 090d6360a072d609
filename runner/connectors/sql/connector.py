"""SQL databases through SQLAlchemy: the generic SQL connector (SQLite, PostgreSQL, MariaDB).

Configuration (docs/sql.md has the whole of it)::

    app:
      type: sql
      url: sqlite:///out/app.db          # relative SQLite paths resolve from the manifest's folder
      init_sql: app-schema.sql           # optional: idempotent DDL run on open (CREATE ... IF NOT EXISTS)
      partitions: [eu, us]               # optional: schemas / databases holding the same tables
      objects:
        users:  {table: users, key: id, generated_key: true,
                 delta: {watermark: updated_at, overlap: 5m}}
        groups: {table: groups, key: id, generated_key: true,
                 multi_valued: {members: {table: group_members, key: group_id, value: user_id}},
                 delta: {changes: {table: changes, object_column: table_name}}}
        staff:  {query: "SELECT ... FROM employees JOIN ...", key: employee_id,
                 statements: {update: "CALL update_staff(:_anchor, :title)"}}

An object's rows come from a table or view, or from a custom SELECT; its anchor is its key
column's value as a string (several key columns: the parts joined by ``/``). A multi-valued
attribute lives in a child table of (owner key, value) rows, read one query per page and written
as the difference. Writes are table writes, or the object's custom statements per operation.

Each ``apply`` batch runs in one transaction with a savepoint per operation, so one bad row fails
alone, and results are reported only after the commit: a confirmation the engine records is one
the database has kept (``_apply_batch`` is that transaction; tests/faults/killpoint.py counts it).
Table adds, updates and deletes of one object go in bulk, a statement per table for many
operations; a bulk statement refused, or one that cannot tell which row was missing, is rolled
back to its savepoint and its operations are applied one by one, each as it would have been alone.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event, exc

from runner.connectors.base import (
    Capabilities,
    ConfigurationError,
    ConnectionFailed,
    Connector,
    ObjectError,
    ObjectInfo,
    Operation,
    Page,
    Ranges,
    Record,
    Result,
    RetryableError,
    SystemUnavailable,
)
from runner.connectors.sql import catalog, read, write
from runner.connectors.sql.bound import Bound, bind
from runner.connectors.sql.config import BATCH_SIZE, CONFIG_SCHEMA, ObjectSpec, object_spec
from runner.connectors.sql.errors import about_the_object, connect_hint, object_error
from runner.connectors.sql.keys import NoSuchKey, equals, key_values
from runner.sqlutil import driver_problem, shown_url, sqlalchemy_url, sqlite_savepoints
from runner.sqlutil import driver_reason as _reason

_DB_ERRORS = (exc.OperationalError, exc.InterfaceError, exc.ProgrammingError, exc.InternalError)


def _stops(error: Exception) -> type[ConnectionFailed]:
    """The error a failed read stops the pass with: SystemUnavailable when the connection was
    lost (SQLAlchemy saw a disconnect), ConnectionFailed for what the database answered."""
    return SystemUnavailable if getattr(error, "connection_invalidated", False) else ConnectionFailed


class SqlConnector(Connector):
    """SQL tables, views and custom SELECTs through SQLAlchemy, with watermark and change-table delta reads."""

    type_name = "sql"
    config_schema = CONFIG_SCHEMA

    engine: sa.Engine | None = None
    #: updates and deletes in bulk (bench/sql_write.py turns it off to time one operation at a time)
    batched_writes: bool = True

    # ---- facts ------------------------------------------------------------------------------

    def specs(self) -> dict[str, ObjectSpec]:
        """The typed object blocks (parsed on first use: the constructor touches nothing)."""
        cached = self.__dict__.get("_specs")
        if cached is None:
            cached = {name: object_spec(name, block) for name, block in (self.config.get("objects") or {}).items()}
            self.__dict__["_specs"] = cached
        return cached

    def capabilities(self, object: str | None = None) -> Capabilities:
        specs = self.specs()
        chosen = [specs[object]] if object in specs else list(specs.values())
        # no objects configured (``provision connectors``): what a table offers
        kinds: set[str] = set().union(*(s.writable_kinds for s in chosen)) if chosen else {"add", "update", "disable",
                                                                                            "delete"}
        first_pass = any(s.password or ":_password" in s.statements.get("add", "") for s in chosen)
        generated = any(s.generated_key for s in chosen)
        return Capabilities(
            operations=frozenset(kinds),
            password_in_first_pass=first_pass,
            max_concurrency=1 if self._is_sqlite() else self.config.get("concurrency", 1),
            generated_anchor=generated,
            delta_read=bool(chosen) and all(s.delta is not None for s in chosen),
            partitions=bool(self.config.get("partitions")),
            # custom update statements bind every parameter they name: they get the whole object
            export_style="whole_object" if any("update" in s.statements for s in chosen) else "delta",
            # a key the mapping supplies finds the row again; a generated one does not
            correlation=chosen[0].key if len(chosen) == 1 and not generated else (),
        )

    def object_names(self) -> list[str]:
        return sorted(self.config["objects"])

    def check(self) -> list[tuple[tuple[str | int, ...], str]]:
        problems: list[tuple[tuple[str | int, ...], str]] = []
        try:
            url = sa.make_url(self.config["url"])
        except exc.ArgumentError:
            problems.append((("url",), "not a SQLAlchemy URL (e.g. sqlite:///app.db, postgresql+psycopg://host/db)"))
            url = None
        if url is not None and (missing := driver_problem(url)):
            problems.append((("url",), missing))
        init_sql = self.config.get("init_sql")
        if init_sql and not (self.context.base_dir / init_sql).is_file():
            problems.append((("init_sql",), f"file not found: {init_sql} (relative to the manifest)"))
        if self.config.get("attach") and url is not None and url.get_backend_name() != "sqlite":
            problems.append((("attach",), "attach is for SQLite files; on a server, partitions are schemas or "
                                          "databases the url's user can reach"))
        for name, spec in self.specs().items():
            at = ("objects", name)
            if spec.delta is not None and spec.delta.changes is None and spec.delta.watermark is None:
                problems.append(((*at, "delta"), "name a watermark column or a change table"))
            if spec.composite and spec.generated_key:
                problems.append(((*at, "generated_key"), "a generated key has one column"))
        return problems

    def _is_sqlite(self) -> bool:
        return str(self.config.get("url", "")).startswith("sqlite")

    # ---- lifecycle --------------------------------------------------------------------------

    def open(self) -> None:
        url = sqlalchemy_url(self.config["url"], self.context.base_dir)
        shown = shown_url(url)
        backend = url.get_backend_name()
        if backend == "sqlite":
            self._sqlite_file(url, shown)
        timeout = self.config.get("connect_timeout", 10)
        connect_args = {} if backend == "sqlite" else {"connect_timeout": timeout}
        self._bound: dict[tuple[str, str | None], Bound] = {}
        self._binding = threading.Lock()
        self._metadata = sa.MetaData()
        try:
            self.engine = sa.create_engine(url, connect_args=connect_args)
            sqlite_savepoints(self.engine)
            self._attach(self.engine)
            with self.engine.begin() as conn:
                if self.config.get("init_sql"):
                    for statement in _statements((self.context.base_dir / self.config["init_sql"]).read_text()):
                        conn.exec_driver_sql(statement)
            for name in self.specs():
                for partition in self.config.get("partitions") or [None]:
                    try:
                        self._bind(name, partition)
                    except ConnectionFailed as e:  # which database, for the person who configured several
                        raise ConnectionFailed(f"{shown}: {e}") from None
        except (exc.OperationalError, exc.InterfaceError) as e:
            reason = _reason(e)
            self.close()
            # a server that does not answer or refuses the login; a SQLite file is no system to reach
            fails = ConnectionFailed if backend == "sqlite" else SystemUnavailable
            raise fails(f"cannot connect to {shown}: {reason}; {connect_hint(reason)}") from None
        except (exc.ProgrammingError, exc.InternalError) as e:
            self.close()
            raise ConnectionFailed(f"{shown}: {_reason(e)}") from None
        except (ConnectionFailed, ConfigurationError):
            self.close()
            raise

    def _sqlite_file(self, url: sa.URL, shown: str) -> None:
        if url.database in (None, "", ":memory:") or url.database.startswith("file:"):
            return
        file = Path(url.database)
        if file.exists():
            return
        if not self.config.get("create", False):
            raise ConnectionFailed(
                f"{shown}: the database file {file} does not exist: check the path, or set create: true "
                f"on connector {self.context.name!r} if provision should create it")
        try:
            file.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ConnectionFailed(f"{shown}: cannot create the folder {file.parent}: {e.strerror}") from None

    def _attach(self, engine: sa.Engine) -> None:
        """SQLite partitions: each ``attach`` file under its schema name, on every new connection."""
        files = {name: str((self.context.base_dir / path).resolve())
                 for name, path in (self.config.get("attach") or {}).items()}
        if not files or engine.dialect.name != "sqlite":
            return
        for name, path in files.items():
            if not Path(path).exists() and not self.config.get("create", False):
                raise ConnectionFailed(f"attach {name!r}: the database file {path} does not exist")

        @event.listens_for(engine, "connect")
        def _connect(dbapi_connection: Any, _record: Any) -> None:
            for name, path in files.items():
                dbapi_connection.execute(f'ATTACH DATABASE ? AS "{name}"', (path,))

    def _bind(self, object: str, partition: str | None) -> Bound:
        """The object bound in that partition (reflected once, then kept)."""
        found = self._bound.get((object, partition))
        if found is not None:
            return found
        spec = self.specs().get(object)
        if spec is None:
            raise ObjectError(f"object {object!r} is not configured for connector {self.context.name!r}; "
                              f"it has: {', '.join(self.object_names())}")
        partitions = self.config.get("partitions")
        if partition is not None and partition not in (partitions or ()):
            raise ObjectError(f"object {object!r}: no partition {partition!r} on connector {self.context.name!r}"
                              + (f"; it has: {', '.join(partitions)}" if partitions else " (it has no partitions)"))
        assert self.engine is not None
        with self._binding:
            found = self._bound.get((object, partition))
            if found is None:
                found = self._bound[(object, partition)] = bind(self.engine, self._metadata, spec, partition)
        return found

    def close(self) -> None:
        if self.engine is not None:
            self.engine.dispose()
            self.engine = None

    def ping(self) -> None:
        assert self.engine is not None
        try:
            with self.engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
        except (exc.OperationalError, exc.InterfaceError) as e:
            raise SystemUnavailable(f"the database does not answer: {_reason(e)}") from None

    # ---- describing -------------------------------------------------------------------------

    def discover(self) -> Sequence[ObjectInfo]:
        """Every configured object with its columns and child-table attributes (complete), then the
        database's other tables and views, to help write a mapping for them."""
        assert self.engine is not None
        try:
            return catalog.describe(self.engine, [self._bind(n, p) for n in self.object_names()
                                                  for p in (self.config.get("partitions") or [None])],
                                    self.config.get("partitions") or ())
        except _DB_ERRORS as e:
            raise ConnectionFailed(f"reading the catalogue: {_reason(e)}") from None

    def identity(self) -> Mapping[str, Any]:
        """The database as its URL names it (never the password): the file of a SQLite database,
        else the server, port and database name."""
        url = sqlalchemy_url(self.config["url"], self.context.base_dir)
        if url.get_backend_name() == "sqlite":
            return {"database": "sqlite", "file": str(Path(url.database).resolve()) if url.database else ":memory:"}
        return {"database": url.get_backend_name(), "host": url.host or "localhost", "port": url.port,
                "name": url.database}

    def server_info(self) -> Mapping[str, Any]:
        assert self.engine is not None
        try:
            return catalog.server(self.engine, self.config)
        except _DB_ERRORS as e:
            raise ConnectionFailed(f"asking the server: {_reason(e)}") from None

    # ---- reading ----------------------------------------------------------------------------

    def read(self, object: str, partition: str | None = None, watermark: str | None = None, *,
             attributes: Sequence[str] | None = None, page_size: int | None = None) -> Iterator[Page]:
        """Pages of records in key order (full), or what changed since ``watermark`` (delta)."""
        size = page_size or self.config.get("page_size", 1000)
        bound = self._readable(object, partition)
        assert self.engine is not None
        delta = bound.spec.delta
        try:
            with self.engine.connect() as conn:
                if delta is None:
                    yield from read.full(conn, bound, size, None)
                elif watermark is None:
                    yield from read.full(conn, bound, size, read.start_mark(conn, bound, delta.overlap))
                elif delta.changes is not None:
                    yield from read.since_changes(conn, bound, size, watermark, delta.overlap)
                else:
                    yield from read.since_watermark(conn, bound, size, watermark, delta.overlap)
        except _DB_ERRORS as e:
            raise _stops(e)(f"connector {self.context.name!r}, {bound.where}: cannot read it: {_reason(e)}") from None

    def ranges(self, object: str, partition: str | None, count: int) -> Ranges | None:
        """The live rows cut at keys that one ordered query (NTILE) finds, so the ranges hold
        about equal numbers of rows: each from its first key up to the next range's, the first
        from the beginning (with the rows whose key has a NULL), the last to the end. The database
        compares the keys in the cut and in every range's read alike, under the key column's own
        collation, so each row lands in exactly one range. None for keys other than integers and
        text, and for a table too small for two ranges."""
        bound = self._readable(object, partition)
        assert self.engine is not None
        delta = bound.spec.delta
        try:
            with self.engine.connect() as conn:
                mark = read.start_mark(conn, bound, delta.overlap) if delta is not None else None
                starts = read.range_starts(conn, bound, max(1, count))
        except _DB_ERRORS as e:
            raise _stops(e)(f"connector {self.context.name!r}, {bound.where}: cannot cut it in ranges: "
                            f"{_reason(e)}") from None
        if not starts or not all(read.cuttable(v) for start in starts for v in start):
            return None
        edges: list[list[Any] | None] = [None, *starts, None]
        spans = [read.Span(low, high) for low, high in itertools.pairwise(edges)]
        return Ranges([span.token() for span in spans], mark.text() if mark is not None else None)

    def read_range(self, object: str, token: str, partition: str | None = None, *,
                   attributes: Sequence[str] | None = None, page_size: int | None = None) -> Iterator[Page]:
        """The live rows of one range, in key order, as a full read pages them."""
        bound = self._readable(object, partition)
        assert self.engine is not None
        try:
            span = read.Span.parse(token, len(bound.keys))
        except ValueError:
            raise ConnectionFailed(f"connector {self.context.name!r}, {bound.where}: {token!r} is not a range "
                                   "this connector cut") from None
        try:
            with self.engine.connect() as conn:
                yield from read.full(conn, bound, page_size or self.config.get("page_size", 1000), None, span)
        except _DB_ERRORS as e:
            raise _stops(e)(f"connector {self.context.name!r}, {bound.where}: cannot read it: {_reason(e)}") from None

    def _readable(self, object: str, partition: str | None) -> Bound:
        """The object bound in ``partition``, for a read: an unknown one stops the pass."""
        try:
            return self._bind(object, partition)
        except ObjectError as e:
            raise ConnectionFailed(str(e)) from None

    def get(self, object: str, anchor: str | None = None, *, name: str | None = None,
            partition: str | None = None) -> Record | None:
        """The live row whose key is ``anchor`` (rows have no names)."""
        if anchor is None:
            return None
        bound = self._bind(object, partition)
        try:
            key = key_values(bound.keys, anchor)
        except NoSuchKey:
            return None
        found = self._select(bound, equals(bound.keys, key))
        return found[0] if found else None

    def lookup(self, object: str, values: Mapping[str, Any], *, partition: str | None = None) -> list[Record]:
        """Live rows whose columns equal ``values``, as the database compares them (its collation
        decides whether ``JSmith`` equals ``jsmith``)."""
        bound = self._bind(object, partition)
        if bound.spec.composite and bound.spec.key_attribute in values:
            try:
                key = key_values(bound.keys, str(values[bound.spec.key_attribute]))
            except NoSuchKey:
                return []
            values = {**{k: v for k, v in values.items() if k != bound.spec.key_attribute},
                      **dict(zip(bound.spec.key, key, strict=True))}
        unknown = [k for k in values if k not in bound.rows.c]
        if unknown:
            raise ObjectError(f"{bound.where} has no column {', '.join(sorted(unknown))}")
        return self._select(bound, *[bound.rows.c[k] == v for k, v in values.items()], limit=10)

    def _select(self, bound: Bound, *where: Any, limit: int = 2) -> list[Record]:
        assert self.engine is not None
        try:
            with self.engine.connect() as conn:
                query = sa.select(bound.rows).where(*where, *bound.live()).limit(limit)
                return read.records(conn, bound, [dict(r._mapping) for r in conn.execute(query)])
        except (exc.OperationalError, exc.InterfaceError) as e:
            raise _stops(e)(f"looking up {bound.where}: {_reason(e)}") from None
        except (exc.ProgrammingError, exc.DataError) as e:  # a value the column cannot hold matches nothing
            self.context.logger.debug("lookup in %s: %s", bound.where, _reason(e))
            return []

    # ---- writing ----------------------------------------------------------------------------

    def apply(self, operations: Sequence[Operation]) -> Iterable[Result]:
        """One transaction per ``batch_size`` operations, whose results are reported once it is
        committed: a confirmation the engine records is one the database has kept."""
        size = self.config.get("batch_size", BATCH_SIZE)
        for start in range(0, len(operations), size):
            yield from self._apply_batch(operations[start:start + size])

    def _apply_batch(self, operations: Sequence[Operation]) -> list[Result]:
        """Adds go in bulk (one executemany per shape); if the bulk insert is rejected, that group
        is retried one savepoint per operation so only the bad rows fail. Then deletes and updates
        in bulk (:meth:`_write_groups`), the same way; what is left, one by one in order."""
        assert self.engine is not None
        results: dict[int, Result] = {}
        try:
            with self.engine.begin() as conn:
                for group in self._add_groups(operations):
                    try:
                        with conn.begin_nested():
                            bound = self._bind(group[0].object, group[0].partition)
                            for op, anchor in zip(group, write.insert_many(conn, bound, group), strict=True):
                                results[op.id] = Result(op.id, True, anchor)
                    except write.Unsure:
                        pass  # generated keys that cannot be matched to their operations: one by one
                    except (exc.StatementError, ObjectError) as e:
                        if isinstance(e, exc.DBAPIError) and not about_the_object(e):
                            raise
                        # the per-operation path below finds which rows are bad
                if self.batched_writes:
                    self._write_groups(conn, operations, results)
                for op in operations:
                    if op.id not in results:
                        results[op.id] = self._apply_isolated(conn, op)
        except (exc.OperationalError, exc.InterfaceError, exc.DatabaseError) as e:
            if getattr(e, "connection_invalidated", False) or isinstance(e, exc.InterfaceError):
                raise SystemUnavailable(f"lost the database connection: {_reason(e)}") from None
            return [Result.failed(op, RetryableError(f"database busy or failing: {_reason(e)}")) for op in operations]
        return [results[op.id] for op in operations]

    def _add_groups(self, operations: Sequence[Operation]) -> list[list[Operation]]:
        """Table adds grouped by object, partition and attribute names: each group can be one executemany.
        Generated keys need ``INSERT ... RETURNING`` of many rows (SQLite 3.35, PostgreSQL, MariaDB
        10.5): on a database without it (MySQL) those adds go one by one, each reading its key back."""
        assert self.engine is not None
        returning = self.engine.dialect.insert_executemany_returning
        specs = self.specs()
        groups: dict[tuple[Any, ...], list[Operation]] = {}
        for op in operations:
            spec = specs.get(op.object)
            if op.kind == "add" and spec is not None and spec.table and "add" not in spec.statements \
                    and (returning or not spec.generated_key):
                key = (op.object, op.partition, tuple(sorted(op.attributes)), op.password is None)
                groups.setdefault(key, []).append(op)
        return list(groups.values())

    def _write_groups(self, conn: sa.Connection, operations: Sequence[Operation], results: dict[int, Result]) -> None:
        """Deletes, then updates, of one object (and, for updates, one set of columns) in bulk,
        each group in a savepoint; the child rows of every update in one step after them, in a
        savepoint around them all (a child row refused undoes the lot: the updates then go one by
        one, so the refused one fails whole). A group refused, or whose rowcount does not match, is
        rolled back and left for the one-by-one path, which says which operation is at fault."""
        deletes, updates = self._plans(operations)
        for bound, items in deletes:
            anchors = self._try(conn, lambda b=bound, i=items: write.delete_many(conn, b, i))
            for item, anchor in zip(items, anchors or (), strict=False):
                results[item.op.id] = Result(item.op.id, True, anchor)
        if not updates:
            return
        done: dict[int, str] = {}
        # undoes every update if a child row is refused (an error about the connection leaves
        # it to the transaction's rollback)
        outer = conn.begin_nested() if any(bound.children for bound, _ in updates) else None
        applied: dict[tuple[str, str | None], tuple[Bound, list[write.Planned]]] = {}
        for bound, items in updates:
            anchors = self._try(conn, lambda b=bound, i=items: write.update_many(conn, b, i, children=False))
            if anchors is not None:
                applied.setdefault((bound.spec.name, bound.partition), (bound, []))[1].extend(items)
                done.update((item.op.id, anchor) for item, anchor in zip(items, anchors, strict=True))
        for bound, items in applied.values():
            if bound.children and self._try(conn, lambda b=bound, i=items: write.children_many(conn, b, i)) is None:
                assert outer is not None
                outer.rollback()
                return
        if outer is not None:
            outer.commit()
        results.update((op_id, Result(op_id, True, anchor)) for op_id, anchor in done.items())

    def _try(self, conn: sa.Connection, step: Callable[[], Any]) -> Any:
        """``step``'s value, run in a savepoint; None (rolled back) when the database refused a
        row of it or it could not tell which operation missed its row."""
        try:
            with conn.begin_nested():
                value = step()
            return value if value is not None else True
        except write.Unsure:
            return None
        except (exc.StatementError, ObjectError) as e:
            if isinstance(e, exc.DBAPIError) and not about_the_object(e):
                raise
            return None

    def _plans(self, operations: Sequence[Operation]) -> tuple[list[tuple[Bound, list[write.Planned]]],
                                                               list[tuple[Bound, list[write.Planned]]]]:
        """The deletes and the updates (update, disable, set_password) that can go in bulk, grouped
        by object and partition (updates also by the columns they set), in order of their first
        operation. An operation goes alone (left out) when it needs its own statement, cannot be
        planned (:func:`write.plan`), or when another one of the batch may touch the same row."""
        specs = self.specs()
        planned: list[tuple[Bound, write.Planned]] = []
        seen: dict[tuple[Any, ...], int] = {}
        for op in operations:
            if op.kind == "add":
                continue
            spec = specs.get(op.object)
            try:
                bound = self._bind(op.object, op.partition) if spec is not None else None
            except ObjectError:
                bound = None
            item = write.plan(bound, op) if bound is not None and spec is not None and spec.table \
                and op.kind in ("update", "disable", "set_password", "delete") and op.kind in spec.writable_kinds \
                and op.kind not in spec.statements and not (op.kind == "set_password" and op.password is None) \
                else None
            same = (op.object, op.partition, _identity(bound, item, op))
            seen[same] = seen.get(same, 0) + 1
            if item is not None:
                assert bound is not None
                planned.append((bound, item))
        groups: dict[tuple[Any, ...], tuple[Bound, list[write.Planned]]] = {}
        for bound, item in planned:
            if seen[(item.op.object, item.op.partition, write.identity(item.key))] > 1:
                continue
            kind = "delete" if item.op.kind == "delete" else "update"
            group = (kind, item.op.object, item.op.partition, tuple(sorted(item.values)))
            groups.setdefault(group, (bound, []))[1].append(item)
        # a group of one gains nothing over the one-by-one path
        deletes = [g for k, g in groups.items() if k[0] == "delete" and len(g[1]) > 1]
        return deletes, [g for k, g in groups.items() if k[0] == "update" and len(g[1]) > 1]

    def _apply_isolated(self, conn: sa.Connection, op: Operation) -> Result:
        try:
            with conn.begin_nested():
                anchor = self._apply_one(conn, op)
            return Result(op.id, True, anchor)
        except exc.StatementError as e:
            if isinstance(e, exc.DBAPIError) and not about_the_object(e):
                raise
            if not isinstance(e, exc.DBAPIError):  # a value the driver cannot bind (a list into a BOOLEAN column)
                return Result.failed(op, ObjectError(f"bad value: {_reason(e)}"))
            return Result.failed(op, object_error(e, op.kind))
        except ObjectError as e:
            return Result.failed(op, e)

    def _apply_one(self, conn: sa.Connection, op: Operation) -> str | None:
        bound = self._bind(op.object, op.partition)
        spec = bound.spec
        if op.kind == "set_password" and op.password is None:
            raise ObjectError("set_password without a password")
        if op.kind in spec.statements:
            return write.by_statement(conn, bound, op)
        if bound.table is None or op.kind not in spec.writable_kinds:
            raise ObjectError(f"{bound.where} cannot {op.kind}: it has no table to write and no "
                              f"statements.{op.kind}")
        if op.kind == "add":
            return write.add(conn, bound, op)
        if op.kind in ("update", "disable", "set_password"):
            return write.update(conn, bound, op)
        if op.kind == "delete":
            return write.delete(conn, bound, op)
        raise ObjectError(f"the sql connector cannot {op.kind}")


def _identity(bound: Bound | None, item: write.Planned | None, op: Operation) -> tuple[str, ...]:
    """Which row an operation is about, as :func:`write.identity` compares keys."""
    if item is not None:
        return write.identity(item.key)
    if bound is not None and bound.table is not None:
        try:
            return write.identity(key_values(bound.table_keys, op.anchor))
        except NoSuchKey:
            pass
    return (str(op.anchor).casefold().rstrip(),)


def _statements(script: str) -> list[str]:
    """The statements of an init_sql script: split at ``;`` outside quotes and ``$$`` bodies."""
    out, current, quote = [], [], None
    lines = [line for line in script.splitlines() if not line.strip().startswith("--")]
    text, i = "\n".join(lines), 0
    while i < len(text):
        ch = text[i]
        if quote:
            if text.startswith(quote, i):
                current.append(quote)
                i += len(quote)
                quote = None
                continue
        elif text.startswith("$$", i):
            quote = "$$"
            current.append("$$")
            i += 2
            continue
        elif ch in "'\"":
            quote = ch
        elif ch == ";":
            out.append("".join(current))
            current = []
            i += 1
            continue
        current.append(ch)
        i += 1
    out.append("".join(current))
    return [s.strip() for s in out if s.strip()]
