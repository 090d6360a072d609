"""Faults the real servers cannot make, injected by the fault proxy in front of them: 429 storms,
5xx, slow answers, connections dropped after a create was applied, HTML error pages."""

from __future__ import annotations

import json
import logging

import pytest
from servers import restapp as app
from servers.jsonserver import TOKEN
from servers.scim import FaultProxy

from runner.connectors.base import ConnectionFailed, ConnectorContext, Operation, RetryableError
from runner.connectors.rest.connector import RestConnector

from .world import api_state, env_for, hr_manifest

JSON_SERVER_PAGING = {"style": "page", "page_param": "_page", "size_param": "_limit", "total_header": "X-Total-Count"}


def connector(url: str, tmp_path, **config) -> RestConnector:
    block = {"type": "rest", "url": url, "auth": {"type": "bearer", "token": TOKEN}, "backoff": 0.01,
             "max_backoff": 0.05, "paging": JSON_SERVER_PAGING,
             "objects": {"users": {"correlate": {"query": {"userName": "{userName}"}}}, "groups": {}}, **config}
    c = RestConnector(block, ConnectorContext("api", tmp_path))
    c.open()
    return c


@pytest.fixture
def proxy(json_server, jsonserver):
    proxy = FaultProxy(json_server.url, token=TOKEN)
    yield proxy
    proxy.stop()


def test_a_run_under_a_429_storm_and_5xx_finishes_with_nothing_lost(provision, proxy, jsonserver, tmp_path,
                                                                      monkeypatch):
    manifest = hr_manifest(tmp_path, people=40, groups=4)
    # pauses as short as the other tests here use: four 5xx in a row cost no 4 s of backoff
    manifest.write_text(manifest.read_text().replace("    concurrency: 4\n",
                                                     "    concurrency: 4\n    backoff: 0.01\n    max_backoff: 0.05\n"))
    for k, v in env_for(proxy.url, tmp_path).items():
        monkeypatch.setenv(k, v)
    proxy.faults.throttle_writes = 60  # some without Retry-After: backoff with jitter
    proxy.faults.retry_after = "0"
    proxy.faults.errors_5xx = 4  # in a row, within max_retries (5)
    run = provision("run", manifest, "--output", "json")
    assert run.code == 0, run.err + run.out
    assert all(c["failed"] == 0 for c in json.loads(run.out)["object_types"].values())
    statuses = [s[3] for s in proxy.faults.requests()]
    assert statuses.count(429) == 60 and statuses.count(500) == 4
    state = api_state(jsonserver.dump())
    assert len(state["users"]) == json.loads(run.out)["object_types"]["user"]["added"], "no record twice"


def test_a_create_whose_answer_is_lost_is_adopted_not_duplicated(proxy, jsonserver, tmp_path):
    c = connector(proxy.url, tmp_path)
    proxy.faults.drop_after_post = 1
    [r] = c.apply([Operation(1, "add", "users", attributes={"userName": "dropped", "email": "d@example.org"})])
    assert not r.ok and type(r.error).__name__ == "AlreadyExists", r.error  # the engine adopts it by correlation
    assert [u["userName"] for u in jsonserver.records("users")] == ["dropped"]


def test_a_create_lost_before_it_reached_the_api_is_retried_later(proxy, jsonserver, tmp_path):
    c = connector(proxy.url, tmp_path)
    proxy.faults.drop_before_forward = 1
    [r] = c.apply([Operation(1, "add", "users", attributes={"userName": "later", "email": "l@example.org"})])
    assert not r.ok and isinstance(r.error, RetryableError), r.error
    assert jsonserver.records("users") == []


def test_slow_answers_past_the_timeout_are_retried_then_reported(proxy, tmp_path):
    c = connector(proxy.url, tmp_path, timeout=0.2, max_retries=1)
    proxy.faults.delay = 0.5
    [r] = c.apply([Operation(1, "update", "users", anchor="7", attributes={"title": "x"})])
    assert not r.ok and isinstance(r.error, RetryableError) and "no answer within 0.2 s" in str(r.error), r.error


