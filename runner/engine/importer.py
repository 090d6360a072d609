"""The import pass: read the source into the connector space, page by page, partition by partition.

A connector that reads deltas (``Capabilities.delta_read``) gets the watermark stored for the
partition and returns only what changed, deletions included; the watermark its last page
returns is stored with the page's records, in the same commit. Without a watermark (first run,
``--full``, or a connector that cannot read deltas) the import is full, and anchors of that
partition that were not seen are marked deleted. ``source.full_import_every`` (a number of runs
or a duration) forces such a full read now and then: a change log or a timestamp column does not
show rows deleted without a trace, a full read does. A source that cannot be read raises
ConnectionFailed before anything is marked, so an unreachable HR system never looks like
everyone left.

A run fanned out over workers may cut a partition's full read into ranges (``Connector.ranges``)
that import slices store at once (:func:`import_range`); the coordinator then does what ends the
read (:func:`end_ranges`) once, after all of them: marking what no range read as deleted, keeping
the watermark and the fingerprint.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from runner.connectors.base import ConnectionFailed, Page, Record, WatermarkExpired
from runner.engine import cadence, safety
from runner.engine.compute import follow_config
from runner.engine.context import RunContext, TypeCounts
from runner.engine.progress import SILENT
from runner.manifest.model import ObjectType
from runner.mapping.scope import compile_scope
from runner.state.imports import new_read, range_mark
from runner.state.store import DuplicateAnchor


def import_type(ctx: RunContext, ot: ObjectType, counts: TypeCounts) -> None:
    follow_config(ctx, ot)  # the rules first: the import scopes new objects by those compute uses
    for partition in ot.source.partitions:
        if ctx.options.partition is not None and partition != ctx.options.partition:
            continue
        import_partition(ctx, ot, partition, counts)
    ctx.progress.report(ot.name, "import", counts.imported, finished=True)


def import_partition(ctx: RunContext, ot: ObjectType, partition: str | None, counts: TypeCounts) -> None:
    """Read one partition whole: a delta read from its watermark, or a full read."""
    store, type_id = ctx.store, ctx.type_ids[ot.name]
    watermark = start_watermark(ctx, ot, partition)
    try:
        _read_partition(ctx, ot, partition, counts, watermark)
    except WatermarkExpired as exc:
        store.rollback()
        ctx.logger.warning("%s%s: %s; reading everything instead", ot.name, _shown(partition), exc)
        store.imports.clear_watermark(type_id, "source", partition)
        store.commit()
        _read_partition(ctx, ot, partition, counts, None)


def start_watermark(ctx: RunContext, ot: ObjectType, partition: str | None) -> str | None:
    """Where the partition's read starts: its stored watermark (a delta read), or None for a full
    read (a first run, ``--full``, a connector without deltas, ``full_import_every`` due)."""
    store, type_id = ctx.store, ctx.type_ids[ot.name]
    delta = ctx.source_caps(ot).delta_read and not ctx.options.full_import
    watermark = store.imports.watermark(type_id, "source", partition) if delta else None
    if watermark is not None:
        due = cadence.due(ot.source.full_import_every, store.imports.watermark(type_id, "full", partition),
                          "full_import_every")
        if due:
            ctx.logger.info("%s%s: full import (%s)", ot.name, _shown(partition), due)
            watermark = None
    return watermark


@dataclass
class Found:
    """What the pages of one read stored: a partition's, or one range's of a read cut in ranges."""

    changed: int = 0  # new or changed objects (marked dirty)
    gone: int = 0  # deletions a delta read reported
    read: int = 0  # records, the unreadable ones included
    all_read: bool = True  # no record failed to read (a source whose records fail is read again each run)
    empty: str | None = None  # why the source holds nothing, when it says so (Page.source_empty)

    @classmethod
    def total(cls, parts: list[Found]) -> Found:
        return cls(sum(p.changed for p in parts), sum(p.gone for p in parts), sum(p.read for p in parts),
                   all(p.all_read for p in parts), next((p.empty for p in parts if p.empty), None))


def _read_partition(ctx: RunContext, ot: ObjectType, partition: str | None, counts: TypeCounts,
                    watermark: str | None) -> None:
    store, type_id = ctx.store, ctx.type_ids[ot.name]
    full = watermark is None
    fingerprint = _fingerprint(ctx, ot, partition) if full else None
    if fingerprint is not None and _unchanged(ctx, ot, partition, fingerprint, counts):
        return
    if full:
        store.imports.begin_full_import(type_id)
        # committed with the first page: a read killed halfway must not pass for the last whole one
        store.imports.clear_watermark(type_id, CONTENT, partition)
    # a full read is expected to find about what the last one did (the progress display's total)
    shown = ctx.progress is not SILENT  # a count of the type's objects only when someone watches
    expected = (store.runs.count_present(type_id) or None) if full and shown else None
    pages = ctx.source(ot).read(ot.source.object, partition, watermark)
    found = _store_pages(ctx, ot, partition, pages, counts, full, ctx.source_caps(ot).delta_read, expected)
    _end_read(ctx, ot, partition, counts, found, full, fingerprint)


def _store_pages(ctx: RunContext, ot: ObjectType, partition: str | None, pages: Iterator[Page], counts: TypeCounts,
                 full: bool, watermarks: bool, expected: int | None = None) -> Found:
    """Store a read's pages, one commit each: records hashed and compared with what the state
    holds, deletions a delta read reports, records that could not be read; with ``watermarks``,
    the watermark a page carries, in the page's commit."""
    store, type_id = ctx.store, ctx.type_ids[ot.name]
    # new objects are scoped as they are stored, if the state's rules are the ones compute will
    # use (a changed mapping or scope makes compute evaluate every object again anyway)
    scope = compile_scope(ot.scope) if store.config_hash(type_id) == ot.config_hash() else None
    found = Found()
    for page in pages:
        found.empty = page.source_empty or found.empty
        records: list[tuple[str, dict[str, Any]]] = []
        natives: dict[str, str] = {}
        deleted: list[str] = []
        deleted_natives: list[str] = []
        unreadable: list[tuple[str | None, str]] = []
        for record in page.records:
            if record.error is not None:
                unreadable.append(_unreadable(ot, record))
                continue
            if record.deleted:
                anchor = record.attributes.get(ot.source.anchor)
                if anchor not in (None, ""):
                    deleted.append(str(anchor))
                elif record.anchor is not None:  # a deletion may carry only the connector's own key
                    deleted_natives.append(str(record.anchor))
                continue
            anchor = _anchor(ot, record)
            records.append((anchor, dict(record.attributes)))
            if record.anchor is not None:
                natives[anchor] = str(record.anchor)
        counts.imported += len(records)
        ctx.progress.report(ot.name, "import", counts.imported, expected)
        found.read += len(records) + len(unreadable)
        try:
            found.changed += store.imports.import_page(type_id, records, full=full, partition=partition,
                                                       natives=natives, scope=scope)
        except DuplicateAnchor as exc:
            store.rollback()
            raise ConnectionFailed(f"{ot.name}: anchor {exc.anchor!r} appears twice in "
                                   f"{ot.source.connector}/{ot.source.object}; anchors must be unique") from None
        if (deleted or deleted_natives) and not full:
            store.imports.mark_deleted(type_id, deleted, deleted_natives)
            found.gone += len(deleted) + len(deleted_natives)
        if unreadable:
            found.all_read = False
            counts.failed += len(unreadable)
            counts.touched += len(unreadable)
            keep = [a for a, _ in unreadable if a is not None]
            store.imports.keep_unreadable(type_id, keep, full)
            for anchor, error in unreadable:
                ctx.log.add(ot.name, anchor or "?", "import", "failed", error=error)
            ctx.log.flush()
        if page.watermark is not None and watermarks:
            store.imports.set_watermark(type_id, "source", partition, page.watermark)
        ctx.heartbeat()
        store.commit()
        ctx.check_stop()
    return found


