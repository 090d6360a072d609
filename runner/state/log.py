"""The provisioning log kept in the state store: one JSON entry per object action, kept for
``safety.log_retention`` days (pruned at the end of every run)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from runner.state import tables as t
from runner.state.base import Part, dumps


class Log(Part):
    """``store.log``: the provisioning log's entries."""

    def read_log(self, pipeline: str, run_id: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        c = t.log.c
        query = sa.select(c.entry).where(c.pipeline == pipeline).order_by(c.id).limit(limit)
        if run_id:
            query = query.where(c.run_id == run_id)
        return [json.loads(e) for e in self.conn.execute(query).scalars()]

    def write_log(self, entries: Sequence[dict[str, Any]], texts: Sequence[str] | None = None) -> None:
        """``texts``: the entries as JSON already (the log serialises each once, for here and its file)."""
        if entries:
            texts = texts if texts is not None else [dumps(e) for e in entries]
            self.store.bulk_insert(t.log, ("run_id", "time", "pipeline", "object_type", "anchor", "action", "result", "entry"),
                                   [(e["run_id"], e["time"], e["pipeline"], e["object_type"], e["anchor"], e["action"],
                                     e["result"], text) for e, text in zip(entries, texts, strict=True)])

    def prune_log(self, pipeline: str, before: str) -> int:
        """Delete the pipeline's log entries written before ``before`` (an ISO time, as entries
        carry it): one range delete on the (pipeline, time) index. Returns how many went."""
        c = t.log.c
        result = self.conn.execute(t.log.delete().where(c.pipeline == pipeline, c.time < before))
        return max(0, result.rowcount or 0)
