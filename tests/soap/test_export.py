"""manifests/hr-to-soap.yaml against the real spyne service: a first run, a rerun that calls no write
operation, a day of HR changes, records of others left alone, a lost state store."""

from __future__ import annotations

import json

import pytest
from servers.soapservice import PASSWORD

from runner import sampledata

from .world import env_for, hr_manifest, service_state, writes


@pytest.fixture
def env(tmp_path, monkeypatch, soapservice):
    def set_env(wsdl: str = soapservice.wsdl, state: str = "state.db") -> None:
        for k, v in env_for(wsdl, tmp_path, state).items():
            monkeypatch.setenv(k, v)
    set_env()
    return set_env


def people_of(tmp_path):
    return sampledata.Dataset(tmp_path / "manifests" / "data").load()


def test_a_first_run_makes_users_and_groups_and_a_rerun_calls_no_write(provision, tmp_path, env, soapservice):
    manifest = hr_manifest(tmp_path, people=60, groups=6)
    run = provision("run", manifest, "--output", "json")
    assert run.code == 0, run.err
    data = people_of(tmp_path)
    state = service_state(soapservice.dump())
    active = {eid.lower(): p for eid, p in data.people.items() if p["status"] in ("active", "leave")}
    assert set(state["users"]) == set(active)
    for name, person in active.items():
        assert state["users"][name]["email"] == person["email"] and state["users"][name]["active"] is True
    for g in data.groups.values():
        wanted = sorted(m.lower() for m in g["members"].split(";") if m and m.lower() in active)
        assert state["groups"][g["name"]]["members"] == wanted, g["name"]
    before = len(soapservice.calls())
    rerun = provision("run", manifest, "--output", "json")
    assert rerun.code == 0, rerun.err
    assert writes(soapservice.calls()[before:]) == []


def test_terminations_go_through_set_user_active_removals_are_deleted_others_untouched(
        provision, tmp_path, env, soapservice):
    client = soapservice.client()
    client.service.createUser(user={"userName": "svc-backup", "email": "bot@example.org"})
    bot = service_state(soapservice.dump())["users"]["svc-backup"]
    manifest = hr_manifest(tmp_path, people=80, groups=6)
    assert provision("run", manifest).code == 0
    changes = sampledata.mutate(tmp_path / "manifests" / "data", 11, 20.0)
    before = len(soapservice.calls())
    run = provision("run", manifest, "--output", "json")
    assert run.code == 0, run.err
    called = writes(soapservice.calls()[before:])
    assert "setUserActive" in called and "deleteUser" in called
    state = service_state(soapservice.dump())
    for eid in changes["terminated"]:
        assert state["users"][eid.lower()]["active"] is False, eid
    for eid in changes["removed"]:
        assert eid.lower() not in state["users"], eid
    for g in people_of(tmp_path).groups.values():  # exactly their members (terminated ones stay, disabled)
        wanted = sorted(m.lower() for m in g["members"].split(";") if m and m.lower() in state["users"])
        assert state["groups"][g["name"]]["members"] == wanted, g["name"]
    assert state["users"]["svc-backup"] == bot, "a user no HR person matches is left as it was"
    check = provision("check", manifest, "--output", "json")
    assert [(d["situation"], d["target_anchor"]) for d in check.json()["check"]["differences"]] == \
        [("orphan", "svc-backup")]


def test_a_user_deleted_by_hand_comes_back_and_a_new_state_links_what_is_there(provision, tmp_path, env, soapservice):
    manifest = hr_manifest(tmp_path, people=30, groups=3)
    assert provision("run", manifest).code == 0
    soapservice.client().service.deleteUser(userName="e0000003")
    run = provision("run", manifest, "--reconcile", "--output", "json")
    assert run.code == 0, run.err
    assert "e0000003" in service_state(soapservice.dump())["users"]
    before = service_state(soapservice.dump())
    env(state="lost.db")
    run = provision("run", manifest, "--output", "json")
    assert run.code == 0, run.err
    assert all(c["added"] == 0 for c in json.loads(run.out)["object_types"].values()), run.out
    assert service_state(soapservice.dump()) == before


def test_the_password_is_in_no_output_log_or_state(provision, tmp_path, env, soapservice):
    manifest = hr_manifest(tmp_path, people=20, groups=2)
    log = tmp_path / "run.log"
    run = provision("run", manifest, "--output", "json", "--log-file", str(log))
    assert run.code == 0, run.err
    status = provision("status", manifest)
    for text in (run.out, run.err, status.out, status.err, log.read_text()):
        assert PASSWORD not in text
    assert PASSWORD.encode() not in (tmp_path / "state.db").read_bytes()
