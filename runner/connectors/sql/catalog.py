"""``discover`` and ``server_info``: what the database's catalogue says, for ``provision discover``
and ``provision validate --online``.

Configured objects are described completely (their columns, their child-table attributes, the
types as the database names them in ``syntax``); the database's other tables and views follow,
marked as not configured, so a person writing a mapping sees what there is to map.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from runner.connectors.base import AttributeInfo, ObjectInfo
from runner.connectors.sql.bound import Bound
from runner.connectors.sql.config import BATCH_SIZE

MAX_OTHER_TABLES = 200  # enough to find one's way; a warehouse with thousands is cut short


def type_name(column_type: sa.types.TypeEngine) -> str:
    """The interface's coarse type of a column type."""
    if isinstance(column_type, sa.Boolean):
        return "boolean"
    if isinstance(column_type, sa.Integer):
        return "integer"
    if isinstance(column_type, sa.Numeric | sa.Float):
        return "number"
    if isinstance(column_type, sa.DateTime):
        return "datetime"
    if isinstance(column_type, sa.Date):
        return "date"
    if isinstance(column_type, sa.LargeBinary | sa.types._Binary):
        return "binary"
    return "string"


def _syntax(column_type: sa.types.TypeEngine, dialect: sa.Dialect) -> str | None:
    if isinstance(column_type, sa.types.NullType):
        return None
    try:
        return column_type.compile(dialect=dialect)
    except Exception:  # a type only the reflecting dialect can print
        return str(column_type.__class__.__name__)


def _column(column: sa.ColumnElement, dialect: sa.Dialect, *, key: bool = False, generated: bool = False,
            writable: bool = True) -> AttributeInfo:
    nullable = getattr(column, "nullable", True)
    has_default = getattr(column, "server_default", None) is not None or getattr(column, "default", None) is not None
    return AttributeInfo(
        name=column.name, type=type_name(column.type), syntax=_syntax(column.type, dialect),
        required=bool(writable and not nullable and not has_default and not generated),
        read_only=not writable or generated,
        description="the key (anchor)" if key else None,
    )


def describe(engine: sa.Engine, bounds: Sequence[Bound], partitions: Sequence[str]) -> list[ObjectInfo]:
    dialect = engine.dialect
    infos: dict[str, ObjectInfo] = {}
    used: set[tuple[str | None, str]] = set()
    for bound in bounds:
        spec = bound.spec
        if spec.name in infos:
            continue
        writable = bound.table is not None and bool(spec.writable_kinds - set(spec.statements))
        attributes = []
        for column in bound.rows.c:
            if bound.table is not None and column.name in bound.table.c:
                column = bound.table.c[column.name]
            attributes.append(_column(column, dialect, key=column.name in spec.key,
                                      generated=spec.generated_key and column.name in spec.key,
                                      writable=writable or bool(spec.statements)))
        if spec.composite:
            attributes.append(AttributeInfo(spec.key_attribute, description="the anchor: the key columns joined by /"))
        for attr, (_, _, value) in bound.children.items():
            attributes.append(AttributeInfo(attr, type=type_name(value.type), multi_valued=True,
                                            syntax=_syntax(value.type, dialect),
                                            description=f"values in {value.table.name}.{value.name}"))
        if spec.password and not any(a.name == spec.password for a in attributes):
            attributes.append(AttributeInfo(spec.password, description="password column"))
        where = f"query ({spec.query.strip()[:60]})" if spec.query else f"table {spec.table}"
        infos[spec.name] = ObjectInfo(spec.name, attributes, tuple(partitions), complete=True, description=where)
        for table in [bound.table, *[c[0] for c in bound.children.values()], bound.changes]:
            if table is not None:
                used.add((table.schema, table.name))
    inspector = sa.inspect(engine)
    others: list[ObjectInfo] = []
    for schema in list(partitions) or [None]:
        names = [(n, "table") for n in inspector.get_table_names(schema=schema)]
        names += [(n, "view") for n in inspector.get_view_names(schema=schema)]
        for name, kind in sorted(names):
            if (schema, name) in used or name in infos or len(others) >= MAX_OTHER_TABLES:
                continue
            columns = inspector.get_columns(name, schema=schema)
            attributes = [AttributeInfo(c["name"], type=type_name(c["type"]), syntax=_syntax(c["type"], dialect),
                                        required=not c.get("nullable", True) and c.get("default") is None
                                        and c.get("autoincrement") is not True)
                          for c in columns]
            label = f"{schema}.{name}" if schema else name
            others.append(ObjectInfo(label, attributes, (schema,) if schema else (), complete=True,
                                     description=f"{kind}, not configured: add it under objects: to use it"))
    return [*infos.values(), *others]


def server(engine: sa.Engine, config: Mapping[str, Any]) -> dict[str, Any]:
    dialect = engine.dialect
    with engine.connect():
        pass  # the version is known once a connection was made
    inspector = sa.inspect(engine)
    version = dialect.server_version_info or ()
    try:
        schemas = inspector.get_schema_names()
    except NotImplementedError:
        schemas = []
    return {
        "dialect": "mariadb" if getattr(dialect, "is_mariadb", False) else dialect.name,
        "driver": dialect.driver,
        "server_version": ".".join(str(v) for v in version),
        "default_schema": dialect.default_schema_name,
        "schemas": [s for s in schemas if s not in ("information_schema", "pg_catalog", "pg_toast",
                                                    "performance_schema", "mysql", "sys")],
        "partitions": list(config.get("partitions") or []),
        "features": {
            "insert_returning": bool(dialect.insert_returning),
            "bulk_insert_returning": bool(dialect.insert_executemany_returning),
            "server_side_cursors": bool(dialect.supports_server_side_cursors),
            "stored_procedures": dialect.name != "sqlite",
            "savepoints": True,
        },
        "limits": {"max_identifier_length": dialect.max_identifier_length,
                   "page_size": config.get("page_size", 1000), "batch_size": config.get("batch_size", BATCH_SIZE)},
    }
