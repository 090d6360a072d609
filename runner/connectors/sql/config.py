"""The sql connector's configuration: its JSON Schema, and the typed view of one object's block.

The schema is the contract a manifest author reads (``provision validate`` reports every problem
against it); :class:`ObjectSpec` is what the rest of the package trusts once it passed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from runner import durations
from runner.connectors.base import ConfigurationError

_NAME = {"type": "string", "minLength": 1}
_COLUMNS = {"oneOf": [_NAME, {"type": "array", "items": _NAME, "minItems": 1}]}
_DURATION = {"oneOf": [{"type": "integer", "minimum": 0},
                       {"type": "string", "pattern": r"^\s*\d+\s*(s|m|h|d)\s*$"}]}
# operations per target transaction: a commit costs the database a sync to disk (a SQLite file:
# several), and at 500 they were a tenth of an initial cycle; results are reported after each commit
BATCH_SIZE = 2000
STATEMENT_KINDS = ("add", "update", "disable", "delete", "set_password")

CHILD_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["table", "key", "value"],
    "properties": {
        "table": _NAME,
        "key": {**_COLUMNS, "description": "column(s) holding the owner's key, in the order of the owner's key"},
        "value": _NAME,
    },
}

DELTA_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "description": "How read finds what changed since the last run: a watermark column, or a change table.",
    "properties": {
        "watermark": {**_NAME, "description": "a column that grows on every change: a timestamp (or ISO 8601 "
                                             "text) or an increasing number"},
        "overlap": {**_DURATION, "description": "how far behind the last watermark each delta read starts "
                                                "(seconds or 30s/5m/2h/1d for a timestamp, units for a number or "
                                                "sequence), so rows committed late are not missed; rows already "
                                                "read are recognised and not imported twice"},
        "changes": {
            "type": "object",
            "additionalProperties": False,
            "required": ["table"],
            "description": "a change table a trigger fills: one row per add, modify or delete",
            "properties": {
                "table": _NAME,
                "schema": _NAME,
                "sequence": {**_NAME, "default": "seq"},
                "anchor": {**_NAME, "default": "anchor"},
                "change_type": {**_NAME, "default": "change_type"},
                "object_column": {**_NAME, "description": "column naming the changed table (several tables "
                                                          "share one change table)"},
                "object_value": {**_NAME, "description": "value of object_column for this object "
                                                         "(default: its table name)"},
            },
        },
    },
    "oneOf": [{"required": ["watermark"], "not": {"required": ["changes"]}},
              {"required": ["changes"], "not": {"required": ["watermark"]}}],
}

OBJECT_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["key"],
    "anyOf": [{"required": ["table"]}, {"required": ["query"]}],
    "properties": {
        "table": {**_NAME, "description": "the table or view the object lives in"},
        "query": {**_NAME, "description": "a custom SELECT the object is read from (a join, a filter); "
                                          "{partition} stands for the partition's quoted schema name"},
        "schema": _NAME,
        "key": {**_COLUMNS, "description": "column(s) holding the anchor"},
        "key_attribute": {**_NAME, "default": "_anchor",
                          "description": "with a key of several columns: the attribute holding the anchor "
                                         "(the parts joined by '/'); name it in source.anchor"},
        "generated_key": {"type": "boolean", "default": False,
                          "description": "the database generates the key (autoincrement, identity)"},
        "password": {**_NAME, "description": "column that receives passwords (store a hash there if the application "
                                             "expects one: provision writes what the mapping gives)"},
        "soft_delete": {
            "type": "object",
            "additionalProperties": False,
            "required": ["column", "value"],
            "description": "a delete sets a column instead of removing the row; such rows read as deleted",
            "properties": {"column": _NAME, "value": {"type": ["string", "integer", "boolean"]},
                           "live": {"type": ["string", "integer", "boolean", "null"], "default": None,
                                    "description": "what the column holds on a live row (an add of a deleted "
                                                   "row's key brings it back with this value)"}},
        },
        "multi_valued": {"type": "object", "additionalProperties": CHILD_SCHEMA},
        "statements": {
            "type": "object",
            "additionalProperties": False,
            "description": "custom SQL (a statement, or CALL of a stored procedure) per operation; values "
                           "are bound as :attribute parameters (:_anchor, :_password, :_partition too), never "
                           "pasted into the text",
            "properties": {kind: _NAME for kind in STATEMENT_KINDS},
        },
        "delta": DELTA_SCHEMA,
    },
}

CONFIG_SCHEMA = {
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
        "partitions": {"type": "array", "minItems": 1, "uniqueItems": True,
                       "items": {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_$]*$"},
                       "description": "schemas (PostgreSQL), databases (MariaDB) or attached files (SQLite) "
                                      "that each hold the same tables"},
        "attach": {"type": "object", "additionalProperties": {"type": "string", "minLength": 1},
                   "propertyNames": {"pattern": r"^[A-Za-z_][A-Za-z0-9_]*$"},
                   "description": "SQLite only: files attached under a schema name (partitions of a SQLite "
                                  "database), relative to the manifest"},
        "page_size": {"type": "integer", "minimum": 1, "default": 1000},
        "batch_size": {"type": "integer", "minimum": 1, "default": BATCH_SIZE,
                       "description": "operations per transaction: results are reported after each commit"},
        "concurrency": {"type": "integer", "minimum": 1, "default": 1},
        "connect_timeout": {"type": "integer", "minimum": 1, "default": 10,
                            "description": "seconds to wait for a database server to answer"},
    },
}


@dataclass(frozen=True)
class Child:
    """A multi-valued attribute kept in a child table of (owner key..., value) rows."""

    table: str
    key: tuple[str, ...]
    value: str


@dataclass(frozen=True)
class Changes:
    """A change table filled by triggers: (sequence, anchor, change type[, object]) rows."""

    table: str
    schema: str | None
    sequence: str
    anchor: str
    change_type: str
    object_column: str | None
    object_value: str


@dataclass(frozen=True)
class Delta:
    watermark: str | None
    changes: Changes | None
    overlap: float | None  # None: the default for the kind of watermark


@dataclass(frozen=True)
class SoftDelete:
    column: str
    value: Any
    live: Any


@dataclass(frozen=True)
class ObjectSpec:
    """One object's block, typed: where its rows are, how they are keyed, read and written."""

    name: str
    table: str | None
    query: str | None
    schema: str | None
    key: tuple[str, ...]
    key_attribute: str
    generated_key: bool = False
    password: str | None = None
    soft_delete: SoftDelete | None = None
    children: Mapping[str, Child] = field(default_factory=dict)
    statements: Mapping[str, str] = field(default_factory=dict)
    delta: Delta | None = None

    @property
    def composite(self) -> bool:
        return len(self.key) > 1

    @property
    def writable_kinds(self) -> set[str]:
        """The operation kinds this object can take: table writes need a table, statements their kind."""
        kinds = set(self.statements)
        if self.table is not None:
            kinds |= {"add", "update", "disable", "delete"}
            if self.password:
                kinds.add("set_password")
        if "set_password" in kinds and not (self.password or "set_password" in self.statements):
            kinds.discard("set_password")
        return kinds


