"""plan --out / apply against the real scim2-server (the example manifest manifests/hr-to-scim.yaml)."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from plan_cycle import plan_apply_cycle
from servers.scim import ScimServer

from .conftest import env_for
from .test_reconcile import HEADERS, PATCH, manifest_for, snapshot


def test_a_plan_is_refused_when_its_inputs_changed_and_applied_exactly_otherwise(
        scim: ScimServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, provision):
    url = scim.tenant()
    manifest = manifest_for(tmp_path, url)
    for key, value in env_for(url, tmp_path).items():
        monkeypatch.setenv(key, value)
    assert provision("run", manifest).code == 0

    def edit_target(resource_id: str) -> None:
        body = {"schemas": [PATCH], "Operations": [{"op": "replace", "path": "title", "value": "Set by hand"}]}
        answer = requests.patch(f"{url}/Users/{resource_id}", json=body, headers=HEADERS, timeout=10)
        assert answer.status_code in (200, 204), answer.text

    plan_apply_cycle(provision, manifest, tmp_path / "manifests" / "data", tmp_path, lambda: snapshot(url),
                     edit_target)
