"""Reconciliation on the quickstart (CSV -> SQLite): the target is the truth.

Each situation is made by hand in the app's database, as an operator or a restore would, and the
outcome of `run`, `check` and `check --fix` is asserted object by object, memberships included.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

from conftest import QUICKSTART, read_app

from .helpers import sql


def user_id(db: Path, user_name: str) -> int:
    return sql(db, f"SELECT id FROM users WHERE user_name = '{user_name}'")[0][0]


def some_member(db: Path) -> str:
    """A user who is a member of some group and manages nobody."""
    return sql(db, "SELECT u.user_name FROM users u JOIN group_members m ON m.user_id = u.id "
                   "WHERE u.id NOT IN (SELECT manager_id FROM users WHERE manager_id IS NOT NULL) "
                   "ORDER BY u.id LIMIT 1")[0][0]


def provisioned(quickstart_env, provision, tmp_path: Path) -> tuple[Path, dict]:
    quickstart_env(200, 20)
    assert provision("run", QUICKSTART).code == 0
    db = tmp_path / "app.db"
    return db, read_app(db)


def test_a_row_deleted_by_hand_comes_back_in_one_run_with_its_memberships(quickstart_env, provision,
                                                                          tmp_path: Path):
    db, before = provisioned(quickstart_env, provision, tmp_path)
    gone = some_member(db)
    sql(db, f"DELETE FROM users WHERE user_name = '{gone}'")  # cascades to group_members
    assert provision("run", QUICKSTART).code == 0
    assert gone not in read_app(db)["users"], "a delta run trusts the state: this is what --reconcile is for"

    run = provision("run", QUICKSTART, "--reconcile", "--output", "json")
    assert run.code == 0, run.err
    user = run.json()["object_types"]["user"]
    assert user["reconciled"]["missing"] == 1 and user["added"] == 1
    assert user["updated"] == 0 and user["deleted"] == 0
    assert read_app(db) == before, "the user, every membership and nothing else"
    again = provision("run", QUICKSTART, "--reconcile", "--output", "json").json()["object_types"]
    assert again["user"]["reconciled"]["missing"] == 0 and again["user"]["added"] == 0
    assert again["user"]["reconciled"]["linked"] == 190 and again["group"]["reconciled"]["linked"] == 20


def test_full_runs_repair_and_full_export_counts_only_what_differed(quickstart_env, provision, tmp_path: Path):
    db, before = provisioned(quickstart_env, provision, tmp_path)
    sql(db, f"DELETE FROM users WHERE user_name = '{some_member(db)}'")
    full = provision("run", QUICKSTART, "--full", "--output", "json")
    assert full.code == 0 and full.json()["object_types"]["user"]["added"] == 1
    assert read_app(db) == before

    sql(db, "UPDATE users SET title = 'Edited by hand' WHERE id = 3")
    export = provision("run", QUICKSTART, "--full-export", "--output", "json")
    assert export.code == 0, export.err
    counts = export.json()["object_types"]
    assert counts["user"]["updated"] == 1 and counts["group"]["updated"] == 0
    assert read_app(db) == before


def test_check_lists_drift_attribute_by_attribute_and_fix_repairs_it(quickstart_env, provision, tmp_path: Path):
    db, before = provisioned(quickstart_env, provision, tmp_path)
    sql(db, "UPDATE users SET title = 'Edited by hand', department = NULL WHERE id = 7")
    name = sql(db, "SELECT user_name FROM users WHERE id = 7")[0][0]
    expected = before["users"][name]

    text = provision("check", QUICKSTART)
    assert text.code == 1, text.err
    assert "the target differs from what the mappings say" in text.out
    assert "1 drifted" in text.out
    assert f'      title: expected "{expected["title"]}"; found "Edited by hand"' in text.out
    assert f'      department: expected "{expected["department"]}"; found null' in text.out
    assert read_app(db)["users"][name]["title"] == "Edited by hand", "check writes nothing to the target"

    report = provision("check", QUICKSTART, "--output", "json")
    assert report.code == 1
    [drift] = [d for d in report.json()["check"]["differences"] if d["situation"] == "drifted"]
    assert drift["object_type"] == "user" and drift["target_anchor"] == "7" and drift["action"] == "update"
    assert drift["attributes"]["title"] == {"expected": expected["title"], "found": "Edited by hand"}

    fixed = provision("check", QUICKSTART, "--fix")
    assert fixed.code == 0, fixed.out + fixed.err
    assert read_app(db) == before
    clean = provision("check", QUICKSTART, "--output", "json")
    assert clean.code == 0, clean.out
    assert clean.json()["check"]["differs"] is False
    assert clean.json()["check"]["situations"]["user"]["linked"] == 190


def test_an_account_made_by_hand_is_an_orphan_reported_by_check_and_status(quickstart_env, provision,
                                                                           tmp_path: Path):
    db, before = provisioned(quickstart_env, provision, tmp_path)
    sql(db, "INSERT INTO users (user_name, display_name, active) VALUES ('svc.backup', 'Backup', 1)")
    result = provision("check", QUICKSTART, "--output", "json")
    assert result.code == 1
    [orphan] = [d for d in result.json()["check"]["differences"] if d["situation"] == "orphan"]
    assert orphan["anchor"] == str(user_id(db, "svc.backup")) and "svc.backup" in orphan["note"]
    assert "action" not in orphan, "reported only: no boundary is declared"
    assert "1 orphan" not in provision("status", QUICKSTART).out, "check writes nothing, not even the state"
    assert provision("check", QUICKSTART, "--fix").code == 0
    assert "svc.backup" in read_app(db)["users"], "an orphan is never touched without a boundary"
    status = provision("status", QUICKSTART)
    assert "1 orphan" in status.out and "190 linked in target" in status.out
    assert provision("status", QUICKSTART, "--output", "json").json()["object_types"]["user"]["reconciled"][
        "found"] == {"orphan": 1}


def test_orphans_inside_the_boundary_are_deleted_behind_the_guard_and_others_never(quickstart_copy: Path, provision,
                                                                                    tmp_path: Path):
    from runner import sampledata

    sampledata.make(tmp_path / "data", 200, 20, 1)
    text = quickstart_copy.read_text().replace(
        "correlate: [user_name]}",
        "correlate: [user_name], boundary: {all: [{attribute: email, op: ends_with, value: '@example.org'}]}}"
        "\n    reconcile: {orphan: delete}", 1)
    quickstart_copy.write_text(text)
    assert provision("run", quickstart_copy).code == 0
    db = tmp_path / "app.db"
    before = read_app(db)
    sql(db, "INSERT INTO users (user_name, email, active) VALUES ('svc.backup', 'backup@ops.example.net', 1)",
        "INSERT INTO users (user_name, email, active) VALUES ('left.behind', 'left.behind@example.org', 1)")

    run = provision("run", quickstart_copy, "--reconcile", "--output", "json")
    assert run.code == 0, run.err
    user = run.json()["object_types"]["user"]
    assert user["reconciled"]["orphan"] == 1 and user["deleted"] == 1
    after = read_app(db)["users"]
    assert "left.behind" not in after and "svc.backup" in after, "outside the boundary: never touched"
    assert set(after) - {"svc.backup"} == set(before["users"])

    for i in range(30):  # many orphans at once look like a broken read: the guard holds them
        sql(db, f"INSERT INTO users (user_name, email, active) VALUES ('o{i}', 'o{i}@example.org', 1)")
    held = provision("run", quickstart_copy, "--reconcile", "--output", "json")
    assert held.code == 3 and held.json()["object_types"]["user"]["held"] == 30
    assert len(read_app(db)["users"]) == 191 + 30
    # the held orphan deletes are not sent by a later run that does not look at the target again
    assert provision("run", quickstart_copy, "--allow-deletes", "all").code == 0
    assert len(read_app(db)["users"]) == 191 + 30
    assert provision("run", quickstart_copy, "--reconcile", "--allow-deletes", "30").code == 0
    assert set(read_app(db)["users"]) == set(before["users"]) | {"svc.backup"}


def test_a_lost_state_store_links_what_the_target_holds_instead_of_adding_it_twice(quickstart_env, provision,
                                                                                   tmp_path: Path):
    db, before = provisioned(quickstart_env, provision, tmp_path)
    for file in tmp_path.glob("app.db.state*"):
        file.unlink()
    report = provision("run", QUICKSTART, "--adopt-report")
    assert report.code == 0, report.err
    assert "190 unlinked" in report.out and "20 unlinked" in report.out
    assert read_app(db) == before

    run = provision("run", QUICKSTART, "--output", "json")
    assert run.code == 0, run.err
    counts = run.json()["object_types"]
    for name in ("user", "group"):
        assert counts[name]["added"] == counts[name]["updated"] == counts[name]["deleted"] == 0, counts[name]
    assert counts["group"]["reconciled"]["unlinked"] == 20
    assert read_app(db) == before
    assert sql(db, "SELECT count(*), count(DISTINCT name) FROM groups") == [(20, 20)]


def test_an_emptied_target_is_filled_again(quickstart_env, provision, tmp_path: Path):
    db, before = provisioned(quickstart_env, provision, tmp_path)
    sql(db, "DELETE FROM group_members", "DELETE FROM groups", "DELETE FROM users")
    run = provision("run", QUICKSTART, "--reconcile", "--output", "json")
    assert run.code == 0, run.err
    counts = run.json()["object_types"]
    assert counts["user"]["reconciled"]["missing"] == 190 and counts["user"]["added"] == 190
    assert counts["group"]["added"] == 20
    assert read_app(db) == before


def test_two_people_claiming_one_account_are_held_and_reported(quickstart_env, provision, tmp_path: Path):
    data = quickstart_env(200, 20)
    assert provision("run", QUICKSTART).code == 0
    db = tmp_path / "app.db"
    for file in tmp_path.glob("app.db.state*"):
        file.unlink()
    people = (data / "people.csv").read_text().splitlines(keepends=True)
    header = people[0].rstrip("\n").split(",")
    first = dict(zip(header, people[1].rstrip("\n").split(","), strict=False))
    twin = people[1].replace(first["employee_id"], "E9999999", 1)  # same e-mail, so the same user_name
    (data / "people.csv").write_text("".join(people + [twin]))
    sql(db, "INSERT INTO groups (name, description) VALUES ((SELECT name FROM groups WHERE id = 1), 'a copy')")

    run = provision("run", QUICKSTART, "--output", "json")
    assert run.code == 1, run.err
    user, grp = run.json()["object_types"]["user"], run.json()["object_types"]["group"]
    assert user["reconciled"]["collision"] == 1 and user["added"] == 0
    assert grp["reconciled"]["ambiguous"] == 1 and grp["added"] == 0
    check = provision("check", QUICKSTART, "--output", "json").json()["check"]
    found = {(d["situation"], d["anchor"]) for d in check["differences"]}
    assert ("collision", "E9999999") in found or ("collision", first["employee_id"]) in found
    assert any(s == "ambiguous" for s, _ in found)
    assert sql(db, "SELECT count(*) FROM users") == [(190,)], "nobody added twice"


def test_a_state_store_pointed_at_another_database_stops_until_rebound(quickstart_env, provision,
                                                                       tmp_path: Path, monkeypatch):
    db, before = provisioned(quickstart_env, provision, tmp_path)
    state = tmp_path / "app.db.state"
    other = tmp_path / "other.db"
    monkeypatch.setenv("PROVISION_TARGET", str(other))
    shutil.copy(state, tmp_path / "other.db.state")  # the old state beside a new, empty target

    stopped = provision("run", QUICKSTART)
    assert stopped.code == 4, stopped.out + stopped.err
    assert str(db) in stopped.err and str(other) in stopped.err and "--rebind" in stopped.err
    assert sql(other, "SELECT count(*) FROM users") == [(0,)]

    rebound = provision("run", QUICKSTART, "--rebind", "--output", "json")
    assert rebound.code == 0, rebound.err
    assert rebound.json()["object_types"]["user"]["added"] == 190
    assert read_app(other) == before
    assert provision("run", QUICKSTART).code == 0


def test_preview_diffs_against_the_target_as_it_is(quickstart_env, provision, tmp_path: Path):
    db, before = provisioned(quickstart_env, provision, tmp_path)
    name = sql(db, "SELECT user_name FROM users WHERE id = 9")[0][0]
    anchor = next(a for a, u in [(k, v) for k, v in _anchors(tmp_path).items()] if u == "9")
    sql(db, "UPDATE users SET title = 'Edited by hand' WHERE id = 9")
    shown = provision("preview", QUICKSTART, "--object-type", "user", "--anchor", anchor, "--output", "json").json()
    assert shown["target"]["read"] == "read" and shown["target"]["data"]["title"] == "Edited by hand"
    assert shown["diff"]["action"] == "update"
    assert shown["diff"]["changes"]["title"] == {"old": "Edited by hand", "new": before["users"][name]["title"],
                                                 "rule": "source title"}
    applied = provision("preview", QUICKSTART, "--object-type", "user", "--anchor", anchor, "--apply")
    assert applied.code == 0, applied.out
    assert read_app(db) == before

    sql(db, "DELETE FROM users WHERE id = 9")
    gone = provision("preview", QUICKSTART, "--object-type", "user", "--anchor", anchor, "--apply", "--output", "json")
    assert gone.code == 0 and gone.json()["diff"]["action"] == "add"
    assert read_app(db)["users"][name] == before["users"][name]


def _anchors(tmp_path: Path) -> dict[str, str]:
    """source anchor -> target anchor of the quickstart's users, from its state store."""
    rows = sql(tmp_path / "app.db.state", "SELECT l.source_anchor, l.target_anchor FROM links l JOIN object_types t "
                                          "ON t.id = l.type_id WHERE t.name = 'user' AND l.live")
    return dict(rows)


