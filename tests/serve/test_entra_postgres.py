"""Microsoft Entra provisions through ``provision serve`` into PostgreSQL, with its state store on
PostgreSQL too (issue 23).

The manifest (written here into a temporary folder) has a ``scim-endpoint`` source for Users and
Groups and the ``sql`` connector as target, on a throwaway database of the machine's PostgreSQL
(127.0.0.1:5432, or ``PROVISION_TEST_POSTGRESQL_URL``), made and dropped by this module; the state
store is a second throwaway database, so the whole pipeline runs on PostgreSQL. The target is an
application's schema: ``users`` (a generated key, ``user_name`` unique, a NOT NULL ``email`` that
must hold an ``@``, the manager's row key, a ``disabled`` flag), ``groups`` and ``group_members``.
``provision serve`` runs as a real process (``tests/servers/pipelineendpoint.py``).

Microsoft's request sequence (the bodies of ``test_entra.py``, sent as Entra sends them, only the
ids swapped for the ones this endpoint issued) goes through it step by step, as
``test_entra_ldap.py`` does against slapd, and after each step the test reads the target's tables
with SQLAlchemy: users (create, get, get by query, a query with zero results, update multi-valued
and single-valued attributes, disable with and without the aadOptscim062020 flag, enable, delete),
the manager as Entra sets it, groups (create, get, get by displayName, update, add member, remove
member, delete), and the database refusing a user: the SCIM error carries PostgreSQL's message,
and the endpoint keeps nothing of what it refused.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from servers.pipelineendpoint import TOKEN_ENV, PipelineEndpoint
from servers.scimendpoint import TOKEN

from .test_entra import (
    ADD_MANAGER,
    ADD_MEMBERS,
    CREATE_GROUP,
    CREATE_USER,
    DISABLE_USER,
    DISABLE_WITHOUT_FLAG,
    ENTERPRISE,
    ERROR,
    LIST,
    REMOVE_MEMBERS,
    UPDATE_GROUP,
    UPDATE_USER_MULTI_VALUED,
    UPDATE_USER_SINGLE_VALUED,
)

SERVER = os.environ.get("PROVISION_TEST_POSTGRESQL_URL", "postgresql+psycopg://postgres@127.0.0.1:5432")
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
USER_SCHEMAS = ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE]

# "Enable User": Microsoft's Disable User bodies (with and without the flag) the other way round
ENABLE_USER = DISABLE_USER.replace('"value": false', '"value": true')
ENABLE_WITHOUT_FLAG = DISABLE_WITHOUT_FLAG.replace('"False"', '"True"')
# the ids in Microsoft's bodies, replaced by the ones this endpoint issued
MEMBER_IN_EXAMPLE = "f648f8d5ea4e4cd38e9c"
MANAGER_IN_EXAMPLE = "00aa00aa-bb11-cc22-dd33-44ee44ee44ee"

TARGET_DDL = """\
CREATE TABLE users (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_name   TEXT NOT NULL UNIQUE,
    email       TEXT NOT NULL CHECK (position('@' in email) > 1),
    given_name  TEXT,
    family_name TEXT,
    title       TEXT,
    department  TEXT,
    manager_id  BIGINT REFERENCES users (id) ON DELETE SET NULL,
    disabled    BOOLEAN NOT NULL DEFAULT false
);
CREATE TABLE groups (
    id   BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);
CREATE TABLE group_members (
    group_id BIGINT NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    user_id  BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, user_id)
)"""

USER_MAPPING = """\
version: 1
description: a SCIM User sent by Entra -> a row of the application's users table
mapping:
  - {target: user_name, source: userName}
  - {target: email, expression: "emails[?type=='work'].value | [0]", "null": clear}
  - {target: given_name, expression: "name.givenName", "null": clear}
  - {target: family_name, expression: "name.familyName", "null": clear}
  - {target: title, source: title, "null": clear}
  - target: department
    expression: '"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User".department'
    "null": clear
  - target: manager_id
    expression: '"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User".manager.value'
    reference: user          # the manager's SCIM id: exported as the manager's row key
  - {target: disabled, constant: false}   # active false takes the user out of scope: target.disable
"""

GROUP_MAPPING = """\
version: 1
description: a SCIM Group sent by Entra -> a row of groups, its members rows of group_members
mapping:
  - {target: name, source: displayName}
  - target: members
    expression: "members[].value"
    reference: user          # each member's row key
    multi_valued: true       # PATCH add/remove members go out as the values added and removed
