"""Scoping filters: which source objects an object type provisions.

A filter is ``all:`` / ``any:`` of clauses ``{attribute, op, value}``, nested freely. Null (a
missing attribute or an empty string) never matches any operator except ``is_null`` (and
``is_not_null`` is false for it): an HR row with no status is not "not terminated".
Values compare as text when the record holds text (CSV and most HR exports do), so
``value: true`` matches the cell ``true`` and ``value: 42`` matches ``"42"``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from runner.manifest.model import Clause, Group, YamlPath

Predicate = Callable[[dict[str, Any]], bool]
NULL_OPS = {"is_null", "is_not_null"}
LIST_OPS = {"in", "not_in"}
_TRUE = {"true", "1", "yes", "y", "on"}
_FALSE = {"false", "0", "no", "n", "off"}


class ScopeError(ValueError):
    def __init__(self, path: YamlPath, message: str):
        super().__init__(message)
        self.path = path


def is_null(value: Any) -> bool:
    return value is None or value == "" or value == []


def _same(actual: Any, wanted: Any) -> bool:
    if isinstance(actual, str) and not isinstance(wanted, str):
        if isinstance(wanted, bool):
            return actual.strip().lower() in (_TRUE if wanted else _FALSE)
        return actual == str(wanted)
    return actual == wanted


def _ordered(actual: Any, wanted: Any) -> tuple[Any, Any]:
    """Both as numbers when both read as numbers, else both as text (ISO dates order as text)."""
    try:
        return float(actual), float(wanted)
    except (TypeError, ValueError):
        return str(actual), str(wanted)


def _clause(clause: Clause) -> Predicate:
    name, op, value = clause.attribute, clause.op, clause.value
    if not name:
        raise ScopeError(clause.path, "a clause needs 'attribute' and 'op' (or is a nested all:/any:)")
    if not op:
        raise ScopeError(clause.path, f"clause on {name!r} has no 'op'")
    if op in LIST_OPS and not isinstance(value, list):
        raise ScopeError(clause.path, f"op {op} needs a list value, e.g. value: [active, leave]")
    if op in NULL_OPS | {"is_true", "is_false"} and value is not None:
        raise ScopeError(clause.path, f"op {op} takes no value")
    if op not in NULL_OPS | {"is_true", "is_false"} and value is None:
        raise ScopeError(clause.path, f"op {op} needs a value")
    if op == "is_null":
        return lambda r: is_null(r.get(name))
    if op == "is_not_null":
        return lambda r: not is_null(r.get(name))

    test: Callable[[Any], bool]
    if op == "eq":
        test = lambda v: _same(v, value)  # noqa: E731
    elif op == "ne":
        test = lambda v: not _same(v, value)  # noqa: E731
    elif op == "in":
        test = lambda v: any(_same(v, w) for w in value)  # noqa: E731
    elif op == "not_in":
        test = lambda v: not any(_same(v, w) for w in value)  # noqa: E731
    elif op == "is_true":
        test = lambda v: v is True or str(v).strip().lower() in _TRUE  # noqa: E731
    elif op == "is_false":
        test = lambda v: v is False or str(v).strip().lower() in _FALSE  # noqa: E731
    elif op == "starts_with":
        test = lambda v: str(v).startswith(str(value))  # noqa: E731
    elif op == "ends_with":
        test = lambda v: str(v).endswith(str(value))  # noqa: E731
    elif op == "contains":
        test = lambda v: str(value) in v if isinstance(v, str) else any(_same(x, value) for x in v)  # noqa: E731
    elif op in ("regex_match", "not_regex_match"):
        try:
            pattern = re.compile(str(value))
        except re.error as exc:
            raise ScopeError(clause.path, f"invalid regular expression {value!r}: {exc}") from None
        negate = op == "not_regex_match"
        test = lambda v: (pattern.search(str(v)) is None) == negate  # noqa: E731
    elif op in ("greater_than", "greater_than_or_equal", "less_than", "less_than_or_equal"):
        compare = {
            "greater_than": lambda a, b: a > b, "greater_than_or_equal": lambda a, b: a >= b,
            "less_than": lambda a, b: a < b, "less_than_or_equal": lambda a, b: a <= b,
        }[op]

        def test(v: Any) -> bool:
            a, b = _ordered(v, value)
            return type(a) is type(b) and compare(a, b)
    else:
        raise ScopeError(clause.path, f"unknown op {op!r}")
    return lambda r: not is_null(v := r.get(name)) and test(v)


def compile_scope(group: Group | None) -> Predicate:
    """A predicate for ``group``; no filter means everything is in scope."""
    if group is None:
        return lambda r: True
    parts = [compile_scope(item) if isinstance(item, Group) else _clause(item) for item in group.items]
    if group.kind == "all":
        return lambda r: all(p(r) for p in parts)
    return lambda r: any(p(r) for p in parts)


def scope_problems(group: Group | None) -> list[ScopeError]:
    """Every problem in a filter (compile_scope stops at the first)."""
    problems: list[ScopeError] = []
    if group is None:
        return problems
    for item in group.items:
        if isinstance(item, Group):
            problems += scope_problems(item)
        else:
            try:
                _clause(item)
            except ScopeError as exc:
                problems.append(exc)
    return problems
