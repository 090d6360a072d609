"""Small SQLAlchemy helpers shared by the sql connector and the state store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event


def sqlalchemy_url(url: str, base_dir: Path) -> sa.URL:
    """Parse ``url``; a relative SQLite file path resolves from ``base_dir`` (the manifest's folder)."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        path = Path(parsed.database)
        if not path.is_absolute():
            parsed = parsed.set(database=str((base_dir / path).resolve()))
    return parsed


def sqlite_savepoints(engine: sa.Engine) -> None:
    """Let pysqlite run SAVEPOINTs: SQLAlchemy's documented recipe (pysqlite's own BEGIN handling breaks them)."""
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql("BEGIN")


def driver_reason(error: Exception) -> str:
    """The driver's own message, without SQLAlchemy's statement dump (which may hold values)."""
    orig = getattr(error, "orig", None)
    return str(orig if orig is not None else error).strip().splitlines()[0]
