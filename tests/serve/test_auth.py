"""Who may call ``provision serve``: the manifest's bearer token, OAuth JWTs, or either (runner/serve/auth.py).

``provision serve FILE`` runs as a real process on 127.0.0.1 (``tests/servers/pipelineendpoint.py``)
with ``serve: {token, oauth: {issuer, audience, key: ${file:issuer.pem}}, metrics: {public: false}}``;
tokens are signed here with an RSA key made by ``cryptography``. Every refusal is a 401 with the
RFC 6750 challenge and an RFC 7644 error that says what to fix, and neither the answer nor the
server's log holds the credential. A second server takes its keys from a JWKS that
``python -m http.server`` serves on 127.0.0.1. The validator's own cases (a shared secret, a
certificate, settings that cannot work) are checked on it directly, and ``provision serve`` with
broken settings stops with exit 2 and a message naming the setting.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from prometheus_client.parser import text_string_to_metric_families
from servers.pipelineendpoint import PipelineEndpoint
from servers.process import launch, stop
from servers.scimendpoint import TOKEN, free_port

from runner import secrets
from runner.serve.auth import JwtValidator, KeysUnavailable, OAuthSettings, Refused, from_settings

ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
ISSUER = "https://login.example.org/8f2c1d2e/v2.0"
AUDIENCE = "api://provision-scim"

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PUBLIC_PEM = KEY.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
PRIVATE_PEM = KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()

TARGET_SQL = """\
CREATE TABLE IF NOT EXISTS users (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    user_name TEXT NOT NULL UNIQUE,
    disabled  BOOLEAN NOT NULL DEFAULT 0
);
"""

MANIFEST = """\
version: 1
name: entra-oauth
state: "sqlite:///{folder}/state.db"
serve:
{serve}
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
    when_deleted: delete
    mapping:
      - {{target: user_name, source: userName}}
      - {{target: disabled, constant: false}}
"""

SERVE = "\n".join([
    '  token: "${env:SCIM_ENDPOINT_TOKEN}"',
    f'  oauth: {{issuer: "{ISSUER}", audience: "{AUDIENCE}", key: "${{file:issuer.pem}}", algorithms: [RS256]}}',
    "  metrics: {public: false}"])


def pipeline(folder: Path, serve: str) -> Path:
    """A manifest with the ``serve`` block ``serve`` (YAML lines indented by two), its target's DDL
    and the issuer's public key in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "app.sql").write_text(TARGET_SQL)
    (folder / "issuer.pem").write_text(PUBLIC_PEM)
    manifest = folder / "pipeline.yaml"
    manifest.write_text(MANIFEST.format(folder=folder, serve=serve.rstrip("\n")))
    return manifest


def claims(**changes: Any) -> dict[str, Any]:
    """What Entra's access token carries, valid for ten minutes; a change of None drops the claim."""
    now = int(time.time())
    body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "provisioning-agent", "iat": now, "nbf": now - 5, "exp": now + 600}
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


def mint(key: Any = KEY, algorithm: str = "RS256", headers: dict[str, Any] | None = None, **changes: Any) -> str:
    return jwt.encode(claims(**changes), key, algorithm=algorithm, headers=headers)


def b64(data: bytes | dict[str, Any]) -> str:
    raw = json.dumps(data).encode() if isinstance(data, dict) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def forged(header: dict[str, Any], secret: bytes | None) -> str:
    """A token built by hand: unsigned (``alg: none``) or HMAC-signed with ``secret``."""
    signing_input = f"{b64(header)}.{b64(claims())}"
    signature = b"" if secret is None else hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def tampered() -> str:
    """A good token whose claims were changed after signing (another subject)."""
    header, _, signature = mint().split(".")
    return f"{header}.{b64(claims(sub='admin'))}.{signature}"


