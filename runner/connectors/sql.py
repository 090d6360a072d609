"""SQL databases through SQLAlchemy, table mode: one object = one table (+ child tables).

Configuration::

    app:
      type: sql
      url: sqlite:///out/app.db          # relative SQLite paths resolve from the manifest's folder
      init_sql: app-schema.sql           # optional: idempotent DDL run on open (CREATE ... IF NOT EXISTS)
      objects:
        users:  {table: users, key: id, generated_key: true}
        groups: {table: groups, key: id, generated_key: true,
                 multi_valued: {members: {table: group_members, key: group_id, value: user_id}}}

A multi-valued attribute lives in a child table of (owner key, value) rows. The anchor of an
object is its key column's value, as a string; a generated key is read back after the insert.

Writes: each ``apply`` batch runs in one transaction with a savepoint per operation, so one bad
row fails alone, and results are reported only after the commit: a confirmation the engine
records is one the database has kept.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc

from runner.connectors.base import (
    AlreadyExists,
    Capabilities,
    ConfigurationError,
    ConnectionFailed,
    Connector,
    NotFound,
    ObjectError,
    Operation,
    Page,
    Record,
    Result,
    RetryableError,
)
from runner.sqlutil import driver_reason as _reason
from runner.sqlutil import shown_url, sqlalchemy_url, sqlite_savepoints

OBJECT_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["table", "key"],
    "properties": {
        "table": {"type": "string", "minLength": 1},
        "schema": {"type": "string", "minLength": 1},
        "key": {"type": "string", "minLength": 1, "description": "column holding the anchor"},
        "generated_key": {"type": "boolean", "default": False,
                          "description": "the database generates the key (autoincrement, identity)"},
        "password": {"type": "string", "minLength": 1,
                     "description": "column that receives passwords (store a hash there if the application "
                                    "expects one: provision writes what the mapping gives)"},
        "multi_valued": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "additionalProperties": False,
                "required": ["table", "key", "value"],
                "properties": {
                    "table": {"type": "string", "minLength": 1},
                    "key": {"type": "string", "minLength": 1},
                    "value": {"type": "string", "minLength": 1},
                },
            },
        },
    },
}


def plain(value: Any) -> Any:
    """A database value as JSON-friendly data, so it can be hashed, compared and stored."""
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    return value


class SqlConnector(Connector):
    type_name = "sql"
    config_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["url", "objects"],
        "properties": {
            "type": {"const": "sql"},
            "url": {"type": "string", "minLength": 1, "description": "SQLAlchemy database URL"},
            "init_sql": {"type": "string", "minLength": 1},
            "create": {"type": "boolean", "default": False,
                       "description": "a SQLite file that does not exist may be created (with its folders); "
                                      "otherwise opening it fails, so a mistyped path provisions nobody"},
            "objects": {"type": "object", "minProperties": 1, "additionalProperties": OBJECT_SCHEMA},
            "page_size": {"type": "integer", "minimum": 1, "default": 1000},
            "batch_size": {"type": "integer", "minimum": 1, "default": 500,
                           "description": "operations per transaction: results are reported after each commit"},
            "concurrency": {"type": "integer", "minimum": 1, "default": 1},
        },
    }

    engine: sa.Engine | None = None

    def capabilities(self, object: str | None = None) -> Capabilities:
        specs = self.config.get("objects", {})
        chosen = [specs[object]] if object in specs else list(specs.values())
        passwords = any(spec.get("password") for spec in chosen)
        generated = any(spec.get("generated_key") for spec in chosen)
        return Capabilities(
            operations=frozenset({"add", "update", "disable", "delete"} | ({"set_password"} if passwords else set())),
            password_in_first_pass=passwords,
            max_concurrency=1 if self._is_sqlite() else self.config.get("concurrency", 1),
            generated_anchor=generated,
            # a key the mapping supplies finds the row again; a generated one does not
            correlation=(chosen[0]["key"],) if len(chosen) == 1 and not generated else (),
        )

    def object_names(self) -> list[str]:
        return sorted(self.config["objects"])

    def check(self) -> list[tuple[tuple[str | int, ...], str]]:
        problems: list[tuple[tuple[str | int, ...], str]] = []
        try:
            sa.make_url(self.config["url"])
        except exc.ArgumentError:
            problems.append((("url",), "not a SQLAlchemy URL (e.g. sqlite:///app.db, postgresql+psycopg://host/db)"))
        init_sql = self.config.get("init_sql")
        if init_sql and not (self.context.base_dir / init_sql).is_file():
            problems.append((("init_sql",), f"file not found: {init_sql} (relative to the manifest)"))
        return problems

    def _is_sqlite(self) -> bool:
        return self.config["url"].startswith("sqlite")

    # ---- lifecycle --------------------------------------------------------------------------

    def open(self) -> None:
        url = sqlalchemy_url(self.config["url"], self.context.base_dir)
        shown = shown_url(url)
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:") \
                and not url.database.startswith("file:"):
            file = Path(url.database)
            if not file.exists():
                if not self.config.get("create", False):
                    raise ConnectionFailed(
                        f"{shown}: the database file {file} does not exist: check the path, or set create: true "
                        f"on connector {self.context.name!r} if provision should create it")
                try:
                    file.parent.mkdir(parents=True, exist_ok=True)
                except OSError as e:
                    raise ConnectionFailed(f"{shown}: cannot create the folder {file.parent}: {e.strerror}") from None
        try:
            self.engine = sa.create_engine(url)
            sqlite_savepoints(self.engine)
            with self.engine.begin() as conn:
                if self.config.get("init_sql"):
                    for statement in _statements((self.context.base_dir / self.config["init_sql"]).read_text()):
                        conn.exec_driver_sql(statement)
            self.tables: dict[str, sa.Table] = {}
            metadata = sa.MetaData()
            for name, spec in self.config["objects"].items():
                self.tables[name] = table = self._reflect(metadata, spec["table"], spec.get("schema"))
                if spec["key"] not in table.c:
                    raise ConfigurationError(f"table {spec['table']} has no key column {spec['key']!r}")
                # a key is never null; saying so lets SQLAlchemy return generated keys in row order
                table.c[spec["key"]].nullable = False
                for child in spec.get("multi_valued", {}).values():
                    self.tables[child["table"]] = self._reflect(metadata, child["table"], spec.get("schema"))
        except exc.NoSuchTableError as e:
            raise ConnectionFailed(f"{shown}: table {e} does not exist; create it or add init_sql") from None
        except (exc.OperationalError, exc.InterfaceError) as e:
            raise ConnectionFailed(f"cannot connect to {shown}: {_reason(e)}") from None
        except exc.ProgrammingError as e:
            raise ConfigurationError(f"{shown}: {_reason(e)}") from None

    def _reflect(self, metadata: sa.MetaData, table: str, schema: str | None) -> sa.Table:
        assert self.engine is not None
        return sa.Table(table, metadata, schema=schema, autoload_with=self.engine)

    def close(self) -> None:
        if self.engine is not None:
            self.engine.dispose()
            self.engine = None

    # ---- reading ----------------------------------------------------------------------------

    def ping(self) -> None:
        assert self.engine is not None
        try:
            with self.engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
        except (exc.OperationalError, exc.InterfaceError) as e:
            raise ConnectionFailed(f"the database does not answer: {_reason(e)}") from None

    def read(self, object: str, partition: str | None = None, watermark: str | None = None, *,
             attributes: Sequence[str] | None = None, page_size: int | None = None) -> Iterator[Page]:
        try:
            yield from self._read(object, page_size or self.config.get("page_size", 1000))
        except (exc.OperationalError, exc.InterfaceError, exc.ProgrammingError) as e:
            raise ConnectionFailed(f"reading {object!r}: {_reason(e)}") from None

    def get(self, object: str, anchor: str | None = None, *, name: str | None = None,
            partition: str | None = None) -> Record | None:
        """The row whose key is ``anchor`` (rows have no names)."""
        if anchor is None:
            return None
        spec = self.config["objects"][object]
        key = self.tables[object].c[spec["key"]]
        try:
            typed = _typed_key(key, anchor)
        except _NoSuchKey:
            return None
        found = self._select(object, key == typed)
        return found[0] if found else None

    def lookup(self, object: str, values: Mapping[str, Any], *, partition: str | None = None) -> list[Record]:
        """Rows whose columns equal ``values``, as the database compares them (its collation decides
        whether ``JSmith`` equals ``jsmith``)."""
        table = self.tables[object]
        unknown = [k for k in values if k not in table.c]
        if unknown:
            raise ObjectError(f"table {table.name} has no column {', '.join(sorted(unknown))}")
        return self._select(object, *[table.c[k] == v for k, v in values.items()], limit=10)

    def _select(self, object: str, *where: Any, limit: int = 2) -> list[Record]:
        spec = self.config["objects"][object]
        table = self.tables[object]
        assert self.engine is not None
        try:
            with self.engine.connect() as conn:
                rows = [dict(r._mapping) for r in conn.execute(sa.select(table).where(*where).limit(limit))]
                return self._records(conn, spec, rows)
        except (exc.OperationalError, exc.InterfaceError) as e:
            raise ConnectionFailed(f"looking up {object!r}: {_reason(e)}") from None
        except (exc.ProgrammingError, exc.DataError) as e:  # a value the column cannot hold matches nothing
            self.context.logger.debug("lookup in %s: %s", object, _reason(e))
            return []

    def _read(self, object: str, page_size: int) -> Iterator[Page]:
        spec = self.config["objects"][object]
        table = self.tables[object]
        key = table.c[spec["key"]]
        last: Any = None
        assert self.engine is not None
        with self.engine.connect() as conn:
            while True:
                query = sa.select(table).order_by(key).limit(page_size)
                if last is not None:
                    query = query.where(key > last)
                rows = [dict(r._mapping) for r in conn.execute(query)]
                if not rows:
                    return
                last = rows[-1][spec["key"]]
                yield Page(self._records(conn, spec, rows))

    def _records(self, conn: sa.Connection, spec: dict[str, Any], rows: list[dict[str, Any]]) -> list[Record]:
        keys = [r[spec["key"]] for r in rows]
        children = {attr: self._children(conn, c, keys) for attr, c in spec.get("multi_valued", {}).items()}
        records = []
        for row in rows:
            attributes = {k: plain(v) for k, v in row.items()}
            for attr, values in children.items():
                attributes[attr] = sorted(values.get(row[spec["key"]], []), key=str)
            records.append(Record(attributes, anchor=str(row[spec["key"]])))
        return records

    def _children(self, conn: sa.Connection, child: dict[str, str], keys: list[Any]) -> dict[Any, list[Any]]:
        table = self.tables[child["table"]]
        found: dict[Any, list[Any]] = {}
        query = sa.select(table.c[child["key"]], table.c[child["value"]]).where(table.c[child["key"]].in_(keys))
        for owner, value in conn.execute(query):
            found.setdefault(owner, []).append(plain(value))
        return found

    # ---- writing ----------------------------------------------------------------------------

    def apply(self, operations: Sequence[Operation]) -> Iterable[Result]:
        """One transaction per ``batch_size`` operations, whose results are reported once it is
        committed: a confirmation the engine records is one the database has kept."""
        size = self.config.get("batch_size", 500)
        for start in range(0, len(operations), size):
            yield from self._apply_batch(operations[start:start + size])

    def _apply_batch(self, operations: Sequence[Operation]) -> list[Result]:
        """Adds go in bulk (one executemany per shape); if the bulk insert is rejected, that group
        is retried one savepoint per operation so only the bad rows fail."""
        assert self.engine is not None
        results: dict[int, Result] = {}
        try:
            with self.engine.begin() as conn:
                for group in _add_groups(operations):
                    try:
                        with conn.begin_nested():
                            for op, anchor in zip(group, self._insert_many(conn, group), strict=True):
                                results[op.id] = Result(op.id, True, anchor)
                    except (exc.IntegrityError, exc.DataError, exc.ProgrammingError, exc.StatementError,
                            ObjectError):
                        pass  # the per-operation path below finds which rows are bad
                for op in operations:
                    if op.id not in results:
                        results[op.id] = self._apply_isolated(conn, op)
        except (exc.OperationalError, exc.InterfaceError) as e:
            if getattr(e, "connection_invalidated", False):
                raise ConnectionFailed(f"lost the database connection: {_reason(e)}") from None
            return [Result.failed(op, RetryableError(f"database busy or failing: {_reason(e)}")) for op in operations]
        return [results[op.id] for op in operations]

    def _apply_isolated(self, conn: sa.Connection, op: Operation) -> Result:
        try:
            with conn.begin_nested():
                anchor = self._apply_one(conn, op)
            return Result(op.id, True, anchor)
        except exc.IntegrityError as e:
            kind = AlreadyExists if op.kind == "add" and _unique_violation(e) else ObjectError
            return Result.failed(op, kind(f"rejected by the database: {_reason(e)}"))
        except (exc.DataError, exc.ProgrammingError) as e:
            return Result.failed(op, ObjectError(f"bad value: {_reason(e)}"))
        except exc.StatementError as e:  # a value the driver cannot bind (a list into a BOOLEAN column)
            if isinstance(e, exc.OperationalError | exc.InterfaceError):
                raise
            return Result.failed(op, ObjectError(f"bad value: {_reason(e)}"))
        except ObjectError as e:
            return Result.failed(op, e)

    def _columns(self, spec: dict[str, Any], table: sa.Table, op: Operation) -> dict[str, Any]:
        """The row's column values: scalar attributes, plus the password in its configured column."""
        scalars = {k: v for k, v in op.attributes.items() if k not in spec.get("multi_valued", {})}
        if op.password is not None:
            if not spec.get("password"):
                raise ObjectError(f"object {op.object!r} has no password column: set password: <column> "
                                  "in its block under the sql connector's objects")
            scalars[spec["password"]] = op.password
        unknown = [k for k in scalars if k not in table.c]
        if unknown:
            raise ObjectError(f"table {table.name} has no column {', '.join(sorted(unknown))}")
        return scalars

    def _insert_many(self, conn: sa.Connection, ops: Sequence[Operation]) -> list[str]:
        """Insert adds of one object and one attribute set with a single executemany."""
        spec = self.config["objects"][ops[0].object]
        table = self.tables[ops[0].object]
        children = spec.get("multi_valued", {})
        rows = [self._columns(spec, table, op) for op in ops]
        if spec.get("generated_key"):
            key = table.c[spec["key"]]
            result = conn.execute(table.insert().returning(key, sort_by_parameter_order=True), rows)
            anchors = [row[0] for row in result]
        else:
            conn.execute(table.insert(), rows)
            anchors = [row.get(spec["key"]) for row in rows]
            if any(a is None for a in anchors):
                raise ObjectError(f"no value for key column {spec['key']!r}")
        for attr, child in children.items():
            values = [(a, v) for a, op in zip(anchors, ops, strict=True) for v in op.attributes.get(attr) or []]
            if values:
                conn.execute(self.tables[child["table"]].insert(),
                             [{child["key"]: a, child["value"]: v} for a, v in values])
        return [str(a) for a in anchors]

    def _apply_one(self, conn: sa.Connection, op: Operation) -> str | None:
        spec = self.config["objects"].get(op.object)
        if spec is None:
            raise ObjectError(f"object {op.object!r} is not configured for this connector")
        table = self.tables[op.object]
        key = table.c[spec["key"]]
        children = spec.get("multi_valued", {})
        if op.kind == "set_password" and op.password is None:
            raise ObjectError("set_password without a password")
        scalars = self._columns(spec, table, op)
        if op.kind == "add":
            result = conn.execute(table.insert().values(**scalars))
            anchor_value = result.inserted_primary_key[0] if spec.get("generated_key") else scalars.get(spec["key"])
            if anchor_value is None:
                raise ObjectError(f"no value for key column {spec['key']!r}: map it, or set generated_key")
            for attr, child in children.items():
                self._insert_children(conn, child, anchor_value, op.attributes.get(attr) or [])
            return str(anchor_value)
        try:
            anchor_value = _typed_key(key, op.anchor)
        except _NoSuchKey:
            raise NotFound(f"{table.name} {spec['key']}={op.anchor} is not there") from None
        if op.kind in ("update", "disable", "set_password"):
            anchor = op.anchor
            if scalars:
                result = conn.execute(table.update().where(key == sa.bindparam("_provision_key")),
                                      {**scalars, "_provision_key": anchor_value})
                if result.rowcount == 0:
                    raise NotFound(f"{table.name} {spec['key']}={op.anchor} is not there")
                if spec["key"] in scalars:
                    anchor = str(scalars[spec["key"]])
            elif not conn.execute(sa.select(key).where(key == anchor_value)).first():
                raise NotFound(f"{table.name} {spec['key']}={op.anchor} is not there")
            for attr, child in children.items():
                ctable = self.tables[child["table"]]
                owner = ctable.c[child["key"]]
                if attr in op.attributes:
                    conn.execute(ctable.delete().where(owner == anchor_value))
                    self._insert_children(conn, child, anchor_value, op.attributes[attr] or [])
                removed = list(op.remove_values.get(attr, ()))
                if removed:
                    conn.execute(ctable.delete().where(owner == anchor_value, ctable.c[child["value"]].in_(removed)))
                added = list(op.add_values.get(attr, ()))
                if added:  # adding a value that is already there (drift, a replay) is not an error
                    value = ctable.c[child["value"]]
                    there = {plain(v) for v in conn.execute(sa.select(value).where(owner == anchor_value,
                                                                                   value.in_(added))).scalars()}
                    added = [v for v in dict.fromkeys(added) if plain(v) not in there]
                self._insert_children(conn, child, anchor_value, added)
            return anchor
        if op.kind == "delete":
            for child in children.values():
                ctable = self.tables[child["table"]]
                conn.execute(ctable.delete().where(ctable.c[child["key"]] == anchor_value))
            result = conn.execute(table.delete().where(key == anchor_value))
            if result.rowcount == 0:
                raise NotFound(f"{table.name} {spec['key']}={op.anchor} is not there")
            return op.anchor
        raise ObjectError(f"the sql connector cannot {op.kind}")

    def _insert_children(self, conn: sa.Connection, child: dict[str, str], owner: Any, values: Sequence[Any]) -> None:
        if values:
            ctable = self.tables[child["table"]]
            conn.execute(ctable.insert(), [{child["key"]: owner, child["value"]: v} for v in values])


