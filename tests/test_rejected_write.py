"""A write the target rejects fails that object only, with the database's reason, and is retried."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import QUICKSTART, group, person, read_app, write_hr


def test_unique_violation_fails_one_object(provision, tmp_path: Path, monkeypatch):
    data = tmp_path / "data"
    monkeypatch.setenv("PROVISION_DATA", str(data))
    monkeypatch.setenv("PROVISION_TARGET", str(tmp_path / "app.db"))
    people = [person("E1", "Ann", "Lee"), person("E2", "Ann", "Lee"), person("E3", "Bo", "Park")]  # same email
    write_hr(data, people, [group("G1", "All", ["E1", "E2", "E3"])])
    log = tmp_path / "log.jsonl"

    result = provision("run", QUICKSTART, "--output", "json", "--log-file", log)
    assert result.code == 1
    users = result.json()["object_types"]["user"]
    assert users["added"] == 2 and users["failed"] == 1
    failed = [json.loads(line) for line in log.read_text().splitlines() if '"failed"' in line]
    assert [f["anchor"] for f in failed] == ["E2"]
    assert "UNIQUE constraint failed: users.user_name" in failed[0]["error"]
    app = read_app(tmp_path / "app.db")
    assert sorted(app["users"]) == ["ann.lee", "bo.park"]
    assert app["groups"][0]["members"] == ["ann.lee", "bo.park"]

    # the pending add stays and is retried; once HR fixes the email it goes through
    people[1]["email"] = "ann.lee2@example.org"
    write_hr(data, people, [group("G1", "All", ["E1", "E2", "E3"])])
    fixed = provision("run", QUICKSTART, "--output", "json")
    assert fixed.code == 0, fixed.err
    assert fixed.json()["object_types"]["user"]["added"] == 1
    assert fixed.json()["object_types"]["group"]["updated"] == 1
    assert read_app(tmp_path / "app.db")["groups"][0]["members"] == ["ann.lee", "ann.lee2", "bo.park"]


def test_object_type_option_runs_one_type(quickstart_env, provision):
    quickstart_env(people=30, groups=3)
    only = provision("run", QUICKSTART, "--object-type", "user", "--output", "json").json()
    assert list(only["object_types"]) == ["user"]
    unknown = provision("run", QUICKSTART, "--object-type", "nope")
    assert unknown.code == 2 and "no object type 'nope'" in unknown.err and "user, group" in unknown.err


def test_a_value_the_driver_cannot_bind_fails_that_object_only(quickstart_copy: Path, provision, tmp_path: Path):
    """A list mapped into a BOOLEAN column used to abort the whole run ("internal error:
    unhashable type"), the groups never processed and the run left 'running'."""
    mapping = quickstart_copy.parent.parent / "mappings" / "person-to-app-user.yaml"
    mapping.write_text(mapping.read_text().replace(
        "  - target: active\n    constant: true",
        "  - target: active\n    expression: \"employee_id == 'E2' && [`1`, `2`] || `true`\""))
    write_hr(tmp_path / "data", [person("E1", "Ann", "Lee"), person("E2", "Bo", "Park"), person("E3", "Cy", "Dee")],
             [group("G1", "All", ["E1", "E2", "E3"])])
    result = provision("run", quickstart_copy, "--output", "json")
    assert result.code == 1, result.err
    summary = result.json()
    assert summary["status"] == "partial"
    assert summary["object_types"]["user"]["added"] == 2 and summary["object_types"]["user"]["failed"] == 1
    assert summary["object_types"]["group"]["added"] == 1  # the run went on
    assert "internal error" not in result.err
    app = read_app(tmp_path / "app.db")
    assert sorted(app["users"]) == ["ann.lee", "cy.dee"]
    status = provision("status", quickstart_copy)
    assert "E2" in status.out and "bad value" in status.out
