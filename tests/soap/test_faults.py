"""Faults the real service cannot make, through the fault proxy in front of it: a 500 with a SOAP
Server fault, a 502 HTML page, slow answers, a connection dropped after a create was applied."""

from __future__ import annotations

import json

import pytest
from servers.soapservice import PASSWORD, USER

from runner.connectors.base import (
    AlreadyExists,
    ConnectionFailed,
    ConnectorContext,
    Operation,
    RetryableError,
)
from runner.connectors.soap.connector import SoapConnector

from .world import env_for, hr_manifest, service_state

USERS = {
    "id": "userName",
    "list": {"operation": "listUsers"},
    "get": {"operation": "getUser", "args": {"userName": "{id}"}},
    "correlate": {"operation": "getUser", "args": {"userName": "{userName}"}},
    "create": {"operation": "createUser", "args": {"user": {"userName": "{userName}", "email": "{email}"}}},
    "update": {"operation": "updateUser", "args": {"user": {"userName": "{id}", "email": "{email}"}}},
    "delete": {"operation": "deleteUser", "args": {"userName": "{id}"}},
}


def connector(wsdl: str, tmp_path, **config) -> SoapConnector:
    block = {"type": "soap", "wsdl": wsdl, "auth": {"type": "basic", "username": USER, "password": PASSWORD},
             "backoff": 0.01, "max_backoff": 0.05, "objects": {"users": USERS},
             "faults": {"exists": [{"code": "Client.AlreadyExists"}], "not_found": [{"code": "Client.NotFound"}]},
             **config}
    c = SoapConnector(block, ConnectorContext("svc", tmp_path))
    c.open()
    return c


def test_a_server_fault_is_tried_again_later_and_a_client_fault_fails_the_object(soap_proxy, tmp_path):
    c = connector(soap_proxy.url + "/?wsdl", tmp_path)
    soap_proxy.faults.soap_fault_500 = 1
    [r] = c.apply([Operation(1, "add", "users", attributes={"userName": "ana"})])
    assert not r.ok and isinstance(r.error, RetryableError) and "SOAP fault Server: internal error" in str(r.error)
    [r] = c.apply([Operation(2, "add", "users", attributes={"userName": "ana"})])
    assert r.ok, r.error
    [r] = c.apply([Operation(3, "add", "users", attributes={"userName": "ANA"})])
    assert isinstance(r.error, AlreadyExists) and "user 'ANA' already exists" in str(r.error)


def test_an_html_page_is_named_and_a_read_that_meets_one_stops_the_pass(soap_proxy, tmp_path):
    c = connector(soap_proxy.url + "/?wsdl", tmp_path, max_retries=0)
    soap_proxy.faults.html_errors = 1
    [r] = c.apply([Operation(1, "add", "users", attributes={"userName": "bo"})])
    assert not r.ok and isinstance(r.error, RetryableError) and "an HTML page (502 Bad Gateway)" in str(r.error)
    soap_proxy.faults.html_errors = 1
    with pytest.raises(ConnectionFailed, match="HTML page"):
        list(c.read("users"))


def test_a_500_with_an_html_page_is_named_and_tried_again_later(soap_proxy, soapservice, tmp_path):
    c = connector(soap_proxy.url + "/?wsdl", tmp_path)
    soap_proxy.faults.html_errors, soap_proxy.faults.html_status = 1, 500
    [r] = c.apply([Operation(1, "add", "users", attributes={"userName": "hal"})])
    assert not r.ok and isinstance(r.error, RetryableError) and "HTML page" in str(r.error), r.error
    [r] = c.apply([Operation(2, "add", "users", attributes={"userName": "hal"})])
    assert r.ok and [u["userName"] for u in soapservice.dump()["users"]] == ["hal"]


def test_a_create_whose_answer_is_lost_is_adopted_not_duplicated(soap_proxy, soapservice, tmp_path):
    c = connector(soap_proxy.url + "/?wsdl", tmp_path)
    soap_proxy.faults.drop_after_post = 1
    [r] = c.apply([Operation(1, "add", "users", attributes={"userName": "cy", "email": "cy@example.org"})])
    assert isinstance(r.error, AlreadyExists) and "before the connection broke" in str(r.error), r.error
    assert [u["userName"] for u in soapservice.dump()["users"]] == ["cy"]


