"""Fixtures of the SCIM tests: one real scim2-server a session, an empty tenant a test, a fault proxy.

Every test talks to the real server (``tests/servers/scim.py``); the fault proxy in front of it
only adds what the real one cannot do (429 storms, 5xx, 413, dropped connections, deviations).
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from servers.scim import TOKEN, FaultProxy, ScimServer

from runner import sampledata
from runner.connectors.base import ConnectorContext
from runner.connectors.scim.connector import ScimConnector

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def scim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScimServer]:
    server = ScimServer.start(tmp_path_factory.mktemp("scim2-server"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def proxy_server(scim: ScimServer) -> Iterator[FaultProxy]:
    proxy = FaultProxy(scim.root)
    yield proxy
    proxy.stop()


@pytest.fixture
def proxy(proxy_server: FaultProxy) -> Iterator[FaultProxy]:
    """The fault proxy with no faults set, its request log empty."""
    proxy_server.reset()
    yield proxy_server
    proxy_server.reset()


@pytest.fixture
def tenant() -> str:
    return "t" + secrets.token_hex(6)


def connector(url: str, tmp_path: Path, **config: Any) -> ScimConnector:
    block = {"type": "scim", "url": url, "auth": {"type": "bearer", "token": TOKEN},
             "objects": {"Users": {}, "Groups": {}}, "backoff": 0.01, "max_backoff": 0.05, **config}
    return ScimConnector(block, ConnectorContext("app", tmp_path))


@pytest.fixture
def open_scim(scim: ScimServer, tmp_path: Path):
    """``open_scim(url=None, **config)``: an opened connector on a fresh tenant (or ``url``); closed afterwards."""
    made: list[ScimConnector] = []

    def make(url: str | None = None, **config: Any) -> ScimConnector:
        c = connector(url or scim.tenant(), tmp_path, **config)
        c.open()
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


def hr_manifest(tmp_path: Path, url: str, *, people: int = 60, groups: int = 6, extra: str = "") -> Path:
    """manifests/hr-to-scim.yaml and its mappings copied into ``tmp_path``, with fresh HR data."""
    folder = tmp_path / "manifests"
    folder.mkdir(exist_ok=True)
    shutil.copy(REPO / "manifests" / "hr-to-scim.yaml", folder)
    shutil.copytree(REPO / "mappings", tmp_path / "mappings", dirs_exist_ok=True)
    data = folder / "data"
    if not data.exists():
        sampledata.make(data, people, groups, 3)
    manifest = folder / "hr-to-scim.yaml"
    if extra:
        text = manifest.read_text().replace("    max_members_per_patch: 1000\n", f"    max_members_per_patch: 1000\n{extra}")
        manifest.write_text(text)
    return manifest


def env_for(url: str, tmp_path: Path) -> dict[str, str]:
    return {"SCIM_URL": url, "SCIM_TOKEN": TOKEN, "PROVISION_STATE": str(tmp_path / "state.db"),
            "PROVISION_DATA": str(tmp_path / "manifests" / "data")}
