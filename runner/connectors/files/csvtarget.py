"""CSV files as a target, on top of the strict CSV source (``runner/connectors/csvfile.py``).

One connector type, ``csv``, reads HR exports and writes files for applications fed by file
drops. An object with ``key:`` is written; the others are read as before. The settings that say
how a file looks (``delimiter``, ``encoding``, ``multi_valued`` separators) serve both ways, so
what this connector writes, the source reads back as it was::

    drop:
      type: csv
      path: out/
      mode: snapshot                        # or changes: an ``op`` column, one row per operation
      objects:
        users:
          key: user_name                    # the column that identifies a row (its anchor)
          columns: [user_name, display_name, email, groups, active]   # the header, in order
          multi_valued: {groups: ";"}       # a list in one cell, joined by the separator
          types: {active: boolean}          # read back as true/false (default: text)

A snapshot is written with the csv module (RFC 4180 quoting, CRLF line ends), UTF-8 (or
``encoding``), without a byte order mark: the header, then one row per object in key order.
``columns`` is the header; without it, the key and then every attribute by name. A value the
file could not give back as it was (a separator inside a multi-valued value, a character the
encoding lacks, more lines than ``max_cell_lines``) fails its object with a permanent error.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from typing import Any, BinaryIO

from runner.connectors import csvfile
from runner.connectors.base import Capabilities, ConnectionFailed, Page
from runner.connectors.files.connector import (
    COMMON_PROPERTIES,
    OBJECT_COMMON,
    FileObject,
    FileTarget,
    change_time,
)
from runner.connectors.files.image import Change, Entry, as_list, without_nulls
from runner.connectors.files.jsonl import KeyedRules

OPERATIONS = frozenset({"add", "update", "disable", "delete"})
TYPES = ("string", "integer", "number", "boolean")
CHANGE_COLUMNS = ("op", "op_key", "time")
_INTEGER = re.compile(r"^[+-]?\d+$")

OBJECT_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        **OBJECT_COMMON,
        **csvfile.OBJECT_SCHEMA["properties"],
        "key": {"type": "string", "minLength": 1,
                "description": "the column that identifies each row (its anchor); makes the object writable"},
        "columns": {"type": "array", "minItems": 1, "uniqueItems": True, "items": {"type": "string", "minLength": 1},
                    "description": "the header of a written file, in order (needed in mode: changes)"},
        "types": {"type": "object", "additionalProperties": {"enum": list(TYPES)},
                  "description": "column -> how its text is read back (default: string); true/false for boolean"},
    },
}


class CsvRules(KeyedRules):
    """Rows identified by their key column; values a cell can hold and give back unchanged."""

    def __init__(self, obj: FileObject, encoding: str, max_lines: int, max_bytes: int):
        super().__init__(obj.key)
        self.columns = obj.spec.get("columns")
        self.separators: dict[str, str] = obj.spec.get("multi_valued", {})
        self.encoding, self.max_lines, self.max_bytes = encoding, max_lines, max_bytes

    def problem(self, entry: Entry) -> str | None:
        for name, value in entry.attributes.items():
            if self.columns is not None and name not in self.columns:
                return f"attribute {name!r} is not one of the file's columns; add it to columns"
            separator = self.separators.get(name)
            if isinstance(value, list) and separator is None:
                return (f"attribute {name!r} has several values; declare how one cell joins them, e.g. "
                        f"multi_valued: {{{name}: \";\"}}")
            for v in as_list(value):
                if isinstance(v, dict | list):
                    return f"attribute {name!r} holds a {type(v).__name__}, which a CSV cell cannot hold"
                text = cell_text(v)
                if separator is not None and separator in text:
                    return f"a value of {name!r} contains its separator {separator!r}, so it would read back split"
                if text.count("\n") >= self.max_lines:
                    return f"the value of {name!r} has more lines than max_cell_lines ({self.max_lines})"
                try:
                    size = len(text.encode(self.encoding))
                except UnicodeEncodeError as exc:
                    return f"the value of {name!r} holds {exc.object[exc.start]!r}, which {self.encoding} cannot write"
                if size > self.max_bytes:
                    return f"the value of {name!r} is larger than max_cell_bytes ({self.max_bytes})"
        return None


def cell_text(value: Any) -> str:
    """One value as cell text: booleans as true/false, null as an empty cell."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def read_back(text: Any, kind: str) -> Any:
    """A cell's text as the declared type; text that is not one stays text (the engine sees drift)."""
    if not isinstance(text, str) or kind == "string":
        return text
    lowered = text.strip().lower()
    if kind == "boolean" and lowered in ("true", "false"):
        return lowered == "true"
    if kind == "integer" and _INTEGER.match(lowered):
        return int(lowered)
    if kind == "number":
        try:
            number = float(lowered)
        except ValueError:
            return text
        return int(number) if number.is_integer() and _INTEGER.match(lowered) else number
    return text


