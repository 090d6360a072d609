"""`provision validate FILE...`: every problem of a broken manifest, one line each, located.

Each broken manifest is the small valid BASE below with one edit, written to tmp_path. Every
problem must read ``FILE:LINE:COL: json.path: message`` on stderr, point at the line a person
has to fix, and never come with a traceback or a secret.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import pytest

from runner import cli

REPO = Path(__file__).resolve().parent.parent
QUICKSTART = REPO / "manifests" / "quickstart.yaml"
PROVISION = Path(sys.executable).parent / "provision"

# A valid manifest: csv source folder and sqlite target, both in the test's tmp_path (TMP).
BASE = """\
version: 1
name: test
connectors:
  hr:
    type: csv
    path: TMP/data
  app:
    type: sql
    url: "sqlite:///TMP/app.db"
    objects:
      users: {table: users, key: id, generated_key: true}
      groups: {table: groups, key: id, generated_key: true}
object_types:
  - name: user
    source: {connector: hr, object: people, anchor: employee_id}
    target: {connector: app, object: users, disable: {active: false}, correlate: [user_name]}
    when_deleted: delete
    mapping:
      - {target: user_name, source: email}
      - target: display_name
        expression: "join(' ', [first_name, last_name])"
      - {target: active, constant: true}
  - name: group
    source: {connector: hr, object: groups, anchor: group_id}
    target: {connector: app, object: groups, correlate: [name]}
    mapping:
      - {target: name, source: name}
      - {target: members, source: members, reference: user, multi_valued: true}
"""

USER_MAPPING = """\
    mapping:
      - {target: user_name, source: email}
      - target: display_name
        expression: "join(' ', [first_name, last_name])"
      - {target: active, constant: true}
"""

LINE = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<col>\d+): (?P<path>\S+): (?P<message>.+)$")


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    col: int
    path: str
    message: str


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def problems(self) -> list[Problem]:
        """stderr parsed; fails the test if any line is not FILE:LINE:COL: path: message."""
        found = []
        for text in self.err.splitlines():
            match = LINE.match(text)
            assert match, f"not FILE:LINE:COL: path: message: {text!r}\n{self.err}"
            found.append(Problem(match["file"], int(match["line"]), int(match["col"]), match["path"],
                                 match["message"]))
        return found

    def only_problem(self) -> Problem:
        assert self.code == 2, (self.code, self.out, self.err)
        assert self.out == ""
        assert len(self.problems) == 1, self.err
        return self.problems[0]


@pytest.fixture
def validate(capsys: pytest.CaptureFixture[str]):
    """``provision validate ARGS...`` in this process."""

    def run(*files: str | Path) -> Result:
        capsys.readouterr()
        code = cli.main(["validate", *map(str, files)])
        captured = capsys.readouterr()
        assert "Traceback" not in captured.err and "internal error" not in captured.err, captured.err
        return Result(code, captured.out, captured.err)

    return run


@pytest.fixture
def base(tmp_path: Path) -> str:
    """BASE pointed at tmp_path, with the csv folder it reads."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "people.csv").write_text("employee_id,email,first_name,last_name\nE1,ada@example.org,Ada,One\n")
    (data / "groups.csv").write_text("group_id,name,members\nG1,admins,E1\n")
    return BASE.replace("TMP", str(tmp_path))


