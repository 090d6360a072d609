"""Durations as people write them in manifests and on the command line: ``90s``, ``5m``, ``24h``,
``7d``, ``2w``. One reading for every place that takes one (``run --time-limit``,
``source.full_import_every``, the sql and rest connectors' watermark overlaps); each place says in its own
schema or message which forms it offers."""

from __future__ import annotations

import datetime as dt
import re

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([smhdw])\s*")


def seconds(text: str) -> float | None:
    """The duration in seconds, or None when ``text`` is not one."""
    found = _DURATION.fullmatch(text)
    return float(found.group(1)) * _UNITS[found.group(2)] if found else None


def earlier_iso(text: str, seconds: float) -> str:
    """An ISO 8601 time ``seconds`` earlier, written the way ``text`` is (a date stays a date, a
    ``Z`` stays a ``Z``, fractions stay), so that comparing the texts still orders them as times.
    Raises ValueError when ``text`` is not an ISO 8601 time (delta watermarks kept as text)."""
    when = dt.datetime.fromisoformat(text)
    earlier = when - dt.timedelta(seconds=seconds)
    if len(text) == 10:
        return earlier.date().isoformat()
    out = earlier.isoformat(sep=text[10], timespec="microseconds" if "." in text[19:] else "seconds")
    if text.endswith("Z"):
        out = out.replace("+00:00", "Z")
    return out
