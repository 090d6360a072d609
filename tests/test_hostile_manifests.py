"""Hostile manifests: whatever a file holds, `provision validate` answers with located problems.

A cron job at 3 a.m. must never die with a traceback because someone committed a broken file.
Property-based tests (hypothesis) feed the loader generated YAML, mutations of the quickstart
manifest and of its mapping file, bad ``${env:}``/``${file:}`` references and bad expressions. For
each one, in this process for speed: ``load()`` either accepts the file or raises ManifestError;
any other exception fails the test. Every problem names one of the files involved, a line that
exists in it and a column, on one line. Families built to be invalid must be refused (exit 2 in
the CLI); families that may happen to stay valid (truncation, random bytes) only must not crash.
A handful of the worst files then go through the real CLI in its own process.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from copy import deepcopy
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner.errors import ManifestError, Problem
from runner.manifest.yamlfile import MAX_BYTES, MAX_DEPTH, MAX_VALUES
from runner.mapping.checks import load

REPO = Path(__file__).resolve().parent.parent
QUICKSTART_TEXT = (REPO / "manifests" / "quickstart.yaml").read_text()
MAPPING_TEXT = (REPO / "mappings" / "person-to-app-user.yaml").read_text()
QUICKSTART_DATA = yaml.safe_load(QUICKSTART_TEXT)
MAPPING_DATA = yaml.safe_load(MAPPING_TEXT)
YAML_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")  # YAML's line breaks: what PyYAML counts lines by
LINE = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<col>\d+): (?P<path>\S+): (?P<message>.+)$")

FUZZ = settings(max_examples=200, deadline=None, database=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much])
TRIED: dict[str, int] = {}  # family -> files tried; the summary test checks the total


# ---- the workspace: a copy of the quickstart's files, rewritten by each example ------------------


class Workspace:
    """manifests/quickstart.yaml and mappings/person-to-app-user.yaml in a temporary copy of the repo."""

    def __init__(self, root: Path):
        self.root = root
        shutil.copytree(REPO / "manifests", root / "manifests", ignore=shutil.ignore_patterns("out", ".provision"))
        shutil.copytree(REPO / "mappings", root / "mappings")
        self.manifest = root / "manifests" / "quickstart.yaml"
        self.mapping = root / "mappings" / "person-to-app-user.yaml"
        (root / "manifests" / "binary.dat").write_bytes(b"\xff\xfe\x00\x81binary")
        (root / "manifests" / "a-folder").mkdir()

    def write(self, manifest: str | bytes, mapping: str | bytes = MAPPING_TEXT) -> None:
        for path, content in ((self.manifest, manifest), (self.mapping, mapping)):
            path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8", "surrogatepass"))

    def files(self) -> set[str]:
        """Every file a problem may name: the workspace's files (the manifest, whatever it uses as mapping file)."""
        return {str(p) for p in self.root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("PROVISION_DATA", raising=False)
        mp.delenv("PROVISION_TARGET", raising=False)
        yield Workspace(tmp_path_factory.mktemp("hostile"))


def outcome(ws: Workspace, family: str) -> list[Problem] | None:
    """Validate the workspace's manifest as ``provision validate`` does: its problems, or None if valid.

    An exception other than ManifestError propagates and fails the test, with hypothesis's input.
    """
    TRIED[family] = TRIED.get(family, 0) + 1
    try:
        load(ws.manifest)
    except ManifestError as exc:
        assert exc.problems, "ManifestError without problems"
        files = ws.files()
        for problem in exc.problems:
            assert_located(problem, files)
        return exc.problems
    return None


def assert_located(problem: Problem, files: set[str]) -> None:
    """The problem names a file involved, a line that exists in it and a column, on one line."""
    text = str(problem)
    assert problem.file in files, text
    assert "\n" not in text and "\r" not in text, text
    assert LINE.match(text), text
    lines = len(YAML_BREAK.findall(Path(problem.file).read_bytes().decode("utf-8", "replace"))) + 1
    assert 1 <= problem.line <= lines, (text, lines)
    assert problem.column >= 1, text
    assert problem.message.strip(), text


def refused(ws: Workspace, family: str) -> list[Problem]:
    problems = outcome(ws, family)
    assert problems is not None, f"{family}: accepted a manifest built to be invalid:\n" + \
        ws.manifest.read_text(errors="replace")[:3000]
    return problems


# ---- generated values ---------------------------------------------------------------------------

printable = st.characters(blacklist_categories=("Cs",))
texts = st.text(printable, max_size=40)
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=10**100, max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True), texts,
    st.sampled_from(["2020-13-45", "0x" + "F" * 500, "1e999", "-.inf", ".nan", "~", "yes", "0o777", "1_000"]))
