"""bench/serve.py at a tiny size, so the benchmark is known to run and to check what it claims (its
numbers mean something only at full size: docs/performance.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_serve_benchmark_reports_both_servers_and_checks_the_target(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = subprocess.run([sys.executable, str(REPO / "bench" / "serve.py"), "--users", "20", "--clients", "4",
                           "--json", str(out)], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    numbers = json.loads(out.read_text())
    assert numbers["correct"] is True and numbers["problems"] == []
    for server in ("provision", "scim2-server"):
        for phase in ("POST", "PATCH"):
            n = numbers["servers"][server][phase]
            assert n["requests"] == 20 and n["failed"] == 0, (server, phase, n)
            assert n["requests_per_second"] > 0 and 0 < n["p50_ms"] <= n["p99_ms"], (server, phase, n)
            assert "server_cpu_ms_per_request" in n and "p50_last_tenth_ms" in n, n
    assert all(numbers["ratio"][phase]["requests_per_second"] > 0 for phase in ("POST", "PATCH"))
    assert "ratio" in done.stdout and "every request 2xx" in done.stdout
