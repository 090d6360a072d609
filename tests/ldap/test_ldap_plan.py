"""plan --out / apply against a real slapd (the example manifest manifests/hr-to-ldap.yaml)."""

from __future__ import annotations

from pathlib import Path

import ldap3
import pytest
from plan_cycle import plan_apply_cycle
from servers.slapd import Slapd

from runner import sampledata

from .helpers import admin, dump
from .test_ldap_reconcile import BASE, hr_to_ldap, point_at


def test_a_plan_is_refused_when_its_inputs_changed_and_applied_exactly_otherwise(
        directory: Slapd, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, provision):
    data = tmp_path / "hr"
    sampledata.make(data, 30, 4, 1)
    point_at(monkeypatch, directory, data, tmp_path / "state.db")
    manifest = hr_to_ldap(tmp_path)
    assert provision("run", manifest).code == 0

    def edit_target(uuid: str) -> None:
        conn = admin(directory)
        conn.search(BASE, f"(entryUUID={uuid})", attributes=["title"])
        (entry,) = conn.entries
        conn.modify(entry.entry_dn, {"title": [(ldap3.MODIFY_REPLACE, ["Set by hand"])]})
        assert conn.result["result"] == 0, conn.result
        conn.unbind()

    plan_apply_cycle(provision, manifest, data, tmp_path, lambda: dump(directory, BASE), edit_target)
