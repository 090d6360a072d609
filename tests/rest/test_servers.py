"""The rest connector's test servers behave as their modules say (``tests/servers/jsonserver.py``,
``tests/servers/restapp.py``, the REST additions to ``tests/servers/scim.FaultProxy``).

These pin the servers, not the connector: if json-server or starlette changes under us, this file
says so before a connector test fails for a reason nobody can see.
"""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import requests
from servers.jsonserver import TOKEN, JsonServer
from servers.restapp import API_KEY, BASIC_USER, CLIENT_ID, CLIENT_SECRET, PASSWORD, RestApp
from servers.scim import FaultProxy

ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
ISO_US = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def session(headers: dict[str, str]) -> requests.Session:
    s = requests.Session()
    s.headers.update(headers)
    return s


def links(header: str) -> dict[str, str]:
    """``<url>; rel="next", ...`` -> {"next": url, ...}"""
    return {m.group(2): m.group(1) for m in re.finditer(r'<([^>]*)>;\s*rel="([^"]+)"', header)}


# ---- json-server -------------------------------------------------------------------------------------


@pytest.fixture
def js(jsonserver: JsonServer) -> requests.Session:
    return session(jsonserver.headers)


def add_users(js: requests.Session, url: str, n: int) -> list[dict[str, Any]]:
    made = []
    for i in range(n):
        answer = js.post(f"{url}/users", json={"userName": f"user{i:03}", "email": f"user{i:03}@example.org"})
        assert answer.status_code == 201, answer.text
        made.append(answer.json())
    return made


def test_json_server_wants_the_bearer_token_except_on_test_routes(jsonserver: JsonServer) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
        answer = requests.get(f"{jsonserver.url}/users", headers=headers, timeout=10)
        assert (answer.status_code, answer.json()) == (401, {"error": "unauthorised"})
    assert requests.get(f"{jsonserver.url}/", timeout=10).status_code == 401, "no home page without the token"
    assert requests.get(f"{jsonserver.url}/_test/dump", timeout=10).json() == {"users": [], "groups": []}
    assert requests.get(f"{jsonserver.url}/users", headers=jsonserver.headers, timeout=10).json() == []


def test_json_server_pages_by_page_and_by_offset_and_filters(jsonserver: JsonServer,
                                                             js: requests.Session) -> None:
    url = jsonserver.url
    made = add_users(js, url, 25)
    assert [u["id"] for u in made] == list(range(1, 26)), "ids are integers from 1"
    assert js.get(f"{url}/users/1").json() == made[0]

    page = js.get(f"{url}/users", params={"_page": 2, "_limit": 10})
    assert [u["id"] for u in page.json()] == list(range(11, 21))
    assert page.headers["X-Total-Count"] == "25"
    assert links(page.headers["Link"]) == {
        "first": f"{url}/users?_page=1&_limit=10", "prev": f"{url}/users?_page=1&_limit=10",
        "next": f"{url}/users?_page=3&_limit=10", "last": f"{url}/users?_page=3&_limit=10"}
    last = js.get(f"{url}/users", params={"_page": 3, "_limit": 10})
    assert len(last.json()) == 5 and "next" not in links(last.headers["Link"])
    beyond = js.get(f"{url}/users", params={"_page": 4, "_limit": 10})
    assert beyond.json() == [] and beyond.headers["Link"] == "", "past the end: [] and an empty Link"
    one_page = js.get(f"{url}/users", params={"_page": 1, "_limit": 100})
    assert len(one_page.json()) == 25 and one_page.headers["Link"] == ""

    offset = js.get(f"{url}/users", params={"_start": 20, "_limit": 10})
    assert [u["id"] for u in offset.json()] == [21, 22, 23, 24, 25]
    assert offset.headers["X-Total-Count"] == "25" and "Link" not in offset.headers
    assert [u["id"] for u in js.get(f"{url}/users", params={"_start": 5, "_end": 8}).json()] == [6, 7, 8]

    assert [u["id"] for u in js.get(f"{url}/users", params={"email": "user003@example.org"}).json()] == [4]
    assert js.get(f"{url}/users", params={"email": "USER003@example.org"}).json() == [], "case-sensitive"
    assert len(js.get(f"{url}/users", params={"_page": 2}).json()) == 10, "_limit defaults to 10"
    ordered = js.get(f"{url}/users", params={"_sort": "userName", "_order": "desc", "_limit": 2}).json()
    assert [u["id"] for u in ordered] == [25, 24]
    js.patch(f"{url}/users/7", json={"profile": {"dept": "ops"}})
    assert [u["id"] for u in js.get(f"{url}/users", params={"profile.dept": "ops"}).json()] == [7]
    nothing = js.get(f"{url}/users", params={"externalId": "E1", "_page": 1, "_limit": 10})
    assert (nothing.json(), nothing.headers["X-Total-Count"]) == ([], "0"), "plain json-server: all 25"


