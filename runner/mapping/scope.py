"""Scoping filters: which source objects an object type provisions.

A filter is ``all:`` / ``any:`` of clauses ``{attribute, op, value}``, nested freely. Null (a
missing attribute, an empty string or an empty list) never matches any operator except
``is_null`` (and ``is_not_null`` is false for it): an HR row with no status is not "not
terminated". Values compare as text when the record holds text (CSV and most HR exports do),
so ``value: true`` matches the cell ``true`` and ``value: 42`` matches ``"42"``. For a
multi-valued attribute (a list), the text operators match when any value matches
(``not_regex_match`` and ``not_in`` when none does).

The date operators compare a date attribute with the current time (``functions.clock``, which
tests replace): a calendar date (2026-04-10) is compared with today's date in UTC, a date with a
time (2026-04-10T08:00:00+02:00) with the current moment. A value that is not a date never
matches. :data:`OPERATORS` documents every operator; docs/mapping-functions.md is generated from it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, timedelta
from typing import Any, TypeGuard

from runner.manifest.model import Clause, Group, YamlPath
from runner.mapping import dotnet_regex, functions
from runner.mapping.functions import FALSE_WORDS, TRUE_WORDS, parse_date

Predicate = Callable[[dict[str, Any]], bool]

OPERATORS: dict[str, tuple[str, str]] = {
    "eq": ("a value", "the attribute equals the value (as text when the attribute is text)"),
    "ne": ("a value", "the attribute is present and differs from the value"),
    "in": ("a list", "the attribute equals one of the values"),
    "includes": ("a list", "the same as `in` (Entra's name)"),
    "not_in": ("a list", "the attribute is present and equals none of the values"),
    "is_null": ("none", "the attribute is missing, null, an empty string or an empty list"),
    "is_not_null": ("none", "the attribute has a value"),
    "is_true": ("none", "the attribute is true, or text true/yes/y/1/on (any case)"),
    "is_false": ("none", "the attribute is false, or text false/no/n/0/off (any case)"),
    "starts_with": ("text", "the attribute starts with the text (case-sensitive)"),
    "ends_with": ("text", "the attribute ends with the text (case-sensitive)"),
    "contains": ("a value", "text: the attribute contains the text; list: one of its values equals the value"),
    "regex_match": ("a regular expression", "the expression matches somewhere in the attribute "
                    "(anchor it with ^...$ for the whole value; (?i) for case-insensitive)"),
    "not_regex_match": ("a regular expression", "the attribute is present and the expression does not match it"),
    "greater_than": ("a number or text", "the attribute is greater: as numbers when both read as numbers, "
                     "else as text (ISO dates order correctly as text); a number never matches a "
                     "value that is not one"),
    "greater_than_or_equal": ("a number or text", "the attribute is greater or equal (as for greater_than)"),
    "less_than": ("a number or text", "the attribute is less (as for greater_than)"),
    "less_than_or_equal": ("a number or text", "the attribute is less or equal (as for greater_than)"),
    "within_next_days": ("days", "the date is today or up to that many days ahead "
                         "(pre-hire provisioning: hire_date within_next_days 14)"),
    "within_last_days": ("days", "the date is today or up to that many days ago"),
    "older_than_days": ("days", "the date is more than that many days ago "
                        "(termination_date older_than_days 30)"),
    "beyond_next_days": ("days", "the date is more than that many days ahead"),
}
"""Every operator: (what ``value`` holds, when the clause matches)."""

NULL_OPS = frozenset({"is_null", "is_not_null"})
NO_VALUE_OPS = NULL_OPS | {"is_true", "is_false"}
LIST_OPS = frozenset({"in", "includes", "not_in"})
DATE_OPS = frozenset({"within_next_days", "within_last_days", "older_than_days", "beyond_next_days"})
_NEGATED = frozenset({"not_in", "not_regex_match"})
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "greater_than": lambda a, b: a > b, "greater_than_or_equal": lambda a, b: a >= b,
    "less_than": lambda a, b: a < b, "less_than_or_equal": lambda a, b: a <= b,
}


class ScopeError(ValueError):
    def __init__(self, path: YamlPath, message: str):
        super().__init__(message)
        self.path = path


def is_null(value: Any) -> bool:
    return value is None or value == "" or value == []


def _same(actual: Any, wanted: Any) -> bool:
    if isinstance(actual, str) and not isinstance(wanted, str):
        if isinstance(wanted, bool):
            return actual.strip().lower() in (TRUE_WORDS if wanted else FALSE_WORDS)
        if isinstance(wanted, float) and wanted.is_integer():
            return actual == str(int(wanted)) or actual == str(wanted)
        return actual == str(wanted)
    return actual == wanted


def _ordered(actual: Any, wanted: Any) -> tuple[Any, Any] | None:
    """Both as numbers when both read as numbers, else both as text (ISO dates order as text);
    None when the value is a number and the attribute is not (10 is not less than "ten")."""
    try:
        return float(actual), float(wanted)
    except (TypeError, ValueError):
        if isinstance(wanted, (int, float)) and not isinstance(wanted, bool):
            return None
        return str(actual), str(wanted)


def _each(test: Callable[[Any], bool]) -> Callable[[Any], bool]:
    """``test`` on a value, or on any value of a list."""
    return lambda v: any(test(x) for x in v if not is_null(x)) if isinstance(v, list) else test(v)


def _days(clause: Clause) -> int:
    value = clause.value
    days = -1
    if isinstance(value, int) and not isinstance(value, bool):
        days = value
    elif (isinstance(value, float) and value.is_integer()) or (isinstance(value, str) and value.strip().isdigit()):
        days = int(value)
    if days < 0:
        raise ScopeError(clause.path, f"op {clause.op} needs a whole number of days (0 or more), got {value!r}")
    return days


def _date_test(op: str, days: int) -> Callable[[Any], bool]:
    span = timedelta(days=days)

    def test(value: Any) -> bool:
        try:
            moment, date_only = parse_date(value)
        except ValueError:
            return False
        now = functions.current_time()
        if date_only:
            this: Any = moment.date()
            ref: Any = now.astimezone(UTC).date()
        else:
            this, ref = moment, now
        if op == "within_next_days":
            return ref <= this <= ref + span
        if op == "within_last_days":
            return ref - span <= this <= ref
        if op == "older_than_days":
            return bool(this < ref - span)
        return bool(this > ref + span)  # beyond_next_days

    return test


def _clause(clause: Clause) -> Predicate:
    name, op, value = clause.attribute, clause.op, clause.value
    if not name:
        raise ScopeError(clause.path, "a clause needs 'attribute' and 'op' (or is a nested all:/any:)")
    if not op:
        raise ScopeError(clause.path, f"clause on {name!r} has no 'op'")
    if op not in OPERATORS:
        raise ScopeError(clause.path, f"unknown op {op!r}; use one of: {', '.join(OPERATORS)}")
    if op in LIST_OPS and not isinstance(value, list):
        raise ScopeError(clause.path, f"op {op} needs a list value, e.g. value: [active, leave]")
    if op in NO_VALUE_OPS and value is not None:
        raise ScopeError(clause.path, f"op {op} takes no value")
    if op not in NO_VALUE_OPS and value is None:
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
    elif op in LIST_OPS:
        test = _each(lambda v: any(_same(v, w) for w in value))
    elif op == "is_true":
        test = lambda v: v is True or (not isinstance(v, bool) and str(v).strip().lower() in TRUE_WORDS)  # noqa: E731
    elif op == "is_false":
        test = lambda v: v is False or (not isinstance(v, bool) and str(v).strip().lower() in FALSE_WORDS)  # noqa: E731
    elif op == "starts_with":
        prefix = str(value)
        test = _each(lambda v: str(v).startswith(prefix))
    elif op == "ends_with":
        suffix = str(value)
        test = _each(lambda v: str(v).endswith(suffix))
    elif op == "contains":
        part = str(value)
        test = lambda v: any(_same(x, value) for x in v) if isinstance(v, list) else part in str(v)  # noqa: E731
    elif op in ("regex_match", "not_regex_match"):
        try:
            pattern = re.compile(dotnet_regex.pattern(str(value)))  # Entra filters are .NET patterns
        except re.error as exc:
            raise ScopeError(clause.path, f"invalid regular expression {value!r}: {exc}") from None
        test = _each(lambda v: pattern.search(str(v)) is not None)
    elif op in _COMPARE:
        compare = _COMPARE[op]

        def test(v: Any) -> bool:
            pair = _ordered(v, value)
            return pair is not None and compare(*pair)
    else:  # DATE_OPS
        test = _date_test(op, _days(clause))
    if op in _NEGATED:
        positive = test
        return lambda r: not is_null(v := r.get(name)) and not positive(v)
    return lambda r: not is_null(v := r.get(name)) and test(v)


def _is_group(item: Clause | Group) -> TypeGuard[Group]:
    return hasattr(item, "items")


def compile_scope(group: Group | None) -> Predicate:
    """A predicate for ``group``; no filter means everything is in scope."""
    if group is None:
        return lambda r: True
    parts = [compile_scope(item) if _is_group(item) else _clause(item) for item in group.items]
    if len(parts) == 1:
        return parts[0]
    if group.kind == "all":
        return lambda r: all(p(r) for p in parts)
    return lambda r: any(p(r) for p in parts)


def scope_problems(group: Group | None) -> list[ScopeError]:
    """Every problem in a filter (compile_scope stops at the first)."""
    problems: list[ScopeError] = []
    if group is None:
        return problems
    for item in group.items:
        if _is_group(item):
            problems += scope_problems(item)
        else:
            try:
                _clause(item)
            except ScopeError as exc:
                problems.append(exc)
    return problems