def bearer(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


def refused(answer: requests.Response) -> str:
    """The detail of a 401 with RFC 6750's challenge and an RFC 7644 error body."""
    assert answer.status_code == 401, answer.text
    assert answer.headers["Content-Type"] == "application/scim+json"
    body = answer.json()
    assert body["schemas"] == [ERROR] and body["status"] == "401", body
    assert answer.headers["WWW-Authenticate"].startswith('Bearer realm="SCIM", error="invalid_token"')
    return body["detail"]


def scrape(url: str, **kwargs: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    answer = requests.get(url, timeout=10, **kwargs)
    assert answer.status_code == 200, answer.text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(answer.text) for s in family.samples}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PipelineEndpoint]:
    folder = tmp_path_factory.mktemp("serve-oauth")
    running = PipelineEndpoint.start_serving(pipeline(folder, SERVE), folder)
    yield running
    running.stop()


# ---- over HTTP: provision serve with a token and OAuth -------------------------------------------------


def test_a_valid_jwt_and_the_static_token_are_both_accepted(served: PipelineEndpoint) -> None:
    token = mint()
    name = f"jwt-{uuid.uuid4().hex[:8]}@example.com"
    created = requests.post(f"{served.url}/Users", json={"userName": name}, headers=bearer(token), timeout=30)
    assert created.status_code == 201, created.text
    found = requests.get(f"{served.url}/Users", params={"filter": f'userName eq "{name}"'},
                         headers=bearer(token), timeout=30)
    assert (found.status_code, found.json()["totalResults"]) == (200, 1)
    assert requests.get(f"{served.url}/Users", headers=bearer(TOKEN), timeout=30).status_code == 200
    # a list of audiences in the token: one of them is this endpoint's
    assert requests.get(f"{served.url}/Users", headers=bearer(mint(aud=["api://other", AUDIENCE])),
                        timeout=30).status_code == 200
    # within the leeway: expired 20 s ago, or valid from 20 s from now (clocks differ a little)
    now = int(time.time())
    for token in (mint(exp=now - 20), mint(nbf=now + 20)):
        assert requests.get(f"{served.url}/Users", headers=bearer(token), timeout=30).status_code == 200


