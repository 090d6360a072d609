"""``--output json`` on every command: exactly one JSON document on stdout, errors included.

A script or a monitoring check parses what a command prints without knowing which command it
ran or whether it failed: the result, or ``{"error": ..., "exit_code": N}``. Messages for people
stay on stderr. ``-q`` and ``-v`` are accepted by every command too.
"""

from __future__ import annotations

import argparse
import csv
import json
import sqlite3
from pathlib import Path

import pytest
from conftest import QUICKSTART

from runner import cli
from runner.errors import EXIT_INVALID

# Commands that start servers and stay in the foreground: no result to print, errors only.
SERVERS = {"serve", "demo", "worker"}


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = cli._parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def one_document(text: str) -> object:
    """The one JSON document ``text`` holds (json.loads refuses anything before or after it)."""
    return json.loads(text)


@pytest.fixture
def ran(quickstart_env, provision, tmp_path: Path) -> dict[str, str]:
    """The quickstart, run on fresh data, then again with one update the target refuses (so the
    queue holds a failing export for ``retry`` and ``drop``); that person's anchor."""
    data = quickstart_env(people=30, groups=3)
    assert provision("run", QUICKSTART).code == 0
    with sqlite3.connect(tmp_path / "app.db") as db:
        db.execute("CREATE TRIGGER refuse BEFORE UPDATE ON users WHEN NEW.title = 'Refused' "
                   "BEGIN SELECT RAISE(ABORT, 'refused by the application'); END")
    people = data / "people.csv"
    with people.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    active = next(r for r in rows if r["status"] == "active")
    active["title"] = "Refused"
    with people.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    assert provision("run", QUICKSTART).code == 1
    return {"anchor": active["employee_id"]}


def test_every_command_prints_one_json_document(provision, ran: dict[str, str], tmp_path: Path):
    plan = tmp_path / "change.plan"
    anchor = ran["anchor"]
    commands = {
        "validate": ["validate", QUICKSTART],
        "discover": ["discover", QUICKSTART],
        "plan": ["plan", QUICKSTART, "--out", plan],
        "apply": ["apply", plan],
        "run": ["run", QUICKSTART],
        "check": ["check", QUICKSTART],
        "approve": ["approve", QUICKSTART],
        "test": ["test", QUICKSTART],
        "preview": ["preview", QUICKSTART, "--object-type", "user", "--anchor", anchor],
        "status": ["status", QUICKSTART],
        "report": ["report", QUICKSTART, "--html", tmp_path / "report.html"],
        "logs": ["logs", QUICKSTART, "--limit", "5"],
        "pending": ["pending", QUICKSTART],
        "retry": ["retry", QUICKSTART, "--anchor", anchor],
        "drop": ["drop", QUICKSTART, "--anchor", anchor, "--yes"],
        "release": ["release", QUICKSTART],
        "connectors": ["connectors"],
        "schema": ["schema"],
        "schedule": ["schedule", QUICKSTART, "--cron"],
        "hook": ["hook", "test", QUICKSTART],  # pre-commit's entry point
        "submit": ["submit", QUICKSTART, "--timeout", "1s"],  # refused before any broker is contacted
        "beat": ["beat", tmp_path / "no-such-folder"],  # likewise
    }
    untested = set(subcommands()) - set(commands) - SERVERS
    assert not untested, f"add these commands here (and give them --output json): {sorted(untested)}"
    documents = {}
    for name, args in commands.items():
        result = provision(*args, "--output", "json")
        try:
            document = one_document(result.out)
        except json.JSONDecodeError as exc:
            raise AssertionError(f"provision {name} --output json: not one JSON document ({exc}):\n{result.out}") \
                from None
        assert "Traceback" not in result.err, (name, result.err)
        if result.code not in (0, 1):  # 1: the refused update; else a refusal (approve: nothing is held)
            assert isinstance(document, dict) and document["exit_code"] == result.code, (name, document)
            assert document["error"], (name, document)
        documents[name] = document
    assert (tmp_path / "report.html").exists()
    assert documents["retry"]["done"] == [{"object_type": "user", "anchor": anchor, "action": "update"}]
    assert documents["drop"]["done"] == documents["retry"]["done"]
    assert documents["validate"]["ok"] and documents["test"]["ok"] and documents["release"]["released"] is False


def test_the_text_results_are_unchanged_without_it(provision, ran: dict[str, str]):
    assert provision("validate", QUICKSTART).out.strip() == f"{QUICKSTART}: ok"
    shown = provision("test", QUICKSTART)
    assert shown.code == 0 and "tests," in shown.out and "passed" in shown.out


def test_errors_are_json_with_their_exit_code(provision, tmp_path: Path):
    missing = provision("status", tmp_path / "nowhere.yaml", "--output", "json")
    assert missing.code == EXIT_INVALID
    error = one_document(missing.out)
    assert error["exit_code"] == EXIT_INVALID and "nowhere.yaml" in json.dumps(error)
    assert "nowhere.yaml" in missing.err, "people still read stderr"

    broken = tmp_path / "broken.yaml"
    broken.write_text("version: 1\nname: broken\nconnectors: {}\nobject_types: [{name: x}]\n")
    invalid = provision("run", broken, "--output", "json")
    document = one_document(invalid.out)
    assert invalid.code == EXIT_INVALID and document["exit_code"] == EXIT_INVALID
    assert document["problems"] and {"file", "line", "column", "path", "message"} <= set(document["problems"][0])
    assert f"{broken}:" in invalid.err

    validated = one_document(provision("validate", broken, "--output", "json").out)
    assert validated["ok"] is False and validated["files"][0]["problems"]


def test_a_usage_error_is_json_too(provision, capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit) as stop:
        cli.main(["status", "pipeline.yaml", "--output", "json", "--no-such-option"])
    out, err = capsys.readouterr()
    assert stop.value.code == EXIT_INVALID
    assert one_document(out)["exit_code"] == EXIT_INVALID and "--no-such-option" in err


@pytest.mark.parametrize("name", sorted(set(subcommands())))
def test_every_command_takes_quiet_verbose_and_output(name: str):
    parser = subcommands()[name]
    options = {option for action in parser._actions for option in action.option_strings}
    assert {"-q", "--quiet", "-v", "--verbose", "--output"} <= options, name
