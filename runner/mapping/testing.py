"""``provision test``: mapping unit tests kept beside the manifest.

A test gives one source record and what the object type should make of it: target attributes
(``expect``), the scope decision (``in_scope``) or a mapping failure (``expect_error``). Tests
come from the manifest's ``tests:`` key and from ``*.mapping-tests.yaml`` files in the
manifest's folder that belong to it: ``<manifest-stem>.mapping-tests.yaml``, or any such file
whose ``manifest:`` names it. Nothing is contacted: no connector is opened and no state store
is read or written; records go through the same :class:`Mapper` and scope predicate as a run,
after the same JSON round trip the state store gives them.

An invalid test file raises :class:`ManifestError` with every problem located
(``FILE:LINE:COL: path: message``), like ``provision validate``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import difflib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.errors import ManifestError, Problem
from runner.manifest import schema
from runner.manifest.model import Manifest, ObjectType
from runner.manifest.yamlfile import Located, Path_, quoted, read_yaml
from runner.mapping import entra, functions
from runner.mapping.checks import load_with_connectors
from runner.mapping.explain import explain_scope, show
from runner.mapping.expressions import ExpressionError, compile_expression
from runner.mapping.mapper import Mapper, MappingFailed, normalize, with_create_defaults
from runner.mapping.scope import compile_scope
from runner.secrets import MASK

SUFFIXES = (".mapping-tests.yaml", ".mapping-tests.yml")


@dataclass(frozen=True)
class MappingTest:
    name: str
    object_type: ObjectType
    input: dict[str, Any]
    expect: dict[str, Any] | None = None
    in_scope: bool | None = None
    expect_error: str | None = None
    now: dt.datetime | None = None
    where: str = ""  # FILE:LINE of the test

    @property
    def label(self) -> str:
        return f"{self.object_type.name}: {self.name}"


@dataclass
class Outcome:
    test: MappingTest
    differences: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.differences


@dataclass
class Suite:
    manifest: Manifest
    sources: list[str]  # where the tests came from: the manifest and/or test files
    tests: list[MappingTest]


def is_test_file(path: Path) -> bool:
    return path.name.endswith(SUFFIXES)


def _stem(path: Path) -> str:
    return next(path.name[:-len(s)] for s in SUFFIXES if path.name.endswith(s))


# ---- loading -------------------------------------------------------------------------------------


def load_suite(path: str | Path) -> Suite:
    """The tests of the manifest ``path`` (its ``tests:`` and the test files beside it), or of
    the test file ``path`` alone. Raises ManifestError for an invalid manifest or test file."""
    path = Path(path)
    problems: list[Problem] = []
    if is_test_file(path):
        located = _read_test_file(path, problems)
        manifest_path = _manifest_of(path, located, problems) if located is not None else None
        if located is None or manifest_path is None:
            raise ManifestError(problems)
        manifest = load_with_connectors(manifest_path).manifest
        tests = _tests(manifest, located, problems)
        sources = [str(path)]
    else:
        loaded = load_with_connectors(path)
        manifest = loaded.manifest
        tests, sources = [], []
        if isinstance(loaded.located.data.get("tests"), list):
            _iso_dates(loaded.located.data["tests"])
            tests += _tests(manifest, loaded.located, problems)
            sources.append(str(path))
        for file in test_files(path):
            located = _read_test_file(file, problems)
            if located is not None:
                tests += _tests(manifest, located, problems)
                sources.append(str(file))
    if problems:
        raise ManifestError(problems)
    return Suite(manifest, sources, tests)


def test_files(manifest_path: Path) -> list[Path]:
    """The ``*.mapping-tests.yaml`` files in the manifest's folder that belong to it."""
    folder = manifest_path.parent
    if not folder.is_dir():
        return []
    found = []
    for file in sorted(folder.iterdir()):
        if not is_test_file(file) or not file.is_file():
            continue
        named = _named_manifest(file)
        if named is not None:
            if (file.parent / named).resolve() == manifest_path.resolve():
                found.append(folder / file.name)
        elif _stem(file) == manifest_path.stem:
            found.append(folder / file.name)
    return found


