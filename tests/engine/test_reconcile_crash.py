"""A reconciling run killed at any instant converges on the next one: nothing duplicated, lost or stuck.

The quickstart (CSV -> SQLite, a target read of 40 rows a page and a commit every 5 operations,
so a run has many commits) is provisioned, then damaged by hand as an operator would: accounts
deleted (their memberships cascade, the reports of a deleted manager lose their manager) and
titles edited. `run --reconcile` is then killed with SIGKILL right after its Nth commit, counting
both the state store's commits and the target's, at every k-th commit of the whole run: while it
reads the target, drops the links of the missing accounts, re-creates them, updates the drifted
ones and the groups. A normal `run --reconcile` must then give exactly the target a clean
provisioning of the same data gives (every attribute, managers and members by name), with no
duplicate and nothing pending or in doubt. The same for a first contact after the state store
was lost (every object adopted), killed anywhere: there the next run is a plain `run`, as cron
makes it, which must add and change nothing. The kill is injected by the small script below, in
the manner of ``tests/faults/killpoint.py`` (which counts the target's commits only).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import QUICKSTART, REPO, read_app

from runner import sampledata

from .helpers import sql

KILLER = """
import atexit, json, os, signal, sys, threading
from runner import cli
from runner.connectors.sql import SqlConnector
from runner.state.base import Base

point, args = int(sys.argv[1]), sys.argv[2:]
trace, lock = [], threading.Lock()
PHASES = (("reconcile.py", "_read", "target read"), ("reconcile.py", "_missing", "missing"),
          ("reconcile.py", "settle_orphans", "orphans"), ("recovery.py", None, "recovery"),
          ("binding.py", None, "binding"), ("importer.py", None, "import"), ("compute.py", None, "compute"),
          ("__init__.py", "export_type", "export"))

def phase():
    frame, seen = sys._getframe(2), []
    while frame is not None:
        seen.append((os.path.basename(frame.f_code.co_filename), frame.f_code.co_name))
        frame = frame.f_back
    for file, function, name in PHASES:
        if any(f == file and function in (None, c) for f, c in seen):
            return name
    return "other"

def committed(label):
    with lock:
        trace.append(label)
        if len(trace) == point:
            os.kill(os.getpid(), signal.SIGKILL)

real_commit, real_batch = Base.commit, SqlConnector._apply_batch

def commit(self):
    real_commit(self)
    committed("state: " + phase())

def apply_batch(self, operations):
    results = real_batch(self, operations)
    committed("target: " + ", ".join(sorted({f"{op.object} {op.kind}" for op in operations})))
    return results

Base.commit, SqlConnector._apply_batch = commit, apply_batch
if point == 0:
    atexit.register(lambda: print("trace: " + json.dumps(trace), file=sys.stderr))