def test_json_server_stamps_updated_at_and_filters_on_it(jsonserver: JsonServer,
                                                        js: requests.Session) -> None:
    url = jsonserver.url
    made = add_users(js, url, 3)
    stamps = [u["updatedAt"] for u in made]
    assert all(ISO_MS.match(s) for s in stamps) and stamps == sorted(stamps)
    time.sleep(0.005)
    put = js.put(f"{url}/users/1", json={"userName": "user000", "updatedAt": "1999-01-01T00:00:00.000Z"})
    put = put.json()
    assert put["updatedAt"] > stamps[-1], "the server's time, not the client's"
    assert "email" not in put, "PUT replaces the record"
    assert js.put(f"{url}/users/3", json={"id": 99, "userName": "user002"}).json()["id"] == 3, "id kept"
    patched = js.patch(f"{url}/users/2", json={"email": "new@example.org"}).json()
    assert patched["userName"] == "user001" and patched["updatedAt"] >= put["updatedAt"]
    changed = js.get(f"{url}/users", params={"updatedAt_gte": put["updatedAt"]}).json()
    assert sorted(u["id"] for u in changed) == [1, 2, 3]
    window = {"updatedAt_gte": stamps[-1], "updatedAt_lte": stamps[-1]}
    assert js.get(f"{url}/users", params=window).json() == [], "every record was written since"
    assert js.delete(f"{url}/users/3").status_code == 200


def test_json_server_answers_a_missing_record_404(jsonserver: JsonServer, js: requests.Session) -> None:
    for method in ("GET", "PUT", "PATCH", "DELETE"):
        answer = js.request(method, f"{jsonserver.url}/users/42", json={"userName": "x"})
        assert (answer.status_code, answer.json()) == (404, {}), method
    assert jsonserver.records("users") == [], "PUT does not create"


def test_json_server_refuses_duplicates_with_409(jsonserver: JsonServer, js: requests.Session) -> None:
    url = jsonserver.url
    add_users(js, url, 2)
    duplicate = js.post(f"{url}/users", json={"userName": "USER001", "email": "other@example.org"})
    assert (duplicate.status_code, duplicate.json()) == \
        (409, {"error": "duplicate", "field": "userName", "id": 2})
    assert js.post(f"{url}/users", json={"userName": "x", "email": "User000@Example.org"}).json() == \
        {"error": "duplicate", "field": "email", "id": 1}
    assert js.post(f"{url}/users", json={"id": 2, "userName": "y"}).json() == \
        {"error": "duplicate", "field": "id", "id": 2}, "json-server alone answers 500"
    assert js.put(f"{url}/users/1", json={"userName": "user001"}).status_code == 409
    assert js.patch(f"{url}/users/1", json={"email": "user001@example.org"}).json()["id"] == 2
    own = js.put(f"{url}/users/1", json={"userName": "USER000", "email": "user000@example.org"})
    assert own.status_code == 200, "a record's own values are no duplicate"
    assert js.post(f"{url}/groups", json={"name": "Admins"}).status_code == 201
    assert js.post(f"{url}/groups", json={"name": "admins"}).status_code == 409
    assert [u["userName"] for u in jsonserver.records("users")] == ["USER000", "user001"]

    with ThreadPoolExecutor(8) as pool:  # writes are serialised: one of eight racing POSTs wins
        answers = list(pool.map(lambda i: js.post(f"{url}/users", json={"userName": "racer"}).status_code,
                                range(8)))
    assert sorted(answers) == [201] + [409] * 7


