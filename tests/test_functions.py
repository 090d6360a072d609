"""The expression function library, through the real compile path (compile_expression().evaluate)."""

from __future__ import annotations

import re
import string
import subprocess
import sys
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from runner.mapping import docs, functions
from runner.mapping.expressions import ExpressionError, compile_expression, evaluation_error

REPO = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 3, 29, 1, 30, tzinfo=UTC)

PERSON = {
    "first_name": "Zoë", "last_name": "Ødegård", "preferred_name": "", "email": "Zoe.Odegard@Example.org",
    "given": "Łukasz", "family": "Nguyễn", "groups": ["staff", "vpn", "staff", None, ""], "empty_list": [],
    "uac": "66050", "hire_date": "2026-03-31", "count_text": "3", "number": 42, "flag": "Yes", "blank": "",
}


@pytest.fixture(autouse=True)
def fixed_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(functions, "clock", lambda: NOW)


def ev(text: str, record: dict[str, Any] | None = None) -> Any:
    return compile_expression(text).evaluate(PERSON if record is None else record)


def rejected(text: str) -> str:
    with pytest.raises(ExpressionError) as info:
        compile_expression(text)
    return str(info.value)


def fails(text: str, record: dict[str, Any] | None = None) -> str:
    """The reason the mapper would log for a failed evaluation."""
    with pytest.raises(Exception) as info:
        ev(text, record)
    return evaluation_error(info.value)


# ---- the reference page and its examples ---------------------------------------------------

EXAMPLES = [(spec.name, expression, result)
            for spec in functions.library_functions() for expression, result in docs.entry(spec).examples]


@pytest.mark.parametrize(("name", "expression", "result"), EXAMPLES, ids=[f"{n}: {e}" for n, e, _ in EXAMPLES])
def test_documented_examples_hold(monkeypatch: pytest.MonkeyPatch, name: str, expression: str, result: str) -> None:
    monkeypatch.setattr(functions, "clock", lambda: docs.EXAMPLE_TIME)
    got = compile_expression(expression).evaluate(docs.EXAMPLE_RECORD)
    expected = compile_expression(result).evaluate({})
    if name in docs.RANDOM_RESULTS:
        assert type(got) is type(expected) and len(got) == len(expected)
    else:
        assert got == expected


def test_every_function_is_documented_with_an_example() -> None:
    for spec in functions.library_functions():
        entry = docs.entry(spec)
        assert entry.returns and entry.examples, spec.name


def test_entra_functions_are_all_there() -> None:
    entra = ["append", "bit_and", "cbool", "cdate", "coalesce", "base64", "utf8_hex", "count", "cstr",
             "date_add", "date_diff", "format_date_time", "guid", "ignore_flow_if_null_or_empty", "iif",
             "instr", "is_null", "is_null_or_empty", "is_present", "is_string", "item", "join", "left",
             "mid", "normalize_diacritics", "not", "now", "pcase", "random_string", "redact",
             "remove_duplicates", "replace", "split", "strip_spaces", "switch", "to_lower", "to_upper",
             "word"]
    assert set(entra) <= set(functions.SPECS)


def test_committed_reference_page_is_current() -> None:
    page = REPO / "docs" / "mapping-functions.md"
    assert page.read_text(encoding="utf-8") == docs.render(), \
        "regenerate: python -m runner.mapping.docs > docs/mapping-functions.md"


def test_reference_page_generator_runs_as_a_module() -> None:
    out = subprocess.run([sys.executable, "-m", "runner.mapping.docs"], capture_output=True, check=True, cwd=REPO)
    assert out.stdout.decode("utf-8") == docs.render()


# ---- compile-time checks -------------------------------------------------------------------

def test_unknown_function_is_rejected_with_a_suggestion() -> None:
    message = rejected("to_lowr(email)")
    assert "unknown function to_lowr()" in message and "did you mean to_lower()?" in message


def test_unknown_function_without_a_close_name_lists_the_known_ones() -> None:
    message = rejected("frobnicate(email)")
    assert "unknown function frobnicate()" in message and "normalize_diacritics" in message


def test_unknown_function_deep_inside_is_found() -> None:
    assert "unknown function nope()" in rejected("join(' ', [first_name, lower(nope(last_name))])")


