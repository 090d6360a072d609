"""The manifests a set of changed files concerns: what the pre-commit hooks check.

A hook is handed every YAML file a commit changes, manifests or not (CI workflows, Kubernetes
files...). A file's kind is told by its top-level keys, read as text so a file broken past
parsing is still recognised (and then refused with its line by the check):

- a manifest has ``connectors:`` or ``object_types:``;
- a mapping-tests file is named ``*.mapping-tests.yaml``, or has ``tests:`` and ``version:``;
- a mapping file has ``mapping:`` and ``version:``.

A changed mapping file concerns the manifests that name it, and a changed mapping-tests file the
manifest it tests, so those are checked too; any other file is left alone.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path

import yaml

from runner.errors import Problem
from runner.mapping.testing import is_test_file, test_files

MANIFEST = "manifest"
MAPPING = "mapping"
MAPPING_TESTS = "mapping-tests"
_TOP_KEY = re.compile(r"^([A-Za-z_][A-Za-z0-9_-]*)[ \t]*:", re.M)
_YAML = (".yaml", ".yml")


def kind_of(path: Path) -> str | None:
    """``manifest``, ``mapping`` or ``mapping-tests`` for a provision file, else None."""
    if is_test_file(path):
        return MAPPING_TESTS
    if path.suffix not in _YAML:
        return None
    try:
        keys = set(_TOP_KEY.findall(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError):
        return None
    if keys & {"connectors", "object_types"}:
        return MANIFEST
    if "version" in keys and "tests" in keys:
        return MAPPING_TESTS
    if "version" in keys and "mapping" in keys:
        return MAPPING
    return None


def concerned(changed: Iterable[Path], repository: Iterable[Path]) -> list[Path]:
    """The manifests the ``changed`` files concern, in a stable order: the changed manifests, the
    manifests among ``repository`` that name a changed mapping file or that a changed mapping-tests
    file tests."""
    changed = [Path(p) for p in changed]
    kinds = {p: kind_of(p) for p in changed}
    found = [p for p in changed if kinds[p] == MANIFEST]
    mappings = {p.resolve() for p in changed if kinds[p] == MAPPING}
    tests = {p.resolve() for p in changed if kinds[p] == MAPPING_TESTS}
    if mappings or tests:
        for manifest in repository:
            if kind_of(manifest) != MANIFEST:
                continue
            if mappings & set(mapping_files(manifest)) or tests & {t.resolve() for t in test_files(manifest)}:
                found.append(manifest)
    unique: dict[Path, Path] = {}
    for manifest in found:
        unique.setdefault(manifest.resolve(), manifest)
    return list(unique.values())


def mapping_files(manifest: Path) -> list[Path]:
    """The mapping files a manifest names (``mapping: PATH`` of its object types), resolved; none
    when the manifest cannot be read."""
    try:
        data = yaml.safe_load(manifest.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return []
    types = data.get("object_types") if isinstance(data, dict) else None
    return [(manifest.parent / t["mapping"]).resolve() for t in types or []
            if isinstance(t, dict) and isinstance(t.get("mapping"), str)]


def has_tests(manifest: Path) -> bool:
    """The manifest has mapping tests: a ``tests:`` key, or a mapping-tests file beside it."""
    try:
        keys = set(_TOP_KEY.findall(manifest.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError):
        keys = set()
    return "tests" in keys or bool(test_files(manifest))


def repository_files(root: Path) -> Sequence[Path]:
    """The YAML files of the git work tree at ``root`` (tracked, and new ones not ignored), or every
    YAML file under ``root`` outside a repository; paths relative to ``root`` as given."""
    try:
        listed = subprocess.run(["git", "-C", str(root), "ls-files", "-z", "--cached", "--others",
                                 "--exclude-standard", "--", *(f"*{s}" for s in _YAML)],
                                capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        listed = None
    if listed is not None and listed.returncode == 0:
        return [root / name for name in sorted(set(listed.stdout.split("\0"))) if name]
    return sorted(p for s in _YAML for p in root.rglob(f"*{s}")
                  if not any(part.startswith(".") for part in p.relative_to(root).parts))


# as runner/manifest/yamlfile.py words it (runner/engine/schedule.py reads it the same way)
_UNSET = re.compile(r"environment variable ([A-Za-z_][A-Za-z0-9_]*) is not set")


def without_unset_variables(problems: Sequence[Problem]) -> tuple[list[Problem], list[str]]:
    """The problems other than a ``${env:NAME}`` whose variable is not set, and those names. At
    commit time the secrets a manifest reads are not set, and that is no fault of the manifest."""
    names = sorted({m.group(1) for p in problems if (m := _UNSET.search(p.message))})
    return [p for p in problems if not _UNSET.search(p.message)], names
