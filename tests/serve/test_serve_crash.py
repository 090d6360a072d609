"""Kill tests of ``provision serve``: the server is killed (SIGKILL) at several points of a stream
of requests, right after the target committed a write and before the state store recorded it
(``tests/faults/killpoint.py`` counts the SQL target's commits). The client behaves as Entra does:
a request that got no answer is sent again once the endpoint answers again (a new process on the
same manifest and state store); a create sent again that meets its own user (409) looks the user
up by userName; a delete sent again that finds nothing is done. The next start settles what was in
doubt, and the target ends exactly as an uninterrupted stream leaves it: every row, no duplicate,
nothing lost, nothing left pending or in doubt.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from servers.pipelineendpoint import TOKEN_ENV, PipelineEndpoint
from servers.scimendpoint import TOKEN

from .test_pipeline import pipeline_folder, target_rows

REPO = Path(__file__).resolve().parents[2]
KILLPOINT = REPO / "tests" / "faults" / "killpoint.py"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
CORE = "urn:ietf:params:scim:schemas:core:2.0:User"


def user(name: str, given: str) -> dict[str, Any]:
    return {"schemas": [CORE], "userName": name, "active": True, "externalId": f"ext-{name}",
            "name": {"givenName": given, "familyName": "Stream"}, "emails": [{"type": "work", "value": name}]}


def patch(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH_OP], "Operations": list(operations)}


# the stream: (method, which user, body); the ids are the endpoint's, filled in as it answers
STREAM: list[tuple[str, str, Any]] = [
    ("POST", "a", user("a@example.com", "Ann")),
    ("POST", "b", user("b@example.com", "Ben")),
    ("POST", "c", user("c@example.com", "Cid")),
    ("PATCH", "a", patch({"op": "Replace", "path": "name.givenName", "value": "Anne"})),
    ("PATCH", "c", patch({"op": "Replace", "path": "active", "value": "False"})),
    ("DELETE", "b", None),
    ("POST", "d", user("d@example.com", "Dee")),
    ("PATCH", "a", patch({"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "ann@example.com"})),
    ("PATCH", "c", patch({"op": "Replace", "path": "active", "value": "True"})),
]


class Client:
    """Sends the stream as Entra would, starting the endpoint again whenever it died."""

    def __init__(self, manifest: Path, folder: Path, start: Callable[[], PipelineEndpoint]) -> None:
        self.manifest, self.folder = manifest, folder
        self.endpoint = start()
        self.ids: dict[str, str] = {}
        self.restarts = 0

    def send(self, method: str, who: str, body: Any) -> None:
        for _ in range(3):
            try:
                self._send(method, who, body)
                return
            except requests.ConnectionError:  # no answer: the server died; it is started again, the request re-sent
                assert self.endpoint.process.wait(timeout=30) == -signal.SIGKILL
                self.endpoint.stop()
                self.endpoint = PipelineEndpoint.start_serving(self.manifest, self.folder)
                self.restarts += 1
        raise AssertionError(f"{method} {who}: no answer after restarts")

    def _send(self, method: str, who: str, body: Any) -> None:
        if method == "POST":
            answer = self.endpoint.request("POST", "/Users", body)
            if answer.status_code == 409:  # the first try went through before the kill: look it up
                query = self.endpoint.request("GET", "/Users", params={"filter": f'userName eq "{body["userName"]}"'})
                [found] = query.json()["Resources"]
                self.ids[who] = found["id"]
                return
            assert answer.status_code == 201, answer.text
            self.ids[who] = answer.json()["id"]
            return
        answer = self.endpoint.request(method, f"/Users/{self.ids[who]}", body)
        if method == "DELETE":
            assert answer.status_code in (204, 404), answer.text
        else:
            assert answer.status_code == 200, answer.text


def stream(folder: Path, monkeypatch: pytest.MonkeyPatch, kill_at: int) -> tuple[list[dict[str, Any]], Client]:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    folder.mkdir()
    manifest = pipeline_folder(folder)
    wrapper = [str(KILLPOINT), str(kill_at), "KILL"] if kill_at else None
    client = Client(manifest, folder, lambda: PipelineEndpoint.start_serving(manifest, folder, wrapper=wrapper))
    try:
        for method, who, body in STREAM:
            client.send(method, who, body)
        users = client.endpoint.request("GET", "/Users").json()
    finally:
        client.endpoint.stop()
    return [{k: u[k] for k in ("userName", "active", "name", "emails")} for u in users["Resources"]], client


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        folder = tmp_path_factory.mktemp("uninterrupted") / "p"
        served, _ = stream(folder, monkeypatch, 0)
    return served, target_rows(folder)


@pytest.mark.parametrize("kill_at", [1, 3, 4, 6, 8])
def test_killed_after_a_target_write_the_next_start_settles_and_the_target_ends_as_uninterrupted(
        kill_at: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, uninterrupted: Any, provision: Any) -> None:
    served, client = stream(tmp_path / "p", monkeypatch, kill_at)
    assert client.restarts == 1, "the server was killed once, and started again"
    expected_served, expected_rows = uninterrupted
    assert target_rows(tmp_path / "p") == expected_rows
    assert sorted(served, key=json.dumps) == sorted(expected_served, key=json.dumps)
    assert [(r["user_name"], r["given_name"], r["email"], r["disabled"]) for r in expected_rows] == [
        ("a@example.com", "Anne", "ann@example.com", 0), ("c@example.com", "Cid", "c@example.com", 0),
        ("d@example.com", "Dee", "d@example.com", 0)]
    status = provision("status", tmp_path / "p" / "pipeline.yaml", "--output", "json")
    assert status.code == 0, status.err
    types = status.json()["object_types"]
    assert all(t["in_doubt"] == 0 and t["pending"] == 0 for t in types.values()), types