@pytest.mark.parametrize(("text", "wanted"), [
    ("left(first_name)", "left() takes 2 arguments: left(text, count); got 1"),
    ("left(first_name, 1, 2)", "left() takes 2 arguments: left(text, count); got 3"),
    ("now(1)", "now() takes 0 arguments: now(); got 1"),
    ("instr(email)", "instr() takes 2 to 4 arguments: instr(text, search, [start], [compare]); got 1"),
    ("join(' ')", "join() takes at least 2 arguments"),
    ("coalesce()", "coalesce() takes at least 1 argument"),
    ("random_string()", "random_string() takes at least 1 argument"),
    ("iif(flag, 'a')", "iif() takes 3 arguments"),
    ("to_lower()", "to_lower() takes 1 to 2 arguments:"),
    ("length(groups, email)", "length() takes 1 argument"),  # JMESPath built-ins are checked too
])
def test_wrong_arity_is_rejected(text: str, wanted: str) -> None:
    assert wanted in rejected(text)


@pytest.mark.parametrize(("text", "wanted"), [
    ("left(first_name, 'x')", "left() argument 2 must be a number, not 'x'"),
    ("mid(first_name, '1', 2)", "mid() argument 2 must be a number, not '1'"),
    ("to_lower(42)", "to_lower() argument 1 must be a string or null, not 42"),
    ("split(email, null)", "split() argument 2 must be a string, not null"),
    ("join(3, groups)", "join() argument 1 must be a string, not 3"),
    ("remove_duplicates('a')", "remove_duplicates() argument 1 must be a list or null"),
    ("left(first_name, `1.5`)", "left() argument 2 (count): expected a whole number, got 1.5"),
    ("item(groups, 0)", "item() argument 2 (index): items count from 1"),
    ("mid(first_name, 0, 2)", "mid() argument 2 (start): expected a whole number of at least 1"),
    ("date_add('fortnight', 1, hire_date)", "date_add() argument 1 (interval): unknown interval 'fortnight'"),
    ("date_diff('x', hire_date, hire_date)", "date_diff() argument 1 (interval): unknown interval 'x'"),
    ("cdate(hire_date, 'Europe/Atlantis')", "cdate() argument 2 (time_zone): unknown time zone 'Europe/Atlantis'"),
    ("format_date_time(hire_date, '', 'iso')", "the output format is missing"),
    ("format_date_time(hire_date, 'iso', 'iso', 'Mars/Olympus')", "argument 4 (time_zone): unknown time zone"),
    ("random_string(0)", "random_string() argument 1 (length): expected a length of at least 1"),
    ("random_string(5000)", "a length of at most 4096"),
    ("random_string(12, 'emoji')", "argument 2 (classes): unknown character class 'emoji'"),
    ("random_string(2, 'lower', 'upper', 'digits')", "random_string(): a length of 2 cannot hold one character of each of 3"),
    ("replace(email, '(a', 'b', 'regex')", "replace(): invalid regular expression '(a'"),
    ("replace(email, '(a)', '\\2', 'regex')", "replace(): invalid replacement"),
    ("replace(email, 'a', 'b', 'glob')", "argument 4 (mode): mode must be 'literal' or 'regex'"),
    ("replace(email, '', 'b')", "the text to replace cannot be empty"),
    ("split(email, '')", "split() argument 2 (separator): the separator cannot be empty"),
    ("switch(country, 'Other', 'NO')", "switch(): needs key/value pairs"),
    ("instr(email, '@', 1, 'fuzzy')", "compare must be 'binary'"),
    ("base64(email, 'klingon')", "unknown text encoding 'klingon'"),
    ("iif(ignore_flow_if_null_or_empty(email), 'a', 'b')", "must be the outermost function"),
])
def test_bad_literal_arguments_are_rejected(text: str, wanted: str) -> None:
    assert wanted in rejected(text)


def test_computed_arguments_are_checked_when_evaluated() -> None:
    assert fails("left(first_name, number_text)", {"first_name": "Zoë", "number_text": "x"}) \
        == "left() got string 'x', expected number"
    assert fails("date_add(unit, 1, '2026-01-01')", {"unit": "fortnight"}).startswith(
        "date_add(): unknown interval 'fortnight'")
    assert fails("cbool(flag)", {"flag": "maybe"}) == \
        "cbool(): cannot read 'maybe' as true or false (use true/false, yes/no, 1/0, on/off)"
    assert fails("cdate(d)", {"d": "next tuesday"}).startswith("cdate(): cannot read 'next tuesday' as a date")


