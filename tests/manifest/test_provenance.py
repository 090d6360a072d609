"""Every run records where its manifest came from: a hash of the manifest and its mapping files and,
in a git repository, the commit (and whether those files differ from it). `status`, `--output json`
and the provisioning log show it, so a change in the target traces back to a reviewed commit."""

from __future__ import annotations

import json
import subprocess

import pytest

from runner import sampledata


def git(root, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), "-c", "user.email=t@example.org", "-c", "user.name=t", *args],
                          check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path, monkeypatch, quickstart_copy):
    """The quickstart in a git repository of its own, HR data outside it."""
    sampledata.make(tmp_path / "data", 30, 3, 1)
    monkeypatch.setenv("PROVISION_STATE", str(tmp_path / "state.db"))
    root = quickstart_copy.parent.parent
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "the reviewed manifest")
    return quickstart_copy


def test_a_run_records_the_commit_and_status_shows_it(provision, repo, tmp_path):
    head = git(repo.parent.parent, "rev-parse", "HEAD")
    log = tmp_path / "run.log"
    run = provision("run", repo, "--output", "json", "--log-file", str(log))
    assert run.code == 0, run.err
    assert run.json()["manifest"]["commit"] == head and run.json()["manifest"]["modified"] is False
    status = provision("status", repo)
    assert f"at commit {head[:12]}" in status.out and "not committed" not in status.out
    [started] = [e for e in map(json.loads, log.read_text().splitlines()) if e["action"] == "run"]
    assert started["changes"]["manifest"]["commit"] == head


def test_a_mapping_changed_after_the_commit_is_marked_and_changes_the_hash(provision, repo):
    first = provision("run", repo, "--output", "json").json()["manifest"]
    mapping = repo.parent.parent / "mappings" / "person-to-app-user.yaml"
    mapping.write_text(mapping.read_text() + "\n# reviewed? not yet\n")
    second = provision("run", repo, "--output", "json").json()["manifest"]
    assert second["modified"] is True and second["hash"] != first["hash"] and second["commit"] == first["commit"]
    assert "with changes not committed" in provision("status", repo).out


def test_outside_a_repository_the_hash_alone_is_recorded(provision, quickstart_copy, tmp_path, monkeypatch):
    sampledata.make(tmp_path / "data", 10, 1, 1)
    monkeypatch.setenv("PROVISION_STATE", str(tmp_path / "state.db"))
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))  # the tests' own checkout is not this one's
    out = provision("run", quickstart_copy, "--output", "json").json()["manifest"]
    assert out["commit"] is None and len(out["hash"]) == 64
    assert "(not in a git repository)" in provision("status", quickstart_copy).out