def test_an_html_error_page_is_named_with_its_call_never_a_traceback(proxy, tmp_path, caplog):
    c = connector(proxy.url, tmp_path, max_retries=0)
    proxy.faults.html_errors = 1
    [r] = c.apply([Operation(1, "add", "users", attributes={"userName": "x", "email": "x@example.org"})])
    assert not r.ok and "HTTP 502" in str(r.error) and "an HTML page (502 Bad Gateway)" in str(r.error), r.error
    proxy.faults.html_errors = 5
    with pytest.raises(ConnectionFailed) as caught:
        list(c.read("users"))
    assert "list users: HTTP 502" in str(caught.value) and "HTML page" in str(caught.value)


def test_a_run_against_an_html_error_page_exits_with_a_clear_message(provision, proxy, tmp_path, monkeypatch):
    manifest = hr_manifest(tmp_path, people=10, groups=1)
    manifest.write_text(manifest.read_text().replace("    concurrency: 4\n", "    concurrency: 4\n    max_retries: 1\n"))
    for k, v in env_for(proxy.url, tmp_path).items():
        monkeypatch.setenv(k, v)
    proxy.faults.html_errors = 200
    run = provision("run", manifest)
    assert run.code != 0
    assert "HTML page (502 Bad Gateway)" in run.err and "Traceback" not in run.err, run.err


def test_an_oauth_token_revoked_mid_run_is_fetched_again_once(restapp, tmp_path):
    config = {"type": "rest", "url": f"{restapp.url}/api/v2", "records": "data",
              "auth": {"type": "oauth2", "token_url": f"{restapp.url}/oauth/token", "client_id": app.CLIENT_ID,
                       "client_secret": app.CLIENT_SECRET},
              "paging": {"style": "cursor", "size_param": "limit", "next": "meta.next_cursor"},
              "objects": {"teams": {}}}
    c = RestConnector(config, ConnectorContext("saas", tmp_path))
    c.open()
    [r] = c.apply([Operation(1, "add", "teams", attributes={"name": "One"})])
    assert r.ok, r.error
    restapp.revoke()
    [r] = c.apply([Operation(2, "add", "teams", attributes={"name": "Two"})])
    assert r.ok, r.error
    assert restapp.dump()["tokens_issued"] == 2 and c.client.oauth.fetched == 2


@pytest.mark.parametrize("auth", ["bearer", "basic", "api_key_header", "api_key_query"])
def test_every_auth_scheme_reaches_the_api_and_its_secret_never_shows(restapp, tmp_path, auth, caplog):
    chosen = {"bearer": {"type": "bearer", "token": app.RESTAPP_TOKEN},
              "basic": {"type": "basic", "username": app.BASIC_USER, "password": app.PASSWORD},
              "api_key_header": {"type": "api_key", "header": "X-API-Key", "value": app.API_KEY},
              "api_key_query": {"type": "api_key", "query": "api_key", "value": app.API_KEY}}[auth]
    config = {"type": "rest", "url": f"{restapp.url}/api/v2", "records": "data", "auth": chosen,
              "paging": {"style": "cursor", "size_param": "limit", "next": "meta.next_cursor"},
              "objects": {"teams": {}}}
    c = RestConnector(config, ConnectorContext("saas", tmp_path))
    c.open()
    caplog.set_level(logging.DEBUG)
    [r] = c.apply([Operation(1, "add", "teams", attributes={"name": "Auth"})])
    assert r.ok, r.error
    assert [t["name"] for t in restapp.dump()["teams"]] == ["Auth"]
    seen = {q["auth_scheme"] for q in restapp.requests_seen() if q["path"].startswith("/api/")}
    assert len(seen) == 1, seen
    c.close()
    broken = RestConnector({**config, "url": "http://127.0.0.1:9/api/v2", "max_retries": 0},
                           ConnectorContext("saas", tmp_path))
    broken.open()
    with pytest.raises(ConnectionFailed) as caught:
        list(broken.read("teams"))
    secret = next(v for k, v in chosen.items() if k in ("token", "password", "value"))
    assert secret not in str(caught.value) and secret not in caplog.text
