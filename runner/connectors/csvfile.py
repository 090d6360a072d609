"""CSV files as a source: one object per file, read in pages, never whole into memory.

Configuration::

    hr:
      type: csv
      path: data/                # folder holding the files (relative to the manifest)
      objects:                   # optional; an object ``people`` is ``people.csv`` by default
        groups: {file: groups.csv, multi_valued: {members: ";"}}
      delimiter: ","             # optional
      encoding: utf-8            # optional; a UTF-8 byte order mark is skipped
      max_cell_bytes: 67108864   # optional: the largest cell (and line) read, 64 MiB
      max_cell_lines: 50         # optional: the most lines a quoted cell may span

An empty cell is read as null (``empty_as_null: false`` keeps empty strings), because HR exports
write "no phone" as an empty cell and mappings should see it as absent.

The reader is strict because it runs from cron, where a half-written or mangled export must never
look like people leaving (docs/csv-input.md). Every message names ``file:line`` (physical lines,
the file as configured) and what to do:

* a row on one line with more or fewer cells than the header fails that object alone (a Record
  with ``error``; an engine without that slot stops the read instead);
* what makes the rest of the file unreliable stops the read with ConnectionFailed, before
  anything is marked deleted: an empty file, a header split with the wrong delimiter or naming a
  column twice, bytes that are not in ``encoding``, a quoted cell that runs on past
  ``max_cell_lines`` or ``max_cell_bytes`` or to the end of the file, or that swallowed the rows
  after it (a stray ``"``).
"""

from __future__ import annotations

import codecs
import csv
import dataclasses
import hashlib
import itertools
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, NamedTuple

from runner.connectors.base import (
    AttributeInfo,
    Capabilities,
    ConnectionFailed,
    Connector,
    ObjectInfo,
    Page,
    Record,
)

MIB = 2**20
# A group's member list is one cell: at a million people the "everyone" group is a 9 MB cell with
# the sample data's 8-character ids, 37 MB with 36-character GUIDs. 64 MiB reads those and still
# stops a runaway cell long before memory runs out.
DEFAULT_MAX_CELL_BYTES = 64 * MIB
# Real multi-line cells (addresses, notes) span a few lines; a stray quote swallows the rest of the file.
DEFAULT_MAX_CELL_LINES = 50
# Delimiters HR exports use: a header that is one column holding another of them was split wrongly.
COMMON_DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
QUOTE = '"'
# Decoding is strict (fast); when it fails, somewhere in an 8 KiB chunk, the file is read again
# with errors="surrogateescape", where a bad byte arrives as a lone surrogate on its own line.
UNDECODABLE = re.compile("[\udc80-\udcff]+")

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


@dataclass(frozen=True)
class _Source:
    """One object's file and how to read it, settled once per read."""

    path: Path  # what is opened
    label: str  # the file as configured (relative to the manifest folder): what messages name
    connector: str
    delimiter: str
    codec: str  # what decodes: utf-8-sig for utf-8, so a byte order mark is skipped
    encoding: str  # as configured, for messages
    separators: dict[str, str]
    empty_as_null: bool
    page_size: int
    max_cell_bytes: int
    max_cell_lines: int

    def byte_size(self, text: str) -> int:
        """Size of ``text`` in the file's encoding (only asked of long lines and multi-line rows)."""
        return len(text.encode(_measuring_codec(self.codec), "surrogateescape"))