def _named_manifest(file: Path) -> str | None:
    """The file's ``manifest:`` value, if it has one (an unreadable file has none)."""
    located = Located()
    data = read_yaml(file, located, display=str(file))
    value = data.get("manifest") if isinstance(data, dict) else None
    return value if isinstance(value, str) and value else None


def _manifest_of(file: Path, located: Located, problems: list[Problem]) -> Path | None:
    """The manifest a test file given on the command line is for."""
    named = located.data.get("manifest")
    if named is not None:
        candidate = file.parent / named
        if candidate.is_file():
            return candidate
        problems.append(located.problem(("manifest",), f"manifest not found: {candidate} (the path is "
                                                       "relative to this file's folder)"))
        return None
    for suffix in (".yaml", ".yml"):
        candidate = file.parent / (_stem(file) + suffix)
        if candidate.is_file():
            return candidate
    problems.append(Problem(str(file), 1, 1, "", f"no manifest {_stem(file)}.yaml beside this file; "
                                                 "name it with manifest: PATH"))
    return None


def _read_test_file(file: Path, problems: list[Problem]) -> Located | None:
    """Read and schema-check one test file; its problems go to ``problems``."""
    located = Located()
    located.data = read_yaml(file, located, display=str(file))
    found = list(located.problems)
    if located.data is None and not found:
        found.append(Problem(str(file), 1, 1, "", "the file is empty"))
    if not found:
        if not isinstance(located.data, dict):
            found.append(Problem(str(file), 1, 1, "", "a mapping-tests file is a mapping with version and tests"))
        else:
            _iso_dates(located.data)
            found += schema.problems(schema.load_schema(schema.MAPPING_TESTS), located.data, located)
    problems += found
    return None if found else located


def _iso_dates(data: Any) -> Any:
    """YAML reads an unquoted 2026-03-29 as a date; a source gives text. Turn dates back into ISO text."""
    if isinstance(data, dict):
        for key, value in data.items():
            data[key] = _iso_dates(value)
    elif isinstance(data, list):
        for i, value in enumerate(data):
            data[i] = _iso_dates(value)
    elif isinstance(data, dt.datetime):
        return functions.format_iso(data) if data.tzinfo is not None else data.isoformat()
    elif isinstance(data, dt.date):
        return data.isoformat()
    return data


def _tests(manifest: Manifest, located: Located, problems: list[Problem]) -> list[MappingTest]:
    """The tests under ``tests:`` in ``located`` (schema-valid), checked against the manifest."""
    tests = []
    types = {ot.name: ot for ot in manifest.object_types}
    for i, raw in enumerate(located.data["tests"]):
        at: Path_ = ("tests", i)
        found: list[Problem] = []
        ot = types.get(raw["object_type"])
        if ot is None:
            found.append(located.problem((*at, "object_type"), f"unknown object type {quoted(raw['object_type'])}"
                                         f"{_suggest(raw['object_type'], types)}; defined: {', '.join(types)}"))
        if not any(k in raw for k in ("expect", "in_scope", "expect_error")):
            found.append(located.problem(at, "a test needs at least one of expect, in_scope or expect_error"))
        if "expect" in raw and "expect_error" in raw:
            found.append(located.problem((*at, "expect_error"), "expect_error and expect exclude each other: "
                                         "a mapping that fails maps nothing", key=True))
        if ot is not None:
            mapped = [m.target for m in ot.mapping]
            for attr in raw.get("expect", {}):
                if attr not in mapped:
                    found.append(located.problem((*at, "expect", attr), f"object type {quoted(ot.name)} maps no "
                                                 f"attribute {quoted(attr)}{_suggest(attr, mapped)}; it maps: "
                                                 f"{', '.join(mapped)}", key=True))
        now = None
        if "now" in raw:
            try:
                now, _ = functions.parse_date(raw["now"])
            except ValueError as exc:
                found.append(located.problem((*at, "now"), str(exc)))
        problems += found
        if found or ot is None:
            continue
        file, line, _ = located.where(at)
        tests.append(MappingTest(raw["name"], ot, raw["input"], raw.get("expect"), raw.get("in_scope"),
                                 raw.get("expect_error"), now, f"{file}:{line}"))
    return tests


