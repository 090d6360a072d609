"""The pre-commit hooks (.pre-commit-hooks.yaml), run by the real pre-commit in a throwaway git
repository that holds a copy of the quickstart: a broken manifest (or a mapping file it uses) fails
the commit naming the file and line, a good one passes, a failing mapping test fails provision-test,
and YAML that is no manifest is left alone.

The hooks come from a snapshot of this working tree committed into a repository of its own, so the
test sees the hooks as they are now, in a clean CI clone or in a tree with uncommitted changes
alike (``pre-commit try-repo`` on a dirty tree would take the tracked files' changes only).

pre-commit builds a virtualenv and installs provision into it from the hook repository, which
takes most of the time here (about 50 s per installation on the development machine). The
``pre-commit run`` tests share one PRE_COMMIT_HOME, so they install once;
``pre-commit try-repo`` always installs afresh (it keeps its store in a temporary folder of its
own, whatever PRE_COMMIT_HOME says), so it is run once, with a good and a broken manifest together.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

GIT = ["git", "-c", "user.name=provision tests", "-c", "user.email=tests@provision.invalid",
       "-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main"]
QUICKSTART_FILES = ("manifests/quickstart.yaml", "manifests/quickstart.mapping-tests.yaml",
                    "manifests/sql/quickstart-target.sql", "mappings/person-to-app-user.yaml")


def git(folder: Path, *args: str) -> str:
    return subprocess.run([*GIT, *args], cwd=folder, check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def hook_repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """This working tree (tracked files and new ones git does not ignore) committed into a
    repository of its own: (its path, the commit)."""
    snapshot = tmp_path_factory.mktemp("hook-repo")
    for name in git(REPO, "ls-files", "-z", "--cached", "--others", "--exclude-standard").split("\0"):
        source = REPO / name
        if not name or not (source.exists() or source.is_symlink()):
            continue  # deleted in the working tree
        target = snapshot / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            target.symlink_to(os.readlink(source))
        else:
            shutil.copy2(source, target)
    git(snapshot, "init", "-q")
    git(snapshot, "add", "-A")
    git(snapshot, "commit", "-q", "-m", "the working tree under test")
    return snapshot, git(snapshot, "rev-parse", "HEAD").strip()


@pytest.fixture(scope="module")
def pre_commit_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One pre-commit store for the module: the hook environment is installed once."""
    return tmp_path_factory.mktemp("pre-commit-home")


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """A git repository with the quickstart's manifest, mapping file and mapping tests."""
    folder = tmp_path / "work"
    for name in QUICKSTART_FILES:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, folder / name)
    git(folder, "init", "-q")
    git(folder, "add", "-A")
    git(folder, "commit", "-q", "-m", "quickstart")
    return folder


