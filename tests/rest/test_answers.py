"""How answers steer a run: a 409 on a create adopts the record that is there, a 404 on an update
creates the record again in the same run, RFC 8288 Link headers page a list, and an API without a
correlate query is searched by a bounded scan of its list."""

from __future__ import annotations

import json

import pytest
import requests
from servers.jsonserver import TOKEN

from runner.connectors.base import AlreadyExists, ConnectionFailed, ConnectorContext, Operation
from runner.connectors.rest.connector import RestConnector

from .world import api_state, env_for, hr_manifest

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def example(tmp_path, monkeypatch, jsonserver):
    manifest = hr_manifest(tmp_path, people=30, groups=3)
    for k, v in env_for(jsonserver.url, tmp_path).items():
        monkeypatch.setenv(k, v)
    return manifest


def append_person(tmp_path, eid: str, email: str) -> None:
    people = tmp_path / "manifests" / "data" / "people.csv"
    header = people.read_text().splitlines()[0].split(",")
    row = {"employee_id": eid, "first_name": "Kim", "last_name": "New", "email": email, "status": "active",
           "department": "Sales", "title": "Analyst", "updated_at": "2026-06-01T00:00:00Z"}
    with open(people, "a", encoding="utf-8") as out:
        out.write(",".join(row.get(c, "") for c in header) + "\n")


def test_a_409_on_create_adopts_the_record_someone_made_meanwhile(provision, example, tmp_path, jsonserver):
    assert provision("run", example).code == 0
    append_person(tmp_path, "E0009999", "kim.new@example.org")
    made = requests.post(f"{jsonserver.url}/users", headers=AUTH, timeout=10, json={
        "externalId": "E0009999", "userName": "kim.new@example.org", "email": "kim.new@example.org",
        "title": "made by hand"}).json()
    run = provision("run", example, "--output", "json")
    assert run.code == 0, run.err
    [kim] = [u for u in jsonserver.records("users") if u["externalId"] == "E0009999"]
    assert kim["id"] == made["id"] and kim["title"] == "Analyst", "adopted, then put as the mapping says"
    assert len([u for u in jsonserver.records("users") if u["userName"] == "kim.new@example.org"]) == 1
    again = provision("run", example, "--output", "json")
    assert all(c["added"] + c["updated"] == 0 for c in again.json()["object_types"].values()), again.out


def test_a_404_on_update_creates_the_record_again_in_the_same_run(provision, example, tmp_path, jsonserver):
    assert provision("run", example).code == 0
    [victim] = [u for u in jsonserver.records("users") if u["externalId"] == "E0000003"]
    requests.delete(f"{jsonserver.url}/users/{victim['id']}", headers=AUTH, timeout=10).raise_for_status()
    people = tmp_path / "manifests" / "data" / "people.csv"
    lines = people.read_text().splitlines()
    lines = [line.replace(f",{victim['title']},", ",Promoted,") if line.startswith("E0000003,") else line
             for line in lines]
    people.write_text("\n".join(lines) + "\n")
    run = provision("run", example, "--output", "json")
    assert run.code == 0, run.err
    again = api_state(jsonserver.dump())["users"]["E0000003"]
    assert again["title"] == "Promoted" and again["email"] == victim["email"]
    assert json.loads(run.out)["object_types"]["user"]["failed"] == 0


def rest(url: str, tmp_path, **objects) -> RestConnector:
    c = RestConnector({"type": "rest", "url": url, "auth": {"type": "bearer", "token": TOKEN}, "page_size": 4,
                       "objects": objects}, ConnectorContext("api", tmp_path))
    c.open()
    return c


def test_link_headers_page_a_list(jsonserver, tmp_path):
    c = rest(jsonserver.url, tmp_path, users={"list": {"query": {"_page": 1}},
                                              "paging": {"style": "link", "size_param": "_limit"}})
    results = list(c.apply([Operation(i, "add", "users", attributes={"userName": f"l{i}", "email": f"l{i}@x"})
                            for i in range(11)]))
    assert all(r.ok for r in results)
    pages = list(c.read("users"))
    assert len(pages) == 3 and sorted(r.attributes["userName"] for p in pages for r in p.records) == \
        sorted(f"l{i}" for i in range(11))


def test_without_correlate_a_lookup_scans_the_list_and_stops_at_max_scan(jsonserver, tmp_path):
    c = rest(jsonserver.url, tmp_path, users={"paging": {"style": "page", "page_param": "_page",
                                                          "size_param": "_limit"}, "max_scan": 8})
    list(c.apply([Operation(i, "add", "users", attributes={"userName": f"s{i}", "email": f"s{i}@x"})
                  for i in range(6)]))
    [found] = c.lookup("users", {"email": "s4@x"})
    assert found.attributes["userName"] == "s4"
    [dup] = c.apply([Operation(9, "add", "users", attributes={"userName": "s4", "email": "other@x"})])
    assert isinstance(dup.error, AlreadyExists)
    list(c.apply([Operation(20 + i, "add", "users", attributes={"userName": f"t{i}", "email": f"t{i}@x"})
                  for i in range(6)]))
    with pytest.raises(ConnectionFailed, match="max_scan=8"):
        c.lookup("users", {"email": "nobody@x"})
