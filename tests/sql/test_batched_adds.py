"""Adds into a table whose key the database generates go in bulk: a few multi-row
``INSERT ... RETURNING`` statements per set of columns, and each operation gets its own row's
key, whatever order the database returns the rows in; a refused row fails alone, and child rows
land under the right keys."""

from __future__ import annotations

import random

import sqlalchemy as sa

from runner.connectors.base import AlreadyExists, ObjectError

from .conftest import Database, apply, op
from .test_batched_writes import sent, statements

USERS = {"users": {"table": "users", "key": "id", "generated_key": True}}
GROUPS = {"groups": {"table": "groups", "key": "id", "generated_key": True,
                     "multi_valued": {"members": {"table": "group_members", "key": "group_id", "value": "user_id"}}}}


def users_table(db: Database, existing: int = 0) -> sa.Table:
    """users(id generated, user_name unique, title, mail), with ``existing`` rows already there
    and a gap in their ids, so new keys are neither 1, 2, 3 nor the batch's positions."""
    md = sa.MetaData()
    users = sa.Table("users", md, sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
                     sa.Column("user_name", sa.String(64), nullable=False, unique=True),
                     sa.Column("title", sa.String(64)), sa.Column("mail", sa.String(64)))
    md.create_all(db.engine)
    if existing:
        for i in range(existing):
            db.execute(users.insert().values(user_name=f"old{i}"))
        db.execute(users.delete().where(users.c.user_name == "old1"))
    return users


def names_by_id(db: Database, users: sa.Table) -> dict[str, str]:
    return {str(r.id): r.user_name for r in db.execute(sa.select(users))}


def test_a_batch_of_adds_is_one_insert_and_each_gets_its_own_key(db: Database):
    users = users_table(db, existing=3)
    names = [f"user{i:03}" for i in range(64)]
    random.Random(7).shuffle(names)  # not in any order the database might return them in
    ops = [op("add", "users", attributes={"user_name": n, "title": f"title of {n}"}) for n in names]
    with db.connector(USERS) as connector, statements(connector) as seen:
        results = apply(connector, *ops)
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    stored = names_by_id(db, users)
    assert [stored[r.anchor] for r in results] == names  # each operation has its own row's key
    assert len({r.anchor for r in results}) == 64
    assert {r.title for r in db.execute(sa.select(users)) if r.user_name in names} == {f"title of {n}" for n in names}
    assert len(sent(seen, "insert into users")) == 1  # not 64 one-row statements
    assert not sent(seen, "rollback")


def test_a_big_batch_goes_in_a_few_statements_each_key_to_its_own_operation(db: Database):
    """300 adds: statements of 256, 32, 8 and 4 rows (a few sizes the drivers prepare once; one
    statement on MariaDB, whose drivers prepare nothing), the keys matched across all of them."""
    users = users_table(db)
    names = [f"big{i:03}" for i in range(300)]
    random.Random(3).shuffle(names)
    with db.connector(USERS) as connector, statements(connector) as seen:
        results = apply(connector, *[op("add", "users", attributes={"user_name": n}) for n in names])
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    stored = names_by_id(db, users)
    assert [stored[r.anchor] for r in results] == names
    assert len(sent(seen, "insert into users")) == (1 if db.dialect == "mariadb" else 4)


def test_adds_with_different_columns_go_one_insert_per_set_of_columns(db: Database):
    users = users_table(db)
    ops = [op("add", "users", attributes={"user_name": "a", "title": "t"}),
           op("add", "users", attributes={"user_name": "b"}),
           op("add", "users", attributes={"user_name": "c", "title": "t", "mail": "c@example.org"}),
           op("add", "users", attributes={"user_name": "d", "title": "t"}),
           op("add", "users", attributes={"user_name": "e"}),
           op("add", "users", attributes={"user_name": "f", "title": "t", "mail": "f@example.org"})]
    with db.connector(USERS) as connector, statements(connector) as seen:
        results = apply(connector, *ops)
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    stored = {str(r.id): (r.user_name, r.title, r.mail) for r in db.execute(sa.select(users))}
    assert [stored[r.anchor] for r in results] == [("a", "t", None), ("b", None, None), ("c", "t", "c@example.org"),
                                                   ("d", "t", None), ("e", None, None), ("f", "t", "f@example.org")]
    assert len(sent(seen, "insert into users")) == 3


