"""Approvals by object: what the deletion guard holds is released one named object at a time."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import QUICKSTART, read_app


@pytest.fixture
def held(quickstart_env, provision, tmp_path: Path):
    """A people file cut short: 30 of 200 people missing, past the guard's threshold (19)."""
    data = quickstart_env(200, 20)
    assert provision("run", QUICKSTART).code == 0
    lines = (data / "people.csv").read_text().splitlines(keepends=True)
    gone = [line.split(",")[0] for line in lines[1:31]]
    (data / "people.csv").write_text(lines[0] + "".join(lines[31:]))
    run = provision("run", QUICKSTART, "--output", "json")
    assert run.code == 3 and run.json()["object_types"]["user"]["held"] > 19
    return run.json()["run_id"], gone


def user_names(tmp_path: Path) -> set[str]:
    return set(read_app(tmp_path / "app.db")["users"])


def test_two_approved_objects_go_and_no_others(held, provision, tmp_path: Path):
    run_id, gone = held
    before = read_app(tmp_path / "app.db")
    status = provision("status", QUICKSTART, "--output", "json", "--failures", "all").json()
    waiting = {h["anchor"] for t in status["held"].values() for h in t["objects"]}
    assert set(gone) >= waiting and len(waiting) == status["held"]["user"]["count"]
    first, second = sorted(waiting)[:2]
    result = provision("approve", QUICKSTART, run_id, "--anchor", first, "--anchor", second)
    assert result.code == 0, result.err
    assert f"approved: user {first}" in result.out and f"approved: user {second}" in result.out
    assert read_app(tmp_path / "app.db") == before  # approving sends nothing by itself

    run = provision("run", QUICKSTART, "--output", "json").json()
    user = run["object_types"]["user"]
    assert user["deleted"] + user["disabled"] == 2 and user["held"] == len(waiting) - 2
    log = provision("status", QUICKSTART, "--output", "json", "--failures", "all").json()
    assert {h["anchor"] for t in log["held"].values() for h in t["objects"]} == waiting - {first, second}
    after = read_app(tmp_path / "app.db")
    removed = set(before["users"]) - set(after["users"])
    assert len(removed) == 2  # the two approved, deleted; the people they managed lose that manager
    for name, user in after["users"].items():
        was = before["users"][name]
        assert user == was or (user == {**was, "manager": None} and was["manager"] in removed), name
    # the approvals were used up: the next run holds the rest and sends nothing more
    again = provision("run", QUICKSTART, "--output", "json").json()["object_types"]["user"]
    assert again["deleted"] + again["disabled"] == 0 and again["held"] == len(waiting) - 2


def test_an_anchor_that_is_not_held_approves_nothing(held, provision, tmp_path: Path):
    run_id, gone = held
    result = provision("approve", QUICKSTART, run_id, "--anchor", gone[0], "--anchor", "E9999999")
    assert result.code == 2 and "not held by the deletion guard: E9999999" in result.err
    run = provision("run", QUICKSTART, "--output", "json").json()["object_types"]["user"]
    assert run["deleted"] + run["disabled"] == 0
    assert provision("approve", QUICKSTART, "no-such-run", "--anchor", gone[0]).code == 2


def test_a_held_delete_approved_in_a_plan_is_applied_with_it(held, provision, tmp_path: Path):
    _, gone = held
    out = tmp_path / "held.plan"
    made = provision("plan", QUICKSTART, "--out", out)
    assert made.code == 3  # the guard would stop the run: the plan says so
    items = [json.loads(line) for line in out.read_text().splitlines()[1:]]
    held_items = [i for i in items if i.get("held")]
    assert held_items and all(i["anchor"] in gone for i in held_items)
    chosen = held_items[0]["anchor"]
    assert provision("approve", out, "--anchor", chosen).code == 0
    before = user_names(tmp_path)
    applied = provision("apply", out, "--output", "json")
    user = applied.json()["object_types"]["user"]
    assert user["deleted"] + user["disabled"] == 1, applied.out
    assert user_names(tmp_path) <= before
