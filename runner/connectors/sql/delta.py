"""Delta reads: the watermark a read hands back, and the window a delta read starts from. Pure.

A column that grows on every change (``updated_at``, a row version, a change table's sequence)
is not a safe place to resume by itself: a transaction that took its value early and committed
late is invisible at the moment of a read and, once the read moved past its value, never seen.
So each delta read starts ``overlap`` behind the highest value seen, and the watermark carries
what was already read inside that window (row anchors with their values, or sequence numbers),
so those rows are not imported twice. A read also stops at the highest value present when it
started, so a row changed while it runs is left for the next run, not chased.

The watermark is JSON text: ``{"mode": "watermark"|"changes", "kind": "datetime"|"date"|"text"|
"number", "v": value, "seen": ...}``; a watermark of another mode (the manifest switched
methods) or one that cannot be read raises :class:`WatermarkExpired`, and the engine reads
everything instead.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from runner.connectors.base import ConnectionFailed, WatermarkExpired

DEFAULT_TIME_OVERLAP = 60  # seconds: longer than a typical HR transaction takes to commit
DEFAULT_SEQUENCE_OVERLAP = 1000  # change-table sequence numbers taken but not yet committed


@dataclass
class Mark:
    """Where a delta read resumes: the highest value seen and what was read at or near it."""

    mode: str
    kind: str | None = None
    value: Any = None
    #: watermark mode: anchor -> the plain watermark value it was read with; changes mode: sequence numbers
    seen: dict[str, Any] = field(default_factory=dict)

    def text(self) -> str:
        value = self.value.isoformat() if isinstance(self.value, dt.date) else _number(self.value)
        return json.dumps({"mode": self.mode, "kind": self.kind, "v": value, "seen": self.seen},
                          sort_keys=True, separators=(",", ":"), default=str)


def parse(text: str, mode: str) -> Mark:
    """The stored watermark; WatermarkExpired when it is not one this mode wrote."""
    try:
        doc = json.loads(text)
        if not isinstance(doc, dict) or doc.get("mode") != mode or not isinstance(doc.get("seen"), dict):
            raise ValueError(doc)
        kind, value = doc.get("kind"), doc.get("v")
        if kind == "datetime" and value is not None:
            value = dt.datetime.fromisoformat(value)
        elif kind == "date" and value is not None:
            value = dt.date.fromisoformat(value)
        return Mark(mode, kind, value, doc["seen"])
    except (ValueError, TypeError) as e:
        raise WatermarkExpired(f"the stored watermark is not a {mode} watermark of this connector ({e})") from None


def kind_of(value: Any) -> str:
    """What kind of value a watermark column holds, which decides how the overlap is subtracted."""
    if isinstance(value, dt.datetime):
        return "datetime"
    if isinstance(value, dt.date):
        return "date"
    if isinstance(value, bool):
        raise ConnectionFailed("the watermark column holds booleans: use a timestamp or an increasing number")
    if isinstance(value, int | float | decimal.Decimal):
        return "number"
    return "text"


def lower_bound(mark: Mark, overlap: float) -> Any:
    """The value a delta read starts from: ``overlap`` behind the highest value seen."""
    value = mark.value
    if value is None or not overlap:
        return value
    if mark.kind in ("datetime", "date"):
        return value - dt.timedelta(seconds=overlap)
    if mark.kind == "number":
        return value - (decimal.Decimal(str(overlap)) if isinstance(value, decimal.Decimal) else overlap)
    return shift_text(value, overlap)


def shift_text(text: str, overlap: float) -> str:
    """An ISO 8601 timestamp kept as text, ``overlap`` seconds earlier, written the same way (so
    comparing the texts still orders them as times)."""
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ConnectionFailed(f"the watermark column holds {text[:40]!r}, which is neither an ISO 8601 timestamp "
                               "nor a number; store one of those, or set delta.overlap: 0") from None
    earlier = when - dt.timedelta(seconds=overlap)
    if len(text) == 10:
        return earlier.date().isoformat()
    out = earlier.isoformat(sep=text[10], timespec="microseconds" if "." in text[19:] else "seconds")
    if text.endswith("Z"):
        out = out.replace("+00:00", "Z")
    return out


def trim(seen: Mapping[str, Any], floor: Any, kind: str | None) -> dict[str, Any]:
    """Only what a read starting at ``floor`` can meet again needs remembering."""
    if floor is None:
        return dict(seen)
    if kind == "datetime":
        return {k: v for k, v in seen.items() if dt.datetime.fromisoformat(v) >= floor}
    if kind == "date":
        return {k: v for k, v in seen.items() if dt.date.fromisoformat(v) >= floor}
    return {k: v for k, v in seen.items() if v >= _number(floor)}


def _number(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def plain_mark(value: Any) -> Any:
    """A watermark value as it is kept in ``seen`` (comparable after a JSON round trip)."""
    return value.isoformat() if isinstance(value, dt.date) else _number(value)
