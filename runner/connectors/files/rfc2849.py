"""LDIF (RFC 2849): writing content and change records, and reading them back.

Pure functions, no I/O. Writing follows the RFC's rules where it decides:

* a value is written as ``attr: value`` only when it is a SAFE-STRING (RFC 2849 §"Formal Syntax
  Definition": ASCII without NUL, LF or CR, not starting with a space, a colon or "<"), and does
  not end with a space (note 8); anything else, binary and non-ASCII text included, is written
  base64-encoded as ``attr:: ...`` (note 4). DNs, ``newrdn`` and ``newsuperior`` alike.
* lines longer than 76 characters are folded: continued on the next line after one space (note 2).
* a file starts with ``version: 1``; records are separated by a blank line.

ldap3 has an LDIF writer (``ldap3.protocol.rfc2849``), but it folds at a process-wide length
(78 by default) and takes request dictionaries; it has no reader. The reader here understands
what the writer writes and what OpenLDAP's tools write: comments, folded lines, base64 values;
``attr:< URL`` values are refused (nothing here fetches files).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

WIDTH = 76
VERSION = "version: 1"
_ATTRIBUTE = re.compile(r"^(?:[A-Za-z][A-Za-z0-9-]*|[0-9]+(?:\.[0-9]+)*)(?:;[A-Za-z0-9-]+)*$")


class LdifError(ValueError):
    """Text that is not LDIF this reader understands; ``line`` is where (1-based)."""

    def __init__(self, line: int, message: str):
        super().__init__(f"line {line}: {message}")
        self.line, self.message = line, message


def valid_attribute(name: str) -> bool:
    """An AttributeDescription: a name or OID with options (RFC 4512 §2.5)."""
    return bool(_ATTRIBUTE.match(name))


def is_safe(value: str) -> bool:
    """Whether ``value`` may be written as it is (a SAFE-STRING not ending with a space)."""
    if not value:
        return True
    if not value.isascii() or value[0] in " :<" or value[-1] == " ":
        return False
    return not any(c in value for c in "\0\n\r")


def value_line(attribute: str, value: str | bytes) -> str:
    """``attribute: value``, or ``attribute:: base64`` when the RFC requires it."""
    if isinstance(value, str) and is_safe(value):
        return f"{attribute}: {value}" if value else f"{attribute}:"
    raw = value if isinstance(value, bytes) else value.encode("utf-8")
    return f"{attribute}:: {base64.b64encode(raw).decode('ascii')}"


def fold(line: str, width: int = WIDTH) -> list[str]:
    """A line as lines of at most ``width`` characters, each continuation after one space."""
    if len(line) <= width:
        return [line]
    out = [line[:width]]
    out += [" " + line[i:i + width - 1] for i in range(width, len(line), width - 1)]
    return out


def comment(text: str) -> str:
    """A comment line (control characters replaced, so it stays one line)."""
    return "# " + re.sub(r"[\x00-\x1f\x7f]", "?", text)


def record(lines: Iterable[str]) -> str:
    """One record: its lines folded, ended by the blank line that separates records."""
    return "".join(f"{part}\n" for line in lines for part in fold(line)) + "\n"


# ---- reading ------------------------------------------------------------------------------------


@dataclass
class LdifRecord:
    """One record as read: its DN, its lines as (attribute, value) in order, and where it starts.

    A change record's ``changetype`` and the lines after it stay in ``lines`` (modify records
    keep their ``replace:``/``-`` lines there), so :func:`attributes` is only meaningful for
    content records (``changetype`` None)."""

    dn: str
    line: int
    changetype: str | None = None
    lines: list[tuple[str, str]] = field(default_factory=list)

    def attributes(self) -> dict[str, list[str]]:
        """A content record's attributes, each with its values in order (names as first written)."""
        out: dict[str, list[str]] = {}
        spelled: dict[str, str] = {}
        for name, value in self.lines:
            key = spelled.setdefault(name.casefold(), name)
            out.setdefault(key, []).append(value)
        return out


def parse(text: str) -> Iterator[LdifRecord]:
    """The records of an LDIF text (content or change records). Raises LdifError at the line."""
    current: LdifRecord | None = None
    for number, line in _logical_lines(text):
        if line is None:  # a blank line ends a record
            if current is not None:
                yield current
                current = None
            continue
        name, value = _attrval(line, number)
        if current is None:
            if name.casefold() == "version":
                if value.strip() != "1":
                    raise LdifError(number, f"LDIF version {value!r}; only version 1 exists")
                continue
            if name.casefold() != "dn":
                raise LdifError(number, f"a record starts with dn:, not {name}:")
            current = LdifRecord(value, number)
            continue
        if name.casefold() == "dn":
            raise LdifError(number, "a second dn: in one record (a blank line must separate records)")
        if name.casefold() == "changetype" and current.changetype is None and not current.lines:
            current.changetype = value.strip().lower()
            continue
        if name != "-" and not valid_attribute(name):
            raise LdifError(number, f"{name!r} is not an attribute name")
        current.lines.append((name, value))
    if current is not None:
        yield current


def _logical_lines(text: str) -> Iterator[tuple[int, str | None]]:
    """(line number, unfolded line) with comments dropped; None for a blank line."""
    physical = text.splitlines()
    buffer: str | None = None
    start = 0
    is_comment = False
    for number, line in enumerate(physical, 1):
        if line.startswith(" ") and buffer is not None:
            buffer += line[1:]
            continue
        if line.startswith(" ") and is_comment:
            continue
        if buffer is not None:
            yield start, buffer
            buffer = None
        is_comment = line.startswith("#")
        if is_comment:
            continue
        if not line.strip():
            yield number, None
            continue
        if line.startswith(" "):
            raise LdifError(number, "a continuation line (starting with a space) with no line before it")
        buffer, start = line, number
    if buffer is not None:
        yield start, buffer


def _attrval(line: str, number: int) -> tuple[str, str]:
    if line == "-":
        return "-", ""
    name, colon, rest = line.partition(":")
    if not colon:
        raise LdifError(number, f"{_clip(line)!r} has no ':'")
    if rest.startswith(":"):
        try:
            raw = base64.b64decode(rest[1:].strip(), validate=True)
        except ValueError:
            raise LdifError(number, f"the value of {name} is not base64") from None
        try:
            return name, raw.decode("utf-8")
        except UnicodeDecodeError:
            raise LdifError(number, f"the value of {name} is binary (not UTF-8 text), which this connector "
                                    "does not keep") from None
    if rest.startswith("<"):
        raise LdifError(number, f"the value of {name} is a URL ({_clip(rest[1:].strip())}), which this connector "
                                "does not read")
    return name, rest.lstrip(" ")


def _clip(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def modify_lines(replace: Sequence[tuple[str, Sequence[str]]], add: Sequence[tuple[str, Sequence[str]]],
                 delete: Sequence[tuple[str, Sequence[str]]]) -> list[str]:
    """The body of a ``changetype: modify`` record: each change, its values, then ``-``.
    A replace with no values removes the attribute (RFC 4511 §4.6), whether or not it is there."""
    lines: list[str] = []
    for op, changes in (("replace", replace), ("add", add), ("delete", delete)):
        for attribute, values in changes:
            lines.append(f"{op}: {attribute}")
            lines += [value_line(attribute, v) for v in values]
            lines.append("-")
    return lines
