"""``provision serve FILE``: the SCIM endpoint as the source of a pipeline (runner/serve/pipeline.py).

A manifest whose ``user`` object type has a ``scim-endpoint`` source and the ``sql`` connector on a
SQLite file as its target; ``provision serve`` runs as a real uvicorn process on 127.0.0.1
(``tests/servers/pipelineendpoint.py``), stopped by its PID. Microsoft's user sequence (the bodies
of ``test_entra.py``, from "SCIM protocol requests and responses") is sent step by step, and after
each step the test looks at what the target table holds; a target's rejection comes back as a
SCIM error carrying the database's message; ``provision status`` shows the runs, nothing failing.
The failures a live target is hard to make give (a retryable one, an unreachable target, a mapping
that fails, a process killed in the middle of an export) and groups are tested on a
``PipelineStore`` in this process.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from servers.pipelineendpoint import TOKEN_ENV, PipelineEndpoint
from servers.scimendpoint import TOKEN

from runner.connectors.base import (
    ConnectionFailed,
    ConnectorError,
    PermanentError,
    Result,
    RetryableError,
    Throttled,
)
from runner.serve.errors import Invalid, Retry, TargetRejected
from runner.serve.patch import parse_patch
from runner.serve.pipeline import RETRY_AFTER, PipelineStore
from runner.serve.schema import KINDS

from .test_entra import CREATE_USER, DISABLE_WITHOUT_FLAG, UPDATE_USER_MULTI_VALUED, UPDATE_USER_SINGLE_VALUED

ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"

TARGET_SQL = """\
CREATE TABLE IF NOT EXISTS users (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    user_name   TEXT NOT NULL UNIQUE,
    given_name  TEXT,
    family_name TEXT,
    email       TEXT NOT NULL,
    disabled    BOOLEAN NOT NULL DEFAULT 0
);
"""

MAPPING = """\
version: 1
description: a SCIM User sent by Entra -> an application's user row
mapping:
  - {target: user_name, source: userName}
  - {target: given_name, expression: "name.givenName"}
  - {target: family_name, expression: "name.familyName"}
  - {target: email, expression: "emails[?type=='work'].value | [0]", "null": clear}   # no work email: cleared
  - {target: disabled, constant: false}   # active false takes the user out of scope: target.disable
"""

MANIFEST = """\
version: 1
name: entra-inbound
state: "sqlite:///{folder}/state.db"
serve: {{token: "${{env:SCIM_ENDPOINT_TOKEN}}"}}
connectors:
  entra: {{type: scim-endpoint}}
  app:
    type: sql
    url: "sqlite:///{folder}/app.db"
    create: true
    init_sql: app.sql
    objects:
      users: {{table: users, key: id, generated_key: true}}
object_types:
  - name: user
    source: {{connector: entra, object: Users, anchor: id}}
    target: {{connector: app, object: users, disable: {{disabled: true}}, correlate: [user_name]}}
    scope:
      any:
        - {{attribute: active, op: is_null}}
        - {{attribute: active, op: is_true}}
    when_out_of_scope: disable
    when_deleted: delete
    mapping: users.yaml
"""


def pipeline_folder(folder: Path) -> Path:
    """The manifest, its mapping and the target's DDL in ``folder``; returns the manifest."""
    (folder / "app.sql").write_text(TARGET_SQL)
    (folder / "users.yaml").write_text(MAPPING)
    manifest = folder / "pipeline.yaml"
    manifest.write_text(MANIFEST.format(folder=folder))
    return manifest


def target_rows(folder: Path) -> list[dict[str, Any]]:
    """What the target table holds, without its generated key."""
    with sqlite3.connect(folder / "app.db") as db:
        db.row_factory = sqlite3.Row
        rows = db.execute("SELECT user_name, given_name, family_name, email, disabled FROM users ORDER BY id")
        return [dict(r) for r in rows]


def scim(answer: Any, status: int) -> Any:
    assert answer.status_code == status, answer.text
    assert answer.headers["Content-Type"].startswith("application/scim+json")
    return answer.json() if answer.content else None


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("serve-pipeline")