def test_json_server_never_gives_an_id_twice_nor_deletes_in_cascade(jsonserver: JsonServer,
                                                                     js: requests.Session) -> None:
    url = jsonserver.url
    add_users(js, url, 3)
    assert js.delete(f"{url}/users/3").status_code == 200
    assert js.post(f"{url}/users", json={"userName": "next"}).json()["id"] == 4, "plain json-server: 3 again"
    assert js.post(f"{url}/users", json={"id": 10, "userName": "ten"}).status_code == 201
    assert js.post(f"{url}/users", json={"userName": "after-ten"}).json()["id"] == 11
    js.post(f"{url}/groups", json={"name": "g", "userId": 999})  # names a user that does not exist
    assert js.delete(f"{url}/users/1").status_code == 200
    assert [g["name"] for g in jsonserver.records("groups")] == ["g"], "plain json-server deletes it too"


def test_json_server_reset_empties_every_collection(jsonserver: JsonServer, js: requests.Session) -> None:
    add_users(js, jsonserver.url, 3)
    js.post(f"{jsonserver.url}/groups", json={"name": "g"})
    jsonserver.reset()
    assert jsonserver.dump() == {"users": [], "groups": []}
    assert js.post(f"{jsonserver.url}/users", json={"userName": "again"}).json()["id"] == 1, "ids start again"


def test_the_fault_proxy_stands_in_front_of_json_server(jsonserver: JsonServer, js: requests.Session) -> None:
    add_users(js, jsonserver.url, 12)
    proxy = FaultProxy(jsonserver.url, token=TOKEN, rewrite_location=True)
    try:
        via = session(jsonserver.headers)
        page = via.get(f"{proxy.url}/users", params={"_page": 1, "_limit": 5})
        assert page.headers["X-Total-Count"] == "12"
        assert links(page.headers["Link"])["next"] == f"{proxy.url}/users?_page=2&_limit=5", \
            "Link names the proxy"
        assert requests.get(f"{proxy.url}/users", timeout=10).status_code == 401

        proxy.faults.html_errors = 1
        gateway = via.get(f"{proxy.url}/users")
        assert gateway.status_code == 502 and gateway.headers["Content-Type"] == "text/html"
        assert gateway.text.startswith("<html><head><title>502 Bad Gateway</title>")

        proxy.faults.drop_before_answer = 1
        with pytest.raises(requests.ConnectionError):
            via.put(f"{proxy.url}/users/1", json={"userName": "applied"})
        proxy.faults.drop_before_forward = 1
        with pytest.raises(requests.ConnectionError):
            via.put(f"{proxy.url}/users/2", json={"userName": "not-applied"})
        names = {u["id"]: u["userName"] for u in jsonserver.records("users")}
        assert (names[1], names[2]) == ("applied", "user001")
        created = via.post(f"{proxy.url}/users", json={"userName": "via-proxy"})
        assert created.status_code == 201 and created.headers["Location"] == f"{proxy.url}/users/13"
        assert [s[3] for s in proxy.faults.requests()][-5:] == [401, 502, -1, -1, 201]
    finally:
        proxy.stop()


# ---- restapp -------------------------------------------------------------------------------------------


@pytest.fixture
def api(restapp: RestApp) -> requests.Session:
    return session(restapp.headers)


def v2(app: RestApp, path: str) -> str:
    return f"{app.url}/api/v2/{path}"


def add_accounts(api: requests.Session, app: RestApp, n: int) -> list[str]:
    ids = []
    for i in range(n):
        answer = api.post(v2(app, "accounts"), json={"login": f"login{i:03}", "profile": {
            "firstName": "F", "lastName": f"L{i}", "email": f"login{i:03}@example.org"}})
        assert answer.status_code == 201, answer.text
        ids.append(answer.json()["id"])
    return ids