class _Row(NamedTuple):
    """A non-blank row: its cells and the physical lines it spans (a tuple: one is made per row)."""

    line: int  # where it starts
    end: int  # where it ends
    cells: list[str]
    quote_line: int  # where its last quoted cell spanning a line break opened (``line`` if none)
    problem: str | None = None  # csv could not parse it; ``cells`` are a lenient re-read
    inner: tuple[int, int] = (0, 0)  # spanning lines: the line inside it that splits into most cells, and how many


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
            "max_cell_bytes": {"type": "integer", "minimum": 1, "maximum": 2**31 - 2,
                               "default": DEFAULT_MAX_CELL_BYTES,
                               "description": "the largest cell, and line, read; more stops the read"},
            "max_cell_lines": {"type": "integer", "minimum": 1, "default": DEFAULT_MAX_CELL_LINES,
                               "description": "the most lines a quoted cell may span; more stops the read"},
        },
    }

    def capabilities(self, object: str | None = None) -> Capabilities:
        return Capabilities(full_export=False, password_in_first_pass=False, multi_valued_deltas=False,
                            operations=frozenset())

    def check(self) -> list[tuple[tuple[str | int, ...], str]]:
        """An unknown encoding or an impossible delimiter is a manifest error, found by validate,
        not a failed read at 3 a.m."""
        problems: list[tuple[tuple[str | int, ...], str]] = []
        encoding = self.config.get("encoding", "utf-8")
        try:
            codecs.lookup(encoding)
        except LookupError:
            problems.append((("encoding",), f"unknown encoding {encoding!r}; e.g. utf-8, cp1252, latin-1, utf-16"))
        if self.config.get("delimiter", ",") in (QUOTE, "\n", "\r"):
            problems.append((("delimiter",), "the delimiter cannot be a quote or a line break"))
        return problems

    @property
    def folder(self) -> Path:
        return (self.context.base_dir / self.config["path"]).resolve()

    def object_names(self) -> list[str] | None:
        """Any name may be valid: a file that is missing now (an export not yet delivered) is a
        run-time problem that stops the pass, not a manifest error."""
        return None

    def _file_name(self, object: str) -> str:
        spec = self.config.get("objects", {}).get(object, {})
        return spec.get("file", f"{object}.csv")

    def _file(self, object: str) -> Path:
        return self.folder / self._file_name(object)

    def _source(self, object: str) -> _Source:
        encoding = self.config.get("encoding", "utf-8")
        return _Source(
            path=self._file(object), label=str(Path(self.config["path"]) / self._file_name(object)),
            connector=self.context.name, delimiter=self.config.get("delimiter", ","),
            codec=_reading_codec(encoding), encoding=encoding,
            separators=self.config.get("objects", {}).get(object, {}).get("multi_valued", {}),
            empty_as_null=self.config.get("empty_as_null", True), page_size=self.config.get("page_size", 1000),
            max_cell_bytes=self.config.get("max_cell_bytes", DEFAULT_MAX_CELL_BYTES),
            max_cell_lines=self.config.get("max_cell_lines", DEFAULT_MAX_CELL_LINES))

    def fingerprint(self, object: str, partition: str | None = None) -> str | None:
        """The file's bytes and every setting that parses them: a digest at disk speed (about
        20 ms for 100,000 people), against seconds for a read. None when the file cannot be
        opened: the read says why."""
        src = self._source(object)
        try:
            with open(src.path, "rb") as handle:
                digest = hashlib.file_digest(handle, "blake2b")
        except OSError:
            return None
        digest.update(repr(dataclasses.replace(src, page_size=0)).encode())
        return digest.hexdigest()[:40]

    def discover(self) -> list[ObjectInfo]:
        """Each ``*.csv`` file of the folder, and each file named under ``objects:``, with the
        columns of its header: the whole list of what a row can hold (``complete``)."""
        names = {p.stem for p in self.folder.glob("*.csv")} if self.folder.is_dir() else set()
        names |= set(self.config.get("objects", {}))
        infos = []
        for name in sorted(names):
            src = self._source(name)
            if not src.path.is_file():
                continue
            with open(src.path, newline="", encoding=src.codec) as handle:
                header = _header(_rows(_Lines(handle, src), src), src)
            infos.append(ObjectInfo(name, tuple(AttributeInfo(c, multi_valued=c in src.separators)
                                                for c in header.cells), complete=True,
                                    description=str(src.path)))
        return infos

    def read(self, object: str, partition: str | None = None, watermark: str | None = None, *,
             attributes: Sequence[str] | None = None, page_size: int | None = None) -> Iterator[Page]:
        """Every row of the object's file, checked (see the module docstring). ``attributes`` is
        ignored: a row is parsed whole anyway, and checking every cell is the point."""
        src = self._source(object)
        if page_size:
            src = dataclasses.replace(src, page_size=page_size)
        try:
            handle = open(src.path, newline="", encoding=src.codec)  # noqa: SIM115 (closed below)
        except OSError as exc:
            raise ConnectionFailed(f"cannot open {src.label}: {exc.strerror}; check the path of connector "
                                   f"{src.connector!r} (it resolves to {src.path})") from exc
        # The csv module's limit is process-wide and in characters; the real bound is max_cell_bytes,
        # enforced by _Lines, so this only has to be at least as large.
        csv.field_size_limit(max(csv.field_size_limit(), src.max_cell_bytes + 1))
        with handle:
            if os.fstat(handle.fileno()).st_size == 0:
                raise ConnectionFailed(f"{src.label} is empty (0 bytes): a failed or unfinished HR export? "
                                       "Nothing was read and nobody is marked deleted; check the job that "
                                       "writes the file, then run again")
            yield from _pages(_rows(_Lines(handle, src), src), src)