def test_slow_reads_are_retried_then_reported(soap_proxy, tmp_path):
    c = connector(soap_proxy.url + "/?wsdl", tmp_path, timeout=0.3, max_retries=1)
    soap_proxy.faults.delay = 0.6
    with pytest.raises(ConnectionFailed, match="no answer within 0.3 s"):
        c.get("users", "nobody")


def test_refused_credentials_stop_with_a_message_that_holds_no_password(soapservice, tmp_path):
    c = SoapConnector({"type": "soap", "wsdl": soapservice.wsdl, "objects": {"users": USERS},
                       "auth": {"type": "basic", "username": USER, "password": "wrong-password-1234"}},
                      ConnectorContext("svc", tmp_path))
    c.open()
    with pytest.raises(ConnectionFailed) as caught:  # the pass stops: nothing more is tried
        list(c.apply([Operation(1, "add", "users", attributes={"userName": "dee"})]))
    assert "HTTP 401" in str(caught.value) and "check auth" in str(caught.value)
    assert "wrong-password-1234" not in str(caught.value)


def test_a_run_through_server_faults_and_dropped_answers_converges(provision, soap_proxy, soapservice, tmp_path,
                                                                   monkeypatch):
    manifest = hr_manifest(tmp_path, people=30, groups=3)
    # pauses as short as the other tests here use: five faults in a row cost no 10 s of backoff
    manifest.write_text(manifest.read_text().replace("    concurrency: 4\n",
                                                     "    concurrency: 4\n    backoff: 0.01\n    max_backoff: 0.05\n"))
    for k, v in env_for(soap_proxy.url + "/?wsdl", tmp_path).items():
        monkeypatch.setenv(k, v)
    soap_proxy.faults.soap_fault_500 = 5
    soap_proxy.faults.drop_after_post = 3
    first = provision("run", manifest, "--output", "json")
    assert first.code in (0, 1), first.err
    again = provision("run", manifest, "--output", "json")
    assert again.code == 0, again.err
    assert all(c["failed"] == 0 for c in json.loads(again.out)["object_types"].values()), again.out
    clean = provision("check", manifest, "--output", "json")
    assert clean.code == 0 and not clean.json()["check"]["differences"], clean.out
    assert service_state(soapservice.dump())["users"], "no user twice (service_state asserts it)"
    third = provision("run", manifest, "--output", "json")
    assert all(c["added"] + c["updated"] + c["deleted"] == 0 for c in json.loads(third.out)["object_types"].values())


@pytest.mark.parametrize("digest", [False, True], ids=["PasswordText", "PasswordDigest"])
def test_ws_security_username_tokens_reach_a_service_that_checks_them(tmp_path, digest, caplog):
    from servers.soapservice import SoapService

    service = SoapService.start(tmp_path / "wsse", wsse=True)
    try:
        auth = {"type": "wsse", "username": USER, "password": PASSWORD, "digest": digest}
        c = SoapConnector({"type": "soap", "wsdl": service.wsdl, "auth": auth, "objects": {"users": USERS}},
                          ConnectorContext("svc", tmp_path))
        c.open()
        [r] = c.apply([Operation(1, "add", "users", attributes={"userName": "wes"})])
        assert r.ok, r.error
        assert [u["userName"] for u in service.dump()["users"]] == ["wes"]
        wrong = SoapConnector({"type": "soap", "wsdl": service.wsdl, "objects": {"users": USERS},
                               "auth": {**auth, "password": "not-the-password-99"}}, ConnectorContext("svc", tmp_path))
        wrong.open()
        with pytest.raises(ConnectionFailed, match="HTTP 401") as caught:
            list(wrong.apply([Operation(2, "add", "users", attributes={"userName": "eve"})]))
        assert "not-the-password-99" not in str(caught.value) and PASSWORD not in caplog.text
    finally:
        service.stop()