def test_restapp_pages_with_an_opaque_cursor(restapp: RestApp, api: requests.Session) -> None:
    ids = add_accounts(api, restapp, 120)
    assert all(re.fullmatch(r"acc_[0-9a-f]{12}", i) for i in ids)
    seen, cursor, pages = [], None, 0
    while True:
        params: dict[str, Any] = {"limit": 50, **({"cursor": cursor} if cursor else {})}
        body = api.get(v2(restapp, "accounts"), params=params).json()
        assert body["meta"]["total"] == 120
        seen += [a["id"] for a in body["data"]]
        pages += 1
        cursor = body["meta"]["next_cursor"]
        if cursor is None:
            break
    assert (pages, seen) == (3, ids), "50 + 50 + 20, in creation order"

    first = api.get(v2(restapp, "accounts"), params={"limit": 10}).json()
    assert api.delete(v2(restapp, f"accounts/{ids[9]}")).status_code == 204
    after = api.get(v2(restapp, "accounts"), params={"limit": 10, "cursor": first["meta"]["next_cursor"]})
    assert after.json()["data"][0]["id"] == ids[10], "a cursor survives the deletion of its record"
    assert len(api.get(v2(restapp, "accounts")).json()["data"]) == 50, "limit defaults to 50"
    assert len(api.get(v2(restapp, "accounts"), params={"limit": 1000}).json()["data"]) == 119, "at most 200"
    bad = api.get(v2(restapp, "accounts"), params={"cursor": "bm90LWEtY3Vyc29y"})
    assert (bad.status_code, bad.json()["error"]["code"]) == (400, "invalid_cursor")
    assert api.get(v2(restapp, "accounts"), params={"limit": 0}).status_code == 400


def test_restapp_filters_accounts(restapp: RestApp, api: requests.Session) -> None:
    ids = add_accounts(api, restapp, 4)
    middle = api.get(v2(restapp, f"accounts/{ids[2]}")).json()["updated_at"]
    assert ISO_US.match(middle)
    since = api.get(v2(restapp, "accounts"), params={"updated_since": middle}).json()
    assert [a["id"] for a in since["data"]] == ids[2:] and since["meta"]["total"] == 2
    offset = datetime.fromisoformat(middle).astimezone(timezone(timedelta(hours=2))).isoformat()
    assert offset.endswith("+02:00"), "the same instant, written with another offset"

    def found(**params: str) -> list[str]:
        return [a["id"] for a in api.get(v2(restapp, "accounts"), params=params).json()["data"]]

    assert found(updated_since=offset) == ids[2:]
    assert found(login="LOGIN001") == [ids[1]]
    assert found(email="Login003@Example.org") == [ids[3]]
    assert api.get(v2(restapp, "accounts"), params={"updated_since": "yesterday"}).status_code == 400


def test_restapp_updates_only_with_put(restapp: RestApp, api: requests.Session) -> None:
    [aid] = add_accounts(api, restapp, 1)
    created = api.get(v2(restapp, f"accounts/{aid}")).json()
    patch = api.patch(v2(restapp, f"accounts/{aid}"), json={"status": "SUSPENDED"})
    assert (patch.status_code, patch.json()["error"]["code"]) == (405, "method_not_allowed")
    assert patch.headers["Allow"] == "DELETE, GET, HEAD, PUT"
    put = api.put(v2(restapp, f"accounts/{aid}"),
                  json={"login": "renamed", "status": "SUSPENDED", "costCenter": 7})
    record = put.json()
    assert put.status_code == 200
    assert record["profile"] == {"firstName": None, "lastName": None, "email": None}, "cleared"
    assert (record["status"], record["costCenter"], record["created_at"]) == \
        ("SUSPENDED", 7, created["created_at"])
    assert record["updated_at"] > created["updated_at"]
    missing = api.put(v2(restapp, "accounts/acc_000000000000"), json={"login": "x"})
    assert missing.json() == {"error": {"code": "not_found", "message": "no account acc_000000000000"}}
    assert api.delete(v2(restapp, "accounts/acc_000000000000")).status_code == 404


