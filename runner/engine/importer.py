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
"""

from __future__ import annotations

import difflib
import hashlib
from typing import Any

from runner.connectors.base import ConnectionFailed, Record, WatermarkExpired
from runner.engine import cadence, safety
from runner.engine.context import RunContext, TypeCounts
from runner.engine.progress import SILENT
from runner.manifest.model import ObjectType
from runner.state.store import DuplicateAnchor


def import_type(ctx: RunContext, ot: ObjectType, counts: TypeCounts) -> None:
    for partition in ot.source.partitions:
        if ctx.options.partition is not None and partition != ctx.options.partition:
            continue
        _import_partition(ctx, ot, partition, counts)
    ctx.progress.report(ot.name, "import", counts.imported, finished=True)


def _import_partition(ctx: RunContext, ot: ObjectType, partition: str | None, counts: TypeCounts) -> None:
    store, type_id = ctx.store, ctx.type_ids[ot.name]
    delta = ctx.source_caps(ot).delta_read and not ctx.options.full_import
    watermark = store.imports.watermark(type_id, "source", partition) if delta else None
    if watermark is not None:
        due = cadence.due(ot.source.full_import_every, store.imports.watermark(type_id, "full", partition),
                          "full_import_every")
        if due:
            ctx.logger.info("%s%s: full import (%s)", ot.name, f" [{partition}]" if partition else "", due)
            watermark = None
    try:
        _read_partition(ctx, ot, partition, counts, watermark)
    except WatermarkExpired as exc:
        store.rollback()
        ctx.logger.warning("%s%s: %s; reading everything instead", ot.name, f" [{partition}]" if partition else "",
                           exc)
        store.imports.clear_watermark(type_id, "source", partition)
        store.commit()
        _read_partition(ctx, ot, partition, counts, None)


def _read_partition(ctx: RunContext, ot: ObjectType, partition: str | None, counts: TypeCounts,
                    watermark: str | None) -> None:
    store, type_id = ctx.store, ctx.type_ids[ot.name]
    connector = ctx.source(ot)
    delta_read = ctx.source_caps(ot).delta_read
    full = watermark is None
    fingerprint = _fingerprint(ctx, ot, partition) if full else None
    if fingerprint is not None and _unchanged(ctx, ot, partition, fingerprint, counts):
        return
    if full:
        store.imports.begin_full_import(type_id)
        # committed with the first page: a read killed halfway must not pass for the last whole one
        store.imports.clear_watermark(type_id, CONTENT, partition)
    changed = gone = read_here = 0
    all_read = True  # no record failed to read (a source whose records fail is read again each run)
    empty: str | None = None
    # a full read is expected to find about what the last one did (the progress display's total)
    shown = ctx.progress is not SILENT  # a count of the type's objects only when someone watches
    expected = (store.runs.count_present(type_id) or None) if full and shown else None
    for page in connector.read(ot.source.object, partition, watermark):
        empty = page.source_empty or empty
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
        read_here += len(records) + len(unreadable)
        try:
            changed += store.imports.import_page(type_id, records, full=full, partition=partition, natives=natives)
        except DuplicateAnchor as exc:
            store.rollback()
            raise ConnectionFailed(f"{ot.name}: anchor {exc.anchor!r} appears twice in "
                                   f"{ot.source.connector}/{ot.source.object}; anchors must be unique") from None
        if (deleted or deleted_natives) and not full:
            store.imports.mark_deleted(type_id, deleted, deleted_natives)
            gone += len(deleted) + len(deleted_natives)
        if unreadable:
            all_read = False
            counts.failed += len(unreadable)
            counts.touched += len(unreadable)
            keep = [a for a, _ in unreadable if a is not None]
            store.imports.keep_unreadable(type_id, keep, full)
            for anchor, error in unreadable:
                ctx.log.add(ot.name, anchor or "?", "import", "failed", error=error)
            ctx.log.flush()
        if page.watermark is not None and delta_read:
            store.imports.set_watermark(type_id, "source", partition, page.watermark)
        ctx.heartbeat()
        store.commit()
        ctx.check_stop()
    refused = False
    if full:
        present = store.runs.count_present(type_id, partition) if read_here == 0 else 0
        refused = bool(present) and safety.refuse_empty_read(ctx, ot, counts, present, empty)
        if refused:
            store.imports.begin_full_import(type_id)  # forget what was seen: nothing is marked deleted
        else:
            gone += store.imports.finish_full_import(type_id, partition)
            if fingerprint is not None and all_read and _fingerprint(ctx, ot, partition) == fingerprint:
                store.imports.set_watermark(type_id, CONTENT, partition, f"{fingerprint} {read_here}")
    if delta_read and not refused:
        mark = store.imports.watermark(type_id, "full", partition)
        store.imports.set_watermark(type_id, "full", partition, cadence.next_mark(full, mark))
    if full or delta_read:
        store.commit()
    ctx.logger.info("%s%s: %s import: %d read, %d new or changed, %d gone", ot.name,
                    f" [{partition}]" if partition else "", "full" if full else "delta", counts.imported, changed, gone)


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
    stored = ctx.store.imports.watermark(ctx.type_ids[ot.name], CONTENT, partition)
    digest, _, count = (stored or "").partition(" ")
    if digest != fingerprint or not count.isdigit():
        return False
    counts.imported += int(count)
    ctx.logger.info("%s%s: the source is unchanged since its last full import (%s records): not read again",
                    ot.name, f" [{partition}]" if partition else "", count)
    return True


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
