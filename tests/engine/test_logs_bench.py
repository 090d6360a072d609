"""bench/logs_query.py at a tiny size, so the benchmark is known to run (its numbers mean something
only at full size: docs/performance.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_logs_benchmark_runs_and_reports_each_query(tmp_path: Path):
    out = tmp_path / "bench.json"
    done = subprocess.run([sys.executable, str(REPO / "bench" / "logs_query.py"), "--people", "500", "--entries",
                           "5000", "--repeat", "1", "--json", str(out)], capture_output=True, text=True, timeout=300,
                          cwd=REPO)
    assert done.returncode in (0, 1), done.stderr
    cases = json.loads(out.read_text())["cases"]
    assert set(cases) == {"one object (--anchor)", "failed, last 24h", "one run (--run)"}
    assert all(c["provision_ms"] > 0 for c in cases.values()) and "budget" in done.stdout
