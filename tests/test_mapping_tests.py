"""`provision test`: mapping unit tests beside the manifest, run without contacting anything."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import jsonschema
import pytest
import yaml
from conftest import QUICKSTART, REPO

from runner.connectors.csvfile import CsvConnector
from runner.connectors.sql import SqlConnector
from runner.state.store import StateStore

PASSING = """\
version: 1
tests:
  - name: user_name from the e-mail
    object_type: user
    input: {employee_id: E1, first_name: Zoë, last_name: Ødegård, email: Zoe.Odegard@example.org,
            status: active}
    expect: {user_name: zoe.odegard, display_name: Zoë Ødegård}
    in_scope: true
  - name: terminated
    object_type: user
    input: {employee_id: E2, first_name: Ben, last_name: Gone, email: ben@example.org, status: terminated}
    in_scope: false
  - name: members
    object_type: group
    input: {group_id: G1, name: Team, members: [E2, E1, E1]}
    expect: {members: [E1, E2], description: null}
"""

FAILING = """\
version: 1
tests:
  - name: right
    object_type: user
    input: {employee_id: E1, first_name: Ada, last_name: One, email: ada.one@example.org, status: active}
    expect: {user_name: ada.one}
  - name: wrong user name and phone
    object_type: user
    input: {employee_id: E2, first_name: Ben, last_name: Two, email: ben.two@example.org, phone: "",
            status: active}
    expect: {user_name: ben, display_name: Ben Two, phone: "+1 555"}
  - name: wrong scope
    object_type: user
    input: {employee_id: E3, first_name: Cy, last_name: Three, email: cy@example.org, status: leave}
    in_scope: false
  - name: expected a failure
    object_type: user
    input: {employee_id: E4, first_name: Di, last_name: Four, email: di@example.org, status: active}
    expect_error: split