# ---- reading lines and rows ---------------------------------------------------------------------


class _Lines:
    """The file's physical lines, fed to csv.reader one at a time, counted and bounded.

    csv.reader asks for a line only when the row it is parsing needs one, so :func:`_rows` calls
    :meth:`next_record` before each row and every line fed after that belongs to the row. A row's
    lines are kept until it is complete (one line, unless a quoted cell spans lines, and then
    bounded by the limits), so a runaway quoted cell can be traced to the line it opened on.
    """

    def __init__(self, handle: IO[str], src: _Source):
        self.handle, self.src = handle, src
        self.number = 0  # physical lines read so far
        self.start = 1  # the first line of the row being parsed
        self.lines: list[str] = []  # the lines of the row being parsed
        self.size = 0  # bytes of those lines, counted once the row spans two
        self.ended = False

    def __iter__(self) -> _Lines:
        return self

    def next_record(self) -> None:
        self.start = self.number + 1
        self.lines.clear()
        self.size = 0

    def __next__(self) -> str:
        src = self.src
        try:
            line = self.handle.readline(src.max_cell_bytes + 1)
        except UnicodeDecodeError as exc:
            raise ConnectionFailed(_undecodable(src, self.number + 1, exc)) from None
        if not line:
            self.ended = True
            raise StopIteration
        self.number += 1
        if len(line) * 4 > src.max_cell_bytes and (len(line) > src.max_cell_bytes
                                                   or src.byte_size(line) > src.max_cell_bytes):
            raise ConnectionFailed(f"{src.label}:{self.number}: the line is longer than max_cell_bytes "
                                   f"({_size(src.max_cell_bytes)}): a damaged export (no line breaks?) or a "
                                   f"cell that large; if it is real, raise max_cell_bytes on connector "
                                   f"{src.connector!r}")
        self.lines.append(line)
        if len(self.lines) > 1:
            self._bound()
        return line

    def _bound(self) -> None:
        """A row on several lines has a quoted cell spanning them: stop it at the limits."""
        src = self.src
        if len(self.lines) == 2:
            self.size = src.byte_size(self.lines[0])
        self.size += src.byte_size(self.lines[-1])
        if len(self.lines) > src.max_cell_lines:
            raise ConnectionFailed(self.runaway(f"is still open at line {self.number}, past max_cell_lines "
                                                f"({src.max_cell_lines} lines)", "max_cell_lines"))
        if self.size > src.max_cell_bytes:
            raise ConnectionFailed(self.runaway(f"is still open at line {self.number}, past max_cell_bytes "
                                                f"({_size(src.max_cell_bytes)})", "max_cell_bytes"))

    def quote_line(self) -> int:
        """Where the row's last quoted cell spanning a line break opened: where a stray quote is."""
        return self.start + _quoted_cell_line(self.lines, self.src.delimiter)

    def runaway(self, how: str, setting: str | None = None) -> str:
        """The message for a quoted cell that swallowed the lines after it, naming where it opened."""
        line = self.quote_line()
        message = (f"{self.src.label}:{line}: a quoted cell opens on this line and {how}: a stray '{QUOTE}' "
                   f"on line {line}? Fix the export and run again (nothing is marked deleted)")
        if setting:
            message += f"; if the cell really is that long, raise {setting} on connector {self.src.connector!r}"
        return message


