"""The processes bench/budget.py measures besides ``provision run``: the floors, and ``check``.

    python bench/budget_children.py load SCHEMA csv|sql DATA TARGET [--state STATE]
    python bench/budget_children.py update SCHEMA TARGET
    python bench/budget_children.py read TARGET
    python bench/budget_children.py check MANIFEST
    python bench/budget_children.py same SCHEMA TARGET OTHER

* ``load``: the floor of an initial cycle. The same people and groups (people.csv and groups.csv,
  or the sample's hr.db) read, scoped (status active or leave) and mapped in plain Python as the
  example's mapping says, then written with SQLAlchemy Core, one ``executemany`` per table in one
  transaction, into the schema the manifest's ``init_sql`` makes; generated keys are a key range
  (1..n) decided here. ``--state`` adds the issue's first intermediate floor: a state table
  (type, anchor, target id, a digest of the mapped row) in a SQLite file of its own, as
  provision keeps its state apart from the target.
* ``update``: the floor of a mapping-change re-evaluation with no source read: the target's
  active users read and their ``display_name`` written again upper-cased (the change
  bench/budget.py makes to the mapping), one ``executemany`` of UPDATEs by key.
* ``read``: the floor of ``check``: a plain paged read of the quickstart's target through the sql
  connector (bench/check.py's baseline too), which imports the connector and not the engine.
* ``check``: ``provision check`` without a source read (``RunOptions(no_import=True)``, which the
  command line has no flag for), as bench/check.py measures it.
* ``same``: exits 1, saying what differs, unless two targets hold the same users, groups and
  memberships once generated keys are replaced by the names they stand for: the proof that a
  floor wrote what provision wrote. In SQL (ATTACH, EXCEPT), so a million rows stay on disk.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

REPO = Path(__file__).resolve().parent.parent
IN_SCOPE = ("active", "leave")  # the examples' scope: status in [active, leave]
csv.field_size_limit(2**31 - 1)  # a big group's member list in groups.csv is over the 128 KiB default


@dataclass(frozen=True)
class Schema:
    """Where an example's target keeps users, groups and memberships (its init_sql makes them)."""

    init_sql: str  # in manifests/sql/
    users: str
    user_key: str
    generated: bool  # the keys are the database's (quickstart) or the HR ids (hr-sql-*)
    groups: str
    group_key: str
    members: str
    member_group: str
    member_user: str


SCHEMAS = {
    "quickstart": Schema("quickstart-target.sql", "users", "id", True, "groups", "id", "group_members", "group_id",
                         "user_id"),
    "hr": Schema("hr-target.sql", "accounts", "employee_id", False, "teams", "group_id", "team_members", "group_id",
                 "employee_id"),
}


# ---- reading the source ---------------------------------------------------------------------------


def csv_source(data: Path) -> tuple[Iterator[dict[str, str]], list[tuple[dict[str, str], list[str]]]]:
    """People (streamed) and groups with their member ids, from people.csv and groups.csv."""
    def people() -> Iterator[dict[str, str]]:
        with open(data / "people.csv", newline="", encoding="utf-8") as f:
            yield from csv.DictReader(f)

    with open(data / "groups.csv", newline="", encoding="utf-8") as f:
        groups = [(g, [m for m in g.pop("members").split(";") if m]) for g in csv.DictReader(f)]
    return people(), groups


def sql_source(data: Path) -> tuple[Iterator[dict[str, str]], list[tuple[dict[str, str], list[str]]]]:
    """The same from the sample's hr.db, read with SQLAlchemy Core."""
    engine = sa.create_engine(f"sqlite:///{data / 'hr.db'}")
    with engine.connect() as conn:
        people = [dict(r) for r in conn.execute(sa.text("SELECT * FROM employees")).mappings()]
        members: dict[str, list[str]] = {}
        for gid, eid in conn.execute(sa.text("SELECT group_id, employee_id FROM group_members")):
            members.setdefault(gid, []).append(eid)
        groups = [(dict(g), members.get(g["group_id"], []))
                  for g in conn.execute(sa.text("SELECT * FROM groups")).mappings()]
    engine.dispose()
    return iter(people), groups


# ---- mapping, as the examples' mappings say ---------------------------------------------------------