def edit(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"{old!r} must occur once"
    return text.replace(old, new)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def line_of(text: str, snippet: str) -> int:
    """1-based number of the one line of ``text`` that contains ``snippet``."""
    lines = [n for n, line in enumerate(text.splitlines(), 1) if snippet in line]
    assert len(lines) == 1, f"{snippet!r} is on lines {lines}"
    return lines[0]


def col_of(text: str, snippet: str) -> int:
    line = text.splitlines()[line_of(text, snippet) - 1]
    return line.index(snippet) + 1


# ---- clean manifests ----------------------------------------------------------------------------


def test_the_base_manifest_is_valid(validate, base, tmp_path):
    manifest = write(tmp_path / "m.yaml", base)
    result = validate(manifest)
    assert (result.code, result.out, result.err) == (0, f"{manifest}: ok\n", "")


def test_quickstart_validates_clean(validate, monkeypatch):
    monkeypatch.delenv("PROVISION_DATA", raising=False)
    monkeypatch.delenv("PROVISION_TARGET", raising=False)
    result = validate(QUICKSTART)
    assert (result.code, result.out, result.err) == (0, f"{QUICKSTART}: ok\n", "")


def test_schema_command_prints_the_2020_12_json_schema(capsys):
    for args in (["schema"], ["schema", "--mapping"]):
        capsys.readouterr()
        assert cli.main(args) == 0
        schema = json.loads(capsys.readouterr().out)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        jsonschema.Draft202012Validator.check_schema(schema)
    capsys.readouterr()
    cli.main(["schema"])
    manifest_schema = json.loads(capsys.readouterr().out)
    assert {"version", "name", "connectors", "object_types"} <= set(manifest_schema["required"])


# ---- one broken thing at a time -----------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    old: str  # text of BASE to replace (once)
    new: str
    at: str  # text on the line the problem must point at (once in the broken manifest)
    path: str  # the JSON path reported
    message: str  # a part of the message that tells what to do
    col: bool = False  # also check that the column is where ``at`` starts


CASES = {
    "yaml syntax: bad indentation": Case(
        '    url: "sqlite', '     url: "sqlite', 'url: "sqlite', "(top)",
        "YAML syntax error: mapping values are not allowed here"),
    "version is text": Case(
        "version: 1", 'version: "one"', '"one"', "version", "must be 1", col=True),
    "when_deleted is a number": Case(
        "when_deleted: delete", "when_deleted: 5", "when_deleted: 5", "object_types[0].when_deleted",
        "must be one of: delete, disable, ignore"),
    "description is a number": Case(
        "name: test\n", "name: test\ndescription: 5\n", "description: 5", "description",
        "expected text, got a number"),
    "unknown key with a suggestion": Case(
        "    when_deleted: delete\n", "    when_deleted: delete\n    mapings: []\n", "mapings",
        "object_types[0].mapings", "unknown key 'mapings'; did you mean 'mapping'?", col=True),
    "unknown key in a connector block": Case(
        "    path: TMP", "    delimeter: ';'\n    path: TMP", "delimeter", "connectors.hr.delimeter",
        "unknown key 'delimeter'; did you mean 'delimiter'?", col=True),
    "missing required key": Case(
        "object: people, anchor: employee_id}", "object: people}", "{connector: hr, object: people}",
        "object_types[0].source", "missing required key 'anchor'"),
    "missing environment variable": Case(
        "sqlite:///TMP/app.db", "sqlite:///${env:PROVISION_TEST_UNSET}", "PROVISION_TEST_UNSET",
        "connectors.app.url", "environment variable PROVISION_TEST_UNSET is not set"),
    "unknown connector type": Case(
        "type: csv", "type: ldapx", "ldapx", "connectors.hr.type", "unknown connector type 'ldapx'"),
    "unknown connector name": Case(
        "{connector: hr, object: people", "{connector: hrr, object: people", "connector: hrr",
        "object_types[0].source.connector", "unknown connector 'hrr'; did you mean 'hr'?"),
    "unknown object of a sql connector": Case(
        "object: users,", "object: foo,", "object: foo", "object_types[0].target.object",
        "connector 'app' has no object 'foo'; it has: groups, users"),
    "duplicate target attribute": Case(
        "      - target: display_name", "      - target: user_name", "- target: user_name",
        "object_types[0].mapping[1].target", "duplicate target attribute 'user_name' (first mapped at line 19)"),
    "expression that does not parse": Case(
        "[first_name, last_name])", "[first_name, last_name)", "expression:",
        "object_types[0].mapping[1].expression", "cannot parse expression 'join(' ', [first_name, last_name)'"),
    "unknown function": Case(
        "join(' ', [first_name", "joyn(' ', [first_name", "expression:",
        "object_types[0].mapping[1].expression", "unknown function joyn()"),
    "reference to an unknown object type": Case(
        "reference: user,", "reference: usr,", "reference: usr", "object_types[1].mapping[1].reference",
        "unknown object type 'usr'; did you mean 'user'?"),
    "reference to an object type listed later": Case(
        "      - {target: active, constant: true}\n",
        "      - {target: active, constant: true}\n      - {target: group_id, source: dept, reference: group}\n",
        "reference: group", "object_types[0].mapping[3].reference",
        "object type 'group' is listed after 'user'; list it first"),
    "duplicate YAML key": Case(
        "    path: TMP/data\n", "    path: TMP/data\n    path: elsewhere\n", "path: elsewhere",
        "connectors.hr.path", "duplicate key 'path' (first at line 6)", col=True),
    "mapping entry with source and expression": Case(
        "{target: user_name, source: email}", "{target: user_name, source: email, expression: lower(email)}",
        "target: user_name", "object_types[0].mapping[0]",
        "needs exactly one of source, constant or expression (has source and expression)"),
    "when_out_of_scope disable without target.disable": Case(
        "    target: {connector: app, object: groups, correlate: [name]}\n",
        "    target: {connector: app, object: groups, correlate: [name]}\n    scope: {all: [{attribute: name, op: ne, value: x}]}\n"
        "    when_out_of_scope: disable\n",
        "when_out_of_scope: disable", "object_types[1].when_out_of_scope", "needs target.disable"),
    "a scope with the default when_out_of_scope and no target.disable": Case(
        "    target: {connector: app, object: groups, correlate: [name]}\n",
        "    target: {connector: app, object: groups, correlate: [name]}\n    scope: {all: [{attribute: name, op: ne, value: x}]}\n",
        "scope:", "object_types[1].scope", "when_out_of_scope defaults to disable), which needs target.disable"),
    "when_deleted disable without target.disable": Case(
        "    target: {connector: app, object: groups, correlate: [name]}\n",
        "    target: {connector: app, object: groups, correlate: [name]}\n    when_deleted: disable\n",
        "when_deleted: disable", "object_types[1].when_deleted", "when_deleted: disable needs target.disable"),
    "op in with a value that is not a list": Case(
        "    when_deleted: delete\n",
        "    when_deleted: delete\n    scope:\n      all:\n        - attribute: status\n          op: in\n"
        "          value: active\n",
        "value: active", "object_types[0].scope.all[0].value", "op in needs a list value"),
    "recursive YAML alias": Case(
        "name: test\n", "name: test\ndescription: &loop\n  - *loop\n", "*loop", "(top)",
        "the alias *loop sits inside the anchor it refers to", col=True),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_one_problem_is_reported_where_it_is(validate, base, tmp_path, monkeypatch, case: Case):
    monkeypatch.delenv("PROVISION_TEST_UNSET", raising=False)
    text = edit(base, case.old.replace("TMP", str(tmp_path)), case.new.replace("TMP", str(tmp_path)))
    manifest = write(tmp_path / "broken.yaml", text)
    result = validate(manifest)
    problem = result.only_problem()
    assert problem.file == str(manifest)
    assert problem.line == line_of(text, case.at), result.err
    if case.col:
        assert problem.col == col_of(text, case.at), result.err
    assert problem.path == case.path
    assert case.message in problem.message, result.err


def test_unknown_connector_type_lists_the_installed_types(validate, base, tmp_path):
    text = edit(base, "type: csv", "type: ldapx")
    problem = validate(write(tmp_path / "m.yaml", text)).only_problem()
    installed = re.search(r"installed: ([\w, -]+)", problem.message)
    assert installed, problem.message
    assert {"csv", "sql"} <= {name.strip() for name in installed[1].split(",")}


def test_unclosed_brace_names_the_line_where_it_opened(validate, base, tmp_path):
    text = edit(base, "object: groups, anchor: group_id}", "object: groups, anchor: group_id")
    problem = validate(write(tmp_path / "m.yaml", text)).only_problem()
    assert problem.message.startswith("YAML syntax error: expected ',' or '}'")
    assert f"started at line {line_of(text, 'anchor: group_id')}" in problem.message


def test_unclosed_brace_at_the_end_of_the_file_points_at_the_brace(validate, base, tmp_path):
    text = edit(base, "multi_valued: true}\n", "multi_valued: true\n")
    problem = validate(write(tmp_path / "m.yaml", text)).only_problem()
    assert "YAML syntax error" in problem.message
    assert problem.line == line_of(text, "multi_valued: true")


def test_env_default_is_used_when_the_variable_is_unset(validate, base, tmp_path, monkeypatch):
    monkeypatch.delenv("PROVISION_TEST_UNSET", raising=False)
    good = edit(base, "sqlite:///TMP/app.db".replace("TMP", str(tmp_path)),
                "sqlite:///${env:PROVISION_TEST_UNSET:-" + str(tmp_path) + "/app.db}")
    result = validate(write(tmp_path / "good.yaml", good))
    assert (result.code, result.err) == (0, "")
    # The default really is the value: an invalid default is reported as what it is.
    bad = edit(base, "name: test", 'name: "${env:PROVISION_TEST_UNSET:-two words}"')
    problem = validate(write(tmp_path / "bad.yaml", bad)).only_problem()
    assert (problem.line, problem.path) == (2, "name")
    assert "'two words' is not a valid name" in problem.message


def test_mapping_file_problems_name_the_mapping_file_and_its_lines(validate, base, tmp_path):
    mapping = write(tmp_path / "mappings" / "user.yaml", """\
version: 1
mapping:
  - {target: user_name, source: email}
  - {target: display_name, sorce: full_name}
""")
    text = edit(base, USER_MAPPING, "    mapping: ../mappings/user.yaml\n")
    manifest = write(tmp_path / "manifests" / "m.yaml", text)
    problem = validate(manifest).only_problem()
    assert problem.file == str(mapping)  # not manifests/../mappings/user.yaml
    assert (problem.line, problem.col) == (4, 28)
    assert problem.path == "mapping[1].sorce"
    assert "unknown key 'sorce'; did you mean 'source'?" in problem.message

    # A problem only the semantic checks find (a duplicate target) is located in the mapping file too.
    write(mapping, """\
version: 1
mapping:
  - {target: user_name, source: email}
  - {target: active, constant: true}
  - {target: user_name, source: employee_id}
""")
    problem = validate(manifest).only_problem()
    assert (problem.file, problem.line) == (str(mapping), 5)
    assert problem.path == "object_types[0].mapping[2].target"
    assert "duplicate target attribute 'user_name' (first mapped at line 3)" in problem.message


def test_missing_mapping_file_is_reported_at_the_reference(validate, base, tmp_path):
    text = edit(base, USER_MAPPING, "    mapping: ../mappings/nope.yaml\n")
    manifest = write(tmp_path / "manifests" / "m.yaml", text)
    problem = validate(manifest).only_problem()
    assert (problem.file, problem.line) == (str(manifest), line_of(text, "nope.yaml"))
    assert problem.path == "object_types[0].mapping"
    assert f"mapping file not found: {tmp_path / 'mappings' / 'nope.yaml'}" in problem.message


# ---- several problems, several files ------------------------------------------------------------


def test_every_schema_problem_in_a_file_is_reported(validate, base, tmp_path, monkeypatch):
    monkeypatch.delenv("PROVISION_TEST_UNSET", raising=False)
    text = edit(base, "version: 1", "version: 2")
    text = edit(text, "type: csv", "type: ldapx")
    text = edit(text, "sqlite:///" + str(tmp_path), "sqlite:///${env:PROVISION_TEST_UNSET}")
    text = edit(text, "when_deleted: delete", "when_deleted: 5")
    text = edit(text, "target: {connector: app, object: groups, correlate: [name]}", "target: {connector: app, object: groups, x: 1}")
    result = validate(write(tmp_path / "m.yaml", text))
    assert result.code == 2
    assert [(p.line, p.path) for p in result.problems] == [
        (1, "version"),
        (line_of(text, "ldapx"), "connectors.hr.type"),
        (line_of(text, "PROVISION_TEST_UNSET"), "connectors.app.url"),
        (line_of(text, "when_deleted: 5"), "object_types[0].when_deleted"),
        (line_of(text, "x: 1"), "object_types[1].target.x"),
    ], result.err


def test_every_semantic_problem_in_a_file_is_reported(validate, base, tmp_path):
    text = edit(base, "object: users,", "object: foo,")
    text = edit(text, "join(' ',", "joyn(' ',")
    text = edit(text, "reference: user,", "reference: usr,")
    text = edit(text, "{target: name, source: name}", "{target: members, source: name}")
    result = validate(write(tmp_path / "m.yaml", text))
    assert result.code == 2
    assert [(p.line, p.path) for p in result.problems] == [
        (line_of(text, "object: foo"), "object_types[0].target.object"),
        (line_of(text, "joyn"), "object_types[0].mapping[1].expression"),
        # name is no longer mapped, so the groups cannot be found by it after a crash
        (line_of(text, "correlate: [name]"), "object_types[1].target.correlate[0]"),
        (line_of(text, "{target: members, source: members"), "object_types[1].mapping[1].target"),
        (line_of(text, "{target: members, source: members"), "object_types[1].mapping[1].reference"),
    ], result.err


def test_one_good_file_and_one_bad_file(validate, base, tmp_path):
    good = write(tmp_path / "good.yaml", base)
    bad = write(tmp_path / "bad.yaml", edit(base, "version: 1", "version: 2"))
    result = validate(bad, good)
    assert result.code == 2
    assert result.out == f"{good}: ok\n"
    assert [(p.file, p.line, p.path) for p in result.problems] == [(str(bad), 1, "version")]


def test_a_file_that_does_not_exist(validate, base, tmp_path):
    good = write(tmp_path / "good.yaml", base)
    missing = tmp_path / "missing.yaml"
    result = validate(missing, good)
    assert result.code == 2
    assert result.out == f"{good}: ok\n"
    problem = result.problems[0]
    assert len(result.problems) == 1
    assert (problem.file, problem.line) == (str(missing), 1)
    assert "cannot read file: No such file or directory" in problem.message


def test_end_to_end_exit_code_and_no_traceback(base, tmp_path):
    """The installed console script, in its own process, on files broken in different ways."""
    schema = edit(edit(base, "version: 1", "version: 2"), "type: csv", "type: ldapx")
    schema = write(tmp_path / "schema.yaml", schema)
    syntax_text = edit(base, '    url: "sqlite', '     url: "sqlite')
    syntax = write(tmp_path / "syntax.yaml", syntax_text)
    recursive = write(tmp_path / "recursive.yaml", edit(base, "name: test\n", "name: test\ndescription: &a [*a]\n"))
    missing = tmp_path / "missing.yaml"
    good = write(tmp_path / "good.yaml", base)
    run = subprocess.run([str(PROVISION), "validate", str(schema), str(syntax), str(recursive), str(missing),
                          str(good)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr and "internal error" not in run.stderr, run.stderr
    assert run.stdout == f"{good}: ok\n"
    lines = run.stderr.splitlines()
    assert all(LINE.match(line) for line in lines), run.stderr
    starts = [line.split(": ")[0] for line in lines]
    assert f"{schema}:1:10" in starts
    assert f"{schema}:{line_of(base, 'type: csv')}:11" in starts
    assert f"{syntax}:{line_of(syntax_text, 'url:')}:9" in starts
    assert f"{missing}:1:1" in starts
    assert any(line.startswith(f"{recursive}:3:") and "cannot contain itself" in line for line in lines), run.stderr


# ---- secrets ------------------------------------------------------------------------------------

SECRET = "s3cr'et\\Pa55 word!"  # quote and backslash: repr() escapes them, and escaped text escapes the mask


@pytest.mark.parametrize(("old", "new", "shown"), [
    ("name: test", 'name: "${env:DB_PASSWORD}"', "'***' is not a valid name"),  # schema
    ("connector: hr, object: people", 'connector: "x${env:DB_PASSWORD}", object: people',
     "unknown connector 'x***'"),  # semantic check
    ("join(' ', [first_name, last_name])", "${env:DB_PASSWORD}", "cannot read expression '***'"),  # expression
], ids=["schema", "connector", "expression"])
def test_secret_in_a_rejected_field_is_masked(validate, base, tmp_path, monkeypatch, old, new, shown):
    monkeypatch.setenv("DB_PASSWORD", SECRET)
    text = edit(base, old, new)
    problem = validate(write(tmp_path / "m.yaml", text)).only_problem()
    assert problem.line == line_of(text, "${env:DB_PASSWORD}")
    assert shown in problem.message
    for fragment in (SECRET, repr(SECRET)[1:-1], "s3cr", "Pa55"):
        assert fragment not in problem.message


def test_password_in_a_sql_url_never_appears(validate, base, tmp_path, monkeypatch):
    password = "pw-in-url-7f3a\\x'y"
    # The variable's name does not look secret: only its place, the password of a URL, says it is.
    monkeypatch.setenv("APP_DB_PART", password)
    url = "postgresql://u:${env:APP_DB_PART}@h/db"
    text = edit(base, f'url: "sqlite:///{tmp_path}/app.db"', f'url: "{url}"')
    assert validate(write(tmp_path / "ok.yaml", text)).code == 0
    # The same URL pasted where a connector name belongs: the message quotes it, masked.
    text = edit(text, "connector: hr, object: people", f'connector: "{url}", object: people')
    result = validate(write(tmp_path / "m.yaml", text))
    problem = result.only_problem()
    assert problem.path == "object_types[0].source.connector"
    assert "unknown connector 'postgresql://u:***@h/db'" in problem.message
    assert "pw-in-url" not in result.out + result.err


# ---- what the object type asks of its target connector ------------------------------------


@pytest.mark.parametrize(("old", "new", "at", "message"), [
    ("    target: {connector: app, object: users, disable: {active: false}, correlate: [user_name]}",
     "    target: {connector: app, object: users, disable: {active: false}, correlate: [user_name], name: \"uid={user_name}\"}",
     "object_types[0].target.name", "cannot rename objects"),
    ("      - {target: active, constant: true}\n  - name: group",
     "      - {target: active, constant: true}\n      - {target: pw, constant: x, password: true}\n  - name: group",
     "object_types[0].target", "takes no passwords"),
])
def test_target_must_be_able_to_do_what_the_type_asks(validate, base: str, tmp_path: Path, old, new, at, message):
    text = edit(base, old, new)
    problem = validate(write(tmp_path / "m.yaml", text)).only_problem()
    assert problem.path == at and message in problem.message
    assert problem.line == line_of(text, "target: {connector: app, object: users")


def test_hierarchical_target_needs_a_name_template(validate, base: str, tmp_path: Path):
    text = edit(base, "  app:\n", f"  dir: {{type: jsondir, root: {tmp_path}/dir, objects: [users]}}\n  app:\n")
    text = edit(text, "    target: {connector: app, object: users, disable: {active: false}, correlate: [user_name]}",
                "    target: {connector: dir, object: users, disable: {active: false}}")
    problem = validate(write(tmp_path / "m.yaml", text)).only_problem()
    assert problem.path == "object_types[0].target" and "add target.name" in problem.message


def test_name_template_fields_must_be_mapped(validate, base: str, tmp_path: Path):
    text = edit(base, "  app:\n", f"  dir: {{type: jsondir, root: {tmp_path}/dir, objects: [users]}}\n  app:\n")
    text = edit(text, "    target: {connector: app, object: users, disable: {active: false}, correlate: [user_name]}",
                "    target: {connector: dir, object: users, disable: {active: false}, name: \"uid={user_nam}\"}")
    problem = validate(write(tmp_path / "m.yaml", text)).only_problem()
    assert problem.path == "object_types[0].target.name"
    assert "{user_nam}" in problem.message and "did you mean 'user_name'" in problem.message
