"""How far a run is: the engine reports, per object type and pass, how many objects it has done.

The engine knows nothing about terminals: it calls :meth:`Progress.report` once per page or per
stretch of results (never per object), and the command line decides what to show
(``runner/progress_view.py``: live bars on a terminal, JSON lines with ``--log-format json``,
nothing under cron). The default reports nowhere.
"""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def report(self, object_type: str, phase: str, done: int, total: int | None = None,
               finished: bool = False) -> None:
        """``done`` objects of ``object_type`` through ``phase`` (import, compute, export,
        recovery) so far, of ``total`` when it is known; ``finished`` once the pass is over."""


class Silent:
    def report(self, object_type: str, phase: str, done: int, total: int | None = None,
               finished: bool = False) -> None:
        pass


SILENT = Silent()