@pytest.fixture(scope="module")
def served(folder: Path) -> Iterator[PipelineEndpoint]:
    running = PipelineEndpoint.start_serving(pipeline_folder(folder), folder)
    yield running
    running.stop()


def test_microsofts_user_sequence_reaches_the_target(served: PipelineEndpoint, folder: Path) -> None:
    # Create User: 201, and the row is in the target
    created = scim(served.request("POST", "/Users", CREATE_USER), 201)
    user_id = created["id"]
    assert created["userName"] == "Test_User_00aa00aa-bb11-cc22-dd33-44ee44ee44ee"
    assert created["meta"]["resourceType"] == "User" and created["meta"]["version"]
    assert target_rows(folder) == [{"user_name": "Test_User_00aa00aa-bb11-cc22-dd33-44ee44ee44ee",
                                    "given_name": "givenName", "family_name": "familyName",
                                    "email": "Test_User_11bb11bb-cc22-dd33-ee44-55ff55ff55ff@testuser.com",
                                    "disabled": 0}]

    # Get User (from the connector space), and one that is not there
    got = scim(served.request("GET", f"/Users/{user_id}"), 200)
    assert {k: v for k, v in got.items() if k != "meta"} == {k: v for k, v in created.items() if k != "meta"}
    assert scim(served.request("GET", "/Users/5171a35d82074e068ce2"), 404)["status"] == "404"

    # Get User by query, and a query with zero results
    found = scim(served.request("GET", '/Users?filter=userName eq "Test_User_00aa00aa-bb11-cc22-dd33-44ee44ee44ee"'),
                 200)
    assert (found["totalResults"], [r["id"] for r in found["Resources"]]) == (1, [user_id])
    none = scim(served.request("GET", '/Users?filter=userName eq "non-existent user"'), 200)
    assert (none["totalResults"], none["Resources"]) == (0, [])
    assert len(target_rows(folder)) == 1  # reads change nothing

    # Update User [Multi-valued properties]: the work email and the family name
    updated = scim(served.request("PATCH", f"/Users/{user_id}", UPDATE_USER_MULTI_VALUED), 200)
    assert updated["emails"][0]["value"] == "updatedEmail@microsoft.com"
    assert updated["meta"]["version"] != created["meta"]["version"]
    row = target_rows(folder)[0]
    assert (row["email"], row["family_name"], row["given_name"]) == ("updatedEmail@microsoft.com",
                                                                     "updatedFamilyName", "givenName")

    # Update User [Single-valued properties]: userName
    renamed = scim(served.request("PATCH", f"/Users/{user_id}", UPDATE_USER_SINGLE_VALUED), 200)
    assert renamed["userName"] == "5b50642d-79fc-4410-9e90-4c077cdd1a59@testuser.com"
    assert [r["user_name"] for r in target_rows(folder)] == ["5b50642d-79fc-4410-9e90-4c077cdd1a59@testuser.com"]

    # Disable User, as Entra sends it without the aadOptscim062020 flag ("False", a string)
    disabled = scim(served.request("PATCH", f"/Users/{user_id}", DISABLE_WITHOUT_FLAG), 200)
    assert disabled["active"] is False
    assert target_rows(folder)[0]["disabled"] == 1
    assert scim(served.request("GET", f"/Users/{user_id}"), 200)["active"] is False

    # Delete User: gone from the endpoint and from the target
    deleted = served.request("DELETE", f"/Users/{user_id}")
    assert deleted.status_code == 204
    assert scim(served.request("GET", f"/Users/{user_id}"), 404)["status"] == "404"
    assert target_rows(folder) == []


