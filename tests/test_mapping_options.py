"""Mapping entry options: default (on create, or always), null: skip | clear, apply: on_create."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from conftest import person, write_hr


def set_title_mapping(quickstart_copy: Path, extra: str) -> None:
    mapping = quickstart_copy.parent.parent / "mappings" / "person-to-app-user.yaml"
    text = mapping.read_text()
    assert "  - target: title\n    source: title\n" in text
    mapping.write_text(text.replace("  - target: title\n    source: title\n",
                                    "  - target: title\n    source: title\n" + extra))


def titles(tmp_path: Path) -> dict[str, str | None]:
    con = sqlite3.connect(tmp_path / "app.db")
    try:
        return dict(con.execute("SELECT user_name, title FROM users"))
    finally:
        con.close()


@pytest.mark.parametrize(("extra", "after_blank"), [
    ("    default: Staff\n", "Manager"),                                   # default on create only; null skips
    ("    default: Staff\n    default_always: true\n", "Staff"),          # default on every evaluation
    ("    null: clear\n", None),                                          # null clears
    ("", "Manager"),                                                      # null skips by default
])
def test_default_and_null_handling(quickstart_copy: Path, provision, tmp_path: Path, extra: str, after_blank):
    set_title_mapping(quickstart_copy, extra)
    data = tmp_path / "data"
    write_hr(data, [person("E1", "Ann", "Lee", title="")], [])
    assert provision("run", quickstart_copy).code == 0
    assert titles(tmp_path)["ann.lee"] == ("Staff" if "default" in extra else None)

    write_hr(data, [person("E1", "Ann", "Lee", title="Manager")], [])
    assert provision("run", quickstart_copy).code == 0
    assert titles(tmp_path)["ann.lee"] == "Manager"

    write_hr(data, [person("E1", "Ann", "Lee", title="")], [])
    out = provision("run", quickstart_copy, "--output", "json").json()["object_types"]["user"]
    assert titles(tmp_path)["ann.lee"] == after_blank
    assert out["updated"] == (0 if after_blank == "Manager" else 1)


def test_on_create_values_are_never_updated(quickstart_copy: Path, provision, tmp_path: Path):
    set_title_mapping(quickstart_copy, "    apply: on_create\n")
    data = tmp_path / "data"
    write_hr(data, [person("E1", "Ann", "Lee", title="Intern")], [])
    assert provision("run", quickstart_copy).code == 0
    write_hr(data, [person("E1", "Ann", "Lee", title="CEO")], [])
    out = provision("run", quickstart_copy, "--output", "json").json()["object_types"]["user"]
    assert out["updated"] == 0 and titles(tmp_path)["ann.lee"] == "Intern"


def test_select_unique_value_picks_a_free_name(quickstart_copy: Path, provision, tmp_path: Path):
    """Existing target accounts and earlier picks of the same run are taken; numbering goes on."""
    mapping = quickstart_copy.parent.parent / "mappings" / "person-to-app-user.yaml"
    text = mapping.read_text()
    old = "expression: \"lower(split(email, '@')[0])\""
    assert old in text
    mapping.write_text(text.replace(old, "expression: \"select_unique_value(lower(normalize_diacritics("
                                         "join('', [left(first_name, 1), last_name]))))\""))
    ddl = quickstart_copy.parent / "sql" / "quickstart-target.sql"
    con = sqlite3.connect(tmp_path / "app.db")
    con.executescript(ddl.read_text())
    con.execute("INSERT INTO users (user_name, display_name) VALUES ('asmith', 'Someone already here')")
    con.commit()
    con.close()
    data = tmp_path / "data"
    write_hr(data, [person("E1", "Anna", "Smith"), person("E2", "Åke", "Smith"), person("E3", "Bo", "Lund")], [])

    out = provision("run", quickstart_copy, "--output", "json")
    assert out.code == 0, out.err
    con = sqlite3.connect(tmp_path / "app.db")
    names = dict(con.execute("SELECT email, user_name FROM users WHERE email IS NOT NULL"))
    con.close()
    assert names == {"anna.smith@example.org": "asmith2", "åke.smith@example.org": "asmith3",
                     "bo.lund@example.org": "blund"}
    assert provision("run", quickstart_copy, "--output", "json").json()["object_types"]["user"]["updated"] == 0

    # a leaver frees the name once she is gone; a Smith hired later may take it
    write_hr(data, [person("E2", "Åke", "Smith"), person("E3", "Bo", "Lund")], [])
    assert provision("run", quickstart_copy, "--output", "json").json()["object_types"]["user"]["deleted"] == 1
    write_hr(data, [person("E2", "Åke", "Smith"), person("E3", "Bo", "Lund"), person("E4", "Alva", "Smith")], [])
    provision("run", quickstart_copy)
    con = sqlite3.connect(tmp_path / "app.db")
    assert con.execute("SELECT user_name FROM users WHERE email = 'alva.smith@example.org'").fetchone() == ("asmith2",)
    con.close()
