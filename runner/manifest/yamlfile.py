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
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from runner import secrets
from runner.errors import Problem

Path_ = tuple[str | int, ...]
_REF = re.compile(r"\$\$\{|\$\{([^}]*)\}")


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


def dotted(path: Path_) -> str:
    """``("object_types", 0, "mapping")`` -> ``object_types[0].mapping``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def read_yaml(file: Path, located: Located, at: Path_ = (), display: str | None = None) -> Any:
    """Parse ``file`` into plain data, recording positions under ``at`` in ``located``.

    Problems (syntax errors, duplicate keys, missing variables) are appended to
    ``located.problems``; the returned data is None if the file could not be parsed.
    """
    name = display or str(file)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        located.problems.append(Problem(name, 1, 1, dotted(at), f"cannot read file: {exc.strerror}"))
        return None
    except UnicodeDecodeError:
        located.problems.append(Problem(name, 1, 1, dotted(at), "not UTF-8 text"))
        return None
    loader = _Loader(text)
    try:
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
    except yaml.YAMLError as exc:
        located.problems.append(Problem(name, 1, 1, dotted(at), f"YAML error: {exc}"))
        return None
    finally:
        loader.dispose()


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses an alias inside the collection it names (``a: &x [*x]``).

    PyYAML composes such a structure happily and anything walking it recurses forever; here it
    is a syntax error located at the alias.
    """

    def __init__(self, stream: str):
        super().__init__(stream)
        self._open_anchors: dict[str, yaml.Mark] = {}

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) and event.anchor in self._open_anchors:
            raise yaml.composer.ComposerError(
                f"while composing the anchor &{event.anchor}", self._open_anchors[event.anchor],
                f"the alias *{event.anchor} sits inside the anchor it refers to; "
                "a manifest value cannot contain itself", event.start_mark)
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
    text = secrets.redact(value).replace("\r", "\\r").replace("\n", "\\n").replace("\t", "\\t")
    return f"'{text}'"


class _Builder:
    def __init__(self, loader: yaml.SafeLoader, name: str, base_dir: Path, located: Located):
        self.loader, self.name, self.base_dir, self.located = loader, name, base_dir, located

    def pos(self, node: yaml.Node) -> tuple[str, int, int]:
        return (self.name, node.start_mark.line + 1, node.start_mark.column + 1)

    def build(self, node: yaml.Node, path: Path_) -> Any:
        self.located.positions[path] = self.pos(node)
        if isinstance(node, yaml.MappingNode):
            self.loader.flatten_mapping(node)
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                key = self.loader.construct_object(key_node, deep=True)
                if not isinstance(key, str):
                    # keys are names: `null:`, `true:` or `1:` mean the word as written, not YAML's value
                    key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key)
                child = (*path, key)
                if key in out:
                    first = self.located.key_positions[child]
                    self.located.problems.append(Problem(
                        *self.pos(key_node), dotted(child),
                        f"duplicate key {key!r} (first at line {first[1]}); the later one would win silently"))
                self.located.key_positions[child] = self.pos(key_node)
                out[key] = self.build(value_node, child)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        value = self.loader.construct_object(node, deep=True)
        if isinstance(value, str) and "${" in value:
            return self.interpolate(value, path, node)
        return value

    def interpolate(self, text: str, path: Path_, node: yaml.Node) -> str:
        key_name = next((str(p) for p in reversed(path) if isinstance(p, str)), "")

        def replace(match: re.Match[str]) -> str:
            if match.group(0) == "$${":
                return "${"
            body = match.group(1)
            kind, _, rest = body.partition(":")
            if kind == "env":
                name, has_default, default = rest.partition(":-")
                if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                    self.fail(node, path, f"'${{{body}}}': not a valid environment variable name")
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
                return value
            if kind == "file":
                target = (self.base_dir / rest).expanduser()
                try:
                    value = target.read_text(encoding="utf-8").removesuffix("\n")
                except OSError as exc:
                    self.fail(node, path, f"'${{file:{rest}}}': cannot read {target}: {exc.strerror}")
                    return ""
                secrets.register(value)
                return value
            self.fail(node, path, f"'${{{body}}}': unknown reference; use ${{env:NAME}} or ${{file:PATH}} "
                                  "(write $${ for a literal ${)")
            return ""

        result = _REF.sub(replace, text)
        secrets.register_url_password(result)
        return result

    def fail(self, node: yaml.Node, path: Path_, message: str) -> None:
        self.located.problems.append(Problem(*self.pos(node), dotted(path), message))