def test_a_put_replaces_the_user_in_the_target(served: PipelineEndpoint, folder: Path) -> None:
    user = served.create_user(userName="put@example.com", emails=[{"type": "work", "value": "put@example.com"}],
                              name={"givenName": "Pat", "familyName": "Doe"})
    body = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "put@example.com",
            "emails": [{"type": "work", "value": "pat.doe@example.com"}], "name": {"givenName": "Pat"}}
    replaced = scim(served.request("PUT", f"/Users/{user['id']}", body), 200)
    assert replaced["emails"] == [{"type": "work", "value": "pat.doe@example.com"}]
    row = next(r for r in target_rows(folder) if r["user_name"] == "put@example.com")
    assert (row["email"], row["given_name"]) == ("pat.doe@example.com", "Pat")
    assert served.request("DELETE", f"/Users/{user['id']}").status_code == 204
    assert all(r["user_name"] != "put@example.com" for r in target_rows(folder))


def test_the_targets_rejection_is_the_scim_error(served: PipelineEndpoint, folder: Path) -> None:
    before = target_rows(folder)
    body = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "no-email@example.com",
            "name": {"givenName": "No", "familyName": "Email"}}
    error = scim(served.request("POST", "/Users", body), 400)
    assert error["schemas"] == [ERROR] and error["status"] == "400"
    assert "NOT NULL constraint failed: users.email" in error["detail"]
    assert target_rows(folder) == before
    # the client was told it was not created: the endpoint does not hold it either, and it can be sent again
    none = scim(served.request("GET", '/Users?filter=userName eq "no-email@example.com"'), 200)
    assert none["totalResults"] == 0
    fixed = scim(served.request("POST", "/Users", {**body, "emails": [{"type": "work", "value": "n@example.com"}]}),
                 201)
    assert any(r["user_name"] == "no-email@example.com" for r in target_rows(folder))

    # an update the target rejects leaves the user as it was, at the endpoint and in the target
    other = served.create_user(userName="taken@example.com", emails=[{"type": "work", "value": "t@example.com"}])
    patch = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
             "Operations": [{"op": "remove", "path": "emails"}]}
    refused = scim(served.request("PATCH", f"/Users/{other['id']}", patch), 400)
    assert "NOT NULL constraint failed: users.email" in refused["detail"], refused
    assert scim(served.request("GET", f"/Users/{other['id']}"), 200)["emails"] == other["emails"]
    for user in (fixed, other):
        assert served.request("DELETE", f"/Users/{user['id']}").status_code == 204


def test_a_taken_user_name_is_a_conflict(served: PipelineEndpoint, folder: Path) -> None:
    first = served.create_user(userName="twice@example.com", emails=[{"type": "work", "value": "a@example.com"}])
    before = target_rows(folder)
    again = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "TWICE@example.com",
             "emails": [{"type": "work", "value": "b@example.com"}]}
    error = scim(served.request("POST", "/Users", again), 409)
    assert error["scimType"] == "uniqueness"
    assert target_rows(folder) == before
    assert served.request("DELETE", f"/Users/{first['id']}").status_code == 204


