"""Scoping filters: every operator, nulls, lists, nesting, dates relative to a fixed now, and errors."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from runner.manifest.model import Clause, Group
from runner.mapping import functions
from runner.mapping.scope import OPERATORS, ScopeError, compile_scope, is_null, scope_problems

REPO = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 3, 29, 1, 30, tzinfo=UTC)  # 03:30 in Oslo, just after the switch to summer time


@pytest.fixture(autouse=True)
def fixed_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(functions, "clock", lambda: NOW)


def where(attribute: str, op: str, value: Any = None) -> Group:
    return Group("all", (Clause(attribute, op, value, ("scope", "all", 0)),), ("scope",))


def matches(op: str, value: Any, actual: Any) -> bool:
    return compile_scope(where("x", op, value))({"x": actual})


def problems(group: Group) -> list[str]:
    return [str(p) for p in scope_problems(group)]


NULLS = [None, "", []]


def test_every_operator_is_documented_and_allowed_by_the_schema() -> None:
    schema = json.loads((REPO / "runner" / "schemas" / "manifest.schema.json").read_text())
    assert set(schema["$defs"]["scope_item"]["properties"]["op"]["enum"]) == set(OPERATORS)
    entra = {"eq", "ne", "is_true", "is_false", "is_null", "is_not_null", "regex_match", "not_regex_match",
             "greater_than", "greater_than_or_equal", "less_than", "less_than_or_equal", "includes",
             "ends_with", "starts_with", "contains"}
    assert entra <= set(OPERATORS)


def test_is_null_helper() -> None:
    assert all(is_null(v) for v in NULLS)
    assert not any(is_null(v) for v in (0, False, "0", " ", ["a"]))


@pytest.mark.parametrize(("op", "value"), [
    ("eq", "active"), ("ne", "active"), ("in", ["active"]), ("includes", ["active"]), ("not_in", ["active"]),
    ("is_true", None), ("is_false", None), ("starts_with", "a"), ("ends_with", "e"), ("contains", "c"),
    ("regex_match", ".*"), ("not_regex_match", "x"), ("greater_than", 0), ("greater_than_or_equal", 0),
    ("less_than", 9), ("less_than_or_equal", 9), ("within_next_days", 14), ("within_last_days", 14),
    ("older_than_days", 0), ("beyond_next_days", 0),
])
def test_null_never_matches(op: str, value: Any) -> None:
    for null in NULLS:
        assert not matches(op, value, null), (op, null)
    assert not compile_scope(where("x", op, value))({})


def test_null_operators() -> None:
    for null in NULLS:
        assert matches("is_null", None, null) and not matches("is_not_null", None, null)
    for value in ("Zoë", 0, False, ["a"], " "):
        assert not matches("is_null", None, value) and matches("is_not_null", None, value)
    assert compile_scope(where("x", "is_null"))({})


def test_eq_and_ne() -> None:
    assert matches("eq", "Ødegård", "Ødegård")
    assert not matches("eq", "Ødegård", "ødegård")  # case-sensitive, like Entra
    assert not matches("eq", "Ødegård", "Odegard")
    assert matches("eq", 42, "42") and matches("eq", 42, 42)
    assert matches("eq", 42.0, "42")
    assert matches("eq", True, "true") and matches("eq", True, "Yes") and matches("eq", False, "0")
    assert matches("ne", "terminated", "active")
    assert not matches("ne", "active", "active")
    assert matches("ne", 7, "8")


def test_in_includes_not_in() -> None:
    for op in ("in", "includes"):
        assert matches(op, ["active", "leave"], "leave")
        assert not matches(op, ["active", "leave"], "terminated")
        assert matches(op, [1, 2], "2")
        assert matches(op, ["Łódź", "Kraków"], ["Gdańsk", "Kraków"])  # a multi-valued attribute: any value
        assert not matches(op, ["Łódź"], ["Gdańsk"])
    assert matches("not_in", ["terminated", "retired"], "active")
    assert not matches("not_in", ["terminated", "retired"], "retired")
    assert not matches("not_in", ["retired"], ["active", "retired"])
    assert matches("not_in", ["retired"], ["active", "leave"])


def test_is_true_and_is_false() -> None:
    for value in (True, "true", "TRUE", "yes", "Y", "1", 1, "on"):
        assert matches("is_true", None, value) and not matches("is_false", None, value), value
    for value in (False, "false", "No", "n", "0", 0, "off"):
        assert matches("is_false", None, value) and not matches("is_true", None, value), value
    assert not matches("is_true", None, "maybe") and not matches("is_false", None, "maybe")


def test_starts_with_ends_with_contains() -> None:
    assert matches("starts_with", "Ø", "Ødegård") and not matches("starts_with", "O", "Ødegård")
    assert matches("ends_with", "@example.org", "zoe@example.org")
    assert not matches("ends_with", "@example.org", "zoe@example.org.evil")
    assert matches("starts_with", "cn=", ["uid=a", "cn=b"])
    assert matches("ends_with", "ễn", ["Nguyễn"])
    assert matches("contains", "yễ", "Nguyễn") and not matches("contains", "ye", "Nguyễn")
    assert matches("contains", "vpn", ["staff", "vpn"]) and not matches("contains", "vp", ["staff", "vpn"])
    assert matches("contains", 4, 1234)
    assert matches("starts_with", 12, 1234)


def test_regex_match_and_not_regex_match() -> None:
    assert matches("regex_match", r"^\d{5}$", "10042")
    assert not matches("regex_match", r"^\d{5}$", "1004")
    assert matches("regex_match", "dé", "Andrés Ødegård") is False
    assert matches("regex_match", "(?i)ØDEG", "Ødegård")
    assert matches("regex_match", "gård$", "Ødegård")
    assert matches("regex_match", "^ext-", ["staff", "ext-vpn"])
    assert matches("not_regex_match", "^ext-", "emp-1")
    assert not matches("not_regex_match", "^ext-", "ext-1")
    assert not matches("not_regex_match", "^ext-", ["staff", "ext-vpn"])
    assert matches("regex_match", r"^\d+$", 42)


def test_regex_match_takes_the_net_patterns_entra_filters_are_written_in() -> None:
    """A scoping filter pasted from Entra uses .NET named groups and back-references."""
    assert matches("regex_match", r"^(?<dept>[A-Z]{2})-\d+$", "HR-42")
    assert not matches("regex_match", r"^(?<dept>[A-Z]{2})-\d+$", "HRX-42")
    assert matches("regex_match", r"^(?<c>.)\k<c>", "aab") and not matches("regex_match", r"^(?<c>.)\k<c>", "abb")
    assert matches("not_regex_match", r"(?<x>ext)-", "emp-1")


def test_ordering_operators() -> None:
    assert matches("greater_than", 10, "11") and not matches("greater_than", 10, "9.5")
    assert matches("greater_than", 9, "10")  # numbers compare as numbers, not as text
    assert matches("greater_than_or_equal", 10, 10) and not matches("greater_than_or_equal", 10, 9)
    assert matches("less_than", "2026-04-01", "2026-03-31")  # ISO dates order as text
    assert matches("less_than_or_equal", 3, "3") and not matches("less_than_or_equal", 3, "4")
    assert not matches("greater_than", 10, "ten")  # a number and a word do not compare
    assert matches("greater_than", "M", "Ødegård") and matches("less_than", "M", "Andrés")


def test_within_next_days_for_pre_hire_provisioning() -> None:
    assert matches("within_next_days", 14, "2026-03-29")  # today
    assert matches("within_next_days", 14, "2026-04-12")  # the 14th day
    assert not matches("within_next_days", 14, "2026-04-13")
    assert not matches("within_next_days", 14, "2026-03-28")  # already started
    assert matches("within_next_days", 0, "2026-03-29")
    assert matches("within_next_days", "14", date(2026, 4, 1))
    assert not matches("within_next_days", 14, "not a date")


def test_date_operators_with_times_and_time_zones() -> None:
    # A time is compared with the current moment, whatever its offset: 03:30+02:00 is now.
    assert matches("within_next_days", 1, "2026-03-29T03:30:00+02:00")
    assert not matches("within_next_days", 1, "2026-03-29T03:29:00+02:00")  # a minute ago
    assert matches("within_last_days", 1, "2026-03-29T03:29:00+02:00")
    assert matches("within_next_days", 1, "2026-03-30T01:30:00Z")
    assert not matches("within_next_days", 1, "2026-03-30T03:31:00+02:00")
    assert matches("within_next_days", 1, datetime(2026, 3, 29, 12, 0))  # naive: UTC
    assert matches("beyond_next_days", 1, "2026-03-30T01:31:00Z")


def test_within_last_days_older_than_days_beyond_next_days() -> None:
    assert matches("within_last_days", 30, "2026-02-27")
    assert not matches("within_last_days", 30, "2026-02-26")
    assert not matches("within_last_days", 30, "2026-03-30")
    assert matches("older_than_days", 30, "2026-02-26")  # terminated more than 30 days ago
    assert not matches("older_than_days", 30, "2026-02-27")
    assert matches("older_than_days", 0, "2026-03-28") and not matches("older_than_days", 0, "2026-03-29")
    assert matches("beyond_next_days", 14, "2026-04-13") and not matches("beyond_next_days", 14, "2026-04-12")


def test_date_operators_follow_the_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    check = compile_scope(where("hire_date", "within_next_days", 14))
    person = {"hire_date": "2026-05-01"}
    assert not check(person)
    monkeypatch.setattr(functions, "clock", lambda: datetime(2026, 4, 20, 9, 0, tzinfo=UTC))
    assert check(person)
    monkeypatch.setattr(functions, "clock", lambda: datetime(2026, 5, 2, 0, 0, tzinfo=UTC))
    assert not check(person)


def test_all_any_and_nesting() -> None:
    status = Clause("status", "in", ["active", "leave"])
    pre_hire = Clause("hire_date", "within_next_days", 14)
    hired = Clause("hire_date", "within_last_days", 3650)
    staff = Group("all", (status, Group("any", (pre_hire, hired))))
    assert compile_scope(staff)({"status": "active", "hire_date": "2026-04-05"})
    assert compile_scope(staff)({"status": "leave", "hire_date": "2020-01-01"})
    assert not compile_scope(staff)({"status": "active", "hire_date": "2026-06-01"})
    assert not compile_scope(staff)({"status": "terminated", "hire_date": "2026-04-05"})
    assert not compile_scope(staff)({"status": "active"})
    assert compile_scope(Group("any", ()))({}) is False
    assert compile_scope(Group("all", ()))({}) is True
    assert compile_scope(None)({}) is True


@pytest.mark.parametrize(("clause", "wanted"), [
    (Clause("status", "equals", "x"), "unknown op 'equals'; use one of: eq, ne"),
    (Clause("status", "", "x"), "clause on 'status' has no 'op'"),
    (Clause("", "eq", "x"), "a clause needs 'attribute' and 'op'"),
    (Clause("status", "in", "active"), "op in needs a list value"),
    (Clause("status", "includes", "active"), "op includes needs a list value"),
    (Clause("status", "eq", None), "op eq needs a value"),
    (Clause("status", "is_null", "x"), "op is_null takes no value"),
    (Clause("status", "is_true", True), "op is_true takes no value"),
    (Clause("name", "regex_match", "(unclosed"), "invalid regular expression '(unclosed'"),
    (Clause("hire_date", "within_next_days", "two weeks"), "op within_next_days needs a whole number of days"),
    (Clause("hire_date", "older_than_days", -3), "op older_than_days needs a whole number of days"),
    (Clause("hire_date", "within_last_days", True), "needs a whole number of days"),
    (Clause("hire_date", "beyond_next_days", None), "op beyond_next_days needs a value"),
])
def test_problems_are_reported(clause: Clause, wanted: str) -> None:
    found = problems(Group("all", (clause,)))
    assert len(found) == 1 and wanted in found[0], found
    with pytest.raises(ScopeError):
        compile_scope(Group("all", (clause,)))


def test_every_problem_is_reported_with_its_path() -> None:
    bad = Group("all", (
        Clause("a", "eq", "ok", ("scope", "all", 0)),
        Clause("b", "nope", "x", ("scope", "all", 1)),
        Group("any", (Clause("c", "in", "x", ("scope", "all", 2, "any", 0)),), ("scope", "all", 2)),
    ))
    found = scope_problems(bad)
    assert [p.path for p in found] == [("scope", "all", 1), ("scope", "all", 2, "any", 0)]


def test_days_can_be_written_as_text_or_whole_floats() -> None:
    assert problems(where("d", "within_next_days", "14")) == []
    assert problems(where("d", "within_next_days", 14.0)) == []
    assert problems(where("d", "within_next_days", 0)) == []