"""


@pytest.fixture
def nothing_contacted(monkeypatch: pytest.MonkeyPatch):
    """Fail the test if a connector is opened or a state store is created."""

    def boom(*args, **kwargs):
        raise AssertionError("provision test must not open connectors or the state store")

    monkeypatch.setattr(CsvConnector, "open", boom)
    monkeypatch.setattr(SqlConnector, "open", boom)
    monkeypatch.setattr(StateStore, "__init__", boom)


def test_a_passing_suite_from_the_test_file_and_the_manifest(provision, quickstart_copy: Path, nothing_contacted):
    (quickstart_copy.parent / "quickstart.mapping-tests.yaml").write_text(PASSING)
    with open(quickstart_copy, "a") as f:  # and one more under tests: in the manifest itself
        f.write("\ntests:\n  - name: in the manifest\n    object_type: user\n"
                "    input: {email: X.Y@example.org, status: leave}\n    expect: {user_name: x.y}\n"
                "    in_scope: true\n")
    result = provision("test", quickstart_copy)
    assert result.code == 0, result.out + result.err
    lines = result.out.splitlines()
    assert [line.split("  ")[0] for line in lines[:-1]] == ["ok"] * 4
    assert "user: in the manifest" in lines[0] and "quickstart.yaml:" in lines[0]
    assert "user: user_name from the e-mail  (" in lines[1] and "quickstart.mapping-tests.yaml:3)" in lines[1]
    assert lines[-1].endswith("4 tests, 4 passed")
    assert not (quickstart_copy.parent.parent.parent / "app.db").exists()


def test_a_failing_suite_shows_a_diff_and_exits_1(provision, quickstart_copy: Path, nothing_contacted):
    (quickstart_copy.parent / "quickstart.mapping-tests.yaml").write_text(FAILING)
    result = provision("test", quickstart_copy)
    assert result.code == 1, result.out + result.err
    out = result.out
    assert re.search(r"^ok    user: right ", out, re.M)
    assert re.search(r"^FAIL  user: wrong user name and phone ", out, re.M)
    assert '        user_name: expected "ben", got "ben.two"' in out
    assert '        phone: expected "+1 555", got null' in out
    assert "display_name" not in out  # it matched: not reported
    assert re.search(r"^FAIL  user: wrong scope ", out, re.M)
    assert "        in_scope: expected false, got true" in out
    assert '          status in ["active", "leave"]: true  (status = "leave")' in out
    assert re.search(r"^FAIL  user: expected a failure ", out, re.M)
    assert 'expected a failure mentioning "split", but the mapping succeeds' in out
    assert out.splitlines()[-1].endswith("4 tests, 1 passed, 3 failed")


def test_an_unexpected_mapping_failure_is_a_failed_test(provision, quickstart_copy: Path):
    (quickstart_copy.parent / "quickstart.mapping-tests.yaml").write_text(
        "version: 1\ntests:\n  - name: no email\n    object_type: user\n    input: {first_name: A}\n"
        "    expect: {display_name: A}\n")
    result = provision("test", quickstart_copy)
    assert result.code == 1
    assert "the mapping fails: attribute 'user_name'" in result.out


@pytest.mark.parametrize("text, at, path, message", [
    (PASSING.replace("expect: {user_name:", "expect: {user_nme:"), "user_nme:", "tests[0].expect.user_nme",
     "object type 'user' maps no attribute 'user_nme'; did you mean 'user_name'?"),
    (PASSING.replace("object_type: group", "object_type: groups"), "groups", "tests[2].object_type",
     "unknown object type 'groups'; did you mean 'group'?"),
    (PASSING.replace("    in_scope: false\n", "    in_scope: false\n    expected: {}\n"), "expected:",
     "tests[1].expected", "unknown key 'expected'; did you mean 'expect'?"),
    (PASSING.replace("    in_scope: false\n", ""), "name: terminated", "tests[1]",
     "a test needs at least one of expect, in_scope or expect_error"),
    (PASSING.replace("    input: {group_id: G1, name: Team, members: [E2, E1, E1]}\n", ""), "name: members",
     "tests[2]", "missing required key 'input'"),
    (PASSING.replace("in_scope: true", "in_scope: maybe"), "maybe", "tests[0].in_scope",
     "expected true or false, got text"),
    (PASSING.replace("name: terminated", "name: terminated\n    now: next tuesday"), "next tuesday",
     "tests[1].now", "cannot read 'next tuesday' as a date"),
    (PASSING.replace("expect: {members: [E1, E2], description: null}", "expect: {members: [E1, E2]"),
     "expect: {members", "tests[2].expect", "YAML syntax error"),
])
def test_an_invalid_test_file_is_reported_with_its_line(provision, quickstart_copy: Path, text, at, path, message):
    file = quickstart_copy.parent / "quickstart.mapping-tests.yaml"
    file.write_text(text)
    result = provision("test", quickstart_copy)
    assert result.code == 2, result.out + result.err
    assert result.out == ""
    assert len(result.err.splitlines()) == 1, result.err
    [(line, col)] = [(n, row.index(at) + 1) for n, row in enumerate(text.splitlines(), 1) if at in row]
    assert result.err.startswith(f"{file}:{line}:{col}: {path}: {message}") or (
        "syntax" in message and result.err.startswith(f"{file}:{line}:") and message in result.err), result.err


def test_the_manifest_tests_key_is_checked_by_validate(provision, quickstart_copy: Path):
    with open(quickstart_copy, "a") as f:
        f.write("\ntests:\n  - name: broken\n    object_type: user\n")
    line = quickstart_copy.read_text().splitlines().index("  - name: broken") + 1
    result = provision("validate", quickstart_copy)
    assert result.code == 2
    assert f"{quickstart_copy}:{line}:5: tests[0]: missing required key 'input'" in result.err


def test_test_files_are_found_by_name_or_by_their_manifest_key(provision, quickstart_copy: Path):
    folder = quickstart_copy.parent
    (folder / "extra.mapping-tests.yaml").write_text(
        PASSING.replace("version: 1\n", "version: 1\nmanifest: quickstart.yaml\n"))
    (folder / "other.mapping-tests.yaml").write_text(FAILING)  # belongs to other.yaml: not run
    result = provision("test", quickstart_copy)
    assert result.code == 0, result.out + result.err
    assert "extra.mapping-tests.yaml" in result.out and "other.mapping-tests" not in result.out

    # a test file can be given on its own; its manifest: key (or its name) says which manifest
    result = provision("test", folder / "extra.mapping-tests.yaml")
    assert result.code == 0 and result.out.splitlines()[-1].endswith("3 tests, 3 passed")
    assert "quickstart.mapping-tests.yaml" not in result.out


def test_no_tests_is_a_usage_error(provision, quickstart_copy: Path):
    (quickstart_copy.parent / "quickstart.mapping-tests.yaml").unlink()
    result = provision("test", quickstart_copy)
    assert result.code == 2
    assert "no mapping tests" in result.err


def test_now_pins_the_clock_for_date_operators(provision, quickstart_copy: Path, tmp_path: Path):
    manifest = quickstart_copy.read_text().replace(
        "        - {attribute: status, op: in, value: [active, leave]}",
        "        - {attribute: hire_date, op: within_next_days, value: 14}")
    quickstart_copy.write_text(manifest)
    (quickstart_copy.parent / "quickstart.mapping-tests.yaml").write_text("""\
