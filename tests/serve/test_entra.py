"""Microsoft Entra's requests, as Microsoft documents them, against the live endpoint.

The request bodies are the ones in Microsoft's articles, sent as written (only the ids in the URLs
are the ones this endpoint issued):

* "Tutorial: Develop and plan provisioning for a SCIM endpoint in Microsoft Entra ID"
  (MicrosoftDocs/entra-docs, docs/identity/app-provisioning/use-scim-to-provision-users-and-groups.md),
  section "SCIM protocol requests and responses": the user operations (create, get, get by query,
  query with zero results, update multi-valued and single-valued properties, disable, delete), the
  group operations (create, get, get by displayName, update, add members, remove members, delete)
  and schema discovery; and its examples 4 and 5 (a filter on ``manager``, a PATCH of ``manager``);
* "Known issues and resolutions with SCIM 2.0 protocol compliance of the Microsoft Entra user
  provisioning service" (application-provisioning-config-problem-scim-compatibility.md): the PATCH
  requests Entra sends without and with the ``aadOptscim062020`` flag.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from servers.scimendpoint import ScimEndpoint

ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"

# ---- the bodies of "SCIM protocol requests and responses" ---------------------------------------------

CREATE_USER = """{
    "schemas": [
        "urn:ietf:params:scim:schemas:core:2.0:User",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
    "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
    "userName": "Test_User_00aa00aa-bb11-cc22-dd33-44ee44ee44ee",
    "active": true,
    "emails": [{
        "primary": true,
        "type": "work",
        "value": "Test_User_11bb11bb-cc22-dd33-ee44-55ff55ff55ff@testuser.com"
    }],
    "meta": {
        "resourceType": "User"
    },
    "name": {
        "formatted": "givenName familyName",
        "familyName": "familyName",
        "givenName": "givenName"
    },
    "roles": []
}"""

UPDATE_USER_MULTI_VALUED = """{
    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
    "Operations": [
            {
            "op": "Replace",
            "path": "emails[type eq \\"work\\"].value",
            "value": "updatedEmail@microsoft.com"
            },
            {
            "op": "Replace",
            "path": "name.familyName",
            "value": "updatedFamilyName"
            }
    ]
}"""

UPDATE_USER_SINGLE_VALUED = """{
    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
    "Operations": [{
        "op": "Replace",
        "path": "userName",
        "value": "5b50642d-79fc-4410-9e90-4c077cdd1a59@testuser.com"
    }]
}"""

DISABLE_USER = """{
    "Operations": [
        {
            "op": "Replace",
            "path": "active",
            "value": false
        }
    ],
    "schemas": [
        "urn:ietf:params:scim:api:messages:2.0:PatchOp"
    ]
}"""

CREATE_GROUP = """{
    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group", "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
    "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
    "displayName": "displayName",
    "meta": {
        "resourceType": "Group"
    }
}"""

UPDATE_GROUP = """{
    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
    "Operations": [{
        "op": "Replace",
        "path": "displayName",
        "value": "1879db59-3bdf-4490-ad68-ab880a269474updatedDisplayName"
    }]
}"""

ADD_MEMBERS = """{
    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
    "Operations": [{
        "op": "Add",
        "path": "members",
        "value": [{
            "$ref": null,
            "value": "f648f8d5ea4e4cd38e9c"
        }]
    }]
}"""

REMOVE_MEMBERS = """{
    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
    "Operations": [{
        "op": "Remove",
        "path": "members",
        "value": [{
            "$ref": null,
            "value": "f648f8d5ea4e4cd38e9c"
        }]
    }]
}"""

# ---- the bodies of the compatibility article (without / with aadOptscim062020) -------------------------

DISABLE_WITHOUT_FLAG = """{
    "schemas": [
        "urn:ietf:params:scim:api:messages:2.0:PatchOp"
    ],
    "Operations": [
        {
            "op": "Replace",
            "path": "active",
            "value": "False"
        }
    ]
  }"""

ADD_NICKNAME_WITHOUT_FLAG = """{
    "schemas": [
        "urn:ietf:params:scim:api:messages:2.0:PatchOp"
    ],
    "Operations": [
      {
        "op": "Add",
        "path": "nickName",
        "value": "Babs"
      }
    ]
  }"""

REPLACE_MANY_WITHOUT_FLAG = """{
    "schemas": [
        "urn:ietf:params:scim:api:messages:2.0:PatchOp"
    ],
    "Operations": [
        {
            "op": "Replace",
            "path": "displayName",
            "value": "Pvlo"
        },
        {
            "op": "Replace",
            "path": "emails[type eq \\"work\\"].value",
            "value": "TestBcwqnm@test.microsoft.com"
        },
        {
            "op": "Replace",
            "path": "name.givenName",
            "value": "Gtfd"
        },
        {
            "op": "Replace",
            "path": "name.familyName",
            "value": "Pkqf"
        },
        {
            "op": "Replace",
            "path": "externalId",
            "value": "Eqpj"
        },
        {
            "op": "Replace",
            "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
            "value": "Eqpj"
        }
    ]
  }"""

REPLACE_MANY_WITH_FLAG = """{
    "schemas": [
        "urn:ietf:params:scim:api:messages:2.0:PatchOp"
    ],
    "Operations": [
        {
            "op": "replace",
            "path": "emails[type eq \\"work\\"].value",
            "value": "TestMhvaes@test.microsoft.com"
        },
        {
            "op": "replace",
            "value": {
                "displayName": "Bjfe",
                "name.givenName": "Kkom",
                "name.familyName": "Unua",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": "Aklq"
            }
        }
    ]
  }"""

REMOVE_MEMBER_WITHOUT_FLAG = """{
    "schemas": [
        "urn:ietf:params:scim:api:messages:2.0:PatchOp"
    ],
    "Operations": [
        {
            "op": "Remove",
            "path": "members",
            "value": [
                {
                    "value": "u1091"
                }
            ]
        }
    ]
  }"""

REMOVE_MEMBER_WITH_FLAG = """{
    "schemas": [
        "urn:ietf:params:scim:api:messages:2.0:PatchOp"
    ],
    "Operations": [
        {
            "op": "remove",
            "path": "members[value eq \\"7f4bc1a3-285e-48ae-8202-5accb43efb0e\\"]"
        }
    ]
  }"""

# example 5 of "Handling provisioning and deprovisioning of users" (the URL's "..." kept)
ADD_MANAGER = """{
    "schemas":
    [
      "urn:ietf:params:scim:api:messages:2.0:PatchOp"],
    "Operations":
    [
      {
        "op":"Add",
        "path":"manager",
        "value":
          [
            {
              "$ref":"http://.../scim/Users/00aa00aa-bb11-cc22-dd33-44ee44ee44ee",
              "value":"00aa00aa-bb11-cc22-dd33-44ee44ee44ee"}]}]}"""


def scim(answer: Any, status: int) -> dict[str, Any]:
    """The JSON of an answer that must have ``status`` and be ``application/scim+json``."""
    assert answer.status_code == status, answer.text
    assert answer.headers["Content-Type"] == "application/scim+json"
    return answer.json()


def check_meta(resource: dict[str, Any], endpoint: ScimEndpoint, kind: str) -> None:
    meta = resource["meta"]
    assert meta["resourceType"] == kind
    assert meta["location"] == f"{endpoint.url}/{kind}s/{resource['id']}"
    assert meta["created"].endswith("Z") and meta["lastModified"] >= meta["created"]
    assert meta["version"].startswith('W/"')


def test_user_operations_as_microsoft_documents_them(endpoint: ScimEndpoint) -> None:
    # Create User: 201 with the user as sent, plus id and meta
    created = scim(endpoint.request("POST", "/Users", CREATE_USER), 201)
    user_id = created["id"]
    assert created["userName"] == "Test_User_00aa00aa-bb11-cc22-dd33-44ee44ee44ee"
    assert created["externalId"] == "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef"
    assert created["active"] is True
    assert created["emails"] == [{"primary": True, "type": "work",
                                  "value": "Test_User_11bb11bb-cc22-dd33-ee44-55ff55ff55ff@testuser.com"}]
    assert created["name"] == {"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"}
    assert created["schemas"] == ["urn:ietf:params:scim:schemas:core:2.0:User"]
    assert "roles" not in created  # an empty list is unassigned (RFC 7643 §2.5)
    check_meta(created, endpoint, "User")

    # Get User, and a user that is not there ("The detail isn't required, only status")
    got = scim(endpoint.request("GET", f"/Users/{user_id}"), 200)
    assert {k: v for k, v in got.items() if k != "meta"} == {k: v for k, v in created.items() if k != "meta"}
    missing = scim(endpoint.request("GET", "/Users/5171a35d82074e068ce2"), 404)
    assert missing["schemas"] == [ERROR] and missing["status"] == "404"

    # Get User by query, and by a query with zero results (Entra's Test Connection)
    found = scim(endpoint.request("GET", '/Users?filter=userName eq "Test_User_00aa00aa-bb11-cc22-dd33-44ee44ee44ee"'), 200)
    assert (found["schemas"], found["totalResults"], found["startIndex"]) == ([LIST], 1, 1)
    assert [r["id"] for r in found["Resources"]] == [user_id]
    none = scim(endpoint.request("GET", '/Users?filter=userName eq "non-existent user"'), 200)
    assert (none["schemas"], none["totalResults"], none["Resources"], none["startIndex"]) == ([LIST], 0, [], 1)

    # Update User [Multi-valued properties]
    updated = scim(endpoint.request("PATCH", f"/Users/{user_id}", UPDATE_USER_MULTI_VALUED), 200)
    assert updated["emails"] == [{"primary": True, "type": "work", "value": "updatedEmail@microsoft.com"}]
    assert updated["name"]["familyName"] == "updatedFamilyName" and updated["name"]["givenName"] == "givenName"
    assert updated["meta"]["version"] != created["meta"]["version"]

    # Update User [Single-valued properties]
    renamed = scim(endpoint.request("PATCH", f"/Users/{user_id}", UPDATE_USER_SINGLE_VALUED), 200)
    assert renamed["userName"] == "5b50642d-79fc-4410-9e90-4c077cdd1a59@testuser.com"
    assert renamed["emails"][0]["value"] == "updatedEmail@microsoft.com"

    # Disable User: still returned, with active false (Microsoft: soft-deleted users are returned)
    disabled = scim(endpoint.request("PATCH", f"/Users/{user_id}", DISABLE_USER), 200)
    assert disabled["active"] is False
    assert scim(endpoint.request("GET", f"/Users/{user_id}"), 200)["active"] is False

    # Delete User
    deleted = endpoint.request("DELETE", f"/Users/{user_id}")
    assert deleted.status_code == 204 and deleted.content == b""
    assert scim(endpoint.request("GET", f"/Users/{user_id}"), 404)["status"] == "404"


def test_group_operations_as_microsoft_documents_them(endpoint: ScimEndpoint) -> None:
    # Create Group (its schemas name a Microsoft URN this endpoint does not serve: ignored)
    created = scim(endpoint.request("POST", "/Groups", CREATE_GROUP), 201)
    group_id = created["id"]
    assert (created["displayName"], created["externalId"]) == ("displayName", "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159")
    assert created["schemas"] == ["urn:ietf:params:scim:schemas:core:2.0:Group"]
    assert not created.get("members")
    check_meta(created, endpoint, "Group")

    # Get Group, members excluded
    got = scim(endpoint.request("GET", f"/Groups/{group_id}?excludedAttributes=members"), 200)
    assert got["displayName"] == "displayName" and "members" not in got

    # Get Group by displayName
    found = scim(endpoint.request("GET", '/Groups?excludedAttributes=members&filter=displayName eq "displayName"'), 200)
    assert found["totalResults"] == 1 and found["Resources"][0]["id"] == group_id
    assert "members" not in found["Resources"][0]

    # Update Group [Non-member attributes]: 204
    answer = endpoint.request("PATCH", f"/Groups/{group_id}", UPDATE_GROUP)
    assert answer.status_code == 204 and answer.content == b"" and answer.headers["ETag"].startswith('W/"')
    assert scim(endpoint.request("GET", f"/Groups/{group_id}"), 200)["displayName"] == \
        "1879db59-3bdf-4490-ad68-ab880a269474updatedDisplayName"

    # Update Group [Add Members] and [Remove Members]: 204 each
    assert endpoint.request("PATCH", f"/Groups/{group_id}", ADD_MEMBERS).status_code == 204
    assert scim(endpoint.request("GET", f"/Groups/{group_id}"), 200)["members"] == [{"value": "f648f8d5ea4e4cd38e9c"}]
    assert endpoint.request("PATCH", f"/Groups/{group_id}", REMOVE_MEMBERS).status_code == 204
    assert "members" not in scim(endpoint.request("GET", f"/Groups/{group_id}"), 200)

    # Delete Group
    assert endpoint.request("DELETE", f"/Groups/{group_id}").status_code == 204
    assert scim(endpoint.request("GET", f"/Groups/{group_id}"), 404)["status"] == "404"


def test_schema_discovery(endpoint: ScimEndpoint) -> None:
    listed = scim(endpoint.request("GET", "/Schemas"), 200)
    assert listed["schemas"] == [LIST] and listed["totalResults"] == len(listed["Resources"])
    ids = [s["id"] for s in listed["Resources"]]
    assert ids[:3] == ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE,
                       "urn:ietf:params:scim:schemas:core:2.0:Group"]
    user = listed["Resources"][0]
    user_name = next(a for a in user["attributes"] if a["name"] == "userName")
    assert (user_name["required"], user_name["uniqueness"], user_name["mutability"]) == (True, "server", "readWrite")
    group = listed["Resources"][2]
    display = next(a for a in group["attributes"] if a["name"] == "displayName")
    assert (display["required"], display["uniqueness"]) == (True, "server")  # what the store enforces
    assert all(None not in a.values() for s in listed["Resources"] for a in s["attributes"])  # "don't send null values"


@pytest.fixture
def user(endpoint: ScimEndpoint) -> dict[str, Any]:
    email = f"before-{uuid.uuid4().hex[:10]}@example.com"
    return endpoint.create_user(active=True, emails=[{"type": "work", "value": email, "primary": True}],
                                name={"givenName": "Barbara", "familyName": "Jensen"})


def test_disable_without_the_flag_sends_a_string(endpoint: ScimEndpoint, user: dict[str, Any]) -> None:
    assert scim(endpoint.request("PATCH", f"/Users/{user['id']}", DISABLE_WITHOUT_FLAG), 200)["active"] is False


def test_add_a_single_valued_attribute_without_the_flag(endpoint: ScimEndpoint, user: dict[str, Any]) -> None:
    assert scim(endpoint.request("PATCH", f"/Users/{user['id']}", ADD_NICKNAME_WITHOUT_FLAG), 200)["nickName"] == "Babs"


@pytest.mark.parametrize(("body", "expected"), [
    (REPLACE_MANY_WITHOUT_FLAG, ("Pvlo", "TestBcwqnm@test.microsoft.com", "Gtfd", "Pkqf", "Eqpj", "Eqpj")),
    (REPLACE_MANY_WITH_FLAG, ("Bjfe", "TestMhvaes@test.microsoft.com", "Kkom", "Unua", None, "Aklq")),
], ids=["without-flag", "with-flag-no-path"])
def test_replace_many_attributes(endpoint: ScimEndpoint, user: dict[str, Any], body: str,
                                 expected: tuple[str | None, ...]) -> None:
    patched = scim(endpoint.request("PATCH", f"/Users/{user['id']}", body), 200)
    assert (patched["displayName"], patched["emails"][0]["value"], patched["name"]["givenName"],
            patched["name"]["familyName"], patched.get("externalId"), patched[ENTERPRISE]["employeeNumber"]) == expected
    assert patched["emails"][0]["type"] == "work" and patched["emails"][0]["primary"] is True
    assert ENTERPRISE in patched["schemas"]


@pytest.mark.parametrize("body", [REMOVE_MEMBER_WITHOUT_FLAG, REMOVE_MEMBER_WITH_FLAG],
                         ids=["without-flag", "with-flag"])
def test_remove_a_member(endpoint: ScimEndpoint, body: str) -> None:
    members = [{"value": "u1091"}, {"value": "7f4bc1a3-285e-48ae-8202-5accb43efb0e"}, {"value": "stays"}]
    group = scim(endpoint.request("POST", "/Groups", {"displayName": f"remove-{uuid.uuid4()}", "members": members}), 201)
    assert endpoint.request("PATCH", f"/Groups/{group['id']}", body).status_code == 204
    left = scim(endpoint.request("GET", f"/Groups/{group['id']}"), 200)["members"]
    gone = "u1091" if body is REMOVE_MEMBER_WITHOUT_FLAG else "7f4bc1a3-285e-48ae-8202-5accb43efb0e"
    assert left == [m for m in members if m["value"] != gone]
    again = endpoint.request("PATCH", f"/Groups/{group['id']}", body)  # already gone: no error (§3.5.2.2)
    assert again.status_code == 204


def test_manager_is_set_and_queried_as_entra_does(endpoint: ScimEndpoint, user: dict[str, Any]) -> None:
    patched = scim(endpoint.request("PATCH", f"/Users/{user['id']}", ADD_MANAGER), 200)
    assert patched[ENTERPRISE]["manager"] == {"$ref": "http://.../scim/Users/00aa00aa-bb11-cc22-dd33-44ee44ee44ee",
                                              "value": "00aa00aa-bb11-cc22-dd33-44ee44ee44ee"}
    # example 4: does the user's manager have this value?
    query = f'id eq "{user["id"]}" and manager eq "00aa00aa-bb11-cc22-dd33-44ee44ee44ee"'
    assert scim(endpoint.request("GET", "/Users", params={"filter": query}), 200)["totalResults"] == 1
    other = f'id eq "{user["id"]}" and manager eq "someone-else"'
    assert scim(endpoint.request("GET", "/Users", params={"filter": other}), 200)["totalResults"] == 0
    # the fully qualified path with {"value": id}, and with a bare id
    for value in ({"value": "m-2"}, "m-3"):
        body = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
            {"op": "Replace", "path": f"{ENTERPRISE}:manager", "value": value}]}
        patched = scim(endpoint.request("PATCH", f"/Users/{user['id']}", body), 200)
        assert patched[ENTERPRISE]["manager"] == {"value": value if isinstance(value, str) else value["value"]}
    body = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
        {"op": "Remove", "path": f"{ENTERPRISE}:manager"}]}
    patched = scim(endpoint.request("PATCH", f"/Users/{user['id']}", body), 200)
    assert ENTERPRISE not in patched and patched["schemas"] == ["urn:ietf:params:scim:schemas:core:2.0:User"]


def test_work_email_is_a_matching_attribute(endpoint: ScimEndpoint, user: dict[str, Any]) -> None:
    """Microsoft: if uniqueness is evaluated on emails[type eq "work"], a filter on it must work."""
    email = user["emails"][0]["value"]
    for query in (f'emails[type eq "work"].value eq "{email.upper()}"',
                  f'emails[type eq "work" and value eq "{email}"]',
                  f'EMAILS[TYPE eq "Work"].Value EQ "{email}"',
                  f'userName eq "{user["userName"].upper()}" and emails[type eq "work"].value eq "{email}"'):
        found = scim(endpoint.request("GET", "/Users", params={"filter": query}), 200)
        assert [r["id"] for r in found["Resources"]] == [user["id"]], query
    found = scim(endpoint.request("GET", "/Users", params={"filter": f'emails[type eq "home"].value eq "{email}"'}), 200)
    assert found["totalResults"] == 0


def test_an_add_through_a_value_filter_creates_the_element(endpoint: ScimEndpoint, user: dict[str, Any]) -> None:
    """Entra sends Add for an attribute the user did not have yet, value filter and all."""
    body = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
        {"op": "Add", "path": 'phoneNumbers[type eq "mobile"].value', "value": "+1 555 0100"},
        {"op": "Add", "path": 'addresses[type eq "work"].postalCode', "value": "98052"}]}
    patched = scim(endpoint.request("PATCH", f"/Users/{user['id']}", body), 200)
    assert patched["phoneNumbers"] == [{"type": "mobile", "value": "+1 555 0100"}]
    assert patched["addresses"] == [{"type": "work", "postalCode": "98052"}]
