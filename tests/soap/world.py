"""The SOAP example in a test folder, and what the service holds, as comparable data."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from servers.soapservice import PASSWORD, USER

from runner import sampledata

REPO = Path(__file__).resolve().parents[2]


def hr_manifest(tmp_path: Path, *, people: int = 60, groups: int = 6, seed: int = 3) -> Path:
    folder = tmp_path / "manifests"
    folder.mkdir(exist_ok=True)
    for name in ("hr-to-soap.yaml", "hr-to-soap.mapping-tests.yaml"):
        shutil.copy(REPO / "manifests" / name, folder)
    shutil.copytree(REPO / "mappings", tmp_path / "mappings", dirs_exist_ok=True)
    data = folder / "data"
    if not data.exists():
        sampledata.make(data, people, groups, seed)
    return folder / "hr-to-soap.yaml"


def env_for(wsdl: str, tmp_path: Path, state: str = "state.db") -> dict[str, str]:
    return {"SOAP_WSDL": wsdl, "SOAP_USER": USER, "SOAP_PASSWORD": PASSWORD, "PROVISION_STATE": str(tmp_path / state),
            "PROVISION_DATA": str(tmp_path / "manifests" / "data")}


def service_state(dump: dict[str, Any]) -> dict[str, Any]:
    """Users by userName (without the server's id and stamps), groups by name."""
    users = {}
    for u in dump["users"]:
        assert u["userName"] not in users, f"a user twice: {u['userName']}"
        users[u["userName"]] = {k: v for k, v in u.items() if k not in ("id", "lastModified", "groups")} | \
            {"groups": sorted(u.get("groups") or [])}  # in group creation order, which threads vary
    groups = {}
    for g in dump["groups"]:
        assert g["name"] not in groups, f"a group twice: {g['name']}"
        groups[g["name"]] = {"description": g.get("description"), "members": sorted(g.get("members") or [])}
    return {"users": users, "groups": groups}


def writes(calls: list[dict[str, Any]]) -> list[str]:
    """The operations of a call log that change something."""
    return [c["operation"] for c in calls if not str(c["operation"]).startswith(("list", "get"))]