def _rows(lines: _Lines, src: _Source) -> Iterator[_Row]:
    """Every non-blank row with the physical lines it spans. A row csv cannot parse comes back
    with a problem when it is one line (it fails alone); spanning lines, it stops the read,
    because a stray quote has swallowed other rows."""
    reader = csv.reader(lines, delimiter=src.delimiter, strict=True)
    while True:
        lines.next_record()
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error:
            yield _unparsable(lines, src)
            continue
        if not cells or (len(cells) == 1 and not cells[0].strip()):  # a line of nothing but spaces is blank too
            continue
        if lines.number == lines.start:
            yield _Row(lines.start, lines.start, cells, lines.start)
        else:
            yield _Row(lines.start, lines.number, cells, lines.quote_line(), inner=_widest_inner(lines))


def _unparsable(lines: _Lines, src: _Source) -> _Row:
    """A row csv refused. At the end of the file or spanning lines, a quoted cell never closed or
    closed far from where it opened: the read stops. On one line, that row alone is broken."""
    if lines.ended:
        raise ConnectionFailed(lines.runaway("never closes: the file ends inside it"))
    if len(lines.lines) > 1:
        raise ConnectionFailed(lines.runaway(f"runs on to line {lines.number}, where another '{QUOTE}' ends it "
                                             "in the middle of a cell"))
    line = lines.lines[0] if lines.lines else ""
    cells = next(csv.reader([line], delimiter=src.delimiter), [])
    problem = (f"{src.label}:{lines.start}: a '{QUOTE}' ends a quoted cell before the cell ends (like "
               f"'\"Bob\" Jr'); a '{QUOTE}' inside a quoted cell is written twice (\"\"): fix the row in the export")
    return _Row(lines.start, lines.number, cells, lines.start, problem)


def _widest_inner(lines: _Lines) -> tuple[int, int]:
    """Of the lines strictly inside a row spanning lines (all within quoted cells), the one that
    would split into most cells, and how many: a whole row there means a stray quote swallowed it."""
    inner = lines.lines[1:-1]
    if not inner:
        return (0, 0)
    index, widest = max(enumerate(inner), key=lambda item: item[1].count(lines.src.delimiter))
    return (lines.start + 1 + index, widest.count(lines.src.delimiter) + 1)


def _quoted_cell_line(lines: Sequence[str], delimiter: str) -> int:
    """Index in ``lines`` (one row's lines) of the line where the last quoted cell that contains a
    line break opened; 0 if there is none. Follows csv's rules: a quote opens a cell only at the
    start of a cell, and inside one a doubled quote is a quote. Only run on rows spanning lines."""
    text = "".join(lines)
    at, opened, found = 0, -1, 0
    while (q := text.find(QUOTE, at)) >= 0:
        if opened < 0:
            if q == 0 or text[q - 1] == delimiter:
                opened = q
            at = q + 1
        elif text.startswith(QUOTE, q + 1):
            at = q + 2
        else:
            if text.find("\n", opened, q) >= 0 or text.find("\r", opened, q) >= 0:
                found = opened
            opened, at = -1, q + 1
    if opened >= 0:
        found = opened
    return next((i for i, end in enumerate(itertools.accumulate(map(len, lines))) if found < end), 0)


# ---- rows to pages ------------------------------------------------------------------------------