def _end_read(ctx: RunContext, ot: ObjectType, partition: str | None, counts: TypeCounts, found: Found,
              full: bool, fingerprint: str | None, marks: Sequence[str] = ()) -> None:
    """What ends a read of a whole partition, once every page is stored: after a full read, the
    objects it did not see are marked deleted (unless the deletion guard refuses an empty read)
    and the source's fingerprint is kept; the mark ``full_import_every`` counts from. ``marks``:
    every range's, for a read cut in ranges."""
    store, type_id = ctx.store, ctx.type_ids[ot.name]
    delta_read = ctx.source_caps(ot).delta_read
    refused = False
    gone = found.gone
    if full:
        present = store.runs.count_present(type_id, partition) if found.read == 0 else 0
        refused = bool(present) and safety.refuse_empty_read(ctx, ot, counts, present, found.empty)
        if refused:
            store.imports.begin_full_import(type_id)  # forget what was seen: nothing is marked deleted
        else:
            gone += store.imports.finish_full_import(type_id, partition, marks)
            if fingerprint is not None and found.all_read and _fingerprint(ctx, ot, partition) == fingerprint:
                store.imports.set_watermark(type_id, CONTENT, partition, f"{fingerprint} {found.read}")
    if delta_read and not refused:
        mark = store.imports.watermark(type_id, "full", partition)
        store.imports.set_watermark(type_id, "full", partition, cadence.next_mark(full, mark))
    if full or delta_read:
        store.commit()
    ctx.logger.info("%s%s: %s import: %d read, %d new or changed, %d gone", ot.name, _shown(partition),
                    "full" if full else "delta", counts.imported, found.changed, gone)