def test_syntax_errors_say_where() -> None:
    with pytest.raises(ExpressionError) as info:
        compile_expression("join(' ', [first_name last_name])")
    assert "at character" in str(info.value) and info.value.position is not None


# ---- literals and the compiled form -------------------------------------------------------

def test_bare_numbers_and_keywords_are_literals() -> None:
    assert ev("left(first_name, 2)") == "Zo"
    assert ev("[1, -2, true, false, null]") == [1, -2, True, False, None]
    assert ev("iif(number == 42, true, false)") is True
    assert ev("`3`") == 3 and ev("'42'") == "42"


def test_quoted_keywords_and_paths_still_read_fields() -> None:
    record = {"true": "a field", "a": {"null": "nested"}}
    assert ev('"true"', record) == "a field"
    assert ev("a.null", record) == "nested"
    assert ev("groups[0]") == "staff" and ev("groups[-1]") == ""


def test_plain_fields_and_literals_skip_the_interpreter() -> None:
    assert compile_expression("email").evaluate({"email": "x"}) == "x"
    assert compile_expression("'fixed'").evaluate({}) == "fixed"


def test_expression_flags() -> None:
    assert compile_expression("redact(password)").sensitive
    assert compile_expression("join(' ', [redact(a), b])").sensitive
    assert not compile_expression("lower(a)").sensitive
    assert compile_expression("ignore_flow_if_null_or_empty(phone)").ignore_flow
    assert not compile_expression("coalesce(phone, mobile)").ignore_flow
    assert compile_expression("random_string(12)").volatile and compile_expression("guid()").volatile
    assert compile_expression("lower(split(email, '@')[0])").functions == {"lower", "split"}


def test_quickstart_expressions() -> None:
    record = {"email": "Zoe.Odegard@Example.org", "preferred_name": "", "first_name": "Zoë", "last_name": "Ødegård"}
    assert ev("lower(split(email, '@')[0])", record) == "zoe.odegard"
    assert ev("join(' ', [coalesce(preferred_name, first_name), last_name])", record) == "Zoë Ødegård"
    assert ev("join(' ', [coalesce(preferred_name, first_name), last_name])", {"last_name": "Nguyễn"}) == "Nguyễn"


# ---- text --------------------------------------------------------------------------------

def test_append() -> None:
    assert ev("append(family, '@example.org')") == "Nguyễn@example.org"
    assert ev("append(number, '-x')") == "42-x"
    assert ev("append(missing, '@example.org')") is None
    assert ev("append(given, missing)") == "Łukasz"
    assert ev("append(blank, '')") == ""


def test_lower_upper_to_lower_to_upper() -> None:
    assert ev("lower(last_name)") == "ødegård" and ev("to_lower(given)") == "łukasz"
    assert ev("upper(first_name)") == "ZOË" and ev("to_upper(family)") == "NGUYỄN"
    assert ev("upper('straße')") == "STRASSE"
    for name in ("lower", "upper", "to_lower", "to_upper"):
        assert ev(f"{name}(missing)") is None and ev(f"{name}(blank)") == ""


def test_pcase() -> None:
    assert ev("pcase('ZOË ØDEGÅRD')") == "Zoë Ødegård"
    assert ev("pcase('łukasz nguyễn-văn')") == "Łukasz Nguyễn-Văn"
    # Entra's PCase without separators is .NET's ToTitleCase: an apostrophe does not start a word
    assert ev("pcase('o\\'neill')") == "O'neill"
    assert ev("pcase('o\\'neill', ' \\'')") == "O'Neill"
    assert ev("pcase('anne-marie', ' ')") == "Anne-marie"
    assert ev("pcase('ab.cd', '.')") == "Ab.Cd"
    assert ev("pcase(missing)") is None and ev("pcase('')") == ""


def test_normalize_diacritics() -> None:
    assert ev("normalize_diacritics(first_name)") == "Zoe"
    assert ev("normalize_diacritics(last_name)") == "OEdegard"  # Entra's table: Ø -> OE
    assert ev("normalize_diacritics(given)") == "Lukasz"
    assert ev("normalize_diacritics(family)") == "Nguyen"
    assert ev("normalize_diacritics('Æsa Straße Þór Đặng')") == "AEsa Strasse Thor Dang"
    assert ev("normalize_diacritics('plain ascii')") == "plain ascii"
    assert ev("normalize_diacritics(missing)") is None


