"""Shared fixtures: sample HR data, running the CLI in-process, reading the quickstart's target."""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from runner import cli, sampledata

REPO = Path(__file__).resolve().parent.parent
QUICKSTART = REPO / "manifests" / "quickstart.yaml"


@pytest.hookimpl(trylast=True)  # after -k and -m have deselected what they do
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test marked ``after_property_tests`` counts what the property tests of its file did, so
    it runs only when all of them are selected; otherwise it is deselected (a skip would look
    like a failure hidden in CI)."""
    selected: dict[object, set[str]] = {}
    for item in items:
        selected.setdefault(getattr(item, "module", None), set()).add(getattr(item, "originalname", item.name))
    dropped = []
    for item in items:
        if item.get_closest_marker("after_property_tests") is None:
            continue
        module = item.module
        properties = {name for name, fn in vars(module).items()
                      if name.startswith("test_") and getattr(fn, "is_hypothesis_test", False)}
        if not properties <= selected[module]:
            dropped.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [i for i in items if i not in dropped]


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    def json(self) -> dict[str, Any]:
        return json.loads(self.out)

    def differences(self, situation: str) -> list[dict[str, Any]]:
        """``provision check --output json``: the objects it lists in ``situation``."""
        return [d for d in self.json()["check"]["differences"] if d["situation"] == situation]

    def only_reported_orphans(self, orphans: int) -> None:
        """Assert this ``run --reconcile --output json`` found ``orphans`` user orphans and, without
        a boundary, only reported them: exit 0, nothing deleted or disabled."""
        assert self.code == 0, self.err
        user = self.json()["object_types"]["user"]
        assert (user["reconciled"]["orphan"], user["deleted"], user["disabled"]) == (orphans, 0, 0), user

    def adopted(self, groups: int) -> dict[str, Any]:
        """Assert this ``run --output json`` after a lost state store linked what the target held
        and wrote nothing: exit 0, nothing added, changed or removed, every group unlinked (then
        linked). Returns the counts per object type."""
        assert self.code == 0, self.out + self.err
        counts = self.json()["object_types"]
        for name in ("user", "group"):
            c = counts[name]
            assert (c["added"], c["updated"], c["renamed"], c["deleted"], c["disabled"], c["failed"]) == \
                (0, 0, 0, 0, 0, 0), c
        assert counts["group"]["reconciled"]["unlinked"] == groups
        return counts


def orphans_only_reported(provision: Any, manifest: Path, orphans: int) -> None:
    """``run --reconcile`` of a pipeline without a boundary, whose target holds ``orphans`` user
    accounts no HR person claims: reported by the run and by ``status``, nothing deleted."""
    provision("run", manifest, "--reconcile", "--output", "json").only_reported_orphans(orphans)
    status = provision("status", manifest, "--output", "json").json()
    assert status["object_types"]["user"]["reconciled"]["found"] == {"orphan": orphans}


def check_is_clean(provision: Any, manifest: Path, groups: int) -> None:
    """``provision check`` finds the target as the mappings say, every group linked."""
    again = provision("check", manifest, "--output", "json")
    assert again.code == 0, again.out
    assert again.json()["check"]["situations"]["group"]["linked"] == groups


@pytest.fixture
def provision(capsys: pytest.CaptureFixture[str]):
    """Run ``provision ARGS...`` in this process; returns exit code, stdout and stderr."""

    def run(*args: str | Path) -> CliResult:
        capsys.readouterr()
        code = cli.main([str(a) for a in args])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture
def quickstart_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Point the quickstart manifest at fresh data and a fresh target in tmp_path."""

    def make(people: int = 200, groups: int = 20, seed: int = 1) -> Path:
        data = tmp_path / "data"
        sampledata.make(data, people, groups, seed)
        monkeypatch.setenv("PROVISION_DATA", str(data))
        monkeypatch.setenv("PROVISION_TARGET", str(tmp_path / "app.db"))
        return data

    return make


