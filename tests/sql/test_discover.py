"""``discover`` and ``server_info``: tables, columns and their types as the database names them,
complete for configured objects (so ``validate --online`` can rely on them)."""

from __future__ import annotations

import json
from pathlib import Path

import sqlalchemy as sa

from .conftest import Database


def test_discover_lists_columns_types_and_other_tables(db: Database):
    md = sa.MetaData()
    sa.Table("users", md, sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
             sa.Column("user_name", sa.String(64), nullable=False), sa.Column("active", sa.Boolean),
             sa.Column("hired", sa.Date), sa.Column("notes", sa.Text))
    sa.Table("user_roles", md, sa.Column("user_id", sa.Integer, nullable=False),
             sa.Column("role", sa.String(32), nullable=False))
    sa.Table("audit", md, sa.Column("n", sa.Integer, primary_key=True), sa.Column("what", sa.String(10)))
    md.create_all(db.engine)
    objects = {"users": {"table": "users", "key": "id", "generated_key": True,
                         "multi_valued": {"roles": {"table": "user_roles", "key": "user_id", "value": "role"}}}}
    with db.connector(objects) as connector:
        infos = {o.name: o for o in connector.discover()}
        users = infos["users"]
        assert users.complete
        attrs = {a.name: a for a in users.attributes}
        assert sorted(attrs) == ["active", "hired", "id", "notes", "roles", "user_name"]
        assert attrs["id"].read_only and attrs["id"].type == "integer"  # generated: the database sets it
        assert attrs["user_name"].required and "VARCHAR(64)" in (attrs["user_name"].syntax or "").upper()
        assert attrs["hired"].type == "date" and attrs["active"].type in ("boolean", "integer")
        assert attrs["roles"].multi_valued and not attrs["roles"].required
        assert "user_roles" not in infos  # the child table is part of users
        assert infos["audit"].description.startswith("table, not configured")
        assert [a.name for a in infos["audit"].attributes] == ["n", "what"]
        server = connector.server_info()
        assert server["dialect"] == db.dialect
        assert server["server_version"] and json.dumps(server)  # plain printable values


def test_provision_discover_prints_the_source(provision, tmp_path: Path, monkeypatch):
    from runner import sampledata

    sampledata.make(tmp_path / "data", 10, 2, 1)
    monkeypatch.setenv("HR_DB_URL", f"sqlite:///{tmp_path / 'data' / 'hr.db'}")
    manifest = Path(__file__).resolve().parents[2] / "manifests" / "hr-sql-to-sql.yaml"
    result = provision("discover", manifest, "--connector", "hr", "--output", "json")
    assert result.code == 0, result.err
    [hr] = result.json()
    objects = {o["name"]: o for o in hr["objects"]}
    assert {a["name"] for a in objects["employees"]["attributes"]} >= {"employee_id", "email", "updated_at"}
    assert [a["multi_valued"] for a in objects["groups"]["attributes"] if a["name"] == "members"] == [True]