def test_strip_spaces() -> None:
    assert ev("strip_spaces(' Zoë  Ødegård ')") == "ZoëØdegård"
    assert ev("strip_spaces(t)", {"t": "a\u00a0b\tc\nd"}) == "abcd"
    assert ev("strip_spaces(number)") == "42"
    assert ev("strip_spaces(missing)") is None and ev("strip_spaces('   ')") == ""


def test_left() -> None:
    assert ev("left(last_name, 3)") == "Øde"
    assert ev("left(family, 100)") == "Nguyễn"
    assert ev("left(given, 0)") == ""
    assert ev("left(number, 1)") == "4"
    assert ev("left(missing, 3)") is None


def test_mid() -> None:
    assert ev("mid(family, 4, 3)") == "yễn"
    assert ev("mid(last_name, 1, 1)") == "Ø"
    assert ev("mid(last_name, 6, 10)") == "rd"
    assert ev("mid(last_name, 20, 2)") == ""
    assert ev("mid(missing, 1, 2)") is None


def test_word() -> None:
    assert ev("word('Nguyễn  Văn An', 2)") == "Văn"
    assert ev("word('Nguyễn Văn An', 4)") == ""  # Entra: fewer words give empty text
    assert ev("word('Nguyễn Văn An', 0)") == ""
    assert ev("word('cn=Zoë Ødegård,ou=people,dc=example', 2, ',=')") == "Zoë Ødegård"
    assert ev("word('a;;b', 2, ';')") == "b"
    assert ev("word(missing, 1)") is None
    assert ev("word('a b', '2')") == "b"


def test_instr() -> None:
    assert ev("instr(email, '@')") == 12
    assert ev("instr(last_name, 'å')") == 5
    assert ev("instr(last_name, 'Å')") == 0
    assert ev("instr(last_name, 'Å', 1, 'text')") == 5
    assert ev("instr('abcabc', 'b', 3)") == 5
    assert ev("instr(missing, 'a')") is None


def test_replace_literal() -> None:
    assert ev("replace(last_name, 'å', 'aa')") == "Ødegaard"
    assert ev("replace('a.b.c', '.', '')") == "abc"
    assert ev("replace('a.b.c', '.', null)") == "abc"
    assert ev("replace('a.b', '.', '\\1')") == "a\\1b"  # literal mode: no group references
    assert ev("replace(missing, 'a', 'b')") is None
    assert ev("replace(first_name, missing, 'b')") == "Zoë"


def test_replace_regex_with_groups() -> None:
    assert ev("replace(email, '^(?P<local>[^@]+)@.*$', '\\g<local>@example.com', 'regex')") \
        == "Zoe.Odegard@example.com"
    assert ev("replace('Ødegård, Zoë', '^(\\w+), (\\w+)$', '\\2 \\1', 'regex')") == "Zoë Ødegård"
    assert ev("replace('ABC-123', '(?i)[a-z]', 'x', 'regex')") == "xxx-123"
    assert ev("replace(phone, '\\D', '', 'regex')", {"phone": "+47 (22) 33-44"}) == "47223344"
    assert ev("replace(missing, '.', '', 'regex')") is None


def test_replace_with_a_computed_bad_pattern_fails_the_object() -> None:
    assert fails("replace('x', p, 'y', 'regex')", {"p": "(unclosed"}).startswith(
        "replace(): invalid regular expression '(unclosed'")


def test_split() -> None:
    assert ev("split(email, '@')") == ["Zoe.Odegard", "Example.org"]
    assert ev("split('Zoë;Łukasz;', ';')") == ["Zoë", "Łukasz", ""]
    assert "split() got null None, expected string" in fails("split(missing, '@')")


def test_join() -> None:
    assert ev("join(' ', [first_name, missing, blank, last_name])") == "Zoë Ødegård"
    assert ev("join(', ', family, given)") == "Nguyễn, Łukasz"
    assert ev("join(';', groups)") == "staff;vpn;staff"
    assert ev("join('-', [number, true])") == "42-true"
    assert ev("join(' ', [missing, blank])") is None
    assert ev("join(' ', empty_list)") is None


def test_cstr() -> None:
    assert ev("cstr(number)") == "42"
    assert ev("cstr(`1.5`)") == "1.5" and ev("cstr(`2.0`)") == "2"
    assert ev("cstr(false)") == "false"
    assert ev("cstr(first_name)") == "Zoë"
    assert ev("cstr(['Zoë', 1])") == '["Zoë", 1]'
    assert ev("cstr(missing)") is None


