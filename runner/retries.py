"""Retries across runs: when an export that failed is sent again.

An export that fails with a retryable or an object error stays pending, with its attempts, its
last error and a next-attempt time. The first failure is retried by the next run (most failures
are passing: a timeout, a lock, a target restarting); each further run in a row in which it fails
pushes the next attempt back: 6 hours, 12 hours, 24 hours, then daily, as the Entra provisioning
service does. Until then, runs skip it (counted as ``waiting``); ``provision run --retry-now``
sends it anyway. An export failing with :class:`~runner.connectors.base.PermanentError` (the
target will reject it until its data changes) is not retried on a schedule at all: it is held
(counted as ``blocked``) until its source object changes.

Any change to the object's source (or to the mapping) makes compute write a new pending export,
which starts again with no back-off: the object is retried by that same run.

Times are ISO 8601 strings in UTC, the form ``now_iso`` writes, so they compare as text (and the
state store can range-scan them on an index). :func:`now` is the clock: tests replace it.
"""

from __future__ import annotations

import datetime as dt

HOUR = dt.timedelta(hours=1)
# the wait after the 1st, 2nd, 3rd... run in a row in which the export failed; the last repeats
SCHEDULE: tuple[dt.timedelta, ...] = (dt.timedelta(0), 6 * HOUR, 12 * HOUR, 24 * HOUR)


def now() -> dt.datetime:
    """The current time, in UTC. The one clock of retries and log retention (tests replace it)."""
    return dt.datetime.now(dt.UTC)


def stamp(when: dt.datetime) -> str:
    """``when`` as the state store keeps times: ``2026-12-01T18:00:00.000Z``."""
    return when.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def delay(failed_runs: int) -> dt.timedelta:
    """How long to wait after the ``failed_runs``-th run in a row in which the export failed."""
    return SCHEDULE[min(max(failed_runs, 1), len(SCHEDULE)) - 1]


def next_attempt(failed_runs: int) -> str:
    """When an export that has just failed for the ``failed_runs``-th run in a row is due again."""
    return stamp(now() + delay(failed_runs))


def due() -> str:
    """Pending exports whose next attempt is at or before this are sent by a run starting now."""
    return stamp(now())
