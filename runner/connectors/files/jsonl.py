"""JSON Lines files (one JSON object a line), as a target and as a source.

Configuration::

    feed:
      type: jsonl
      path: out/                 # folder of the files, relative to the manifest
      mode: snapshot             # or changes (docs/files.md)
      objects:
        users: {file: users.jsonl, key: user_name}   # key: the attribute that identifies an object

As a source, an object is read whole on every run (``source.anchor`` names the field that
identifies a line's object; whoever disappeared from the file was deleted). A line that is not a
JSON object stops the read before anything is marked deleted, naming the file and the line.

As a target, a snapshot holds one object a line, the key first and the other attributes in name
order, objects in key order, null values left out; a change record is
``{"op": "add|modify|delete", "id": KEY, "key": OPERATION_KEY, "time": ..., "object": ...,
"attributes": {...}}`` with the whole object after the change (``changed`` names what changed).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, BinaryIO

from runner.connectors.base import Capabilities, ConnectionFailed, Operation, Page, Record
from runner.connectors.files.connector import (
    COMMON_PROPERTIES,
    DEFAULT_PAGE_SIZE,
    OBJECT_COMMON,
    FileObject,
    FileTarget,
    change_time,
)
from runner.connectors.files.image import Change, Entry, Rules, without_nulls

OPERATIONS = frozenset({"add", "update", "disable", "delete"})


class KeyedRules(Rules):
    """Objects identified by the value of one attribute (the key); values as JSON holds them."""

    def __init__(self, key: str | None):
        self.key = key

    def anchor_of(self, attributes: Mapping[str, Any], name: str | None) -> str | None:
        value = attributes.get(self.key) if self.key else None
        if value is None or value == "" or isinstance(value, list | dict):
            return None
        return str(value)

    def problem(self, entry: Entry) -> str | None:
        for name, value in entry.attributes.items():
            try:
                json.dumps(value, allow_nan=False)
            except (TypeError, ValueError):
                return f"attribute {name!r} holds a value JSON cannot write ({type(value).__name__})"
        return None


class JsonlConnector(FileTarget):
    """JSON Lines files: a source read whole, or a target written as a snapshot or change records."""

    type_name = "jsonl"
    interface_version = 2
    suffix = ".jsonl"
    format_label = "JSON lines"
    config_schema = {
        "description": "JSON Lines files: one JSON object a line, read whole as a source or written as a target (docs/files.md)",
        "type": "object",
        "additionalProperties": False,
        "required": ["path"],
        "properties": {
            "type": {"const": "jsonl"},
            **COMMON_PROPERTIES,
            "objects": {
                "type": "object",
                "description": "object name -> its file (default: <name>.jsonl); key makes it writable",
                "additionalProperties": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        **OBJECT_COMMON,
                        "key": {"type": "string", "minLength": 1,
                                "description": "the attribute that identifies each object (its anchor); "
                                               "needed to write the object"},
                    },
                },
            },
        },
    }

    def capabilities(self, object: str | None = None) -> Capabilities:
        key = self._spec(object).get("key") if object else None
        return Capabilities(full_export=True, password_in_first_pass=False, multi_valued_deltas=False,
                            export_style="attributes", operations=OPERATIONS,
                            correlation=(key,) if key else ())

    def rules(self, obj: FileObject) -> Rules:
        return KeyedRules(obj.key)

    # ---- reading ------------------------------------------------------------------------------

    def read(self, object: str, partition: str | None = None, watermark: str | None = None, *,
             attributes: Sequence[str] | None = None, page_size: int | None = None) -> Iterator[Page]:
        """A written object's image, or (an object without a key: a source) the file as it is."""
        if self.is_target(object):
            yield from super().read(object, partition, watermark, attributes=attributes, page_size=page_size)
            return
        obj = self.file_object(object)
        size = page_size or self.config.get("page_size", DEFAULT_PAGE_SIZE)
        page: list[Record] = []
        seen = False
        for data, location in _lines(obj, self.context.name):
            seen = True
            page.append(Record(data, location=location))
            if len(page) >= size:
                yield Page(page)
                page = []
        if page or seen:
            yield Page(page)
        else:
            yield Page([], source_empty=f"{obj.label} holds no objects (no lines)")

    def load_entries(self, obj: FileObject) -> Iterable[tuple[Entry, str]]:
        rules = KeyedRules(obj.key)
        for data, location in _lines(obj, self.context.name):
            anchor = rules.anchor_of(data, None)
            if anchor is None:
                raise ConnectionFailed(f"{location}: the object has no {obj.key!r}, the key that identifies it; "
                                       "every line of the file needs one: fix or remove the line")
            yield Entry(anchor, without_nulls(data)), location

    # ---- writing ------------------------------------------------------------------------------

    def render(self, obj: FileObject, entries: Sequence[Entry], handle: BinaryIO) -> None:
        for entry in entries:
            handle.write(_dump(_ordered(entry.attributes, obj.key)) + b"\n")

    def change_records(self, obj: FileObject, changes: Sequence[Change]) -> bytes:
        return b"".join(_dump(change_record(obj.name, c, obj.key)) + b"\n" for c in changes)


