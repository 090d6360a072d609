"""A deletion the guard holds keeps every reference to the held objects.

A people file cut in half (a partial transfer) looks like half the company leaving. The guard
holds the deletes; the groups must keep those people as members too, or the run empties every
group while it claims to have deleted nobody.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from conftest import QUICKSTART, read_app


def memberships(db: Path) -> int:
    with sqlite3.connect(db) as con:
        return con.execute("SELECT count(*) FROM group_members").fetchone()[0]


def test_a_people_file_cut_in_half_keeps_every_membership_and_manager(quickstart_env, provision, tmp_path: Path):
    data = quickstart_env(200, 20)
    assert provision("run", QUICKSTART).code == 0
    before = read_app(tmp_path / "app.db")
    members = memberships(tmp_path / "app.db")
    assert members > 50
    people = (data / "people.csv").read_text()
    lines = people.splitlines(keepends=True)
    (data / "people.csv").write_text("".join(lines[:101]))  # the transfer stopped half way

    plan = provision("plan", QUICKSTART, "--output", "json")
    assert plan.code == 3
    assert not [c for c in plan.json()["changes"] if c["object_type"] == "group"], "no group would change"
    run = provision("run", QUICKSTART, "--output", "json")
    assert run.code == 3, run.err
    assert run.json()["object_types"]["user"]["held"] > 0
    assert run.json()["object_types"]["group"]["updated"] == 0
    assert read_app(tmp_path / "app.db") == before, "no member removed, no manager cleared, nobody deleted"
    # the same again: still held, still nothing touched
    assert provision("run", QUICKSTART).code == 3
    assert read_app(tmp_path / "app.db") == before

    # the whole file arrives: nothing to do at all
    (data / "people.csv").write_text(people)
    again = provision("run", QUICKSTART, "--output", "json")
    assert again.code == 0, again.err
    counts = again.json()["object_types"]
    assert all(counts[t][a] == 0 for t in counts for a in ("added", "updated", "deleted", "disabled"))
    assert read_app(tmp_path / "app.db") == before


def test_allowed_deletes_remove_the_references_first(quickstart_env, provision, tmp_path: Path):
    data = quickstart_env(200, 20)
    assert provision("run", QUICKSTART).code == 0
    lines = (data / "people.csv").read_text().splitlines(keepends=True)
    (data / "people.csv").write_text("".join(lines[:101]))
    held = provision("run", QUICKSTART, "--output", "json")
    assert held.code == 3
    count = held.json()["object_types"]["user"]["held"]

    allowed = provision("run", QUICKSTART, "--allow-deletes", "all", "--output", "json")
    assert allowed.code == 0, allowed.err
    after = read_app(tmp_path / "app.db")
    kept = set(after["users"])
    assert len(kept) == len(read_app(tmp_path / "app.db")["users"])
    assert allowed.json()["object_types"]["user"]["deleted"] + allowed.json()["object_types"]["user"]["disabled"] \
        == count
    for g in after["groups"]:
        assert set(g["members"]) <= kept
    assert memberships(tmp_path / "app.db") == sum(len(g["members"]) for g in after["groups"])
