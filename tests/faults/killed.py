"""Runs of ``provision`` killed at a chosen point (``killpoint.py``), for the kill tests of every connector."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
KILLPOINT = REPO / "tests" / "faults" / "killpoint.py"


def killed_run(manifest: Path, env: Mapping[str, str], point: int,
               command: tuple[str, ...] = ("run",)) -> subprocess.CompletedProcess[str]:
    """``provision run MANIFEST --output json`` SIGKILLed right after the target's ``point``-th write
    (0: never; its stderr then ends with ``commits: N``). ``command``: another one, such as
    ``("apply",)`` with a saved plan as ``manifest``."""
    return subprocess.run([sys.executable, str(KILLPOINT), str(point), "KILL", *command, str(manifest), "--output",
                           "json"], capture_output=True, text=True, env=os.environ | dict(env), timeout=120, cwd=REPO)


def spread(total: int, count: int) -> list[int]:
    """``count`` kill points from the first write to the last."""
    return sorted({1 + round(i * (total - 1) / (count - 1)) for i in range(count)})


def converges(provision: Callable[..., Any], monkeypatch: Any, manifest: Path, env: Mapping[str, str],
              held: Callable[[], Any], expected: Any) -> dict[str, Any]:
    """The run after a killed one, with ``env``: it succeeds with nothing failed, the target then
    holds ``expected`` (``held()`` reads it), and one more run changes nothing. Its summary."""
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    rerun = provision("run", manifest, "--output", "json")
    assert rerun.code == 0, rerun.err + rerun.out
    assert all(c["failed"] == 0 for c in json.loads(rerun.out)["object_types"].values()), rerun.out
    assert held() == expected
    again = provision("run", manifest, "--output", "json")
    counts = json.loads(again.out)["object_types"]
    assert all(c["added"] + c["updated"] + c["deleted"] + c["disabled"] == 0 for c in counts.values()), counts
    return json.loads(rerun.out)