# ---- a full read cut in ranges (a run fanned out over workers) ---------------------------------------

MAX_RANGES = 1000  # ranges of one read, at most (a range's number is part of its mark)


@dataclass
class RangedRead:
    """A partition's full read cut in ranges (``Connector.ranges``), one import slice each. The
    coordinator cuts it (:func:`cut`) before the slices and ends it (:func:`end_ranges`) once every
    range is stored: what ends a full read happens there, once, as after the last page of a whole
    read. Each range stamps what it reads with a mark of its own, all marks sharing ``read``."""

    partition: str | None
    tokens: list[str]
    read: str
    watermark: str | None  # where the next delta read resumes (Ranges.watermark)
    fingerprint: str | None  # the source's, before the cut

    def mark(self, index: int) -> str:
        return range_mark(self.read, index)

    def marks(self) -> list[str]:
        return [self.mark(i) for i in range(len(self.tokens))]


def cut(ctx: RunContext, ot: ObjectType, partition: str | None, count: int) -> RangedRead | None:
    """The partition's read cut in at most ``count`` ranges, when it is a full read and the
    source can cut it; None when the partition is read whole (a delta read, a source unchanged
    since its last full import, a connector without ranges, a table too small to cut)."""
    connector = ctx.source(ot)
    if count < 2 or not connector.can("ranges") or start_watermark(ctx, ot, partition) is not None:
        return None
    store, type_id = ctx.store, ctx.type_ids[ot.name]
    fingerprint = _fingerprint(ctx, ot, partition)
    if fingerprint is not None and not ctx.options.full_import and \
            _content(ctx, ot, partition, fingerprint) is not None:
        return None  # the slice that reads it whole finds it unchanged and reads nothing
    count = min(count, MAX_RANGES)
    ranges = connector.ranges(ot.source.object, partition, count)
    if ranges is None or len(ranges.tokens) < 2:
        return None
    if len(ranges.tokens) > count:
        raise ConnectionFailed(f"connector {ot.source.connector!r} cut {ot.source.object} in {len(ranges.tokens)} "
                               f"ranges, more than the {count} asked for")
    store.imports.clear_watermark(type_id, CONTENT, partition)  # a read cut halfway passes for no whole one
    store.commit()
    return RangedRead(partition, list(ranges.tokens), new_read(), ranges.watermark, fingerprint)


def import_range(ctx: RunContext, ot: ObjectType, partition: str | None, token: str, mark: str,
                 counts: TypeCounts, again: bool = False) -> dict[str, Any]:
    """Store one range of a full read cut in ranges, as the pages of a whole read are stored,
    stamped with the range's ``mark``; nothing is marked deleted here. ``again``: an earlier
    attempt may have stored part of it (its reader died): what it stamped is forgotten first, and
    the range is read again. Returns what :func:`end_ranges` sums."""
    store, type_id = ctx.store, ctx.type_ids[ot.name]
    store.imports.begin_full_import(type_id, mark)
    if again:
        store.imports.forget_stamps(type_id, mark)  # committed with the first page
    pages = ctx.source(ot).read_range(ot.source.object, token, partition)
    found = _store_pages(ctx, ot, partition, pages, counts, full=True, watermarks=False)
    store.commit()
    return {"mark": mark, "found": asdict(found)}


