"""``schedule:`` run from ``provision beat``: real RabbitMQ, PostgreSQL, worker processes and a real
celery beat process, on a clock the test moves (tests/distributed/clockbeat.py), so a
``* * * * *`` schedule fires when the test says, in a second rather than a minute.

A firing that finds the pipeline running (its previous run holds the lock) is recorded
``skipped``, exit 0, once: neither retried nor failed. A firing whose previous firing still waits
in the queue is not sent at all.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from distributed.processes import start, wait_for
from runner.distributed.client import wait
from runner.distributed.journal import Journal

T0 = "2030-01-01T00:00:30+00:00"


def set_clock(clock: Path, instant: str) -> None:
    """Move the clock in one step: beat reads the file several times a second, and a write in
    place could be read half done (an empty file)."""
    ahead = clock.with_suffix(".next")
    ahead.write_text(instant)
    os.replace(ahead, clock)


def minute(n: int) -> str:
    """Half a second past minute ``n`` of the test's clock: a ``* * * * *`` schedule is due."""
    return f"2030-01-01T00:{n:02d}:00.500000+00:00"


def scheduled(manifest: Path, schedule: str = "* * * * *") -> None:
    text = manifest.read_text(encoding="utf-8")
    manifest.write_text(text.replace("name: quickstart", f'name: quickstart\nschedule: "{schedule}"', 1),
                        encoding="utf-8")


def runs(cluster) -> list[dict]:
    return Journal(cluster.env["PROVISION_RESULT_BACKEND"]).runs(str(cluster.manifest.resolve()))


def committed(target: Path) -> bool:
    try:
        with sqlite3.connect(target) as con:
            return con.execute("SELECT count(*) FROM users").fetchone()[0] > 0
    except sqlite3.Error:
        return False


def start_beat(cluster, clock: Path, *sources: Path, rescan: str = "60s"):
    set_clock(clock, T0)
    return start(cluster, "beat", "clockbeat.py",
                 [str(clock), "beat", *map(str, sources), "--max-interval", "0.2s", "--rescan", rescan,
                  "--schedule-file", str(cluster.folder / "beat-schedule")], "beat: ready")


def test_a_firing_runs_the_pipeline_and_one_that_finds_it_running_is_skipped(cluster, tmp_path, monkeypatch):
    for name in ("PROVISION_BROKER_URL", "PROVISION_RESULT_BACKEND"):
        monkeypatch.setenv(name, cluster.env[name])
    scheduled(cluster.manifest)
    gate, clock = tmp_path / "gate", tmp_path / "clock"
    for name in ("w1", "w2"):  # whichever takes the first firing holds its run after the first commit
        start(cluster, name, "pausedworker.py", [str(gate), "worker", "--concurrency", "1", "--name", cluster.node(name)],
              " ready.")
    _, beat_log = start_beat(cluster, clock, cluster.manifest)
    assert "next firing 2030-01-01T00:01:00+00:00" in beat_log.read_text()

    set_clock(clock, minute(1))
    first = wait_for(lambda: [r for r in runs(cluster) if r["state"] == "running"], 60,
                     lambda: f"no run started: {runs(cluster)}\n{beat_log.read_text()}")[0]
    wait_for(lambda: committed(Path(cluster.env["PROVISION_TARGET"])), 60, lambda: f"no commit: {runs(cluster)}")
    set_clock(clock, minute(2))  # the next firing, while the first run holds the lock (paused after a commit)
    skipped = wait_for(lambda: [r for r in runs(cluster) if r["state"] == "skipped"], 60,
                       lambda: f"no firing skipped: {runs(cluster)}\n{beat_log.read_text()}")[0]
    gate.touch()
    done = wait_for(lambda: [r for r in runs(cluster) if r["task_id"] == first["task_id"] and r["state"] == "ok"],
                    120, lambda: f"the first run did not end: {runs(cluster)}")[0]

    assert first["trigger"] == skipped["trigger"] == "beat" and first["worker"] != skipped["worker"]
    assert skipped["exit_code"] == 0 and skipped["attempts"] == 1 and skipped["summary"] is None
    assert "is already running" in skipped["error"] and first["task_id"] in [r["task_id"] for r in runs(cluster)]
    assert done["summary"]["object_types"]["user"]["added"] > 0 and done["exit_code"] == 0
    assert wait(skipped["task_id"], timeout=10)["status"] == "skipped"  # a success in celery's terms
    assert len(runs(cluster)) == 2  # nothing retried, nothing else fired
    assert "Traceback" not in beat_log.read_text()

    status = subprocess.run([sys.executable, "-m", "runner", "status", str(cluster.manifest), "--distributed"],
                            env=cluster.env, cwd=cluster.folder, capture_output=True, text=True, timeout=60)
    assert status.returncode == 0, status.stderr
    text = status.stdout.split("runs on workers (newest first):\n", 1)[1].splitlines()
    assert f"skipped  task {skipped['task_id']}  by beat  on {skipped['worker']}" in text[0]
    assert any(f"ok       task {first['task_id']}  by beat  on {first['worker']}" in line for line in text)
    assert any(line.startswith("      user: 2000 imported, ") for line in text), text


