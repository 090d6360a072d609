"""``provision submit``: a run taken by a worker is the run ``provision run`` would have made,
and ``submit --wait`` ends as ``run`` does (summary, --output json, exit code)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import read_app

from distributed.processes import start
from distributed.reference import counts, single_process_run

REPO = Path(__file__).resolve().parents[2]


def test_a_submitted_run_makes_the_target_and_summary_run_makes(cluster, tmp_path):
    reference_summary, reference_target = single_process_run(cluster, tmp_path)
    cluster.start_worker()

    done = cluster.submit("--wait", "--output", "json")

    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["pipeline"] == "quickstart" and summary["status"] == "ok"
    assert len(summary["task_id"]) == 36 and summary["worker"].startswith("w1-")  # which task, where it ran
    assert counts(summary) == counts(reference_summary)
    assert read_app(Path(cluster.env["PROVISION_TARGET"])) == reference_target

    again = cluster.submit("--wait")  # the text summary, as run prints it: nothing left to do
    assert again.returncode == 0, again.stderr
    lines = again.stdout.splitlines()
    assert lines[0].startswith("run ") and " of quickstart: ok in " in lines[0]
    assert lines[1] == ("  user: 2000 imported, 0 added, 0 updated, 0 renamed, 0 disabled, 0 deleted, "
                        f"{counts(reference_summary)['user']['added']} unchanged, 0 failed; "
                        f"{counts(reference_summary)['user']['out_of_scope']} out of scope")


def test_submit_without_wait_prints_the_task_id_and_the_run_happens(cluster, tmp_path):
    done = cluster.submit("--output", "json")  # no worker yet: the run waits in the queue

    assert done.returncode == 0, done.stderr
    sent = json.loads(done.stdout)
    assert sent["status"] == "submitted" and sent["queue"] == cluster.env["PROVISION_QUEUE"]
    assert len(sent["task_id"]) == 36 and sent["manifest"] == str(cluster.manifest)
    cluster.start_worker()
    later = cluster.submit("--wait", "--output", "json")  # queued behind the first: it finds nothing to do
    assert later.returncode == 0, later.stderr
    assert counts(json.loads(later.stdout))["user"]["added"] == 0
    assert len(read_app(Path(cluster.env["PROVISION_TARGET"]))["users"]) == 2000 - counts(
        json.loads(later.stdout))["user"]["out_of_scope"]


def test_an_invalid_manifest_exits_2_naming_the_file_and_line(cluster):
    text = cluster.manifest.read_text(encoding="utf-8")
    cluster.manifest.write_text(text.replace("name: quickstart", "name: quickstart\nnot_a_key: 1", 1),
                                encoding="utf-8")
    cluster.start_worker()

    done = cluster.submit("--wait", "--output", "json")

    assert done.returncode == 2, done.stderr
    out = json.loads(done.stdout)
    assert out["exit_code"] == 2 and out["error"] == "invalid manifest"
    assert any(p["path"].endswith("not_a_key") or "not_a_key" in p["message"] for p in out["problems"])
    assert f"{cluster.manifest}:" in done.stderr and "Traceback" not in done.stderr


def test_waiting_past_the_timeout_exits_3_and_the_run_stays_queued(cluster):
    done = cluster.submit("--wait", "--timeout", "2s")  # no worker reads this queue

    assert done.returncode == 3
    assert "has not ended after 2 s (pending); it goes on" in done.stderr
    assert "Traceback" not in done.stderr


def test_an_unreachable_broker_exits_5_without_its_password(cluster):
    cluster.env["PROVISION_BROKER_URL"] = "amqp://guest:s3cret-pw@127.0.0.1:1//"

    done = cluster.submit("--output", "json")

    assert done.returncode == 5
    assert "cannot be reached" in done.stderr and "s3cret-pw" not in done.stderr + done.stdout
    assert json.loads(done.stdout)["exit_code"] == 5


def test_without_the_extra_the_message_says_what_to_install(tmp_path):
    code = ("import sys; sys.modules['celery'] = None\n"
            "from runner import cli; sys.exit(cli.main(['worker']))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 2
    assert "pip install 'provision[distributed]'" in done.stderr and "Traceback" not in done.stderr


def test_a_bug_on_the_worker_ends_the_run_as_failed_not_running_forever(cluster):
    """A defect (here a connector raising what no connector should) fails the run: submit --wait
    says so and exits 1, and the journal that provision status reads shows the run ended, with
    the error, rather than a run "running" for ever."""
    start(cluster, "buggy", "buggyworker.py", ["worker", "--concurrency", "1", "--name", cluster.node("buggy")],
          " ready.")

    done = cluster.submit("--wait", "--output", "json")

    assert done.returncode == 1, done.stdout + done.stderr
    error = json.loads(done.stdout)["error"]
    assert "internal error on the worker" in error and "ZeroDivisionError: injected connector defect" in error
    status = subprocess.run([sys.executable, "-m", "runner", "status", str(cluster.manifest), "--distributed",
                             "--output", "json"], env=cluster.env, cwd=cluster.folder, capture_output=True,
                            text=True, timeout=60)
    assert status.returncode == 0, status.stderr
    run = json.loads(status.stdout)["distributed"]["runs"][0]
    assert run["state"] not in ("queued", "running") and run["exit_code"] == 1, run
    assert "ZeroDivisionError: injected connector defect" in run["error"]


def test_waiting_on_a_run_revoked_before_it_started_exits_3_saying_so(cluster, tmp_path, monkeypatch):
    """A run an operator revokes (``celery control revoke``) while it waits in the queue never
    ends by itself: submit --wait must not wait for ever, and says what happened."""
    for name in ("PROVISION_BROKER_URL", "PROVISION_RESULT_BACKEND"):
        monkeypatch.setenv(name, cluster.env[name])
    gate = tmp_path / "gate"
    start(cluster, "busy", "pausedworker.py", [str(gate), "worker", "--concurrency", "1", "--name",
                                               cluster.node("busy")], " ready.")
    first = cluster.submit("--output", "json")  # holds the only worker after its first commit
    assert first.returncode == 0, first.stderr
    waiting = cluster.submit_async("--wait")
    line = waiting.stderr.readline()
    assert "submitted as task " in line, line
    task_id = line.split("submitted as task ", 1)[1].split(";", 1)[0]

    from runner.distributed.app import make_app

    make_app().control.revoke(task_id)
    gate.touch()
    out, err = waiting.communicate(timeout=180)

    assert waiting.returncode == 3, out + err
    assert f"run {task_id} was revoked" in err