def mapped_user(p: dict[str, str], schema: Schema) -> dict[str, Any]:
    """mappings/person-to-app-user.yaml (or hr-person-to-account.yaml, which adds the HR id)."""
    row = {"user_name": p["email"].split("@")[0].lower(),
           "display_name": f"{p['preferred_name'] or p['first_name']} {p['last_name']}",
           "given_name": p["first_name"], "family_name": p["last_name"], "email": p["email"],
           "department": p["department"], "title": p["title"], "phone": p["phone"] or None,
           "manager_id": p["manager_id"] or None, "active": True}
    return row if schema.generated else {schema.user_key: p["employee_id"], **row}


def mapped_rows(schema: Schema, people: Iterator[dict[str, str]], groups: list[tuple[dict[str, str], list[str]]]
                ) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Users by HR id (key and manager reference resolved), groups, memberships; a reference to
    someone not provisioned is left out (null for the manager), as ``reference: user`` does."""
    users = {p["employee_id"]: mapped_user(p, schema) for p in people if p["status"] in IN_SCOPE}
    if schema.generated:
        for n, row in enumerate(users.values(), 1):
            row[schema.user_key] = n
    for row in users.values():
        manager = users.get(row["manager_id"])
        row["manager_id"] = manager[schema.user_key] if manager else None
    group_rows, member_rows = [], []
    for n, (g, member_ids) in enumerate(groups, 1):
        key = n if schema.generated else g["group_id"]
        group_rows.append({schema.group_key: key, "name": g["name"], "description": g["description"] or None})
        member_rows += [{schema.member_group: key, schema.member_user: users[m][schema.user_key]}
                        for m in member_ids if m in users]
    return users, group_rows, member_rows


def digest(row: dict[str, Any]) -> bytes:
    """What a state store keeps to see that a mapped row changed: a digest of its canonical JSON."""
    return hashlib.blake2b(json.dumps(row, sort_keys=True, default=str).encode(), digest_size=16).digest()


# ---- the floors -------------------------------------------------------------------------------------


def target_tables(target: Path, schema: Schema) -> tuple[sa.Engine, sa.MetaData]:
    """The target database with the example's schema (its init_sql), reflected."""
    engine = sa.create_engine(f"sqlite:///{target}")
    raw = engine.raw_connection()
    try:
        raw.driver_connection.executescript((REPO / "manifests" / "sql" / schema.init_sql).read_text())
    finally:
        raw.close()
    metadata = sa.MetaData()
    metadata.reflect(engine)
    return engine, metadata


def load(schema: Schema, source: str, data: Path, target: Path, state: Path | None) -> None:
    """The bulk-load floor (and with ``state``, the floor with a state table)."""
    people, groups = (csv_source if source == "csv" else sql_source)(data)
    users, group_rows, member_rows = mapped_rows(schema, people, groups)
    engine, tables = target_tables(target, schema)
    with engine.begin() as conn:
        conn.execute(tables.tables[schema.users].insert(), list(users.values()))
        conn.execute(tables.tables[schema.groups].insert(), group_rows)
        if member_rows:
            conn.execute(tables.tables[schema.members].insert(), member_rows)
    engine.dispose()
    if state is not None:
        keep_state(state, schema, users, group_rows)


def keep_state(state: Path, schema: Schema, users: dict[str, dict[str, Any]], groups: list[dict[str, Any]]) -> None:
    """The state table of the issue's first intermediate floor: (type, anchor, target id, row digest)."""
    metadata = sa.MetaData()
    table = sa.Table("objects", metadata, sa.Column("type", sa.String, primary_key=True),
                     sa.Column("anchor", sa.String, primary_key=True), sa.Column("target_id", sa.String),
                     sa.Column("digest", sa.LargeBinary))
    engine = sa.create_engine(f"sqlite:///{state}")
    metadata.create_all(engine)
    rows = [{"type": "user", "anchor": anchor, "target_id": str(row[schema.user_key]), "digest": digest(row)}
            for anchor, row in users.items()]
    rows += [{"type": "group", "anchor": str(g[schema.group_key]), "target_id": str(g[schema.group_key]),
              "digest": digest(g)} for g in groups]
    with engine.begin() as conn:
        conn.execute(table.insert(), rows)
    engine.dispose()


