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
