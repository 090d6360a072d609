"""Approvals by object: what the deletion guard holds, released one object at a time.

``--allow-deletes 40`` lets any 40 through; an approval names the object and the action it was
approved for. A run sends an approved object's delete or disable although the guard holds the
others, and only while that same action is still what the object's pending export asks: if the
source changes its mind (the person is back), the approval no longer applies and is dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from runner.state import tables as t
from runner.state.base import Part, chunks, now_iso


@dataclass(frozen=True)
class Held:
    """A pending delete or disable the guard holds or would hold, and whether it is approved."""

    source_anchor: str
    action: str
    target_anchor: str | None
    name: str | None
    approved: bool


class Approvals(Part):
    """``store.approvals``: deletes and disables approved object by object."""

    def guarded_pending(self, type_id: int, actions: Sequence[str]) -> list[Held]:
        """The pending exports of ``actions`` (deletes, disables), each with whether it is approved
        for exactly that action."""
        pe, ap = t.pending.c, t.approvals.c
        approved = sa.select(ap.source_anchor).where(ap.type_id == pe.type_id, ap.source_anchor == pe.source_anchor,
                                                     ap.action == pe.action)
        rows = self.conn.execute(
            sa.select(pe.source_anchor, pe.action, pe.target_anchor, pe.name, sa.exists(approved))
            .where(pe.type_id == type_id, pe.action.in_(list(actions))).order_by(pe.source_anchor))
        return [Held(a, action, target, name, bool(ok)) for a, action, target, name, ok in rows]

    def approve(self, type_id: int, held: Sequence[Held], by: str | None, released_from: str | None) -> None:
        ap = t.approvals.c
        for part in chunks([h.source_anchor for h in held]):
            self.conn.execute(t.approvals.delete().where(ap.type_id == type_id, ap.source_anchor.in_(part)))
        if held:
            stamp = now_iso()
            self.conn.execute(t.approvals.insert(), [
                dict(type_id=type_id, source_anchor=h.source_anchor, action=h.action, approved_at=stamp,
                     approved_by=by, released_from=released_from) for h in held])

    def run_exists(self, pipeline: str, run_id: str) -> bool:
        r = t.runs.c
        return self.conn.execute(sa.select(r.run_id).where(r.pipeline == pipeline, r.run_id == run_id)).first() is not None

    def prune_approvals(self, type_id: int) -> int:
        """Drop approvals whose action is no longer pending: carried out, or no longer wanted."""
        pe, ap = t.pending.c, t.approvals.c
        still = sa.select(pe.source_anchor).where(pe.type_id == ap.type_id, pe.source_anchor == ap.source_anchor,
                                                  pe.action == ap.action)
        return self.conn.execute(t.approvals.delete().where(ap.type_id == type_id, ~sa.exists(still))).rowcount