def test_base64_and_back() -> None:
    assert ev("base64(last_name)") == "w5hkZWfDpXJk"
    assert ev("base64_decode(base64(family))") == "Nguyễn"
    assert ev("base64('Hello world!', 'utf-16-le')") == "SABlAGwAbABvACAAdwBvAHIAbABkACEA"  # Entra's example
    assert ev("base64_decode('SABpAA==', 'utf-16-le')") == "Hi"
    assert ev("base64(blank)") == "" and ev("base64(missing)") is None and ev("base64_decode(missing)") is None
    assert fails("base64_decode('not base64!')") == "base64_decode(): 'not base64!' is not Base64"


def test_utf8_hex() -> None:
    assert ev("utf8_hex('Hello world!')") == "48656C6C6F20776F726C6421"  # Entra's example
    assert ev("utf8_hex(given)") == "C581756B61737A"
    assert ev("utf8_hex(missing)") is None


def test_redact_passes_the_value_through() -> None:
    assert ev("redact(last_name)") == "Ødegård"
    assert ev("redact(missing)") is None


# ---- values, nulls and conditions -------------------------------------------------------

def test_coalesce() -> None:
    assert ev("coalesce(preferred_name, first_name)") == "Zoë"
    assert ev("coalesce(missing, blank, given)") == "Łukasz"
    assert ev("coalesce(missing, blank)") is None
    assert ev("coalesce(empty_list, family)") == []  # only null and '' are skipped
    assert ev("coalesce(number)") == 42


def test_is_null_family() -> None:
    cases = {  # value: (is_null, is_null_or_empty, is_present, is_string)
        "missing": (True, True, False, False),
        "blank": (False, True, False, True),
        "empty_list": (False, True, False, False),
        "first_name": (False, False, True, True),
        "number": (False, False, True, False),
        "groups": (False, False, True, False),
    }
    for field, wanted in cases.items():
        got = tuple(ev(f"{fn}({field})") for fn in ("is_null", "is_null_or_empty", "is_present", "is_string"))
        assert got == wanted, field


def test_ignore_flow_if_null_or_empty() -> None:
    expression = compile_expression("ignore_flow_if_null_or_empty(switch(country, null, 'NO', 'Norway'))")
    assert expression.ignore_flow
    assert expression.evaluate({"country": "NO"}) == "Norway"
    assert expression.evaluate({"country": "SE"}) is None
    assert ev("ignore_flow_if_null_or_empty(blank)") is None
    assert ev("ignore_flow_if_null_or_empty(empty_list)") is None
    assert ev("ignore_flow_if_null_or_empty(last_name)") == "Ødegård"


@pytest.mark.parametrize(("value", "wanted"), [
    (True, True), (False, False), (1, True), (0, False), (0.5, True), ("Yes", True), ("no", False),
    (" TRUE ", True), ("off", False), ("1", True), ("0", False), ("5", True), ("-1", True), ("0.0", False),
    ("", False), (None, False),  # Entra: CBool is true for a non-zero value, else false; Not(null) is true
])
def test_cbool_and_not(value: Any, wanted: bool) -> None:
    assert ev("cbool(v)", {"v": value}) is wanted
    assert ev("not(v)", {"v": value}) is (not wanted)


def test_cbool_rejects_words_it_cannot_read() -> None:
    assert fails("cbool(v)", {"v": "Zoë"}).startswith("cbool(): cannot read 'Zoë' as true or false")
    assert "cbool() argument 1 must be" in rejected("cbool(['a'])")
    assert "cbool(): cannot read 'perhaps'" in fails("cbool('perhaps')")


def test_iif() -> None:
    assert ev("iif(flag, 'Manager', 'Staff')") == "Manager"
    assert ev("iif(number > 40, upper(given), lower(given))") == "ŁUKASZ"
    assert ev("iif(missing, 'a', 'b')") == "b"
    assert ev("iif(blank, 'a', 'b')") == "b"
    assert ev("iif(groups, 'has groups', 'none')") == "has groups"
    assert ev("iif(empty_list, 'has groups', 'none')") == "none"
    assert ev("iif(number == 42, missing, 'x')") is None


