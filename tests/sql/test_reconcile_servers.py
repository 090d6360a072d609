"""Reconciliation of the hr-sql-to-sql example with PostgreSQL and MariaDB targets: the target is the truth.

Each situation is made by hand in the target database, as an operator, another tool or a restore
would: a row deleted (with its memberships), a value edited, a row inserted, the target replaced
by a new, empty database, the state store lost. What `check`, `check --fix` and `run` say and do
is asserted as a user sees it: exit codes, the listed differences, and the rows in the database.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from runner import sampledata

from .test_examples import CHANGE_TABLE, target_content

MANIFEST = CHANGE_TABLE  # manifests/hr-sql-to-sql.yaml


def sql(url: str, *statements: str) -> list[tuple]:
    engine = sa.create_engine(url)
    try:
        rows: list[tuple] = []
        with engine.begin() as conn:
            for statement in statements:
                result = conn.execute(sa.text(statement))
                if result.returns_rows:
                    rows = [tuple(r) for r in result]
        return rows
    finally:
        engine.dispose()


def counts(url: str) -> tuple[int, int, int]:
    [row] = sql(url, "SELECT (SELECT count(*) FROM accounts), (SELECT count(*) FROM teams), "
                     "(SELECT count(*) FROM team_members)")
    return tuple(int(n) for n in row)  # type: ignore[return-value]


@pytest.fixture
def another_database(server_database: str):
    """A second fresh database on the same server as ``server_database``, dropped afterwards."""
    server, _, first = server_database.rpartition("/")
    name = f"{first}_b"
    postgres = server_database.startswith("postgresql")
    admin = sa.create_engine(f"{server}/{'postgres' if postgres else ''}", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    yield f"{server}/{name}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE {name}" + (" WITH (FORCE)" if postgres else ""))
    admin.dispose()


@pytest.fixture
def provisioned(provision, server_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The sample HR data (200 people, 20 groups) provisioned into the server database."""
    data = tmp_path / "data"
    sampledata.make(data, 200, 20, 1)
    monkeypatch.setenv("HR_DB_URL", f"sqlite:///{data / 'hr.db'}")
    monkeypatch.setenv("TARGET_DB_URL", server_database)
    monkeypatch.setenv("PROVISION_STATE", f"sqlite:///{tmp_path / 'state.db'}")
    first = provision("run", MANIFEST, "--output", "json")
    assert first.code == 0, first.err + first.out
    assert first.json()["object_types"]["user"]["added"] == 190
    return server_database


def a_member(url: str) -> tuple[str, list[str]]:
    """An account that belongs to a team and manages nobody, and its teams."""
    [(employee,)] = sql(url, "SELECT a.employee_id FROM accounts a "
                             "JOIN team_members m ON m.employee_id = a.employee_id WHERE a.employee_id NOT IN "
                             "(SELECT manager_id FROM accounts WHERE manager_id IS NOT NULL) "
                             "ORDER BY a.employee_id LIMIT 1")
    teams = [g for (g,) in sql(url, f"SELECT group_id FROM team_members WHERE employee_id = '{employee}' "
                                    "ORDER BY group_id")]
    return employee, teams


def test_a_row_deleted_by_hand_is_listed_missing_and_fixed_in_one_run_with_its_memberships(provisioned: str,
                                                                                          provision):
    url = provisioned
    before = target_content(url)
    gone, teams = a_member(url)
    assert teams
    # as the application would delete an account: its memberships go with it
    sql(url, f"DELETE FROM team_members WHERE employee_id = '{gone}'",
        f"DELETE FROM accounts WHERE employee_id = '{gone}'")

    check = provision("check", MANIFEST)
    assert check.code == 1, check.out + check.err
    assert "1 missing" in check.out
    assert f"missing user {gone} (target {gone}) -> add" in check.out
    report = provision("check", MANIFEST, "--output", "json")
    assert report.code == 1
    [missing] = report.differences("missing")
    assert missing["object_type"] == "user" and missing["anchor"] == gone and missing["action"] == "add"
    drifted_teams = {d["anchor"] for d in report.differences("drifted") if d["object_type"] == "group"}
    assert drifted_teams == set(teams), "each team lost a member"
    assert counts(url) == (189, 20, len(before["members"]) - len(teams)), "check writes nothing to the target"

    fixed = provision("check", MANIFEST, "--fix", "--output", "json")
    assert fixed.code == 0, fixed.out + fixed.err
    user = fixed.json()["object_types"]["user"]
    assert user["added"] == 1 and user["reconciled"]["missing"] == 1
    assert user["updated"] == user["deleted"] == user["failed"] == 0
    assert target_content(url) == before, "the account and every membership, in one run"

    again = provision("check", MANIFEST, "--output", "json")
    assert again.code == 0, again.out
    assert again.json()["check"]["differs"] is False
    assert again.json()["check"]["situations"]["user"]["linked"] == 190
    assert again.json()["check"]["situations"]["group"]["linked"] == 20