def test_rows_are_told_apart_by_any_column_that_differs_or_else_kept_in_order(db: Database):
    """No unique column: a column whose values all differ tells the rows apart (here the second);
    when none does, SQLAlchemy keeps the rows in order (in bulk where the database allows it)."""
    md = sa.MetaData()
    events = sa.Table("events", md, sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
                      sa.Column("kind", sa.String(16)), sa.Column("note", sa.String(32)))
    md.create_all(db.engine)
    objects = {"events": {"table": "events", "key": "id", "generated_key": True}}
    told = [op("add", "events", attributes={"kind": "same", "note": f"n{i}"}) for i in (5, 2, 9, 1, 7)]
    alike = [op("add", "events", attributes={"kind": "alike", "note": "same"}) for _ in range(4)]
    with db.connector(objects) as connector:
        results = apply(connector, *told)
        again = apply(connector, *alike)
    stored = {str(r.id): (r.kind, r.note) for r in db.execute(sa.select(events))}
    assert [stored[r.anchor] for r in results] == [("same", f"n{i}") for i in (5, 2, 9, 1, 7)]
    assert all(r.ok for r in again) and len({r.anchor for r in again}) == 4
    assert all(stored[r.anchor] == ("alike", "same") for r in again)


def test_a_value_stored_otherwise_than_sent_falls_back_to_one_by_one(db: Database):
    """"007" sent into an integer column comes back as 7: it matches no operation, so the batch
    is rolled back and each row inserted alone, each still with its own key."""
    generated = {"sqlite": "", "postgresql": " GENERATED BY DEFAULT AS IDENTITY", "mariadb": " AUTO_INCREMENT"}
    db.execute(f"CREATE TABLE badges (id INTEGER PRIMARY KEY{generated[db.dialect]}, code INTEGER)")
    objects = {"badges": {"table": "badges", "key": "id", "generated_key": True}}
    codes = ["007", "003", "012"]
    with db.connector(objects) as connector, statements(connector) as seen:
        results = apply(connector, *[op("add", "badges", attributes={"code": c}) for c in codes])
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    stored = {str(r.id): r.code for r in db.execute("SELECT id, code FROM badges")}
    assert [stored[r.anchor] for r in results] == [7, 3, 12]
    assert len(stored) == 3  # the bulk insert was rolled back, not kept beside the one-by-one rows
    assert len(sent(seen, "insert into badges")) == 1 + 3


def test_a_refused_row_fails_alone_and_the_others_keep_their_own_keys(db: Database):
    users = users_table(db)
    db.execute(users.insert().values(user_name="taken"))
    names = ["n1", "n2", "taken", "n4", "n5"]
    with db.connector(USERS) as connector:
        with statements(connector) as seen:
            results = apply(connector, *[op("add", "users", attributes={"user_name": n, "title": "t"}) for n in names])
        assert [r.ok for r in results] == [True, True, False, True, True]
        assert type(results[2].error) is AlreadyExists
        assert str(results[2].error).startswith("rejected by the database: ")
        assert len(sent(seen, "insert into users")) == 1 + len(names)  # tried in bulk, then one by one
        # a row without its NOT NULL column: the same, with the database's reason
        more = apply(connector, *[op("add", "users", attributes={"user_name": n, "title": "t"})
                                  for n in ("m1", None, "m3")])
    assert [r.ok for r in more] == [True, False, True]
    assert type(more[1].error) is ObjectError and str(more[1].error).startswith("rejected by the database: ")
    stored = names_by_id(db, users)
    assert [stored[r.anchor] for r in results + more if r.ok] == ["n1", "n2", "n4", "n5", "m1", "m3"]
    assert sorted(stored.values()) == ["m1", "m3", "n1", "n2", "n4", "n5", "taken"]


def test_child_rows_of_a_batch_of_adds_go_under_each_ones_own_key(db: Database):
    md = sa.MetaData()
    groups = sa.Table("groups", md, sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
                      sa.Column("name", sa.String(32), nullable=False))
    members = sa.Table("group_members", md, sa.Column("group_id", sa.Integer, primary_key=True, autoincrement=False),
                       sa.Column("user_id", sa.Integer, primary_key=True, autoincrement=False))
    md.create_all(db.engine)
    db.execute(groups.insert().values(name="first"))
    wanted = {"g-admins": [1, 2], "g-empty": [], "g-staff": [3, 1, 4, 5], "g-one": [9]}
    ops = [op("add", "groups", attributes={"name": name, "members": ids}) for name, ids in wanted.items()]
    with db.connector(GROUPS) as connector, statements(connector) as seen:
        results = apply(connector, *ops)
        assert all(r.ok for r in results), [r.error for r in results if not r.ok]
        read = {name: sorted(connector.get("groups", r.anchor).attributes["members"])
                for name, r in zip(wanted, results, strict=True)}
    assert {name: sorted(str(i) for i in ids) for name, ids in wanted.items()} == \
        {name: sorted(str(i) for i in ids) for name, ids in read.items()}
    by_id = {str(r.id): r.name for r in db.execute(sa.select(groups))}
    assert [by_id[r.anchor] for r in results] == list(wanted)
    owners: dict[str, list[int]] = {}
    for row in db.execute(sa.select(members)):
        owners.setdefault(by_id[str(row.group_id)], []).append(row.user_id)
    assert {k: sorted(v) for k, v in owners.items()} == {k: sorted(v) for k, v in wanted.items() if v}
    assert len(sent(seen, "insert into groups")) == 1 and len(sent(seen, "insert into group_members")) == 1
