"""What the distributed mode adds to a manifest, as ``provision validate`` and ``provision run`` judge it:
``schedule:`` (cron, read by celery's crontab parser) refused at its line with what to write, and a
connector's ``budget:``, refused without Redis's client, and a budget store that cannot be reached
stopping the run with exit 5 and no password shown. No broker or worker is needed here."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from runner.manifest import cron

REPO = Path(__file__).resolve().parents[2]
WITHOUT = ("import sys\n"
           "for name in sys.argv[1].split(','):\n"
           "    if name: sys.modules[name] = None  # import name fails, as when the package is not installed\n"
           "from runner.cli import main\n"
           "raise SystemExit(main(sys.argv[2:]))\n")


def provision(*args: str | Path, without: str = "", env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", WITHOUT, without, *map(str, args)], capture_output=True, text=True,
                          timeout=120, cwd=REPO, env=env)


def quickstart(tmp_path: Path, schedule: str) -> tuple[Path, int]:
    """The quickstart with ``schedule:`` (as YAML text) on its own line; that line's number."""
    if not (tmp_path / "manifests").exists():
        shutil.copytree(REPO / "manifests", tmp_path / "manifests", ignore=shutil.ignore_patterns("out", ".provision"))
        shutil.copytree(REPO / "mappings", tmp_path / "mappings")
    text = (REPO / "manifests" / "quickstart.yaml").read_text(encoding="utf-8")
    text = text.replace("name: quickstart", f"name: quickstart\nschedule: {schedule}", 1)
    path = tmp_path / "manifests" / "quickstart.yaml"
    path.write_text(text, encoding="utf-8")
    return path, next(i for i, line in enumerate(text.splitlines(), 1) if line.startswith("schedule:"))


@pytest.mark.parametrize(("schedule", "why"), [
    ('"61 * * * *"', "the minute field '61' is not valid (Invalid end range: 61 > 59)"),
    ('"0 6 * * 7"', "(Sunday is 0, not 7)"),
    ('"* * * *"', "'* * * *' has 4 fields, not 5"),
    ('"0 * * * * *"', "has 6 fields, not 5 (no seconds field and no year"),
    ('"0 6 1 * 1"', "restricts both the day of the month (1) and the day of the week (1)"),
    ('"0 0 30 2 *"', "day_of_month '30' never occurs in month_of_year '2'"),
    ('"0 jan * * *"', "the hour field 'jan' is not a number (0-23)"),
    ('"@fortnightly"', "'@fortnightly' is not a schedule celery beat knows"),
])
def test_validate_refuses_a_wrong_schedule_at_its_line_with_what_to_write(tmp_path, schedule, why):
    path, line = quickstart(tmp_path, schedule)
    done = provision("validate", path, "--output", "json")
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"{path}:{line}:11: schedule: " in done.stderr and why in done.stderr, done.stderr
    advice = "keep one of them '*'" if "restricts both" in why else "write five fields, minute (0-59) hour (0-23)"
    assert advice in done.stderr and "Traceback" not in done.stderr
    [problem] = json.loads(done.stdout)["files"][0]["problems"]
    assert (problem["line"], problem["path"]) == (line, "schedule")


@pytest.mark.parametrize("schedule", ['"30 6 * * 1-5"', '"*/15 * * * *"', '"0 3 * * sun"', "'@daily'", '"0 0 1 */3 *"'])
def test_validate_accepts_a_schedule_celery_beat_can_fire(tmp_path, schedule):
    path, _ = quickstart(tmp_path, schedule)
    done = provision("validate", path)
    assert done.returncode == 0, done.stderr


def test_validate_refuses_fan_out_on_a_sqlite_state_at_its_line(tmp_path):
    """A run fans out over workers that share its state store: a SQLite file cannot be shared, and
    validate says so where fan_out: is written, not the first worker that takes a firing."""
    path, _ = quickstart(tmp_path, '"0 6 * * *"')
    text = path.read_text(encoding="utf-8").replace("\nschedule:", "\nfan_out: 4\nschedule:", 1)
    path.write_text(text, encoding="utf-8")
    line = next(i for i, row in enumerate(text.splitlines(), 1) if row.startswith("fan_out:"))
    done = provision("validate", path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"{path}:{line}:10: fan_out: " in done.stderr and "SQLite" in done.stderr, done.stderr
    path.write_text(text.replace("\nfan_out: 4", "\nfan_out: false"), encoding="utf-8")
    assert provision("validate", path).returncode == 0


def test_the_schedule_is_celerys_crontab():
    from celery.schedules import crontab

    assert cron.crontab("30 6 * * 1-5") == crontab(minute="30", hour="6", day_of_week="1-5")
    assert cron.crontab("@hourly") == crontab(minute="0")


def test_without_celery_a_schedule_is_checked_for_its_shape_and_run_needs_no_celery(tmp_path):
    path, line = quickstart(tmp_path, '"30 6 * * 1-5"')
    assert provision("validate", path, without="celery").returncode == 0
    wrong, line = quickstart(tmp_path, '"* * * *"')
    done = provision("validate", wrong, without="celery")
    assert done.returncode == 2 and f"{wrong}:{line}:11: schedule: '* * * *' has 4 fields" in done.stderr


def scim_pipeline(tmp_path: Path) -> Path:
    text = (REPO / "manifests" / "hr-to-scim.yaml").read_text(encoding="utf-8").replace("../mappings/", f"{REPO}/mappings/")
    text = text.replace("    concurrency: 4\n", "    concurrency: 4\n"
                        "    budget: {name: tenant-a, requests_per_second: 20, concurrency: 4}\n")
    path = tmp_path / "hr-to-scim.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_budget_without_the_redis_client_names_the_extra(tmp_path):
    path = scim_pipeline(tmp_path)
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "SCIM_URL": "http://127.0.0.1:1/scim/v2",
           "SCIM_TOKEN": "t0ken-not-shown", "PROVISION_DATA": str(REPO / "manifests" / "data"),
           "PROVISION_STATE": f"sqlite:///{tmp_path / 'state.db'}"}
    done = provision("validate", path, without="redis", env=env)
    assert done.returncode == 2, done.stderr
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if "budget:" in text)
    assert f"{path}:{line}:" in done.stderr and "connectors.app.budget: a shared budget is kept in Redis" in done.stderr
    assert "pip install 'provision[distributed]'" in done.stderr and "Traceback" not in done.stderr
    assert provision("validate", path, env=env).returncode == 0  # with it: nothing to say


def test_a_budget_store_that_cannot_be_reached_stops_the_run_with_exit_5(tmp_path):
    path = scim_pipeline(tmp_path)
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "SCIM_URL": "http://127.0.0.1:1/scim/v2",
           "SCIM_TOKEN": "t0ken-not-shown", "PROVISION_DATA": str(REPO / "manifests" / "data"),
           "PROVISION_STATE": f"sqlite:///{tmp_path / 'state.db'}",
           "PROVISION_BUDGET_URL": "redis://:r3dis-pw@127.0.0.1:1/0"}
    done = provision("run", path, "--output", "json", env=env)
    assert done.returncode == 5, done.stdout + done.stderr
    assert "budget 'tenant-a': the budget store at redis://" in done.stdout + done.stderr
    assert "cannot be reached" in done.stderr and "r3dis-pw" not in done.stdout + done.stderr
    assert "Traceback" not in done.stderr