def end_ranges(ctx: RunContext, ot: ObjectType, ranged: RangedRead, outcomes: list[dict[str, Any]],
               counts: TypeCounts) -> None:
    """End a full read cut in ranges, once every range was stored (``outcomes``: what each
    :func:`import_range` returned): the objects no range read are marked deleted, the watermark
    of the cut and the fingerprint are kept. Without every range's outcome, nothing is."""
    store, type_id = ctx.store, ctx.type_ids[ot.name]
    marks = ranged.marks()
    parts = {o["mark"]: Found(**o["found"]) for o in outcomes if o.get("mark") in marks}
    if len(parts) != len(marks):
        raise ConnectionFailed(f"{ot.name}{_shown(ranged.partition)}: {len(marks) - len(parts)} ranges of the full "
                               "read were not read; nothing is marked deleted")
    found = Found.total(list(parts.values()))
    if ranged.watermark is not None and ctx.source_caps(ot).delta_read:
        store.imports.set_watermark(type_id, "source", ranged.partition, ranged.watermark)
    _end_read(ctx, ot, ranged.partition, counts, found, True, ranged.fingerprint, marks)


CONTENT = "content"  # the watermark side that keeps a source's fingerprint at its last whole full import


def _fingerprint(ctx: RunContext, ot: ObjectType, partition: str | None) -> str | None:
    """What the source's connector says a full read would return (Connector.fingerprint), with
    what makes records of it (the anchor attribute); None when the connector cannot tell."""
    found = ctx.source(ot).fingerprint(ot.source.object, partition)
    if found is None:
        return None
    return hashlib.blake2b(f"{ot.source.object}\n{ot.source.anchor}\n{found}".encode(), digest_size=20).hexdigest()


def _unchanged(ctx: RunContext, ot: ObjectType, partition: str | None, fingerprint: str, counts: TypeCounts) -> bool:
    """Whether the source holds exactly what the last whole full import read (a CSV export that
    has not changed since): then the state already says everything that read would, deletions
    included, and the partition is not read again. ``--full`` reads it anyway. The recorded
    count stands for what was read, so the summary reads as for a read that found nothing new."""
    if ctx.options.full_import:
        return False
    count = _content(ctx, ot, partition, fingerprint)
    if count is None:
        return False
    counts.imported += count
    ctx.logger.info("%s%s: the source is unchanged since its last full import (%s records): not read again",
                    ot.name, _shown(partition), count)
    return True


def _content(ctx: RunContext, ot: ObjectType, partition: str | None, fingerprint: str) -> int | None:
    """How many records the last whole full import read, when it found this same fingerprint."""
    stored = ctx.store.imports.watermark(ctx.type_ids[ot.name], CONTENT, partition)
    digest, _, count = (stored or "").partition(" ")
    return int(count) if digest == fingerprint and count.isdigit() else None


def _shown(partition: str | None) -> str:
    return f" [{partition}]" if partition else ""


def _unreadable(ot: ObjectType, record: Record) -> tuple[str | None, str]:
    """A record the connector could not read properly: it fails alone, and keeps what the state
    knew of it (a full import must not take it for deleted)."""
    anchor = record.attributes.get(ot.source.anchor) if record.attributes else None
    return (str(anchor) if anchor not in (None, "") else None), str(record.error)


def _anchor(ot: ObjectType, record: Record) -> str:
    """The record's anchor; a missing column and an empty cell get different messages, each
    saying where and what to do. The pass stops before anything is marked deleted."""
    where = record.location or f"{ot.source.connector}/{ot.source.object}"
    attr = ot.source.anchor
    if attr not in record.attributes:
        columns = list(record.attributes)
        close = difflib.get_close_matches(attr, columns, n=1)
        raise ConnectionFailed(f"{where}: no column {attr!r} (source.anchor of {ot.name}); the source has "
                               f"{', '.join(columns[:12])}{'...' if len(columns) > 12 else ''}"
                               + (f"; did you mean {close[0]!r}?" if close else "")
                               + "; fix source.anchor or the export's header (nothing is marked deleted)")
    value = record.attributes[attr]
    if value in (None, ""):
        raise ConnectionFailed(f"{where}: empty {attr!r}, the anchor of {ot.name}: every record needs one; "
                               "fix it in the source (nothing is marked deleted)")
    return str(value)