def test_a_value_edited_by_hand_shows_expected_and_found_and_a_row_inserted_by_hand_is_an_orphan(
        provisioned: str, provision):
    url = provisioned
    before = target_content(url)
    [(employee, title)] = sql(url, "SELECT employee_id, title FROM accounts ORDER BY employee_id LIMIT 1 OFFSET 7")
    department = next(a["department"] for a in before["accounts"] if a["employee_id"] == employee)
    sql(url, f"UPDATE accounts SET title = 'Edited by hand', department = NULL WHERE employee_id = '{employee}'",
        "INSERT INTO accounts (employee_id, user_name, display_name, active) "
        "VALUES ('X0000001', 'svc.backup', 'Backup service', TRUE)")

    report = provision("check", MANIFEST, "--output", "json")
    assert report.code == 1, report.out + report.err
    situations = report.json()["check"]["situations"]["user"]
    assert (situations["drifted"], situations["orphan"], situations["missing"]) == (1, 1, 0)
    [drift] = report.differences("drifted")
    assert drift["object_type"] == "user" and drift["anchor"] == employee and drift["action"] == "update"
    assert drift["attributes"]["title"] == {"expected": title, "found": "Edited by hand"}
    assert drift["attributes"]["department"] == {"expected": department, "found": None}
    [orphan] = report.differences("orphan")
    assert orphan["object_type"] == "user" and orphan["anchor"] == "X0000001"
    assert "claimed by no source object" in orphan["note"] and "action" not in orphan
    text = provision("check", MANIFEST)
    assert text.code == 1
    assert 'title: expected "' in text.out and 'found "Edited by hand"' in text.out
    assert "orphan user X0000001" in text.out
    assert sql(url, f"SELECT title FROM accounts WHERE employee_id = '{employee}'") == [("Edited by hand",)], \
        "check writes nothing to the target"

    fixed = provision("check", MANIFEST, "--fix", "--output", "json")
    assert fixed.code == 0, fixed.out + fixed.err
    assert fixed.json()["object_types"]["user"]["updated"] == 1
    assert fixed.json()["object_types"]["user"]["deleted"] == 0
    assert sql(url, "SELECT user_name FROM accounts WHERE employee_id = 'X0000001'") == [("svc.backup",)], \
        "no target.boundary: an orphan is only reported, never touched"
    sql(url, "DELETE FROM accounts WHERE employee_id = 'X0000001'")
    assert target_content(url) == before
    clean = provision("check", MANIFEST)
    assert clean.code == 0, clean.out
    assert "0 drifted, 0 missing" in clean.out and "0 orphan" in clean.out


def test_the_state_pointed_at_a_new_empty_database_stops_until_rebound(provisioned: str, another_database: str,
                                                                       provision, monkeypatch: pytest.MonkeyPatch):
    original, new = provisioned, another_database
    before = target_content(original)
    monkeypatch.setenv("TARGET_DB_URL", new)

    stopped = provision("run", MANIFEST)
    assert stopped.code == 4, stopped.out + stopped.err
    old_name, new_name = original.rpartition("/")[2], new.rpartition("/")[2]
    assert f"name {old_name}" in stopped.err and f"name {new_name}" in stopped.err, stopped.err
    assert "--rebind" in stopped.err and "Nothing was written" in stopped.err
    assert sa.inspect(sa.create_engine(new)).get_table_names() == [] or counts(new) == (0, 0, 0)
    assert provision("check", MANIFEST).code == 4, "check stops the same way"

    rebound = provision("run", MANIFEST, "--rebind", "--output", "json")
    assert rebound.code == 0, rebound.err
    assert rebound.json()["object_types"]["user"]["added"] == 190
    assert rebound.json()["object_types"]["group"]["added"] == 20
    assert counts(new) == counts(original) == (190, 20, len(before["members"]))
    assert target_content(new) == before
    assert target_content(original) == before, "the old database is not touched"

    again = provision("check", MANIFEST, "--output", "json")
    assert again.code == 0, again.out + again.err
    # the old database holds the very objects the state links to: the same data, so the state follows it
    monkeypatch.setenv("TARGET_DB_URL", original)
    back = provision("run", MANIFEST, "--output", "json")
    assert back.code == 0, back.err
    assert "the state follows it" in back.err
    assert all(c["added"] == c["updated"] == c["deleted"] == 0 for c in back.json()["object_types"].values())


def test_a_lost_state_store_links_what_the_target_holds_without_duplicates(provisioned: str, provision,
                                                                           tmp_path: Path):
    url = provisioned
    before = target_content(url)
    for file in tmp_path.glob("state.db*"):
        file.unlink()

    run = provision("run", MANIFEST, "--output", "json")
    assert run.code == 0, run.err + run.out
    types = run.json()["object_types"]
    for name, linked in (("user", 190), ("group", 20)):
        assert types[name]["added"] == types[name]["updated"] == types[name]["deleted"] == 0, types[name]
        assert types[name]["failed"] == 0
        assert types[name]["reconciled"]["unlinked"] == linked
    assert target_content(url) == before
    assert sql(url, "SELECT count(*), count(DISTINCT user_name) FROM accounts") == [(190, 190)]
    assert sql(url, "SELECT count(*), count(DISTINCT name) FROM teams") == [(20, 20)]

    clean = provision("check", MANIFEST, "--output", "json")
    assert clean.code == 0, clean.out
    assert clean.json()["check"]["situations"]["user"]["linked"] == 190
