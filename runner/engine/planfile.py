"""A saved plan: ``provision plan FILE --out PLAN`` writes it, ``provision apply PLAN`` carries it out.

JSON Lines, so a plan of 100,000 operations is written and read without holding it whole as one
document: the first line is the header (format, pipeline, where the manifest came from and its
hash, when the plan was made and when it expires, the options it was made with, the counts), each
further line one :class:`~runner.engine.plan.PlanItem` with the fingerprints of its inputs.
Secrets never reach it: sensitive values are masked in the items as everywhere else, and the
text goes through the same redaction as the logs. It is written to a temporary file beside the
target and renamed into place, so a plan killed while saving leaves the old file or none.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from runner import secrets
from runner.engine.plan import PlanItem
from runner.errors import UsageError

FORMAT = "provision-plan"
VERSION = 1
DEFAULT_EXPIRY = "72h"
# the run options a plan is made with, and applied with again (engine/context.py:RunOptions)
OPTIONS = ("object_types", "no_import", "full_import", "full_export", "partition", "allow_deletes", "retry_now",
           "reconcile", "rebind")


@dataclass
class SavedPlan:
    path: Path
    header: dict[str, Any]
    items: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # type -> anchor -> item

    @property
    def manifest_path(self) -> Path:
        return Path(self.header["manifest"]["path"])

    @property
    def expires(self) -> dt.datetime:
        return dt.datetime.fromisoformat(self.header["expires"])

    def operations(self, object_type: str) -> dict[str, dict[str, Any]]:
        """The planned operations of one type that apply sends (held and waiting ones are not)."""
        return {a: i for a, i in self.items.get(object_type, {}).items() if not i.get("held") and not i.get("state")}

    def held(self) -> dict[str, dict[str, dict[str, Any]]]:
        return {name: {a: i for a, i in items.items() if i.get("held")} for name, items in self.items.items()}


class PlanWriter:
    """Items as they come, then the header once the counts are known."""

    def __init__(self, path: Path):
        self.path = path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._items: IO[str] = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115 - closed by finish/discard
        self.count = 0

    def add(self, item: PlanItem, state: str | None) -> None:
        out = item.as_json()
        if state:
            out["state"] = state
        self._items.write(secrets.redact(json.dumps(out, ensure_ascii=False, default=str, sort_keys=True)) + "\n")
        self.count += 1

    def add_batch(self, items: list[PlanItem], states: list[tuple[PlanItem, str | None]]) -> None:
        """Items with their fingerprints, each with the state it was planned in (waiting, blocked)."""
        for item, (_, state) in zip(items, states, strict=True):
            self.add(item, state)

    def finish(self, header: dict[str, Any]) -> None:
        header = {"format": FORMAT, "version": VERSION, **header, "items": self.count}
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(secrets.redact(json.dumps(header, ensure_ascii=False, default=str)) + "\n")
                self._items.seek(0)
                for line in self._items:
                    out.write(line)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        finally:
            self._items.close()

    def discard(self) -> None:
        self._items.close()


def header(summary: dict[str, Any], origin: dict[str, Any], manifest: Path, options: Any) -> dict[str, Any]:
    """The plan's first line: whose plan, of which manifest, made when and with which options,
    valid until when, and its counts."""
    created = dt.datetime.now(dt.UTC)
    return {"pipeline": summary["pipeline"], "plan_id": summary["run_id"], "status": summary["status"],
            "created": created.isoformat(timespec="seconds"),
            "expires": (created + dt.timedelta(seconds=options.plan_expires)).isoformat(timespec="seconds"),
            "manifest": {**origin, "path": str(manifest.resolve())},
            "options": {k: getattr(options, k) for k in OPTIONS}, "object_types": summary["object_types"]}


def read(path: Path) -> SavedPlan:
    """A saved plan, or a UsageError naming the file and what is wrong with it."""
    try:
        handle = path.open(encoding="utf-8")
    except OSError as e:
        raise UsageError(f"{path}: cannot read the plan: {e.strerror}") from None
    with handle:
        first = handle.readline()
        try:
            header = json.loads(first)
        except json.JSONDecodeError:
            header = None
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise UsageError(f"{path}:1: not a plan saved by `provision plan --out`") from None
        if header.get("version") != VERSION:
            raise UsageError(f"{path}:1: a plan of format version {header.get('version')}; this provision reads "
                             f"version {VERSION}: make the plan again with this version")
        saved = SavedPlan(path, header)
        for number, line in enumerate(handle, start=2):
            try:
                item = json.loads(line)
                saved.items.setdefault(item["object_type"], {})[item["anchor"]] = item
            except (json.JSONDecodeError, KeyError, TypeError):
                raise UsageError(f"{path}:{number}: not a plan entry (the file was edited or cut short): "
                                 "make the plan again") from None
    if len([1 for items in saved.items.values() for _ in items]) != header.get("items"):
        raise UsageError(f"{path}: holds fewer entries than its header says (cut short?): make the plan again")
    return saved
