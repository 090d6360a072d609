"""The REST example in a test folder, and what a json-server holds, as comparable data.

``hr_manifest`` copies ``manifests/hr-to-rest.yaml`` and its mappings into a test's folder with
fresh HR data; ``api_state`` reads the server back keyed by HR id, with managers and members
named by HR id too (record ids differ between two servers that hold the same people).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from servers.jsonserver import TOKEN

from runner import sampledata

REPO = Path(__file__).resolve().parents[2]


def hr_manifest(tmp_path: Path, *, people: int = 60, groups: int = 6, seed: int = 3) -> Path:
    folder = tmp_path / "manifests"
    folder.mkdir(exist_ok=True)
    for name in ("hr-to-rest.yaml", "hr-to-rest.mapping-tests.yaml"):
        shutil.copy(REPO / "manifests" / name, folder)
    shutil.copytree(REPO / "mappings", tmp_path / "mappings", dirs_exist_ok=True)
    data = folder / "data"
    if not data.exists():
        sampledata.make(data, people, groups, seed)
    return folder / "hr-to-rest.yaml"


def env_for(url: str, tmp_path: Path, state: str = "state.db") -> dict[str, str]:
    return {"REST_URL": url, "REST_TOKEN": TOKEN, "PROVISION_STATE": str(tmp_path / state),
            "PROVISION_DATA": str(tmp_path / "manifests" / "data")}


def api_state(dump: dict[str, Any]) -> dict[str, Any]:
    """Users and groups by externalId; every reference by the referenced record's externalId."""
    users = dump["users"]
    by_id = {str(u["id"]): u.get("externalId") or f"?{u['id']}" for u in users}
    people = {}
    for u in users:
        key = u.get("externalId") or f"?{u['id']}"
        assert key not in people, f"a user twice: {key}"
        people[key] = {k: v for k, v in u.items() if k not in ("id", "updatedAt", "managerId")} | \
            {"manager": by_id.get(str(u.get("managerId"))) if u.get("managerId") is not None else None}
    groups = {}
    for g in dump["groups"]:
        key = g.get("externalId") or f"?{g['id']}"
        assert key not in groups, f"a group twice: {key}"
        groups[key] = {"name": g.get("name"), "description": g.get("description"),
                       "members": sorted(by_id.get(str(m), f"?{m}") for m in g.get("members") or [])}
    return {"users": people, "groups": groups}