sys.exit(cli.main(args))
"""

PEOPLE, GROUPS = 200, 20


def killable(tmp: Path, manifest: Path, data: Path, target: Path, point: int,
             *args: str) -> subprocess.CompletedProcess[str]:
    """``provision ARGS`` in a process that kills itself right after its ``point``-th commit (0: never)."""
    env = os.environ | {"PROVISION_DATA": str(data), "PROVISION_TARGET": str(target)}
    return subprocess.run([sys.executable, str(tmp / "killer.py"), str(point), *args[:1], str(manifest), *args[1:]],
                          capture_output=True, text=True, env=env, timeout=120, cwd=REPO)


def trace_of(result: subprocess.CompletedProcess[str]) -> list[str]:
    line = next(line for line in result.stderr.splitlines() if line.startswith("trace: "))
    return json.loads(line.removeprefix("trace: "))


def damage(db: Path) -> dict[str, int]:
    """Ten group members and one manager deleted by hand, and some titles edited."""
    managers = [m for (m,) in sql(db, "SELECT DISTINCT manager_id FROM users WHERE manager_id IS NOT NULL "
                                      "ORDER BY manager_id")]
    members = [m for (m,) in sql(db, "SELECT DISTINCT user_id FROM group_members ORDER BY user_id")]
    gone = [m for m in members if m not in managers][:10] + [managers[3]]
    sql(db, f"DELETE FROM users WHERE id IN ({', '.join(map(str, gone))})",
        "UPDATE users SET title = 'Edited by hand' WHERE id % 17 = 0")
    [(edited,)] = sql(db, "SELECT count(*) FROM users WHERE title = 'Edited by hand'")
    return {"missing": len(gone), "edited": edited}


Where = float | str | tuple[str, int]


def at(trace: list[str], where: Where) -> int:
    """The commit to be killed after: at a fraction of the run (0: the first commit, 1: the last),
    the first commit of a phase (a label), (``"during"``, n) the first commit of the nth target
    read, or (``"after"``, n) the commit right after it (where a reconciliation commits its mark)."""
    if isinstance(where, float | int):
        return 1 + round(where * (len(trace) - 1))
    if isinstance(where, str):
        return 1 + next(i for i, seen in enumerate(trace) if seen.startswith(where))
    reads: list[list[int]] = []  # [first, last] commit of each target read
    for i, seen in enumerate(trace, 1):
        if seen == "state: target read":
            if reads and reads[-1][1] == i - 1:
                reads[-1][1] = i
            else:
                reads.append([i, i])
    first, last = reads[where[1] - 1]
    return first if where[0] == "during" else last + 1


def named(where: Where) -> str:
    if isinstance(where, float | int):
        return f"{where:.0%} of the run"
    return where if isinstance(where, str) else f"{where[0]} target read {where[1]}"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    """The data, the clean target a run makes of it, the damaged target, and the commits of a
    reconciling run over the damage and of a first contact after the state was lost."""
    tmp = tmp_path_factory.mktemp("reconcile-crash")
    (tmp / "killer.py").write_text(KILLER)
    folder = tmp / "manifest"
    shutil.copytree(QUICKSTART.parent, folder, ignore=shutil.ignore_patterns("out", ".provision", "data"))
    shutil.copytree(REPO / "mappings", tmp / "mappings")
    manifest = folder / "quickstart.yaml"
    manifest.write_text(manifest.read_text().replace(
        "    init_sql: sql/quickstart-target.sql\n",
        "    init_sql: sql/quickstart-target.sql\n    batch_size: 5\n    page_size: 40\n"))
    data = tmp / "data"
    sampledata.make(data, PEOPLE, GROUPS, 5)

    clean = tmp / "clean.db"
    first = killable(tmp, manifest, data, clean, 0, "run")
    assert first.returncode == 0, first.stderr
    shutil.copy(clean, tmp / "damaged.db")
    shutil.copy(f"{clean}.state", tmp / "damaged.db.state")
    damaged = damage(tmp / "damaged.db")
    shutil.copy(clean, tmp / "stateless.db")  # the target as it is, its state store lost

    probe = tmp / "probe.db"
    shutil.copy(tmp / "damaged.db", probe)
    shutil.copy(tmp / "damaged.db.state", f"{probe}.state")
    repair = killable(tmp, manifest, data, probe, 0, "run", "--reconcile", "--output", "json")
    assert repair.returncode == 0, repair.stderr
    user = json.loads(repair.stdout)["object_types"]["user"]
    assert user["reconciled"]["missing"] == damaged["missing"] == user["added"]
    assert user["reconciled"]["drifted"] >= damaged["edited"]
    assert read_app(probe) == read_app(clean), "an uninterrupted run repairs everything"

    adopt_probe = tmp / "adopt-probe.db"
    shutil.copy(tmp / "stateless.db", adopt_probe)
    adopt = killable(tmp, manifest, data, adopt_probe, 0, "run", "--output", "json")
    assert adopt.returncode == 0, adopt.stderr
    users = len(read_app(clean)["users"])
    assert json.loads(adopt.stdout)["object_types"]["user"]["reconciled"]["unlinked"] == users
    return {"tmp": tmp, "manifest": manifest, "data": data, "clean": read_app(clean), "users": users,
            "repair": trace_of(repair), "adopt": trace_of(adopt)}


def converges(world: dict, target: Path, provision, monkeypatch: pytest.MonkeyPatch, *args: str) -> dict:
    """The next run (``run ARGS``) gives the clean target: no duplicate, nothing failed, pending or in doubt."""
    monkeypatch.setenv("PROVISION_DATA", str(world["data"]))
    monkeypatch.setenv("PROVISION_TARGET", str(target))
    rerun = provision("run", world["manifest"], *args, "--output", "json")
    assert rerun.code == 0, rerun.err + rerun.out
    summary = rerun.json()["object_types"]
    assert all(c["failed"] == 0 for c in summary.values()), summary
    users = world["users"]
    assert sql(target, "SELECT count(*), count(DISTINCT user_name) FROM users") == [(users, users)]
    assert sql(target, "SELECT count(*), count(DISTINCT name) FROM groups") == [(GROUPS, GROUPS)]
    assert read_app(target) == world["clean"]
    status = provision("status", world["manifest"], "--output", "json")
    assert status.code == 0, status.err
    for name, counts in status.json()["object_types"].items():
        assert counts["pending"] == 0 and counts["in_doubt"] == 0 and counts["failing"] == 0, (name, counts)
    return summary


def killed(world: dict, label: str, baseline: str, point: int, *args: str) -> Path:
    target = world["tmp"] / f"{label}.db"
    shutil.copy(world["tmp"] / f"{baseline}.db", target)
    if (world["tmp"] / f"{baseline}.db.state").exists():
        shutil.copy(world["tmp"] / f"{baseline}.db.state", f"{target}.state")
    result = killable(world["tmp"], world["manifest"], world["data"], target, point, *args)
    assert result.returncode == -9, f"not killed at commit {point}: {result.stderr}"
    return target


# every k-th commit across the whole run (k about a seventh of it), and the first commit of the phases
# a reconciliation adds: the target read, dropping the missing accounts' links, re-creating them
REPAIR_POINTS: list[Where] = [i / 7 for i in range(8)] + [
    "state: target read", "state: missing", "target: users add", "target: groups update"]


def test_a_reconciling_run_has_commits_in_every_phase(world):
    trace = world["repair"]
    assert len(trace) >= 30, trace
    for where in REPAIR_POINTS[8:] + ["state: export", "target: users update"]:
        assert any(seen.startswith(where) for seen in trace), (where, trace)
    assert len({at(trace, where) for where in REPAIR_POINTS}) >= 10, "at least 10 different kill points"


@pytest.mark.parametrize("where", REPAIR_POINTS, ids=named)
def test_a_reconciling_run_killed_at_any_commit_converges(world, where: Where, provision, monkeypatch):
    point = at(world["repair"], where)
    target = killed(world, f"repair-{point}", "damaged", point, "run", "--reconcile", "--output", "json")
    summary = converges(world, target, provision, monkeypatch, "--reconcile")
    if world["repair"][point - 1].startswith("target:"):  # killed before it recorded what the target took
        assert any(c.get("recovered") for c in summary.values()), summary


# a quarter of the run apart, the users' target read, the commit that ends it, the second read of the
# users (their managers resolve once every user is linked), and the commit that ends the groups' read
ADOPT_POINTS: list[Where] = [i / 4 for i in range(5)] + [("during", 1), ("after", 1), ("during", 2),
                                                         ("after", 3)]


def test_a_first_contact_after_the_state_was_lost_has_commits_while_it_links(world):
    trace = world["adopt"]
    assert not any(seen.startswith("target:") for seen in trace), "adopting writes nothing to the target"
    assert any(seen == "state: compute" for seen in trace), trace
    assert trace[at(trace, ("after", 3)) - 2] == "state: target read", "three target reads: users twice, groups"
    assert len({at(trace, where) for where in ADOPT_POINTS}) >= 7, "at least 7 different kill points"


@pytest.mark.parametrize("where", ADOPT_POINTS, ids=named)
def test_a_first_contact_after_the_state_was_lost_killed_anywhere_converges_without_duplicates(
        world, where: Where, provision, monkeypatch):
    """The next run is a plain `run`, as cron makes it: it must link what the killed one had not,
    not add it again (a duplicate group, or a user refused by the unique user_name), and report
    nothing changed, since nothing in the target had to change."""
    point = at(world["adopt"], where)
    target = killed(world, f"adopt-{point}", "stateless", point, "run", "--output", "json")
    summary = converges(world, target, provision, monkeypatch)
    for name in ("user", "group"):
        assert summary[name]["added"] == summary[name]["updated"] == summary[name]["deleted"] == 0, \
            (name, summary[name])
