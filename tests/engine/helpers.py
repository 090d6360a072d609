"""Helpers of the engine's tests on the quickstart's SQLite target."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def sql(db: Path, *statements: str) -> list[tuple]:
    """Run ``statements`` on ``db`` and commit; the rows of the last. Foreign keys are on, as the
    application itself deletes: a user's memberships go with the user."""
    con = sqlite3.connect(db)
    con.execute("PRAGMA foreign_keys = ON")
    try:
        rows: list[tuple] = []
        for statement in statements:
            rows = con.execute(statement).fetchall()
        con.commit()
        return rows
    finally:
        con.close()
