"""The checks of a manifest that need the mapping layer, and the loader that runs every check.

:mod:`runner.manifest` reads a manifest and checks what it can say without the mapping layer
(YAML, JSON Schema, connector blocks, :mod:`runner.manifest.checks`); this module adds what only
compiling the mappings can tell: expressions (of attributes and match rules) that do not compile,
or that change on every evaluation, and scope filters whose clauses cannot be built. Every check
reports all it finds; nothing stops at the first.

``load(path)`` returns a :class:`Manifest` checked in full or raises :class:`ManifestError`
carrying every problem found, each with file, line, column and JSON path: load a manifest through
here, never through :func:`runner.manifest.load_with_checks` alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from runner.connectors.base import Connector
from runner.errors import Problem
from runner.manifest import Loaded, load_with_checks
from runner.manifest.model import Clause, Group, Manifest, ObjectType, YamlPath
from runner.manifest.yamlfile import Located, quoted
from runner.mapping.expressions import Expression, ExpressionError, compile_expression
from runner.mapping.scope import DATE_OPS, scope_problems

__all__ = ["Loaded", "load", "load_with_connectors", "mapping_problems"]


def load(path: str | Path) -> Manifest:
    return load_with_connectors(path).manifest


def load_with_connectors(path: str | Path) -> Loaded:
    """Load and check ``path`` in full (see :func:`runner.manifest.load_with_checks`, which runs
    :func:`mapping_problems` with the other semantic checks); raise ManifestError listing every problem."""
    return load_with_checks(path, (mapping_problems,))


def mapping_problems(manifest: Manifest, located: Located, connectors: dict[str, Connector]) -> list[Problem]:
    """The problems of each object type's expressions and scope filters."""
    found: list[Problem] = []
    for ot in manifest.object_types:
        found += list(_attribute_problems(ot, located))
        found += list(_scope_problems(ot.scope, located))
        found += list(_scope_problems(ot.target.boundary.scope if ot.target.boundary else None, located))
        found += list(_match_problems(ot, located))
    return found


def _attribute_problems(ot: ObjectType, located: Located) -> Iterator[Problem]:
    for m in ot.mapping:
        proposed = m.proposed
        if proposed is not None and proposed.expression is not None and not m.proposed_only:
            yield from _expression_problems(proposed.expression, (*m.path, "proposed", "expression"), located)
        if m.expression is not None:
            yield from _expression_problems(m.expression, (*m.path, "expression"), located)
            if m.apply != "on_create" and _volatile(m.expression):
                yield located.problem((*m.path, "expression"), f"attribute {quoted(m.target)} changes on every "
                                      "evaluation (now, guid or random_string): add 'apply: on_create', or it "
                                      "is updated on every run")


def _match_problems(ot: ObjectType, located: Located) -> Iterator[Problem]:
    for rule in ot.match:
        if rule.expression is not None:
            yield from _expression_problems(rule.expression, (*rule.path, "expression"), located)


def _compile(text: str) -> Expression:
    """compile_expression, with nesting too deep for JMESPath's recursive parser as an ExpressionError.

    ``((((...))))`` a few hundred levels deep exhausts Python's stack inside jmespath; that is a
    problem with the expression, to report where it is written, not a crash of ``validate``.
    """
    try:
        return compile_expression(text)
    except RecursionError:
        raise ExpressionError(f"cannot parse expression {text!r}: nested too deeply") from None


def _expression_problems(text: str, at: YamlPath, located: Located) -> Iterator[Problem]:
    try:
        _compile(text)
    except ExpressionError as exc:
        # The message quotes the expression with repr(); quoted() keeps secrets maskable.
        yield located.problem(at, str(exc).replace(repr(text), quoted(text)))


def _volatile(text: str) -> bool:
    try:
        return _compile(text).volatile
    except ExpressionError:
        return False


def _find_clause(group: Group | None, path: YamlPath) -> Clause | None:
    for item in group.items if group else ():
        if isinstance(item, Group):
            found = _find_clause(item, path)
            if found is not None:
                return found
        elif item.path == path:
            return item
    return None


def _scope_error_path(scope: Group | None, path: YamlPath, located: Located) -> YamlPath:
    """Point at a clause's ``value`` when the clause is complete and the problem can only be its value."""
    clause = _find_clause(scope, path)
    if clause is not None and clause.attribute and clause.op and (*path, "value") in located.positions:
        return (*path, "value")
    return path


def _clauses(group: Group | None) -> Iterator[Clause]:
    for item in group.items if group else ():
        if isinstance(item, Group):
            yield from _clauses(item)
        else:
            yield item


def _scope_problems(scope: Group | None, located: Located) -> Iterator[Problem]:
    """The scope filter's problems, clause by clause.

    Building a clause's test can fail on values the scope module does not expect: days such as
    "²" or 10**90 (int() and timedelta refuse them), a regular expression nested a thousand
    deep or repeating a{99999999999}. Each is a problem at that clause's value, and the other
    clauses are still checked.
    """
    for clause in _clauses(scope):
        try:
            errors = scope_problems(Group("all", (clause,), clause.path))
        except (ValueError, OverflowError, RecursionError) as exc:
            yield located.problem(_scope_error_path(scope, clause.path, located), _unusable_value(clause, exc))
            continue
        yield from (located.problem(_scope_error_path(scope, e.path, located), str(e)) for e in errors)
        days = _days(clause.value) if clause.op in DATE_OPS and not errors else None
        if days is not None and days > MAX_DAYS:
            yield located.problem(_scope_error_path(scope, clause.path, located), _unusable_value(clause, None))


MAX_DAYS = 100_000  # ~270 years: today plus or minus that is a date the calendar has, for millennia


def _days(value: Any) -> int | None:
    """The whole number of days a date operator reads from ``value`` (as runner.mapping.scope does)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdecimal() and len(value.strip()) <= 20:
        return int(value)
    return None


def _unusable_value(clause: Clause, exc: Exception | None) -> str:
    value = quoted(clause.value)
    if clause.op in DATE_OPS:
        return (f"op {clause.op} needs a whole number of days from 0 to {MAX_DAYS:,} (about 270 years), "
                f"got {value}")
    if clause.op in ("regex_match", "not_regex_match"):
        why = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        return f"invalid regular expression {value}: {why}"
    return f"op {clause.op} cannot use the value {value}: {exc}"
