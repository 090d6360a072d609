"""The provisioning log: one JSON entry per object action, in the state store and a JSON-lines file.

Entries say what happened to which object and why: time, run id, object type, anchor, action,
the changed attributes with old and new values, result and error. Sensitive attributes show as
``***``, and every text goes through :func:`runner.secrets.redact`.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO, Any

from runner import secrets
from runner.state.records import dumps
from runner.state.store import StateStore, now_iso

MASK = secrets.MASK


def changes_for_log(new: dict[str, Any], old: dict[str, Any] | None, sensitive: frozenset[str]) -> dict[str, Any]:
    """``{attribute: {"old": ..., "new": ...}}`` for attributes whose value differs."""
    if not old:  # a create: every value set is new (most entries of an initial cycle); dumps sorts the keys
        if sensitive:
            return {name: {"old": None, "new": MASK if name in sensitive else after}
                    for name, after in new.items() if after is not None}
        return {name: {"old": None, "new": after} for name, after in new.items() if after is not None}
    out: dict[str, Any] = {}
    for name in sorted(set(new) | set(old)):
        before, after = old.get(name), new.get(name)
        if name not in new or before == after:
            continue
        if name in sensitive:
            out[name] = {"old": MASK if before is not None else None, "new": MASK if after is not None else None}
        else:
            out[name] = {"old": before, "new": after}
    return out


class ProvisioningLog:
    """Collects entries for the current batch; ``flush`` writes them with the batch's commit."""

    def __init__(self, store: StateStore | None, pipeline: str, run_id: str, file: Path | None):
        self.store, self.pipeline, self.run_id = store, pipeline, run_id
        self.batch: list[dict[str, Any]] = []
        self.failed: set[tuple[str, str, str, str | None]] = set()
        self.handle: IO[str] | None = None
        if file is not None:
            file.parent.mkdir(parents=True, exist_ok=True)
            self.handle = open(file, "a", encoding="utf-8")  # noqa: SIM115 (closed in close())

    def add(self, object_type: str, anchor: str, action: str, result: str, *,
            changes: dict[str, Any] | None = None, target_anchor: str | None = None,
            error: str | None = None) -> None:
        if result == "failed":  # an object computed again in the same run (a referrer) fails the same way once
            key = (object_type, anchor, action, error)
            if key in self.failed:
                return
            self.failed.add(key)
        entry = {"time": None, "run_id": self.run_id, "pipeline": self.pipeline,
                 "object_type": object_type, "anchor": anchor, "target_anchor": target_anchor,
                 "action": action, "result": result, "changes": changes or {},
                 "error": secrets.redact(error) if error else None}
        self.batch.append(entry)

    def flush(self) -> None:
        """Write the collected entries; the caller commits the state store right after.

        Each entry is serialised once, the batch redacted once, and that text goes to both the
        state store and the file: an export records a log entry per object, and building, encoding and
        scanning it twice cost a tenth of the export's own Python time. Entries are stamped
        with the time they are recorded at (one clock read per batch; a batch spans at most
        about a second of results)."""
        if not self.batch:
            return
        now = now_iso()
        for entry in self.batch:
            entry["time"] = entry["time"] or now
        # one redaction for the batch: JSON text holds no newline, and no secret or URL pattern
        # spans one, so the lines come back apart exactly as they went in
        text = secrets.redact("\n".join(dumps(entry) for entry in self.batch))
        if self.store is not None:
            self.store.log.write_log(self.batch, text.split("\n"))
        if self.handle is not None:
            self.handle.write(text + "\n")
            self.handle.flush()
        self.batch = []

    def close(self) -> None:
        self.flush()
        if self.handle is not None:
            self.handle.close()
