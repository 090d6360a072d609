"""manifests/hr-to-rest.yaml against the real json-server: what an identity engineer checks after a
first run, a rerun and a day of HR changes."""

from __future__ import annotations

import json

import pytest
import requests
from servers.jsonserver import TOKEN
from servers.scim import FaultProxy

from runner import sampledata
from runner.connectors.csvfile import CsvConnector

from .world import api_state, env_for, hr_manifest

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def hr(tmp_path):
    """The HR data as the csv connector reads it: people and groups by id."""
    from runner.connectors.base import ConnectorContext

    csv = CsvConnector({"type": "csv", "path": str(tmp_path / "manifests" / "data"),
                        "objects": {"groups": {"multi_valued": {"members": ";"}}}}, ConnectorContext("hr", tmp_path))
    people = {r.attributes["employee_id"]: r.attributes for p in csv.read("people") for r in p.records}
    groups = {r.attributes["group_id"]: r.attributes for p in csv.read("groups") for r in p.records}
    return people, groups


@pytest.fixture
def env(tmp_path, monkeypatch, jsonserver):
    def set_env(url: str = jsonserver.url, state: str = "state.db") -> None:
        for k, v in env_for(url, tmp_path, state).items():
            monkeypatch.setenv(k, v)
    set_env()
    return set_env


@pytest.fixture
def proxy(json_server):
    proxy = FaultProxy(json_server.url, token=TOKEN)
    yield proxy
    proxy.stop()


def test_a_first_run_makes_every_person_and_group_as_the_mappings_say(provision, tmp_path, env, jsonserver):
    manifest = hr_manifest(tmp_path, people=60, groups=6)
    run = provision("run", manifest, "--output", "json")
    assert run.code == 0, run.err
    people, groups = hr(tmp_path)
    state = api_state(jsonserver.dump())
    active = {eid for eid, p in people.items() if p["status"] in ("active", "leave")}
    assert set(state["users"]) == active
    for eid in active:
        record, person = state["users"][eid], people[eid]
        assert record["email"] == person["email"] and record["userName"] == person["email"].lower()
        assert record["active"] is True
        wanted_manager = person.get("manager_id") if person.get("manager_id") in active else None
        assert record["manager"] == wanted_manager, eid
    assert set(state["groups"]) == set(groups)
    for gid, group in groups.items():
        assert state["groups"][gid]["name"] == group["name"]
        assert state["groups"][gid]["members"] == sorted(m for m in group["members"] or [] if m in active)
    assert all(isinstance(m, str) for g in jsonserver.records("groups") for m in g["members"]), \
        "members are the users' record ids"


def test_a_rerun_sends_no_write(provision, tmp_path, env, jsonserver, proxy):
    manifest = hr_manifest(tmp_path)
    assert provision("run", manifest).code == 0
    env(url=proxy.url)
    rerun = provision("run", manifest, "--output", "json")
    assert rerun.code == 0, rerun.err
    methods = {m for m, *_ in proxy.faults.requests()}
    assert methods == {"GET"}, proxy.faults.requests()
    counts = json.loads(rerun.out)["object_types"]
    assert all(c["added"] + c["updated"] + c["deleted"] + c["disabled"] == 0 for c in counts.values())


def test_terminations_disable_removals_delete_and_records_of_others_are_never_touched(
        provision, tmp_path, env, jsonserver):
    service = requests.post(f"{jsonserver.url}/users", json={"userName": "backup-bot", "email": "bot@example.org",
                                                             "active": True}, headers=AUTH, timeout=10).json()
    manifest = hr_manifest(tmp_path, people=80, groups=6)
    assert provision("run", manifest).code == 0
    changes = sampledata.mutate(tmp_path / "manifests" / "data", 11, 20.0)
    run = provision("run", manifest, "--output", "json")
    assert run.code == 0, run.err
    state = api_state(jsonserver.dump())
    for eid in changes["terminated"]:
        assert state["users"][eid]["active"] is False, eid
    for eid in changes["removed"]:
        assert eid not in state["users"], eid
    _, groups = hr(tmp_path)
    for gid, group in groups.items():  # terminated members stay members: their records are only disabled
        assert state["groups"][gid]["members"] == sorted(m for m in group["members"] or [] if m in state["users"])
    [bot] = [u for u in jsonserver.records("users") if u["id"] == service["id"]]
    assert bot == service, "a record no HR person matches is left exactly as it was"
    check = provision("check", manifest, "--output", "json")
    assert check.code == 1, check.out  # the target differs from the mappings by one orphan, and only by it
    assert [(d["situation"], d["target_anchor"]) for d in check.json()["check"]["differences"]] == \
        [("orphan", str(service["id"]))]


def test_a_record_deleted_by_hand_comes_back_and_an_edited_one_is_put_right(provision, tmp_path, env, jsonserver):
    manifest = hr_manifest(tmp_path, people=30, groups=3)
    assert provision("run", manifest).code == 0
    users = sorted(jsonserver.records("users"), key=lambda u: u["id"])
    gone, edited = users[3], users[4]
    assert requests.delete(f"{jsonserver.url}/users/{gone['id']}", headers=AUTH, timeout=10).status_code == 200
    requests.patch(f"{jsonserver.url}/users/{edited['id']}", json={"title": "Edited by hand"}, headers=AUTH,
                   timeout=10).raise_for_status()
    before = api_state(jsonserver.dump())
    run = provision("run", manifest, "--reconcile", "--output", "json")
    assert run.code == 0, run.err
    after = api_state(jsonserver.dump())
    assert after["users"][gone["externalId"]]["email"] == gone["email"]
    assert after["users"][edited["externalId"]]["title"] == edited["title"]
    assert len(after["users"]) == len(before["users"]) + 1


def test_a_new_state_store_links_what_is_there_instead_of_creating_it_again(provision, tmp_path, env, jsonserver):
    manifest = hr_manifest(tmp_path, people=30, groups=3)
    assert provision("run", manifest).code == 0
    before = jsonserver.dump()
    env(state="lost.db")
    run = provision("run", manifest, "--output", "json")
    assert run.code == 0, run.err
    assert all(c["added"] == 0 for c in json.loads(run.out)["object_types"].values()), run.out
    assert api_state(jsonserver.dump()) == api_state(before)


def test_the_token_is_in_no_output_log_or_state(provision, tmp_path, env, jsonserver):
    manifest = hr_manifest(tmp_path, people=20, groups=2)
    log = tmp_path / "run.log"
    run = provision("run", manifest, "--output", "json", "--log-file", str(log))
    assert run.code == 0, run.err
    status = provision("status", manifest)
    for text in (run.out, run.err, status.out, status.err, log.read_text()):
        assert TOKEN not in text
    assert TOKEN.encode() not in (tmp_path / "state.db").read_bytes()