version: 1
tests:
  - {name: hired in a week, object_type: user, now: 2026-03-29T01:30:00Z, in_scope: true,
     input: {email: a@example.org, hire_date: 2026-04-05}}
  - {name: hired in a month, object_type: user, now: "2026-03-29", in_scope: false,
     input: {email: a@example.org, hire_date: "2026-04-29"}}
""")
    result = provision("test", quickstart_copy)
    assert result.code == 0, result.out + result.err


def test_the_shipped_quickstart_tests_pass(provision, nothing_contacted):
    result = provision("test", QUICKSTART)
    assert result.code == 0, result.out + result.err
    lines = result.out.splitlines()
    assert all(line.startswith("ok    ") for line in lines[:-1])
    assert any(line.startswith("ok    user: ") for line in lines)
    assert any(line.startswith("ok    group: ") for line in lines)
    tests = yaml.safe_load((REPO / "manifests" / "quickstart.mapping-tests.yaml").read_text())["tests"]
    assert len(lines) - 1 == len(tests) >= 10


def test_every_example_manifest_has_mapping_tests(provision, monkeypatch):
    # The examples read where their systems are from the environment; `provision test` opens no
    # connector, so any value will do for the ones not set here.
    for name in ("LDAP_URL", "LDAP_BIND_DN", "LDAP_PASSWORD", "SCIM_URL", "SCIM_TOKEN", "REST_URL", "REST_TOKEN",
                 "SOAP_WSDL", "SOAP_USER", "SOAP_PASSWORD", "SCIM_ENDPOINT_TOKEN"):
        if not os.environ.get(name):
            monkeypatch.setenv(name, "ldap://127.0.0.1:1" if name == "LDAP_URL" else
                               "https://127.0.0.1:1/scim/v2" if name == "SCIM_URL" else
                               "https://127.0.0.1:1/api" if name == "REST_URL" else
                               "https://127.0.0.1:1/ws?wsdl" if name == "SOAP_WSDL" else "unused")
    if not os.environ.get("LDAP_BASE_DN"):
        monkeypatch.setenv("LDAP_BASE_DN", "dc=example,dc=org")
    for manifest in sorted((REPO / "manifests").glob("*.yaml")):
        if manifest.name.endswith(".mapping-tests.yaml"):
            continue
        result = provision("test", manifest)
        assert result.code == 0, f"{manifest.name}: {result.out}{result.err}"


def test_the_shipped_test_file_matches_the_schema(provision):
    result = provision("schema", "--mapping-tests")
    schema = json.loads(result.out)
    assert schema == json.loads((REPO / "schema" / "mapping-tests.schema.json").read_text())
    data = yaml.safe_load((REPO / "manifests" / "quickstart.mapping-tests.yaml").read_text())
    jsonschema.Draft202012Validator(schema).validate(data)
