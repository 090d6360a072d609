"""Multi-valued attributes in a child table: read with one query per page, written as the
difference (rows that stay are not deleted and inserted again)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy import event

from .conftest import Database, apply, by_anchor, op, read_all

OBJECTS = {"users": {"table": "users", "key": "id",
                     "multi_valued": {"roles": {"table": "user_roles", "key": "user_id", "value": "role"}}}}


def tables(db: Database) -> tuple[sa.Table, sa.Table]:
    md = sa.MetaData()
    users = sa.Table("users", md, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
                     sa.Column("name", sa.String(64)))
    roles = sa.Table("user_roles", md, sa.Column("row_id", sa.Integer, primary_key=True, autoincrement=True),
                     sa.Column("user_id", sa.Integer, nullable=False), sa.Column("role", sa.String(32), nullable=False),
                     sa.UniqueConstraint("user_id", "role"))
    md.create_all(db.engine)
    return users, roles


def test_a_page_reads_its_child_values_in_one_query(db: Database):
    users, roles = tables(db)
    db.execute(users.insert().values([{"id": i, "name": f"u{i}"} for i in range(1, 8)]))
    db.execute(roles.insert().values([{"user_id": i, "role": r} for i in range(1, 8) for r in ("a", "b")]))
    with db.connector(OBJECTS) as connector:
        statements: list[str] = []
        event.listen(connector.engine, "before_cursor_execute",
                     lambda conn, cursor, statement, *a: statements.append(statement))
        records, _, pages = read_all(connector, "users", page_size=3)
        assert {a: r.attributes["roles"] for a, r in by_anchor(records).items()} == {str(i): ["a", "b"] for i in range(1, 8)}
        child_queries = [s for s in statements if "user_roles" in s]
        assert len(child_queries) == len([p for p in pages if p.records]) == 3


def test_a_whole_list_is_written_as_the_difference(db: Database):
    users, roles = tables(db)
    with db.connector(OBJECTS) as connector:
        [added] = apply(connector, op("add", "users", attributes={"id": 1, "name": "x", "roles": ["a", "b", "c"]}))
        assert added.ok, added.error
        before = {r.role: r.row_id for r in db.execute(sa.select(roles))}
        [updated] = apply(connector, op("update", "users", anchor="1", attributes={"roles": ["b", "c", "d"]}))
        assert updated.ok, updated.error
        after = {r.role: r.row_id for r in db.execute(sa.select(roles))}
        assert sorted(after) == ["b", "c", "d"]
        assert after["b"] == before["b"] and after["c"] == before["c"]  # kept rows were not touched
        # values added and removed: one already there and one already gone are no error (a replay)
        [delta] = apply(connector, op("update", "users", anchor="1", add_values={"roles": ["d", "e"]},
                                      remove_values={"roles": ["a", "b"]}))
        assert delta.ok, delta.error
        assert connector.get("users", "1").attributes["roles"] == ["c", "d", "e"]
        [gone] = apply(connector, op("delete", "users", anchor="1"))
        assert gone.ok and db.execute(sa.select(sa.func.count()).select_from(roles)) == [(0,)]