def columns(value: str | list[str]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


def object_spec(name: str, block: Mapping[str, Any]) -> ObjectSpec:
    """The typed form of one validated ``objects:`` entry."""
    delta = None
    if "delta" in block:
        d = block["delta"]
        changes = None
        if "changes" in d:
            c = d["changes"]
            changes = Changes(c["table"], c.get("schema"), c.get("sequence", "seq"), c.get("anchor", "anchor"),
                              c.get("change_type", "change_type"), c.get("object_column"),
                              c.get("object_value", block.get("table", name)))
        delta = Delta(d.get("watermark"), changes, seconds(d["overlap"]) if "overlap" in d else None)
    soft = block.get("soft_delete")
    return ObjectSpec(
        name=name, table=block.get("table"), query=block.get("query"), schema=block.get("schema"),
        key=columns(block["key"]), key_attribute=block.get("key_attribute", "_anchor"),
        generated_key=bool(block.get("generated_key", False)), password=block.get("password"),
        soft_delete=SoftDelete(soft["column"], soft["value"], soft.get("live")) if soft else None,
        children={attr: Child(c["table"], columns(c["key"]), c["value"])
                  for attr, c in (block.get("multi_valued") or {}).items()},
        statements=dict(block.get("statements") or {}), delta=delta,
    )


def seconds(value: int | str) -> float:
    """An overlap as a number: an integer as it is, ``30s``/``5m``/``2h``/``1d`` in seconds."""
    if isinstance(value, int):
        return value
    found = durations.seconds(value)
    if found is None:
        raise ConfigurationError(f"overlap {value!r}: write a number, or a duration such as 30s, 5m, 2h, 1d")
    return found
