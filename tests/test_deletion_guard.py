"""The deletion guard: a broken HR export never empties the directory."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from conftest import QUICKSTART, read_app

from runner import sampledata


def users_in(db: Path) -> tuple[int, int]:
    with sqlite3.connect(db) as con:
        total = con.execute("SELECT count(*) FROM users").fetchone()[0]
        active = con.execute("SELECT count(*) FROM users WHERE active").fetchone()[0]
    return total, active


def test_an_empty_people_file_deletes_nobody(quickstart_env, provision, tmp_path: Path):
    data = quickstart_env(200, 20)
    assert provision("run", QUICKSTART).code == 0
    before = users_in(tmp_path / "app.db")
    header = (data / "people.csv").read_text().splitlines()[0]
    (data / "people.csv").write_text(header + "\n")  # a failed export: the header and nothing else

    result = provision("run", QUICKSTART, "--output", "json")
    assert result.code == 3, result.err
    assert result.json()["status"] == "stopped"
    assert "the source returned no objects, but 200 were there before" in result.json()["object_types"]["user"]["guard"]
    assert users_in(tmp_path / "app.db") == before
    # a high threshold does not change that: an empty read is refused whatever it says
    assert provision("run", QUICKSTART, "--allow-deletes", "150").code == 3
    assert users_in(tmp_path / "app.db") == before


def test_a_file_cut_short_stops_before_any_delete_or_disable_and_lists_them(quickstart_env, provision,
                                                                           tmp_path: Path):
    data = quickstart_env(200, 20)
    assert provision("run", QUICKSTART).code == 0
    before = read_app(tmp_path / "app.db")
    lines = (data / "people.csv").read_text().splitlines(keepends=True)
    (data / "people.csv").write_text("".join(lines[:21]))  # 20 people left of 200

    plan = provision("plan", QUICKSTART, "--output", "json")
    assert plan.code == 3
    assert "would delete or disable 170 of 190" in plan.json()["object_types"]["user"]["guard"]
    deletes = [c for c in plan.json()["changes"] if c["action"] == "delete" and c["object_type"] == "user"]
    assert len(deletes) == 170

    run = provision("run", QUICKSTART, "--output", "json")
    assert run.code == 3 and run.json()["object_types"]["user"]["held"] == 170
    after = read_app(tmp_path / "app.db")
    assert after["users"] == before["users"], "nobody deleted or disabled"
    assert "--allow-deletes 170" in provision("run", QUICKSTART).out

    # a person decides it is right: one run with --allow-deletes goes through
    allowed = provision("run", QUICKSTART, "--allow-deletes", "170", "--output", "json")
    assert allowed.code == 0, allowed.out
    assert allowed.json()["object_types"]["user"]["deleted"] == 170
    assert users_in(tmp_path / "app.db")[0] == len(before["users"]) - 170


def test_normal_turnover_passes_and_a_manifest_threshold_applies(quickstart_copy: Path, provision, tmp_path: Path):
    data = tmp_path / "data"
    sampledata.make(data, 200, 20, 3)
    assert provision("run", quickstart_copy).code == 0
    sampledata.mutate(data, 4, 2.0)  # a normal day: a few leavers
    assert provision("run", quickstart_copy).code == 0

    text = quickstart_copy.read_text().replace("version: 1\n", "version: 1\nsafety: {max_deletes: 0}\n", 1)
    quickstart_copy.write_text(text)
    sampledata.mutate(data, 5, 2.0)
    strict = provision("run", quickstart_copy, "--output", "json")
    assert strict.code == 3, strict.out
    assert "safety.max_deletes allows (0)" in strict.json()["object_types"]["user"]["guard"]
