"""``provision status FILE`` of a pipeline run on workers: its runs from the journal in the result
backend, queued, then finished with the worker that ran them and their counts; exit codes and
messages as operations.md says (5 for a result backend that cannot be read, its password masked)."""

from __future__ import annotations

import json
import subprocess
import sys


def status(cluster, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "runner", "status", str(cluster.manifest), *args],
                          env=env or cluster.env, cwd=cluster.folder, capture_output=True, text=True, timeout=60)


def test_status_lists_runs_queued_then_finished_with_worker_and_counts(cluster):
    sent = json.loads(cluster.submit("--output", "json").stdout)  # no worker yet: it waits in the queue

    queued = status(cluster, "--distributed", "--output", "json")
    assert queued.returncode == 0, queued.stderr
    [row] = json.loads(queued.stdout)["distributed"]["runs"]
    assert (row["task_id"], row["state"], row["trigger"], row["worker"], row["queue"]) == (
        sent["task_id"], "queued", "submit", None, cluster.env["PROVISION_QUEUE"])
    assert row["slices"] == []  # one row per slice under its run once runs fan out
    text = status(cluster, "--distributed").stdout.split("runs on workers (newest first):\n", 1)[1].splitlines()
    assert text[0].endswith(f"queued   task {sent['task_id']}  by submit")
    assert text[1] == f"      waiting in queue {cluster.env['PROVISION_QUEUE']}"

    cluster.start_worker(name="w1")
    second = cluster.submit("--wait", "--output", "json")
    assert second.returncode == 0, second.stderr

    rows = json.loads(status(cluster, "--distributed", "--output", "json").stdout)["distributed"]["runs"]
    assert [r["state"] for r in rows] == ["ok", "ok"] and rows[1]["task_id"] == sent["task_id"]
    assert all(r["worker"].startswith("w1-") and r["exit_code"] == 0 and r["attempts"] == 1 for r in rows)
    assert rows[1]["summary"]["object_types"]["user"]["added"] > 0 == rows[0]["summary"]["object_types"]["user"]["added"]
    assert rows[0]["run_id"] == json.loads(second.stdout)["run_id"] and rows[0]["pipeline"] == "quickstart"
    text = status(cluster, "--distributed").stdout
    assert f"ok       task {sent['task_id']}  by submit  on {rows[1]['worker']}" in text
    assert f"run {rows[1]['run_id']}, exit 0" in text


def test_status_without_the_distributed_mode_shows_no_runs_on_workers(cluster):
    env = {k: v for k, v in cluster.env.items() if k not in ("PROVISION_BROKER_URL", "PROVISION_RESULT_BACKEND")}
    done = status(cluster, "--output", "json", env=env)
    assert done.returncode == 0, done.stderr
    assert "distributed" not in json.loads(done.stdout)
    assert "runs on workers" not in status(cluster, env=env).stdout


def test_a_result_backend_that_cannot_be_read_exits_5_without_its_password(cluster):
    env = {**cluster.env, "PROVISION_RESULT_BACKEND": "db+postgresql+psycopg://postgres:s3cret-pw@127.0.0.1:1/x"}

    asked = status(cluster, "--distributed", "--output", "json", env=env)
    assert asked.returncode == 5, asked.stderr
    assert "cannot be reached" in asked.stderr and "s3cret-pw" not in asked.stderr + asked.stdout
    assert json.loads(asked.stdout)["exit_code"] == 5 and "Traceback" not in asked.stderr

    implied = status(cluster, env=env)  # not asked for: the rest of status, and a line saying why not
    assert implied.returncode == 0, implied.stderr
    assert "runs on workers (newest first):\n  the result backend" in implied.stdout
    assert "s3cret-pw" not in implied.stdout + implied.stderr
