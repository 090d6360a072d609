"""A worker killed with SIGKILL in the middle of a run (its whole process group, as when its
host is lost) loses nothing: the run was never acknowledged, RabbitMQ redelivers it when the dead
worker's connection closes, a second worker takes it, takes the dead run's lock over and settles
what was in flight; the target ends exactly as an uninterrupted run leaves it."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest
from conftest import read_app

from distributed.reference import counts, single_process_run


@pytest.mark.parametrize("commit", [3, 12])  # of the run's 16 target commits: early, and late in the users
def test_a_run_whose_worker_is_killed_converges_on_another_worker(cluster, tmp_path, commit):
    reference_summary, reference_target = single_process_run(cluster, tmp_path)
    doomed, doomed_log = cluster.start_worker(kill_at=commit, name="doomed")
    waiting = cluster.submit_async("--wait", "--output", "json")
    deadline = time.monotonic() + 120
    while doomed.poll() is None:  # it takes the run, and dies at the commit
        assert waiting.poll() is None and time.monotonic() < deadline, doomed_log.read_text()
        time.sleep(0.1)
    assert f"killing the worker after commit {commit}" in doomed_log.read_text()

    _, rescuer_log = cluster.start_worker(name="rescuer")
    out, err = waiting.communicate(timeout=180)

    assert waiting.returncode == 0, err
    summary = json.loads(out)
    assert summary["status"] == "ok"
    rescued = rescuer_log.read_text()
    assert "redelivered to rescuer" in rescued and "took over the lock of a run that is no longer alive" in rescued
    assert counts(summary)["user"]["recovered"] > 0  # the dead attempt's in-flight batch, settled first
    target = Path(cluster.env["PROVISION_TARGET"])
    assert read_app(target) == reference_target  # nothing lost, nothing different
    with sqlite3.connect(target) as con:  # and nothing twice
        assert con.execute("SELECT count(*) FROM users").fetchone()[0] == len(reference_target["users"])
        assert con.execute("SELECT count(*) FROM groups").fetchone()[0] == len(reference_target["groups"])

    again = cluster.submit("--wait", "--output", "json")  # converged: the next run has nothing to do
    assert again.returncode == 0, again.stderr
    for name, c in counts(json.loads(again.stdout)).items():
        assert c["added"] == c["updated"] == c["deleted"] == c["failed"] == 0, (name, c)
    assert counts(reference_summary)["user"]["added"] == len(reference_target["users"])
