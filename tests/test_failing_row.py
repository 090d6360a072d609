"""A row that cannot be mapped fails alone, is logged with its anchor and reason, and recovers."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import QUICKSTART, group, person, read_app, write_hr


def test_a_bad_row_fails_only_that_object(provision, tmp_path: Path, monkeypatch):
    data = tmp_path / "data"
    monkeypatch.setenv("PROVISION_DATA", str(data))
    monkeypatch.setenv("PROVISION_TARGET", str(tmp_path / "app.db"))
    people = [person("E1", "Ada", "Good"), person("E2", "Bob", "Bad", email=""), person("E3", "Cy", "Fine")]
    write_hr(data, people, [group("G1", "Team", ["E1", "E2", "E3"])])
    log = tmp_path / "prov.log"

    result = provision("run", QUICKSTART, "--output", "json", "--log-file", log)
    assert result.code == 1
    out = result.json()
    assert out["status"] == "partial"
    failures = out["object_types"]["user"].pop("first_failures")  # the failed object, named with its reason
    assert [(f["anchor"], f["action"]) for f in failures] == [("E2", "map")] and "split()" in failures[0]["error"]
    assert out["object_types"]["user"] == {"imported": 3, "added": 2, "updated": 0, "renamed": 0, "disabled": 0,
                                           "deleted": 0, "unchanged": 0, "failed": 1, "out_of_scope": 0}
    assert out["object_types"]["group"]["added"] == 1
    app = read_app(tmp_path / "app.db")
    assert sorted(app["users"]) == ["ada.good", "cy.fine"]
    assert app["groups"][0]["members"] == ["ada.good", "cy.fine"]

    entries = [json.loads(line) for line in log.read_text().splitlines()]
    failed = [e for e in entries if e["result"] == "failed"]
    assert len(failed) == 1
    assert failed[0]["anchor"] == "E2" and failed[0]["object_type"] == "user"
    assert "user_name" in failed[0]["error"] and "split" in failed[0]["error"]

    status = provision("status", QUICKSTART)
    assert "E2" in status.out and "user_name" in status.out

    # still failing next run (the data is still bad), still alone
    again = provision("run", QUICKSTART, "--output", "json")
    assert again.code == 1 and again.json()["object_types"]["user"]["failed"] == 1

    # HR fixes the row: it is created and joins its group
    people[1]["email"] = "bob.bad@example.org"
    write_hr(data, people, [group("G1", "Team", ["E1", "E2", "E3"])])
    fixed = provision("run", QUICKSTART, "--output", "json")
    assert fixed.code == 0, fixed.err
    assert fixed.json()["object_types"]["user"]["added"] == 1
    assert read_app(tmp_path / "app.db")["groups"][0]["members"] == ["ada.good", "bob.bad", "cy.fine"]


def test_an_unreadable_source_stops_the_pass_without_deleting_anyone(quickstart_env, provision, tmp_path: Path):
    data = quickstart_env(people=40, groups=4)
    assert provision("run", QUICKSTART).code == 0
    before = read_app(tmp_path / "app.db")
    (data / "people.csv").unlink()
    result = provision("run", QUICKSTART, "--output", "json")
    assert result.code == 1
    out = result.json()
    assert out["status"] == "failed"
    assert "people.csv" in out["object_types"]["user"]["error"]
    assert out["object_types"]["user"]["deleted"] == 0
    assert read_app(tmp_path / "app.db")["users"] == before["users"]


def test_a_group_with_a_huge_member_cell_is_read(provision, tmp_path: Path, monkeypatch):
    """A member list far beyond the csv module's default 128 KiB cell limit (found at 1M people)."""
    data = tmp_path / "data"
    monkeypatch.setenv("PROVISION_DATA", str(data))
    monkeypatch.setenv("PROVISION_TARGET", str(tmp_path / "app.db"))
    people = [person(f"EMPLOYEE-{i:07d}", "P", f"N{i}") for i in range(9000)]
    write_hr(data, people, [group("G1", "Everyone", [p["employee_id"] for p in people])])
    assert len((data / "groups.csv").read_text()) > 131072
    result = provision("run", QUICKSTART, "--output", "json")
    assert result.code == 0, result.err
    assert result.json()["object_types"]["group"]["added"] == 1
    assert len(read_app(tmp_path / "app.db")["groups"][0]["members"]) == 9000