def test_switch() -> None:
    expression = "switch(country, 'Other', 'NO', 'Norway', 'PL', 'Polska', 'VN', 'Việt Nam')"
    assert ev(expression, {"country": "PL"}) == "Polska"
    assert ev(expression, {"country": "VN"}) == "Việt Nam"
    assert ev(expression, {"country": "SE"}) == "Other"
    assert ev(expression, {}) == "Other"
    assert ev("switch(code, 'none', 42, 'answer')", {"code": "42"}) == "answer"
    assert ev("switch(code, 'none', '1', 'one')", {"code": 1}) == "one"
    assert ev("switch(active, 'no', true, 'yes')", {"active": "true"}) == "yes"
    assert ev("switch(country, null)", {"country": "NO"}) is None


# ---- lists -------------------------------------------------------------------------------

def test_count() -> None:
    assert ev("count(groups)") == 5
    assert ev("count(empty_list)") == 0
    assert ev("count(missing)") == 0
    assert ev("count(first_name)") == 1


def test_item() -> None:
    assert ev("item(groups, 1)") == "staff"
    assert ev("item(groups, 2)") == "vpn"
    assert ev("item(groups, -3)") == "staff"
    assert ev("item(groups, 9)") is None
    assert ev("item(first_name, 1)") == "Zoë"
    assert ev("item(missing, 1)") is None
    assert ev("item(empty_list, -1)") is None


def test_remove_duplicates() -> None:
    assert ev("remove_duplicates(groups)") == ["staff", "vpn", None, ""]
    assert ev("remove_duplicates(['Zoë', 'Zoe', 'Zoë', 1, true, 1])") == ["Zoë", "Zoe", 1, True]
    assert ev("remove_duplicates(empty_list)") == []
    assert ev("remove_duplicates(missing)") is None


def test_bit_and() -> None:
    assert ev("bit_and(uac, 2)") == 2  # ACCOUNTDISABLE set
    assert ev("bit_and(uac, 65536)") == 65536
    assert ev("bit_and(uac, 16)") == 0
    assert ev("bit_and('0xF', '0xF7')") == 7
    assert ev("bit_and(missing, 2)") is None
    assert fails("bit_and('ten', 2)") == "bit_and(): expected a whole number, got 'ten'"


# ---- dates --------------------------------------------------------------------------------

def test_now_uses_the_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ev("now()") == "2026-03-29T01:30:00Z"
    monkeypatch.setattr(functions, "clock", lambda: datetime(2026, 7, 1, 12, 0, 0, 999, tzinfo=UTC))
    assert ev("now()") == "2026-07-01T12:00:00Z"


def test_now_without_a_replaced_clock_is_close_to_real_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(functions, "clock", functions.system_clock)
    got = datetime.fromisoformat(ev("now()"))
    assert abs((datetime.now(UTC) - got).total_seconds()) < 5


def test_cdate() -> None:
    assert ev("cdate('2026-03-29T03:30:00+02:00')") == "2026-03-29T01:30:00Z"
    assert ev("cdate('2026-03-29T01:30:00Z', 'Europe/Oslo')") == "2026-03-29T01:30:00Z"  # has an offset
    assert ev("cdate('2026-03-29 03:30', 'Europe/Oslo')") == "2026-03-29T01:30:00Z"  # CEST, after the switch
    assert ev("cdate('2026-03-29 01:30', 'Europe/Oslo')") == "2026-03-29T00:30:00Z"  # CET, before it
    assert ev("cdate('2026-07-01', 'America/New_York')") == "2026-07-01T04:00:00Z"
    assert ev("cdate(d)", {"d": date(2026, 3, 29)}) == "2026-03-29T00:00:00Z"
    assert ev("cdate(d)", {"d": datetime(2026, 3, 29, 1, 30)}) == "2026-03-29T01:30:00Z"
    assert ev("cdate(missing)") is None and ev("cdate(blank)") is None


def test_date_add() -> None:
    assert ev("date_add('d', 14, hire_date)") == "2026-04-14"
    assert ev("date_add('days', -31, hire_date)") == "2026-02-28"
    assert ev("date_add('ww', 2, '2026-03-29')") == "2026-04-12"
    assert ev("date_add('m', 1, '2026-01-31')") == "2026-02-28"
    assert ev("date_add('yyyy', 1, '2028-02-29')") == "2029-02-28"
    assert ev("date_add('q', 1, '2026-11-30')") == "2027-02-28"
    assert ev("date_add('h', 1, '2026-03-29')") == "2026-03-29T01:00:00Z"
    assert ev("date_add('n', 90, '2026-03-29T00:30:00Z')") == "2026-03-29T02:00:00Z"
    assert ev("date_add('s', 30, '2026-03-29T01:30:00+01:00')") == "2026-03-29T01:30:30+01:00"
    assert ev("date_add('d', count_text, hire_date)") == "2026-04-03"
    assert ev("date_add('d', 1, missing)") is None and ev("date_add('d', missing, hire_date)") is None
    assert fails("date_add('m', `1.5`, hire_date)").startswith("date_add(): expected a whole number of months")


