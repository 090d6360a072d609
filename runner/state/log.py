"""The provisioning log kept in the state store: one JSON entry per object action."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from runner.state import tables as t
from runner.state.base import Base, dumps


class LogMixin(Base):
    def read_log(self, pipeline: str, run_id: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        c = t.log.c
        query = sa.select(c.entry).where(c.pipeline == pipeline).order_by(c.id).limit(limit)
        if run_id:
            query = query.where(c.run_id == run_id)
        return [json.loads(e) for e in self.conn.execute(query).scalars()]

    def write_log(self, entries: Sequence[dict[str, Any]]) -> None:
        if entries:
            self.conn.execute(t.log.insert(), [
                dict(run_id=e["run_id"], time=e["time"], pipeline=e["pipeline"], object_type=e["object_type"],
                     anchor=e["anchor"], action=e["action"], result=e["result"], entry=dumps(e))
                for e in entries])
