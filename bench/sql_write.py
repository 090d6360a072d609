"""Benchmark: the sql connector's updates and deletes in bulk against one operation at a time.

    python bench/sql_write.py [--rows 20000] [--dialect sqlite,postgresql,mariadb] [--batch-size 500]

For each dialect a fresh database gets ``--rows`` users (a primary key, three text columns) with
one child row each (a multi-valued ``roles`` attribute), and the connector's ``apply`` is timed
on ``--rows`` operations of one kind, in its batches of ``--batch-size`` (one transaction each):

* update: one column set on every row (``title``);
* update + roles: the column and a role added (``add_values``), a child row inserted per user;
* delete: rows and their child rows removed;
* soft delete: the ``soft_delete`` column set.

"one by one" is the path every update and delete took before they were batched (a savepoint
and statements per operation, ``SqlConnector.batched_writes = False``); "batched" is the bulk
path (a statement per table and batch). Wall-clock seconds, the data reloaded before each run.
PostgreSQL and MariaDB come from PROVISION_TEST_POSTGRESQL_URL / PROVISION_TEST_MARIADB_URL
(default: the machine's own on 127.0.0.1); one that does not answer is skipped.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runner.connectors.base import ConnectorContext, Operation  # noqa: E402
from runner.connectors.sql import SqlConnector  # noqa: E402

SERVERS = {
    "postgresql": os.environ.get("PROVISION_TEST_POSTGRESQL_URL", "postgresql+psycopg://postgres@127.0.0.1:5432"),
    "mariadb": os.environ.get("PROVISION_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306"),
}
ADMIN = {"postgresql": "postgres", "mariadb": ""}
ROLES = {"roles": {"table": "user_roles", "key": "user_id", "value": "role"}}
OBJECTS = {"users": {"table": "users", "key": "id", "multi_valued": ROLES}}
SOFT = {"users": {**OBJECTS["users"], "soft_delete": {"column": "deleted", "value": 1, "live": 0}}}


def load(url: str, n: int) -> None:
    md = sa.MetaData()
    users = sa.Table("users", md, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
                     *[sa.Column(c, sa.String(128)) for c in ("name", "mail", "title")],
                     sa.Column("deleted", sa.Integer, nullable=False, server_default="0"))
    roles = sa.Table("user_roles", md, sa.Column("user_id", sa.Integer, primary_key=True, autoincrement=False),
                     sa.Column("role", sa.String(32), primary_key=True))
    engine = sa.create_engine(url)
    md.drop_all(engine)
    md.create_all(engine)
    with engine.begin() as conn:
        for start in range(0, n, 10000):
            ids = range(start + 1, min(n, start + 10000) + 1)
            conn.execute(users.insert(), [{"id": i, "name": f"user {i}", "mail": f"u{i}@example.org",
                                           "title": "Engineer"} for i in ids])
            conn.execute(roles.insert(), [{"user_id": i, "role": "staff"} for i in ids])
    engine.dispose()


def operations(kind: str, n: int) -> list[Operation]:
    if kind == "update":
        return [Operation(i, "update", "users", anchor=str(i), attributes={"title": "Manager"}) for i in range(1, n + 1)]
    if kind == "update + roles":
        return [Operation(i, "update", "users", anchor=str(i), attributes={"title": "Manager"},
                          add_values={"roles": ["admin"]}) for i in range(1, n + 1)]
    return [Operation(i, "delete", "users", anchor=str(i)) for i in range(1, n + 1)]


def timed(url: str, n: int, kind: str, batched: bool, batch_size: int, tmp: Path) -> float:
    load(url, n)
    objects = SOFT if kind == "soft delete" else OBJECTS
    connector = SqlConnector({"type": "sql", "url": url, "objects": objects, "batch_size": batch_size},
                             ConnectorContext("bench", tmp))
    connector.batched_writes = batched
    ops = operations(kind, n)
    with connector:
        start = time.perf_counter()
        results = list(connector.apply(ops))
        elapsed = time.perf_counter() - start
    bad = [r for r in results if not r.ok]
    if len(results) != n or bad:
        raise SystemExit(f"{kind}: {len(bad)} of {len(results)} failed, e.g. {bad[0].error if bad else None}")
    return elapsed


def database(dialect: str, tmp: Path) -> tuple[str, Any]:
    """A fresh database's URL, and how to drop it (None when the server does not answer)."""
    if dialect == "sqlite":
        return f"sqlite:///{tmp / 'bench.db'}", lambda: None
    name = f"prov_bench_{secrets.token_hex(4)}"
    admin = sa.create_engine(f"{SERVERS[dialect]}/{ADMIN[dialect]}", isolation_level="AUTOCOMMIT",
                             connect_args={"connect_timeout": 5})
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {name}")
    except sa.exc.OperationalError as e:
        admin.dispose()
        print(f"{dialect}: not reachable ({str(e.orig).splitlines()[0]}), skipped", file=sys.stderr)
        return "", None

    def drop() -> None:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}" + (" WITH (FORCE)" if dialect == "postgresql" else ""))
        admin.dispose()

    return f"{SERVERS[dialect]}/{name}", drop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--dialect", default="sqlite,postgresql,mariadb",
                        help="comma-separated: sqlite, postgresql, mariadb")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--kinds", default="update,update + roles,delete,soft delete")
    args = parser.parse_args()
    kinds = [k.strip() for k in args.kinds.split(",")]
    print(f"{args.rows} operations of each kind, batches of {args.batch_size}; seconds (operations per second)")
    print(f"{'dialect':<11} {'operation':<15} {'one by one':>18} {'batched':>18} {'speed-up':>9}")
    for dialect in [d.strip() for d in args.dialect.split(",")]:
        with tempfile.TemporaryDirectory() as tmp:
            url, drop = database(dialect, Path(tmp))
            if drop is None:
                continue
            try:
                for kind in kinds:
                    old = timed(url, args.rows, kind, False, args.batch_size, Path(tmp))
                    new = timed(url, args.rows, kind, True, args.batch_size, Path(tmp))
                    print(f"{dialect:<11} {kind:<15} {old:>7.2f} ({args.rows / old:>7.0f}/s) "
                          f"{new:>7.2f} ({args.rows / new:>7.0f}/s) {old / new:>8.1f}x", flush=True)
            finally:
                drop()


if __name__ == "__main__":
    main()
