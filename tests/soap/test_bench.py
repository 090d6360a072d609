"""bench/soap_export.py at a tiny size, so the benchmark is known to run (its numbers mean something
only at full size: docs/performance.md)."""

from __future__ import annotations

import json
import subprocess
import sys

from .world import REPO


def test_the_rest_benchmark_runs_and_reports_its_ratio(tmp_path):
    out = tmp_path / "bench.json"
    done = subprocess.run([sys.executable, str(REPO / "bench" / "soap_export.py"), "--users", "40", "--repeat", "1",
                           "--json", str(out)], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode in (0, 1), done.stderr  # 1: over budget, as startup dominates at this size
    numbers = json.loads(out.read_text())
    assert numbers["count"] > 30 and numbers["ratio"] > 0 and "ratio" in done.stdout
