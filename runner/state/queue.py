"""A person acting on the export queue (``provision retry``, ``provision drop``): the rows to act on,
and lifting an export's back-off."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from runner.state import tables as t
from runner.state.store import StateStore


def pending_of(store: StateStore, type_id: int, anchors: Sequence[str]) -> dict[str, tuple[str, str | None]]:
    """source anchor -> (pending action, the run it is in flight with, or None)."""
    pe = t.pending.c
    return {anchor: (action, sent) for anchor, action, sent in store.conn.execute(
        sa.select(pe.source_anchor, pe.action, pe.sent_run)
        .where(pe.type_id == type_id, pe.source_anchor.in_(list(anchors))))}


def lift_backoff(store: StateStore, type_id: int, anchor: str) -> None:
    """Due now, and no longer held after a permanent error: the next run sends it."""
    pe = t.pending.c
    store.conn.execute(t.pending.update().where(pe.type_id == type_id, pe.source_anchor == anchor)
                       .values(next_attempt="", held=False))