def test_a_run_meanwhile_is_refused_and_status_shows_the_runs(served: PipelineEndpoint, folder: Path, provision: Any,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    manifest = folder / "pipeline.yaml"
    assert provision("run", manifest).code != 0  # the endpoint holds the pipeline's lock
    result = provision("status", manifest, "--output", "json")
    assert result.code == 0, result.err
    status = json.loads(result.out)
    assert status["failing"] == 0
    assert status["object_types"]["user"]["failing"] == 0
    assert status["object_types"]["user"]["pending"] == 0
    kinds = {run["kind"] for run in status["runs"]}
    assert "serve" in kinds
    assert status["lock"] is not None


def test_a_run_after_the_endpoint_stopped_reads_no_changes(tmp_path: Path, provision: Any,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The source is never read: a run finds no changes, and deletes no one."""
    manifest = pipeline_folder(tmp_path)
    endpoint = PipelineEndpoint.start_serving(manifest, tmp_path)
    try:
        endpoint.create_user(userName="stays@example.com", emails=[{"type": "work", "value": "s@example.com"}])
    finally:
        endpoint.stop()
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    for extra in ((), ("--full",)):
        result = provision("run", manifest, *extra)
        assert [r["user_name"] for r in target_rows(tmp_path)] == ["stays@example.com"], result.err
    status = json.loads(provision("status", manifest, "--output", "json").out)
    assert status["object_types"]["user"]["source_objects"] == 1
    assert status["object_types"]["user"]["failing"] == 0


# ---- in this process: the failures a live target is hard to make give ---------------------------------------

USER = {"userName": "in-process@example.com", "active": True, "name": {"givenName": "In", "familyName": "Process"},
        "emails": [{"type": "work", "value": "in-process@example.com"}]}


class Killed(BaseException):
    """The process dies in the middle of an export (nothing below the engine catches it)."""


@pytest.fixture
def pipeline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    return pipeline_folder(tmp_path)


def failing_apply(error: Exception | BaseException) -> Any:
    def apply(operations: Any) -> Iterator[Result]:
        for op in operations:
            if isinstance(error, ConnectorError) and not isinstance(error, ConnectionFailed):
                yield Result.failed(op, error)
            else:
                raise error
    return apply


def test_a_retryable_failure_is_503_and_nothing_is_kept(pipeline: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with PipelineStore(pipeline) as store:
        for connector in store.instances("app"):
            monkeypatch.setattr(connector, "apply", failing_apply(RetryableError("deadlock", retry_after=0.01)))
        with pytest.raises(Retry) as raised:
            store.create("User", USER)
        # the target said when to come back (0.01 s): the client is told a whole second, not a fixed 30
        assert "deadlock" in raised.value.detail and raised.value.headers["Retry-After"] == "1"
        assert store.query("User", None, 1, 10).total == 0  # the client sends it again: no duplicate is kept
    assert target_rows(pipeline.parent) == []


def test_a_throttled_target_passes_its_retry_after_on(pipeline: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with PipelineStore(pipeline) as store:
        for connector in store.instances("app"):
            monkeypatch.setattr(connector, "apply", failing_apply(Throttled("429 from the app", retry_after=0.02)))
        monkeypatch.setattr("runner.engine.export.record.MAX_RETRIES", 0)  # the run gives up at once
        with pytest.raises(Retry) as raised:
            store.create("User", USER)
        assert raised.value.headers["Retry-After"] == "1" and "429 from the app" in raised.value.detail
        for connector in store.instances("app"):
            monkeypatch.setattr(connector, "apply", failing_apply(RetryableError("lock wait timeout")))
        with pytest.raises(Retry) as raised:  # no time given: the endpoint's own
            store.create("User", USER)
        assert raised.value.headers["Retry-After"] == str(RETRY_AFTER)


def test_a_refusal_is_the_targets_message_without_the_error_class(pipeline: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    with PipelineStore(pipeline) as store:
        for connector in store.instances("app"):
            monkeypatch.setattr(connector, "apply", failing_apply(PermanentError("the app refuses user names with @")))
        with pytest.raises(TargetRejected) as raised:
            store.create("User", USER)
        assert raised.value.detail == "the app refuses user names with @"


def test_an_unreachable_target_is_503(pipeline: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with PipelineStore(pipeline) as store:
        created = store.create("User", USER)
        for connector in store.instances("app"):
            monkeypatch.setattr(connector, "apply", failing_apply(ConnectionFailed("the database is gone")))
        with pytest.raises(Retry, match="the database is gone"):
            store.replace("User", created.id, {**USER, "name": {"givenName": "Changed"}})
        assert store.get("User", created.id).attributes["name"] == USER["name"]  # as it was
    assert [r["given_name"] for r in target_rows(pipeline.parent)] == ["In"]


def test_a_mapping_failure_is_400(pipeline: Path) -> None:
    mapping = pipeline.parent / "users.yaml"
    mapping.write_text(mapping.read_text().replace('"name.givenName"', '"lower(phoneNumbers)"'))
    with PipelineStore(pipeline) as store:
        with pytest.raises(Invalid, match="lower"):
            store.create("User", {**USER, "phoneNumbers": [{"type": "work", "value": "555-0100"}]})
        assert store.query("User", None, 1, 10).total == 0
    assert target_rows(pipeline.parent) == []


def test_an_export_killed_midway_is_recovered_when_the_endpoint_starts_again(
        pipeline: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with PipelineStore(pipeline) as store:
        for connector in store.instances("app"):
            monkeypatch.setattr(connector, "apply", failing_apply(Killed()))
        with pytest.raises(Killed):
            store.create("User", USER)
    assert target_rows(pipeline.parent) == []
    with PipelineStore(pipeline) as store:  # the add in doubt is settled (sent again) before any request
        assert [r["user_name"] for r in target_rows(pipeline.parent)] == ["in-process@example.com"]
        assert store.query("User", None, 1, 10).total == 1


GROUPS_SQL = """\
CREATE TABLE IF NOT EXISTS groups (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS group_members (
    group_id INTEGER NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    user_id  INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, user_id)
);
"""

GROUP_OBJECT = """\
      groups:
        table: groups
        key: id
        generated_key: true
        multi_valued:
          members: {table: group_members, key: group_id, value: user_id}
"""

GROUP_TYPE = """\
  - name: group
    source: {connector: entra, object: Groups, anchor: id}
    target: {connector: app, object: groups, correlate: [name]}
    when_deleted: delete
    mapping:
      - {target: name, source: displayName}
      - {target: members, expression: "members[].value", reference: user, multi_valued: true}
"""


def test_groups_and_their_members_reach_the_target(pipeline: Path) -> None:
    folder = pipeline.parent
    (folder / "app.sql").write_text(TARGET_SQL + GROUPS_SQL)
    users = "      users: {table: users, key: id, generated_key: true}\n"
    pipeline.write_text(pipeline.read_text().replace(users, users + GROUP_OBJECT) + GROUP_TYPE)

    def members() -> list[tuple[str, str]]:
        with sqlite3.connect(folder / "app.db") as db:
            return db.execute("SELECT g.name, u.user_name FROM group_members m JOIN groups g ON g.id = m.group_id "
                              "JOIN users u ON u.id = m.user_id").fetchall()

    def patch(op: str, user_id: str) -> list[Any]:
        return parse_patch(KINDS["Group"], {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                                            "Operations": [{"op": op, "path": "members", "value": [{"value": user_id}]}]})

    with PipelineStore(pipeline) as store:
        user = store.create("User", USER)
        group = store.create("Group", {"displayName": "Sales", "members": [{"value": user.id}]})
        assert members() == [("Sales", "in-process@example.com")]
        store.patch("Group", group.id, patch("Remove", user.id))
        assert members() == []
        store.patch("Group", group.id, patch("Add", user.id))
        assert members() == [("Sales", "in-process@example.com")]
        store.delete("Group", group.id)
        with sqlite3.connect(folder / "app.db") as db:
            assert db.execute("SELECT count(*) FROM groups").fetchone() == (0,)


def test_each_request_is_in_the_provisioning_log_with_the_clients_operation(pipeline: Path, provision: Any) -> None:
    with PipelineStore(pipeline) as store:
        created = store.create("User", USER)
        store.patch("User", created.id, parse_patch(KINDS["User"], {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "Replace", "path": "name.givenName", "value": "Logged"}]}))
        with pytest.raises(TargetRejected):
            store.patch("User", created.id, parse_patch(KINDS["User"], {
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "Remove", "path": "emails"}]}))  # email NOT NULL: the mapping clears it
    found = provision("logs", pipeline, "--anchor", created.id, "--output", "json")
    assert found.code == 0, found.err
    steps = [(e["action"], e["result"]) for e in json.loads(found.out)["entries"]]
    assert ("add", "ok") in steps and ("scim POST", "ok") in steps
    assert ("update", "ok") in steps and ("scim PATCH", "ok") in steps
    assert ("scim PATCH", "failed") in steps


def test_a_password_goes_out_in_the_add_and_is_never_at_rest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ExportPasswordInFirstPass through the endpoint: the password Entra sends in the create is in
    the target's row from the add on; the state store never keeps it, and GET never returns it."""
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    sentinel = "Sentinel-Scim-Pw-5e1f"
    (tmp_path / "app.sql").write_text(TARGET_SQL.replace("disabled    BOOLEAN", "pw TEXT,\n    disabled    BOOLEAN"))
    (tmp_path / "users.yaml").write_text(MAPPING + "  - {target: pw, source: password, password: true, apply: on_create}\n")
    manifest = tmp_path / "pipeline.yaml"
    manifest.write_text(MANIFEST.format(folder=tmp_path).replace(
        "users: {table: users, key: id, generated_key: true}",
        "users: {table: users, key: id, generated_key: true, password: pw}"))
    with PipelineStore(manifest) as store:
        created = store.create("User", {**USER, "password": sentinel})
        assert "password" not in store.get("User", created.id).attributes
        store.patch("User", created.id, parse_patch(KINDS["User"], {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "Replace", "path": "name.givenName", "value": "Later"}]}))
    with sqlite3.connect(tmp_path / "app.db") as db:
        assert db.execute("SELECT pw, given_name FROM users").fetchall() == [(sentinel, "Later")]
    with sqlite3.connect(tmp_path / "state.db") as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        dump = "\n".join(repr(row) for table in tables for row in db.execute(f'SELECT * FROM "{table}"'))
    assert "in-process@example.com" in dump and sentinel not in dump