def test_restapp_answers_a_duplicate_login_400(restapp: RestApp, api: requests.Session) -> None:
    [aid, other] = add_accounts(api, restapp, 2)
    duplicate = api.post(v2(restapp, "accounts"), json={"login": "LOGIN000"})
    assert duplicate.status_code == 400
    assert duplicate.json() == \
        {"error": {"code": "duplicate", "message": "login already taken", "existing_id": aid}}
    assert api.put(v2(restapp, f"accounts/{other}"), json={"login": "login000"}).json()["error"]["code"] == \
        "duplicate"
    assert api.post(v2(restapp, "accounts"), json={"profile": {}}).json() == \
        {"error": {"code": "invalid", "message": "login is required"}}
    assert api.post(v2(restapp, "teams"), json={"name": "Ops"}).status_code == 201
    conflict = api.post(v2(restapp, "teams"), json={"name": "ops"})
    assert (conflict.status_code, conflict.json()["error"]) == \
        (409, {"code": "conflict", "message": "team name exists"})


def test_restapp_replays_an_idempotency_key(restapp: RestApp, api: requests.Session) -> None:
    key = {"Idempotency-Key": "create-alice-1"}
    first = api.post(v2(restapp, "accounts"), json={"login": "alice"}, headers=key)
    again = api.post(v2(restapp, "accounts"), json={"login": "alice"}, headers=key)
    assert (again.status_code, again.json(), again.headers["Location"]) == \
        (201, first.json(), first.headers["Location"])
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(restapp.dump()["accounts"]) == 1
    mismatch = api.post(v2(restapp, "accounts"), json={"login": "bob"}, headers=key)
    assert (mismatch.status_code, mismatch.json()["error"]["code"]) == (422, "idempotency_mismatch")
    dump = restapp.dump()
    assert (len(dump["accounts"]), dump["idempotency_keys"]) == (1, 1)
    assert [r["idempotency_key"] for r in restapp.requests_seen()] == ["create-alice-1"] * 3


def test_restapp_keeps_members_as_sub_resources(restapp: RestApp, api: requests.Session) -> None:
    ids = add_accounts(api, restapp, 5)
    team = api.post(v2(restapp, "teams"), json={"name": "Admins", "description": "d"}).json()
    assert re.fullmatch(r"team_[0-9a-f]{12}", team["id"]) and "members" not in team
    for aid in [*ids, ids[0]]:
        assert api.put(v2(restapp, f"teams/{team['id']}/members/{aid}")).status_code == 204, "idempotent"
    first = api.get(v2(restapp, f"teams/{team['id']}/members"), params={"limit": 3}).json()
    rest = api.get(v2(restapp, f"teams/{team['id']}/members"),
                   params={"limit": 3, "cursor": first["meta"]["next_cursor"]}).json()
    assert [m["account_id"] for m in first["data"] + rest["data"]] == ids
    assert rest["meta"]["next_cursor"] is None
    assert api.get(v2(restapp, f"teams/{team['id']}")).json()["updated_at"] == team["updated_at"], \
        "a membership change does not touch the team"
    assert api.put(v2(restapp, f"teams/{team['id']}/members/acc_000000000000")).status_code == 404
    assert api.put(v2(restapp, f"teams/team_000000000000/members/{ids[0]}")).status_code == 404
    assert api.delete(v2(restapp, f"teams/{team['id']}/members/{ids[1]}")).status_code == 204
    assert api.delete(v2(restapp, f"teams/{team['id']}/members/{ids[1]}")).status_code == 404
    assert api.delete(v2(restapp, f"accounts/{ids[2]}")).status_code == 204
    assert restapp.dump()["teams"][0]["members"] == [ids[0], ids[3], ids[4]], \
        "a deleted account leaves its teams"


