"""Benchmark: the sql connector's full read against a raw SELECT, and its delta reads after a 1% change.

    python bench/sql_delta.py [--people 100000] [--percent 1] [--dialects sqlite,postgresql,mariadb]

For each dialect, a fresh database gets ``--people`` employees (hr.db's columns, updated_at a
timestamp, one trigger-style change-table entry per row) and the connector reads them three
ways: whole (keyset pages of 1000), by the watermark column and by the change table after
``--percent`` of the rows changed. The floor is one ``SELECT *`` fetched whole through the
driver. Wall-clock seconds; memory is the Python heap's peak during a second, traced run of the
same read (tracemalloc), which stays one page for the connector and grows with the table for the floor.
PostgreSQL and MariaDB come from PROVISION_TEST_POSTGRESQL_URL / PROVISION_TEST_MARIADB_URL
(default: the machine's own on 127.0.0.1).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import secrets
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runner.connectors.base import ConnectorContext  # noqa: E402
from runner.connectors.sql import SqlConnector  # noqa: E402

SERVERS = {
    "postgresql": os.environ.get("PROVISION_TEST_POSTGRESQL_URL", "postgresql+psycopg://postgres@127.0.0.1:5432"),
    "mariadb": os.environ.get("PROVISION_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306"),
}
T0 = dt.datetime(2026, 1, 1, 8, 0, 0)


def tables() -> tuple[sa.MetaData, sa.Table, sa.Table]:
    md = sa.MetaData()
    people = sa.Table("employees", md, sa.Column("employee_id", sa.String(16), primary_key=True),
                      *[sa.Column(c, sa.String(128)) for c in ("first_name", "last_name", "email", "department",
                                                               "title", "status", "phone")],
                      sa.Column("updated_at", sa.DateTime, index=True))
    changes = sa.Table("changes", md, sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
                       sa.Column("table_name", sa.String(32)), sa.Column("anchor", sa.String(16)),
                       sa.Column("change_type", sa.String(8)), sa.Column("changed_at", sa.DateTime),
                       sa.Index("changes_by_table", "table_name", "seq"))
    return md, people, changes


def load(url: str, n: int) -> None:
    md, people, changes = tables()
    engine = sa.create_engine(url)
    md.create_all(engine)
    with engine.begin() as conn:
        for start in range(0, n, 10000):
            rows = [{"employee_id": f"E{i:07d}", "first_name": "Anna", "last_name": f"Smith {i}",
                     "email": f"anna.{i}@example.org", "department": "Sales", "title": "Engineer",
                     "status": "active", "phone": "+1 555 0100", "updated_at": T0 + dt.timedelta(seconds=i)}
                    for i in range(start, min(n, start + 10000))]
            conn.execute(people.insert(), rows)
            conn.execute(changes.insert(), [{"table_name": "employees", "anchor": r["employee_id"],
                                             "change_type": "add", "changed_at": r["updated_at"]} for r in rows])
    engine.dispose()


def change(url: str, n: int, percent: float) -> int:
    _, people, changes = tables()
    engine = sa.create_engine(url)
    k = max(1, int(n * percent / 100))
    later = T0 + dt.timedelta(seconds=n + 3600)
    with engine.begin() as conn:
        ids = [f"E{i:07d}" for i in range(0, n, max(1, n // k))][:k]
        conn.execute(people.update().where(people.c.employee_id == sa.bindparam("eid")).values(
            title="Manager", updated_at=later), [{"eid": e} for e in ids])
        conn.execute(changes.insert(), [{"table_name": "employees", "anchor": e, "change_type": "modify",
                                         "changed_at": later} for e in ids])
    engine.dispose()
    return k


def timed(label: str, fn, again=None) -> tuple[float, int, int]:  # type: ignore[no-untyped-def]
    """Seconds and count of ``fn()``, then the heap peak of ``again()`` (the same work) under
    tracemalloc, which slows Python several times and so is kept out of the timing."""
    start = time.perf_counter()
    count = fn()
    took = time.perf_counter() - start
    tracemalloc.start()
    (again or fn)()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return took, count, peak


def connector(url: str, mode: str) -> SqlConnector:
    delta = {"watermark": {"watermark": "updated_at"},
             "changes": {"changes": {"table": "changes", "object_column": "table_name"}}}[mode]
    return SqlConnector({"type": "sql", "url": url, "objects": {"employees": {"table": "employees",
                                                                              "key": "employee_id", "delta": delta}}},
                        ConnectorContext("bench", Path(".")))


def read_count(c: SqlConnector, watermark: str | None, marks: list[str]) -> int:
    count = 0
    for page in c.read("employees", None, watermark):
        count += len(page.records)
        if page.watermark:
            marks.append(page.watermark)
    return count


def bench(dialect: str, url: str, n: int, percent: float) -> list[tuple[str, float, int, int]]:
    load(url, n)
    rows: list[tuple[str, float, int, int]] = []
    engine = sa.create_engine(url)

    def floor() -> int:
        with engine.connect() as conn:
            return len(conn.exec_driver_sql("SELECT * FROM employees").fetchall())

    rows.append(("raw SELECT * (floor)", *timed("floor", floor)))
    engine.dispose()
    marks: dict[str, list[str]] = {"watermark": [], "changes": []}
    for mode in ("watermark", "changes"):
        with connector(url, mode) as c:
            rows.append((f"full read ({mode} mark)", *timed(mode, lambda c=c, m=mode: read_count(c, None, marks[m]),
                                                             lambda c=c: read_count(c, None, []))))
    k = change(url, n, percent)
    for mode in ("watermark", "changes"):
        with connector(url, mode) as c:
            got = timed(mode, lambda c=c, m=mode: read_count(c, marks[m][-1], []),
                        lambda c=c, m=mode: read_count(c, marks[m][-1], []))
            assert got[1] == k, (mode, got[1], k)
            rows.append((f"delta read, {mode} ({percent:g}%)", *got))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--people", type=int, default=100000)
    ap.add_argument("--percent", type=float, default=1.0)
    ap.add_argument("--dialects", default="sqlite,postgresql,mariadb")
    a = ap.parse_args()
    print(f"{a.people} rows, {a.percent:g}% changed\n")
    print("| dialect | what | seconds | rows | rows/s | peak heap MB |\n|---|---|---|---|---|---|")
    for dialect in a.dialects.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            admin = None
            if dialect == "sqlite":
                url = f"sqlite:///{tmp}/bench.db"
            else:
                name = f"prov_bench_{secrets.token_hex(4)}"
                admin = sa.create_engine(f"{SERVERS[dialect]}/{'postgres' if dialect == 'postgresql' else ''}",
                                         isolation_level="AUTOCOMMIT")
                with admin.connect() as conn:
                    conn.exec_driver_sql(f"CREATE DATABASE {name}")
                url = f"{SERVERS[dialect]}/{name}"
            try:
                for what, took, count, peak in bench(dialect, url, a.people, a.percent):
                    print(f"| {dialect} | {what} | {took:.2f} | {count} | {count / took:,.0f} | {peak / 1e6:.1f} |")
            finally:
                if admin is not None:
                    with admin.connect() as conn:
                        conn.exec_driver_sql(f"DROP DATABASE {name}" + (" WITH (FORCE)" if dialect == "postgresql"
                                                                        else ""))
                    admin.dispose()


if __name__ == "__main__":
    main()