def _suggest(name: str, known: Any) -> str:
    hint = difflib.get_close_matches(name, list(known), n=1)
    return f"; did you mean {quoted(hint[0])}?" if hint else ""


# ---- running -------------------------------------------------------------------------------------


def run_suite(suite: Suite) -> list[Outcome]:
    compiled: dict[str, tuple[Mapper, Any]] = {}
    outcomes = []
    for test in suite.tests:
        ot = test.object_type
        if ot.name not in compiled:
            compiled[ot.name] = (Mapper(ot), compile_scope(ot.scope))
        mapper, in_scope = compiled[ot.name]
        outcomes.append(run_test(test, mapper, in_scope))
    return outcomes


def run_test(test: MappingTest, mapper: Mapper | None = None, in_scope: Any = None) -> Outcome:
    ot = test.object_type
    mapper = mapper or Mapper(ot)
    in_scope = in_scope or compile_scope(ot.scope)
    # the record as the mapping sees it in a run: through the state store's JSON round trip
    record = json.loads(json.dumps(test.input, default=str))
    outcome = Outcome(test)
    with _clock(test.now):
        if test.in_scope is not None:
            got = bool(in_scope(record))
            if got != test.in_scope:
                outcome.differences.append(f"in_scope: expected {show(test.in_scope)}, got {show(got)}")
                outcome.differences += ["  " + step.line() for step in explain_scope(ot.scope, record)]
        if test.expect is None and test.expect_error is None:
            return outcome
        try:
            mapped = with_create_defaults(mapper.map(record), mapper)  # the values an add sends
        except MappingFailed as exc:
            if test.expect_error is None:
                outcome.differences.append(f"the mapping fails: {exc}")
            elif test.expect_error.casefold() not in str(exc).casefold():
                outcome.differences.append(f"error: expected a failure mentioning {show(test.expect_error)}, "
                                           f"got: {exc}")
            return outcome
    if test.expect_error is not None:
        outcome.differences.append(f"error: expected a failure mentioning {show(test.expect_error)}, "
                                   "but the mapping succeeds")
        return outcome
    for attr, wanted in (test.expect or {}).items():
        spec = ot.attribute(attr)
        multi = spec is not None and spec.multi_valued
        want = normalize(wanted, multi)
        got = mapped.get(attr, [] if multi else None)
        if _equal(want, got):
            continue
        if attr in mapper.sensitive:
            outcome.differences.append(f"{attr}: differs from the expected value (sensitive: values not shown, "
                                       f"expected {MASK if want is not None else 'null'}, "
                                       f"got {MASK if got is not None else 'null'})")
        elif attr not in mapped and not multi:
            outcome.differences.append(f"{attr}: expected {show(want)}, got nothing (left out of the export)")
        else:
            outcome.differences.append(f"{attr}: expected {show(want)}, got {show(got)}")
    return outcome


def entra_note(test: MappingTest) -> str:
    """What the test's line adds for a migration from Entra: for the functions computing the
    attributes it checks (all mapped attributes when it checks none), the Entra expression each
    one replaces, e.g. ``  [Entra: pcase = PCase, switch = Switch]``; empty when there are none."""
    ot = test.object_type
    checked = set(test.expect or ()) or {m.target for m in ot.mapping}
    seen: dict[str, str] = {}
    for mapping in ot.mapping:
        if mapping.target not in checked or not mapping.expression:
            continue
        try:
            used = compile_expression(mapping.expression).functions
        except ExpressionError:
            continue
        for name in sorted(used):
            replaced = entra.replaces(name)
            if replaced is not None:
                seen.setdefault(name, replaced.partition("(")[0])
    if not seen:
        return ""
    return "  [Entra: " + ", ".join(f"{name} = {entra_name}" for name, entra_name in seen.items()) + "]"


def _equal(a: Any, b: Any) -> bool:
    """Equality that tells true from 1 and "1" from 1 (YAML and JSON values)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    return type(a) is type(b) and a == b


@contextlib.contextmanager
def _clock(now: dt.datetime | None) -> Iterator[None]:
    """Pin the clock of now() and the date operators for one test."""
    if now is None:
        yield
        return
    saved = functions.clock
    functions.clock = lambda: now
    try:
        yield
    finally:
        functions.clock = saved
