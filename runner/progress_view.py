"""What the command line shows of a run's progress (``runner/engine/progress.py`` reports it).

On a terminal: a live display with one line per object type and pass, its count, rate and ETA
(rich, which already solves redrawing, terminal widths and non-terminal output well; writing it
by hand would mean re-solving all three). Off a terminal (cron, CI): nothing, unless
``--log-format json`` asks for one JSON line on stderr when a pass starts, every EVERY objects
and when it ends, for log collectors. ``-q`` shows nothing either way.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any, TextIO

EVERY = 10_000  # objects between two JSON progress lines of one pass


class JsonLines:
    """One JSON line per pass start, every EVERY objects, and pass end, on ``out`` (stderr)."""

    def __init__(self, out: TextIO | None = None, every: int = EVERY):
        self.out, self.every = out or sys.stderr, every
        self.started: dict[tuple[str, str], float] = {}
        self.last: dict[tuple[str, str], int] = {}

    def report(self, object_type: str, phase: str, done: int, total: int | None = None,
               finished: bool = False) -> None:
        key = (object_type, phase)
        now = time.monotonic()
        first = key not in self.started
        if first:
            self.started[key], self.last[key] = now, 0
        if not (first or finished or done - self.last[key] >= self.every):
            return
        self.last[key] = done
        elapsed = now - self.started[key]
        rate = done / elapsed if elapsed > 0 else None
        line: dict[str, Any] = {"event": "progress", "object_type": object_type, "phase": phase, "done": done,
                                "total": total, "finished": finished, "seconds": round(elapsed, 3),
                                "per_second": round(rate, 1) if rate else None}
        if total and rate and not finished:
            line["eta_seconds"] = round(max(0, total - done) / rate, 1)
        self.out.write(json.dumps(line) + "\n")
        self.out.flush()


class Bars:
    """rich's live progress display, one task per object type and pass; stopped by :meth:`close`."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.view = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                             TextColumn("{task.fields[rate]}"), TimeRemainingColumn(),
                             console=Console(file=sys.stderr), transient=False)
        self.tasks: dict[tuple[str, str], Any] = {}
        self.started: dict[tuple[str, str], float] = {}
        self.view.start()

    def report(self, object_type: str, phase: str, done: int, total: int | None = None,
               finished: bool = False) -> None:
        key = (object_type, phase)
        if key not in self.tasks:
            self.tasks[key] = self.view.add_task(f"{object_type:>12} {phase:<9}", total=total, rate="")
            self.started[key] = time.monotonic()
        elapsed = time.monotonic() - self.started[key]
        rate = f"{done / elapsed:,.0f}/s" if elapsed > 0.5 and done else ""
        self.view.update(self.tasks[key], completed=done, total=done if finished else total, rate=rate)

    def close(self) -> None:
        self.view.stop()


def choose(quiet: bool, log_format: str, stream: TextIO | None = None) -> Any:
    """The view for this command: None (nothing shown), JSON lines, or bars on a terminal."""
    stream = stream or sys.stderr
    if quiet:
        return None
    if log_format == "json":
        return JsonLines(stream)
    if stream.isatty():
        try:
            return Bars()
        except ImportError:  # rich missing from a trimmed install: no bars, the run goes on
            return None
    return None