def test_date_diff() -> None:
    assert ev("date_diff('d', '2026-03-29', hire_date)") == 2
    assert ev("date_diff('d', hire_date, '2026-03-29')") == -2
    assert ev("date_diff('ww', '2026-03-01', '2026-03-29')") == 4
    # the words count whole months and years ...
    assert ev("date_diff('months', '2026-01-31', '2026-02-27')") == 0
    assert ev("date_diff('months', '2026-01-31', '2026-02-28')") == 1  # as date_add('m', 1, '2026-01-31')
    assert ev("date_diff('months', '2026-01-31', '2026-03-01')") == 1
    assert ev("date_diff('years', '1990-06-15', '2026-06-14')") == 35
    assert ev("date_diff('years', '1990-06-15', '2026-06-15')") == 36
    assert ev("date_diff('years', '2026-06-15', '1990-06-16')") == -35
    # ... Entra's letters count calendar boundaries, as Visual Basic's DateDiff
    assert ev("date_diff('m', '2026-01-31', '2026-02-01')") == 1
    assert ev("date_diff('yyyy', '2025-12-31T23:59:59Z', '2026-01-01')") == 1
    assert ev("date_diff('q', '2026-03-31', '2026-04-01')") == 1
    assert ev("date_diff('ww', '2026-03-28', '2026-03-29')") == 1  # Saturday to Sunday
    assert ev("date_diff('ww', '2026-03-29', '2026-04-04')") == 0  # Sunday to Saturday
    # Oslo's clocks jump from 02:00 CET to 03:00 CEST: 00:30 to 03:30 local time is two real hours.
    assert ev("date_diff('h', '2026-03-29T00:30:00+01:00', '2026-03-29T03:30:00+02:00')") == 2
    assert ev("date_diff('n', '2026-03-29T01:30:00Z', '2026-03-29T03:30:00+02:00')") == 0
    assert ev("date_diff('d', missing, hire_date)") is None


def test_format_date_time_across_time_zones() -> None:
    assert ev("format_date_time('2026-03-29T01:30:00Z', 'iso', 'iso', 'Europe/Oslo')") == "2026-03-29T03:30:00+02:00"
    assert ev("format_date_time('2026-03-29T00:30:00Z', 'iso', 'iso', 'Europe/Oslo')") == "2026-03-29T01:30:00+01:00"
    assert ev("format_date_time('2026-03-29T01:30:00Z', 'iso', '%H:%M %Z', 'Europe/Oslo')") == "03:30 CEST"
    assert ev("format_date_time('2026-03-29T01:30:00Z', 'iso', '%Y-%m-%d %H:%M', 'Asia/Ho_Chi_Minh')") \
        == "2026-03-29 08:30"
    assert ev("format_date_time('29.03.2026 03:30', '%d.%m.%Y %H:%M', 'iso', 'UTC', 'Europe/Oslo')") \
        == "2026-03-29T01:30:00Z"
    assert ev("format_date_time('29.03.2026 03:30', '%d.%m.%Y %H:%M', 'iso', null, 'Europe/Oslo')") \
        == "2026-03-29T03:30:00+02:00"
    assert ev("format_date_time('2026-03-29T01:30:00Z', 'iso', '%Y%m%d%H%M%S.0Z')") == "20260329013000.0Z"


def test_format_date_time_dates_unix_and_nulls() -> None:
    assert ev("format_date_time(hire_date, 'iso', '%d.%m.%Y')") == "31.03.2026"
    assert ev("format_date_time(hire_date, 'iso', 'iso', 'Pacific/Kiritimati')") == "2026-03-31"  # a date stays
    assert ev("format_date_time('03/31/2026', '%m/%d/%Y', 'iso')") == "2026-03-31"
    assert ev("format_date_time('2026-03-29T01:30:00Z', 'iso', 'unix')") == 1774747800
    assert ev("format_date_time('1774747800', 'unix', 'iso', 'Europe/Oslo')") == "2026-03-29T03:30:00+02:00"
    assert ev("format_date_time(missing, 'iso', 'iso')") is None
    assert ev("format_date_time(blank, 'iso', 'iso')") is None
    assert fails("format_date_time('31/02/2026', '%d/%m/%Y', 'iso')") \
        == "format_date_time(): cannot read '31/02/2026' as a date in the format '%d/%m/%Y'"