"""

MANIFEST = """\
version: 1
name: entra-to-postgres
state: "{state}"
serve: {{token: "${{env:SCIM_ENDPOINT_TOKEN}}"}}
connectors:
  entra: {{type: scim-endpoint}}
  app:
    type: sql
    url: "{target}"
    objects:
      users: {{table: users, key: id, generated_key: true}}
      groups:
        table: groups
        key: id
        generated_key: true
        multi_valued:
          members: {{table: group_members, key: group_id, value: user_id}}
object_types:
  - name: user
    source: {{connector: entra, object: Users, anchor: id}}
    target: {{connector: app, object: users, disable: {{disabled: true}}, correlate: [user_name]}}
    scope:
      any:
        - {{attribute: active, op: is_null}}
        - {{attribute: active, op: is_true}}
    when_out_of_scope: disable     # PATCH active false sets users.disabled
    when_deleted: delete           # DELETE /Users/{{id}} removes the row
    mapping: users.yaml
  - name: group
    source: {{connector: entra, object: Groups, anchor: id}}
    target: {{connector: app, object: groups, correlate: [name]}}
    when_deleted: delete
    mapping: groups.yaml
"""


def _admin(statement: str) -> None:
    engine = sa.create_engine(f"{SERVER}/postgres", isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(statement)
    except sa.exc.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {SERVER} ({exc.orig}); start it (scripts/test does)",
                    pytrace=False)
    finally:
        engine.dispose()


@dataclass
class Pipeline:
    """The served pipeline: its folder and manifest, the endpoint, and the target database. The
    tests share it, each with user and group names of its own, and read only their own rows."""

    folder: Path
    manifest: Path
    endpoint: PipelineEndpoint
    target: sa.Engine

    def users(self, *user_names: str) -> list[dict[str, Any]]:
        """The rows of ``users`` with these user names, in key order."""
        query = sa.text("SELECT * FROM users WHERE user_name IN :names ORDER BY id").bindparams(
            sa.bindparam("names", expanding=True))
        with self.target.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query, {"names": list(user_names)})]

    def user(self, user_name: str) -> dict[str, Any]:
        """The one row of ``user_name``."""
        [row] = self.users(user_name)
        return row

    def group_keys(self) -> set[int]:
        with self.target.connect() as conn:
            return set(conn.execute(sa.text("SELECT id FROM groups")).scalars())

    def group(self, name: str) -> int | None:
        """The row key of the group called ``name``, if there is one."""
        with self.target.connect() as conn:
            return conn.execute(sa.text("SELECT id FROM groups WHERE name = :name"), {"name": name}).scalar()

    def members(self, group_key: int) -> set[str]:
        """The user names of the group's rows in ``group_members``."""
        with self.target.connect() as conn:
            return set(conn.execute(sa.text(
                "SELECT u.user_name FROM group_members m JOIN users u ON u.id = m.user_id WHERE m.group_id = :g"),
                {"g": group_key}).scalars())


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    suffix = secrets.token_hex(5)
    target_db, state_db = f"prov_entra_app_{suffix}", f"prov_entra_state_{suffix}"
    _admin(f"CREATE DATABASE {target_db}")
    _admin(f"CREATE DATABASE {state_db}")
    target = sa.create_engine(f"{SERVER}/{target_db}")
    endpoint = None
    try:
        with target.begin() as conn:
            for statement in TARGET_DDL.split(";"):
                conn.exec_driver_sql(statement)
        folder = tmp_path_factory.mktemp("entra-to-postgres")
        (folder / "users.yaml").write_text(USER_MAPPING)
        (folder / "groups.yaml").write_text(GROUP_MAPPING)
        manifest = folder / "entra-to-postgres.yaml"
        manifest.write_text(MANIFEST.format(state=f"{SERVER}/{state_db}", target=f"{SERVER}/{target_db}"))
        endpoint = PipelineEndpoint.start_serving(manifest, folder)
        yield Pipeline(folder, manifest, endpoint, target)
    finally:
        if endpoint is not None:
            endpoint.stop()
        target.dispose()
        for name in (target_db, state_db):
            _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def scim(answer: Any, status: int) -> Any:
    """The JSON of an answer that must have ``status`` (None when it has no body)."""
    assert answer.status_code == status, answer.text
    return answer.json() if answer.content else None


def done(answer: Any) -> None:
    """A PATCH that went through: 200 with the resource, or 204 (RFC 7644 §3.5.2)."""
    assert answer.status_code in (200, 204), answer.text


