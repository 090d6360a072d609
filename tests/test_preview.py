"""`provision preview`: one source object through import, scope, match, mapping and diff; --apply exports it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from conftest import QUICKSTART, group, person, read_app, write_hr

from runner.state.store import StateStore


@pytest.fixture
def hr(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Hand-written HR data for the quickstart manifest; returns (people, groups, write)."""
    monkeypatch.setenv("PROVISION_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("PROVISION_TARGET", str(tmp_path / "app.db"))
    people = [person("E1", "Zoë", "Ødegård", preferred_name="Zo", email="zoe.odegard@example.org"),
              person("E2", "Ben", "Report", manager="E1", phone="+1 555 0100"),
              person("E3", "Cy", "Gone", status="terminated"),
              person("E4", "Di", "Away", status="leave", manager="E1")]
    groups = [group("G1", "Team", ["E1", "E2", "E3"])]

    def write() -> None:
        write_hr(tmp_path / "data", people, groups)

    write()
    return people, groups, write


def dump(db: Path) -> list[str]:
    con = sqlite3.connect(db)
    try:
        return list(con.iterdump())
    finally:
        con.close()


def test_an_in_scope_new_person_would_be_added(provision, hr, tmp_path: Path):
    result = provision("preview", QUICKSTART, "--object-type", "user", "--anchor", "E2")
    assert result.code == 0, result.out + result.err
    out = result.out
    assert out.startswith("preview of user E2 (quickstart)\n")
    assert "import: found after 2 records; new to the state store" in out
    assert '    first_name: "Ben"' in out
    assert "scope: in scope" in out
    assert '      status in ["active", "leave"]: true  (status = "active")' in out
    assert "match: not linked to a target object: a new one is added" in out
    assert ('    user_name: expression lower(split(email, \'@\')[0]) -> "ben.report"' in out)
    assert '    manager_id: source manager_id (reference to user) -> "E1"; E1 is not provisioned: left out' in out
    diff = out[out.index("diff: add"):]
    assert '    user_name: "ben.report"' in diff
    assert '    display_name: "Ben Report"' in diff
    assert '    phone: "+1 555 0100"' in diff
    assert "nothing written (--apply exports this object)" in out

    data = provision("preview", QUICKSTART, "--object-type", "user", "--anchor", "E1", "--output", "json").json()
    assert data["scope"]["in_scope"] is True
    assert data["diff"]["action"] == "add"
    assert data["diff"]["changes"]["user_name"] == {"new": "zoe.odegard",
                                                    "rule": "expression lower(split(email, '@')[0])"}
    assert data["diff"]["changes"]["display_name"]["new"] == "Zo Ødegård"
    assert {"target": "given_name", "rule": "source first_name", "value": "Zoë"} in data["mapping"]
    assert data["applied"] is False and data["result"] is None


def test_a_terminated_person_is_out_of_scope(provision, hr):
    result = provision("preview", QUICKSTART, "--object-type", "user", "--anchor", "E3")
    assert result.code == 0, result.out + result.err
    assert "scope: out of scope (disabled if provisioned)" in result.out
    assert '      status in ["active", "leave"]: false  (status = "terminated")' in result.out
    assert "mapping (not exported: out of scope):" in result.out
    assert "diff: nothing to export\n" in result.out
    data = provision("preview", QUICKSTART, "--object-type", "user", "--anchor", "E3", "--output", "json").json()
    assert data["scope"]["in_scope"] is False
    assert data["scope"]["clauses"][1] == {"depth": 1, "rule": 'status in ["active", "leave"]', "result": False,
                                           "value": "terminated"}
    assert data["diff"] is None


def test_preview_writes_nothing(provision, hr, tmp_path: Path):
    app, state = tmp_path / "app.db", tmp_path / "app.db.state"
    for anchor in ("E1", "E3"):
        assert provision("preview", QUICKSTART, "--object-type", "user", "--anchor", anchor).code == 0
    assert not app.exists() and not state.exists()  # a pipeline never run: nothing created

    assert provision("run", QUICKSTART).code == 0
    people, groups, write = hr
    people[1]["title"] = "Director"   # an update
    people[0]["status"] = "terminated"  # a disable
    groups[0]["members"] = "E2;E4"
    write()
    before = dump(app), dump(state)
    result = provision("preview", QUICKSTART, "--object-type", "user", "--anchor", "E2")
    assert "import: found after 2 records; changed since last seen: title" in result.out
    assert 'diff: update target ' in result.out and '    title: "Engineer" -> "Director"' in result.out
    result = provision("preview", QUICKSTART, "--object-type", "user", "--anchor", "E1")
    assert "diff: disable target " in result.out and "    active: true -> false" in result.out
    result = provision("preview", QUICKSTART, "--object-type", "group", "--anchor", "G1")
    assert "    members: source members (reference to user, multi-valued) -> [\"E2\", \"E4\"]" in result.out
    assert '    members: +"E4" -"E1"' in result.out
    assert (dump(app), dump(state)) == before

    # what preview showed is what run does
    out = provision("run", QUICKSTART, "--output", "json").json()
    assert out["object_types"]["user"]["updated"] == 1 and out["object_types"]["user"]["disabled"] == 1


def test_apply_exports_that_one_object_and_the_next_run_finds_it_unchanged(provision, hr, tmp_path: Path):
    result = provision("preview", QUICKSTART, "--object-type", "user", "--anchor", "E1", "--apply")
    assert result.code == 0, result.out + result.err
    assert "apply: add ok (target 1)" in result.out
    app = read_app(tmp_path / "app.db")
    assert list(app["users"]) == ["zoe.odegard"]
    assert app["users"]["zoe.odegard"]["display_name"] == "Zo Ødegård"
    assert app["groups"] == []

    # recorded as a run would: a preview run, the provisioning log, the link
    status = provision("status", QUICKSTART, "--output", "json").json()
    assert [(r["kind"], r["status"]) for r in status["runs"]] == [("preview", "ok")]
    assert status["object_types"]["user"]["linked"] == 1
    store = StateStore(f"sqlite:///{tmp_path / 'app.db.state'}", tmp_path)
    try:
        log = store.log.read_log("quickstart")
    finally:
        store.close()
    assert [(e["anchor"], e["action"], e["result"]) for e in log] == [("E1", "add", "ok")]

    # a second --apply has nothing to do
    again = provision("preview", QUICKSTART, "--object-type", "user", "--anchor", "E1", "--apply")
    assert "diff: nothing to export: the target holds these values" in again.out
    assert "apply: nothing to export" in again.out
    assert len(read_app(tmp_path / "app.db")["users"]) == 1

    out = provision("run", QUICKSTART, "--output", "json").json()
    assert out["status"] == "ok"
    assert out["object_types"]["user"]["added"] == 2      # Ben and Di
    assert out["object_types"]["user"]["unchanged"] == 1  # Zoë (from the preview)
    assert out["object_types"]["user"]["out_of_scope"] == 1  # Cy: counted apart, not as unchanged
    assert out["object_types"]["group"]["added"] == 1
    app = read_app(tmp_path / "app.db")
    assert sorted(app["users"]) == ["ben.report", "di.away", "zoe.odegard"]
    assert app["users"]["ben.report"]["manager"] == "zoe.odegard"
    assert app["groups"][0]["members"] == ["ben.report", "zoe.odegard"]


def test_apply_leaves_a_reference_out_until_its_object_is_provisioned(provision, hr, tmp_path: Path):
    result = provision("preview", QUICKSTART, "--object-type", "user", "--anchor", "E2", "--apply")
    assert result.code == 0, result.out + result.err
    assert read_app(tmp_path / "app.db")["users"]["ben.report"]["manager"] is None
    out = provision("run", QUICKSTART, "--output", "json").json()
    assert out["object_types"]["user"]["added"] == 2    # Zoë and Di
    assert out["object_types"]["user"]["updated"] == 1  # Ben's manager, now that Zoë exists
    assert read_app(tmp_path / "app.db")["users"]["ben.report"]["manager"] == "zoe.odegard"
    out = provision("run", QUICKSTART, "--output", "json").json()
    assert out["object_types"]["user"]["unchanged"] == 3 and out["object_types"]["user"]["out_of_scope"] == 1


def test_apply_disables_a_person_who_left(provision, hr, tmp_path: Path):
    assert provision("run", QUICKSTART).code == 0
    people, _, write = hr
    people[3]["status"] = "terminated"
    write()
    result = provision("preview", QUICKSTART, "--object-type", "user", "--anchor", "E4", "--apply")
    assert result.code == 0, result.out + result.err
    assert "apply: disable ok" in result.out
    assert read_app(tmp_path / "app.db")["users"]["di.away"]["active"] is False
    out = provision("run", QUICKSTART, "--output", "json").json()
    assert out["object_types"]["user"]["disabled"] == 0
    assert out["object_types"]["user"]["unchanged"] == 2 and out["object_types"]["user"]["out_of_scope"] == 2


def test_a_mapping_that_fails_is_shown_and_exits_1(provision, hr, tmp_path: Path):
    people, _, write = hr
    people.append(person("E5", "No", "Mail", email=""))
    write()
    result = provision("preview", QUICKSTART, "--object-type", "user", "--anchor", "E5")
    assert result.code == 1, result.out + result.err
    assert "    user_name: expression lower(split(email, '@')[0]) -> fails: attribute 'user_name'" in result.out
    assert "diff: the object fails: map: attribute 'user_name'" in result.out
    assert '    display_name: expression ' in result.out  # the other attributes are still shown


def test_unknown_anchor_or_object_type_is_a_usage_error(provision, hr):
    result = provision("preview", QUICKSTART, "--object-type", "user", "--anchor", "E99")
    assert result.code == 2
    assert result.err.strip() == "provision: no user with employee_id = 'E99' in hr/people (4 records read)"
    result = provision("preview", QUICKSTART, "--object-type", "person", "--anchor", "E1")
    assert result.code == 2
    assert "no object type 'person'" in result.err


def test_apply_waits_for_no_one_but_respects_the_lock(provision, hr, tmp_path: Path):
    assert provision("run", QUICKSTART).code == 0
    store = StateStore(f"sqlite:///{tmp_path / 'app.db.state'}", tmp_path)
    try:
        store.runs.acquire_lock("quickstart", "someone-else")  # held by this (live) process
        result = provision("preview", QUICKSTART, "--object-type", "user", "--anchor", "E1", "--apply")
        assert result.code == 3, result.out + result.err
        assert "already running" in result.err
        # without --apply, a preview takes no lock
        assert provision("preview", QUICKSTART, "--object-type", "user", "--anchor", "E1").code == 0
    finally:
        store.runs.release_lock("quickstart", "someone-else")
        store.close()