def test_reconcile_every_reads_the_target_on_the_runs_it_says(quickstart_copy: Path, provision, tmp_path: Path):
    from runner import sampledata

    sampledata.make(tmp_path / "data", 50, 5, 1)
    quickstart_copy.write_text(quickstart_copy.read_text().replace(
        "correlate: [user_name]}", "correlate: [user_name], reconcile_every: 3}", 1))
    assert provision("run", quickstart_copy).code == 0
    db = tmp_path / "app.db"
    sql(db, "UPDATE users SET title = 'Edited by hand' WHERE id = 2")
    seen = []
    for _ in range(3):
        counts = provision("run", quickstart_copy, "--output", "json").json()["object_types"]["user"]
        seen.append((counts.get("reconciled") is not None, counts["updated"]))
    assert seen == [(False, 0), (False, 0), (True, 1)]
    assert "Edited by hand" not in {u["title"] for u in read_app(db)["users"].values()}


def test_a_value_the_target_accepts_but_does_not_keep_is_flagged(quickstart_env, provision, tmp_path: Path):
    db, before = provisioned(quickstart_env, provision, tmp_path)
    assert "does not hold" not in provision("run", QUICKSTART, "--reconcile").err  # every add confirmed
    sql(db, "UPDATE users SET title = 'Set by the app' WHERE id = 7",
        "CREATE TRIGGER title_is_read_only AFTER UPDATE OF title ON users WHEN NEW.id = 7 "
        "BEGIN UPDATE users SET title = 'Set by the app' WHERE id = 7; END")
    first = provision("run", QUICKSTART, "--reconcile", "--output", "json")
    assert first.code == 0 and first.json()["object_types"]["user"]["updated"] == 1
    assert "does not hold" not in first.err, "a value confirmed before, different now: drift (edited by someone)"
    second = provision("run", QUICKSTART, "--reconcile")  # the first read since that update
    assert "the target does not hold values it accepted" in second.err and "(title)" in second.err
    report = provision("check", QUICKSTART, "--output", "json").json()["check"]
    [drift] = [d for d in report["differences"] if d["situation"] == "drifted"]
    assert "the target accepted title and does not hold it" in drift["note"]
    assert drift["attributes"]["title"]["found"] == "Set by the app"