def _unique_violation(error: exc.IntegrityError) -> bool:
    """A duplicate key, as each driver says it: SQLSTATE 23505 (PostgreSQL), 1062 (MySQL/MariaDB),
    'UNIQUE constraint failed' (SQLite)."""
    orig = error.orig
    if getattr(orig, "sqlstate", None) == "23505":
        return True
    args = getattr(orig, "args", ())
    if args and args[0] == 1062:
        return True
    return "UNIQUE constraint failed" in str(orig)


def _add_groups(operations: Sequence[Operation]) -> list[list[Operation]]:
    """Adds grouped by object and attribute names: each group can be one executemany."""
    groups: dict[tuple[str, tuple[str, ...], bool], list[Operation]] = {}
    for op in operations:
        if op.kind == "add":
            groups.setdefault((op.object, tuple(sorted(op.attributes)), op.password is None), []).append(op)
    return list(groups.values())


class _NoSuchKey(Exception):
    """An anchor that cannot be a value of the key column (text for an integer key): no such row."""


def _typed_key(column: sa.Column, anchor: str | None) -> Any:
    """Anchors travel as strings; integer key columns want integers back (exactly: '1abc' is not 1)."""
    if anchor is not None and isinstance(column.type, sa.Integer):
        if not anchor.strip().lstrip("-").isdigit():
            raise _NoSuchKey(anchor)
        return int(anchor)
    return anchor


def _statements(script: str) -> list[str]:
    lines = [line for line in script.splitlines() if not line.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