def user_body(user_name: str, given: str, family: str, department: str, title: str,
              manager: str | None = None) -> dict[str, Any]:
    """A Create User body as Entra sends it (Microsoft's, with title and the enterprise extension)."""
    enterprise: dict[str, Any] = {"department": department}
    if manager is not None:
        enterprise["manager"] = {"value": manager}
    return {"schemas": USER_SCHEMAS, "externalId": f"ext-{user_name}", "userName": user_name, "active": True,
            "displayName": f"{given} {family}", "title": title,
            "emails": [{"primary": True, "type": "work", "value": user_name}],
            "meta": {"resourceType": "User"},
            "name": {"formatted": f"{given} {family}", "familyName": family, "givenName": given},
            "roles": [], ENTERPRISE: enterprise}


def test_microsofts_user_sequence_reaches_postgresql(pipeline: Pipeline) -> None:
    served = pipeline.endpoint
    first_name, user_name = "Test_User_00aa00aa-bb11-cc22-dd33-44ee44ee44ee", UPDATE_USER_SINGLE_VALUED.split('"')[-2]
    assert user_name == "5b50642d-79fc-4410-9e90-4c077cdd1a59@testuser.com"

    # Create User (Microsoft's body): 201, and a row with the mapped columns and a generated key
    created = scim(served.request("POST", "/Users", CREATE_USER), 201)
    user_id = created["id"]
    row = pipeline.user(first_name)
    key = row["id"]
    assert isinstance(key, int)
    assert {k: v for k, v in row.items() if k != "id"} == {
        "user_name": first_name, "email": "Test_User_11bb11bb-cc22-dd33-ee44-55ff55ff55ff@testuser.com",
        "given_name": "givenName", "family_name": "familyName", "title": None, "department": None,
        "manager_id": None, "disabled": False}

    # Get User, and one that is not there
    got = scim(served.request("GET", f"/Users/{user_id}"), 200)
    assert {k: v for k, v in got.items() if k != "meta"} == {k: v for k, v in created.items() if k != "meta"}
    assert scim(served.request("GET", "/Users/5171a35d82074e068ce2"), 404)["status"] == "404"

    # Get User by query (userName eq), and a query with zero results (Entra's Test Connection)
    found = scim(served.request("GET", f'/Users?filter=userName eq "{first_name}"'), 200)
    assert (found["schemas"], found["totalResults"], [r["id"] for r in found["Resources"]]) == ([LIST], 1, [user_id])
    none = scim(served.request("GET", '/Users?filter=userName eq "non-existent user"'), 200)
    assert (none["totalResults"], none["Resources"]) == (0, [])
    assert pipeline.users(first_name) == [row]  # reads change nothing

    # Update User [Multi-valued properties]: the work email and the family name, on the same row
    updated = scim(served.request("PATCH", f"/Users/{user_id}", UPDATE_USER_MULTI_VALUED), 200)
    assert updated["emails"][0]["value"] == "updatedEmail@microsoft.com"
    row = pipeline.user(first_name)
    assert (row["id"], row["email"], row["family_name"], row["given_name"]) == (
        key, "updatedEmail@microsoft.com", "updatedFamilyName", "givenName")

    # Update User [Single-valued properties]: userName, on the same row
    assert scim(served.request("PATCH", f"/Users/{user_id}", UPDATE_USER_SINGLE_VALUED), 200)["userName"] == user_name
    assert pipeline.users(first_name) == []
    assert pipeline.user(user_name) == {**row, "user_name": user_name}
    row = pipeline.user(user_name)

    # Disable User (Microsoft's body, a boolean false): the disabled flag, the row otherwise as it was
    assert scim(served.request("PATCH", f"/Users/{user_id}", DISABLE_USER), 200)["active"] is False
    assert pipeline.user(user_name) == {**row, "disabled": True}
    assert scim(served.request("GET", f"/Users/{user_id}"), 200)["active"] is False

    # Enable User again
    assert scim(served.request("PATCH", f"/Users/{user_id}", ENABLE_USER), 200)["active"] is True
    assert pipeline.user(user_name) == row

    # Disable and enable as Entra sends them without the aadOptscim062020 flag ("False", a string)
    assert scim(served.request("PATCH", f"/Users/{user_id}", DISABLE_WITHOUT_FLAG), 200)["active"] is False
    assert pipeline.user(user_name) == {**row, "disabled": True}
    assert scim(served.request("PATCH", f"/Users/{user_id}", ENABLE_WITHOUT_FLAG), 200)["active"] is True
    assert pipeline.user(user_name) == row

    # Delete User: gone from the endpoint and from the table
    deleted = served.request("DELETE", f"/Users/{user_id}")
    assert deleted.status_code == 204 and deleted.content == b""
    assert scim(served.request("GET", f"/Users/{user_id}"), 404)["status"] == "404"
    assert pipeline.users(first_name, user_name) == []