class CsvConnector(FileTarget, csvfile.CsvConnector):
    """CSV files: HR exports read strictly (source), and files written for file-drop applications."""

    type_name = "csv"
    interface_version = 2
    suffix = ".csv"
    format_label = "CSV"
    config_schema = {
        "description": "CSV files: HR exports read strictly as a source (docs/csv-input.md), files for applications fed by file drops as a target (docs/files.md)",
        **csvfile.CsvConnector.config_schema,
        "properties": {
            **csvfile.CsvConnector.config_schema["properties"],
            **{k: v for k, v in COMMON_PROPERTIES.items() if k not in ("path", "page_size")},
            "objects": {"type": "object", "additionalProperties": OBJECT_SCHEMA,
                        "description": "object name -> its file (default: <name>.csv); key makes it writable"},
        },
    }

    def capabilities(self, object: str | None = None) -> Capabilities:
        """An object without ``key`` is an HR export, read only: it claims no operation."""
        key = self._spec(object).get("key") if object else None
        return Capabilities(full_export=True, password_in_first_pass=False, multi_valued_deltas=False,
                            export_style="attributes", operations=OPERATIONS if key or object is None else type(OPERATIONS)(),
                            correlation=(key,) if key else ())

    def rules(self, obj: FileObject) -> CsvRules:
        return CsvRules(obj, self._encoding(), self.config.get("max_cell_lines", csvfile.DEFAULT_MAX_CELL_LINES),
                        self.config.get("max_cell_bytes", csvfile.DEFAULT_MAX_CELL_BYTES))

    def _encoding(self) -> str:
        encoding = self.config.get("encoding", "utf-8")
        try:
            return "utf-8" if codecs.lookup(encoding).name in ("utf-8", "utf-8-sig") else encoding
        except LookupError:
            return encoding

    def check(self) -> list[tuple[tuple[str | int, ...], str]]:
        problems = super().check()
        for object, spec in (self.config.get("objects") or {}).items():
            spec = spec or {}
            columns, key = spec.get("columns"), spec.get("key")
            mode = spec.get("mode", self.config.get("mode", "snapshot"))
            if key and columns is not None and key not in columns:
                problems.append((("objects", object, "columns"), f"the key {key!r} is not one of the columns"))
            if key and mode == "changes" and columns is None:
                problems.append((("objects", object), "mode: changes appends rows under one header, so it needs "
                                 "columns: the list of columns, in order"))
            for column in (columns or ()):
                if column in CHANGE_COLUMNS and mode == "changes":
                    problems.append((("objects", object, "columns"), f"{column!r} is a column of every change "
                                     f"record ({', '.join(CHANGE_COLUMNS)}); rename the attribute"))
        return problems

    def template_problems(self, object: str, produced: Collection[str]) -> list[tuple[tuple[str | int, ...], str]]:
        """Besides the key: every attribute written must have a column, and every column a value."""
        problems = super().template_problems(object, produced)
        columns = self._spec(object).get("columns")
        if problems or columns is None:
            return problems
        at = ("objects", object, "columns")
        missing = sorted(set(produced) - set(columns))
        if missing:
            problems.append((at, f"{', '.join(map(repr, missing))} {'is' if len(missing) == 1 else 'are'} written "
                                 f"to {object!r} but not among its columns; add {'it' if len(missing) == 1 else 'them'}"))
        unused = [c for c in columns if c not in produced]
        if unused:
            problems.append((at, f"column {', '.join(map(repr, unused))} is not a mapped attribute, so it would "
                                 "always be empty; map it or remove it"))
        return problems

    # ---- reading ------------------------------------------------------------------------------

    def read(self, object: str, partition: str | None = None, watermark: str | None = None, *,
             attributes: Sequence[str] | None = None, page_size: int | None = None) -> Iterator[Page]:
        """A written object's rows (with anchors), or an HR export read strictly (a source)."""
        if self.is_target(object):
            return FileTarget.read(self, object, partition, watermark, attributes=attributes, page_size=page_size)
        return csvfile.CsvConnector.read(self, object, partition, watermark, attributes=attributes,
                                         page_size=page_size)

    def load_entries(self, obj: FileObject) -> Iterable[tuple[Entry, str]]:
        """The snapshot, read by the strict CSV source: a damaged row stops the run, named."""
        if obj.path.stat().st_size == 0:
            return
        types: Mapping[str, str] = obj.spec.get("types", {})
        rules = self.rules(obj)
        for page in csvfile.CsvConnector.read(self, obj.name):
            for record in page.records:
                where = record.location or obj.label
                if record.error:
                    raise ConnectionFailed(f"{record.error}. This is the target file of connector "
                                           f"{self.context.name!r}: fix the row, or remove it and run with --reconcile")
                attributes = {k: ([read_back(x, types.get(k, "string")) for x in v] if isinstance(v, list)
                                  else read_back(v, types.get(k, "string"))) for k, v in record.attributes.items()}
                anchor = rules.anchor_of(attributes, None)
                if anchor is None:
                    raise ConnectionFailed(f"{where}: the row has no {obj.key!r}, the column that identifies it; "
                                           "every row of the file needs one: fix or remove the row")
                yield Entry(anchor, without_nulls(attributes)), where

    # ---- writing ------------------------------------------------------------------------------

    def _header(self, obj: FileObject, entries: Iterable[Entry]) -> list[str]:
        columns = obj.spec.get("columns")
        if columns is not None:
            return list(columns)
        key = obj.key or ""
        return [key, *sorted({n for e in entries for n in e.attributes} - {key})]

    def _row(self, obj: FileObject, attributes: Mapping[str, Any], header: Sequence[str]) -> list[str]:
        separators = obj.spec.get("multi_valued", {})
        return [separators.get(c, "").join(cell_text(v) for v in attributes[c]) if isinstance(attributes.get(c), list)
                else cell_text(attributes.get(c)) for c in header]

    def _text(self, rows: Iterable[Sequence[str]]) -> bytes:
        out = io.StringIO()
        writer = csv.writer(out, delimiter=self.config.get("delimiter", ","))
        writer.writerows(rows)
        return out.getvalue().encode(self._encoding())

    def render(self, obj: FileObject, entries: Sequence[Entry], handle: BinaryIO) -> None:
        header = self._header(obj, entries)
        handle.write(self._text([header]))
        for start in range(0, len(entries), 1000):
            handle.write(self._text(self._row(obj, e.attributes, header) for e in entries[start:start + 1000]))

    def changes_header(self, obj: FileObject) -> bytes:
        return self._text([[*CHANGE_COLUMNS, *self._header(obj, ())]])

    def change_records(self, obj: FileObject, changes: Sequence[Change]) -> bytes:
        header = self._header(obj, ())
        rows = []
        for change in changes:
            stamp = [change.operation.key, change_time()]
            before, after = change.before, change.after
            if before is not None and after is not None and before.anchor != after.anchor:  # the key changed
                rows.append(["delete", *stamp, *self._row(obj, before.attributes, header)])
                rows.append(["add", *stamp, *self._row(obj, after.attributes, header)])
                continue
            shown = after if after is not None else before
            rows.append([change.op, *stamp, *self._row(obj, shown.attributes if shown else {}, header)])
        return self._text(rows)

    def check_changes_file(self, obj: FileObject) -> None:
        """Rows go under the header the file has: it must be this connector's, or rows would be misread."""
        if not obj.path.exists() or obj.path.stat().st_size == 0:
            return
        with open(obj.path, newline="", encoding=self._encoding(), errors="replace") as handle:
            found = next(csv.reader(handle, delimiter=self.config.get("delimiter", ",")), [])
        wanted = [*CHANGE_COLUMNS, *self._header(obj, ())]
        if found != wanted:
            raise ConnectionFailed(f"{obj.label}:1: the change file's header is {', '.join(found)}, but connector "
                                   f"{self.context.name!r} writes {', '.join(wanted)} (columns changed?); move the "
                                   "file away, so a new one starts, and run again")
