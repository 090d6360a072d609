"""The options of a submitted run: what ``provision submit`` sends (plain JSON, through the broker)
and the engine's :class:`RunOptions` a worker builds from them."""

from __future__ import annotations

import time
from typing import Any

from runner.engine.context import RunOptions, StopFlag
from runner.errors import UsageError

# the run options a submitted run may carry, with their defaults: the same as `provision run`'s flags
KNOWN: dict[str, Any] = {
    "object_types": [], "no_import": False, "full": False, "full_export": False, "partition": None,
    "allow_deletes": None, "retry_now": False, "reconcile": False, "rebind": False, "time_limit": None,
    "fan_out": None,  # a number of compute slices per sweep (or true): the run is fanned out (coordinator.py)
}


def run_options(sent: dict[str, Any]) -> RunOptions:
    """The engine's options for a submitted run; an unknown key is refused (a newer submitter
    than this worker), not ignored. ``time_limit`` is ``[text, seconds]`` as ``--time-limit``
    parses it; the limit counts from when the worker starts the run."""
    unknown = sorted(set(sent) - set(KNOWN))
    if unknown:
        raise UsageError(f"this worker does not know the run options {', '.join(unknown)}; "
                         "upgrade provision on the workers")
    o = {**KNOWN, **sent}
    limit = o["time_limit"]
    stop = StopFlag(time.monotonic() + float(limit[1]), str(limit[0])) if limit else None
    return RunOptions(object_types=tuple(o["object_types"]), no_import=bool(o["no_import"]),
                      full_import=bool(o["full"]), full_export=bool(o["full_export"]), partition=o["partition"],
                      allow_deletes=o["allow_deletes"], retry_now=bool(o["retry_now"]),
                      reconcile=bool(o["reconcile"]), rebind=bool(o["rebind"]), stop=stop)