def read_app(db: Path) -> dict[str, Any]:
    """The quickstart target as comparable data: users by user_name, managers and members by user_name."""
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    users = {r["id"]: dict(r) for r in con.execute("SELECT * FROM users")}
    by_name = {}
    for row in users.values():
        row["manager"] = users[row["manager_id"]]["user_name"] if row["manager_id"] in users else None
        row["active"] = bool(row["active"])
        by_name[row["user_name"]] = {k: v for k, v in row.items() if k not in ("id", "manager_id")}
    groups = {}
    for g in con.execute("SELECT * FROM groups"):
        members = sorted(users[m]["user_name"] for (m,) in con.execute(
            "SELECT user_id FROM group_members WHERE group_id = ?", (g["id"],)))
        groups[g["name"], g["id"]] = {"name": g["name"], "description": g["description"], "members": members}
    con.close()
    return {"users": by_name, "groups": sorted(groups.values(), key=lambda g: (g["name"], g["members"]))}


PEOPLE_COLUMNS = sampledata.PEOPLE_COLUMNS
GROUP_COLUMNS = sampledata.GROUP_COLUMNS


def person(eid: str, first: str, last: str, status: str = "active", manager: str = "", **extra: str) -> dict[str, str]:
    """A people.csv row in the sample-data format, for hand-written scenarios."""
    row = {c: "" for c in PEOPLE_COLUMNS}
    row.update(employee_id=eid, first_name=first, last_name=last, preferred_name="",
               email=f"{first}.{last}@example.org".lower(), department="Engineering", title="Engineer",
               manager_id=manager, status=status, phone="", hire_date="2020-01-01",
               updated_at="2026-01-01T00:00:00Z")
    row.update(extra)
    return row


def group(gid: str, name: str, members: list[str], description: str = "") -> dict[str, str]:
    return {"group_id": gid, "name": name, "description": description, "members": ";".join(members),
            "updated_at": "2026-01-01T00:00:00Z"}


def write_hr(folder: Path, people: list[dict[str, str]], groups: list[dict[str, str]]) -> Path:
    """Write people.csv and groups.csv the way the sample-data generator does."""
    import csv

    folder.mkdir(parents=True, exist_ok=True)
    for name, columns, rows in (("people.csv", PEOPLE_COLUMNS, people), ("groups.csv", GROUP_COLUMNS, groups)):
        with open(folder / name, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, columns)
            writer.writeheader()
            writer.writerows(rows)
    return folder


@pytest.fixture
def quickstart_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the quickstart manifest and its files that a test may edit; env points at tmp_path."""
    import shutil

    root = tmp_path / "repo"
    shutil.copytree(REPO / "manifests", root / "manifests", ignore=shutil.ignore_patterns("out", ".provision", "data"))
    shutil.copytree(REPO / "mappings", root / "mappings")
    monkeypatch.setenv("PROVISION_TARGET", str(tmp_path / "app.db"))
    monkeypatch.setenv("PROVISION_DATA", str(tmp_path / "data"))
    return root / "manifests" / "quickstart.yaml"


@pytest.fixture(params=["postgresql", "mariadb"])
def server_database(request: pytest.FixtureRequest) -> str:
    """A fresh, empty database on the machine's PostgreSQL or MariaDB (127.0.0.1), dropped afterwards."""
    import secrets as pysecrets

    import sqlalchemy as sa

    name = f"prov_test_{pysecrets.token_hex(4)}"
    server = {  # scripts/servers.sh exports these when it starts throwaway servers on free ports
        "postgresql": os.environ.get("PROVISION_TEST_POSTGRESQL_URL", "postgresql+psycopg://postgres@127.0.0.1:5432"),
        "mariadb": os.environ.get("PROVISION_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306"),
    }[request.param]
    admin_url, url = f"{server}/{'postgres' if request.param == 'postgresql' else ''}", f"{server}/{name}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    yield url
    with admin.connect() as conn:
        if request.param == "postgresql":
            conn.exec_driver_sql(f"DROP DATABASE {name} WITH (FORCE)")
        else:
            conn.exec_driver_sql(f"DROP DATABASE {name}")
    admin.dispose()
