"""Prometheus textfile metrics after each run (``--metrics-file PATH``).

node_exporter's textfile collector (or any scraper reading the exposition format) picks the file
up; it is written to a temporary file beside it and renamed into place, so a scrape never reads
half a file. Names follow the Prometheus conventions: a ``provision_`` prefix, base units
(seconds), ``_timestamp_seconds`` for points in time, gauges for what the last run saw and for
the queue as it is now. Labels: ``pipeline``, ``object_type``, ``action``, ``status``.

What an operator alerts on: ``provision_last_success_timestamp_seconds`` too old (cron stopped, or
every run fails), ``provision_quarantined == 1``, ``provision_held_exports > 0`` (the deletion
guard waits for a person), ``provision_failing_objects`` rising, ``provision_in_doubt_exports > 0``
after a run (a crash left work to settle).
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from pathlib import Path
from typing import Any

STATUSES = ("ok", "partial", "failed", "stopped", "quarantined", "interrupted", "refused")
ACTIONS = ("added", "updated", "renamed", "disabled", "deleted", "unchanged", "failed", "held", "recovered")


def render(summary: dict[str, Any], status: dict[str, Any]) -> str:
    """The exposition text for one pipeline: ``summary`` is the last run's (``Summary.as_json``),
    ``status`` what ``provision status`` reports now."""
    pipeline = summary["pipeline"]
    out = _Writer()
    base = {"pipeline": pipeline}
    out.family("provision_last_run_status", "gauge", "1 for the status the last run ended with, 0 for the others")
    for name in STATUSES:
        out.sample("provision_last_run_status", {**base, "status": name}, int(summary["status"] == name))
    out.family("provision_last_run_timestamp_seconds", "gauge", "When the last run finished (Unix time)")
    out.sample("provision_last_run_timestamp_seconds", base, _epoch(summary.get("finished") or summary["started"]))
    out.family("provision_last_run_duration_seconds", "gauge", "How long the last run took")
    out.sample("provision_last_run_duration_seconds", base,
               max(0.0, _epoch(summary.get("finished") or summary["started"]) - _epoch(summary["started"])))
    success = _last_success(summary, status)
    if success is not None:
        out.family("provision_last_success_timestamp_seconds", "gauge",
                   "When a run last finished ok or partial (Unix time)")
        out.sample("provision_last_success_timestamp_seconds", base, success)
    out.family("provision_last_run_objects", "gauge", "Objects of the last run, per object type and outcome")
    for object_type, counts in summary.get("object_types", {}).items():
        for action in ACTIONS:
            out.sample("provision_last_run_objects", {**base, "object_type": object_type, "action": action},
                       counts.get(action, 0) or 0)
    queue = (("provision_pending_exports", "pending", "Exports waiting to be sent, now"),
             ("provision_in_doubt_exports", "in_doubt", "Exports sent by a run that died before recording them"),
             ("provision_failing_objects", "failing", "Objects whose last compute or export failed"),
             ("provision_source_objects", "source_objects", "Objects the source holds"),
             ("provision_linked_objects", "linked", "Objects linked to a target object"))
    for name, key, text in queue:
        out.family(name, "gauge", text)
        for object_type, counts in status.get("object_types", {}).items():
            out.sample(name, {**base, "object_type": object_type}, counts.get(key, 0) or 0)
    out.family("provision_oldest_pending_age_seconds", "gauge", "How long the oldest pending export has waited")
    now = dt.datetime.now(dt.UTC).timestamp()
    for object_type, counts in status.get("object_types", {}).items():
        oldest = counts.get("oldest_pending")
        out.sample("provision_oldest_pending_age_seconds", {**base, "object_type": object_type},
                   round(max(0.0, now - _epoch(oldest)), 3) if oldest else 0)
    out.family("provision_held_exports", "gauge", "Deletes and disables the deletion guard holds, waiting for a person")
    held = status.get("held", {})
    for object_type in status.get("object_types", {}):
        out.sample("provision_held_exports", {**base, "object_type": object_type},
                   (held.get(object_type) or {}).get("count", 0))
    out.family("provision_quarantined", "gauge", "1 while the pipeline is quarantined")
    out.sample("provision_quarantined", base, int(bool(status.get("quarantine"))))
    return out.text()


def write(path: Path, text: str) -> None:
    """Atomically: a scraper reads the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _last_success(summary: dict[str, Any], status: dict[str, Any]) -> float | None:
    for run in [summary, *status.get("runs", [])]:
        if run.get("status") in ("ok", "partial") and run.get("kind", "run") in ("run", "apply") and run.get("finished"):
            return _epoch(run["finished"])
    return None


def _epoch(stamp: str) -> float:
    return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, text: str) -> None:
        self.lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]

    def sample(self, name: str, labels: dict[str, str], value: float) -> None:
        shown = ",".join(f'{k}="{_escape(str(v))}"' for k, v in labels.items())
        number = repr(float(value)) if isinstance(value, float) else str(value)
        self.lines.append(f"{name}{{{shown}}} {number}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def publish(manifest: Path, summary: dict[str, Any], path: Path) -> None:
    """After a run: its summary and the pipeline's status now, as metrics in ``path``."""
    from runner.engine.status import status

    write(path, render(summary, status(manifest, failures=0)))
