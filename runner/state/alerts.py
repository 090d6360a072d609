"""Alert episodes in the state store (``runner/engine/notify.py``): what is open, since when, and
whether it was announced."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from runner.state import tables as t
from runner.state.base import now_iso
from runner.state.store import StateStore


def open_episodes(store: StateStore, pipeline: str) -> dict[str, dict[str, Any]]:
    a = t.alerts.c
    return {kind: {"since": since, "detail": detail, "delivered": set(filter(None, delivered.split(",")))}
            for kind, since, detail, delivered in store.conn.execute(
                sa.select(a.kind, a.since, a.detail, a.delivered).where(a.pipeline == pipeline))}


def open_episode(store: StateStore, pipeline: str, kind: str, detail: str) -> None:
    store.conn.execute(t.alerts.insert().values(pipeline=pipeline, kind=kind, since=now_iso(), detail=detail,
                                                delivered=""))


def mark_delivered(store: StateStore, pipeline: str, kind: str, channels: set[str]) -> None:
    a = t.alerts.c
    store.conn.execute(t.alerts.update().where(a.pipeline == pipeline, a.kind == kind)
                       .values(delivered=",".join(sorted(channels))))


def close(store: StateStore, pipeline: str, kinds: Sequence[str]) -> None:
    if kinds:
        a = t.alerts.c
        store.conn.execute(t.alerts.delete().where(a.pipeline == pipeline, a.kind.in_(list(kinds))))


def last_success(store: StateStore, pipeline: str) -> str | None:
    """When a run (or an apply) last finished ok or partial."""
    r = t.runs.c
    return store.conn.execute(sa.select(sa.func.max(r.finished)).where(
        r.pipeline == pipeline, r.kind.in_(("run", "apply")), r.status.in_(("ok", "partial")))).scalar()


def first_run(store: StateStore, pipeline: str) -> str | None:
    r = t.runs.c
    return store.conn.execute(sa.select(sa.func.min(r.started)).where(
        r.pipeline == pipeline, r.kind.in_(("run", "apply")))).scalar()
