"""The import pass: read the source into the connector space, page by page, partition by partition.

A connector that reads deltas (``Capabilities.delta_read``) gets the watermark stored for the
partition and returns only what changed, deletions included; the watermark its last page
returns is stored with the page's records, in the same commit. Without a watermark (first run,
``--full``, or a connector that cannot read deltas) the import is full, and anchors of that
partition that were not seen are marked deleted. A source that cannot be read raises
ConnectionFailed before anything is marked, so an unreachable HR system never looks like
everyone left.
"""

from __future__ import annotations

from typing import Any

from runner.connectors.base import ConnectionFailed, Record
from runner.engine.context import RunContext, TypeCounts
from runner.manifest.model import ObjectType
from runner.state.store import DuplicateAnchor


def import_type(ctx: RunContext, ot: ObjectType, counts: TypeCounts) -> None:
    for partition in ot.source.partitions:
        if ctx.options.partition is not None and partition != ctx.options.partition:
            continue
        _import_partition(ctx, ot, partition, counts)


def _import_partition(ctx: RunContext, ot: ObjectType, partition: str | None, counts: TypeCounts) -> None:
    store, type_id = ctx.store, ctx.type_ids[ot.name]
    connector = ctx.source(ot)
    delta = connector.capabilities().delta_read and not ctx.options.full_import
    watermark = store.watermark(type_id, "source", partition) if delta else None
    full = watermark is None
    if full:
        store.begin_full_import(type_id)
    changed = gone = 0
    for page in connector.read(ot.source.object, partition, watermark):
        records: list[tuple[str, dict[str, Any]]] = []
        natives: dict[str, str] = {}
        deleted: list[str] = []
        deleted_natives: list[str] = []
        for record in page.records:
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
        try:
            changed += store.import_page(type_id, records, full=full, partition=partition, natives=natives)
        except DuplicateAnchor as exc:
            store.rollback()
            raise ConnectionFailed(f"{ot.name}: anchor {exc.anchor!r} appears twice in "
                                   f"{ot.source.connector}/{ot.source.object}; anchors must be unique") from None
        if (deleted or deleted_natives) and not full:
            store.mark_deleted(type_id, deleted, deleted_natives)
            gone += len(deleted) + len(deleted_natives)
        if page.watermark is not None and connector.capabilities().delta_read:
            store.set_watermark(type_id, "source", partition, page.watermark)
        ctx.heartbeat()
        store.commit()
    if full:
        gone += store.finish_full_import(type_id, partition)
        store.commit()
    ctx.logger.info("%s%s: %s import: %d read, %d new or changed, %d gone", ot.name,
                    f" [{partition}]" if partition else "", "full" if full else "delta", counts.imported, changed, gone)


def _anchor(ot: ObjectType, record: Record) -> str:
    anchor = record.attributes.get(ot.source.anchor)
    if anchor in (None, ""):
        raise ConnectionFailed(f"{ot.name}: a record from {ot.source.connector}/{ot.source.object} "
                               f"has no anchor attribute {ot.source.anchor!r}; check source.anchor")
    return str(anchor)