def test_the_manager_lands_as_the_managers_row_key(pipeline: Pipeline) -> None:
    served = pipeline.endpoint
    names = ("Alex.Wilber@contoso.com", "Lynne.Robbins@contoso.com", "Megan.Bowen@contoso.com")
    boss = scim(served.request("POST", "/Users", user_body(names[0], "Alex", "Wilber", "Sales", "Head of Sales")), 201)
    other = scim(served.request("POST", "/Users", user_body(names[1], "Lynne", "Robbins", "Sales", "Director")), 201)
    # a manager in the Create User body
    report = scim(served.request("POST", "/Users", user_body(names[2], "Megan", "Bowen", "Engineering", "Engineer",
                                                            manager=boss["id"])), 201)
    boss_key, other_key = pipeline.user(names[0])["id"], pipeline.user(names[1])["id"]
    megan = pipeline.user(names[2])
    assert (megan["manager_id"], megan["department"], megan["title"]) == (boss_key, "Engineering", "Engineer")
    assert pipeline.user(names[0])["manager_id"] is None

    # PATCH of the fully qualified manager with {"value": id}: the other manager's row key
    body = {"schemas": [PATCH_OP], "Operations": [
        {"op": "Replace", "path": f"{ENTERPRISE}:manager", "value": {"value": other["id"]}}]}
    patched = scim(served.request("PATCH", f"/Users/{report['id']}", body), 200)
    assert patched[ENTERPRISE]["manager"]["value"] == other["id"]
    assert pipeline.user(names[2])["manager_id"] == other_key

    # Microsoft's example 5 ("Add", path "manager", a list of one {"$ref", "value"}): back to the first
    patched = scim(served.request("PATCH", f"/Users/{report['id']}", ADD_MANAGER.replace(MANAGER_IN_EXAMPLE,
                                                                                          boss["id"])), 200)
    assert patched[ENTERPRISE]["manager"]["value"] == boss["id"]
    assert pipeline.user(names[2])["manager_id"] == boss_key

    # the manager removed: NULL
    body = {"schemas": [PATCH_OP], "Operations": [{"op": "Remove", "path": f"{ENTERPRISE}:manager"}]}
    scim(served.request("PATCH", f"/Users/{report['id']}", body), 200)
    assert pipeline.user(names[2])["manager_id"] is None

    for user in (report, other, boss):
        assert served.request("DELETE", f"/Users/{user['id']}").status_code == 204
    assert pipeline.users(*names) == []


def test_microsofts_group_sequence_reaches_postgresql(pipeline: Pipeline) -> None:
    served = pipeline.endpoint
    names = ("Adele.Vance@contoso.com", "Grady.Archie@contoso.com")
    adele = scim(served.request("POST", "/Users", user_body(names[0], "Adele", "Vance", "Retail", "Buyer")), 201)
    grady = scim(served.request("POST", "/Users", user_body(names[1], "Grady", "Archie", "R&D", "Designer")), 201)

    # Create Group (Microsoft's body): a row of groups, no members
    created = scim(served.request("POST", "/Groups", CREATE_GROUP), 201)
    group_id = created["id"]
    key = pipeline.group("displayName")
    assert key is not None and pipeline.members(key) == set()

    # Get Group, members excluded; Get Group by displayName
    got = scim(served.request("GET", f"/Groups/{group_id}?excludedAttributes=members"), 200)
    assert got["displayName"] == "displayName" and "members" not in got
    found = scim(served.request("GET", '/Groups?excludedAttributes=members&filter=displayName eq "displayName"'), 200)
    assert found["totalResults"] == 1 and found["Resources"][0]["id"] == group_id

    # Update Group [Non-member attributes]: the same row, renamed
    done(served.request("PATCH", f"/Groups/{group_id}", UPDATE_GROUP))
    assert pipeline.group("displayName") is None
    assert pipeline.group("1879db59-3bdf-4490-ad68-ab880a269474updatedDisplayName") == key

    # Update Group [Add Members], once per member: a row of group_members each
    for user in (adele, grady):
        done(served.request("PATCH", f"/Groups/{group_id}", ADD_MEMBERS.replace(MEMBER_IN_EXAMPLE, user["id"])))
    assert pipeline.members(key) == set(names)

    # Update Group [Remove Members]
    done(served.request("PATCH", f"/Groups/{group_id}", REMOVE_MEMBERS.replace(MEMBER_IN_EXAMPLE, grady["id"])))
    assert pipeline.members(key) == {names[0]}

    # a member deleted while still in the group: its membership row goes with it
    assert served.request("DELETE", f"/Users/{adele['id']}").status_code == 204
    assert pipeline.users(names[0]) == [] and pipeline.members(key) == set()

    # Delete Group: the row is gone
    assert served.request("DELETE", f"/Groups/{group_id}").status_code == 204
    assert scim(served.request("GET", f"/Groups/{group_id}"), 404)["status"] == "404"
    assert key not in pipeline.group_keys()
    assert served.request("DELETE", f"/Users/{grady['id']}").status_code == 204
    assert pipeline.users(*names) == []


