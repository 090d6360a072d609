"""Read YAML keeping the line and column of every value and key, and resolve ``${...}`` references.

PyYAML's composer gives nodes with marks; we build plain Python data from them ourselves so that
each value's position is recorded under its path (``("object_types", 0, "mapping")``). That is
what lets every later problem say ``file:line:col``.

Interpolation in string values:
  ``${env:NAME}``            the variable's value; an error if it is not set
  ``${env:NAME:-default}``   the value, or ``default`` when unset or empty
  ``${file:PATH}``           the file's content without its final newline (PATH relative to the
                             manifest); always treated as a secret
  ``$${``                    a literal ``${``

A relative path in a variable means what it means in the shell that set it: one relative to the
working directory, which :func:`from_working_dir` makes absolute here (``PROVISION_DATA=hr`` is
``$PWD/hr``). Paths written in the manifest, defaults included, stay relative to the manifest's
folder: the connectors and the state store resolve them there.

Limits, so that a hostile or mistaken file (a data dump passed by mistake, a "billion laughs"
alias bomb) is refused in well under a second instead of taking the machine's memory. This
parser is pure Python (we need every node's position): it spends about 5 s and 100 MB per MB of
YAML, about 65 µs per value. A hand-written manifest is a few KB (the quickstart: 2.5 KB, ~150
values), a large mapping-tests file a few hundred KB.
  :data:`MAX_BYTES`   2 MiB per file: ~800 times the quickstart, at most ~10 s to read.
  :data:`MAX_VALUES`  100,000 values, counted with aliases expanded. An alias costs nothing to
                      write but as much as its anchor to build and check: nine levels of nine
                      aliases are 387 million values. Refused while composing, at the alias.
  :data:`MAX_DEPTH`   100 levels of nesting. 30 nested all:/any: groups, more than anyone
                      writes, are 66; composing runs out of Python's stack at about 300.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from runner import secrets
from runner.errors import Problem

Path_ = tuple[str | int, ...]
# $${ (a literal), ${body}, or a ${ that is never closed
_REF = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
MAX_BYTES = 2 * 1024 * 1024
MAX_VALUES = 100_000
MAX_DEPTH = 100
MAX_FILE_REF_BYTES = 1024 * 1024  # ${file:...}: a password, a key or a certificate chain, not a disk image
MAX_INT_DIGITS = 100  # no identity attribute needs more; repr() refuses ints of over 4300 digits
# Thrown by PyYAML's scalar constructors for values the resolver accepted: 2020-13-45 (a date
# with month 13), !!int abc, !!bool maybe, !!float "" ...
_CONSTRUCT_ERRORS = (ValueError, TypeError, OverflowError, LookupError, AttributeError)


_REFERENCE = re.compile(r"(?<!\$)\$\{(?:env|file):")


class FromOutside(str):
    """A manifest value that came from ``${env:...}`` or ``${file:...}``: whatever the variable's
    name, it may be a secret, so a mapping that sends it to the target treats it as sensitive
    (a digest in the state store, ``***`` in every log)."""


@dataclass
class Located:
    """Data read from one or more YAML files, with where each piece came from."""

    data: Any = None
    positions: dict[Path_, tuple[str, int, int]] = field(default_factory=dict)
    key_positions: dict[Path_, tuple[str, int, int]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def where(self, path: Path_, key: bool = False) -> tuple[str, int, int]:
        """Position of ``path``, or of its nearest ancestor that has one."""
        table = self.key_positions if key else self.positions
        p = tuple(path)
        while p:
            if p in table:
                return table[p]
            if not key and p in self.key_positions:
                return self.key_positions[p]
            p = p[:-1]
        return self.positions.get((), ("?", 1, 1))

    def problem(self, path: Path_, message: str, key: bool = False) -> Problem:
        file, line, col = self.where(path, key)
        return Problem(file, line, col, dotted(path), message)


_PLAIN_KEY = re.compile(r"[A-Za-z0-9_$-]+")


def dotted(path: Path_) -> str:
    """``("object_types", 0, "mapping")`` -> ``object_types[0].mapping``.

    A key that is not a plain name is written ``["my key"]``, whitespace escaped: a problem's path
    is one word, so ``FILE:LINE:COL: path: message`` can still be split (``' ': x`` is valid YAML).
    """
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(str(part)):
            out += ("." if out else "") + str(part)
        else:
            out += "[" + re.sub(r"\s", lambda m: f"\\u{ord(m[0]):04x}", json.dumps(str(part), ensure_ascii=False)) + "]"
    return out


def read_yaml(file: Path, located: Located, at: Path_ = (), display: str | None = None) -> Any:
    """Parse ``file`` into plain data, recording positions under ``at`` in ``located``.

    Problems (syntax errors, duplicate keys, missing variables) are appended to
    ``located.problems``; the returned data is None if the file could not be parsed.
    """
    name = display or str(file)
    text = _read_text(file, name, at, located)
    if text is None:
        return None
    loader: _Loader | None = None
    try:
        loader = _Loader(text)
        node = loader.get_single_node()
        if node is None:
            located.problems.append(Problem(name, 1, 1, dotted(at), "the file is empty"))
            return None
        builder = _Builder(loader, name, file.parent, located)
        return builder.build(node, at)
    except yaml.MarkedYAMLError as exc:
        line, col, what = _syntax_error(exc, text)
        located.problems.append(Problem(name, line, col, dotted(at), f"YAML syntax error: {what}"))
        return None
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow, e.g. NUL or U+FFFE
        line, col = _line_col(text, exc.position)
        located.problems.append(Problem(name, line, col, dotted(at), _bad_character(exc.character)))
        return None
    except yaml.YAMLError as exc:
        located.problems.append(Problem(name, 1, 1, dotted(at), f"YAML error: {exc}"))
        return None
    finally:
        if loader is not None:
            loader.dispose()


def _read_text(file: Path, name: str, at: Path_, located: Located) -> str | None:
    """The file's text, or None with a problem: unreadable, larger than MAX_BYTES, not UTF-8.

    At most MAX_BYTES + 1 bytes are read, so ``provision validate /dev/zero`` ends at once.
    """
    try:
        with open(file, "rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        located.problems.append(Problem(name, 1, 1, dotted(at), f"cannot read file: {_os_reason(exc)}"))
        return None
    except ValueError:  # a NUL in the path
        located.problems.append(Problem(name, 1, 1, dotted(at), "cannot read file: the path contains a NUL"))
        return None
    if len(data) > MAX_BYTES:
        located.problems.append(Problem(name, 1, 1, dotted(at), f"the file is larger than {MAX_BYTES // 1024 // 1024} "
                                        "MiB; a manifest is a few KB (is this the right file?)"))
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        col = len(data[data.rfind(b"\n", 0, exc.start) + 1:exc.start].decode("utf-8", "replace")) + 1
        located.problems.append(Problem(name, line, col, dotted(at),
                                        f"not UTF-8 text (byte 0x{data[exc.start]:02x}); save the file as UTF-8"))
        return None


def _os_reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def _line_col(text: str, index: int) -> tuple[int, int]:
    """1-based line and column of character ``index`` of ``text``."""
    index = max(0, min(index, len(text)))
    return text.count("\n", 0, index) + 1, index - (text.rfind("\n", 0, index) + 1) + 1


def _bad_character(char: int | str) -> str:
    code = char if isinstance(char, int) else ord(char)
    escape = f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"
    return (f"YAML syntax error: the character U+{code:04X} is not allowed in YAML text; "
            f'inside double quotes write it as the escape "{escape}"')


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses what would make building the data hang or blow up, at the node.

    An alias inside the collection it names (``a: &x [*x]``): PyYAML composes it happily and
    anything walking it recurses forever. More than MAX_VALUES values once aliases are expanded
    (an alias bomb), or nesting deeper than MAX_DEPTH. Each is a syntax error located at the
    alias or the node, raised while composing, before anything is expanded.
    """

    def __init__(self, stream: str):
        super().__init__(stream)
        self._open_anchors: dict[str, yaml.Mark] = {}
        self._sizes: dict[str, int] = {}  # anchor -> values it stands for, its own aliases expanded
        self._values = 0
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            self._check_alias(event)
            node = super().compose_node(parent, index)
            self._count(self._sizes.get(event.anchor, 1), event.start_mark, f"the alias *{event.anchor}")
            return node
        if self._depth >= MAX_DEPTH:
            raise yaml.composer.ComposerError(None, None, f"nested more than {MAX_DEPTH} levels deep; "
                                              "a manifest is never this deep", event.start_mark)
        before = self._values
        self._count(1, event.start_mark, "this value")
        self._depth += 1
        try:
            node = self._compose_anchored(event, parent, index)
        finally:
            self._depth -= 1
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            self._sizes[anchor] = self._values - before
        return node

    def _check_alias(self, event: yaml.AliasEvent) -> None:
        if event.anchor in self._open_anchors:
            raise yaml.composer.ComposerError(
                f"while composing the anchor &{event.anchor}", self._open_anchors[event.anchor],
                f"the alias *{event.anchor} sits inside the anchor it refers to; "
                "a manifest value cannot contain itself", event.start_mark)

    def _count(self, values: int, mark: yaml.Mark, what: str) -> None:
        self._values += values
        if self._values > MAX_VALUES:
            raise yaml.composer.ComposerError(
                None, None, f"{what} brings the document past {MAX_VALUES:,} values once aliases are "
                "expanded; refusing to expand it (anchors that repeat anchors multiply: an alias bomb)", mark)

    def _compose_anchored(self, event: yaml.Event, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        """Compose a node, remembering while inside a collection's anchor that it is open."""
        anchor = getattr(event, "anchor", None)
        if anchor is None or not isinstance(event, yaml.CollectionStartEvent):
            return super().compose_node(parent, index)
        outer = self._open_anchors.get(anchor)
        self._open_anchors[anchor] = event.start_mark
        try:
            return super().compose_node(parent, index)
        finally:
            if outer is None:
                del self._open_anchors[anchor]
            else:
                self._open_anchors[anchor] = outer


def _syntax_error(exc: yaml.MarkedYAMLError, text: str) -> tuple[int, int, str]:
    """Line, column and a one-line description of a YAML syntax error.

    PyYAML reports "while parsing X (context), expected Y (problem)". The problem mark is where
    the parser gave up; when that is the end of the file (an unclosed ``[`` or ``{``), the
    context mark, where the unclosed thing started, is the line to fix.
    """
    problem, context = exc.problem_mark, exc.context_mark
    mark = problem or context
    if problem is not None and context is not None and not text[problem.index:].strip():
        mark = context
    line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    what = exc.problem or exc.context or "invalid YAML"
    if exc.problem and exc.context and exc.problem.startswith("but "):  # "expected one document but found..."
        what = f"{exc.context} {exc.problem}"
    elif exc.problem and exc.context:
        where = f" started at line {context.line + 1}, column {context.column + 1}" if context else ""
        what += f" ({exc.context}{where})"
    return line, col, " ".join(what.split())


def quoted(value: Any) -> str:
    """``value`` for a one-line message: secrets masked first, then quoted without repr's escaping.

    repr() doubles backslashes and escapes quotes, so a registered secret containing either
    would no longer match and would slip past redaction. Redact the raw text first, then only
    make line breaks visible so a problem stays on one line.
    """
    if not isinstance(value, str):
        return repr(value)
    return f"'{one_line(secrets.redact(value))}'"


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_ESCAPES = {"\r": "\\r", "\n": "\\n", "\t": "\\t"}


# Settings that name a file or folder (a connector's path, wsdl, init_sql, ca_file; the state store;
# the provisioning log; a mapping file): a variable standing alone there is a path or a URL.
_PATH_SETTINGS = {("state",), ("log_file",)}
_CONNECTOR_PATHS = {"path", "wsdl", "init_sql", "ca_file"}
_SQLITE = "sqlite:///"
_URL_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")


def from_working_dir(value: str, path: Path_, before: str) -> str:
    """``value``, a variable's, made absolute from the working directory where it is a relative path.

    ``before`` is what the manifest wrote ahead of the reference: a relative path is recognised in a
    SQLite URL (``sqlite:///${env:X}``, or a variable holding ``sqlite:///hr.db`` anywhere), and in a
    setting that names a file when the reference starts the value (``path: "${env:PROVISION_DATA}"``).
    Anything else (a DN, a user name, an http URL, a REST object's path) is left as it is.
    """
    if before == _SQLITE:
        return _absolute(value)
    if before:
        return value
    if value.startswith(_SQLITE):
        database, query, rest = value[len(_SQLITE):].partition("?")
        if database and database != ":memory:" and not database.startswith("/"):
            return _SQLITE + _absolute(database) + query + rest
        return value
    if _names_a_file(path) and not _URL_SCHEME.match(value):
        return _absolute(value)
    return value


def _names_a_file(path: Path_) -> bool:
    if path in _PATH_SETTINGS:
        return True
    return len(path) == 3 and ((path[0] == "connectors" and path[2] in _CONNECTOR_PATHS)
                               or (path[0] == "object_types" and path[2] == "mapping"))


def _absolute(value: str) -> str:
    """A relative path from the working directory; absolute paths, ``~`` and empty values as they are."""
    if not value or value.startswith(("/", "~")) or value == ":memory:":
        return value
    return os.path.abspath(value)


def one_line(text: str) -> str:
    """``text`` with line breaks, tabs and other control characters (NUL, ESC, lone surrogates) escaped.

    A problem is one line on a terminal: a raw ESC could recolour it, a NUL or a lone surrogate
    could not even be printed to a UTF-8 stream.
    """
    return _CONTROL.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    char = match[0]
    if char in _ESCAPES:
        return _ESCAPES[char]
    return f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"


class _Builder:
    def __init__(self, loader: yaml.SafeLoader, name: str, base_dir: Path, located: Located):
        self.loader, self.name, self.base_dir, self.located = loader, name, base_dir, located
        self._merged: dict[int, int] = {}  # id(mapping node) -> how many of its pairs came from <<: merges

    def pos(self, node: yaml.Node) -> tuple[str, int, int]:
        return (self.name, node.start_mark.line + 1, node.start_mark.column + 1)

    def build(self, node: yaml.Node, path: Path_) -> Any:
        self.located.positions[path] = self.pos(node)
        if isinstance(node, yaml.MappingNode):
            return self.mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        value = self.scalar(node, path)
        if isinstance(value, str) and "${" in value:
            interpolated = self.interpolate(value, path, node)
            value = FromOutside(interpolated) if _REFERENCE.search(value) else interpolated
        if isinstance(value, str):
            secrets.register_url_password(value)
        return value

    def mapping(self, node: yaml.MappingNode, path: Path_) -> dict[str, Any]:
        """A mapping; a key written twice is a problem, a key overriding a ``<<:`` merge is not.

        PyYAML puts the merged pairs first; the first merged mapping wins among them (YAML's
        merge rule), a key written in the mapping itself wins over all of them.
        """
        merged = self.merged_pairs(node)
        out: dict[str, Any] = {}
        written: set[str] = set()
        for i, (key_node, value_node) in enumerate(node.value):
            key = self.key(key_node, path)
            if key is None:
                continue
            child = (*path, key)
            if i < merged:
                if key in out:
                    continue
            elif key in written:
                first = self.located.key_positions[child]
                self.located.problems.append(Problem(
                    *self.pos(key_node), dotted(child),
                    f"duplicate key {key!r} (first at line {first[1]}); the later one would win silently"))
            else:
                written.add(key)
            self.located.key_positions[child] = self.pos(key_node)
            out[key] = self.build(value_node, child)
        return out

    def merged_pairs(self, node: yaml.MappingNode) -> int:
        """Flatten ``<<:`` merges into ``node``; how many of its pairs came from them.

        Remembered per node: an anchored mapping built again through an alias is already flat.
        """
        if id(node) not in self._merged:
            written = sum(1 for k, _ in node.value if k.tag != "tag:yaml.org,2002:merge")
            self.loader.flatten_mapping(node)
            self._merged[id(node)] = len(node.value) - written
        return self._merged[id(node)]

    def key(self, node: yaml.Node, path: Path_) -> str | None:
        """A mapping key as a name: ``null:``, ``true:`` or ``1:`` mean the word as written.

        A list or mapping as a key (``? [a, b]``) names nothing: a problem, and the pair is left out.
        """
        if not isinstance(node, yaml.ScalarNode):
            self.fail(node, path, "a key must be a name, not a list or a mapping")
            return None
        try:
            key = self.loader.construct_object(node, deep=True)
        except _CONSTRUCT_ERRORS:
            return str(node.value)
        return key if isinstance(key, str) else str(node.value)

    def scalar(self, node: yaml.Node, path: Path_) -> Any:
        """A scalar's value; None (and a problem) for one PyYAML cannot construct or a huge number."""
        try:
            value = self.loader.construct_object(node, deep=True)
        except _CONSTRUCT_ERRORS as exc:
            if node.tag == "tag:yaml.org,2002:int" and str(node.value).lstrip("+-").replace("_", "").isdigit():
                self.fail(node, path, f"number with more than {MAX_INT_DIGITS} digits; quote it if it is text")
            else:
                what = node.tag.rsplit(":", 1)[-1]
                self.fail(node, path, f"cannot read {quoted(str(node.value))} as a {what}: {exc} "
                                      "(quote it if it is text)")
            return None
        if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > MAX_INT_DIGITS * 10 // 3:
            self.fail(node, path, f"number with more than {MAX_INT_DIGITS} digits; quote it if it is text")
            return None
        return value

    def interpolate(self, text: str, path: Path_, node: yaml.Node) -> str:
        key_name = next((str(p) for p in reversed(path) if isinstance(p, str)), "")

        def replace(match: re.Match[str]) -> str:
            if match.group(0) == "$${":
                return "${"
            body = match.group(1)
            if body is None:
                self.fail(node, path, "'${' is not closed: write ${env:NAME} or ${file:PATH} (or $${ for a "
                                      "literal ${)")
                return ""
            kind, _, rest = body.partition(":")
            if kind == "env":
                return self.env(rest, body, key_name, path, node, text[:match.start()])
            if kind == "file":
                return self.file(rest, path, node)
            self.fail(node, path, f"{quoted('${' + body + '}')}: unknown reference; use ${{env:NAME}} or "
                                  "${file:PATH} (write $${ for a literal ${)")
            return ""

        return _REF.sub(replace, text)

    def env(self, rest: str, body: str, key_name: str, path: Path_, node: yaml.Node, before: str = "") -> str:
        """``${env:NAME}`` or ``${env:NAME:-default}``: the variable's value (a relative path in it made
        absolute from the working directory); secret-looking ones registered."""
        name, has_default, default = rest.partition(":-")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            self.fail(node, path, f"{quoted('${' + body + '}')}: not a valid environment variable name")
            return ""
        value = os.environ.get(name)
        if value is None or (has_default and value == ""):
            if not has_default:
                self.fail(node, path, f"environment variable {name} is not set "
                          f"(set it, or write ${{env:{name}:-default}})")
                return ""
            return default
        if secrets.looks_secret(name, key_name):
            secrets.register(value)
        return from_working_dir(value, path, before)

    def file(self, rest: str, path: Path_, node: yaml.Node) -> str:
        """``${file:PATH}``: the file's text without its final newline, always a secret.

        Read bounded (a reference to /dev/zero or a disk image must not fill the memory), and
        as UTF-8 text: a binary file is a problem at the reference, not a crash.
        """
        shown = quoted("${file:" + rest + "}")
        if not rest.strip():
            self.fail(node, path, f"{shown}: give a file path (relative to the manifest)")
            return ""
        try:
            target = (self.base_dir / rest).expanduser()
            with open(target, "rb") as handle:
                data = handle.read(MAX_FILE_REF_BYTES + 1)
        except OSError as exc:
            self.fail(node, path, f"{shown}: cannot read {quoted(str(self.base_dir / rest))}: {_os_reason(exc)}")
            return ""
        except (ValueError, RuntimeError):  # a NUL in the path; ~user that does not exist
            self.fail(node, path, f"{shown}: not a usable file path")
            return ""
        if len(data) > MAX_FILE_REF_BYTES:
            self.fail(node, path, f"{shown}: the file is larger than {MAX_FILE_REF_BYTES // 1024} KiB; "
                                  "a ${file:} reference is for a password, key or certificate")
            return ""
        try:
            value = data.decode("utf-8").removesuffix("\n")
        except UnicodeDecodeError:
            self.fail(node, path, f"{shown}: the file is not UTF-8 text")
            return ""
        secrets.register(value)
        return value

    def fail(self, node: yaml.Node, path: Path_, message: str) -> None:
        self.located.problems.append(Problem(*self.pos(node), dotted(path), message))
