"""What an operator looks at: provision pending, and the HTML report rendered in headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import QUICKSTART, person, write_hr


@pytest.fixture
def troubled(provision, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """Two runs of the quickstart: 40 people with two whose rows cannot be mapped, then a people
    file cut short (the deletion guard holds 10 deletes)."""
    data = tmp_path / "data"
    monkeypatch.setenv("PROVISION_DATA", str(data))
    monkeypatch.setenv("PROVISION_TARGET", str(tmp_path / "app.db"))
    people = [person(f"E{i:03d}", "P", f"N{i}") for i in range(40)]
    people[3]["email"] = people[7]["email"] = ""  # split(email, '@') fails: those two objects fail
    write_hr(data, people, [])
    first = provision("run", QUICKSTART, "--output", "json")
    assert first.code == 1 and first.json()["object_types"]["user"]["failed"] == 2
    write_hr(data, people[:28], [])
    second = provision("run", QUICKSTART, "--output", "json")
    assert second.code == 3
    return {"runs": [first.json(), second.json()], "held": second.json()["object_types"]["user"]["held"]}


def test_pending_lists_the_queue_with_states(troubled, provision):
    result = provision("pending", QUICKSTART, "--output", "json")
    assert result.code == 0, result.err
    users = result.json()["object_types"]["user"]
    assert sum(p["action"] == "delete" for p in users) == troubled["held"]
    text = provision("pending", QUICKSTART).out
    assert f"user: {len(users)} pending" in text and ": delete, due, 0 attempts" in text
    one = provision("pending", QUICKSTART, "--anchor", users[0]["anchor"], "--output", "json").json()
    assert [p["anchor"] for p in one["object_types"]["user"]] == [users[0]["anchor"]]


def test_the_html_report_renders_in_chromium_with_the_right_numbers(troubled, provision, tmp_path: Path):
    page = tmp_path / "report" / "index.html"
    result = provision("report", QUICKSTART, "--html", page)
    assert result.code == 0, result.err
    html = page.read_text()
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "") and "<script" not in html
    browser = shutil.which("chromium")
    assert browser, "chromium is missing: scripts/test installs Debian's chromium"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
    dom = subprocess.run([browser, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    bars = re.findall(r'<rect class="bar"[^>]*data-run="([^"]+)" data-action="(\w+)" data-value="(\d+)"', dom.stdout)
    drawn = {(run, action): int(value) for run, action, value in bars}
    first, second = troubled["runs"]
    assert drawn[(first["run_id"], "added")] == first["object_types"]["user"]["added"] == 38
    assert drawn[(first["run_id"], "failed")] == 2
    assert (second["run_id"], "deleted") not in drawn  # held, not sent
    assert 'id="held"' in dom.stdout and dom.stdout.count("waiting</td>") == troubled["held"]
    assert "split" in dom.stdout or "email" in dom.stdout  # the failure's error, grouped
    slowest = re.findall(r'<table id="slowest">.*?</table>', dom.stdout, re.S)
    assert slowest and slowest[0].count("<tr>") == 1 + 5  # a header, and the five slowest of the adds
    shot = tmp_path / "report.png"
    done = subprocess.run([browser, *flags, f"--screenshot={shot}", "--window-size=1280,2000", page.as_uri()],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0 and shot.exists() and shot.stat().st_size > 10_000, done.stderr[-2000:]


def test_logs_tell_one_objects_story_in_steps(troubled, provision):
    first, second = troubled["runs"]
    result = provision("logs", QUICKSTART, "--anchor", "E003", "--output", "json")
    assert result.code == 0, result.err
    bad = result.json()["entries"]  # the bad row: its mapping fails in every run, newest first
    assert [e["run_id"] for e in bad] == [second["run_id"], first["run_id"]]
    assert [s["step"] for s in bad[0]["steps"]] == ["import", "scope", "match", "map"]
    assert "split()" in bad[0]["steps"][-1]["error"] and bad[0]["result"] == "failed"
    added = provision("logs", QUICKSTART, "--anchor", "E001", "--output", "json").json()["entries"]
    assert [e["action"] for e in added] == ["add"] and added[0]["run_id"] == first["run_id"]
    steps = {s["step"]: s for s in added[0]["steps"]}
    assert list(steps) == ["import", "scope", "match", "action", "export"]
    assert steps["export"]["outcome"] == "ok"
    assert steps["export"]["changes"]["family_name"] == {"old": None, "new": "N1", "rule": "source last_name"}
    failed = provision("logs", QUICKSTART, "--result", "failed", "--since", "1h", "--output", "json").json()
    assert {e["anchor"] for e in failed["entries"]} == {"E003", "E007"} and len(failed["entries"]) == 4
    text = provision("logs", QUICKSTART, "--anchor", "E001").out
    assert "user E001: add ok" in text and 'family_name: null -> "N1"   [source last_name]' in text
    in_second = provision("logs", QUICKSTART, "--run", second["run_id"], "--output", "json").json()["entries"]
    assert {e["anchor"] for e in in_second} == {"E003", "E007"}  # its deletes were held, not sent


def test_retry_and_drop_act_on_one_object_and_are_logged(troubled, provision):
    users = provision("pending", QUICKSTART, "--output", "json").json()["object_types"]["user"]
    first, second = users[0]["anchor"], users[1]["anchor"]
    assert provision("drop", QUICKSTART, "--anchor", first).code == 2  # off a terminal it wants --yes
    dropped = provision("drop", QUICKSTART, "--anchor", first, "--yes")
    assert dropped.code == 0 and f"drop: user {first}: delete discarded" in dropped.out
    retried = provision("retry", QUICKSTART, "--anchor", second)
    assert retried.code == 0 and f"retry: user {second}: delete is sent by the next run" in retried.out
    left = {p["anchor"] for p in provision("pending", QUICKSTART, "--output", "json").json()["object_types"]["user"]}
    assert first not in left and second in left
    story = provision("logs", QUICKSTART, "--anchor", first, "--output", "json").json()["entries"]
    assert story[0]["action"] == "drop" and story[0]["run_id"].startswith("drop-by-")
    unknown = provision("retry", QUICKSTART, "--anchor", "E999")
    assert unknown.code == 2 and "no pending export for E999" in unknown.err


def test_how_long_an_export_has_waited_survives_the_runs_that_rewrite_it(troubled, provision):
    before = {p["anchor"]: p["pending_since"] for p in
              provision("pending", QUICKSTART, "--output", "json").json()["object_types"]["user"]}
    assert before and all(before.values())
    assert provision("run", QUICKSTART).code == 3  # the guard holds them again: computed and rewritten
    after = {p["anchor"]: p["pending_since"] for p in
             provision("pending", QUICKSTART, "--output", "json").json()["object_types"]["user"]}
    assert after == before
