"""Custom SELECTs and custom statements: a join read as an object, and writes through the
manifest's own SQL (statements, stored procedures) with every value bound, never pasted in."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from runner.connectors.base import NotFound

from .conftest import Database, apply, by_anchor, op, read_all

HOSTILE = ["Robert'); DROP TABLE users;--", "'; DROP TABLE users; --", 'O\'Brien "the" \\ back\\slash',
           "1 OR 1=1", ":display_name", "%s %(x)s ?"]


def users_table(db: Database) -> sa.Table:
    md = sa.MetaData()
    users = sa.Table("users", md, sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
                     sa.Column("user_name", sa.String(64), nullable=False, unique=True),
                     sa.Column("display_name", sa.String(255)), sa.Column("dept_id", sa.Integer),
                     sa.Column("updated_at", sa.DateTime))
    sa.Table("depts", md, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
             sa.Column("label", sa.String(64)))
    md.create_all(db.engine)
    return users


STATEMENTS = {"users": {
    "table": "users", "key": "id", "generated_key": True,
    "statements": {
        "add": "INSERT INTO users (user_name, display_name) VALUES (:user_name, :display_name) RETURNING id",
        "update": "UPDATE users SET display_name = :display_name WHERE id = :_anchor",
        "delete": "DELETE FROM users WHERE id = :_anchor",
    }}}


def test_statements_bind_every_value_even_hostile_ones(db: Database):
    users_table(db)
    with db.connector(STATEMENTS) as connector:
        assert connector.capabilities("users").export_style == "whole_object"  # an update binds every column
        adds = [op("add", "users", attributes={"user_name": f"u{i}", "display_name": v}) for i, v in enumerate(HOSTILE)]
        results = apply(connector, *adds)
        assert all(r.ok for r in results), [r.error for r in results]
        stored = {r.attributes["user_name"]: r.attributes["display_name"] for r in read_all(connector, "users")[0]}
        assert stored == {f"u{i}": v for i, v in enumerate(HOSTILE)}  # verbatim, and the table is still there
        anchor = results[0].anchor
        [renamed] = apply(connector, op("update", "users", anchor=anchor,
                                        attributes={"user_name": "u0", "display_name": "x'); DELETE FROM users;--"}))
        assert renamed.ok, renamed.error
        assert connector.get("users", anchor).attributes["display_name"] == "x'); DELETE FROM users;--"
        assert [r.attributes["user_name"] for r in connector.lookup("users", {"display_name": HOSTILE[1]})] == ["u1"]
        [deleted] = apply(connector, op("delete", "users", anchor=anchor))
        [again] = apply(connector, op("delete", "users", anchor=anchor))
        assert deleted.ok and isinstance(again.error, NotFound)  # replaying a delete is recognised
        [missing] = apply(connector, op("update", "users", anchor="999", attributes={"display_name": "n"}))
        assert isinstance(missing.error, NotFound)
        assert len(read_all(connector, "users")[0]) == len(HOSTILE) - 1


def test_a_custom_select_is_an_object_with_delta_reads(db: Database):
    users = users_table(db)
    t0 = dt.datetime(2026, 5, 1, 12, 0)
    db.execute("INSERT INTO depts (id, label) VALUES (1, 'Sales'), (2, 'Legal')")
    db.execute(users.insert().values([{"user_name": f"u{i}", "display_name": f"U {i}", "dept_id": 1 + i % 2,
                                       "updated_at": t0} for i in range(5)]))
    objects = {"staff": {
        "query": "SELECT u.id, u.user_name, d.label AS department, u.updated_at FROM users u "
                 "JOIN depts d ON d.id = u.dept_id WHERE u.user_name <> 'u4'",
        "key": "id", "delta": {"watermark": "updated_at", "overlap": 60},
        "statements": {"update": "UPDATE users SET dept_id = (SELECT id FROM depts WHERE label = :department), "
                                 "updated_at = :now WHERE id = :_anchor"},
    }}
    with db.connector(objects) as connector:
        records, mark, _ = read_all(connector, "staff", page_size=2)
        found = by_anchor(records)
        assert sorted(r.attributes["user_name"] for r in found.values()) == ["u0", "u1", "u2", "u3"]
        assert found["1"].attributes["department"] == "Sales"
        assert connector.get("staff", "2").attributes["department"] == "Legal"
        assert sorted(r.anchor for r in connector.lookup("staff", {"department": "Legal"})) == ["2", "4"]
        assert connector.capabilities("staff").operations == frozenset({"update"})
        [moved] = apply(connector, op("update", "staff", anchor="1",
                                      attributes={"department": "Legal", "now": t0 + dt.timedelta(hours=1)}))
        assert moved.ok, moved.error
        changed, _, _ = read_all(connector, "staff", mark)
        assert [(r.anchor, r.attributes["department"]) for r in changed] == [("1", "Legal")]
        [refused] = apply(connector, op("delete", "staff", anchor="1"))
        assert not refused.ok and "no table" in str(refused.error)


PROCEDURES = {
    "postgresql": [
        """CREATE PROCEDURE add_user(p_name VARCHAR, p_display VARCHAR, INOUT p_id INTEGER DEFAULT NULL)
           LANGUAGE plpgsql AS $$ BEGIN
             INSERT INTO users (user_name, display_name) VALUES (p_name, p_display) RETURNING id INTO p_id;
           END $$""",
        """CREATE PROCEDURE set_display(p_id INTEGER, p_display VARCHAR) LANGUAGE plpgsql AS $$ BEGIN
             UPDATE users SET display_name = p_display WHERE id = p_id;
             IF NOT FOUND THEN RAISE EXCEPTION 'no user %', p_id USING ERRCODE = 'P0002'; END IF;
           END $$""",
    ],
    "mariadb": [
        """CREATE PROCEDURE add_user(IN p_name VARCHAR(64), IN p_display VARCHAR(255)) BEGIN
             INSERT INTO users (user_name, display_name) VALUES (p_name, p_display);
             SELECT LAST_INSERT_ID();
           END""",
        """CREATE PROCEDURE set_display(IN p_id INT, IN p_display VARCHAR(255)) BEGIN
             UPDATE users SET display_name = p_display WHERE id = p_id;
             IF ROW_COUNT() = 0 THEN SIGNAL SQLSTATE '02000' SET MESSAGE_TEXT = 'no such user'; END IF;
           END""",
    ],
}


def test_stored_procedures_take_bound_parameters(server_db: Database):
    users_table(server_db)
    server_db.execute(*PROCEDURES[server_db.dialect])
    call = "CALL add_user(:user_name, :display_name" + (", NULL)" if server_db.dialect == "postgresql" else ")")
    objects = {"users": {"table": "users", "key": "id", "generated_key": True,
                         "statements": {"add": call, "update": "CALL set_display(:_anchor, :display_name)"}}}
    with server_db.connector(objects) as connector:
        results = apply(connector, *[op("add", "users", attributes={"user_name": f"p{i}", "display_name": v})
                                     for i, v in enumerate(HOSTILE)])
        assert all(r.ok for r in results), [r.error for r in results]
        assert len({r.anchor for r in results}) == len(HOSTILE)
        stored = {r.anchor: r.attributes["display_name"] for r in read_all(connector, "users")[0]}
        assert stored == {r.anchor: v for r, v in zip(results, HOSTILE, strict=True)}
        [changed, missing] = apply(connector, op("update", "users", anchor=results[0].anchor,
                                                 attributes={"display_name": HOSTILE[1]}),
                                   op("update", "users", anchor="99999", attributes={"display_name": "x"}))
        assert changed.ok, changed.error
        assert isinstance(missing.error, NotFound), missing.error  # the procedure's "no data" SQLSTATE
        assert connector.get("users", results[0].anchor).attributes["display_name"] == HOSTILE[1]