def test_an_attribute_a_target_drops_on_create_is_flagged_at_the_first_read(quickstart_env, provision,
                                                                           tmp_path: Path):
    quickstart_env(60, 5)
    db = tmp_path / "app.db"
    assert provision("run", QUICKSTART).code == 0  # makes the tables; then the app starts dropping phones
    sql(db, "CREATE TRIGGER no_phones AFTER INSERT ON users BEGIN UPDATE users SET phone = NULL "
            "WHERE id = NEW.id; END", "DELETE FROM users WHERE id IN (2, 3)")
    assert provision("run", QUICKSTART, "--reconcile").code == 0  # created again, phones dropped
    report = provision("check", QUICKSTART, "--output", "json").json()["check"]
    flagged = [d for d in report["differences"] if "not_held" in (d.get("note") or "") or
               "does not hold" in (d.get("note") or "")]
    phones = [d for d in flagged if "phone" in d["attributes"]]
    assert phones, report["differences"]
    assert all(d["attributes"]["phone"]["found"] is None for d in phones)


def test_validate_refuses_orphan_deletes_without_a_boundary(quickstart_copy: Path, provision):
    quickstart_copy.write_text(quickstart_copy.read_text().replace(
        "    when_out_of_scope: disable     # terminated people stay in the app, with active = false",
        "    reconcile: {orphan: delete}\n    when_out_of_scope: disable", 1))
    result = provision("validate", quickstart_copy)
    assert result.code == 2
    line = next(i for i, text in enumerate(quickstart_copy.read_text().splitlines(), 1) if "orphan: delete" in text)
    assert f"quickstart.yaml:{line}:" in result.err
    assert "reconcile.orphan: delete needs target.boundary" in result.err