# ---- generated values ---------------------------------------------------------------------

def test_guid() -> None:
    first, second = ev("guid()"), ev("guid()")
    assert uuid.UUID(first).version == 4 and first != second


def test_random_string_default_has_every_class() -> None:
    values = [ev("random_string(16)") for _ in range(50)]
    assert len(set(values)) == 50
    for value in values:
        assert len(value) == 16
        assert any(c in string.ascii_lowercase for c in value)
        assert any(c in string.ascii_uppercase for c in value)
        assert any(c in string.digits for c in value)
        assert any(c in "!#$%&*+-=?@_" for c in value)


def test_random_string_with_named_classes() -> None:
    values = [ev("random_string(length, 'upper', 'digits')", {"length": 10}) for _ in range(50)]
    assert len(set(values)) == 50
    for value in values:
        assert re.fullmatch(r"[A-Z0-9]{10}", value)
        assert re.search(r"[A-Z]", value) and re.search(r"[0-9]", value)
    assert re.fullmatch(r"[a-z]{3}", ev("random_string(3, 'lower')"))
    assert len(ev("random_string(2, 'lower', 'lower', 'digits')")) == 2


def test_random_string_uses_the_system_random_source(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = functions.secrets.choice
    monkeypatch.setattr(functions.secrets, "choice", lambda seq: calls.append("x") or real(seq))
    ev("random_string(12)")
    assert len(calls) == 12


def test_runtime_errors_name_the_function() -> None:
    assert fails("item(groups, n)", {"groups": ["a"], "n": 0}).startswith("item(): items count from 1")
    assert fails("random_string(n)", {"n": 0}) == "random_string(): expected a length of at least 1, got 0"
    assert fails("left(t, n)", {"t": "abc", "n": "x"}) == "left() got string 'x', expected number"


def test_the_function_registry_is_built_once() -> None:
    spec = functions.SPECS["left"]
    assert spec.min_args == 2 and spec.max_args == 2 and [p.name for p in spec.params] == ["text", "count"]
    assert functions.SPECS["instr"].min_args == 2 and functions.SPECS["instr"].max_args == 4
    assert functions.SPECS["join"].max_args is None
    assert functions.SPECS["not_null"].builtin and not functions.SPECS["join"].builtin


RECORDS: list[dict[str, Any]] = [
    {"first": "Zoë", "last": "Ødegård", "email": "Zoe.Odegard@Example.org", "tags": ["b", "a"],
     "manager": {"id": "E1", "name": {"first": "Ann"}}, "phones": [{"type": "work", "n": "1"}], "age": 41},
    {"first": None, "last": "Hansen", "email": None, "tags": [], "manager": None, "phones": None, "age": None},
    {"first": "Li"},
]


@pytest.mark.parametrize("expression", [
    "first", "manager.name.first", "manager.id", "tags[0]", "tags[-1]", "tags[5]", "email.x",
    "lower(email)", "lower(split(email, '@')[0])", "join(' ', [coalesce(first, last), last])",
    "[first, last]", "[first, manager.name.first][1]", "`3`", "'text'", "@", "first || last",
    "sort_by(phones, &type)[0].n", "phones[?type == 'work'].n | [0]", "tags[*]", "length(tags)",
    "upper(coalesce(manager.name.first, first, 'none'))", "to_string(age)",
])
def test_compiled_expressions_give_what_the_jmespath_interpreter_gives(expression: str) -> None:
    """Expressions run as compiled Python functions; each kind of node must behave exactly as
    JMESPath's own interpreter, errors included."""
    from runner.mapping.expressions import _INTERPRETER, parse

    compiled, node = compile_expression(expression).evaluate, parse(expression)
    for record in RECORDS:
        try:
            expected: Any = _INTERPRETER.visit(node, record)
        except Exception as exc:  # noqa: BLE001 - the same error type must come out of both
            expected = type(exc)
        try:
            got: Any = compiled(record)
        except Exception as exc:  # noqa: BLE001
            got = type(exc)
        assert got == expected, f"{expression} on {record}"