REFUSALS = {
    "expired": (lambda: mint(exp=int(time.time()) - 3600), ["expired at", "get a new one"]),
    "not-yet-valid": (lambda: mint(nbf=int(time.time()) + 3600), ["not valid before", "clocks"]),
    "wrong-issuer": (lambda: mint(iss="https://evil.example.com"),
                     ["issued by 'https://evil.example.com'", ISSUER, "serve.oauth.issuer"]),
    "wrong-audience": (lambda: mint(aud="api://another-app"),
                       ["audience 'api://another-app'", AUDIENCE, "serve.oauth.audience"]),
    "another-key": (lambda: mint(OTHER_KEY), ["signature does not verify", "serve.oauth.key"]),
    "changed-after-signing": (tampered, ["signature does not verify"]),
    "alg-none": (lambda: forged({"alg": "none", "typ": "JWT"}, None), ["'none'", "RS256"]),
    "hs256-with-the-public-key": (lambda: forged({"alg": "HS256", "typ": "JWT"}, PUBLIC_PEM.encode()),
                                  ["'HS256'", "accepts RS256"]),
    "no-expiry": (lambda: mint(exp=None), ["no 'exp' claim"]),
    "no-audience": (lambda: mint(aud=None), ["no 'aud' claim"]),
    "not-a-jwt-nor-the-token": (lambda: "a.b.c", ["not a well-formed JWT"]),
    "wrong-static-token": (lambda: "not-the-secret-token", ["the bearer token is not valid"]),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_a_refused_credential_is_401_saying_why_without_echoing_it(served: PipelineEndpoint, case: str) -> None:
    make, words = REFUSALS[case]
    credential = make()
    answer = requests.get(f"{served.url}/Users", headers=bearer(credential), timeout=30)
    detail = refused(answer)
    for word in words:
        assert word in detail, detail
    for part in {credential, *credential.split(".")} - {"", "a", "b", "c"}:
        assert part not in answer.text and part not in answer.headers["WWW-Authenticate"]
    assert "error_description=" in answer.headers["WWW-Authenticate"]


def test_no_credential_is_a_plain_challenge(served: PipelineEndpoint) -> None:
    answer = requests.get(f"{served.url}/Users", timeout=30)
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"] == 'Bearer realm="SCIM"'
    assert "Authorization: Bearer" in answer.json()["detail"]


def test_metrics_take_a_credential_when_not_public_and_count_the_refusals(served: PipelineEndpoint) -> None:
    url = f"{served.url}/metrics"
    assert refused(requests.get(url, headers=bearer("wrong"), timeout=30))
    assert requests.get(url, timeout=30).status_code == 401
    good = bearer(mint())
    before = scrape(url, headers=good)
    for _ in range(2):
        refused(requests.get(f"{served.url}/Groups", headers=bearer(mint(exp=int(time.time()) - 3600)), timeout=30))
    refused(requests.get(f"{served.url}/Groups", headers=bearer(mint(aud="api://x")), timeout=30))
    after = scrape(f"http://127.0.0.1:{served.port}/metrics", headers=good)

    def grew(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0) - before.get(key, 0)

    assert grew("provision_serve_unauthorized_requests_total", reason="expired") == 2
    assert grew("provision_serve_unauthorized_requests_total", reason="audience") == 1
    assert grew("provision_serve_requests_total", resource_type="Group", method="GET", status="401") == 3
    health = requests.get(f"{served.url}/health", timeout=30).json()  # health stays open, and says what serves
    assert health == {"status": "ok", "pipeline": "entra-oauth", "lanes": 4}


def test_the_servers_log_never_holds_a_credential(served: PipelineEndpoint) -> None:
    credentials = [TOKEN, mint(), mint(exp=int(time.time()) - 3600), "not-the-secret-token"]
    for credential in credentials:
        requests.get(f"{served.url}/Users", headers=bearer(credential), timeout=30)
    time.sleep(0.2)
    assert served.log is not None
    log = served.log.read_text()
    assert "/scim/Users" in log  # the access log is there, and says nothing of the credentials
    for credential in credentials:
        assert credential not in log


# ---- over HTTP: keys from the issuer's JWKS ---------------------------------------------------------------


def jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    public = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return {**public, "kid": kid, "use": "sig", "alg": "RS256"}


@pytest.fixture(scope="module")
def jwks_served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PipelineEndpoint]:
    """``provision serve`` with OAuth only, its keys at a JWKS served by ``python -m http.server``."""
    folder = tmp_path_factory.mktemp("serve-jwks")
    keys = folder / "keys"
    keys.mkdir()
    (keys / "jwks.json").write_text(json.dumps({"keys": [jwk(KEY, "k1"), jwk(OTHER_KEY, "k2")]}))
    port = free_port()
    jwks_url = f"http://127.0.0.1:{port}/jwks.json"
    issuer = launch([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(keys)],
                    folder, folder / "jwks.log", None, lambda: requests.get(jwks_url, timeout=1).status_code == 200,
                    "the JWKS server")
    serve = f'  oauth: {{issuer: "{ISSUER}", audience: ["{AUDIENCE}"], jwks_url: "{jwks_url}"}}\n'
    try:
        running = PipelineEndpoint.start_serving(pipeline(folder, serve), folder)
    except BaseException:
        stop(issuer)
        raise
    yield running
    running.stop()
    stop(issuer)


def test_keys_come_from_the_issuers_jwks_by_kid(jwks_served: PipelineEndpoint) -> None:
    url = f"{jwks_served.url}/Users"
    for key, kid in ((KEY, "k1"), (OTHER_KEY, "k2")):
        answer = requests.get(url, headers=bearer(mint(key, headers={"kid": kid})), timeout=30)
        assert answer.status_code == 200, answer.text
    detail = refused(requests.get(url, headers=bearer(mint(KEY, headers={"kid": "k2"})), timeout=30))
    assert "signature does not verify with the issuer's keys (serve.oauth.jwks_url)" in detail
    detail = refused(requests.get(url, headers=bearer(mint(KEY, headers={"kid": "k9"})), timeout=30))
    assert "'k9' is not among the issuer's keys" in detail
    assert "names no key" in refused(requests.get(url, headers=bearer(mint(KEY)), timeout=30))
    # OAuth only: the static token is no credential here
    assert "not a well-formed JWT" in refused(requests.get(url, headers=bearer(TOKEN), timeout=30))


# ---- the validator itself ---------------------------------------------------------------------------------


