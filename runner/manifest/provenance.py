"""Where a manifest came from: a hash of its files and, in a git repository, the commit.

Every run records it (``runs.manifest_hash``, ``runs.manifest_commit``, the provisioning log's
first entry of the run, ``--output json``), so a change seen in the target traces back to the
reviewed change of the manifest that made it. The hash covers the manifest file and the mapping
files it names, as written (``${env:...}`` references, never the secrets they stand for); the
commit is ``HEAD`` of the repository holding the manifest, with ``modified`` when those files
differ from it (a run from a working copy nobody reviewed).
"""

from __future__ import annotations

import hashlib
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


@dataclass(frozen=True)
class Provenance:
    hash: str
    commit: str | None = None
    modified: bool = False

    def as_json(self) -> dict[str, Any]:
        return {"hash": self.hash, "commit": self.commit, "modified": self.modified}

    def describe(self) -> str:
        if self.commit is None:
            return f"manifest {self.hash[:12]} (not in a git repository)"
        return f"manifest {self.hash[:12]} at commit {self.commit[:12]}" + (" with changes not committed"
                                                                          if self.modified else "")


def files_of(path: Path) -> list[Path]:
    """The manifest and the mapping files its object types name, as they are on disk."""
    found = [path]
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return found
    for raw in data.get("object_types") or [] if isinstance(data, dict) else []:
        mapping = raw.get("mapping") if isinstance(raw, dict) else None
        if isinstance(mapping, str):
            found.append((path.parent / mapping).resolve())
    return found


def provenance(path: Path) -> Provenance:
    files = files_of(path)
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.name.encode() + b"\0")
        try:
            digest.update(file.read_bytes())
        except OSError:
            digest.update(b"(missing)")
    commit, modified = _git(path.parent, files)
    return Provenance(digest.hexdigest(), commit, modified)


def _git(folder: Path, files: list[Path]) -> tuple[str | None, bool]:
    """HEAD of the repository holding ``folder`` and whether ``files`` differ from it; (None, False)
    outside a repository or without git."""
    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=5)
    try:
        head = git("rev-parse", "HEAD")
        if head.returncode != 0:
            return None, False
        status = git("status", "--porcelain", "--", *(str(f) for f in files))
    except (OSError, subprocess.SubprocessError):
        return None, False
    return head.stdout.strip() or None, bool(status.stdout.strip())
