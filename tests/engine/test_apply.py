"""plan --out / apply on the quickstart (CSV -> SQLite): exactly the reviewed operations, or nothing."""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path

import pytest
from conftest import QUICKSTART, read_app

from runner import sampledata


def rows(data: Path) -> list[dict[str, str]]:
    with open(data / "people.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def write(data: Path, people: list[dict[str, str]]) -> None:
    with open(data / "people.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, list(people[0]))
        writer.writeheader()
        writer.writerows(people)


def edit(data: Path, anchor: str, **values: str) -> None:
    people = rows(data)
    for row in people:
        if row["employee_id"] == anchor:
            row.update(values)
    write(data, people)


def active(data: Path, n: int) -> list[str]:
    return [r["employee_id"] for r in rows(data) if r["status"] == "active"][:n]


@pytest.fixture
def world(quickstart_env, provision, tmp_path: Path):
    data = quickstart_env()
    assert provision("run", QUICKSTART).code == 0
    return data


def plan(provision, out: Path, *extra: str) -> list[dict]:
    result = provision("plan", QUICKSTART, "--out", out, *extra)
    assert result.code == 0, result.err
    assert f"saved to {out}" in result.out
    return [json.loads(line) for line in out.read_text().splitlines()[1:]]


def test_a_plan_applied_sends_exactly_it_and_equals_what_run_makes(world, provision, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch):
    sampledata.mutate(world, 7, 5.0)
    items = plan(provision, tmp_path / "p.plan")
    assert items and {i["action"] for i in items} >= {"update"}
    # every entry names its operation, the rule behind each value and its inputs' fingerprints
    update = next(i for i in items if i["action"] == "update")
    assert update["digest"] and update["inputs"]["source"] and update["inputs"]["target"]
    assert all("rule" in c for name, c in update["changes"].items() if not name.startswith("__"))
    applied = provision("apply", tmp_path / "p.plan", "--output", "json")
    assert applied.code == 0, applied.err + applied.out
    summary = applied.json()
    assert summary["status"] == "ok" and not summary.get("refused")
    sent = sum(c[k] for c in summary["object_types"].values() for k in ("added", "updated", "disabled", "deleted"))
    assert sent == len(items)
    after_apply = read_app(tmp_path / "app.db")

    # the same data and change, carried out by a plain run on a second target
    twin = tmp_path / "twin"
    data2 = twin / "data"
    monkeypatch.setenv("PROVISION_TARGET", str(twin / "app.db"))
    monkeypatch.setenv("PROVISION_DATA", str(data2))
    sampledata.make(data2, 200, 20, 1)
    assert provision("run", QUICKSTART).code == 0
    sampledata.mutate(data2, 7, 5.0)
    assert provision("run", QUICKSTART).code == 0
    assert read_app(twin / "app.db") == after_apply
    # and applying the same plan again is refused: its operations were carried out
    monkeypatch.setenv("PROVISION_TARGET", str(tmp_path / "app.db"))
    monkeypatch.setenv("PROVISION_DATA", str(world))
    again = provision("apply", tmp_path / "p.plan")
    assert again.code == 3 and "no longer pending" in again.out


def test_a_source_change_for_a_planned_object_refuses_with_nothing_written(world, provision, tmp_path: Path):
    first, second = active(world, 2)
    edit(world, first, last_name="Planned")
    edit(world, second, last_name="AlsoPlanned")
    items = plan(provision, tmp_path / "p.plan")
    assert {i["anchor"] for i in items} == {first, second}
    before = read_app(tmp_path / "app.db")
    edit(world, second, title="Changed after the review")
    result = provision("apply", tmp_path / "p.plan")
    assert result.code == 3
    assert f"user {second}: the source record changed since the plan" in result.out
    assert first not in result.out  # the unchanged one is not named
    assert read_app(tmp_path / "app.db") == before
    # --replan makes the plan again over the same file; that one applies
    replanned = provision("apply", tmp_path / "p.plan", "--replan")
    assert replanned.code == 0 and "Changed after the review" in replanned.out
    assert provision("apply", tmp_path / "p.plan").code == 0
    assert read_app(tmp_path / "app.db") != before


def test_a_target_changed_by_hand_refuses(world, provision, tmp_path: Path):
    (anchor,) = active(world, 1)
    edit(world, anchor, last_name="Planned")
    (item,) = plan(provision, tmp_path / "p.plan")
    con = sqlite3.connect(tmp_path / "app.db")
    con.execute("UPDATE users SET title = 'Set by hand' WHERE id = ?", (int(item["target_anchor"]),))
    con.commit()
    con.close()
    before = read_app(tmp_path / "app.db")
    result = provision("apply", tmp_path / "p.plan")
    assert result.code == 3 and f"user {anchor}: the target object changed since the plan" in result.out
    assert read_app(tmp_path / "app.db") == before


def test_operations_pending_since_the_plan_wait_for_a_later_run(world, provision, tmp_path: Path):
    first, second = active(world, 2)
    edit(world, first, last_name="Planned")
    plan(provision, tmp_path / "p.plan")
    edit(world, second, last_name="NotReviewed")
    result = provision("apply", tmp_path / "p.plan", "--output", "json")
    assert result.code == 0, result.out
    assert result.json()["unplanned"] == 1 and result.json()["object_types"]["user"]["updated"] == 1
    users = read_app(tmp_path / "app.db")["users"]
    assert any(u["family_name"] == "Planned" for u in users.values())
    assert not any(u["family_name"] == "NotReviewed" for u in users.values())
    assert provision("run", QUICKSTART, "--output", "json").json()["object_types"]["user"]["updated"] == 1


def test_a_changed_manifest_or_an_expired_plan_refuses(quickstart_copy, provision, tmp_path: Path):
    data = tmp_path / "data"
    sampledata.make(data, 50, 5, 1)
    assert provision("run", quickstart_copy).code == 0
    edit(data, active(data, 1)[0], last_name="Planned")
    out = tmp_path / "p.plan"
    assert provision("plan", quickstart_copy, "--out", out).code == 0
    mapping = quickstart_copy.parent.parent / "mappings" / "person-to-app-user.yaml"
    original = mapping.read_text()
    mapping.write_text(original + "\n# a reviewed change would come with its own plan\n")
    result = provision("apply", out)
    assert result.code == 3 and "changed since the plan" in result.out and "mapping files" in result.out
    mapping.write_text(original)
    lines = out.read_text().splitlines()
    header = json.loads(lines[0])
    header["expires"] = "2020-01-01T00:00:00+00:00"
    out.write_text("\n".join([json.dumps(header), *lines[1:]]) + "\n")
    result = provision("apply", out)
    assert result.code == 3 and "the plan expired at 2020-01-01" in result.out


def test_a_broken_plan_file_is_named(world, provision, tmp_path: Path):
    bad = tmp_path / "bad.plan"
    bad.write_text("this is not a plan\n")
    result = provision("apply", bad)
    assert result.code == 2 and f"{bad}:1: not a plan" in result.err
    assert provision("apply", tmp_path / "missing.plan").code == 2
    edit(world, active(world, 1)[0], last_name="Planned")
    plan(provision, tmp_path / "p.plan")
    lines = (tmp_path / "p.plan").read_text().splitlines()
    (tmp_path / "p.plan").write_text(lines[0] + "\n")  # cut short
    result = provision("apply", tmp_path / "p.plan")
    assert result.code == 2 and "fewer entries" in result.err


def test_a_plan_of_any_kind_stages_nothing(world, provision, tmp_path: Path):
    """plan --full-export used to leave its flag in the state: the next plan showed every object
    as an update and the next cron run re-sent them all."""
    full = provision("plan", QUICKSTART, "--full-export", "--output", "json")
    assert full.code == 0
    sampledata.mutate(world, 3, 2.0)
    assert provision("plan", QUICKSTART, "--out", tmp_path / "p.plan").code == 0
    plain = provision("plan", QUICKSTART, "--output", "json").json()
    run = provision("run", QUICKSTART, "--output", "json").json()
    for name, counts in run["object_types"].items():
        assert counts["updated"] == plain["object_types"][name]["updated"] < 20, name
        assert counts["added"] == plain["object_types"][name]["added"]