def _pages(rows: Iterator[_Row], src: _Source) -> Iterator[Page]:
    header = _header(rows, src)
    records = _records(rows, header, src)
    page: list[Record] = []
    seen = False
    for record in records:
        seen = True
        page.append(record)
        if len(page) >= src.page_size:
            yield Page(page)
            page = []
    if page:
        yield Page(page)
    elif not seen and "source_empty" in _field_names(Page):
        yield Page([], source_empty=f"{src.label} has a header (line {header.line}) and no rows")  # type: ignore[call-arg]


def _header(rows: Iterator[_Row], src: _Source) -> _Row:
    """The first non-blank row, checked: the column names every row is read by."""
    header = next(rows, None)
    if header is None:
        raise ConnectionFailed(f"{src.label} has no header line, only blank lines: a failed or unfinished HR "
                               "export? Nothing was read and nobody is marked deleted; check the job that "
                               "writes the file, then run again")
    if header.problem:
        raise ConnectionFailed(f"{header.problem}; this is the header, so nothing can be read")
    cells = list(header.cells)
    cells[0] = cells[0].removeprefix("\ufeff")  # a BOM the codec left (utf-16-le, latin-1, ...)
    _check_delimiter(cells, header.line, src)
    _check_unique(cells, header.line, src)
    return header._replace(cells=cells)


def _check_delimiter(cells: list[str], line: int, src: _Source) -> None:
    """A header that is one column holding another common delimiter was split with the wrong one."""
    if len(cells) != 1:
        return
    for delimiter, name in COMMON_DELIMITERS.items():
        if delimiter != src.delimiter and delimiter in cells[0]:
            configured = COMMON_DELIMITERS.get(src.delimiter, repr(src.delimiter))
            raise ConnectionFailed(
                f"{src.label}:{line}: the header is one column, {_clip(cells[0])!r}, holding {name}s: the file "
                f"looks {name}-separated but connector {src.connector!r} splits on {configured}s; set "
                f"`delimiter: {_yaml(delimiter)}` on connector {src.connector!r}")


def _check_unique(cells: list[str], line: int, src: _Source) -> None:
    """Two columns of one name: one would silently win over the other."""
    first: dict[str, int] = {}
    for index, name in enumerate(cells, 1):
        if name in first:
            raise ConnectionFailed(f"{src.label}:{line}: column {name!r} appears twice in the header (columns "
                                   f"{first[name]} and {index}); rename or drop one in the export")
        first[name] = index


def _records(rows: Iterator[_Row], header: _Row, src: _Source) -> Iterator[Record]:
    names, width = header.cells, len(header.cells)
    fields = _field_names(Record)
    located = "location" in fields
    for row in rows:
        location = {"location": f"{src.label}:{row.line}"} if located else {}
        if row.end > row.line and row.problem is None and _swallows(row, width):
            raise ConnectionFailed(_swallowed(row, header, src))
        if row.problem is None and len(row.cells) == width:
            yield Record(_convert(zip(names, row.cells, strict=True), src), **location)
            continue
        problem = row.problem or _count_problem(row, header, src)
        if "error" not in fields:  # this engine cannot fail one object yet: stop the read instead
            raise ConnectionFailed(f"{problem}; the read stops until it is fixed (nothing is marked deleted)")
        # A best guess, for the engine to find the object's anchor; never to be stored as its data.
        guess = _convert(zip(names, row.cells, strict=False), src)  # a short row: the cells it has
        yield Record(guess, error=problem, **location)  # type: ignore[call-arg]


def _count_problem(row: _Row, header: _Row, src: _Source) -> str:
    """A one-line row with too many or too few cells: a delimiter too many or too few."""
    name = COMMON_DELIMITERS.get(src.delimiter, repr(src.delimiter))
    return (f"{src.label}:{row.line}: {_cells(len(row.cells))} where the header (line {header.line}) has "
            f"{len(header.cells)} columns: a missing or extra {name}, or a cell holding a {name} without quotes "
            "around it; fix the row in the export")


