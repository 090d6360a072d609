"""Further resource types from the manifest: ``serve.resource_types`` declares a ``Device`` (its
schema an RFC 7643 §7 document in a JSON file beside the manifest), and ``provision serve``
serves it at ``/Devices`` beside Users and Groups.

The Device has ``displayName`` (required, ``uniqueness: server``), ``serialNumber``, ``owner`` (a
reference to a User by id, mapped with ``reference: user`` to the user's row key) and ``active``;
the ``sql`` connector exports it to a ``devices`` table of a SQLite file. ``provision serve`` runs
as a real uvicorn process on 127.0.0.1 (``tests/servers/pipelineendpoint.py``), stopped by its PID;
after each request the test reads the target table. scim2-tester, the independent conformance
suite, runs against another such process with the Device served; ``provision validate`` reports a
broken declaration, naming the manifest key.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from httpx2 import Client
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import Status, check_server
from servers.pipelineendpoint import TOKEN_ENV, PipelineEndpoint
from servers.scimendpoint import TOKEN

DEVICE_URN = "urn:example:params:scim:schemas:core:2.0:Device"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"

DEVICE_SCHEMA = {
    "id": DEVICE_URN,
    "name": "Device",
    "description": "A laptop or a phone handed to a user",
    "attributes": [
        {"name": "displayName", "type": "string", "required": True, "uniqueness": "server",
         "description": "The device's name, unique"},
        {"name": "serialNumber", "type": "string", "caseExact": True, "description": "The maker's serial number"},
        {"name": "owner", "type": "complex", "description": "The user the device is handed to",
         "subAttributes": [
             {"name": "value", "type": "string", "description": "The owner's id"},
             {"name": "$ref", "type": "reference", "referenceTypes": ["User"], "description": "The owner's URI"},
         ]},
        {"name": "active", "type": "boolean", "description": "Whether the device is in use"},
    ],
}

TARGET_SQL = """\
CREATE TABLE IF NOT EXISTS users (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    user_name TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS groups (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS group_members (
    group_id INTEGER NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    user_id  INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, user_id)
);
CREATE TABLE IF NOT EXISTS devices (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    display_name  TEXT NOT NULL UNIQUE,
    serial_number TEXT,
    owner_id      INTEGER REFERENCES users(id) ON DELETE SET NULL,
    active        BOOLEAN
);
"""

MANIFEST = """\
version: 1
name: entra-devices
state: "sqlite:///{folder}/state.db"
serve:
  token: "${{env:SCIM_ENDPOINT_TOKEN}}"
  resource_types:
    - name: Device
      endpoint: /Devices
      schema: device.json
      description: laptops and phones
connectors:
  entra: {{type: scim-endpoint}}
  app:
    type: sql
    url: "sqlite:///{folder}/app.db"
    create: true
    init_sql: app.sql
    objects:
      users: {{table: users, key: id, generated_key: true}}
      groups:
        table: groups
        key: id
        generated_key: true
        multi_valued:
          members: {{table: group_members, key: group_id, value: user_id}}
      devices: {{table: devices, key: id, generated_key: true}}
object_types:
  - name: user
    source: {{connector: entra, object: Users, anchor: id}}
    target: {{connector: app, object: users, correlate: [user_name]}}
    when_deleted: delete
    mapping:
      - {{target: user_name, source: userName}}
  - name: group
    source: {{connector: entra, object: Groups, anchor: id}}
    target: {{connector: app, object: groups, correlate: [name]}}
    when_deleted: delete
    mapping:
      - {{target: name, source: displayName}}
      - {{target: members, expression: "members[].value", reference: user, multi_valued: true}}
  - name: device
    source: {{connector: entra, object: Devices, anchor: id}}
    target: {{connector: app, object: devices, correlate: [display_name]}}
    when_deleted: delete
    mapping:
      - {{target: display_name, source: displayName}}
      - {{target: serial_number, source: serialNumber, "null": clear}}
      - {{target: owner_id, expression: "owner.value", reference: user}}   # the owner's row key
      - {{target: active, source: active, "null": clear}}
"""


def device_folder(folder: Path, manifest: str = MANIFEST, schema: Any = DEVICE_SCHEMA) -> Path:
    """The manifest, the Device's schema file and the target's DDL in ``folder``; returns the manifest."""
    (folder / "app.sql").write_text(TARGET_SQL)
    (folder / "device.json").write_text(schema if isinstance(schema, str) else json.dumps(schema, indent=2))
    path = folder / "devices.yaml"
    path.write_text(manifest.format(folder=folder))
    return path


def devices(folder: Path) -> list[dict[str, Any]]:
    """The devices table, each owner as its user's user_name (and its raw key)."""
    with sqlite3.connect(folder / "app.db") as db:
        db.row_factory = sqlite3.Row
        rows = db.execute("SELECT d.display_name, d.serial_number, d.owner_id, u.user_name AS owner, d.active "
                          "FROM devices d LEFT JOIN users u ON u.id = d.owner_id ORDER BY d.id")
        return [dict(r) for r in rows]


def user_key(folder: Path, user_name: str) -> int:
    with sqlite3.connect(folder / "app.db") as db:
        return db.execute("SELECT id FROM users WHERE user_name = ?", (user_name,)).fetchone()[0]


def scim(answer: Any, status: int) -> Any:
    assert answer.status_code == status, answer.text
    assert answer.headers["Content-Type"].startswith("application/scim+json")
    return answer.json() if answer.content else None


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("serve-devices")


@pytest.fixture(scope="module")
def served(folder: Path) -> Iterator[PipelineEndpoint]:
    running = PipelineEndpoint.start_serving(device_folder(folder), folder)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def owner(served: PipelineEndpoint) -> dict[str, Any]:
    return scim(served.request("POST", "/Users", {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                                                  "userName": "ada@example.com"}), 201)


def test_discovery_lists_the_declared_type_and_its_schema(served: PipelineEndpoint) -> None:
    listed = scim(served.request("GET", "/ResourceTypes"), 200)
    by_name = {r["name"]: r for r in listed["Resources"]}
    assert set(by_name) == {"User", "Group", "Device"}
    device = scim(served.request("GET", "/ResourceTypes/Device"), 200)
    assert (device["endpoint"], device["schema"], device["description"]) == ("/Devices", DEVICE_URN,
                                                                               "laptops and phones")
    assert device["meta"]["location"] == f"{served.url}/ResourceTypes/Device"

    schemas = scim(served.request("GET", "/Schemas"), 200)
    assert DEVICE_URN in [s["id"] for s in schemas["Resources"]]
    schema = scim(served.request("GET", f"/Schemas/{DEVICE_URN}"), 200)
    attributes = {a["name"]: a for a in schema["attributes"]}
    assert list(attributes) == ["displayName", "serialNumber", "owner", "active"]
    assert (attributes["displayName"]["required"], attributes["displayName"]["uniqueness"]) == (True, "server")
    assert [s["name"] for s in attributes["owner"]["subAttributes"]] == ["value", "$ref"]
    assert schema["meta"]["location"] == f"{served.url}/Schemas/{DEVICE_URN}"


def test_device_requests_reach_the_target_table(served: PipelineEndpoint, folder: Path,
                                                owner: dict[str, Any]) -> None:
    # POST: 201, and the row is in the target, its owner the user's row key
    created = scim(served.request("POST", "/Devices", {
        "schemas": [DEVICE_URN], "displayName": "LAPTOP-0042", "serialNumber": "SN-42",
        "owner": {"value": owner["id"]}, "active": True}), 201)
    device_id = created["id"]
    assert created["schemas"] == [DEVICE_URN]
    assert created["meta"]["resourceType"] == "Device"
    assert created["meta"]["location"] == f"{served.url}/Devices/{device_id}"
    assert created["owner"] == {"value": owner["id"]}
    assert devices(folder) == [{"display_name": "LAPTOP-0042", "serial_number": "SN-42",
                                "owner_id": user_key(folder, "ada@example.com"), "owner": "ada@example.com",
                                "active": 1}]

    # GET by id and by filter on a non-unique attribute; a filter that matches nothing
    assert scim(served.request("GET", f"/Devices/{device_id}"), 200)["serialNumber"] == "SN-42"
    found = scim(served.request("GET", "/Devices", params={"filter": 'serialNumber eq "SN-42"'}), 200)
    assert [r["id"] for r in found["Resources"]] == [device_id] and found["totalResults"] == 1
    none = scim(served.request("GET", "/Devices", params={"filter": 'serialNumber eq "sn-42"'}), 200)
    assert none["totalResults"] == 0  # caseExact: true in the schema
    by_name = scim(served.request("GET", "/Devices", params={"filter": 'displayName eq "laptop-0042"'}), 200)
    assert [r["id"] for r in by_name["Resources"]] == [device_id]  # caseExact false: any case

    # PATCH as Entra sends it (op in any case, a boolean as a string): 200 with the device
    patched = scim(served.request("PATCH", f"/Devices/{device_id}", {"schemas": [PATCH_OP], "Operations": [
        {"op": "Replace", "path": "serialNumber", "value": "SN-43"},
        {"op": "Replace", "path": "active", "value": "False"}]}), 200)
    assert (patched["serialNumber"], patched["active"]) == ("SN-43", False)
    assert devices(folder) == [{"display_name": "LAPTOP-0042", "serial_number": "SN-43",
                                "owner_id": user_key(folder, "ada@example.com"), "owner": "ada@example.com",
                                "active": 0}]

    # PUT replaces the whole device: no owner any more
    replaced = scim(served.request("PUT", f"/Devices/{device_id}", {
        "schemas": [DEVICE_URN], "displayName": "LAPTOP-0042", "serialNumber": "SN-44", "active": True}), 200)
    assert "owner" not in replaced
    assert devices(folder) == [{"display_name": "LAPTOP-0042", "serial_number": "SN-44", "owner_id": None,
                                "owner": None, "active": 1}]

    # DELETE: 204, the row is gone, and the device with it
    assert served.request("DELETE", f"/Devices/{device_id}").status_code == 204
    assert devices(folder) == []
    scim(served.request("GET", f"/Devices/{device_id}"), 404)


def test_a_second_device_with_the_same_display_name_is_409(served: PipelineEndpoint, folder: Path) -> None:
    first = scim(served.request("POST", "/Devices", {"schemas": [DEVICE_URN], "displayName": "PHONE-7"}), 201)
    for name in ("PHONE-7", "phone-7"):  # caseExact false: the same name in another case is taken too
        error = scim(served.request("POST", "/Devices", {"schemas": [DEVICE_URN], "displayName": name}), 409)
        assert error["scimType"] == "uniqueness" and first["id"] in error["detail"], error
    other = scim(served.request("POST", "/Devices", {"schemas": [DEVICE_URN], "displayName": "PHONE-8"}), 201)
    renamed = served.request("PATCH", f"/Devices/{other['id']}", {"schemas": [PATCH_OP], "Operations": [
        {"op": "replace", "path": "displayName", "value": "Phone-7"}]})
    assert scim(renamed, 409)["scimType"] == "uniqueness"
    assert sorted(d["display_name"] for d in devices(folder)) == ["PHONE-7", "PHONE-8"]
    for device in (first, other):
        assert served.request("DELETE", f"/Devices/{device['id']}").status_code == 204


def test_unknown_attributes_are_400(served: PipelineEndpoint, folder: Path) -> None:
    error = scim(served.request("POST", "/Devices", {"schemas": [DEVICE_URN], "displayName": "TABLET-1",
                                                     "color": "black"}), 400)
    assert "color" in error["detail"] and "Device" in error["detail"], error
    error = scim(served.request("POST", "/Devices", {"schemas": [DEVICE_URN], "displayName": "TABLET-1",
                                                     "userName": "ada"}), 400)  # a User's attribute
    assert "userName" in error["detail"], error
    error = scim(served.request("POST", "/Devices", {"schemas": [DEVICE_URN], "serialNumber": "X"}), 400)
    assert "displayName is required" in error["detail"], error
    created = scim(served.request("POST", "/Devices", {"schemas": [DEVICE_URN], "displayName": "TABLET-1"}), 201)
    error = scim(served.request("PATCH", f"/Devices/{created['id']}", {"schemas": [PATCH_OP], "Operations": [
        {"op": "add", "path": "color", "value": "black"}]}), 400)
    assert "color" in error["detail"], error
    error = scim(served.request("GET", "/Devices", params={"filter": 'color eq "black"'}), 400)
    assert error["scimType"] == "invalidFilter", error
    assert [d["display_name"] for d in devices(folder)] == ["TABLET-1"]
    assert served.request("DELETE", f"/Devices/{created['id']}").status_code == 204


def test_an_owner_that_is_no_provisioned_user_is_left_out(served: PipelineEndpoint, folder: Path) -> None:
    """An owner that is not a provisioned user is exported as null, as a reference is in a run;
    the endpoint keeps what the client sent."""
    created = scim(served.request("POST", "/Devices", {"schemas": [DEVICE_URN], "displayName": "DESK-1",
                                                       "owner": "no-such-user"}), 201)
    assert created["owner"] == {"value": "no-such-user"}  # a bare id, as Entra sends a reference
    assert [(d["display_name"], d["owner_id"]) for d in devices(folder)] == [("DESK-1", None)]
    assert served.request("DELETE", f"/Devices/{created['id']}").status_code == 204


# ---- scim2-tester ----------------------------------------------------------------------------------------

#: (resource type or None, check title) -> why the RFC allows it; empty: every check passes
EXCEPTIONS: dict[tuple[str | None, str], str] = {}
PASSING = {Status.SUCCESS, Status.COMPLIANT, Status.ACCEPTABLE}


def test_scim2_tester_passes_with_the_device_served(tmp_path: Path) -> None:
    """The suite discovers the Device from /ResourceTypes and /Schemas and runs its checks on it
    (create, read, list, search, attributes, replace, PATCH of each attribute, delete), against a
    ``provision serve`` of its own, beside User and Group."""
    endpoint = PipelineEndpoint.start_serving(device_folder(tmp_path), tmp_path)
    try:
        with Client(base_url=endpoint.url, headers={"Authorization": f"Bearer {endpoint.token}"}, timeout=60) as http:
            results = check_server(SyncSCIMClient(http))
    finally:
        endpoint.stop()
    print("scim2-tester:", dict(Counter(r.status.name for r in results)))
    failing = [r for r in results if r.status not in PASSING and (r.resource_type, r.title) not in EXCEPTIONS]
    assert not failing, "\n".join(f"{r.status.name} {r.resource_type or ''} {r.title}: {r.reason}" for r in failing)
    titles = {(r.resource_type, r.title) for r in results}
    for check in ("object_creation", "object_query", "object_query_without_id", "object_replacement",
                  "object_deletion", "check_add_attribute", "check_remove_attribute", "check_replace_attribute"):
        assert ("Device", check) in titles, check
    patched = Counter(r.resource_type for r in results if r.title and r.title.startswith("check_"))
    assert patched["Device"] >= 4, patched


# ---- provision validate ----------------------------------------------------------------------------------


def test_validate_names_each_problem_of_a_broken_declaration(tmp_path: Path, provision: Any,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    broken = dict(DEVICE_SCHEMA)
    del broken["id"]
    broken["attributes"] = [*DEVICE_SCHEMA["attributes"], {"name": "purchased", "type": "date"}]
    manifest = MANIFEST.replace("""      description: laptops and phones
""", """      description: laptops and phones
    - name: Group
      endpoint: /Phones
      schema: {{id: "urn:example:Phone", attributes: [{{name: imei, type: text}}]}}
    - name: Tablet
      endpoint: /devices
      schema: missing.json
""")
    path = device_folder(tmp_path, manifest, broken)
    result = provision("validate", path)
    assert result.code == 2, result.out + result.err
    lines = result.err.splitlines()

    def line(*parts: str) -> str:
        found = [x for x in lines if all(p in x for p in parts)]
        assert len(found) == 1, (parts, result.err)
        return found[0]

    assert line("serve.resource_types[0].schema", "device.json", "has no id").startswith(f"{path}:")
    assert "RFC 7643 §2.3 types" in line("serve.resource_types[0].schema", "attributes[4].type", "'date'")
    assert "already the built-in Group" in line("serve.resource_types[1].name")
    assert "'text'" in line("serve.resource_types[1].schema.attributes[0].type")
    assert "already serve.resource_types[0]'s endpoint" in line("serve.resource_types[2].endpoint")
    assert "schema file not found" in line("serve.resource_types[2].schema")
    assert len(lines) == 6, result.err  # the Devices object is not reported again: its declaration is


def test_validate_refuses_an_object_no_resource_type_serves(tmp_path: Path, provision: Any,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    path = device_folder(tmp_path, MANIFEST.replace("object: Devices", "object: Laptops"))
    result = provision("validate", path)
    assert result.code == 2
    assert "object_types[2].source.object" in result.err
    assert "serves Users, Groups, Devices, not 'Laptops'" in result.err
    assert provision("validate", device_folder(tmp_path)).code == 0