def test_a_write_that_changes_nothing_sends_nothing(pipeline: Path, provision: Any) -> None:
    """Entra sends the same values again (a re-sync, a PATCH of what is already there): the
    endpoint answers, and the target gets no update (no flapping)."""
    with PipelineStore(pipeline) as store:
        created = store.create("User", USER)
        same = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "Replace", "path": "name.givenName", "value": USER["name"]["givenName"]}]}
        store.patch("User", created.id, parse_patch(KINDS["User"], same))
        store.replace("User", created.id, USER)
    found = provision("logs", pipeline, "--anchor", created.id, "--output", "json")
    steps = [e["action"] for e in json.loads(found.out)["entries"]]
    assert steps.count("add") == 1 and "update" not in steps, steps
    assert steps.count("scim PATCH") == 1 and steps.count("scim PUT") == 1


def test_queries_on_user_name_and_external_id_follow_every_write(pipeline: Path) -> None:
    """The lookups a query by userName, externalId or id is answered from stay right through
    creates, changes, a failed write and deletes (case-insensitive userName, exact externalId)."""
    from runner.serve.filters import parse_filter

    user = KINDS["User"]

    def ids(text: str) -> list[str]:
        return [r.id for r in store.query("User", parse_filter(user, text), 1, 100).records]

    with PipelineStore(pipeline) as store:
        a = store.create("User", {**USER, "userName": "a@example.com", "externalId": "E-1",
                                  "emails": [{"type": "work", "value": "a@example.com"}]})
        b = store.create("User", {**USER, "userName": "b@example.com", "externalId": "E-1",
                                  "emails": [{"type": "work", "value": "b@example.com"}]})
        assert set(ids('externalId eq "E-1"')) == {a.id, b.id}
        assert ids('externalId eq "e-1"') == []  # externalId is case-exact (RFC 7643)
        assert ids('userName eq "A@EXAMPLE.COM"') == [a.id]
        store.patch("User", a.id, parse_patch(user, {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                                                     "Operations": [{"op": "Replace", "path": "externalId",
                                                                     "value": "E-2"}]}))
        assert ids('externalId eq "E-1"') == [b.id] and ids('externalId eq "E-2"') == [a.id]
        with pytest.raises(TargetRejected):  # the database refuses: nothing of it stays in the lookups
            store.patch("User", b.id, parse_patch(user, {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                                                         "Operations": [{"op": "Replace", "path": "externalId",
                                                                         "value": "E-3"},
                                                                        {"op": "Remove", "path": "emails"}]}))
        assert ids('externalId eq "E-3"') == [] and ids('externalId eq "E-1"') == [b.id]
        store.delete("User", b.id)
        assert ids('externalId eq "E-1"') == [] and ids('userName eq "b@example.com"') == []
        assert ids(f'id eq "{a.id}" and externalId eq "E-2"') == [a.id]
