"""Match rules adopt accounts that already exist in the target instead of duplicating them."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from conftest import person, read_app, write_hr


def test_existing_accounts_are_adopted_not_duplicated(quickstart_copy: Path, provision, tmp_path: Path):
    quickstart_copy.write_text(quickstart_copy.read_text().replace(
        "    when_out_of_scope: disable     # terminated",
        "    match: [{source: employee_id, target: employee_number}, {source: email, target: email}]\n"
        "    when_out_of_scope: disable     # terminated"))
    ddl = (quickstart_copy.parent / "sql" / "quickstart-target.sql")
    ddl.write_text(ddl.read_text().replace("    active         BOOLEAN NOT NULL DEFAULT 1",
                                           "    active         BOOLEAN NOT NULL DEFAULT 1,\n"
                                           "    employee_number TEXT"))
    con = sqlite3.connect(tmp_path / "app.db")
    con.executescript(ddl.read_text())
    con.executemany("INSERT INTO users (user_name, display_name, email, title, active, employee_number)"
                    " VALUES (?, ?, ?, ?, 1, ?)", [
                        ("asmith", "Ann Smith (old)", "ANN.SMITH@example.org ", "Clerk", None),  # by email, case/space
                        ("bjones", "B Jones", "other@example.org", "Clerk", "E2"),              # by employee number
                        ("dup1", "Dup One", "cy.dup@example.org", None, None),
                        ("dup2", "Dup Two", "CY.DUP@example.org", None, None)])
    con.commit()
    con.close()
    write_hr(tmp_path / "data", [person("E1", "Ann", "Smith"), person("E2", "Bob", "Jones"),
                                 person("E3", "Cy", "Dup"), person("E4", "Di", "New")], [])

    result = provision("run", quickstart_copy, "--output", "json")
    assert result.code == 1  # the conflict is a failure of that object
    users = result.json()["object_types"]["user"]
    assert users["added"] == 1 and users["updated"] == 2 and users["failed"] == 1

    app = read_app(tmp_path / "app.db")
    assert sorted(app["users"]) == ["ann.smith", "bob.jones", "di.new", "dup1", "dup2"]
    assert app["users"]["ann.smith"]["display_name"] == "Ann Smith"   # adopted row updated in place
    assert app["users"]["bob.jones"]["email"] == "bob.jones@example.org"

    status = provision("status", quickstart_copy)
    assert "E3" in status.out and "matches 2 target objects" in status.out

    again = provision("run", quickstart_copy, "--output", "json").json()["object_types"]["user"]
    assert again["added"] == 0 and again["updated"] == 0 and again["failed"] == 1


def test_a_few_new_hires_are_matched_by_lookups_not_by_reading_the_whole_target(quickstart_copy: Path, provision,
                                                                                tmp_path: Path):
    """First contact reads the target once; later runs with a handful of unlinked objects ask
    the target for just those (PERF.md: never read a million entries to match three)."""
    quickstart_copy.write_text(quickstart_copy.read_text().replace(
        "    when_out_of_scope: disable     # terminated",
        "    match: [{source: email, target: email}]\n    when_out_of_scope: disable     # terminated"))
    people = [person(f"E{i}", "Person", f"Number{i}") for i in range(1, 30)]
    write_hr(tmp_path / "data", people, [])
    first = provision("run", quickstart_copy, "--output", "json", "-v")
    assert first.code == 0, first.err
    assert "read 0 target objects" in first.err and "matching by lookups" not in first.err

    con = sqlite3.connect(tmp_path / "app.db")  # someone made two accounts by hand meanwhile
    con.executemany("INSERT INTO users (user_name, display_name, email, active) VALUES (?, ?, ?, 1)",
                    [("hand1", "By Hand", "new.one@example.org"), ("hand2", "By Hand", "new.two@example.org")])
    con.commit()
    con.close()
    people += [person("N1", "New", "One"), person("N2", "New", "Two"), person("N3", "New", "Three")]
    write_hr(tmp_path / "data", people, [])
    second = provision("run", quickstart_copy, "--output", "json", "-v")
    assert second.code == 0, second.err
    assert "matching by lookups" in second.err and "target objects" not in second.err
    users = second.json()["object_types"]["user"]
    assert users["added"] == 1 and users["updated"] == 2, users
    app = read_app(tmp_path / "app.db")
    assert "hand1" not in app["users"] and app["users"]["new.one"]["display_name"] == "New One"
    assert len(app["users"]) == 32
