"""A run killed at any instant converges on the next run: nothing duplicated, lost or stuck.

Each test provisions the quickstart (CSV -> SQLite, a commit every 10 operations so a run has
many commits) and kills it with SIGKILL right after the target's Nth commit, at points spread
over the whole run: adds (users, managers, groups with members) on first contact, then
updates, disables, deletes and membership changes after the sample data mutates. One rerun
must give exactly the target a run that was never killed gives (every attribute, managers and
members compared by name), exit 0, nothing failed. ``tests/faults/killpoint.py`` injects the
fault; see ``runner/engine/recovery.py`` for what the rerun does.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import QUICKSTART, REPO, read_app

from runner import sampledata

KILLPOINT = REPO / "tests" / "faults" / "killpoint.py"
PEOPLE, GROUPS = 200, 20


def manifest_with_batches(tmp: Path) -> Path:
    """The quickstart with a commit every 10 operations, so a run has many kill points."""
    folder = tmp / "manifest"
    shutil.copytree(QUICKSTART.parent, folder, ignore=shutil.ignore_patterns("out", ".provision", "data"))
    shutil.copytree(REPO / "mappings", tmp / "mappings")
    text = (folder / "quickstart.yaml").read_text()
    text = text.replace("    init_sql: sql/quickstart-target.sql\n", "    init_sql: sql/quickstart-target.sql\n    batch_size: 10\n")
    (folder / "quickstart.yaml").write_text(text)
    return folder / "quickstart.yaml"


def run(manifest: Path, data: Path, target: Path, point: int = 0, what: str = "KILL") -> subprocess.CompletedProcess[str]:
    env = os.environ | {"PROVISION_DATA": str(data), "PROVISION_TARGET": str(target)}
    return subprocess.run([sys.executable, str(KILLPOINT), str(point), what, "run", str(manifest), "--output", "json"],
                          capture_output=True, text=True, env=env, timeout=120, cwd=REPO)


def commits_of(result: subprocess.CompletedProcess[str]) -> int:
    return int(re.search(r"commits: (\d+)", result.stderr).group(1))  # type: ignore[union-attr]


def spread(total: int, count: int) -> list[int]:
    """``count`` kill points from the first commit to the last."""
    return sorted({1 + round(i * (total - 1) / (count - 1)) for i in range(count)})


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    """The data before and after a mutation, and the targets a run never killed makes of them."""
    tmp = tmp_path_factory.mktemp("crash")
    manifest = manifest_with_batches(tmp)
    before, after = tmp / "before", tmp / "after"
    sampledata.make(before, PEOPLE, GROUPS, 5)
    shutil.copytree(before, after)
    sampledata.mutate(after, 9, 15.0)
    clean = tmp / "clean.db"
    first = run(manifest, before, clean)
    assert first.returncode == 0, first.stderr
    clean_before = read_app(clean)
    initial_commits = commits_of(first)
    shutil.copy(clean, tmp / "clean-before.db")
    shutil.copy(str(clean) + ".state", tmp / "clean-before.db.state")
    second = run(manifest, after, clean)
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["object_types"]["user"]["deleted"] > 0, "the mutation must delete someone"
    return {"tmp": tmp, "manifest": manifest, "before": before, "after": after, "clean_before": clean_before,
            "clean_after": read_app(clean), "initial_commits": initial_commits,
            "delta_commits": commits_of(second)}


def converges(world: dict, target: Path, data: Path, expected: dict, provision, monkeypatch: pytest.MonkeyPatch,
              manifest: Path | None = None) -> dict:
    """The run after the killed one (in this process: only a run to be killed needs its own) gives
    ``expected``, nothing failed, no group twice; and a third run changes nothing."""
    manifest = manifest or world["manifest"]
    monkeypatch.setenv("PROVISION_DATA", str(data))
    monkeypatch.setenv("PROVISION_TARGET", str(target))
    rerun = provision("run", manifest, "--output", "json")
    assert rerun.code == 0, rerun.err + rerun.out
    summary = rerun.json()
    assert all(c["failed"] == 0 for c in summary["object_types"].values()), summary
    got = read_app(target)
    names = [g["name"] for g in got["groups"]]
    assert len(names) == len(set(names)), f"duplicate groups: {sorted(n for n in names if names.count(n) > 1)}"
    assert got == expected
    again = provision("run", manifest, "--output", "json")  # and stays put: a third run changes nothing
    counts = again.json()["object_types"]
    assert all(c["added"] + c["updated"] + c["deleted"] + c["disabled"] == 0 for c in counts.values()), counts
    return summary


def killed_during_the_change(world: dict, label: str, point: int) -> Path:
    """A target provisioned from the data before, then a run on the data after, killed at ``point``."""
    target = world["tmp"] / f"{label}.db"
    shutil.copy(world["tmp"] / "clean-before.db", target)
    shutil.copy(world["tmp"] / "clean-before.db.state", str(target) + ".state")
    killed = run(world["manifest"], world["after"], target, point)
    assert killed.returncode == -9, killed.stderr
    return target


def test_the_scenario_has_many_kill_points(world):
    assert world["initial_commits"] >= 15 and world["delta_commits"] >= 5


@pytest.mark.parametrize("nth", range(7))
def test_killed_during_first_contact_converges(world, nth: int, provision, monkeypatch):
    point = spread(world["initial_commits"], 7)[nth]
    target = world["tmp"] / f"initial-{nth}.db"
    killed = run(world["manifest"], world["before"], target, point)
    assert killed.returncode == -9, killed.stderr
    summary = converges(world, target, world["before"], world["clean_before"], provision, monkeypatch)
    assert any(c.get("recovered") for c in summary["object_types"].values()), summary


@pytest.mark.parametrize("nth", range(5))
def test_killed_during_updates_deletes_and_membership_changes_converges(world, nth: int, provision, monkeypatch):
    target = killed_during_the_change(world, f"delta-{nth}", spread(world["delta_commits"], 5)[nth])
    converges(world, target, world["after"], world["clean_after"], provision, monkeypatch)


def test_a_killed_run_is_marked_abandoned_when_its_lock_is_taken_over(world, provision, monkeypatch):
    target = world["tmp"] / "abandoned.db"
    killed = run(world["manifest"], world["before"], target, 2)
    assert killed.returncode == -9
    converges(world, target, world["before"], world["clean_before"], provision, monkeypatch)
    with sqlite3.connect(str(target) + ".state") as con:
        statuses = [s for (s,) in con.execute("SELECT status FROM runs ORDER BY started")]
    assert statuses[0] == "abandoned" and statuses[1:] == ["ok", "ok"], statuses


@pytest.mark.parametrize(("what", "code"), [("TERM", 143), ("INT", 130)])
def test_sigterm_and_sigint_record_the_round_in_flight_and_stop(world, what: str, code: int, provision,
                                                              monkeypatch):
    target = world["tmp"] / f"signal-{what}.db"
    stopped = run(world["manifest"], world["before"], target, 3, what)
    assert stopped.returncode == code, stopped.stderr
    assert json.loads(stopped.stdout)["status"] == "interrupted"
    with sqlite3.connect(str(target) + ".state") as con:
        in_doubt = con.execute("SELECT count(*) FROM pending_exports WHERE sent_run IS NOT NULL").fetchone()[0]
        status = con.execute("SELECT status FROM runs").fetchone()[0]
    assert in_doubt == 0, "a graceful stop records what it sent"
    assert status == "interrupted"
    converges(world, target, world["before"], world["clean_before"], provision, monkeypatch)


@pytest.mark.parametrize("nth", range(3))
def test_a_run_that_reaches_its_time_limit_stops_cleanly_and_the_next_one_carries_on(world, nth: int, provision,
                                                                                     monkeypatch):
    """A cron job's run should end itself before the scheduler kills it: past --time-limit it
    records the round in flight, exits 3 and leaves nothing in doubt."""
    target = world["tmp"] / f"time-limit-{nth}.db"
    point = spread(world["initial_commits"], 3)[nth]
    env = os.environ | {"PROVISION_DATA": str(world["before"]), "PROVISION_TARGET": str(target)}
    stopped = subprocess.run([sys.executable, str(KILLPOINT), str(point), "TIMELIMIT", "run", str(world["manifest"]),
                              "--output", "json", "--time-limit", "50m"],
                             capture_output=True, text=True, env=env, timeout=120, cwd=REPO)
    assert stopped.returncode == 3, stopped.stderr
    summary = json.loads(stopped.stdout)
    assert summary["status"] == "interrupted"
    assert "time limit (50m)" in summary["stopped_by"]
    with sqlite3.connect(str(target) + ".state") as con:
        in_doubt = con.execute("SELECT count(*) FROM pending_exports WHERE sent_run IS NOT NULL").fetchone()[0]
    assert in_doubt == 0, "a run stopped by its time limit records what it sent"
    rerun = converges(world, target, world["before"], world["clean_before"], provision, monkeypatch)
    assert not any(c.get("recovered") for c in rerun["object_types"].values()), "nothing was left to settle"


def test_a_time_limit_must_be_a_duration(world, capsys):
    from runner import cli

    with pytest.raises(SystemExit) as stopped:
        cli.main(["run", str(world["manifest"]), "--time-limit", "soon"])
    assert stopped.value.code == 2
    assert "a duration such as 90s, 50m or 2h" in capsys.readouterr().err


def test_a_run_whose_lock_was_taken_over_cannot_commit(world, provision, monkeypatch):
    target = world["tmp"] / "fenced.db"
    fenced = run(world["manifest"], world["before"], target, 3, "TAKEOVER")
    assert fenced.returncode == 3, fenced.stderr
    assert "took the lock over" in fenced.stderr
    with sqlite3.connect(str(target) + ".state") as con:
        recorded = con.execute("SELECT count(*) FROM links").fetchone()[0]
    with sqlite3.connect(target) as con:
        written = con.execute("SELECT count(*) FROM users").fetchone()[0]
    assert recorded < written, "what the fenced run sent after losing its lock is not recorded by it"
    with sqlite3.connect(str(target) + ".state") as con:  # the thief died: its lock is stale
        con.execute("UPDATE locks SET pid = 999999999")
    converges(world, target, world["before"], world["clean_before"], provision, monkeypatch)


@pytest.mark.parametrize("nth", range(3))
def test_a_change_applied_by_a_killed_run_and_then_reverted_in_the_source_is_undone(world, nth: int, provision,
                                                                                    monkeypatch):
    """The killed run's writes reached the target but not the state; HR then reverts them. The
    rerun must see what the target really holds (re-read), not what the state last recorded."""
    target = killed_during_the_change(world, f"revert-{nth}", spread(world["delta_commits"], 3)[nth])
    converges(world, target, world["before"], world["clean_before"], provision, monkeypatch)


@pytest.mark.parametrize("phase", ["first contact", "changes"])
def test_killed_with_the_state_store_on_a_server_converges(world, server_database: str, tmp_path: Path, phase: str,
                                                          provision, monkeypatch):
    """The same protocol with the state store on PostgreSQL and MariaDB (in-flight marks, fenced
    commits and the bulk inserts go through their drivers)."""
    manifest = world["manifest"].with_name("quickstart-server-state.yaml")
    manifest.write_text(world["manifest"].read_text().replace(
        'state: "sqlite:///${env:PROVISION_TARGET:-out/app.db}.state"', f'state: "{server_database}"'))
    target = tmp_path / "app.db"
    if phase == "first contact":
        data, expected, point = world["before"], world["clean_before"], spread(world["initial_commits"], 3)[1]
    else:
        monkeypatch.setenv("PROVISION_DATA", str(world["before"]))
        monkeypatch.setenv("PROVISION_TARGET", str(target))
        assert provision("run", manifest).code == 0  # the first contact, in this process
        data, expected, point = world["after"], world["clean_after"], spread(world["delta_commits"], 3)[1]
    killed = run(manifest, data, target, point)
    assert killed.returncode == -9, killed.stderr
    converges(world, target, data, expected, provision, monkeypatch, manifest)
    assert server_database in manifest.read_text() and not Path(f"{target}.state").exists()
