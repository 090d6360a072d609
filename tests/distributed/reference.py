"""The yardstick of the distributed tests: ``provision run`` of the same data in one process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from conftest import read_app

REPO = Path(__file__).resolve().parents[2]


def single_process_run(cluster: Any, tmp_path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """``provision run`` of the shipped quickstart (its own SQLite state) on the cluster's data:
    its summary and the target it leaves."""
    env = {**cluster.env, "PROVISION_TARGET": str(tmp_path / "reference.db")}
    done = subprocess.run([sys.executable, "-m", "runner", "run", str(REPO / "manifests/quickstart.yaml"),
                           "--output", "json"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), read_app(tmp_path / "reference.db")


def counts(summary: dict[str, Any]) -> dict[str, Any]:
    return summary["object_types"]