def test_a_shared_secret_verifies_hs256_and_never_shows() -> None:
    secret = "a-shared-secret-of-more-than-thirty-two-bytes-" + uuid.uuid4().hex
    auth = from_settings({"oauth": {"issuer": ISSUER, "audience": AUDIENCE, "key": secret, "algorithms": ["HS256"]}})
    auth.check(mint(secret, "HS256"))
    with pytest.raises(Refused) as wrong:
        auth.check(mint("another-shared-secret-of-at-least-32-bytes!!", "HS256"))
    assert wrong.value.reason == "signature"
    with pytest.raises(Refused) as rsa_signed:
        auth.check(mint())
    assert rsa_signed.value.reason == "algorithm"
    assert secrets.redact(f"the key is {secret}") == "the key is ***"


def test_a_certificate_is_as_good_as_its_public_key() -> None:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "issuer")])
    now = datetime.now(UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(KEY.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now)
                   .not_valid_after(now + timedelta(days=1)).sign(KEY, hashes.SHA256()))
    pem = certificate.public_bytes(serialization.Encoding.PEM).decode()
    validator = JwtValidator(OAuthSettings(ISSUER, (AUDIENCE,), ("RS256", "PS256"), key=pem))
    validator.check(mint())
    validator.check(mint(algorithm="PS256"))


def test_an_unreachable_jwks_is_try_again_later_not_a_refusal() -> None:
    url = f"http://127.0.0.1:{free_port()}/jwks.json"  # nothing listens there
    validator = JwtValidator(OAuthSettings(ISSUER, (AUDIENCE,), jwks_url=url))
    with pytest.raises(KeysUnavailable, match="could not be fetched"):
        validator.check(mint(headers={"kid": "k1"}))


@pytest.mark.parametrize(("oauth", "message"), [
    ({"key": PRIVATE_PEM}, "serve.oauth.key is a private key"),
    ({"key": "short-secret", "algorithms": ["HS256"]}, "at least 32 bytes (RFC 7518 §3.2)"),
    ({"key": PUBLIC_PEM, "algorithms": ["HS256"]}, "HS256 needs a shared secret"),
    ({"key": "x" * 40}, "RS256 needs a PEM public key"),
    ({"key": PUBLIC_PEM, "algorithms": ["ES256"]}, "not a public key for ES256"),
    ({"key": "x" * 40, "algorithms": ["HS256", "RS256"]}, "cannot share one key"),
    ({"jwks_url": "http://keys.example.com/jwks"}, "not an https:// URL"),
    ({"jwks_url": "https://keys.example.com/jwks", "algorithms": ["HS256"]}, "a JWKS does not publish"),
    ({"key": PUBLIC_PEM, "jwks_url": "https://keys.example.com/jwks"}, "either key"),
], ids=["private-key", "short-secret", "hs-with-pem", "rs-with-secret", "es-with-rsa", "mixed", "jwks-http",
        "jwks-hs", "key-and-jwks"])
def test_settings_that_cannot_work_are_refused_at_start(oauth: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match="serve.oauth") as e:
        from_settings({"oauth": {"issuer": ISSUER, "audience": AUDIENCE, **oauth}})
    assert message in str(e.value)


def test_provision_serve_with_broken_oauth_stops_naming_the_setting(provision, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCIM_JWT_SECRET", "too-short-a-secret")
    serve = f'  oauth: {{issuer: "{ISSUER}", audience: "{AUDIENCE}", key: "${{env:SCIM_JWT_SECRET}}", ' \
            'algorithms: [HS256]}\n'
    manifest = pipeline(tmp_path, serve)
    result = provision("serve", manifest, "--port", str(free_port()))
    assert result.code == 2, result.err
    assert "serve.oauth.key: a shared secret for HS256 has at least 32 bytes" in result.err
    assert "Traceback" not in result.err and "too-short-a-secret" not in result.out + result.err
    # an oauth block the schema refuses: located in the file
    manifest.write_text(manifest.read_text().replace(f'audience: "{AUDIENCE}", ', "").replace("HS256", "none"))
    result = provision("serve", manifest, "--port", str(free_port()))
    assert result.code == 2, result.err
    assert "serve.oauth" in result.err and "pipeline.yaml:" in result.err
