"""Runs of ``provision`` killed at a chosen point (``killpoint.py``), for the kill tests of every connector."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
KILLPOINT = REPO / "tests" / "faults" / "killpoint.py"


def killed_run(manifest: Path, env: Mapping[str, str], point: int) -> subprocess.CompletedProcess[str]:
    """``provision run MANIFEST --output json`` SIGKILLed right after the target's ``point``-th write
    (0: never; its stderr then ends with ``commits: N``)."""
    return subprocess.run([sys.executable, str(KILLPOINT), str(point), "KILL", "run", str(manifest), "--output", "json"],
                          capture_output=True, text=True, env=os.environ | dict(env), timeout=120, cwd=REPO)


def spread(total: int, count: int) -> list[int]:
    """``count`` kill points from the first write to the last."""
    return sorted({1 + round(i * (total - 1) / (count - 1)) for i in range(count)})
