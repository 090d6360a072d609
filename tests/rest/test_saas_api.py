"""The second API shape of docs/rest.md against the real cursor API of tests/servers/restapp.py:
cursor paging, PUT of the whole record read first, memberships as sub-resources, 400 meaning
"duplicate", idempotency keys, OAuth, delta reads by updated_since, discover."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import requests
from servers import restapp as app
from servers.scim import FaultProxy

from runner import sampledata
from runner.connectors.base import AlreadyExists, ConnectorContext, Operation
from runner.connectors.rest.connector import RestConnector

HERE = Path(__file__).resolve().parent


def saas_state(dump):
    """Accounts by login, teams by name with members by login (ids differ between servers)."""
    logins = {a["id"]: a["login"] for a in dump["accounts"]}
    accounts = {a["login"]: {"profile": a["profile"], "status": a["status"],
                             "manager": logins.get(a.get("manager_id"))} for a in dump["accounts"]}
    assert len(accounts) == len(dump["accounts"]), "an account twice"
    teams = {t["name"]: {"description": t.get("description"), "members": sorted(logins[m] for m in t["members"])}
             for t in dump["teams"]}
    return {"accounts": accounts, "teams": teams}


@pytest.fixture
def saas(tmp_path, monkeypatch, restapp):
    manifest = tmp_path / "saas.yaml"
    shutil.copy(HERE / "saas.yaml", manifest)
    sampledata.make(tmp_path / "data", 60, 5, 4)
    monkeypatch.setenv("SAAS_URL", restapp.url)
    monkeypatch.setenv("SAAS_SECRET", app.CLIENT_SECRET)
    monkeypatch.setenv("PROVISION_STATE", str(tmp_path / "state.db"))
    monkeypatch.setenv("PROVISION_DATA", str(tmp_path / "data"))
    return manifest


def writes(restapp) -> list[dict]:
    return [r for r in restapp.requests_seen() if r["method"] != "GET" and r["path"].startswith("/api/")]


def test_first_run_members_by_sub_resource_and_a_rerun_sends_no_write(provision, saas, restapp, tmp_path):
    run = provision("run", saas, "--output", "json")
    assert run.code == 0, run.err
    state = saas_state(restapp.dump())
    people = {p["employee_id"]: p for p in sampledata.Dataset(tmp_path / "data").load().people.values()}
    active = {p["email"].lower() for p in people.values() if p["status"] in ("active", "leave")}
    assert set(state["accounts"]) == active
    groups = sampledata.Dataset(tmp_path / "data").load().groups
    email = {eid: p["email"].lower() for eid, p in people.items()}
    for g in groups.values():
        wanted = sorted(email[m] for m in g["members"].split(";") if m and email.get(m) in active)
        assert state["teams"][g["name"]]["members"] == wanted
    assert any(r["method"] == "PUT" and "/members/" in r["path"] for r in writes(restapp))
    before = len(restapp.requests_seen())
    rerun = provision("run", saas, "--output", "json")
    assert rerun.code == 0, rerun.err
    assert [r for r in restapp.requests_seen()[before:] if r["method"] != "GET"] == []


def test_changes_go_out_as_puts_of_the_whole_record_and_member_calls(provision, saas, restapp, tmp_path):
    assert provision("run", saas).code == 0
    before = sampledata.Dataset(tmp_path / "data").load().people
    changes = sampledata.mutate(tmp_path / "data", 5, 25.0)
    leaving = {before[eid]["email"].lower() for eid in changes["removed"] + changes["terminated"]}
    [kept] = [a for a in restapp.dump()["accounts"] if a["status"] == "ACTIVE" and a["login"] not in leaving][:1]
    requests.put(f"{restapp.url}/api/v2/accounts/{kept['id']}", headers=restapp.headers, timeout=10,
                 json={**{k: v for k, v in kept.items() if k not in ("id",)}, "locale": "fr-FR"}).raise_for_status()
    run = provision("run", saas, "--output", "json")
    assert run.code == 0, run.err
    counts = json.loads(run.out)["object_types"]
    assert counts["account"]["disabled"] and counts["account"]["updated"]
    dump = restapp.dump()
    [after] = [a for a in dump["accounts"] if a["id"] == kept["id"]]
    assert after["locale"] == "fr-FR", "a field the mapping does not manage survives the PUT"
    people = sampledata.Dataset(tmp_path / "data").load().people
    state = saas_state(dump)
    for eid in changes["terminated"]:
        login = people[eid]["email"].lower()
        assert login not in state["accounts"] or state["accounts"][login]["status"] == "SUSPENDED"
    assert all(r["method"] != "PATCH" for r in writes(restapp))
    again = provision("run", saas, "--output", "json")
    assert all(c["added"] + c["updated"] + c["deleted"] + c["disabled"] == 0
               for c in json.loads(again.out)["object_types"].values()), again.out


def connector(url: str, tmp_path, **objects) -> RestConnector:
    config = {"type": "rest", "url": f"{url}/api/v2", "records": "data", "max_retries": 1,
              "auth": {"type": "bearer", "token": app.RESTAPP_TOKEN}, "idempotency_header": "Idempotency-Key",
              "paging": {"style": "cursor", "size_param": "limit", "next": "meta.next_cursor", "size": 50},
              "answers": {"exists": [{"status": 409}, {"status": 400, "when": "error.code == 'duplicate'"}]},
              "objects": objects or {"accounts": {"body": {"login": "{login}", "profile": {"email": "{email}"}},
                                                  "update": {"method": "PUT"}}}}
    c = RestConnector(config, ConnectorContext("saas", tmp_path))
    c.open()
    return c


def test_a_400_saying_duplicate_is_already_exists(restapp, tmp_path):
    c = connector(restapp.url, tmp_path)
    assert [r.ok for r in c.apply([Operation(1, "add", "accounts", attributes={"login": "ana"})])] == [True]
    [r] = c.apply([Operation(2, "add", "accounts", attributes={"login": "ANA"})])
    assert not r.ok and isinstance(r.error, AlreadyExists) and "login already taken" in str(r.error)


def test_a_create_whose_answer_was_lost_is_sent_again_with_its_key_and_makes_one_record(restapp, tmp_path):
    proxy = FaultProxy(restapp.url)
    proxy.faults.passthrough_auth = True
    proxy.faults.drop_before_answer = 1
    try:
        c = connector(proxy.url, tmp_path)
        op = Operation(1, "add", "accounts", attributes={"login": "once", "email": "once@example.org"},
                       key="hr-to-saas/account/E1/1")
        [r] = c.apply([op])
        assert r.ok, r.error
    finally:
        proxy.stop()
    dump = restapp.dump()
    assert [a["login"] for a in dump["accounts"]] == ["once"] and r.anchor == dump["accounts"][0]["id"]
    posts = [q for q in restapp.requests_seen() if q["method"] == "POST"]
    assert [q["idempotency_key"] for q in posts] == ["hr-to-saas/account/E1/1"] * 2


def test_cursor_paging_reads_every_record_once(restapp, tmp_path):
    c = connector(restapp.url, tmp_path)
    results = list(c.apply([Operation(i, "add", "accounts", attributes={"login": f"u{i:03d}"}) for i in range(120)]))
    assert all(r.ok for r in results)
    pages = list(c.read("accounts"))
    logins = [r.attributes["login"] for p in pages for r in p.records]
    assert sorted(logins) == sorted(f"u{i:03d}" for i in range(120)) and len(pages) == 3


def test_a_delta_read_by_updated_since_returns_what_changed(restapp, tmp_path):
    objects = {"accounts": {"body": {"login": "{login}", "profile": {"email": "{email}"}},
                            "update": {"method": "PUT"},
                            "delta": {"param": "updated_since", "field": "updated_at", "overlap": 0}}}
    c = connector(restapp.url, tmp_path, **objects)
    anchors = [r.anchor for r in c.apply([Operation(i, "add", "accounts", attributes={"login": f"d{i}"})
                                          for i in range(5)])]
    *_, last = c.read("accounts")
    assert last.watermark is not None
    [r] = c.apply([Operation(9, "update", "accounts", anchor=anchors[2], attributes={"email": "new@example.org"})])
    assert r.ok, r.error
    changed = {rec.anchor: rec for p in c.read("accounts", watermark=last.watermark) for rec in p.records}
    assert changed.pop(anchors[2]).attributes["email"] == "new@example.org"
    newest = json.loads(last.watermark)  # "updated since" is >=: the newest record seen comes back, unchanged
    assert [rec.attributes["updated_at"] for rec in changed.values()] in ([], [newest])
    assert c.capabilities("accounts").delta_read


def test_members_added_twice_or_removed_when_gone_succeed(restapp, tmp_path):
    objects = {"accounts": {"body": {"login": "{login}"}},
               "teams": {"body": {"name": "{name}"}, "update": {"method": "PUT"}, "member_attribute": "members",
                         "add_member": {}, "remove_member": {}, "list_members": {"records": "data",
                                                                                  "values": "account_id"}}}
    c = connector(restapp.url, tmp_path, **objects)
    a, b = (r.anchor for r in c.apply([Operation(i, "add", "accounts", attributes={"login": f"m{i}"})
                                       for i in range(2)]))
    [team] = c.apply([Operation(5, "add", "teams", attributes={"name": "T", "members": [a]})])
    assert team.ok, team.error
    [r] = c.apply([Operation(6, "update", "teams", anchor=team.anchor, add_values={"members": [a, b]},
                             remove_values={"members": ["acc_000000000000"]})])
    assert r.ok, r.error
    assert c.get("teams", team.anchor).attributes["members"] == [a, b]


def test_discover_lists_the_fields_a_list_returns_with_their_types(provision, saas, restapp):
    assert provision("run", saas).code == 0
    found = provision("discover", saas, "--connector", "saas", "--output", "json")
    assert found.code == 0, found.err
    [saas_found] = [d for d in found.json() if d["connector"] == "saas"]
    objects = {o["name"]: o for o in saas_found["objects"]}
    fields = {a["name"]: a for a in objects["accounts"]["attributes"]}
    assert fields["login"]["type"] == "string" and fields["email"]["description"].startswith("API field profile.email")
    assert "updated_at" in fields and "manager" in fields
    assert app.CLIENT_SECRET not in found.out
