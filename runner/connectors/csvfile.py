"""CSV files as a source: one object per file, read in pages, never whole into memory.

Configuration::

    hr:
      type: csv
      path: data/                # folder holding the files (relative to the manifest)
      objects:                   # optional; an object ``people`` is ``people.csv`` by default
        groups: {file: groups.csv, multi_valued: {members: ";"}}

An empty cell is read as null (``empty_as_null: false`` keeps empty strings), because HR exports
write "no phone" as an empty cell and mappings should see it as absent.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from runner.connectors.base import (
    Capabilities,
    ConnectionFailed,
    Connector,
    Page,
    Record,
)

# A group's member list is one cell: at a million people a large group's cell passes the csv
# module's default limit of 128 KiB.
MAX_FIELD = 2**31 - 1

OBJECT_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "file": {"type": "string", "minLength": 1},
        "multi_valued": {
            "type": "object",
            "description": "attribute -> separator that joins its values in one cell",
            "additionalProperties": {"type": "string", "minLength": 1},
        },
    },
}


class CsvConnector(Connector):
    type_name = "csv"
    config_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["path"],
        "properties": {
            "type": {"const": "csv"},
            "path": {"type": "string", "minLength": 1, "description": "folder that holds the CSV files"},
            "objects": {"type": "object", "additionalProperties": OBJECT_SCHEMA},
            "delimiter": {"type": "string", "minLength": 1, "maxLength": 1, "default": ","},
            "encoding": {"type": "string", "default": "utf-8"},
            "empty_as_null": {"type": "boolean", "default": True},
            "page_size": {"type": "integer", "minimum": 1, "default": 1000},
        },
    }

    def capabilities(self) -> Capabilities:
        return Capabilities(full_export=False, password_in_first_pass=False, multi_valued_deltas=False,
                            operations=frozenset())

    @property
    def folder(self) -> Path:
        return (self.context.base_dir / self.config["path"]).resolve()

    def object_names(self) -> list[str] | None:
        """Any name may be valid: a file that is missing now (an export not yet delivered) is a
        run-time problem that stops the pass, not a manifest error."""
        return None

    def _file(self, object: str) -> Path:
        spec = self.config.get("objects", {}).get(object, {})
        return self.folder / spec.get("file", f"{object}.csv")

    def read(self, object: str, partition: str | None = None,
             watermark: str | None = None) -> Iterator[Page]:
        path = self._file(object)
        separators: dict[str, str] = self.config.get("objects", {}).get(object, {}).get("multi_valued", {})
        empty_as_null = self.config.get("empty_as_null", True)
        page_size = self.config.get("page_size", 1000)
        try:
            handle = open(path, newline="", encoding=self.config.get("encoding", "utf-8"))  # noqa: SIM115 (closed below)
        except OSError as exc:
            raise ConnectionFailed(f"cannot open {path}: {exc.strerror}; check the connector's path") from exc
        csv.field_size_limit(MAX_FIELD)
        with handle:
            reader = csv.DictReader(handle, delimiter=self.config.get("delimiter", ","))
            page: list[Record] = []
            try:
                for row in reader:
                    page.append(Record(_convert(row, separators, empty_as_null)))
                    if len(page) >= page_size:
                        yield Page(page)
                        page = []
            except (csv.Error, UnicodeDecodeError) as exc:
                raise ConnectionFailed(f"{path}:{reader.line_num}: unreadable CSV: {exc}") from exc
            if page:
                yield Page(page)


def _convert(row: dict[str, Any], separators: dict[str, str], empty_as_null: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in row.items():
        if key is None:  # more cells than headers
            continue
        if key in separators:
            out[key] = [v for v in (value or "").split(separators[key]) if v]
        elif value == "" and empty_as_null:
            out[key] = None
        else:
            out[key] = value
    return out
