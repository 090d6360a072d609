"""Concurrent requests through the pipeline behind ``provision serve`` (runner/serve/pipeline.py).

The ECMA Connector Host takes one request at a time; the endpoint provisions several at once on
its lanes, each with its own state store connection and connectors, and keeps per-object order:
writes to one resource apply one after the other, so the target ends as the last answered write
says. Two creates of one userName at once make one user and one 409. Many users written at once
from many threads reach the SQLite target exactly as the endpoint answered them.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from servers.pipelineendpoint import TOKEN_ENV
from servers.scimendpoint import TOKEN

from runner.serve.errors import Conflict
from runner.serve.patch import parse_patch
from runner.serve.pipeline import PipelineStore
from runner.serve.schema import KINDS

from .test_pipeline import USER, pipeline_folder, target_rows

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
THREADS = 8


@pytest.fixture
def pipeline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    return pipeline_folder(tmp_path)


def given_name(value: str) -> list:
    return parse_patch(KINDS["User"], {"schemas": [PATCH_OP], "Operations": [
        {"op": "Replace", "path": "name.givenName", "value": value}]})


def user(name: str) -> dict:
    return {**USER, "userName": name, "emails": [{"type": "work", "value": name}]}


def test_writes_to_one_user_at_once_apply_in_order_and_the_target_ends_as_the_last(pipeline: Path) -> None:
    with PipelineStore(pipeline, lanes=4) as store:
        created = store.create("User", USER)
        start = threading.Barrier(THREADS)

        def writer(n: int) -> list[tuple[int, str]]:
            start.wait()
            answers = []
            for i in range(5):
                record = store.patch("User", created.id, given_name(f"w{n}-{i}"))
                answers.append((int(record.version.strip('W/"')), record.attributes["name"]["givenName"]))
            return answers

        with ThreadPoolExecutor(THREADS) as pool:
            answers = [a for found in pool.map(writer, range(THREADS)) for a in found]
        versions = sorted(v for v, _ in answers)
        assert versions == list(range(2, 2 + 5 * THREADS)), "each write had its own turn and version"
        last = max(answers)[1]
        assert store.get("User", created.id).attributes["name"]["givenName"] == last
    assert [r["given_name"] for r in target_rows(pipeline.parent)] == [last]


def test_two_creates_of_one_user_name_at_once_make_one_user(pipeline: Path) -> None:
    with PipelineStore(pipeline, lanes=4) as store:
        start = threading.Barrier(THREADS)

        def create(_: int) -> str:
            start.wait()
            try:
                return store.create("User", user("Same.Person@example.com")).id
            except Conflict:
                return "409"

        with ThreadPoolExecutor(THREADS) as pool:
            outcomes = list(pool.map(create, range(THREADS)))
        assert outcomes.count("409") == THREADS - 1
        assert store.query("User", None, 1, 100).total == 1
    assert [r["user_name"] for r in target_rows(pipeline.parent)] == ["Same.Person@example.com"]


def test_many_users_written_at_once_reach_the_target_as_answered(pipeline: Path) -> None:
    with PipelineStore(pipeline, lanes=4) as store:
        def work(n: int) -> dict[str, str]:
            made = {}
            for i in range(6):
                name = f"user{n}.{i}@example.com"
                record = store.create("User", user(name))
                made[name] = store.patch("User", record.id, given_name(f"G{n}.{i}")).attributes["name"]["givenName"]
            return made

        with ThreadPoolExecutor(THREADS) as pool:
            answered = {k: v for found in pool.map(work, range(THREADS)) for k, v in found.items()}
        assert len(answered) == 6 * THREADS and store.query("User", None, 1, 1000).total == 6 * THREADS
    rows = target_rows(pipeline.parent)
    assert {r["user_name"]: r["given_name"] for r in rows} == answered
    assert len(rows) == len(answered)
