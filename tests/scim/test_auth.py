"""Auth variants against the proxy (which checks them, then speaks to scim2-server with its own
token), TLS verification on by default, the client-side rate limit, and secrets that never reach
a log, an error or test output, requests' and urllib3's debug logging included."""

from __future__ import annotations

import logging
import time

import pytest

from runner.connectors.base import ConnectionFailed, Operation

from .conftest import connector

SECRET = "oauth-client-secret-71c2"


def add_one(c, name: str = "auth") -> None:
    [r] = c.apply([Operation(1, "add", "Users", attributes={"userName": name, "externalId": name})])
    assert r.ok, r.error


def test_oauth_client_credentials_fetches_a_token_and_fetches_another_when_it_is_refused(open_scim, proxy, tenant):
    proxy.faults.oauth = True
    c = open_scim(f"{proxy.url}/{tenant}", auth={"type": "oauth2", "token_url": f"{proxy.url}/token",
                                                 "client_id": "provision-client", "client_secret": SECRET})
    add_one(c)
    assert c.client.oauth.fetched == 1
    proxy.faults.issued.clear()  # the service revokes every token it gave
    add_one(c, "after-revocation")
    assert c.client.oauth.fetched == 2, "a 401 fetches a new token once, and the request goes through"


def test_oauth_with_a_wrong_secret_stops_with_a_message_that_does_not_show_it(proxy, tenant, tmp_path):
    proxy.faults.oauth = True
    c = connector(f"{proxy.url}/{tenant}", tmp_path, auth={"type": "oauth2", "token_url": f"{proxy.url}/token",
                                                            "client_id": "provision-client",
                                                            "client_secret": "wrong-secret-value-99"})
    with pytest.raises(ConnectionFailed) as caught:
        c.open()
    assert "refused the client credentials" in str(caught.value) and "wrong-secret-value-99" not in str(caught.value)
    c.close()


def test_basic_auth_and_custom_headers(open_scim, proxy, tenant):
    proxy.faults.basic = ("provision", "basic-password-5e1")
    c = open_scim(f"{proxy.url}/{tenant}", auth={"type": "basic", "username": "provision",
                                                 "password": "basic-password-5e1"}, headers={"X-Tenant": "acme"})
    add_one(c)
    assert all(s[2].get("X-Tenant") == "acme" for s in proxy.faults.requests())


def test_a_refused_token_stops_the_pass_naming_the_connector(proxy, tenant, tmp_path):
    c = connector(f"{proxy.url}/{tenant}", tmp_path, auth={"type": "bearer", "token": "not-the-token-4242"})
    with pytest.raises(ConnectionFailed) as caught:
        c.open()
    assert "'app'" in str(caught.value) and "check auth" in str(caught.value)
    assert "not-the-token-4242" not in str(caught.value)


def test_tls_is_verified_by_default(tmp_path):
    c = connector("https://127.0.0.1:9/scim", tmp_path, max_retries=0)
    assert c.settings.verify is True
    with pytest.raises(ConnectionFailed):
        c.open()
    assert connector("https://x/scim", tmp_path, verify_tls=False).settings.verify is False


def test_the_client_side_rate_limit_spaces_requests(open_scim, proxy, tenant):
    c = open_scim(f"{proxy.url}/{tenant}", max_requests_per_second=20)
    started = time.monotonic()
    assert all(r.ok for r in c.apply([Operation(i, "add", "Users", attributes={"userName": f"r{i}", "externalId": f"r{i}"})
                                      for i in range(10)]))
    assert time.monotonic() - started >= 9 / 20 * 0.9


def test_secrets_never_reach_the_logs_even_at_debug(proxy, tenant, tmp_path, caplog, capfd):
    import http.client
    proxy.faults.oauth = True
    caplog.set_level(logging.DEBUG)
    http.client.HTTPConnection.debuglevel = 1  # someone switched the wire dump on: it must stay off for us
    try:
        c = connector(f"{proxy.url}/{tenant}", tmp_path, auth={"type": "oauth2", "token_url": f"{proxy.url}/token",
                                                                "client_id": "provision-client",
                                                                "client_secret": SECRET})
        c.open()
        add_one(c, "logged")
        token = c.client.oauth.token
        bad = connector(f"{proxy.url}/{tenant}", tmp_path, auth={"type": "bearer", "token": "bearer-secret-8c3d"})
        with pytest.raises(ConnectionFailed) as caught:
            bad.open()
        c.close()
        bad.close()
    finally:
        http.client.HTTPConnection.debuglevel = 0
    out, err = capfd.readouterr()
    text = caplog.text + out + err + str(caught.value)
    assert "urllib3" in caplog.text or "connectionpool" in caplog.text, "debug logging was on"
    for secret in (SECRET, token, "bearer-secret-8c3d"):
        assert secret not in text
