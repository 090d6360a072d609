"""``provision retry`` and ``provision drop``: a person acts on one object's pending export.

``retry`` lifts the back-off (or the hold after a permanent error) of the named objects' pending
exports, so the next run sends them first thing; ``drop`` discards them, as MIM's "clear
pending export" does: the target keeps what it has until the source object changes again or a
reconciliation finds the difference. Both are written to the provisioning log with who did it.
An export in doubt (sent by a run that died) is neither retried nor dropped: the next run settles
it against the target first, and only then is it known whether it was applied.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass, field
from pathlib import Path

from runner.engine.provlog import ProvisioningLog
from runner.errors import UsageError
from runner.mapping.checks import load
from runner.state import queue
from runner.state.opening import Mode, open_store


@dataclass
class Outcome:
    done: list[tuple[str, str, str]] = field(default_factory=list)  # (object type, anchor, action)
    in_doubt: list[tuple[str, str]] = field(default_factory=list)


def retry(file: Path, anchors: list[str]) -> Outcome:
    return _act(file, anchors, "retry")


def drop(file: Path, anchors: list[str]) -> Outcome:
    return _act(file, anchors, "drop")


def _act(file: Path, anchors: list[str], what: str) -> Outcome:
    if not anchors:
        raise UsageError(f"name the objects to {what} with --anchor")
    manifest = load(file)
    store = open_store(manifest, Mode.WRITE)
    outcome = Outcome()
    try:
        found: dict[str, tuple[str, int, str, str | None]] = {}
        for ot in manifest.object_types:
            type_id = store.type_id(manifest.name, ot.name)
            for anchor, (action, sent) in queue.pending_of(store, type_id, anchors).items():
                found[anchor] = (ot.name, type_id, action, sent)
        missing = [a for a in anchors if a not in found]
        if missing:
            raise UsageError(f"no pending export for {', '.join(missing)} (nothing was changed); "
                             f"`provision pending {file}` lists the queue")
        log = ProvisioningLog(store, manifest.name, f"{what}-by-{_user()}", None)
        for anchor in dict.fromkeys(anchors):
            name, type_id, action, sent = found[anchor]
            if sent is not None:
                outcome.in_doubt.append((name, anchor))
                continue
            if what == "retry":
                queue.lift_backoff(store, type_id, anchor)
            else:
                store.exports.drop_pending(type_id, [anchor])
            log.add(name, anchor, what, "ok", changes={"pending": {"old": action, "new": None if what == "drop"
                                                                    else action}})
            outcome.done.append((name, anchor, action))
        log.flush()
        store.commit()
        return outcome
    finally:
        store.close()


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
