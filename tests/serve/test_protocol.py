"""The endpoint's protocol behaviour over real HTTP: authentication, errors in RFC 7644 §3.12 form,
uniqueness, filters, paging, partial representations, versions, the rate limit, the errors a store
raises, and PATCH of a group of 20,000 members."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from servers.scimendpoint import BUSY, CRASH, REJECTED, RETRY_AFTER, TARGET_MESSAGE, ScimEndpoint

ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


def error(answer: requests.Response, status: int, scim_type: str | None = None) -> dict[str, Any]:
    """The body of an RFC 7644 §3.12 error answer with ``status`` (and ``scimType``)."""
    assert answer.status_code == status, answer.text
    assert answer.headers["Content-Type"] == "application/scim+json"
    body = answer.json()
    assert body["schemas"] == [ERROR] and body["status"] == str(status), body
    assert body.get("scimType") == scim_type, body
    return body


def patch(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH_OP], "Operations": list(operations)}


def unique(prefix: str = "u") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


# ---- authentication --------------------------------------------------------------------------------------


@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token", "Basic scim-endpoint-token-5c2e9a",
                                           "Bearer", "scim-endpoint-token-5c2e9a"],
                         ids=["none", "wrong", "basic-scheme", "empty", "no-scheme"])
def test_requests_without_the_token_are_refused(endpoint: ScimEndpoint, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    for method, path in (("GET", "/Users"), ("POST", "/Users"), ("GET", "/ServiceProviderConfig"), ("GET", "/nowhere")):
        answer = requests.request(method, f"{endpoint.url}{path}", headers=headers, json={}, timeout=10)
        body = error(answer, 401)
        assert "Bearer" in body["detail"] or "token" in body["detail"]
        challenge = answer.headers["WWW-Authenticate"]
        assert challenge.startswith('Bearer realm="SCIM"')
        assert ('error="invalid_token"' in challenge) == (authorization is not None)


def test_the_bearer_scheme_is_case_insensitive_and_health_is_open(endpoint: ScimEndpoint) -> None:
    answer = requests.get(f"{endpoint.url}/ServiceProviderConfig", timeout=10,
                          headers={"Authorization": f"bearer {endpoint.token}"})
    assert answer.status_code == 200
    for url in (f"{endpoint.url}/health", f"http://127.0.0.1:{endpoint.port}/health"):
        health = requests.get(url, timeout=10)
        assert (health.status_code, health.json()) == (200, {"status": "ok"})


# ---- errors -----------------------------------------------------------------------------------------------


def test_a_taken_user_name_is_409_uniqueness(endpoint: ScimEndpoint) -> None:
    first = endpoint.create_user()
    body = error(endpoint.request("POST", "/Users", {"userName": first["userName"].upper()}), 409, "uniqueness")
    assert first["id"] in body["detail"]
    other = endpoint.create_user()
    error(endpoint.request("PATCH", f"/Users/{other['id']}", patch(
        {"op": "replace", "path": "userName", "value": first["userName"]})), 409, "uniqueness")
    error(endpoint.request("PUT", f"/Users/{other['id']}", {"userName": first["userName"]}), 409, "uniqueness")
    # the name is free again once its user is renamed
    endpoint.request("PATCH", f"/Users/{first['id']}", patch({"op": "replace", "path": "userName", "value": unique()}))
    assert endpoint.request("PUT", f"/Users/{other['id']}", {"userName": first["userName"]}).status_code == 200


def test_a_taken_group_display_name_is_409(endpoint: ScimEndpoint) -> None:
    name = unique("group")
    assert endpoint.request("POST", "/Groups", {"displayName": name}).status_code == 201
    error(endpoint.request("POST", "/Groups", {"displayName": name.upper()}), 409, "uniqueness")


@pytest.mark.parametrize("text", [
    'userName co "x"', 'userName eq "a" or userName eq "b"', '(userName eq "a")', 'not (userName eq "a")',
    'userName eq x', 'userName', 'nosuch eq "x"', 'emails[type eq "work" or type eq "home"]',
    'name.nosuch eq "x"', 'userName eq "a" and', 'meta.lastModified gt "2011-05-13T04:42:34Z"',
    f'{ENTERPRISE} eq "x"',
])
def test_filters_beyond_eq_and_and_are_400_invalid_filter(endpoint: ScimEndpoint, text: str) -> None:
    body = error(endpoint.request("GET", "/Users", params={"filter": text}), 400, "invalidFilter")
    assert repr(text) in body["detail"]


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
def test_an_unknown_id_is_404(endpoint: ScimEndpoint, method: str) -> None:
    for collection, body in (("/Users", {"userName": "x", "displayName": "x"}), ("/Groups", {"displayName": "x"})):
        sent = {"PUT": body, "PATCH": patch({"op": "replace", "path": "displayName", "value": "x"})}.get(method)
        assert "not found" in error(endpoint.request(method, f"{collection}/{uuid.uuid4()}", sent), 404)["detail"]


def test_unknown_endpoints_and_methods_are_scim_errors(endpoint: ScimEndpoint) -> None:
    error(endpoint.request("GET", f"/{uuid.uuid4()}"), 404)
    error(endpoint.request("GET", "/ResourceTypes/Device"), 404)
    error(endpoint.request("GET", "/Schemas/urn:example:nothing"), 404)
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        error(endpoint.request(method, "/ServiceProviderConfig", {}), 405)
    error(endpoint.request("DELETE", "/Users", {}), 405)
    error(endpoint.request("POST", "/Bulk", {"Operations": []}), 501)
    error(endpoint.request("GET", "/Me"), 501)


@pytest.mark.parametrize(("body", "scim_type", "words"), [
    ("{not json", "invalidSyntax", "not JSON"),
    ([1, 2], "invalidSyntax", "JSON object"),
    ({"name": {"givenName": "x"}}, "invalidValue", "userName is required"),
    ({"userName": "x", "shoeSize": 42}, "invalidValue", "shoeSize"),
    ({"userName": "x", "active": "maybe"}, "invalidValue", "active"),
    ({"userName": "x", "emails": [{"value": "a@b", "kind": "work"}]}, "invalidValue", "kind"),
    ({"userName": 7}, "invalidValue", "userName"),
    ({"userName": "x", "urn:example:custom:2.0:User": {"tag": "1"}}, "invalidValue", "urn:example:custom"),
])
def test_bodies_that_do_not_fit_the_schema_are_400(endpoint: ScimEndpoint, body: Any, scim_type: str, words: str) -> None:
    assert words in error(endpoint.request("POST", "/Users", body), 400, scim_type)["detail"]


@pytest.mark.parametrize(("operation", "scim_type"), [
    ({"op": "remove"}, "noTarget"),
    ({"op": "replace", "path": 'emails[type eq "home"].value', "value": "x@y"}, "noTarget"),
    ({"op": "replace", "path": "id", "value": "mine"}, "mutability"),
    ({"op": "add", "path": "groups", "value": [{"value": "g"}]}, "mutability"),
    ({"op": "remove", "path": "userName"}, "invalidValue"),
    ({"op": "move", "path": "userName", "value": "x"}, "invalidSyntax"),
    ({"op": "add", "path": "nosuch", "value": "x"}, "invalidPath"),
    ({"op": "add", "path": 'userName[value eq "x"]', "value": "x"}, "invalidPath"),
    ({"op": "replace", "value": "not an object"}, "invalidSyntax"),
    ({"op": "replace", "path": "active", "value": "sometimes"}, "invalidValue"),
])
def test_patches_that_cannot_apply_are_400(endpoint: ScimEndpoint, operation: dict[str, Any], scim_type: str) -> None:
    user = endpoint.create_user(emails=[{"type": "work", "value": "w@example.com"}])
    error(endpoint.request("PATCH", f"/Users/{user['id']}", patch(operation)), 400, scim_type)
    after = endpoint.request("GET", f"/Users/{user['id']}").json()
    assert after["meta"]["version"] == user["meta"]["version"]  # nothing half-applied


def test_store_errors_become_scim_errors(tmp_path_factory: pytest.TempPathFactory) -> None:
    faulty = ScimEndpoint.start(tmp_path_factory.mktemp("faulty"), faults=True)
    try:
        busy = faulty.request("POST", "/Users", {"userName": f"{BUSY}1"})
        error(busy, 503)
        assert busy.headers["Retry-After"] == str(RETRY_AFTER)
        rejected = error(faulty.request("POST", "/Users", {"userName": f"{REJECTED}1"}), 400)
        assert rejected["detail"] == TARGET_MESSAGE
        crashed = error(faulty.request("POST", "/Users", {"userName": f"{CRASH}1"}), 500)
        assert "the store broke" not in crashed["detail"]  # internals stay in the log
        assert faulty.request("POST", "/Users", {"userName": "fine"}).status_code == 201
    finally:
        faulty.stop()


# ---- queries ----------------------------------------------------------------------------------------------


def test_paging_follows_rfc_7644_3_4_2_4(endpoint: ScimEndpoint) -> None:
    title = unique("pager")
    ids = [endpoint.create_user(title=title)["id"] for _ in range(5)]
    query = f'title eq "{title}"'

    def page(**params: Any) -> dict[str, Any]:
        answer = endpoint.request("GET", "/Users", params={"filter": query, **params})
        assert answer.status_code == 200, answer.text
        return answer.json()

    second = page(startIndex=2, count=2)
    assert (second["totalResults"], second["startIndex"], second["itemsPerPage"]) == (5, 2, 2)
    assert [r["id"] for r in second["Resources"]] == ids[1:3]
    assert [r["id"] for r in page(startIndex=0)["Resources"]] == ids  # below 1 counts as 1
    counted = page(count=-3)  # negative counts as 0: only the total
    assert (counted["totalResults"], counted["itemsPerPage"], counted["Resources"]) == (5, 0, [])
    assert page(startIndex=9)["Resources"] == []
    error(endpoint.request("GET", "/Users", params={"count": "ten"}), 400, "invalidValue")
    searched = endpoint.request("POST", "/Users/.search", {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": query,
        "startIndex": 4, "count": 10, "attributes": ["title"]}).json()
    assert [r["id"] for r in searched["Resources"]] == ids[3:]
    assert all(set(r) == {"schemas", "id", "title"} for r in searched["Resources"])


def test_root_search_spans_users_and_groups(endpoint: ScimEndpoint) -> None:
    name = unique("both")
    user = endpoint.create_user(displayName=name)
    group = endpoint.request("POST", "/Groups", {"displayName": name}).json()
    found = endpoint.request("POST", "/.search", {"filter": f'displayName eq "{name}"'}).json()
    assert [r["id"] for r in found["Resources"]] == [user["id"], group["id"]]
    assert [r["meta"]["resourceType"] for r in found["Resources"]] == ["User", "Group"]
    only_users = endpoint.request("POST", "/.search", {"filter": f'userName eq "{user["userName"]}"'}).json()
    assert [r["id"] for r in only_users["Resources"]] == [user["id"]]


def test_attributes_and_excluded_attributes(endpoint: ScimEndpoint) -> None:
    user = endpoint.create_user(displayName="Babs", password="s3cret!", name={"givenName": "B", "familyName": "J"},
                                emails=[{"type": "work", "value": "b@example.com"}],
                                **{ENTERPRISE: {"department": "Sales", "employeeNumber": "42"}})
    assert "password" not in user  # returned: never
    path = f"/Users/{user['id']}"
    only = endpoint.request("GET", path, params={"attributes": f"userName,name.givenName,emails.value,{ENTERPRISE}:department"}).json()
    assert only == {"schemas": user["schemas"], "id": user["id"], "userName": user["userName"],
                    "name": {"givenName": "B"}, "emails": [{"value": "b@example.com"}], ENTERPRISE: {"department": "Sales"}}
    without = endpoint.request("GET", path, params={"excludedAttributes": "DISPLAYNAME,name.familyName,id,meta"}).json()
    assert "displayName" not in without and "meta" not in without and without["id"] == user["id"]
    assert without["name"] == {"givenName": "B"} and without[ENTERPRISE]["employeeNumber"] == "42"
    assert "password" not in endpoint.request("GET", path, params={"attributes": "password"}).json()


def test_versions_etags_and_conditional_requests(endpoint: ScimEndpoint) -> None:
    user = endpoint.create_user()
    path = f"/Users/{user['id']}"
    got = endpoint.request("GET", path)
    assert got.headers["ETag"] == user["meta"]["version"] == got.json()["meta"]["version"]
    not_modified = endpoint.request("GET", path, headers={"If-None-Match": got.headers["ETag"]})
    assert (not_modified.status_code, not_modified.content) == (304, b"")
    stale = got.headers["ETag"]
    changed = endpoint.request("PATCH", path, patch({"op": "replace", "path": "title", "value": "x"}),
                               headers={"If-Match": stale})
    assert changed.status_code == 200 and changed.headers["ETag"] != stale
    error(endpoint.request("PATCH", path, patch({"op": "replace", "path": "title", "value": "y"}),
                           headers={"If-Match": stale}), 412)
    error(endpoint.request("DELETE", path, headers={"If-Match": stale}), 412)
    assert endpoint.request("PUT", path, {"userName": user["userName"]}, headers={"If-Match": "*"}).status_code == 200
    assert endpoint.request("DELETE", path, headers={"If-Match": endpoint.request("GET", path).headers["ETag"]}).status_code == 204


def test_put_replaces_and_keeps_what_the_server_owns(endpoint: ScimEndpoint) -> None:
    user = endpoint.create_user(title="Boss", nickName="B")
    replaced = endpoint.request("PUT", f"/Users/{user['id']}", {
        "id": "ignored", "userName": user["userName"], "title": "Intern", "meta": {"created": "1999-01-01T00:00:00Z"}}).json()
    assert replaced["id"] == user["id"] and replaced["title"] == "Intern" and "nickName" not in replaced
    assert replaced["meta"]["created"] == user["meta"]["created"]
    assert replaced["meta"]["lastModified"] > user["meta"]["lastModified"]


def test_every_answer_is_scim_json(endpoint: ScimEndpoint) -> None:
    for path in ("/ServiceProviderConfig", "/ResourceTypes", "/ResourceTypes/User", "/Schemas",
                 f"/Schemas/{ENTERPRISE}", "/Users", "/Groups"):
        answer = endpoint.request("GET", path)
        assert (answer.status_code, answer.headers["Content-Type"]) == (200, "application/scim+json"), path
    config = endpoint.request("GET", "/ServiceProviderConfig").json()
    assert config["patch"] == {"supported": True} and config["bulk"]["supported"] is False
    assert config["etag"] == {"supported": True} and config["authenticationSchemes"][0]["type"] == "oauthbearertoken"
    user_type = endpoint.request("GET", "/ResourceTypes/User").json()
    assert user_type["schemaExtensions"] == [{"schema": ENTERPRISE, "required": False}]


# ---- the rate limit -------------------------------------------------------------------------------------


@pytest.fixture
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScimEndpoint]:
    running = ScimEndpoint.start(tmp_path_factory.mktemp("limited"), rate=1, burst=3)
    yield running
    running.stop()


def test_the_rate_limit_answers_429_with_retry_after(limited: ScimEndpoint) -> None:
    answers = [limited.request("GET", "/Users") for _ in range(5)]
    assert [a.status_code for a in answers[:3]] == [200, 200, 200]
    refused = answers[3]
    error(refused, 429)
    wait = int(refused.headers["Retry-After"])
    assert 1 <= wait <= 2
    assert requests.get(f"{limited.url}/health", timeout=10).status_code == 200  # not limited
    time.sleep(wait)
    assert limited.request("GET", "/Users").status_code == 200


# ---- big groups --------------------------------------------------------------------------------------------


def test_a_member_joins_and_leaves_a_group_of_20000_quickly(endpoint: ScimEndpoint) -> None:
    members = [{"value": str(uuid.uuid4())} for _ in range(20_000)]
    created = endpoint.request("POST", "/Groups", {"displayName": unique("everyone"), "members": members},
                               params={"excludedAttributes": "members"})
    assert created.status_code == 201 and "members" not in created.json()
    group = created.json()["id"]

    def timed(body: dict[str, Any]) -> float:
        start = time.perf_counter()
        answer = endpoint.request("PATCH", f"/Groups/{group}", body)
        took = time.perf_counter() - start
        assert answer.status_code == 204, answer.text
        return took

    def is_member(value: str) -> bool:
        query = f'id eq "{group}" and members eq "{value}"'  # how Entra asks
        answer = endpoint.request("GET", "/Groups", params={"filter": query, "excludedAttributes": "members"})
        return answer.json()["totalResults"] == 1

    joined = timed(patch({"op": "Add", "path": "members", "value": [{"$ref": None, "value": "newcomer"}]}))
    assert is_member("newcomer")
    left = timed(patch({"op": "Remove", "path": 'members[value eq "newcomer"]'}))
    assert not is_member("newcomer")
    old_style = timed(patch({"op": "Remove", "path": "members", "value": [{"value": members[123]["value"]}]}))
    assert not is_member(members[123]["value"]) and is_member(members[124]["value"])
    assert max(joined, left, old_style) < 0.25, (joined, left, old_style)
    everyone = endpoint.request("GET", f"/Groups/{group}").json()["members"]
    assert len(everyone) == 19_999 and everyone[:2] == members[:2]