def _swallows(row: _Row, width: int) -> bool:
    """A row spanning lines whose quoted cell swallowed the rows after it (a stray quote): its cell
    count is wrong, or a line inside it has a whole row's cells (an address line has one or two)."""
    return len(row.cells) != width or (width >= 3 and row.inner[1] >= width)


def _swallowed(row: _Row, header: _Row, src: _Source) -> str:
    """That stops the read, because the people on the swallowed rows would silently vanish."""
    width = len(header.cells)
    if len(row.cells) != width:
        what = f"has {_cells(len(row.cells))} where the header (line {header.line}) has {width} columns"
    else:
        what = f"holds line {row.inner[0]}, which splits into the {row.inner[1]} cells of a whole row"
    return (f"{src.label}:{row.quote_line}: a quoted cell opens on this line and runs on to line {row.end}, so "
            f"the row on lines {row.line}-{row.end} {what}: a stray '{QUOTE}' on line {row.quote_line}? Fix "
            "the export and run again (nothing is marked deleted)")


def _convert(cells: Iterable[tuple[str, str]], src: _Source) -> dict[str, Any]:
    """Cells to attributes: empty as null, multi-valued cells split (an empty one is no values)."""
    out: dict[str, Any] = {k: v or None for k, v in cells} if src.empty_as_null else dict(cells)
    for key, separator in src.separators.items():
        if key in out:
            out[key] = [v for v in (out[key] or "").split(separator) if v]
    return out


# ---- small helpers ------------------------------------------------------------------------------


def _field_names(cls: type) -> frozenset[str]:
    """The fields this engine's Record or Page has: newer fields are used only where they exist."""
    return frozenset(f.name for f in dataclasses.fields(cls))


def _reading_codec(encoding: str) -> str:
    """utf-8 is read as utf-8-sig, which skips a byte order mark (Excel writes one) and reads the rest alike."""
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        return encoding  # open() says so; validate reports it first
    return "utf-8-sig" if name == "utf-8" else encoding


def _measuring_codec(codec: str) -> str:
    """The codec that counts bytes without a byte order mark."""
    name = codecs.lookup(codec).name
    return {"utf-8-sig": "utf-8", "utf-16": "utf-16-le", "utf-32": "utf-32-le"}.get(name, name)


def _undecodable(src: _Source, after: int, exc: UnicodeDecodeError) -> str:
    """Where the bytes that are not in the file's encoding are, as file:line and column: the
    decoder failed somewhere in a chunk, so the file is read again, tolerantly, to find the line."""
    try:
        with open(src.path, newline="", encoding=src.codec, errors="surrogateescape") as handle:
            for number, line in enumerate(handle, 1):
                if number >= after and (bad := UNDECODABLE.search(line)):
                    return _decode_message(src, number, _describe_bytes(line, bad))
    except UnicodeDecodeError:  # what surrogateescape cannot carry (bytes below 0x80 in UTF-16)
        pass
    return _decode_message(src, after, f"{exc.reason}, at line {after} or soon after")


def _decode_message(src: _Source, line: int, what: str) -> str:
    return (f"{src.label}:{line}: not {src.encoding} ({what}): connector {src.connector!r} reads this file as "
            f"{src.encoding}. If the export writes another encoding, set it, e.g. `encoding: cp1252` (Windows) "
            f"or `encoding: latin-1`, on connector {src.connector!r}; otherwise the export is damaged on line "
            f"{line}. Nothing was imported from the file")


def _describe_bytes(line: str, bad: re.Match[str]) -> str:
    raw = " ".join(f"0x{ord(c) - 0xDC00:02X}" for c in bad.group()[:8])
    before = line[max(0, bad.start() - 20):bad.start()]
    return f"byte {raw} at column {bad.start() + 1}, after {before!r}"


def _cells(n: int) -> str:
    return "1 cell" if n == 1 else f"{n} cells"


def _size(n: int) -> str:
    return f"{n // MIB} MiB" if n % MIB == 0 else f"{n} bytes"


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _yaml(delimiter: str) -> str:
    return '"\\t"' if delimiter == "\t" else f'"{delimiter}"'