def update(schema: Schema, target: Path) -> None:
    """The re-evaluation floor: every active user's display_name written again, upper-cased."""
    engine = sa.create_engine(f"sqlite:///{target}")
    users = sa.Table(schema.users, sa.MetaData(), autoload_with=engine)
    key = users.c[schema.user_key]
    with engine.begin() as conn:
        rows = conn.execute(sa.select(key, users.c.display_name).where(users.c.active == sa.true())).all()
        conn.execute(users.update().where(key == sa.bindparam("k")).values(display_name=sa.bindparam("v")),
                     [{"k": k, "v": name.upper()} for k, name in rows])
    engine.dispose()


def plain_read(db: Path) -> int:
    """Page through the quickstart's target tables with the sql connector: the least a check must do."""
    from runner.connectors.base import ConnectorContext
    from runner.connectors.sql import SqlConnector

    objects = {"users": {"table": "users", "key": "id"},
               "groups": {"table": "groups", "key": "id",
                          "multi_valued": {"members": {"table": "group_members", "key": "group_id",
                                                       "value": "user_id"}}}}
    connector = SqlConnector({"type": "sql", "url": f"sqlite:///{db}", "objects": objects},
                             ConnectorContext("bench", db.parent))
    count = 0
    with connector:
        for name in objects:
            for page in connector.read(name):
                count += len(page.records)
    return count


def check(manifest: Path) -> None:
    """Prints how many objects the check found linked as the state says."""
    from bench.check import timed_check
    from runner.cli import tune_gc

    tune_gc()  # as `provision check` runs it (runner.cli.main), which has no flag for --no-import
    print(json.dumps({"linked": timed_check(manifest)}))


# ---- the proof that a floor wrote what provision wrote -----------------------------------------------


def views(schema: Schema, db: str, columns: list[str]) -> dict[str, str]:
    """SELECTs of ``db``'s users, groups and memberships with generated keys replaced by names."""
    s = schema
    kept = [f"u.{c}" for c in columns if c != "manager_id" and not (s.generated and c == s.user_key)]
    manager = f"(SELECT m.user_name FROM {db}.{s.users} m WHERE m.{s.user_key} = u.manager_id)"
    group_columns = "name, description" + ("" if s.generated else f", {s.group_key}")
    return {"users": f"SELECT {', '.join(kept)}, {manager} FROM {db}.{s.users} u",
            "groups": f"SELECT {group_columns} FROM {db}.{s.groups}",
            "memberships": f"SELECT g.name, u.user_name FROM {db}.{s.members} x "
                           f"JOIN {db}.{s.groups} g ON g.{s.group_key} = x.{s.member_group} "
                           f"JOIN {db}.{s.users} u ON u.{s.user_key} = x.{s.member_user}"}


def same(schema: Schema, target: Path, other: Path) -> int:
    """0 when both targets hold the same rows (generated keys aside), else 1 with the first differences."""
    import sqlite3

    con = sqlite3.connect(target)
    con.execute("ATTACH DATABASE ? AS other", (str(other),))
    columns = [r[1] for r in con.execute(f"PRAGMA table_info({schema.users})")]
    ours, theirs = views(schema, "main", columns), views(schema, "other", columns)
    problems = []
    for what in ours:
        for a, b, where in ((ours, theirs, str(target)), (theirs, ours, str(other))):
            extra = con.execute(f"SELECT * FROM ({a[what]} EXCEPT {b[what]}) LIMIT 3").fetchall()
            if extra:
                problems.append(f"{what} only in {where}: {extra}")
    con.close()
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    kinds = parser.add_subparsers(dest="kind", required=True)
    for kind in ("load", "update", "same"):
        sub = kinds.add_parser(kind)
        sub.add_argument("schema", choices=tuple(SCHEMAS))
        if kind == "load":
            sub.add_argument("source", choices=("csv", "sql"))
            sub.add_argument("data", type=Path)
        sub.add_argument("target", type=Path)
        if kind == "load":
            sub.add_argument("--state", type=Path)
        if kind == "same":
            sub.add_argument("other", type=Path)
    for kind, arg in (("read", "target"), ("check", "manifest")):
        kinds.add_parser(kind).add_argument(arg, type=Path)
    args = parser.parse_args(argv)
    if args.kind == "read":
        plain_read(args.target)
    elif args.kind == "check":
        check(args.manifest)
    elif args.kind == "load":
        load(SCHEMAS[args.schema], args.source, args.data, args.target, args.state)
    elif args.kind == "update":
        update(SCHEMAS[args.schema], args.target)
    else:
        return same(SCHEMAS[args.schema], args.target, args.other)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main())
