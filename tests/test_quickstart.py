"""The quickstart cycle: initial load, a no-op run, then HR changes with exact counts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import QUICKSTART, read_app
from quickstart_model import QuickstartModel

from runner import sampledata

KEYS = {"imported", "added", "updated", "renamed", "disabled", "deleted", "unchanged", "failed", "out_of_scope"}


def run_json(provision, *extra: str) -> dict:
    result = provision("run", QUICKSTART, "--output", "json", *extra)
    assert result.code == 0, result.err
    return result.json()


@pytest.mark.parametrize(("people", "groups", "seed", "mutations"), [
    (200, 20, 1, [(2, 2.0), (3, 2.0)]),
    (2500, 120, 11, [(5, 2.0), (6, 5.0)]),
])
def test_cycle_matches_the_model(quickstart_env, provision, tmp_path: Path, people, groups, seed, mutations):
    data = quickstart_env(people, groups, seed)
    model = QuickstartModel()

    first = run_json(provision)
    assert first["status"] == "ok"
    assert set(first["object_types"]) == {"user", "group"}
    assert first["object_types"] == model.step(data)
    assert read_app(tmp_path / "app.db") == model.target()

    again = run_json(provision)
    for name, counts in again["object_types"].items():
        assert counts["unchanged"] + counts["out_of_scope"] == counts["imported"], (name, counts)
        assert {k for k, v in counts.items() if v} <= {"imported", "unchanged", "out_of_scope"}, (name, counts)

    for mutate_seed, percent in mutations:
        summary = sampledata.mutate(data, mutate_seed, percent)
        after = run_json(provision)
        expected = model.step(data)
        assert after["object_types"] == expected
        assert after["object_types"]["user"]["added"] == len(summary["hired"])
        assert read_app(tmp_path / "app.db") == model.target()


def test_json_output_is_one_object_with_the_documented_keys(quickstart_env, provision):
    quickstart_env()
    out = run_json(provision)
    assert set(out) == {"pipeline", "run_id", "status", "started", "finished", "object_types", "manifest"}
    assert len(out["manifest"]["hash"]) == 64 and set(out["manifest"]) == {"hash", "commit", "modified"}
    assert out["pipeline"] == "quickstart"
    assert out["started"] <= out["finished"]
    for counts in out["object_types"].values():
        assert set(counts) == KEYS


def test_plan_changes_nothing_then_run_does_what_plan_said(quickstart_env, provision, tmp_path: Path):
    data = quickstart_env()
    run_json(provision)
    sampledata.mutate(data, 9, 5.0)
    before = read_app(tmp_path / "app.db")
    plan = provision("plan", QUICKSTART, "--output", "json")
    assert plan.code == 0, plan.err
    assert read_app(tmp_path / "app.db") == before
    planned = plan.json()
    actions = {c["action"] for c in planned["changes"]}
    assert actions <= {"add", "update", "disable", "delete"} and actions
    run = run_json(provision)
    for name, counts in run["object_types"].items():
        for key in ("added", "updated", "disabled", "deleted"):
            assert counts[key] == planned["object_types"][name][key], (name, key)


def test_plan_text_shows_counts_and_attribute_changes(quickstart_env, provision):
    data = quickstart_env()
    run_json(provision)
    summary = sampledata.mutate(data, 4, 5.0)
    plan = provision("plan", QUICKSTART)
    assert plan.code == 0
    hired = summary["hired"][0]
    assert f"+ user {hired}: add" in plan.out
    assert "would add" in plan.out
    terminated = summary["terminated"]
    if terminated:
        assert f"! user {terminated[0]}: disable" in plan.out
        assert "active: true -> false" in plan.out


def test_command_line_end_to_end(tmp_path: Path):
    """The installed console script, as the README runs it, with one JSON object on stdout."""
    data = tmp_path / "data"
    sampledata.make(data, 50, 5, 3)
    env = dict(os.environ, PROVISION_DATA=str(data), PROVISION_TARGET=str(tmp_path / "app.db"))
    exe = Path(sys.executable).parent / "provision"
    done = subprocess.run([exe, "run", QUICKSTART, "--output", "json"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["status"] == "ok"
    version = subprocess.run([exe, "--version"], capture_output=True, text=True)
    assert version.stdout.startswith("provision ")