def change_record(object: str, change: Change, key: str | None) -> dict[str, Any]:
    """One change as a JSON object: what happened, to which object, and the whole object after."""
    op: Operation = change.operation
    after, before = change.after, change.before
    record: dict[str, Any] = {"op": change.op, "id": (after or before).anchor if (after or before) else op.anchor,
                              "key": op.key, "time": change_time(), "object": object}
    if before is not None and after is not None and before.anchor != after.anchor:
        record["old_id"] = before.anchor
    if after is not None:
        record["attributes"] = _ordered(after.attributes, key)
    if before is not None and after is not None:
        record["changed"] = sorted(n for n in set(before.attributes) | set(after.attributes)
                                   if before.attributes.get(n) != after.attributes.get(n))
    return record


def _ordered(attributes: Mapping[str, Any], key: str | None) -> dict[str, Any]:
    """The key first, then the other attributes by name: the same bytes for the same object."""
    out = {key: attributes[key]} if key and key in attributes else {}
    out.update((k, attributes[k]) for k in sorted(attributes) if k != key)
    return out


def _dump(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8")


def _lines(obj: FileObject, connector: str) -> Iterator[tuple[dict[str, Any], str]]:
    """Each object of the file with its ``file:line``. A line that is not a JSON object stops the
    read (ConnectionFailed naming it): its object cannot even be named, so it must not look deleted."""
    try:
        handle = open(obj.path, "rb")  # noqa: SIM115 (closed below)
    except OSError as exc:
        raise ConnectionFailed(f"cannot open {obj.label}: {exc.strerror}; check the path of connector "
                               f"{connector!r} (it resolves to {obj.path})") from None
    with handle:
        for number, raw in enumerate(handle, 1):
            where = f"{obj.label}:{number}"
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ConnectionFailed(f"{where}: not UTF-8 (byte 0x{raw[exc.start]:02X} at column {exc.start + 1}); "
                                       "JSON lines files are UTF-8: fix the export. Nothing was imported") from None
            if number == 1:
                text = text.removeprefix("\ufeff")
            if not text.strip():
                continue
            try:
                data = json.loads(text, parse_constant=_no_constant)
            except ValueError as exc:
                what = f"{exc.msg} at column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else str(exc)
                raise ConnectionFailed(f"{where}: not JSON ({what}); each line must be one JSON object. Fix the "
                                       "line and run again (nothing was imported, nobody is marked deleted)") from None
            if not isinstance(data, dict):
                raise ConnectionFailed(f"{where}: a JSON {_kind(data)}, not an object; each line must be one JSON "
                                       "object ({...}). Nothing was imported, nobody is marked deleted")
            yield data, where


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool) or value is None:
        return "literal"
    if isinstance(value, int | float) and not (isinstance(value, float) and math.isnan(value)):
        return "number"
    return type(value).__name__