def pre_commit(folder: Path, home: Path | None, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROVISION_", "PRE_COMMIT"))}
    if home is not None:
        env["PRE_COMMIT_HOME"] = str(home)
    return subprocess.run([sys.executable, "-m", "pre_commit", *args], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=900)


def run_hooks(work: Path, hook_repo: tuple[Path, str], home: Path, hook: str, *files: str):
    """``pre-commit run HOOK --files FILES`` with a .pre-commit-config.yaml naming the hook repo."""
    path, rev = hook_repo
    (work / ".pre-commit-config.yaml").write_text(
        f"repos:\n  - repo: {path}\n    rev: {rev}\n    hooks:\n"
        "      - id: provision-validate\n      - id: provision-test\n")
    git(work, "add", ".pre-commit-config.yaml")  # pre-commit refuses an unstaged configuration
    return pre_commit(work, home, "run", hook, "--files", *files)


def edit(file: Path, old: str, new: str) -> int:
    """Replace ``old`` (once) and return the 1-based line where the new text is."""
    text = file.read_text(encoding="utf-8")
    assert old in text, old
    file.write_text(text.replace(old, new, 1), encoding="utf-8")
    return text[:text.index(old)].count("\n") + 1


def test_try_repo_fails_a_broken_manifest_with_its_line_and_passes_a_good_one(work: Path, hook_repo):
    broken = work / "manifests" / "broken.yaml"
    shutil.copy2(work / "manifests" / "quickstart.yaml", broken)
    line = edit(broken, "    when_deleted: delete           #", "    when_deleted: remove           #")
    result = pre_commit(work, None, "try-repo", str(hook_repo[0]), "provision-validate", "--files",
                        "manifests/quickstart.yaml", "manifests/broken.yaml")
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "provision validate" in output and "Failed" in output
    assert f"manifests/broken.yaml:{line}:19: object_types[0].when_deleted: must be one of" in output
    assert "manifests/quickstart.yaml:" not in output.replace("manifests/quickstart.yaml: ok", "")


def test_a_good_manifest_passes(work: Path, hook_repo, pre_commit_home: Path):
    result = run_hooks(work, hook_repo, pre_commit_home, "provision-validate", "manifests/quickstart.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "provision validate" in result.stdout and "Passed" in result.stdout


def test_a_broken_manifest_fails_with_its_file_and_line(work: Path, hook_repo, pre_commit_home: Path):
    manifest = work / "manifests" / "quickstart.yaml"
    line = edit(manifest, "    target: {connector: app, object: groups,", "    target: {connector: ap, object: groups,")
    result = run_hooks(work, hook_repo, pre_commit_home, "provision-validate", "manifests/quickstart.yaml")
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"manifests/quickstart.yaml:{line}:" in result.stdout and "'ap'" in result.stdout, result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_a_broken_mapping_file_fails_the_manifest_that_uses_it(work: Path, hook_repo, pre_commit_home: Path):
    mapping = work / "mappings" / "person-to-app-user.yaml"
    line = edit(mapping, "    reference: user ", "    reference: usr  ")
    result = run_hooks(work, hook_repo, pre_commit_home, "provision-validate", "mappings/person-to-app-user.yaml")
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"mappings/person-to-app-user.yaml:{line}:" in result.stdout, result.stdout
    assert "unknown object type 'usr'" in result.stdout


def test_yaml_that_is_no_manifest_is_left_alone(work: Path, hook_repo, pre_commit_home: Path):
    workflow = work / ".github" / "workflows" / "ci.yml"
    workflow.parent.mkdir(parents=True)
    workflow.write_text("name: ci\non: [push]\njobs: {}\n")
    result = run_hooks(work, hook_repo, pre_commit_home, "provision-validate", ".github/workflows/ci.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_failing_mapping_test_fails_provision_test(work: Path, hook_repo, pre_commit_home: Path):
    tests = work / "manifests" / "quickstart.mapping-tests.yaml"
    result = run_hooks(work, hook_repo, pre_commit_home, "provision-test", "manifests/quickstart.mapping-tests.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    edit(tests, "      user_name: zoe.odegard\n", "      user_name: zoe\n")
    result = run_hooks(work, hook_repo, pre_commit_home, "provision-test", "manifests/quickstart.mapping-tests.yaml")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAIL  user: user_name is the e-mail's local part" in result.stdout
    assert 'user_name: expected "zoe", got "zoe.odegard"' in result.stdout, result.stdout


# ---- `provision hook`, the hooks' entry point, in this process -----------------------------------


def test_unset_variables_are_no_problem_at_commit_time_but_are_named(provision, monkeypatch: pytest.MonkeyPatch):
    for name in ("LDAP_URL", "LDAP_BIND_DN", "LDAP_PASSWORD", "LDAP_BASE_DN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(REPO)
    result = provision("hook", "validate", "manifests/hr-to-ldap.yaml", "README.md")
    assert result.code == 0, result.err
    assert result.out.splitlines() == ["manifests/hr-to-ldap.yaml: ok as far as it can be checked without "
                                       "LDAP_BASE_DN, LDAP_BIND_DN, LDAP_PASSWORD, LDAP_URL (not set here; set "
                                       "them to check what depends on their values)"]


def test_a_changed_mapping_file_brings_every_manifest_that_names_it(provision, work: Path,
                                                                  monkeypatch: pytest.MonkeyPatch):
    other = work / "manifests" / "other.yaml"
    shutil.copy2(work / "manifests" / "quickstart.yaml", other)
    edit(other, "name: quickstart", "name: other")
    monkeypatch.chdir(work)
    result = provision("hook", "validate", "mappings/person-to-app-user.yaml")
    assert result.code == 0, result.err
    assert sorted(result.out.splitlines()) == ["manifests/other.yaml: ok", "manifests/quickstart.yaml: ok"]


def test_provision_test_skips_manifests_without_mapping_tests(provision, work: Path, monkeypatch: pytest.MonkeyPatch):
    (work / "manifests" / "quickstart.mapping-tests.yaml").unlink()
    monkeypatch.chdir(work)
    result = provision("hook", "test", "manifests/quickstart.yaml", "mappings/person-to-app-user.yaml")
    assert (result.code, result.out, result.err) == (0, "", "")
