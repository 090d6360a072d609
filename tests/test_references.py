"""References: a manager and group members are exported as target keys, only when provisioned."""

from __future__ import annotations

from pathlib import Path

from conftest import QUICKSTART, group, person, read_app, write_hr


def test_references_follow_who_is_provisioned(provision, tmp_path: Path, monkeypatch):
    data = tmp_path / "data"
    monkeypatch.setenv("PROVISION_DATA", str(data))
    monkeypatch.setenv("PROVISION_TARGET", str(tmp_path / "app.db"))
    people = [person("E1", "Ada", "Boss"),
              person("E2", "Ben", "Gone", status="terminated", manager="E1"),
              person("E3", "Cy", "Report", manager="E2"),
              person("E4", "Di", "Deep", manager="E3")]
    groups = [group("G1", "Team", ["E1", "E2", "E3", "E9"])]  # E9 does not exist at all
    write_hr(data, people, groups)

    assert provision("run", QUICKSTART).code == 0
    app = read_app(tmp_path / "app.db")
    assert app["users"]["cy.report"]["manager"] is None         # manager not provisioned -> null
    assert app["users"]["di.deep"]["manager"] == "cy.report"    # created after their manager, same run
    assert app["groups"][0]["members"] == ["ada.boss", "cy.report"]  # E2, E9 left out

    # Ben comes back: Cy's manager and the group's members change although their rows did not.
    people[1]["status"] = "active"
    write_hr(data, people, groups)
    out = provision("run", QUICKSTART, "--output", "json").json()
    assert out["object_types"]["user"]["added"] == 1
    assert out["object_types"]["user"]["updated"] == 1           # Cy
    assert out["object_types"]["group"]["updated"] == 1
    app = read_app(tmp_path / "app.db")
    assert app["users"]["cy.report"]["manager"] == "ben.gone"
    assert app["groups"][0]["members"] == ["ada.boss", "ben.gone", "cy.report"]

    # Ada leaves HR entirely: deleted, Ben's manager becomes null, the group loses her.
    del people[0]
    write_hr(data, people, groups)
    out = provision("run", QUICKSTART, "--output", "json").json()
    assert out["object_types"]["user"]["deleted"] == 1
    assert out["object_types"]["user"]["updated"] == 1           # Ben's manager
    assert out["object_types"]["group"]["updated"] == 1
    app = read_app(tmp_path / "app.db")
    assert "ada.boss" not in app["users"]
    assert app["users"]["ben.gone"]["manager"] is None
    assert app["groups"][0]["members"] == ["ben.gone", "cy.report"]

    # Nothing changed: nothing exported.
    out = provision("run", QUICKSTART, "--output", "json").json()
    assert all(c["unchanged"] == c["imported"] for c in out["object_types"].values())


def test_disabled_users_stay_in_groups_and_as_managers(provision, tmp_path: Path, monkeypatch):
    data = tmp_path / "data"
    monkeypatch.setenv("PROVISION_DATA", str(data))
    monkeypatch.setenv("PROVISION_TARGET", str(tmp_path / "app.db"))
    people = [person("E1", "Ada", "Boss"), person("E2", "Ben", "Report", manager="E1")]
    groups = [group("G1", "Team", ["E1", "E2"])]
    write_hr(data, people, groups)
    assert provision("run", QUICKSTART).code == 0

    people[0]["status"] = "terminated"
    write_hr(data, people, groups)
    out = provision("run", QUICKSTART, "--output", "json").json()
    assert out["object_types"]["user"]["disabled"] == 1
    assert out["object_types"]["user"]["updated"] == 0
    assert out["object_types"]["group"]["unchanged"] == 1
    app = read_app(tmp_path / "app.db")
    assert app["users"]["ada.boss"]["active"] is False
    assert app["users"]["ben.report"]["manager"] == "ada.boss"
    assert app["groups"][0]["members"] == ["ada.boss", "ben.report"]


def test_a_manager_cycle_is_completed(provision, tmp_path: Path, monkeypatch):
    """A manages B and B manages A: both are created, and both managers are set by the next run."""
    data = tmp_path / "data"
    monkeypatch.setenv("PROVISION_DATA", str(data))
    monkeypatch.setenv("PROVISION_TARGET", str(tmp_path / "app.db"))
    write_hr(data, [person("E1", "Ada", "One", manager="E2"), person("E2", "Ben", "Two", manager="E1")], [])
    first = provision("run", QUICKSTART, "--output", "json").json()
    assert first["object_types"]["user"]["added"] == 2
    provision("run", QUICKSTART)
    app = read_app(tmp_path / "app.db")
    assert app["users"]["ada.one"]["manager"] == "ben.two"
    assert app["users"]["ben.two"]["manager"] == "ada.one"