def test_restapp_issues_and_revokes_oauth_tokens(restapp: RestApp) -> None:
    token_url = f"{restapp.url}/oauth/token"
    assert requests.post(token_url, data={"grant_type": "client_credentials"}, auth=(CLIENT_ID, "wrong"),
                         timeout=10).json() == {"error": "invalid_client"}
    grant = requests.post(token_url, data={"grant_type": "client_credentials"},
                          auth=(CLIENT_ID, CLIENT_SECRET), timeout=10).json()
    assert (grant["token_type"], grant["expires_in"]) == ("Bearer", 3600)
    bearer = {"Authorization": f"Bearer {grant['access_token']}"}
    assert requests.get(v2(restapp, "accounts"), headers=bearer, timeout=10).status_code == 200
    restapp.revoke()
    refused = requests.get(v2(restapp, "accounts"), headers=bearer, timeout=10)
    assert refused.status_code == 401 and 'error="invalid_token"' in refused.headers["WWW-Authenticate"]
    assert refused.json() == {"error": {"code": "unauthorized", "message": "access token revoked"}}
    again = requests.post(token_url, data={"grant_type": "client_credentials", "client_id": CLIENT_ID,
                                           "client_secret": CLIENT_SECRET}, timeout=10).json()
    assert requests.get(v2(restapp, "accounts"), timeout=10,
                        headers={"Authorization": f"Bearer {again['access_token']}"}).status_code == 200
    assert restapp.dump()["tokens_issued"] == 2
    assert [(r["path"], r["auth_scheme"], r["status"]) for r in restapp.requests_seen()] == [
        ("/oauth/token", "client_basic", 401), ("/oauth/token", "client_basic", 200),
        ("/api/v2/accounts", "oauth", 200), ("/api/v2/accounts", None, 401),
        ("/oauth/token", "client_form", 200), ("/api/v2/accounts", "oauth", 200)]


def test_restapp_tokens_expire(tmp_path: Path) -> None:
    app = RestApp.start(tmp_path, token_lifetime=1)
    try:
        grant = requests.post(f"{app.url}/oauth/token", data={"grant_type": "client_credentials"},
                              auth=(CLIENT_ID, CLIENT_SECRET), timeout=10).json()
        assert grant["expires_in"] == 1
        time.sleep(1.1)
        expired = requests.get(v2(app, "accounts"), timeout=10,
                               headers={"Authorization": f"Bearer {grant['access_token']}"})
        assert expired.json()["error"]["message"] == "access token expired"
    finally:
        app.stop()


def test_restapp_takes_api_keys_and_basic(restapp: RestApp) -> None:
    assert requests.get(v2(restapp, "accounts"), timeout=10).json() == \
        {"error": {"code": "unauthorized", "message": "no credentials"}}
    assert requests.get(v2(restapp, "accounts"), params={"api_key": API_KEY}, timeout=10).status_code == 200
    assert requests.get(v2(restapp, "accounts"), headers={"X-API-Key": API_KEY},
                        timeout=10).status_code == 200
    assert requests.get(v2(restapp, "accounts"), auth=(BASIC_USER, PASSWORD), timeout=10).status_code == 200
    assert requests.get(v2(restapp, "accounts"), params={"api_key": "nope"}, timeout=10).status_code == 401
    assert requests.get(v2(restapp, "accounts"), auth=(BASIC_USER, "nope"), timeout=10).status_code == 401
    assert [r["auth_scheme"] for r in restapp.requests_seen()] == \
        [None, "api_key_query", "api_key_header", "basic", None, None]
    assert restapp.requests_seen()[1]["query"] == f"api_key={API_KEY}"


def test_the_fault_proxy_passes_restapp_credentials_through(restapp: RestApp) -> None:
    proxy = FaultProxy(restapp.url, token="unused")
    try:
        proxy.faults.passthrough_auth = True
        via = session({"X-API-Key": API_KEY, "Idempotency-Key": "k1"})
        first = via.post(f"{proxy.url}/api/v2/accounts", json={"login": "proxied"})
        again = via.post(f"{proxy.url}/api/v2/accounts", json={"login": "proxied"})
        assert (first.status_code, again.headers["Idempotent-Replayed"]) == (201, "true")
        assert via.patch(f"{proxy.url}/api/v2/accounts/x", json={}).headers["Allow"] == \
            "DELETE, GET, HEAD, PUT"
        grant = requests.post(f"{proxy.url}/oauth/token", data={"grant_type": "client_credentials"},
                              auth=(CLIENT_ID, CLIENT_SECRET), timeout=10).json()
        assert grant["access_token"].startswith("rat_"), "restapp's own token endpoint"
        assert [r["auth_scheme"] for r in restapp.requests_seen()] == \
            ["api_key_header", "api_key_header", None, "client_basic"]
    finally:
        proxy.stop()
