"""``provision plan NEW --against OLD`` (or ``--rev REV``): what a manifest change does, object by object.

Both manifests are computed over the same state store (each on its own throwaway copy), every
object afresh, with no source read and no target contact: the difference between the two plans
is the effect of the change alone, whatever else is pending. That is the review comment a
manifest pull request needs: which objects would be added, changed (and which values), disabled,
deleted or renamed, with counts per attribute, and whether the deletion guard would stop it.

``--rev`` takes OLD from git: the repository's tree at that revision is exported to a temporary
folder (mapping files included, as they were), and the manifest at the same path is read there.
"""

from __future__ import annotations

import shutil
import subprocess
import tarfile
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.actions import COUNTED_AS, Action
from runner.engine.context import RunOptions
from runner.engine.plan import PlanItem
from runner.engine.run import Summary, execute
from runner.errors import UsageError
from runner.mapping.checks import load
from runner.state.store import state_url


@dataclass(frozen=True)
class Difference:
    """One object the change affects: what OLD would do to it now, and what NEW would do instead."""

    object_type: str
    anchor: str
    before: PlanItem | None
    after: PlanItem | None

    @property
    def action(self) -> Action:
        """The effect of the change, in plan words: what NEW does (an update where OLD did nothing)."""
        return self.after.action if self.after is not None else Action.UPDATE

    def as_json(self) -> dict[str, Any]:
        return {"object_type": self.object_type, "anchor": self.anchor, "action": str(self.action),
                "new": self.after.as_json() if self.after else None,
                "old": self.before.as_json() if self.before else None}


@dataclass
class Simulation:
    pipeline: str
    new: Summary
    old: Summary
    old_label: str
    differences: list[Difference] = field(default_factory=list)

    def counts(self) -> dict[str, dict[str, Any]]:
        """Per object type: objects added, changed, disabled, deleted, renamed by the change, and
        per attribute how many objects' values change."""
        out: dict[str, dict[str, Any]] = {name: {"added": 0, "updated": 0, "disabled": 0, "deleted": 0,
                                                 "renamed": 0, "attributes": Counter()}
                                          for name in self.new.object_types}
        for d in self.differences:
            entry = out.setdefault(d.object_type, {"added": 0, "updated": 0, "disabled": 0, "deleted": 0,
                                                   "renamed": 0, "attributes": Counter()})
            key = COUNTED_AS.get(d.action, "updated")
            entry[key] = entry.get(key, 0) + 1
            entry["attributes"].update(a for a in (d.after.changes if d.after else {}) if not a.startswith("__"))
        for entry in out.values():
            entry["attributes"] = dict(entry["attributes"].most_common())
        return out

    @property
    def exit_code(self) -> int:
        return self.new.exit_code if self.new.status != "ok" else 0

    def as_json(self) -> dict[str, Any]:
        return {"pipeline": self.pipeline, "against": self.old_label, "status": self.new.status,
                "manifest": self.new.manifest, "old_manifest": self.old.manifest,
                "object_types": self.counts(),
                "guard": {n: c.guard for n, c in self.new.object_types.items() if c.guard},
                "differences": [d.as_json() for d in self.differences]}


def simulate(new: Path, against: Path | None = None, rev: str | None = None,
             object_types: tuple[str, ...] = ()) -> Simulation:
    if (against is None) == (rev is None):
        raise UsageError("a simulation compares with one older manifest: give --against FILE or --rev REVISION")
    manifest = load(new)
    folder = None
    try:
        if rev is not None:
            folder, against = _at_revision(new, rev)
            label = f"{rev} ({against.name})"
        else:
            label = str(against)
        old_manifest = load(against)
        if old_manifest.name != manifest.name:
            raise UsageError(f"{against} is pipeline {old_manifest.name!r}, {new} is {manifest.name!r}: a "
                             "simulation compares two versions of one pipeline")
        url = state_url(manifest, create=False)
        results: dict[str, dict[tuple[str, str], PlanItem]] = {}
        summaries: dict[str, Summary] = {}
        for which, path in (("old", against), ("new", new)):
            found: dict[tuple[str, str], PlanItem] = {}
            summaries[which] = execute(path, RunOptions(plan=True, simulate=True, no_import=True, state_url=url,
                                                        object_types=object_types),
                                       lambda item, found=found: found.__setitem__((item.object_type, item.anchor),
                                                                                  item))
            results[which] = found
    finally:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
    old, now = results["old"], results["new"]
    differences = [Difference(key[0], key[1], old.get(key), now.get(key))
                   for key in sorted(set(old) | set(now), key=_order(manifest))
                   if _operation(old.get(key)) != _operation(now.get(key))]
    return Simulation(manifest.name, summaries["new"], summaries["old"], label, differences)


def _operation(item: PlanItem | None) -> tuple[str, dict[str, Any]] | None:
    """What an item does, without what the plan says about where each value came from."""
    if item is None:
        return None
    return str(item.action), {a: {k: v for k, v in c.items() if k != "rule"} for a, c in item.changes.items()}


def _order(manifest: Any) -> Any:
    rank = {ot.name: i for i, ot in enumerate(manifest.object_types)}
    return lambda key: (rank.get(key[0], len(rank)), key[1])


def _at_revision(path: Path, rev: str) -> tuple[Path, Path]:
    """The repository's tree at ``rev`` in a temporary folder, and the manifest's path inside it."""
    path = path.resolve()

    def git(*args: str, where: Path = path.parent) -> subprocess.CompletedProcess[bytes]:
        try:
            return subprocess.run(["git", "-C", str(where), *args], capture_output=True, timeout=120)
        except (OSError, subprocess.SubprocessError) as e:
            raise UsageError(f"--rev needs git: {e}") from None

    top = git("rev-parse", "--show-toplevel")
    if top.returncode != 0:
        raise UsageError(f"{path}: not in a git repository; compare with --against FILE instead of --rev")
    root = Path(top.stdout.decode().strip())
    tree = git("archive", "--format=tar", rev, where=root)  # from a subfolder, git archives only that
    if tree.returncode != 0:
        raise UsageError(f"--rev {rev}: {tree.stderr.decode().strip() or 'not a revision of ' + str(root)}")
    folder = Path(tempfile.mkdtemp(prefix="provision-rev-"))
    archive = folder / "tree.tar"
    archive.write_bytes(tree.stdout)
    with tarfile.open(archive) as tar:
        _extract(tar, folder / "tree")
    archive.unlink()
    old = folder / "tree" / path.relative_to(root)
    if not old.exists():
        shutil.rmtree(folder, ignore_errors=True)
        raise UsageError(f"--rev {rev}: {path.relative_to(root)} did not exist at that revision")
    return folder, old


def _extract(tar: tarfile.TarFile, where: Path) -> None:
    """Extract git's archive of the revision, refusing what escapes ``where``: the ``data`` filter
    where Python has it (3.11.4 and later); before that, the same check by hand (Debian 12 ships
    3.11.2)."""
    if hasattr(tarfile, "data_filter"):
        tar.extractall(where, filter="data")
        return
    root = where.resolve()
    for member in tar.getmembers():
        target = (where / member.name).resolve()
        if not (member.isfile() or member.isdir()) or not target.is_relative_to(root):
            raise UsageError(f"the archive of the revision holds {member.name!r}, which is not a plain file "
                             "inside it; plan the manifest from a checkout instead")
    tar.extractall(where)  # noqa: S202 (every member checked above)
