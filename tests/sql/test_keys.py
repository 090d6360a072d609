"""Anchors of several key columns: read, found, written and read by delta as one anchor ``a/b``."""

from __future__ import annotations

import sqlalchemy as sa

from runner.connectors.base import NotFound

from .conftest import Database, apply, by_anchor, op, read_all

OBJECTS = {"accounts": {"table": "accounts", "key": ["region", "number"],
                        "multi_valued": {"roles": {"table": "account_roles", "key": ["region", "number"],
                                                   "value": "role"}},
                        "delta": {"watermark": "version"}}}


def test_a_key_of_two_columns_is_one_anchor(db: Database):
    md = sa.MetaData()
    sa.Table("accounts", md, sa.Column("region", sa.String(8), primary_key=True),
             sa.Column("number", sa.Integer, primary_key=True, autoincrement=False),
             sa.Column("name", sa.String(32)), sa.Column("version", sa.Integer))
    sa.Table("account_roles", md, sa.Column("region", sa.String(8)), sa.Column("number", sa.Integer),
             sa.Column("role", sa.String(16)))
    md.create_all(db.engine)
    with db.connector(OBJECTS) as connector:
        assert connector.capabilities("accounts").correlation == ("region", "number")
        results = apply(connector, *[op("add", "accounts", attributes={"region": r, "number": n, "name": f"{r}{n}",
                                                                        "version": 1, "roles": [f"x{n}"]})
                                     for r in ("d/e", "fr") for n in (1, 2, 10)])
        assert [r.anchor for r in results] == ["d%2Fe/1", "d%2Fe/2", "d%2Fe/10", "fr/1", "fr/2", "fr/10"]
        records, mark, _ = read_all(connector, "accounts", page_size=4)
        found = by_anchor(records)
        assert sorted(found) == sorted(r.anchor for r in results)
        assert found["fr/10"].attributes["_anchor"] == "fr/10" and found["fr/10"].attributes["roles"] == ["x10"]
        assert connector.get("accounts", "d%2Fe/2").attributes["name"] == "d/e2"
        assert [r.anchor for r in connector.lookup("accounts", {"_anchor": "fr/2"})] == ["fr/2"]
        assert connector.get("accounts", "fr") is None  # not an anchor of two parts
        [changed] = apply(connector, op("update", "accounts", anchor="fr/2", attributes={"name": "new", "version": 2},
                                        add_values={"roles": ["y"]}))
        assert changed.ok, changed.error
        delta = read_all(connector, "accounts", mark, page_size=1)[0]
        assert [(r.anchor, r.attributes["roles"]) for r in delta] == [("fr/2", ["x2", "y"])]
        [gone, again] = apply(connector, op("delete", "accounts", anchor="d%2Fe/10"),
                              op("delete", "accounts", anchor="d%2Fe/10"))
        assert gone.ok and isinstance(again.error, NotFound)
