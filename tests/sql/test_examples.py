"""The example manifests on the sample hr.db: after `sampledata mutate`, a run imports only the
rows that changed and leaves the target exactly as a fresh full provisioning would."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from runner import sampledata

from .conftest import ADMIN_DATABASE, SERVERS, _admin

REPO = Path(__file__).resolve().parents[2]
CHANGE_TABLE = REPO / "manifests" / "hr-sql-to-sql.yaml"
WATERMARK = REPO / "manifests" / "hr-sql-watermark.yaml"


@pytest.fixture
def target_url(request: pytest.FixtureRequest, tmp_path: Path):
    """``target_url(label)``: an empty target database in the dialect under test, dropped afterwards."""
    dialect = getattr(request, "param", "sqlite")
    made: list[str] = []

    def make(label: str) -> str:
        if dialect == "sqlite":
            return f"sqlite:///{tmp_path / f'{label}.db'}"
        name = f"prov_ex_{secrets.token_hex(4)}"
        _admin(dialect, f"CREATE DATABASE {name}")
        made.append(name)
        return f"{SERVERS[dialect]}/{name}"

    yield make
    for name in made:
        _admin(dialect, f"DROP DATABASE IF EXISTS {name}" + (" WITH (FORCE)" if dialect == "postgresql" else ""))
    assert ADMIN_DATABASE  # the admin database is where databases are made


def target_content(url: str) -> dict[str, Any]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            accounts = [dict(r._mapping) for r in conn.execute(sa.text("SELECT * FROM accounts ORDER BY employee_id"))]
            for a in accounts:
                a["active"] = bool(a["active"])
            teams = [dict(r._mapping) for r in conn.execute(sa.text("SELECT * FROM teams ORDER BY group_id"))]
            members = sorted(tuple(r) for r in conn.execute(sa.text("SELECT group_id, employee_id FROM team_members")))
    finally:
        engine.dispose()
    return {"accounts": accounts, "teams": teams, "members": members}


def run(provision, manifest: Path, monkeypatch: pytest.MonkeyPatch, target: str, state: Path, *extra: str) -> dict:
    monkeypatch.setenv("TARGET_DB_URL", target)
    monkeypatch.setenv("PROVISION_STATE", f"sqlite:///{state}")
    result = provision("run", manifest, "--output", "json", *extra)
    assert result.code == 0, result.err + result.out
    return result.json()["object_types"]


def same_as_fresh(target: dict[str, Any], fresh: dict[str, Any], terminated: list[str]) -> None:
    """The target equals a fresh provisioning of the same HR data, except that people terminated
    since keep their account, disabled (when_out_of_scope: disable), its memberships and the
    references to it."""
    disabled = {a["employee_id"] for a in target["accounts"] if not a["active"]}
    assert disabled <= set(terminated)
    active = [a | {"manager_id": None if a["manager_id"] in disabled else a["manager_id"]}
              for a in target["accounts"] if a["active"]]  # a disabled manager is not provisioned afresh
    assert active == fresh["accounts"]
    assert target["teams"] == fresh["teams"]
    assert [m for m in target["members"] if m[1] not in disabled] == fresh["members"]


def changed_people(summary: dict[str, list[str]]) -> set[str]:
    return {a for k in ("hired", "terminated", "renamed", "moved", "updated") for a in summary[k]}


@pytest.mark.parametrize("target_url", ["sqlite", "postgresql", "mariadb"], indirect=True)
def test_the_change_table_example_imports_and_exports_only_the_changes(provision, tmp_path: Path, target_url,
                                                                       monkeypatch: pytest.MonkeyPatch):
    data = tmp_path / "data"
    sampledata.make(data, 200, 20, 1)
    monkeypatch.setenv("HR_DB_URL", f"sqlite:///{data / 'hr.db'}")
    target = target_url("target")
    first = run(provision, CHANGE_TABLE, monkeypatch, target, tmp_path / "state.db")
    assert first["user"]["imported"] == 200 and first["group"]["imported"] == 20

    summary = sampledata.mutate(data, seed=2, percent=5)
    second = run(provision, CHANGE_TABLE, monkeypatch, target, tmp_path / "state.db")
    assert second["user"]["imported"] == len(changed_people(summary))
    assert second["user"]["deleted"] == len(summary["removed"])  # found at once, from the change table
    assert second["group"]["imported"] == len(summary["groups_changed"])
    assert second["user"]["unchanged"] + second["user"]["out_of_scope"] >= 200 - len(changed_people(summary)) - len(summary["removed"]) - 1

    # exactly the changes: the same as provisioning the mutated HR data from scratch
    fresh = target_url("fresh")
    run(provision, CHANGE_TABLE, monkeypatch, fresh, tmp_path / "fresh-state.db")
    same_as_fresh(target_content(target), target_content(fresh), summary["terminated"])
    third = run(provision, CHANGE_TABLE, monkeypatch, target, tmp_path / "state.db")
    assert third["user"]["imported"] == third["group"]["imported"] == 0


def test_the_watermark_example_finds_removals_at_its_full_import(provision, tmp_path: Path, target_url,
                                                                 monkeypatch: pytest.MonkeyPatch):
    data = tmp_path / "data"
    sampledata.make(data, 200, 20, 1)
    monkeypatch.setenv("HR_DB_URL", f"sqlite:///{data / 'hr.db'}")
    target = target_url("target")
    run(provision, WATERMARK, monkeypatch, target, tmp_path / "state.db")
    summary = sampledata.mutate(data, seed=3, percent=5)
    second = run(provision, WATERMARK, monkeypatch, target, tmp_path / "state.db")
    assert second["user"]["imported"] == len(changed_people(summary))
    assert second["group"]["imported"] == len(summary["groups_changed"])
    assert second["user"]["deleted"] == 0  # a removed row leaves no timestamp behind...
    full = run(provision, WATERMARK, monkeypatch, target, tmp_path / "state.db", "--full")
    assert full["user"]["deleted"] == len(summary["removed"])  # ...the full import finds it
    fresh = target_url("fresh")
    run(provision, WATERMARK, monkeypatch, fresh, tmp_path / "fresh-state.db")
    same_as_fresh(target_content(target), target_content(fresh), summary["terminated"])