structures = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=5), st.dictionaries(texts, inner, max_size=5)), max_leaves=25)
KINDS = {type(None): "null", bool: "bool", int: "number", float: "number", str: "text", list: "list", dict: "map"}
VALUES_BY_KIND = {
    "null": st.none(), "bool": st.booleans(),
    "number": st.one_of(st.integers(), st.floats(allow_nan=True, allow_infinity=True),
                        st.integers(min_value=10**100, max_value=10**300)),
    "text": texts.map(lambda t: "x" + t), "list": st.lists(scalars, max_size=3),
    "map": st.dictionaries(texts.map(lambda t: "k" + t), scalars, min_size=1, max_size=3)}


def kind(value: Any) -> str:
    return KINDS[type(value)]


def dump(data: Any) -> str:
    """YAML for ``data``; big integers as digits (PyYAML writes them, our loader must refuse them)."""
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


def walk(data: Any, path: tuple = ()) -> Iterator[tuple[tuple, Any]]:
    yield path, data
    if isinstance(data, dict):
        for k, v in data.items():
            yield from walk(v, (*path, k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            yield from walk(v, (*path, i))


def edited(data: Any, path: tuple, change: Any) -> Any:
    """A deep copy of ``data`` with ``change(parent, key)`` applied at ``path``."""
    copy = deepcopy(data)
    parent = copy
    for part in path[:-1]:
        parent = parent[part]
    change(parent, path[-1])
    return copy


def free_form(path: tuple) -> bool:
    """Values any type may take: disable values, scope values, constants and defaults."""
    return any(p in ("disable", "value", "constant", "default") for p in path)


TYPED_PATHS = [p for p, _ in walk(QUICKSTART_DATA) if p and not free_form(p)]
REQUIRED_PATHS = [
    ("version",), ("name",), ("connectors",), ("object_types",), ("connectors", "hr", "type"),
    ("connectors", "app", "type"), ("connectors", "app", "url"), ("connectors", "app", "objects"),
    ("connectors", "app", "objects", "users", "table"), ("connectors", "app", "objects", "users", "key"),
    *[(*ot, key) for ot in (("object_types", 0), ("object_types", 1)) for key in ("name", "source", "target", "mapping")],
    *[("object_types", i, "source", k) for i in (0, 1) for k in ("connector", "object", "anchor")],
    *[("object_types", i, "target", k) for i in (0, 1) for k in ("connector", "object")],
    ("object_types", 1, "mapping", 0, "target"), ("object_types", 0, "scope", "any", 0, "op"),
]
# Mappings where any new key is a mistake. Not the csv connector's objects (any file name is an
# object, options optional) nor its multi_valued (any text is a delimiter).
MAPS = [p for p, v in walk(QUICKSTART_DATA) if isinstance(v, dict)
        and p not in (("connectors", "hr", "objects"), ("connectors", "hr", "objects", "groups", "multi_valued"))]
STRINGS = [p for p, v in walk(QUICKSTART_DATA) if isinstance(v, str)]
BAD_REFERENCES = st.one_of(
    st.sampled_from(["${env:}", "${env:9LIVES}", "${env:A-B}", "${env:PROVISION_FUZZ_UNSET}", "${nope:x}",
                     "${}", "${file:}", "${file:   }", "${file:binary.dat}", "${file:/dev/zero}",
                     "${file:a\0b}", "${file:a-folder}", "${file:" + "n" * 300 + "}", "${file:~nobody_here/x}",
                     "${env:HOME", "${file:secret.txt", "${env:${env:HOME}}", "${ENV:HOME}"]),
    texts.filter(lambda t: "}" not in t).map(lambda t: "${file:missing/" + t + "}"),
    texts.filter(lambda t: "}" not in t and "$" not in t).map(lambda t: "${env:PROVISION_FUZZ_UNSET_" + t.encode().hex()
                                                              + "}"))


# ---- random YAML as a whole manifest ------------------------------------------------------------


@FUZZ
@given(doc=st.one_of(structures.map(dump), texts, st.binary(max_size=200)))
def test_random_yaml_is_refused_with_located_problems(ws, doc):
    ws.write(doc)
    refused(ws, "random yaml")


# ---- structural mutations of the quickstart: each must be refused -------------------------------


def _drop(data: Any, path: tuple) -> Any:
    return edited(data, path, lambda parent, key: parent.pop(key))


@st.composite
def broken_quickstart(draw: st.DrawFn) -> tuple[str, Any]:
    how = draw(st.sampled_from(["drop", "retype", "unknown key", "bad reference"]))
    if how == "drop":
        return how, _drop(QUICKSTART_DATA, draw(st.sampled_from(REQUIRED_PATHS)))
    if how == "retype":
        path = draw(st.sampled_from(TYPED_PATHS))
        original = kind(_at(QUICKSTART_DATA, path))
        new_kind = draw(st.sampled_from(sorted(set(VALUES_BY_KIND) - {original})))
        value = draw(VALUES_BY_KIND[new_kind])
        if new_kind == "list" and _names_one_or_many(path):  # a list of column names is a key of several columns
            value = draw(VALUES_BY_KIND["list"].filter(lambda v: not v or not all(isinstance(x, str) and x for x in v)))
        return how, edited(QUICKSTART_DATA, path, lambda parent, key: parent.__setitem__(key, value))
    if how == "unknown key":
        path, key, value = draw(st.sampled_from(MAPS)), "x-" + draw(texts), draw(structures)

        def add(parent: Any, last: Any) -> None:
            (parent[last] if path else parent)[key] = value

        if not path:
            data = deepcopy(QUICKSTART_DATA)
            data[key] = value
            return how, data
        return how, edited(QUICKSTART_DATA, path, add)
    path, bad = draw(st.sampled_from(STRINGS)), draw(BAD_REFERENCES)
    prefix = draw(texts.filter(lambda t: "$" not in t and "}" not in t))
    return how, edited(QUICKSTART_DATA, path, lambda parent, key: parent.__setitem__(key, prefix + bad))


def _names_one_or_many(path: tuple) -> bool:
    """The sql connector's keys take one column name or a list of them (anchors of several columns)."""
    return path[:2] == ("connectors", "app") and path[-1] == "key"


def _at(data: Any, path: tuple) -> Any:
    for part in path:
        data = data[part]
    return data


@settings(FUZZ, max_examples=350)
@given(case=broken_quickstart())
def test_broken_quickstart_is_refused(ws, case):
    how, data = case
    ws.write(dump(data))
    refused(ws, f"quickstart: {how}")


# ---- text mutations of the quickstart: tabs and duplicate lines must be refused ------------------

CONTENT_LINES = [i for i, line in enumerate(QUICKSTART_TEXT.splitlines()) if line.strip()
                 and not line.lstrip().startswith("#")]
INDENTED = [i for i in CONTENT_LINES if QUICKSTART_TEXT.splitlines()[i].startswith(" ")]
KEY_LINES = [i for i in CONTENT_LINES if not QUICKSTART_TEXT.splitlines()[i].lstrip().startswith("-")]  # not list items


@st.composite
def text_mutation(draw: st.DrawFn) -> tuple[str, bytes, bool]:
    """(how, file content, must it be refused?)"""
    lines = QUICKSTART_TEXT.splitlines(keepends=True)
    how = draw(st.sampled_from(["truncate", "bytes", "not utf-8", "tab", "duplicate line", "unicode"]))
    raw = QUICKSTART_TEXT.encode()
    if how == "truncate":
        return how, raw[:draw(st.integers(0, len(raw) - 1))], False
    if how == "bytes":
        at = draw(st.integers(0, len(raw)))
        return how, raw[:at] + draw(st.binary(min_size=1, max_size=20)) + raw[at:], False
    if how == "not utf-8":
        at = draw(st.integers(0, len(raw)))
        return how, raw[:at] + b"\xff" + draw(st.binary(max_size=5)) + raw[at:], True
    if how == "tab":
        i = draw(st.sampled_from(INDENTED))
        lines[i] = "\t" + lines[i].lstrip(" ")
        return how, "".join(lines).encode(), True
    if how == "duplicate line":  # a key written twice
        i = draw(st.sampled_from(KEY_LINES))
        lines.insert(i, lines[i])
        return how, "".join(lines).encode(), True
    i = draw(st.sampled_from(CONTENT_LINES))
    at = draw(st.integers(0, len(lines[i].rstrip("\n"))))
    noise = draw(st.text(st.characters(), min_size=1, max_size=10))
    lines[i] = lines[i][:at] + noise + lines[i][at:]
    return how, "".join(lines).encode("utf-8", "surrogatepass"), False


@settings(FUZZ, max_examples=250)
@given(case=text_mutation())
def test_mangled_quickstart_text(ws, case):
    how, content, must_fail = case
    ws.write(content)
    if must_fail:
        refused(ws, f"text: {how}")
    else:
        outcome(ws, f"text: {how}")


# ---- the mapping file: missing, a folder, malformed, mutated -------------------------------------

BAD_MAPPING_REFS = st.sampled_from(["nope.yaml", "../mappings/nope.yaml", "", "   ", "../mappings", "a-folder",
                                    "binary.dat", "../mappings/person-to-app-user.yaml/x", "a\0b", "n" * 300,
                                    "/dev/null", "/dev/zero", "quickstart.yaml"])


@st.composite
def broken_mapping(draw: st.DrawFn) -> tuple[str, Any, str | bytes, bool]:
    """(how, manifest data, mapping file content, must it be refused?)"""
    how = draw(st.sampled_from(["reference", "random", "drop", "retype", "truncate", "bytes"]))
    if how == "reference":
        ref = draw(BAD_MAPPING_REFS)
        return how, edited(QUICKSTART_DATA, ("object_types", 0, "mapping"),
                           lambda parent, key: parent.__setitem__(key, ref)), MAPPING_TEXT, True
    if how == "random":
        return how, QUICKSTART_DATA, draw(st.one_of(structures.map(dump), texts, st.binary(max_size=100))), True
    paths = [p for p, _ in walk(MAPPING_DATA) if p and not free_form(p)]
    if how == "drop":
        required = [("version",), ("mapping",)] + [("mapping", i, "target") for i in range(len(MAPPING_DATA["mapping"]))]
        return how, QUICKSTART_DATA, dump(_drop(MAPPING_DATA, draw(st.sampled_from(required)))), True
    if how == "retype":
        path = draw(st.sampled_from(paths))
        new_kind = draw(st.sampled_from(sorted(set(VALUES_BY_KIND) - {kind(_at(MAPPING_DATA, path))})))
        value = draw(VALUES_BY_KIND[new_kind])
        return how, QUICKSTART_DATA, dump(edited(MAPPING_DATA, path, lambda p, k: p.__setitem__(k, value))), True
    raw = MAPPING_TEXT.encode()
    if how == "truncate":
        return how, QUICKSTART_DATA, raw[:draw(st.integers(0, len(raw) - 1))], False
    at = draw(st.integers(0, len(raw)))
    return how, QUICKSTART_DATA, raw[:at] + draw(st.binary(min_size=1, max_size=20)) + raw[at:], False


@settings(FUZZ, max_examples=200)
@given(case=broken_mapping())
def test_broken_mapping_file(ws, case):
    how, manifest, mapping, must_fail = case
    ws.write(dump(manifest), mapping)
    if must_fail:
        refused(ws, f"mapping: {how}")
    else:
        outcome(ws, f"mapping: {how}")


# ---- expressions ---------------------------------------------------------------------------------

GOOD_EXPRESSIONS = ["email", "lower(email)", "join(' ', [first_name, last_name])", "left(name, `3`)"]
JUNK = [")", "]", "(", "[", "|", "&&", ",", "`", "'", "{", "==", ".", "!", "@@", "[?", "{a:"]


@st.composite
def expression(draw: st.DrawFn) -> tuple[str, bool]:
    """(expression, must it be refused?)"""
    how = draw(st.sampled_from(["junk", "unknown function", "deep", "random"]))
    good = draw(st.sampled_from(GOOD_EXPRESSIONS))
    if how == "junk":
        return good + draw(st.sampled_from(JUNK)), True
    if how == "unknown function":
        return f"no_such_function_{draw(st.integers(0, 99))}({good})", True
    if how == "deep":
        n = draw(st.integers(1, 3000))
        return draw(st.sampled_from(["(" * n + good + ")" * n, "[" * n + good + "]" * n,
                                    "lower(" * n + "email" + ")" * n, "a." * n + "b"])), False
    return draw(st.text(st.sampled_from("abc_ ()[]{}|&!=<>.,*@`'\"?:-0123456789"), min_size=1, max_size=60)), False


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # jmespath on `literal` junk
@settings(FUZZ, max_examples=150)
@given(case=expression())
def test_bad_expressions_are_refused_where_they_are(ws, case):
    text, must_fail = case
    data = edited(QUICKSTART_DATA, ("object_types", 1, "mapping", 0),
                  lambda parent, key: parent.__setitem__(key, {"target": "name", "expression": text}))
    ws.write(dump(data))
    problems = refused(ws, "expression") if must_fail else outcome(ws, "expression")
    if must_fail or (problems and "nested too deeply" in str(problems)):
        assert any(p.path == "object_types[1].mapping[0].expression" for p in problems), problems


# ---- scope filters ------------------------------------------------------------------------------

# Values the scope's operators were crashing on: days int() or timedelta cannot take, regular
# expressions re.compile cannot take.
UNUSABLE = {("within_next_days", "²"), ("within_next_days", "9" * 5000), ("within_last_days", 1e308),
            ("older_than_days", 10**90), ("beyond_next_days", "99999999999999"), ("older_than_days", 1_000_000),
            ("regex_match", "(" * 1000 + "a" + ")" * 1000), ("not_regex_match", "a{99999999999}")}
SCOPE_VALUES = st.one_of(structures, st.sampled_from(sorted({v for _, v in UNUSABLE}, key=str)),
                         st.sampled_from(["\\", "[", "(?P<", "*", "-1", "0", "1.5", ".inf", "2026-02-30"]))


def with_scope(scope: Any) -> Any:
    return edited(QUICKSTART_DATA, ("object_types", 0, "scope"), lambda parent, key: parent.__setitem__(key, scope))


@st.composite
def scope_filter(draw: st.DrawFn) -> Any:
    from runner.mapping.scope import OPERATORS

    clauses = draw(st.lists(st.fixed_dictionaries(
        {"attribute": st.one_of(st.sampled_from(["status", "hire_date"]), texts),
         "op": st.one_of(st.sampled_from(sorted(OPERATORS)), texts)},
        optional={"value": SCOPE_VALUES}), min_size=1, max_size=4))
    scope: Any = {"all": clauses}
    for _ in range(draw(st.integers(0, 5))):
        scope = {draw(st.sampled_from(["all", "any"])): [scope]}
    return scope


@settings(FUZZ, max_examples=150)
@given(scope=scope_filter())
def test_hostile_scope_filters(ws, scope):
    ws.write(dump(with_scope(scope)))
    outcome(ws, "scope")


@pytest.mark.parametrize(("op", "value"), sorted(UNUSABLE, key=str), ids=lambda v: str(v)[:20])
def test_a_scope_value_its_operator_cannot_use_is_refused_at_the_value(ws, op, value):
    """...and the clause after it is still checked."""
    ws.write(dump(with_scope({"all": [{"attribute": "hire_date", "op": op, "value": value},
                                      {"attribute": "status", "op": "in", "value": "active"}]})))
    problems = refused(ws, "scope value")
    assert [p.path for p in problems] == ["object_types[0].scope.all[0].value", "object_types[0].scope.all[1].value"]
    assert ("days from 0 to 100,000" if "days" in op else "invalid regular expression") in problems[0].message


# ---- alias bombs, size, depth -------------------------------------------------------------------


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    """"Billion laughs": each anchor a list of ``width`` aliases of the one before; 9 x 9 is 387 million."""
    names = [f"l{i}" for i in range(levels)]
    lines = [f"{names[0]}: &{names[0]} [{', '.join(['lol'] * width)}]"]
    lines += [f"{name}: &{name} [{', '.join([f'*{prev}'] * width)}]" for prev, name in zip(names, names[1:], strict=False)]
    return "version: 1\nname: bomb\n" + "\n".join(lines) + "\n"


@pytest.mark.parametrize("merge", [False, True], ids=["lists", "merge keys"])
def test_alias_bomb_is_refused_quickly_at_the_alias(ws, merge):
    text = alias_bomb()
    if merge:  # the same with <<: merge keys, which PyYAML flattens by copying pairs
        text = "version: 1\nname: bomb\nl0: &l0 {a: 1, b: 2, c: 3}\n" + "".join(
            f"l{i}: &l{i} {{<<: [{', '.join([f'*l{i - 1}'] * 9)}], k{i}: [*l{i - 1}, *l{i - 1}, *l{i - 1}]}}\n"
            for i in range(1, 12))
    ws.write(text)
    started = time.perf_counter()
    problems = refused(ws, "alias bomb")
    assert time.perf_counter() - started < 1.0
    assert len(problems) == 1, problems
    problem = problems[0]
    assert "once aliases are expanded" in problem.message and f"{MAX_VALUES:,}" in problem.message
    line = text.splitlines()[problem.line - 1]
    assert line[problem.column - 1] == "*", (problem, line)  # points at the alias that tipped it over


def test_anchors_and_merge_keys_used_honestly_are_fine(ws):
    """Defaults shared with an anchor, one key overridden: valid, not a "duplicate key"."""
    text = QUICKSTART_TEXT.replace(
        "    source: {connector: hr, object: groups, anchor: group_id}\n",
        "    source: {<<: *people, object: groups, anchor: group_id}\n").replace(
        "    source: {connector: hr, object: people, anchor: employee_id}\n",
        "    source: &people {connector: hr, object: people, anchor: employee_id}\n")
    assert text.count("*people") == 1
    ws.write(text)
    assert outcome(ws, "honest anchors") is None


def test_a_file_larger_than_the_limit_is_refused_before_parsing(ws):
    ws.write(QUICKSTART_TEXT + "# " + "x" * MAX_BYTES + "\n")
    started = time.perf_counter()
    problem, = refused(ws, "too large")
    assert time.perf_counter() - started < 1.0
    assert (problem.file, problem.line, problem.column) == (str(ws.manifest), 1, 1)
    assert "larger than 2 MiB" in problem.message


def test_nesting_deeper_than_the_limit_is_refused_where_it_gets_too_deep(ws):
    ws.write(QUICKSTART_TEXT + "\ntests: " + "[" * 5000 + "]" * 5000 + "\n")
    problem, = refused(ws, "too deep")
    assert problem.line == QUICKSTART_TEXT.count("\n") + 2
    assert f"nested more than {MAX_DEPTH} levels deep" in problem.message


def test_a_deep_but_honest_scope_is_fine(ws):
    """30 nested all:/any: groups: deeper than anyone writes, still within the depth limit."""
    scope = {"attribute": "status", "op": "in", "value": ["active", "leave"]}
    for i in range(30):
        scope = {"all" if i % 2 else "any": [scope]}
    data = edited(QUICKSTART_DATA, ("object_types", 0, "scope"), lambda parent, key: parent.__setitem__(key, scope))
    ws.write(dump(data))
    assert outcome(ws, "deep scope") is None


# ---- the real CLI, in its own process -----------------------------------------------------------

CLI_CASES = {
    "alias bomb": alias_bomb(),
    "impossible date": QUICKSTART_TEXT.replace("version: 1", "version: 2020-13-45"),
    "huge number": QUICKSTART_TEXT.replace("version: 1", "version: " + "9" * 5000),
    "deep nesting": QUICKSTART_TEXT + "tests: " + "[" * 3000 + "]" * 3000 + "\n",
    "NUL character": QUICKSTART_TEXT.replace("name: quickstart", "name: quick\0start"),
    "binary ${file:}": QUICKSTART_TEXT.replace("name: quickstart", "name: ${file:binary.dat}"),
    "missing mapping file": QUICKSTART_TEXT.replace("person-to-app-user.yaml", "n" * 300 + ".yaml"),
    "deep expression": QUICKSTART_TEXT.replace("{target: name, source: name}",
                                               "{target: name, expression: '" + "(" * 3000 + "name" + ")" * 3000 + "'}"),
}


@pytest.mark.parametrize("name", CLI_CASES)
def test_the_cli_exits_2_without_a_traceback(ws, name):
    ws.write(CLI_CASES[name])
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROVISION_")}
    env["PYTHONPATH"] = str(REPO)
    run = subprocess.run([sys.executable, "-m", "runner", "validate", str(ws.manifest)], capture_output=True,
                         text=True, errors="replace", timeout=60, env=env, cwd=ws.root)
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr and "internal error" not in run.stderr, run.stderr
    assert run.stdout == ""
    lines = run.stderr.splitlines()
    assert lines and all(LINE.match(line) and line.startswith(str(ws.manifest) + ":") for line in lines), run.stderr


PROPERTY_FAMILIES = ("random yaml", "quickstart: ", "text: ", "mapping: ", "expression", "scope")


@pytest.mark.after_property_tests
def test_well_over_a_thousand_hostile_files_were_tried():
    """Runs last in this file: the property tests above really ran their examples. Deselected
    (tests/conftest.py) unless every property test of the file is selected too."""
    missing = [f for f in PROPERTY_FAMILIES if not any(k.startswith(f) for k in TRIED)]
    assert not missing, f"no hostile files tried for {missing}"
    total = sum(TRIED.values())
    print(f"\nhostile files tried: {total}: " + ", ".join(f"{k} {v}" for k, v in sorted(TRIED.items())))
    assert total >= 1000, TRIED
