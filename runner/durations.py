"""Durations as people write them in manifests and on the command line: ``90s``, ``5m``, ``24h``,
``7d``, ``2w``. One reading for every place that takes one (``run --time-limit``,
``source.full_import_every``, the sql connector's watermark overlap); each place says in its own
schema or message which forms it offers."""

from __future__ import annotations

import re

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([smhdw])\s*")


def seconds(text: str) -> float | None:
    """The duration in seconds, or None when ``text`` is not one."""
    found = _DURATION.fullmatch(text)
    return float(found.group(1)) * _UNITS[found.group(2)] if found else None
