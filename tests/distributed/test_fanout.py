"""A run fanned out into slices (``provision submit --fan-out``) over several worker processes,
with real RabbitMQ and PostgreSQL (some cases on MariaDB too): the target and the state end as a
single-process ``provision run`` of the same data leaves them, object by object, with the same
counts; a worker killed with SIGKILL in the middle of an import, a compute or an export slice, or
the one running the coordinator, loses nothing, and the run still converges exactly, counts
included; a SQLite state store is refused."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import read_app

from distributed.processes import start, wait_for
from distributed.reference import counts, single_process_run
from runner import sampledata

REPO = Path(__file__).resolve().parents[2]


def state_view(url: str, target: Path) -> dict[str, Any]:
    """The state's links, each named by the target object it points at (user_name, group name:
    the target's generated ids differ between two targets), with its live flag; and what is left
    pending or dirty (nothing, after a run that went well)."""
    con = sqlite3.connect(target)
    names = {"user": {str(i): n for i, n in con.execute("SELECT id, user_name FROM users")},
             "group": {str(i): n for i, n in con.execute("SELECT id, name FROM groups")}}
    con.close()
    engine = sa.create_engine(url)
    with engine.connect() as c:
        types = dict(c.execute(sa.text("SELECT id, name FROM object_types")).all())
        links = {(types[t], a): (names[types[t]].get(str(ta), "not in the target"), bool(live))
                 for t, a, ta, live in c.execute(sa.text("SELECT type_id, source_anchor, target_anchor, live FROM links"))}
        pending = c.execute(sa.text("SELECT count(*) FROM pending_exports")).scalar()
        in_flight = c.execute(sa.text("SELECT count(*) FROM pending_exports WHERE sent_run IS NOT NULL")).scalar()
        dirty = c.execute(sa.text("SELECT count(*) FROM source_objects WHERE dirty")).scalar()
    engine.dispose()
    return {"links": links, "pending": pending, "in_flight": in_flight, "dirty": dirty}


def assert_same_state(found: dict[str, Any], expected: dict[str, Any]) -> None:
    """Equal, or the first differing links named."""
    differ = sorted(k for k in found["links"].keys() | expected["links"].keys()
                    if found["links"].get(k) != expected["links"].get(k))
    assert not differ, [(k, found["links"].get(k), expected["links"].get(k)) for k in differ[:10]]
    assert found == expected


def reference_state(tmp_path: Path) -> dict[str, Any]:
    return state_view(f"sqlite:///{tmp_path / 'reference.db.state'}", tmp_path / "reference.db")


def fanned_out_state(cluster: Any) -> dict[str, Any]:
    return state_view(cluster.env["PROVISION_STATE_URL"], Path(cluster.env["PROVISION_TARGET"]))


def submit_fanned_out(cluster: Any, timeout: float = 600) -> dict[str, Any]:
    done = cluster.submit("--fan-out", "--wait", "--output", "json", timeout=timeout)
    assert done.returncode == 0, done.stderr + done.stdout
    return json.loads(done.stdout)


def provision_status(cluster: Any) -> dict[str, Any]:
    """``provision status --distributed --output json``, as a user types it."""
    done = subprocess.run([sys.executable, "-m", "runner", "status", str(cluster.manifest), "--distributed",
                           "--output", "json"], env=cluster.env, cwd=cluster.folder, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def journal_slices(cluster: Any) -> list[dict[str, Any]]:
    """The slices of the newest run, as ``provision status --output json`` lists them."""
    return provision_status(cluster)["distributed"]["runs"][0]["slices"]


def assert_counts_as_a_single_run(cluster: Any, summary: dict[str, Any], reference: dict[str, Any]) -> None:
    """The counts ``submit --wait`` printed, and those ``provision status`` shows for the run (the
    state's recent runs, the workers' journal), equal those of the single-process run, per type."""
    assert counts(summary) == counts(reference)
    status = provision_status(cluster)
    kept = status["runs"][0]["summary"]["object_types"]  # with the slowest operations, for the run report
    assert {name: {k: v for k, v in c.items() if k != "slowest"} for name, c in kept.items()} == counts(reference)
    assert status["distributed"]["runs"][0]["summary"]["object_types"] == counts(reference)


@pytest.mark.parametrize(("state_server", "people"), [("postgresql", 20000), ("mariadb", 6000)])
def test_an_initial_and_delta_run_on_3_workers_equal_a_single_process_run(cluster, tmp_path, people):
    """20,000 people with the state in PostgreSQL; 6,000 in MariaDB (still 4 compute ranges per
    sweep and several export batches in a phase)."""
    data = tmp_path / "data"
    sampledata.make(data, people, people // 50, 11)
    cluster.env["PROVISION_DATA"] = str(data)
    for name in ("w1", "w2", "w3"):
        cluster.start_worker(name=name)

    reference_summary, reference_target = single_process_run(cluster, tmp_path)
    summary = submit_fanned_out(cluster)
    assert summary["status"] == "ok"
    assert counts(summary) == counts(reference_summary)
    assert read_app(Path(cluster.env["PROVISION_TARGET"])) == reference_target
    assert_same_state(fanned_out_state(cluster), reference_state(tmp_path))
    slices = journal_slices(cluster)  # status lists each slice under its run, on the workers that took them
    assert {s["kind"] for s in slices} == {"import", "scope", "map", "export"}
    assert all(s["state"] == "ok" for s in slices), slices
    assert len({s["worker"] for s in slices}) >= 2
    per_phase = Counter((s["kind"], s["label"].rsplit("(phase ", 1)[1]) for s in slices)
    for kind in ("scope", "map", "export"):  # phases cut into several slices
        assert max(n for (k, _), n in per_phase.items() if k == kind) >= 2, (kind, per_phase)

    subprocess.run([sys.executable, "-m", "runner.sampledata", "mutate", "--out", str(data), "--seed", "5",
                    "--percent", "5"], check=True, capture_output=True, timeout=120)
    reference_summary, reference_target = single_process_run(cluster, tmp_path)
    summary = submit_fanned_out(cluster)
    assert summary["status"] == "ok"
    delta = counts(reference_summary)["user"]
    assert delta["updated"] > 0 and delta["added"] > 0 and (delta["deleted"] + delta["disabled"]) > 0, delta
    assert counts(summary) == counts(reference_summary)
    assert read_app(Path(cluster.env["PROVISION_TARGET"])) == reference_target
    assert_same_state(fanned_out_state(cluster), reference_state(tmp_path))


@pytest.mark.parametrize(("point", "n", "state_server"), [
    ("import", 2, "postgresql"), ("scope", 1, "postgresql"), ("map", 1, "postgresql"), ("export", 2, "postgresql"),
    ("export", 2, "mariadb")])
def test_a_worker_killed_mid_slice_loses_nothing(cluster, tmp_path, point, n):
    """The coordinator runs on a worker of its own (it waits; it takes no slices); the doomed worker
    is the only one reading the slices' queue until it dies mid-slice; a rescuer then takes the
    redelivered slice and the run goes on. The counts are those of a run nobody killed: the
    redelivered slice starts from those its dead attempt committed with its work."""
    reference_summary, reference_target = single_process_run(cluster, tmp_path)
    cluster.start_worker(name="coordinator", queues="runs")
    doomed, doomed_log = cluster.start_worker(name="doomed", queues="slices", kill_slice=(point, n))
    waiting = cluster.submit_async("--fan-out", "--wait", "--output", "json")
    deadline = time.monotonic() + 180
    while doomed.poll() is None:
        assert waiting.poll() is None and time.monotonic() < deadline, doomed_log.read_text()[-3000:]
        time.sleep(0.1)
    assert f"killing the worker at {point} {n}" in doomed_log.read_text()

    _, rescuer_log = cluster.start_worker(name="rescuer", queues="slices")
    out, err = waiting.communicate(timeout=300)
    assert waiting.returncode == 0, err + out
    summary = json.loads(out)
    assert summary["status"] == "ok"
    rescued = rescuer_log.read_text()
    assert "redelivered to rescuer" in rescued
    target = Path(cluster.env["PROVISION_TARGET"])
    assert read_app(target) == reference_target  # nothing lost, nothing different
    with sqlite3.connect(target) as con:  # and nothing twice
        assert con.execute("SELECT count(*) FROM users").fetchone()[0] == len(reference_target["users"])
        assert con.execute("SELECT count(*) FROM groups").fetchone()[0] == len(reference_target["groups"])
    assert_same_state(fanned_out_state(cluster), reference_state(tmp_path))
    assert_counts_as_a_single_run(cluster, summary, reference_summary)
    if point == "export":  # the dead attempt's operations were settled against the target, not sent twice
        assert "exports a dead attempt of this slice left in flight; settling them" in rescued
    slices = journal_slices(cluster)
    assert any(s["attempts"] == 2 and s["worker"].startswith("rescuer") for s in slices), slices

    again = submit_fanned_out(cluster)  # converged: the next run has nothing to do
    for name, c in counts(again).items():
        assert c["added"] == c["updated"] == c["deleted"] == c["failed"] == 0, (name, c)


@pytest.mark.parametrize("state_server", ["postgresql", "mariadb"])
def test_a_coordinator_killed_mid_run_is_taken_over_and_the_run_converges(cluster, tmp_path):
    """The worker running the coordinator dies (SIGKILL, its process group) a second after it sent
    the users' first round of export slices, while a second worker is in the middle of one of them
    (held after its first commit to the target, its results not recorded). The run is
    redelivered; the new coordinator takes the dead run's lock over and waits for the dead run's
    slice still running, which stops at its next commit (fenced: the lock is taken) with nothing
    more written; then it settles what that slice sent as the run's own, and runs the pipeline to
    the same end as a single-process run, with the same counts (what the dead attempt committed
    stands, what it left in flight counts once)."""
    reference_summary, reference_target = single_process_run(cluster, tmp_path)
    doomed, doomed_log = cluster.start_worker(name="doomed", kill_slice=("coordinator", 4))
    gate = tmp_path / "gate"
    start(cluster, "slicer", "pausedworker.py", [str(gate), "worker", "--concurrency", "1", "--name",
                                                 cluster.node("slicer"), "--queues",
                                                 cluster.env["PROVISION_QUEUE"] + ".slices"], " ready.")
    waiting = cluster.submit_async("--fan-out", "--wait", "--output", "json")
    deadline = time.monotonic() + 180
    while doomed.poll() is None:
        assert waiting.poll() is None and time.monotonic() < deadline, doomed_log.read_text()[-3000:]
        time.sleep(0.1)
    assert "killing the worker at coordinator 4" in doomed_log.read_text()

    _, rescuer_log = cluster.start_worker(name="rescuer")
    wait_for(lambda: "took over the lock of a run that is no longer alive" in rescuer_log.read_text(), 120,
             lambda: rescuer_log.read_text()[-3000:])
    gate.touch()  # the dead run's slice goes on, and meets the fence at its next commit
    out, err = waiting.communicate(timeout=300)
    assert waiting.returncode == 0, err + out
    summary = json.loads(out)
    assert summary["status"] == "ok"
    rescued = rescuer_log.read_text()
    assert "redelivered to rescuer" in rescued
    assert "exports a dead attempt of this run left in flight; settling them" in rescued
    assert any(s["state"] == "stopped" for s in journal_slices(cluster))
    target = Path(cluster.env["PROVISION_TARGET"])
    assert read_app(target) == reference_target
    with sqlite3.connect(target) as con:
        assert con.execute("SELECT count(*) FROM users").fetchone()[0] == len(reference_target["users"])
    assert_same_state(fanned_out_state(cluster), reference_state(tmp_path))
    assert_counts_as_a_single_run(cluster, summary, reference_summary)
    again = submit_fanned_out(cluster)
    for name, c in counts(again).items():
        assert c["added"] == c["updated"] == c["deleted"] == c["failed"] == 0, (name, c)


def test_a_run_with_a_sqlite_state_store_is_refused_with_what_to_do(cluster, tmp_path):
    """A SQLite file is one machine's, and slices run on any worker: the run is refused (exit 2),
    saying to run it with ``provision run``, before it starts (the store is not even opened)."""
    state = tmp_path / "state.db"
    cluster.env["PROVISION_STATE_URL"] = f"sqlite:///{state}"
    cluster.start_worker()
    done = cluster.submit("--fan-out", "--wait", "--output", "json")
    assert done.returncode == 2, done.stderr + done.stdout
    error = json.loads(done.stdout)["error"]
    assert error == ("a run of 'quickstart' cannot fan out: its state store is a SQLite file, one machine's, and "
                     "slices run on any worker; run it on that machine with `provision run`, or put the state store "
                     "in PostgreSQL or MariaDB")
    assert not state.exists() and not Path(cluster.env["PROVISION_TARGET"]).exists()
