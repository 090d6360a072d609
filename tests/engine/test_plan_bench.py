"""bench/plan_apply.py at a tiny size, so the benchmark is known to run (its numbers mean something
only at full size: docs/performance.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_plan_and_apply_benchmark_runs_and_reports_its_ratios(tmp_path: Path):
    out = tmp_path / "bench.json"
    done = subprocess.run([sys.executable, str(REPO / "bench" / "plan_apply.py"), "--people", "300", "--repeat", "1",
                           "--json", str(out)], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode in (0, 1), done.stderr  # 1: over budget, as startup dominates at this size
    numbers = json.loads(out.read_text())
    assert numbers["operations"] > 5 and numbers["apply_ratio"] > 0 and "plan + apply / run" in done.stdout
