"""Connecting: ldaps:// and StartTLS against a CA made in the test, SASL EXTERNAL over ldapi://,
and the messages a person gets when the URL, the certificate or the credentials are wrong."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import socket
import threading

import pytest
from servers.slapd import Slapd

from runner.connectors.base import AlreadyExists, ConfigurationError, ConnectionFailed, RetryableError

from .helpers import connector, op


@pytest.fixture(scope="module")
def tls_slapd(tmp_path_factory) -> Slapd:
    server = Slapd.start(tmp_path_factory.mktemp("tls") / "slapd", ("dc=example,dc=org",), tls=True)
    yield server
    server.stop()


def works(dir) -> None:
    dir.open()
    try:
        [added] = dir.apply([op("add", name="uid=tls-check,dc=example,dc=org", attributes={"cn": "T", "sn": "T"})])
        assert added.ok or type(added.error).__name__ == "AlreadyExists", added.error
        assert dir.get("inetOrgPerson", name="uid=tls-check,dc=example,dc=org") is not None
    finally:
        dir.close()


def test_ldaps_with_the_ca_file_verifies_and_works(tls_slapd, tmp_path):
    works(connector(tls_slapd, tmp_path, url=tls_slapd.ldaps_url, ca_file=str(tls_slapd.ca_file),
                    partitions=["dc=example,dc=org"]))


def test_start_tls_with_the_ca_file_works(tls_slapd, tmp_path):
    works(connector(tls_slapd, tmp_path, start_tls=True, ca_file=str(tls_slapd.ca_file),
                    partitions=["dc=example,dc=org"]))


def test_a_certificate_nobody_vouches_for_is_refused_with_what_to_check(tls_slapd, tmp_path):
    dir = connector(tls_slapd, tmp_path, url=tls_slapd.ldaps_url, partitions=["dc=example,dc=org"])
    with pytest.raises(ConnectionFailed, match="ca_file"):
        dir.open()
    dir.close()


def test_tls_verify_false_must_be_explicit_and_warns(tls_slapd, tmp_path, caplog):
    dir = connector(tls_slapd, tmp_path, url=tls_slapd.ldaps_url, tls_verify=False, partitions=["dc=example,dc=org"])
    with caplog.at_level(logging.WARNING):
        works(dir)
    assert any("tls_verify is false" in r.getMessage() for r in caplog.records)


def test_sasl_external_over_ldapi_binds_as_the_process_user(tls_slapd, tmp_path):
    """slapd maps this process's uid/gid (peer credentials on the socket) to its root DN."""
    dir = connector(tls_slapd, tmp_path, url=tls_slapd.ldapi_url, sasl="EXTERNAL", partitions=["dc=example,dc=org"])
    dir.config.pop("bind_dn")
    dir.config.pop("password")
    works(dir)


def test_wrong_credentials_unreachable_servers_and_unknown_partitions_say_what_to_do(directory, tmp_path):
    wrong = connector(directory, tmp_path, password="not-the-password")
    with pytest.raises(ConnectionFailed, match="refused the credentials") as refused:
        wrong.open()
    assert "not-the-password" not in str(refused.value)
    nowhere = connector(directory, tmp_path, url="ldap://127.0.0.1:1", timeout=2)
    with pytest.raises(ConnectionFailed, match="cannot reach ldap://127.0.0.1:1"):
        nowhere.open()
    unknown = connector(directory, tmp_path, partitions=["dc=nowhere,dc=org"])
    with pytest.raises(ConfigurationError, match="naming contexts: .*dc=example,dc=org"):
        unknown.open()
    for made in (wrong, nowhere, unknown):
        made.close()


def test_a_schema_violation_fails_that_object_with_the_servers_message(directory, tmp_path):
    dir = connector(directory, tmp_path)
    dir.open()
    try:
        results = list(dir.apply([
            op("add", 1, name="uid=ok,dc=example,dc=org", attributes={"cn": "Ok", "sn": "Ok"}),
            op("add", 2, name="uid=bad,dc=example,dc=org", attributes={"cn": "Bad", "sn": "Bad", "gidNumber": "7"}),
            op("add", 3, name="uid=nosn,dc=example,dc=org", attributes={"cn": "No Surname"}),
        ]))
        assert [r.ok for r in results] == [True, False, False]
        assert "gidNumber" in str(results[1].error) and "objectClassViolation" in str(results[1].error)
        assert "sn" in str(results[2].error)
        assert type(results[1].error).__name__ == "PermanentError"
    finally:
        dir.close()


class StallingProxy:
    """A TCP relay in front of slapd that can stop passing the server's answers on (a hung
    server, a firewall eating packets): the fault a timeout exists for."""

    def __init__(self, port: int):
        self.upstream = port
        self.stalled = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.upstream))
            threading.Thread(target=self._pump, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, answers: bool) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                if not (answers and self.stalled.is_set()):
                    sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.close()

    def close(self) -> None:
        self.listener.close()


def test_a_timeout_is_retryable_and_the_replayed_add_is_recognised(directory, tmp_path):
    proxy = StallingProxy(directory.port)
    dir = connector(directory, tmp_path, url=f"ldap://127.0.0.1:{proxy.port}", timeout=1)
    dir.open()
    try:
        add = op("add", name="uid=slow,dc=example,dc=org", attributes={"cn": "Slow", "sn": "Slow"})
        assert dir.get("inetOrgPerson", name="uid=slow,dc=example,dc=org") is None  # a bound connection, pooled
        proxy.stalled.set()
        [lost] = dir.apply([add])
        assert not lost.ok and isinstance(lost.error, RetryableError), lost.error
        proxy.stalled.clear()
        [again] = dir.apply([dataclasses.replace(add, id=2, attempt=2)])
        assert not again.ok and isinstance(again.error, AlreadyExists), "the add landed; its replay says so"
        assert dir.get("inetOrgPerson", name="uid=slow,dc=example,dc=org") is not None
        proxy.stalled.set()  # a server that answers no bind: the pass stops, with what to check
        with pytest.raises(ConnectionFailed, match="cannot reach"):
            dir.pool.drop_idle()
            list(dir.apply([dataclasses.replace(add, id=3)]))
    finally:
        dir.close()
        proxy.close()