def test_the_databases_refusal_is_the_scim_error_and_nothing_is_kept(pipeline: Pipeline) -> None:
    served = pipeline.endpoint
    # no work email for a NOT NULL column: 400 with PostgreSQL's message; no row, nothing kept
    body = {"schemas": USER_SCHEMAS, "userName": "No.Email@contoso.com", "active": True,
            "name": {"givenName": "No", "familyName": "Email"}}
    error = scim(served.request("POST", "/Users", body), 400)
    assert error["schemas"] == [ERROR] and error["status"] == "400"
    assert 'null value in column "email"' in error["detail"] and "not-null constraint" in error["detail"], error
    assert pipeline.users("No.Email@contoso.com") == []
    none = scim(served.request("GET", '/Users?filter=userName eq "No.Email@contoso.com"'), 200)
    assert (none["totalResults"], none["Resources"]) == (0, [])

    # a CHECK constraint: the same
    bad = {**body, "userName": "Bad.Email@contoso.com", "emails": [{"type": "work", "value": "not-an-address"}]}
    error = scim(served.request("POST", "/Users", bad), 400)
    assert 'violates check constraint "users_email_check"' in error["detail"], error
    assert scim(served.request("GET", '/Users?filter=userName eq "Bad.Email@contoso.com"'), 200)["totalResults"] == 0
    assert pipeline.users("Bad.Email@contoso.com") == []

    # sent again, fixed: created (the refused one left nothing behind to conflict with)
    fixed = scim(served.request("POST", "/Users", {**body, "emails": [{"type": "work", "value": "no@contoso.com"}]}),
                 201)
    assert pipeline.user("No.Email@contoso.com")["email"] == "no@contoso.com"
    assert scim(served.request("GET", f"/Users/{fixed['id']}"), 200)["userName"] == "No.Email@contoso.com"

    # an update the database refuses: 400, the user as it was at the endpoint and in the table
    row = pipeline.user("No.Email@contoso.com")
    patch = {"schemas": [PATCH_OP], "Operations": [
        {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "still-not-an-address"}]}
    refused = scim(served.request("PATCH", f"/Users/{fixed['id']}", patch), 400)
    assert 'violates check constraint "users_email_check"' in refused["detail"], refused
    assert scim(served.request("GET", f"/Users/{fixed['id']}"), 200)["emails"] == fixed["emails"]
    assert pipeline.users("No.Email@contoso.com") == [row]
    assert served.request("DELETE", f"/Users/{fixed['id']}").status_code == 204
    assert pipeline.users("No.Email@contoso.com") == []


def test_the_state_store_on_postgresql_holds_the_served_runs(pipeline: Pipeline, provision: Any,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    user = scim(pipeline.endpoint.request("POST", "/Users", user_body("Status.Check@contoso.com", "Status", "Check",
                                                                       "IT", "Admin")), 201)
    assert pipeline.endpoint.request("DELETE", f"/Users/{user['id']}").status_code == 204
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    assert provision("run", pipeline.manifest).code != 0  # the endpoint holds the pipeline's lock
    result = provision("status", pipeline.manifest, "--output", "json")
    assert result.code == 0, result.err
    status = json.loads(result.out)
    assert "serve" in {run["kind"] for run in status["runs"]} and status["lock"] is not None
    assert status["failing"] == 0, status
