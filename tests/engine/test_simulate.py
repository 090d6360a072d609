"""plan NEW --against OLD / --rev REV: what a manifest change does, from the state store alone."""

from __future__ import annotations

import csv
import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from runner import sampledata


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), "-c", "user.email=t@example.org", "-c", "user.name=t", *args],
                   check=True, capture_output=True)


@pytest.fixture
def repo(quickstart_copy: Path, provision, tmp_path: Path) -> Path:
    """The quickstart in a git repository, run once."""
    sampledata.make(tmp_path / "data", 200, 20, 1)
    root = quickstart_copy.parent.parent
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "the reviewed manifest")
    assert provision("run", quickstart_copy).code == 0
    return quickstart_copy


def on_leave(data: Path) -> set[str]:
    with open(data / "people.csv", newline="", encoding="utf-8") as f:
        return {r["employee_id"] for r in csv.DictReader(f) if r["status"] == "leave"}


def test_a_scope_change_lists_exactly_the_objects_it_would_disable(repo: Path, provision, tmp_path: Path):
    text = repo.read_text()
    assert "value: [active, leave]" in text
    repo.write_text(text.replace("value: [active, leave]", "value: [active]"))
    state = tmp_path / "app.db.state"
    state_before, target_before = digest(state), digest(tmp_path / "app.db")
    # no source read and no target contact: both may be gone
    shutil.move(tmp_path / "data", tmp_path / "elsewhere")
    (tmp_path / "app.db").rename(tmp_path / "app.db.away")

    result = provision("plan", repo, "--rev", "HEAD", "--output", "json")
    assert result.code == 0, result.err
    sim = result.json()
    leave = on_leave(tmp_path / "elsewhere")
    assert leave
    assert {d["anchor"] for d in sim["differences"]} == leave
    assert {d["action"] for d in sim["differences"]} == {"disable"}
    assert sim["object_types"]["user"]["disabled"] == len(leave)
    assert sim["object_types"]["user"]["attributes"] == {"active": len(leave)}
    assert sim["object_types"]["group"]["updated"] == 0
    assert not (tmp_path / "app.db").exists()
    (tmp_path / "app.db.away").rename(tmp_path / "app.db")
    assert digest(state) == state_before and digest(tmp_path / "app.db") == target_before

    text_out = provision("plan", repo, "--rev", "HEAD")
    assert f"would add 0, change 0, disable {len(leave)}" in text_out.out
    assert "active: true -> false" in text_out.out
    markdown = provision("plan", repo, "--rev", "HEAD", "--format", "markdown")
    assert f"| user | 0 | 0 | {len(leave)} | 0 | 0 | active {len(leave)} |" in markdown.out


def test_a_mapping_change_shows_each_value_and_against_a_file(repo: Path, provision, tmp_path: Path):
    old = repo.parent / "old.yaml"
    shutil.copy(repo, old)
    mapping = repo.parent.parent / "mappings" / "person-to-app-user.yaml"
    text = mapping.read_text()
    mapping.write_text(text.replace("join(' ', [coalesce(preferred_name, first_name), last_name])",
                                    "join(', ', [last_name, coalesce(preferred_name, first_name)])"))
    # OLD at HEAD has the old mapping file; the copy beside it reads the new one: no difference
    same = provision("plan", repo, "--against", old, "--output", "json").json()
    assert same["differences"] == []
    sim = provision("plan", repo, "--rev", "HEAD", "--output", "json").json()
    changed = sim["differences"]
    assert changed and all(d["action"] == "update" for d in changed)
    assert sim["object_types"]["user"]["attributes"] == {"display_name": len(changed)}
    one = changed[0]["new"]["changes"]["display_name"]
    first, last = one["old"].split(" ", 1)
    assert one["new"] == f"{last}, {first}"
    assert one["rule"] == "expression join(', ', [last_name, coalesce(preferred_name, first_name)])"


def test_a_simulation_needs_one_old_manifest_of_the_same_pipeline(repo: Path, provision, tmp_path: Path):
    other = repo.parent / "other.yaml"
    other.write_text(repo.read_text().replace("name: quickstart", "name: another", 1))
    result = provision("plan", repo, "--against", other)
    assert result.code == 2 and "a simulation compares two versions of one pipeline" in result.err
    result = provision("plan", repo, "--rev", "no-such-revision")
    assert result.code == 2 and "--rev no-such-revision" in result.err


def test_proposed_rules_are_computed_and_reported_never_exported(quickstart_copy: Path, provision, tmp_path: Path):
    sampledata.make(tmp_path / "data", 60, 5, 2)
    assert provision("run", quickstart_copy).code == 0
    mapping = quickstart_copy.parent.parent / "mappings" / "person-to-app-user.yaml"
    text = mapping.read_text()
    old_rule = "join(' ', [coalesce(preferred_name, first_name), last_name])"
    mapping.write_text(text.replace(f'expression: "{old_rule}"',
                                    f'expression: "{old_rule}"\n    proposed: {{expression: "upper(last_name)"}}'))
    before = digest(tmp_path / "app.db")
    run = provision("run", quickstart_copy, "--output", "json")
    assert run.code == 0, run.err
    user = run.json()["object_types"]["user"]
    found = user["proposed"]["display_name"]
    with open(tmp_path / "data" / "people.csv", newline="", encoding="utf-8") as f:
        in_scope = sum(r["status"] in ("active", "leave") for r in csv.DictReader(f))
    assert found["differs"] == in_scope > 0  # every user in scope, re-evaluated after the change
    example = found["examples"][0]
    assert example["proposed"] == example["proposed"].upper() and example["current"] != example["proposed"]
    assert user["updated"] == 0 and digest(tmp_path / "app.db") == before  # nothing exported
    assert "proposed rule for display_name (not exported): differs on" in provision("plan", quickstart_copy,
                                                                                   "--full-export").out
    # a broken proposed rule is a validation problem with its place
    mapping.write_text(text.replace(f'expression: "{old_rule}"',
                                    f'expression: "{old_rule}"\n    proposed: {{expression: "upper(last_name"}}'))
    result = provision("validate", quickstart_copy)
    line = mapping.read_text().splitlines().index('    proposed: {expression: "upper(last_name"}') + 1
    assert result.code == 2 and f"person-to-app-user.yaml:{line}:" in result.err