def test_an_update_that_finds_its_row_deleted_creates_it_again_in_the_same_run(quickstart_env, provision,
                                                                              tmp_path: Path):
    """No reconciliation asked for: the update itself finds the row gone, and the run adds it
    again, with the groups that held it and the reports it manages pointing at the new row."""
    data = quickstart_env(200, 20)
    assert provision("run", QUICKSTART).code == 0
    db = tmp_path / "app.db"
    manager = sql(db, "SELECT m.user_name FROM users m JOIN users r ON r.manager_id = m.id "
                      "JOIN group_members g ON g.user_id = m.id ORDER BY m.id LIMIT 1")[0][0]
    email = sql(db, f"SELECT email FROM users WHERE user_name = '{manager}'")[0][0]
    with open(data / "people.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        if row["email"] == email:
            row["title"] = "Principal Engineer"  # HR changes him: the run sends an update
    with open(data / "people.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    sql(db, f"DELETE FROM users WHERE user_name = '{manager}'")  # memberships cascade, reports lose him
    expected_groups = [g for g in read_app(db)["groups"]]
    run = provision("run", QUICKSTART, "--output", "json")
    assert run.code == 0, run.err
    user = run.json()["object_types"]["user"]
    assert user["added"] == 1 and user["failed"] == 0, user
    after = read_app(db)
    assert manager in after["users"]
    assert any(u["manager"] == manager for u in after["users"].values()), "the reports point at the new row"
    assert sum(manager in g["members"] for g in after["groups"]) >= 1, "and the groups hold it again"
    assert len(after["groups"]) == len(expected_groups)
    assert provision("check", QUICKSTART).code == 0


def test_an_orphan_removed_by_hand_is_forgotten(quickstart_env, provision, tmp_path: Path):
    db, before = provisioned(quickstart_env, provision, tmp_path)
    sql(db, "INSERT INTO users (user_name, display_name, active) VALUES ('svc.backup', 'Backup', 1)")
    orphan = str(user_id(db, "svc.backup"))
    provision("run", QUICKSTART, "--reconcile", "--output", "json").only_reported_orphans(1)
    known = "SELECT count(*) FROM target_objects WHERE target_anchor = '" + orphan + "'"
    assert sql(tmp_path / "app.db.state", known) == [(1,)]
    sql(db, "DELETE FROM users WHERE user_name = 'svc.backup'")
    again = provision("run", QUICKSTART, "--reconcile", "--output", "json")
    assert again.code == 0 and again.json()["object_types"]["user"]["reconciled"]["orphan"] == 0
    assert sql(tmp_path / "app.db.state", known) == [(0,)], "the state forgets what the target no longer holds"
    assert provision("check", QUICKSTART).code == 0


def test_check_does_not_call_a_target_it_cannot_read_as_the_mappings_say(quickstart_env, provision, tmp_path: Path,
                                                                          monkeypatch):
    """A write-only target (a connector without read, as some plugins are) cannot be checked:
    check says so and exits 1, never 0."""
    from runner.connectors.base import Connector
    from runner.connectors.sql import SqlConnector

    provisioned(quickstart_env, provision, tmp_path)
    monkeypatch.setattr(SqlConnector, "can", lambda self, method: method != "read" and Connector.can(self, method))
    result = provision("check", QUICKSTART)
    assert result.code == 1, result.out + result.err
    assert "could not be read whole" in result.out
    assert "user: not checked: its target connector cannot read it" in result.out
    assert provision("check", QUICKSTART, "--output", "json").json()["check"]["unchecked"] == ["user", "group"]
