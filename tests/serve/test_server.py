"""``runner.serve.server.serve`` and ``create_app``'s guards: TLS through uvicorn's certificate
options (Entra provisions only over HTTPS, with TLS 1.2), and the settings refused up front."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from servers.scimendpoint import ScimEndpoint

from runner.serve.app import create_app
from runner.serve.ratelimit import RateLimit, TokenBucket
from runner.serve.server import serve
from runner.serve.store import MemoryStore


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key (RSA 2048, as Microsoft requires at least)."""
    openssl = shutil.which("openssl")
    assert openssl, "the openssl command is needed to make a test certificate (Debian: openssl)"
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


@pytest.fixture(scope="module")
def tls_endpoint(tmp_path_factory: pytest.TempPathFactory, certificate: tuple[Path, Path]) -> Iterator[ScimEndpoint]:
    cert, key = certificate
    running = ScimEndpoint.start(tmp_path_factory.mktemp("tls-endpoint"), certfile=cert, keyfile=key)
    yield running
    running.stop()


def test_the_endpoint_serves_https(tls_endpoint: ScimEndpoint) -> None:
    assert tls_endpoint.url.startswith("https://")
    created = tls_endpoint.create_user()
    assert created["meta"]["location"].startswith(f"https://127.0.0.1:{tls_endpoint.port}/scim/Users/")
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{tls_endpoint.port}/scim/health", timeout=5)


def test_a_tls_1_2_client_connects(tls_endpoint: ScimEndpoint, certificate: tuple[Path, Path]) -> None:
    """Microsoft: "The only acceptable protocol version is TLS 1.2" (for its client)."""
    context = ssl.create_default_context(cafile=str(certificate[0]))
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    with socket.create_connection(("127.0.0.1", tls_endpoint.port), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        assert tls.version() == "TLSv1.2"
        tls.sendall(b"GET /scim/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        assert tls.recv(64).startswith(b"HTTP/1.1 200")


def test_settings_that_cannot_work_are_refused(tmp_path: Path) -> None:
    app = create_app(MemoryStore(), token="t")
    with pytest.raises(ValueError, match="ssl_certfile"):
        serve(app, port=1, ssl_keyfile=tmp_path / "key.pem")
    with pytest.raises(FileNotFoundError, match="cert.pem"):
        serve(app, port=1, ssl_certfile=tmp_path / "cert.pem")
    for token in ("", [], ["ok", ""]):
        with pytest.raises(ValueError, match="bearer token"):
            create_app(MemoryStore(), token=token)
    with pytest.raises(ValueError):
        RateLimit(0)
    with pytest.raises(ValueError):
        RateLimit(5, burst=0)


def test_the_token_bucket_refills_at_its_rate() -> None:
    now = [100.0]
    bucket = TokenBucket(RateLimit(rate=2, burst=2), clock=lambda: now[0])
    assert [bucket.take(), bucket.take()] == [None, None]
    assert bucket.take() == pytest.approx(0.5)  # one token comes every 0.5 s
    now[0] += 0.5
    assert bucket.take() is None and bucket.take() == pytest.approx(0.5)
    now[0] += 60  # a long pause refills up to the burst, no further
    assert [bucket.take(), bucket.take()] == [None, None] and bucket.take() is not None
