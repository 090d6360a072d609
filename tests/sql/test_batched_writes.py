"""Updates, deletes and soft deletes of one apply batch go in bulk: a statement per table for
the batch (an executemany, or IN lists of keys), with the per-object outcomes the one-by-one
path gives: a missing row NotFound, a refused row failing alone with the database's reason."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from runner.connectors.base import NotFound, ObjectError, Operation, Result
from runner.connectors.sql import SqlConnector

from .conftest import Database, apply, op

ROLES = {"roles": {"table": "user_roles", "key": "user_id", "value": "role"}}
USERS = {"users": {"table": "users", "key": "id", "multi_valued": ROLES}}
SOFT = {"users": {"table": "users", "key": "id", "multi_valued": ROLES,
                  "soft_delete": {"column": "deleted", "value": 1, "live": 0}}}


def tables(db: Database, n: int = 0, roles: tuple[str, ...] = ()) -> tuple[sa.Table, sa.Table]:
    md = sa.MetaData()
    users = sa.Table("users", md, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
                     sa.Column("name", sa.String(64), unique=True), sa.Column("title", sa.String(64)),
                     sa.Column("deleted", sa.Integer, nullable=False, server_default="0"))
    user_roles = sa.Table("user_roles", md, sa.Column("row_id", sa.Integer, primary_key=True, autoincrement=True),
                          sa.Column("user_id", sa.Integer, nullable=False),
                          sa.Column("role", sa.String(32), nullable=False), sa.UniqueConstraint("user_id", "role"))
    md.drop_all(db.engine)
    md.create_all(db.engine)
    if n:
        db.execute(users.insert().values([{"id": i, "name": f"u{i}", "title": "old"} for i in range(1, n + 1)]))
    if n and roles:
        db.execute(user_roles.insert().values([{"user_id": i, "role": r} for i in range(1, n + 1) for r in roles]))
    return users, user_roles


@contextmanager
def statements(connector: SqlConnector) -> Iterator[list[tuple[str, bool]]]:
    """Every statement the connector sends: (its text in lower case, sent as an executemany)."""
    seen: list[tuple[str, bool]] = []

    def listener(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        seen.append((" ".join(statement.lower().replace('"', "").replace("`", "").split()), executemany))

    event.listen(connector.engine, "before_cursor_execute", listener)
    try:
        yield seen
    finally:
        event.remove(connector.engine, "before_cursor_execute", listener)


def sent(seen: list[tuple[str, bool]], prefix: str) -> list[bool]:
    """The executemany flags of the statements that start with ``prefix``."""
    return [many for text, many in seen if text.startswith(prefix)]


def rows(db: Database, users: sa.Table) -> dict[int, tuple[Any, ...]]:
    return {r.id: (r.name, r.title, r.deleted) for r in db.execute(sa.select(users))}


def roles_of(db: Database, user_roles: sa.Table) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    for r in db.execute(sa.select(user_roles).order_by(user_roles.c.user_id, user_roles.c.role)):
        found.setdefault(r.user_id, []).append(r.role)
    return found


def test_a_batch_of_updates_is_one_executemany(db: Database):
    users, _ = tables(db, 30)
    with db.connector(USERS) as connector, statements(connector) as seen:
        results = apply(connector, *[op("update", "users", anchor=str(i), attributes={"title": f"t{i}", "name": f"n{i}"})
                                     for i in range(1, 31)])
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    assert [r.anchor for r in results] == [str(i) for i in range(1, 31)]
    assert rows(db, users) == {i: (f"n{i}", f"t{i}", 0) for i in range(1, 31)}
    assert sent(seen, "update users") == [True]  # one executemany, not 30 statements
    assert not sent(seen, "rollback")


def test_updates_of_different_columns_go_one_executemany_per_set_of_columns(db: Database):
    users, _ = tables(db, 6)
    ops = [op("update", "users", anchor=str(i), attributes={"title": f"t{i}"} if i % 2 else {"name": f"n{i}"})
           for i in range(1, 7)]
    with db.connector(USERS) as connector, statements(connector) as seen:
        assert all(r.ok for r in apply(connector, *ops))
    assert sent(seen, "update users") == [True, True]
    assert rows(db, users) == {1: ("u1", "t1", 0), 2: ("n2", "old", 0), 3: ("u3", "t3", 0), 4: ("n4", "old", 0),
                               5: ("u5", "t5", 0), 6: ("n6", "old", 0)}


def test_a_missing_row_is_reported_alone_and_the_rest_is_applied(db: Database):
    users, _ = tables(db, 5)
    ops = [op("update", "users", anchor=a, attributes={"title": "new"}) for a in ("1", "2", "99", "4", "5")]
    with db.connector(USERS) as connector:
        results = apply(connector, *ops)
        assert [r.ok for r in results] == [True, True, False, True, True]
        assert isinstance(results[2].error, NotFound) and results[2].anchor == "99"
        assert str(results[2].error) == "object 'users': no row with key '99'"
        assert rows(db, users) == {1: ("u1", "new", 0), 2: ("u2", "new", 0), 3: ("u3", "old", 0),
                                   4: ("u4", "new", 0), 5: ("u5", "new", 0)}
        gone = apply(connector, *[op("delete", "users", anchor=a) for a in ("1", "98", "3")])
        assert [r.ok for r in gone] == [True, False, True]
        assert isinstance(gone[1].error, NotFound) and str(gone[1].error) == "object 'users': no row with key '98'"
        assert sorted(rows(db, users)) == [2, 4, 5]
        # an anchor that cannot be a key of the table is not there either
        [bad, fine] = apply(connector, op("update", "users", anchor="x1", attributes={"title": "z"}),
                            op("update", "users", anchor="2", attributes={"title": "z"}))
        assert isinstance(bad.error, NotFound) and fine.ok


def test_a_constraint_violation_fails_only_that_object_with_the_databases_reason(db: Database):
    users, _ = tables(db, 6)
    ops = [op("update", "users", anchor=str(i), attributes={"name": "u1" if i == 4 else f"n{i}"})
           for i in range(2, 7)]
    with db.connector(USERS) as connector, statements(connector) as seen:
        results = apply(connector, *ops)
    assert [r.ok for r in results] == [True, True, False, True, True]
    refused = results[2].error
    assert type(refused) is ObjectError and str(refused).startswith("rejected by the database: ")
    assert any(word in str(refused).lower() for word in ("unique", "duplicate")), refused
    assert rows(db, users) == {1: ("u1", "old", 0), 2: ("n2", "old", 0), 3: ("n3", "old", 0), 4: ("u4", "old", 0),
                               5: ("n5", "old", 0), 6: ("n6", "old", 0)}
    assert sent(seen, "update users")[0] is True  # tried in bulk first, then one by one
    assert len(sent(seen, "update users")) == 1 + len(ops)


def test_deletes_in_a_batch_remove_rows_and_child_rows_with_one_statement_per_table(db: Database):
    users, user_roles = tables(db, 10, ("a", "b"))
    with db.connector(USERS) as connector, statements(connector) as seen:
        results = apply(connector, *[op("delete", "users", anchor=str(i)) for i in range(1, 9)])
        assert all(r.ok for r in results) and [r.anchor for r in results] == [str(i) for i in range(1, 9)]
        assert len(sent(seen, "delete from users")) == 1 and len(sent(seen, "delete from user_roles")) == 1
        assert sorted(rows(db, users)) == [9, 10] and sorted(roles_of(db, user_roles)) == [9, 10]
        again = apply(connector, op("delete", "users", anchor="1"), op("delete", "users", anchor="2"))
        assert [type(r.error) for r in again] == [NotFound, NotFound]  # a second delete, as the replay contract wants


def test_soft_deletes_in_a_batch_are_one_update_and_keep_the_child_rows(db: Database):
    users, user_roles = tables(db, 6, ("a",))
    with db.connector(SOFT) as connector:
        with statements(connector) as seen:
            results = apply(connector, *[op("delete", "users", anchor=str(i)) for i in (1, 2, 3)])
        assert all(r.ok for r in results)
        assert sent(seen, "update users") == [False]  # one UPDATE ... WHERE id IN (...)
        assert not sent(seen, "delete")
        [there, missing] = apply(connector, op("delete", "users", anchor="6"), op("delete", "users", anchor="77"))
        assert there.ok and isinstance(missing.error, NotFound)
        db.execute("UPDATE users SET deleted = 0 WHERE id = 6")
        assert {i: r[2] for i, r in rows(db, users).items()} == {1: 1, 2: 1, 3: 1, 4: 0, 5: 0, 6: 0}
        assert sorted(roles_of(db, user_roles)) == [1, 2, 3, 4, 5, 6]
        assert connector.get("users", "1") is None and connector.get("users", "4") is not None
        # a soft-deleted row is not there for an update, nor for a second delete
        again = apply(connector, op("update", "users", anchor="1", attributes={"title": "x"}),
                      op("update", "users", anchor="4", attributes={"title": "x"}),
                      op("delete", "users", anchor="2"), op("delete", "users", anchor="5"))
        assert [r.ok for r in again] == [False, True, False, True]
        assert isinstance(again[0].error, NotFound) and isinstance(again[2].error, NotFound)


def test_child_table_differences_across_a_batch(db: Database):
    users, user_roles = tables(db, 8, ("a", "b"))
    before = {(r.user_id, r.role): r.row_id for r in db.execute(sa.select(user_roles))}
    ops = [op("update", "users", anchor="1", attributes={"roles": ["b", "c"]}),
           op("update", "users", anchor="2", attributes={"roles": []}),
           op("update", "users", anchor="3", attributes={"roles": ["a", "b"]}),  # unchanged
           op("update", "users", anchor="4", attributes={"title": "x", "roles": ["z"]}),
           op("update", "users", anchor="5", attributes={"title": "y"}, add_values={"roles": ["a", "c"]},
              remove_values={"roles": ["b", "q"]}),
           op("update", "users", anchor="6", add_values={"roles": ["d"]}),
           op("update", "users", anchor="7", remove_values={"roles": ["a", "b"]})]
    with db.connector(USERS) as connector, statements(connector) as seen:
        results = apply(connector, *ops)
    assert all(r.ok for r in results), [r.error for r in results]
    assert roles_of(db, user_roles) == {1: ["b", "c"], 3: ["a", "b"], 4: ["z"], 5: ["a", "c"], 6: ["a", "b", "d"],
                                        8: ["a", "b"]}
    after = {(r.user_id, r.role): r.row_id for r in db.execute(sa.select(user_roles))}
    assert all(after[k] == before[k] for k in after if k in before)  # rows that stay are not rewritten
    assert rows(db, users)[4] == ("u4", "x", 0) and rows(db, users)[5] == ("u5", "y", 0)
    # one query of what is stored for the whole lists, one for the values added; one insert, one delete
    assert len(sent(seen, "select user_roles")) == 2 and len(sent(seen, "insert into user_roles")) == 1
    deletes = sent(seen, "delete from user_roles")
    assert deletes == [True] if db.dialect != "mariadb" else 1 <= len(deletes) <= 5  # MariaDB: one per owner
    assert not sent(seen, "rollback")

    # a missing owner among them: it alone is NotFound, the others are written
    ops = [op("update", "users", anchor=str(i), attributes={"roles": ["c"]}) for i in (1, 2, 99, 3)]
    with db.connector(USERS) as connector:
        results = apply(connector, *ops)
    assert [r.ok for r in results] == [True, True, False, True] and isinstance(results[2].error, NotFound)
    assert roles_of(db, user_roles) == {1: ["c"], 2: ["c"], 3: ["c"], 4: ["z"], 5: ["a", "c"], 6: ["a", "b", "d"],
                                        8: ["a", "b"]}


def test_a_refused_child_row_fails_its_whole_operation_alone(db: Database):
    users, user_roles = tables(db, 4, ("a",))
    ops = [op("update", "users", anchor=str(i), attributes={"title": "new", "roles": [None] if i == 3 else ["b"]})
           for i in range(1, 5)]
    with db.connector(USERS) as connector:
        results = apply(connector, *ops)
    assert [r.ok for r in results] == [True, True, False, True]
    assert str(results[2].error).startswith("rejected by the database: ")
    assert rows(db, users)[3] == ("u3", "old", 0) and rows(db, users)[4] == ("u4", "new", 0)
    assert roles_of(db, user_roles) == {1: ["b"], 2: ["b"], 3: ["a"], 4: ["b"]}


def test_two_operations_on_one_row_go_one_by_one_in_order(db: Database):
    users, _ = tables(db, 3)
    with db.connector(USERS) as connector:
        results = apply(connector, op("update", "users", anchor="1", attributes={"title": "first"}),
                        op("update", "users", anchor="2", attributes={"title": "x"}),
                        op("update", "users", anchor="1", attributes={"title": "second"}),
                        op("update", "users", anchor="3", attributes={"title": "x"}))
    assert all(r.ok for r in results)
    assert rows(db, users)[1] == ("u1", "second", 0)


def test_keys_of_several_columns_are_batched_too(db: Database):
    md = sa.MetaData()
    people = sa.Table("people", md, sa.Column("country", sa.String(2), primary_key=True),
                      sa.Column("number", sa.Integer, primary_key=True, autoincrement=False),
                      sa.Column("title", sa.String(32)))
    md.create_all(db.engine)
    db.execute(people.insert().values([{"country": c, "number": n, "title": "old"} for c in ("DE", "FR")
                                       for n in range(1, 4)]))
    objects = {"people": {"table": "people", "key": ["country", "number"]}}
    with db.connector(objects) as connector, statements(connector) as seen:
        updated = apply(connector, *[op("update", "people", anchor=a, attributes={"title": "new"})
                                     for a in ("DE/1", "DE/2", "FR/1", "FR/9")])
        deleted = apply(connector, *[op("delete", "people", anchor=a) for a in ("FR/2", "FR/3", "XX/1")])
    assert [r.ok for r in updated] == [True, True, True, False] and isinstance(updated[3].error, NotFound)
    assert [r.ok for r in deleted] == [True, True, False] and isinstance(deleted[2].error, NotFound)
    assert sent(seen, "update people")[0] is True and sent(seen, "delete from people")[0] is True
    assert sorted((r.country, r.number, r.title) for r in db.execute(sa.select(people))) == [
        ("DE", 1, "new"), ("DE", 2, "new"), ("DE", 3, "old"), ("FR", 1, "new")]


def test_a_table_without_a_unique_key_is_written_one_by_one(db: Database):
    db.execute("CREATE TABLE loose (id INTEGER, title VARCHAR(32))")
    db.execute("INSERT INTO loose (id, title) VALUES (1, 'a'), (2, 'b'), (2, 'c')")
    with db.connector({"loose": {"table": "loose", "key": "id"}}) as connector, statements(connector) as seen:
        results = apply(connector, *[op("update", "loose", anchor=a, attributes={"title": "z"}) for a in ("1", "2", "3")])
    assert [r.ok for r in results] == [True, True, False]
    assert sent(seen, "update loose") == [False, False, False]


def _outcomes(results: list[Result]) -> list[tuple[Any, ...]]:
    return [(r.ok, r.anchor, type(r.error).__name__, str(r.error) if r.error else None) for r in results]


@pytest.mark.parametrize("objects", [USERS, SOFT], ids=["delete", "soft_delete"])
def test_bulk_and_one_by_one_give_the_same_outcomes(db: Database, objects: dict[str, Any]):
    """The same mixed batch through the bulk path and through the one-by-one path (as before
    updates and deletes were batched): the same results, to the message, and the same rows."""
    def batch() -> list[Operation]:
        return [op("update", "users", anchor="1", attributes={"title": "t", "roles": ["a", "x"]}),
                op("update", "users", anchor="2", attributes={"name": "u3"}),  # taken
                op("update", "users", anchor="404", attributes={"title": "t"}),
                op("update", "users", anchor="4", attributes={"title": "t"}),
                op("update", "users", anchor="5", attributes={"name": "n5"}),
                op("disable", "users", anchor="6", attributes={"title": "off"}),
                op("update", "users", anchor="7", add_values={"roles": ["b", "c"]}),
                op("update", "users", anchor="8", attributes={"nope": 1}),
                op("update", "users", anchor="09", attributes={"title": "t"}),
                op("delete", "users", anchor="10"), op("delete", "users", anchor="11"),
                op("delete", "users", anchor="405"), op("delete", "users", anchor="x")]

    seen: list[Any] = []
    for batched in (False, True):
        users, user_roles = tables(db, 12, ("a", "b"))
        with db.connector(objects) as connector:
            connector.batched_writes = batched
            results = apply(connector, *batch())
        seen.append((_outcomes(results), rows(db, users), roles_of(db, user_roles)))
    assert seen[0] == seen[1]
    assert [r[0] for r in seen[1][0]] == [True, False, False, True, True, True, True, False, True, True, True,
                                          False, False]


def test_values_and_keys_of_a_bulk_write_are_bound_never_pasted(db: Database):
    hostile = ["'; DROP TABLE staff; --", "x' OR '1'='1", "a\\'b", 'q"uote', "semi;colon", "plain"]
    db.execute("CREATE TABLE staff (code VARCHAR(40) PRIMARY KEY, title VARCHAR(40))")
    for code in hostile:
        db.execute("INSERT INTO staff (code, title) VALUES (:code, 'old')", code=code)
    objects = {"staff": {"table": "staff", "key": "code"}}
    with db.connector(objects) as connector, statements(connector) as seen:
        updated = apply(connector, *[op("update", "staff", anchor=c, attributes={"title": c}) for c in hostile])
        deleted = apply(connector, *[op("delete", "staff", anchor=c) for c in hostile[:3]])
    assert all(r.ok for r in updated + deleted)
    assert sent(seen, "update staff") == [True] and sent(seen, "delete from staff") == [False]
    assert sorted((r.code, r.title) for r in db.execute("SELECT code, title FROM staff")) == sorted(
        (c, c) for c in hostile[3:])
    assert not [text for text, _ in seen for c in hostile[:3] if c.lower() in text]