def test_beat_reads_the_folder_again_and_sends_no_second_firing_while_the_first_waits(cluster, tmp_path):
    clock = tmp_path / "clock"
    _, beat_log = start_beat(cluster, clock, cluster.manifest.parent, rescan="1s")  # no worker reads the queue
    assert "beat: ready, 0 manifest(s) scheduled" in beat_log.read_text()

    scheduled(cluster.manifest, "*/1 * * * *")  # a manifest of the folder gets a schedule
    wait_for(lambda: "now scheduled: " + str(cluster.manifest.resolve()) in beat_log.read_text(), 90,
             lambda: beat_log.read_text())
    set_clock(clock, minute(1))
    wait_for(lambda: "beat: sent a run of" in beat_log.read_text(), 90, lambda: beat_log.read_text())
    # Beat files the entry's next firing right after sending, from the clock it reads then: moved
    # to 00:02 before that, the next firing would be 00:03 and never come. It ticks every 0.2 s.
    time.sleep(1)
    set_clock(clock, minute(2))
    wait_for(lambda: "has not started yet (no worker free); not sending another" in beat_log.read_text(), 90,
             lambda: beat_log.read_text())

    queued = runs(cluster)
    assert [(r["state"], r["trigger"], r["worker"]) for r in queued] == [("queued", "beat", None)]
    status = subprocess.run([sys.executable, "-m", "runner", "status", str(cluster.manifest), "--output", "json"],
                            env=cluster.env, cwd=cluster.folder, capture_output=True, text=True, timeout=60)
    assert status.returncode == 0, status.stderr  # shown without --distributed: PROVISION_BROKER_URL is set
    assert [r["task_id"] for r in json.loads(status.stdout)["distributed"]["runs"]] == [queued[0]["task_id"]]


def test_beat_refuses_a_wrong_schedule_at_its_line(cluster):
    scheduled(cluster.manifest, "0 6 * * 7")
    done = subprocess.run([sys.executable, "-m", "runner", "beat", str(cluster.manifest)], env=cluster.env,
                          cwd=cluster.folder, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    line = next(i for i, text in enumerate(cluster.manifest.read_text().splitlines(), 1) if text.startswith("schedule"))
    assert f"{cluster.manifest}:{line}:11: schedule: the day of the week field '7' is not valid" in done.stderr
    assert "(Sunday is 0, not 7)" in done.stderr and "Traceback" not in done.stderr


def test_a_firing_of_a_manifest_with_fan_out_runs_in_slices_on_the_workers(cluster, tmp_path):
    """``fan_out:`` in the manifest: beat's firings are cut into slices like ``submit --fan-out``,
    and each slice is listed under its run, on the workers that took it."""
    scheduled(cluster.manifest)
    text = cluster.manifest.read_text(encoding="utf-8")
    cluster.manifest.write_text(text.replace("\nschedule:", "\nfan_out: 2\nschedule:", 1), encoding="utf-8")
    for name in ("w1", "w2"):
        cluster.start_worker(name=name)
    clock = tmp_path / "clock"
    _, beat_log = start_beat(cluster, clock, cluster.manifest)

    set_clock(clock, minute(1))
    done = wait_for(lambda: [r for r in runs(cluster) if r["state"] not in ("queued", "running")], 180,
                    lambda: f"no run ended: {runs(cluster)}\n{beat_log.read_text()}")[0]

    assert done["state"] == "ok" and done["trigger"] == "beat", done
    assert done["summary"]["object_types"]["user"]["added"] > 0
    status = subprocess.run([sys.executable, "-m", "runner", "status", str(cluster.manifest), "--distributed",
                             "--output", "json"], env=cluster.env, cwd=cluster.folder, capture_output=True,
                            text=True, timeout=60)
    assert status.returncode == 0, status.stderr
    slices = json.loads(status.stdout)["distributed"]["runs"][0]["slices"]
    assert {s["kind"] for s in slices} == {"import", "scope", "map", "export"}, slices
    assert all(s["state"] == "ok" for s in slices), slices
    users_mapped = [s for s in slices if s["kind"] == "map" and s["label"].startswith("user:")]
    assert len(users_mapped) == 2, slices  # the manifest's 2 anchor ranges per sweep (2,000 people)
