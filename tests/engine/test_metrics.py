"""--metrics-file: Prometheus textfile metrics that promtool accepts, with the numbers of the run."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from conftest import QUICKSTART


def samples(text: str) -> dict[str, float]:
    return {m.group(1): float(m.group(2)) for m in re.finditer(r"^(\S+\{[^}]*\}) (\S+)$", text, re.M)}


def promtool(path: Path) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("promtool")
    assert tool, "promtool is missing: scripts/test installs Debian's prometheus package"
    return subprocess.run([tool, "check", "metrics"], input=path.read_text(), capture_output=True, text=True)


def test_metrics_after_a_good_run_and_after_one_the_guard_stopped(quickstart_env, provision, tmp_path: Path):
    data = quickstart_env(200, 20)
    metrics = tmp_path / "textfile" / "provision.prom"
    first = provision("run", QUICKSTART, "--metrics-file", metrics, "--output", "json")
    assert first.code == 0
    checked = promtool(metrics)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    found = samples(metrics.read_text())
    assert found['provision_last_run_status{pipeline="quickstart",status="ok"}'] == 1
    assert found['provision_last_run_objects{pipeline="quickstart",object_type="user",action="added"}'] == 190
    assert found['provision_pending_exports{pipeline="quickstart",object_type="user"}'] == 0
    success = found['provision_last_success_timestamp_seconds{pipeline="quickstart"}']

    lines = (data / "people.csv").read_text().splitlines(keepends=True)
    (data / "people.csv").write_text(lines[0] + "".join(lines[31:]))  # 30 people gone: the guard holds
    held = provision("run", QUICKSTART, "--metrics-file", metrics, "--output", "json")
    assert held.code == 3
    checked = promtool(metrics)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    found = samples(metrics.read_text())
    assert found['provision_last_run_status{pipeline="quickstart",status="stopped"}'] == 1
    assert found['provision_last_run_status{pipeline="quickstart",status="ok"}'] == 0
    count = held.json()["object_types"]["user"]["held"]
    assert found['provision_held_exports{pipeline="quickstart",object_type="user"}'] == count > 0
    assert found['provision_pending_exports{pipeline="quickstart",object_type="user"}'] >= count
    assert found['provision_last_success_timestamp_seconds{pipeline="quickstart"}'] == success
    assert found['provision_quarantined{pipeline="quickstart"}'] == 0
    assert found['provision_oldest_pending_age_seconds{pipeline="quickstart",object_type="user"}'] >= 0
    assert found['provision_oldest_pending_age_seconds{pipeline="quickstart",object_type="group"}'] == 0
    assert not list(metrics.parent.glob(".provision.prom.*")), "no temporary file left behind"
