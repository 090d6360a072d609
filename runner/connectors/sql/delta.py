"""Delta reads: the watermark a read hands back, and the window a delta read starts from. Pure.

A column that grows on every change (``updated_at``, a row version, a change table's sequence)
is not a safe place to resume by itself: a transaction that took its value early and committed
late is invisible at the moment of a read and, once the read moved past its value, never seen.
So each delta read starts ``overlap`` behind the highest value seen, and the watermark carries
what was already read inside that window (row anchors with their values, or sequence numbers),
so those rows are not imported twice. A read also stops at the highest value present when it
started, so a row changed while it runs is left for the next run, not chased.

The watermark is JSON text: ``{"mode": "watermark"|"changes", "kind": "datetime"|"date"|"text"|
"number", "v": value, "seen": ..., "at": anchor}`` (``at``, changes mode only: the anchor of the
entry at sequence ``v``); a watermark of another mode (the manifest switched methods) or one that
cannot be read raises :class:`WatermarkExpired`, and the engine reads everything instead.

A watermark is also only as good as the source's memory: a change table reset, recreated, pruned
or restored from an older copy, or a table whose watermark column went backwards (a restore),
no longer holds what the watermark points at, and a delta read from it would silently skip
changes. :func:`check_changes` and :func:`check_watermark` decide that from one cheap look at the
source (MIN/MAX of an indexed column) and raise :class:`WatermarkExpired` saying why, so the
engine reads everything instead (which also finds the deletions).
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from runner import durations
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
    #: changes mode: the anchor the entry at sequence ``value`` named, so a table that was reset and
    #: filled up past the watermark again is told apart from the one that was read
    at: str | None = None

    def text(self) -> str:
        value = self.value.isoformat() if isinstance(self.value, dt.date) else _number(self.value)
        doc = {"mode": self.mode, "kind": self.kind, "v": value, "seen": self.seen}
        if self.at is not None:
            doc["at"] = self.at
        return json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str)


def parse(text: str, mode: str) -> Mark:
    """The stored watermark; WatermarkExpired when it is not one this mode wrote."""
    try:
        doc = json.loads(text)
        if not isinstance(doc, dict) or doc.get("mode") != mode or not isinstance(doc.get("seen"), dict):
            raise ValueError(doc)
        kind, value, at = doc.get("kind"), doc.get("v"), doc.get("at")
        if at is not None and not isinstance(at, str):
            raise ValueError(at)
        if kind == "datetime" and value is not None:
            value = dt.datetime.fromisoformat(value)
        elif kind == "date" and value is not None:
            value = dt.date.fromisoformat(value)
        return Mark(mode, kind, value, doc["seen"], at)
    except (ValueError, TypeError) as e:
        raise WatermarkExpired(f"the stored watermark is not a {mode} watermark of this connector ({e})") from None


@dataclass(frozen=True)
class ChangeTableNow:
    """What a change table holds at the start of a delta read: its lowest and highest sequence
    numbers (over every object sharing it: the sequence is the table's), and the anchor of the
    entry at the watermark's sequence, if that entry is there."""

    oldest: Any
    newest: Any
    at_mark: str | None


def check_changes(table: str, sequence: str, mark: Mark, now: ChangeTableNow) -> None:
    """WatermarkExpired when the change table no longer reaches back to the watermark.

    The rule: the entries after the watermark's sequence ``v`` must all still be there. So the
    table must hold a sequence at or above ``v`` (its highest below ``v``, or no entry at all,
    means it was reset, recreated, emptied or restored), its oldest entry must be at most
    ``v + 1`` (higher: entries after ``v`` were pruned unread), and the entry at ``v``, when it
    is still there, must name the anchor it named when it was read (another one: the table was
    reset and has filled up past ``v`` again). A table pruned of what was read, whose sequence
    carries on (``MAX(seq) >= v``, ``MIN(seq) <= v + 1``), passes: that is the normal case.
    """
    v = mark.value
    if v is None:
        return  # the table was empty at the last read: there is nothing to have lost
    if now.newest is None:
        raise WatermarkExpired(f"the change table {table} is empty, but the last run read it up to {sequence} {v}: "
                               "it was emptied, recreated or restored from an older copy (a job pruning it "
                               "should keep its newest entry, so the sequence can be seen to carry on)")
    if now.newest < v:
        raise WatermarkExpired(f"the change table {table} holds {sequence} values up to {_number(now.newest)}, "
                               f"below the stored watermark {v}: it was reset, recreated or restored from an "
                               "older copy")
    if now.oldest is not None and now.oldest > v + 1:
        raise WatermarkExpired(f"the change table {table} starts at {sequence} {_number(now.oldest)}, after "
                               f"{v} where the last run stopped: the entries in between were pruned before they "
                               "were read (prune only entries older than the time between two runs)")
    if mark.at is not None and now.at_mark is not None and now.at_mark != mark.at:
        raise WatermarkExpired(f"in the change table {table}, the entry at {sequence} {v} (the stored watermark) "
                               f"now names {now.at_mark!r}, where the last run read one naming {mark.at!r}: the "
                               "table was reset or restored from an older copy and has filled up again since")


def check_watermark(where: str, column: str, mark: Mark, high: Any) -> None:
    """WatermarkExpired when the watermark column's highest value lies below the watermark.

    The column only grows, so its highest value is at least the highest one read last time. A
    lower one (or none at all) means the values went backwards: the table was restored from an
    older copy or recreated, or the rows holding the newest values were deleted. Either way a
    delta read would skip the rows whose values now lie below the watermark; a full read does
    not, and also finds the deletions.
    """
    v = mark.value
    if v is None:
        return
    if high is None:
        raise WatermarkExpired(f"{where} has no {column} values any more, but the last run read up to {plain_mark(v)}: "
                               "the table was emptied, recreated or restored from an older copy")
    try:
        below = high < v
    except TypeError:
        raise WatermarkExpired(f"{column} in {where} now holds {plain_mark(high)!r}, which cannot be compared with "
                               f"the stored watermark {plain_mark(v)!r}: the column's type changed") from None
    if below:
        raise WatermarkExpired(f"the highest {column} in {where} is {plain_mark(high)}, below the stored watermark "
                               f"{plain_mark(v)}: the values went backwards (the table was restored from an older "
                               "copy, or the rows holding the newest values were deleted)")


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
        return durations.earlier_iso(text, overlap)
    except ValueError:
        raise ConnectionFailed(f"the watermark column holds {text[:40]!r}, which is neither an ISO 8601 timestamp "
                               "nor a number; store one of those, or set delta.overlap: 0") from None


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
