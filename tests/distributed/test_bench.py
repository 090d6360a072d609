"""bench/distributed.py at a tiny size with both parts, so the benchmark of issue 26 is known to run,
to write every row and to stop every worker it started. Its ratios mean something only at full
size (docs/distributed.md); the budget is not asserted: timings belong to benches, not to tests."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
POSTGRESQL = os.environ.get("PROVISION_TEST_POSTGRESQL_URL", "postgresql+psycopg://postgres@127.0.0.1:5432")


def test_the_distributed_benchmark_writes_every_row_and_stops_its_workers(broker: str, tmp_path: Path) -> None:
    out = tmp_path / "distributed.json"
    command = [sys.executable, str(REPO / "bench" / "distributed.py"), "--people", "300", "--pipelines", "3",
               "--pipeline-people", "200", "--workers", "1,2", "--repeat", "1", "--settle", "0.2",
               "--broker", broker, "--postgresql", POSTGRESQL, "--json", str(out)]
    bench = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)
    try:
        stdout, stderr = bench.communicate(timeout=300)
    finally:
        if bench.poll() is None:  # SIGTERM: the bench stops its workers on the way out
            os.killpg(bench.pid, signal.SIGTERM)
            try:
                bench.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(bench.pid, signal.SIGKILL)
                bench.communicate()
    assert bench.returncode in (0, 1), stdout + stderr  # 1: the budget missed, as start-up dominates here

    report = json.loads(out.read_text())
    rows = report["rows"]
    shape = sorted((r["part"], r["kind"], r["facts"].get("workers", 0), r["facts"].get("machines", 0)) for r in rows)
    assert shape == sorted([(1, "ratio", 0, 0), (1, "seconds", 0, 0), (2, "speed-up", 1, 0), (2, "speed-up", 2, 0),
                            *((2, "speed-up", 0, n) for n in (1, 2, 4, 8)),
                            (3, "ratio", 1, 0), (3, "speed-up", 2, 0),
                            *((3, "speed-up", 0, n) for n in (1, 2, 4, 8))]), [r["what"] for r in rows]
    for r in rows:
        assert r["seconds"] and all(math.isfinite(s) and s > 0 for s in r["seconds"]), r["what"]
        if r["kind"] != "seconds":
            assert r["baseline_seconds"] and all(s > 0 for s in r["baseline_seconds"]), r["what"]
            assert math.isfinite(r["value"]) and r["value"] > 0 and r["value_min"] > 0, r["what"]
    overhead = next(r for r in rows if r["kind"] == "ratio")
    assert overhead["budget"] == 1.3 and overhead["met"] in (True, False)
    assert overhead["peak_rss_mb"] > 0 and overhead["baseline_peak_rss_mb"] > 0
    assert sorted(overhead["facts"]["breakdown"]) == ["lead", "provision_run", "provision_run_run", "tail",
                                                      "task", "task_run"]
    for r in rows:
        if r["part"] == 3 and not r["estimated"]:  # one run, cut into slices, listed under it in the journal
            assert all(n > 3 for n in r["facts"]["slices"]), r["facts"]["slices"]
            continue
        if r["kind"] == "speed-up" and not r["estimated"]:  # every pipeline a task of its own, run once
            tasks = r["facts"]["rounds"][0]["tasks"]
            assert len(tasks) == 3 and all(t["attempts"] == 1 and t["duration"] > 0 for t in tasks), tasks
            assert len({t["worker"] for t in tasks}) <= r["facts"]["workers"]
    assert "worker already started and idle" in stdout and "estimated" in stdout
    assert "| part | what |" in stdout and "load average" in stdout

    assert report["worker_pids"] and len(report["worker_pids"]) == 7  # 1 in part 1; 1, then 2 in parts 2 and 3
    for pid in report["worker_pids"]:  # each stopped with its process group
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            continue
        raise AssertionError(f"worker {pid}'s process group is still alive")
