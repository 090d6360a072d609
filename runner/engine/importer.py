"""The import pass: read the source into the connector space, page by page.

A full import also finds anchors that vanished and marks them deleted. A source that cannot be
read raises ConnectionFailed before anything is marked, so an unreachable HR system never looks
like everyone left.
"""

from __future__ import annotations

from typing import Any

from runner.connectors.base import ConnectionFailed
from runner.engine.context import RunContext, TypeCounts
from runner.manifest.model import ObjectType
from runner.state.store import DuplicateAnchor


def import_type(ctx: RunContext, ot: ObjectType, counts: TypeCounts) -> None:
    store, type_id = ctx.store, ctx.type_ids[ot.name]
    connector = ctx.source(ot)
    store.begin_full_import(type_id)
    anchor_attr = ot.source.anchor
    changed = 0
    for page in connector.read(ot.source.object, ot.source.partition, None):
        records: list[tuple[str, dict[str, Any]]] = []
        for record in page.records:
            anchor = record.attributes.get(anchor_attr)
            if anchor in (None, ""):
                raise ConnectionFailed(f"{ot.name}: a record from {ot.source.connector}/{ot.source.object} "
                                       f"has no anchor attribute {anchor_attr!r}; check source.anchor")
            records.append((str(anchor), dict(record.attributes)))
        counts.imported += len(records)
        try:
            changed += store.import_page(type_id, records, full=True)
        except DuplicateAnchor as exc:
            store.rollback()
            raise ConnectionFailed(f"{ot.name}: anchor {exc.anchor!r} appears twice in "
                                   f"{ot.source.connector}/{ot.source.object}; anchors must be unique") from None
        ctx.heartbeat()
        store.commit()
    vanished = store.finish_full_import(type_id)
    store.commit()
    ctx.logger.info("%s: imported %d, %d new or changed, %d gone", ot.name, counts.imported, changed, vanished)
