"""A fresh database per test on SQLite, PostgreSQL and MariaDB, and helpers to drive the sql connector.

The servers are the machine's own (or the throwaway ones scripts/servers.sh starts, whose URLs it
exports as PROVISION_TEST_POSTGRESQL_URL / PROVISION_TEST_MARIADB_URL). Each test gets a database
of its own, created for it and dropped after; a server that cannot be reached fails the test.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from runner.connectors.base import ConnectorContext, Operation, Page, Record, Result
from runner.connectors.sql import SqlConnector

SERVERS = {
    "postgresql": os.environ.get("PROVISION_TEST_POSTGRESQL_URL", "postgresql+psycopg://postgres@127.0.0.1:5432"),
    "mariadb": os.environ.get("PROVISION_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306"),
}
ADMIN_DATABASE = {"postgresql": "postgres", "mariadb": ""}
DIALECTS = ["sqlite", "postgresql", "mariadb"]


@dataclass
class Database:
    """One test's database: its URL, an engine to arrange and inspect it, and how to make more."""

    dialect: str
    url: str
    engine: sa.Engine
    tmp_path: Path
    extra: list[str]

    def connector(self, objects: dict[str, Any], **config: Any) -> SqlConnector:
        """An sql connector on this database (not opened)."""
        return SqlConnector({"type": "sql", "url": self.url, "objects": objects, **config},
                            ConnectorContext("db", self.tmp_path))

    def execute(self, *statements: str | sa.Executable, **params: Any) -> list[Any]:
        rows: list[Any] = []
        with self.engine.begin() as conn:
            for statement in statements:
                result = conn.execute(sa.text(statement) if isinstance(statement, str) else statement, params)
                if result.returns_rows:
                    rows = list(result)
        return rows

    def make_partition(self, name: str) -> None:
        """A schema (PostgreSQL), a database (MariaDB) or an attached file (SQLite) named ``name``."""
        if self.dialect == "postgresql":
            self.execute(f"CREATE SCHEMA {name}")
        elif self.dialect == "mariadb":
            _admin(self.dialect, f"CREATE DATABASE {name}")
            self.extra.append(name)


def _admin(dialect: str, statement: str) -> None:
    engine = sa.create_engine(f"{SERVERS[dialect]}/{ADMIN_DATABASE[dialect]}", isolation_level="AUTOCOMMIT",
                              connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(statement)
    except sa.exc.OperationalError as exc:
        pytest.fail(f"{dialect} is not reachable at {SERVERS[dialect]} ({exc.orig}); start it (scripts/test does)",
                    pytrace=False)
    finally:
        engine.dispose()


def _database(dialect: str, tmp_path: Path) -> Iterator[Database]:
    if dialect == "sqlite":
        url = f"sqlite:///{tmp_path / 'test.db'}"
        engine = sa.create_engine(url)
        yield Database(dialect, url, engine, tmp_path, [])
        engine.dispose()
        return
    name = f"prov_sql_{secrets.token_hex(5)}"
    _admin(dialect, f"CREATE DATABASE {name}")
    url = f"{SERVERS[dialect]}/{name}"
    engine = sa.create_engine(url)
    database = Database(dialect, url, engine, tmp_path, [])
    try:
        yield database
    finally:
        engine.dispose()
        for extra in database.extra:
            _admin(dialect, f"DROP DATABASE IF EXISTS {extra}")
        _admin(dialect, f"DROP DATABASE IF EXISTS {name}" + (" WITH (FORCE)" if dialect == "postgresql" else ""))


@pytest.fixture(params=DIALECTS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A fresh database on SQLite, PostgreSQL and MariaDB in turn."""
    yield from _database(request.param, tmp_path)


@pytest.fixture(params=["postgresql", "mariadb"])
def server_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """The same on the two servers only (stored procedures)."""
    yield from _database(request.param, tmp_path)


def read_all(connector: SqlConnector, object: str, watermark: str | None = None, *,
             partition: str | None = None, page_size: int | None = None) -> tuple[list[Record], str | None, list[Page]]:
    """Every record of one read, the watermark of its last page, and the pages themselves."""
    pages = list(connector.read(object, partition, watermark, page_size=page_size))
    records = [r for p in pages for r in p.records]
    marks = [p.watermark for p in pages if p.watermark is not None]
    return records, (marks[-1] if marks else None), pages


def by_anchor(records: Sequence[Record]) -> dict[str, Record]:
    found: dict[str, Record] = {}
    for r in records:
        assert r.anchor not in found, f"{r.anchor} read twice"
        found[str(r.anchor)] = r
    return found


_ids = iter(range(1, 10**9))


def op(kind: str, object: str, anchor: str | None = None, partition: str | None = None, **fields: Any) -> Operation:
    return Operation(next(_ids), kind, object, anchor=anchor, partition=partition, **fields)


def apply(connector: SqlConnector, *ops: Operation) -> list[Result]:
    results = list(connector.apply(list(ops)))
    assert sorted(r.op_id for r in results) == sorted(o.id for o in ops)
    order = {o.id: i for i, o in enumerate(ops)}
    return sorted(results, key=lambda r: order[r.op_id])
