"""Things a delta run does now and then: a full read of the source (``source.full_import_every``)
and a reconciliation with the target (``target.reconcile_every``).

Both are given as a number of runs or a duration, and both keep the same small mark in the
state store's watermarks: when the last one finished and how many runs went by without one.
"""

from __future__ import annotations

import datetime as dt
import json

from runner import durations


def due(every: int | str | None, mark: str | None, what: str) -> str | None:
    """Why the thing configured as ``what: every`` must happen now, or None. ``mark`` is the
    stored mark (:func:`next_mark`); a plain timestamp (what a store before marks kept) counts
    as "last done then"."""
    if every is None:
        return None
    last = read(mark)
    if last is None:
        return f"{what}: {every}; none recorded yet"
    if isinstance(every, int):
        return f"{what}: {every} runs" if last["deltas"] + 1 >= every else None
    age = dt.datetime.now(dt.UTC) - dt.datetime.fromisoformat(last["at"])
    if age.total_seconds() >= (durations.seconds(every) or 0):  # the schema admits only durations
        return f"{what}: {every}; the last one was at {last['at']}"
    return None


def next_mark(done: bool, mark: str | None) -> str:
    """The mark after a run that did it (``done``) or did not."""
    last = read(mark)
    if done or last is None:
        return json.dumps({"at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "deltas": 0})
    return json.dumps({"at": last["at"], "deltas": last["deltas"] + 1})


def read(mark: str | None) -> dict[str, object] | None:
    if not mark:
        return None
    try:
        last = json.loads(mark)
    except ValueError:
        last = None
    if isinstance(last, dict) and "at" in last:
        return {"at": str(last["at"]).replace("Z", "+00:00"), "deltas": int(last.get("deltas", 0))}
    try:  # a bare timestamp
        dt.datetime.fromisoformat(mark.replace("Z", "+00:00"))
    except ValueError:
        return None
    return {"at": mark.replace("Z", "+00:00"), "deltas": 0}
