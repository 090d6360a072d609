"""Who may call the SCIM endpoint: static bearer tokens, OAuth JWTs, or either.

Entra's provisioning service authenticates with a bearer token (RFC 6750): the "Secret Token" typed
into the admin center, or a JWT it obtained from an authorization server (OAuth client credentials).
An :class:`Authenticator` takes the credential of ``Authorization: Bearer <credential>`` and accepts
it or raises :class:`Refused`, whose ``detail`` tells a person what to fix (expired, wrong issuer,
wrong audience, bad signature) and never contains the credential, and whose ``reason`` is a short
code for the metrics and the log.

* :class:`StaticTokens`: compared in constant time (of equal-length digests), every token each time,
  so timing tells nothing about any of them;
* :class:`JwtValidator`: PyJWT checks the signature against the configured key (a PEM public key or
  certificate, a shared secret for HS256/384/512) or the issuer's JWKS, then ``iss``, ``aud``,
  ``exp`` and ``nbf`` (with a small leeway for clock skew); only the configured algorithms pass, so
  ``alg: none`` and algorithm confusion (an RS256 key used as an HS256 secret) are refused;
* :class:`Either`: both configured at once (a token and OAuth), either accepted.

:func:`from_settings` builds one from the manifest's ``serve`` block, registering every secret with
:func:`runner.secrets.register` so it never shows in a log.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

import jwt
from cryptography import x509

from runner import secrets

log = logging.getLogger("runner.serve")

#: the reasons a credential is refused: the values of :attr:`Refused.reason`
REASONS = ("missing", "scheme", "token", "malformed", "expired", "not_yet_valid", "issuer", "audience",
           "signature", "algorithm", "claim", "key")
#: algorithms a JWT may be signed with (RFC 7518 §3.1, and EdDSA of RFC 8037); never ``none``
ALGORITHMS = ("HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
              "ES256", "ES384", "ES512", "EdDSA")
#: the seconds of clock skew tolerated on ``exp`` and ``nbf`` unless ``serve.oauth.leeway`` says otherwise
DEFAULT_LEEWAY = 60
#: RFC 7518 §3.2: an HMAC key at least as long as the hash's output (HS256: 32 bytes)
_HMAC_MINIMUM = {"HS256": 32, "HS384": 48, "HS512": 64}
_SHOWN = 120  # the most characters of a claim value a message quotes


class Refused(Exception):
    """The credential is not accepted: answer 401.

    Attributes:
        reason: one of :data:`REASONS` (a metric label).
        detail: what is wrong, in words a person can act on; never the credential itself.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class KeysUnavailable(Exception):
    """The issuer's signing keys (its JWKS) could not be fetched: the credential may well be good,
    so the answer is 503 with ``Retry-After`` (the client tries again), not 401."""


class Authenticator(Protocol):
    """Decides on the credential of one request."""

    def check(self, credential: str) -> None:
        """Return when ``credential`` (the part after ``Bearer``) is accepted.

        Raises:
            Refused: it is not.
            KeysUnavailable: the keys to check it with cannot be had right now.
        """
        ...


def bearer_credential(header: str | None) -> str:
    """The credential of an ``Authorization`` header in the ``Bearer`` scheme (case-insensitive,
    RFC 6750 §2.1), or :class:`Refused` (``missing`` without a header, ``scheme`` otherwise)."""
    if not header or not header.strip():
        raise Refused("missing", "a bearer token is required (Authorization: Bearer ...)")
    scheme, _, credential = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        raise Refused("scheme", "the Authorization header must be 'Bearer' followed by the token")
    return credential.strip()


class StaticTokens:
    """One or more fixed bearer tokens (several for a rotation: old and new both valid meanwhile)."""

    def __init__(self, tokens: Sequence[str]) -> None:
        if not tokens or any(not t for t in tokens):
            raise ValueError("a bearer token is a non-empty string")
        self._digests = [hashlib.sha256(t.encode()).digest() for t in tokens]

    def matches(self, credential: str) -> bool:
        """Whether ``credential`` is one of the tokens; every token is compared, in constant time."""
        digest = hashlib.sha256(credential.encode()).digest()
        matched = False
        for expected in self._digests:
            matched |= hmac.compare_digest(digest, expected)
        return matched

    def check(self, credential: str) -> None:
        if not self.matches(credential):
            raise Refused("token", "the bearer token is not valid")


@dataclass(frozen=True)
class OAuthSettings:
    """``serve.oauth``: which JWTs are accepted.

    Attributes:
        issuer: the ``iss`` every token must carry, exactly.
        audience: the ``aud`` values accepted (a token's ``aud`` must hold one of them).
        algorithms: the signature algorithms accepted; anything else (``none`` included) is refused.
        key: a PEM public key or certificate (RS*/PS*/ES*/EdDSA), or a shared secret (HS*).
        jwks_url: instead of ``key``: the issuer's JWKS, fetched and cached (keys picked by ``kid``).
        leeway: seconds of clock skew tolerated on ``exp`` and ``nbf``.
    """

    issuer: str
    audience: tuple[str, ...]
    algorithms: tuple[str, ...] = ("RS256",)
    key: str | None = field(default=None, repr=False)
    jwks_url: str | None = None
    leeway: float = DEFAULT_LEEWAY


class JwtValidator:
    """Checks JWTs (RFC 7519) against :class:`OAuthSettings`; the key is loaded and matched with the
    algorithms when built, so a wrong key fails ``provision serve`` at start, not the first request.

    Raises:
        ValueError: the settings cannot work (the message names the setting).
    """

    def __init__(self, settings: OAuthSettings) -> None:
        self.settings = settings
        if not settings.algorithms:
            raise ValueError("serve.oauth.algorithms: name at least one algorithm")
        unknown = [a for a in settings.algorithms if a not in ALGORITHMS]
        if unknown:
            raise ValueError(f"serve.oauth.algorithms: {', '.join(unknown)} is not one of {', '.join(ALGORITHMS)}")
        if (settings.key is None) == (settings.jwks_url is None):
            raise ValueError("serve.oauth: give either key (a PEM public key or a shared secret) or jwks_url")
        if not settings.issuer:
            raise ValueError("serve.oauth.issuer: the issuer every token must name is required")
        if not settings.audience or any(not a for a in settings.audience):
            raise ValueError("serve.oauth.audience: the audience tokens must be issued for is required")
        self._key: Any = None
        self._jwks: jwt.PyJWKClient | None = None
        if settings.jwks_url is not None:
            shared = [a for a in settings.algorithms if a.startswith("HS")]
            if shared:
                raise ValueError(f"serve.oauth.algorithms: {', '.join(shared)} signs with a shared secret, which "
                                 "a JWKS does not publish; use key: for it")
            _check_jwks_url(settings.jwks_url)
            # the set is cached 5 minutes; a token naming an unknown kid refetches it, at most every 30 s
            self._jwks = jwt.PyJWKClient(settings.jwks_url, lifespan=300, timeout=10)
        else:
            self._key = _load_key(str(settings.key), settings.algorithms)

    def check(self, credential: str) -> None:
        s = self.settings
        try:
            header = jwt.get_unverified_header(credential)
        except jwt.PyJWTError:
            raise Refused("malformed", "the bearer token is not a well-formed JWT") from None
        alg = header.get("alg")
        if alg not in s.algorithms:
            shown = "no algorithm" if not alg else f"'{_quoted(alg)}'"
            raise Refused("algorithm", f"the token is signed with {shown}; this endpoint accepts "
                                       f"{', '.join(s.algorithms)} (serve.oauth.algorithms)")
        key = self._key if self._jwks is None else self._signing_key(header)
        options = {"require": ["exp", "iss", "aud"]}
        try:
            jwt.decode(credential, key, algorithms=list(s.algorithms), audience=list(s.audience), issuer=s.issuer,
                       leeway=s.leeway, options=options)  # type: ignore[arg-type]
        except jwt.InvalidSignatureError:
            where = "the issuer's keys (serve.oauth.jwks_url)" if self._jwks else "the configured key (serve.oauth.key)"
            raise Refused("signature", f"the token's signature does not verify with {where}: it was signed by "
                                       "another key, or changed after signing") from None
        except jwt.ExpiredSignatureError:
            raise Refused("expired", f"the token expired at {_when(credential, 'exp')}; get a new one from "
                                     f"the issuer") from None
        except jwt.ImmatureSignatureError:
            raise Refused("not_yet_valid", f"the token is not valid before {_when(credential, 'nbf')}; check "
                                           "the clocks of the issuer and of this server") from None
        except jwt.MissingRequiredClaimError as e:
            raise Refused("claim", f"the token has no '{e.claim}' claim, which this endpoint requires") from None
        except jwt.InvalidIssuerError:
            raise Refused("issuer", f"the token was issued by {_claim(credential, 'iss')}, but this endpoint "
                                    f"accepts tokens of '{s.issuer}' (serve.oauth.issuer)") from None
        except jwt.InvalidAudienceError:
            wanted = ", ".join(f"'{a}'" for a in s.audience)
            raise Refused("audience", f"the token is for the audience {_claim(credential, 'aud')}, not this "
                                      f"endpoint's {wanted} (serve.oauth.audience)") from None
        except jwt.InvalidAlgorithmError:
            raise Refused("algorithm", f"the token's algorithm does not fit the key it names; this endpoint "
                                       f"accepts {', '.join(s.algorithms)}") from None
        except jwt.PyJWTError:
            raise Refused("malformed", "the bearer token is not a well-formed JWT (a claim or its encoding is "
                                       "broken)") from None

    def _signing_key(self, header: Mapping[str, Any]) -> Any:
        """The issuer's key the token's ``kid`` names, from the (cached) JWKS."""
        assert self._jwks is not None
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise Refused("key", "the token names no key (kid in its header); with serve.oauth.jwks_url it must "
                                 "say which of the issuer's keys signed it")
        try:
            return self._jwks.get_signing_key(kid)
        except jwt.PyJWKClientConnectionError as e:
            log.warning("the JWKS at %s could not be fetched: %s", self.settings.jwks_url, e)
            raise KeysUnavailable(f"the issuer's signing keys could not be fetched from {self.settings.jwks_url}; "
                                  "try again later") from None
        except (jwt.PyJWKClientError, jwt.PyJWKSetError, jwt.PyJWKError) as e:
            if "Unable to find a signing key" in str(e):
                raise Refused("key", f"the token's key '{_quoted(kid)}' is not among the issuer's keys at "
                                     f"{self.settings.jwks_url}") from None
            log.warning("the JWKS at %s is not usable: %s", self.settings.jwks_url, e)
            raise KeysUnavailable(f"the issuer's signing keys at {self.settings.jwks_url} are not usable; "
                                  "try again later") from None


class Either:
    """Static tokens, another authenticator (JWTs), or both, either accepted. A token that matches
    is accepted before the other is asked, so a JWT check never delays Entra's Secret Token; a
    credential shaped like a JWT (three parts) that no token matches gets the other's reason, any
    other credential the tokens' reason."""

    def __init__(self, tokens: StaticTokens | None, other: Authenticator | None) -> None:
        if tokens is None and other is None:
            raise ValueError("the SCIM endpoint needs a bearer token or OAuth: it never runs without authentication")
        self.tokens = tokens
        self.other = other

    def check(self, credential: str) -> None:
        if self.tokens is not None and self.tokens.matches(credential):
            return
        if self.other is not None and (self.tokens is None or credential.count(".") == 2):
            self.other.check(credential)
            return
        raise Refused("token", "the bearer token is not valid")


def from_settings(settings: Mapping[str, Any], token: str | Sequence[str] | None = None) -> Either:
    """The authenticator of the manifest's ``serve`` block (interpolated): ``token`` (or the
    ``token`` argument, from ``--token-env``, which takes its place) and ``oauth``.

    Raises:
        ValueError: neither is configured, or ``oauth`` cannot work; the message names the setting.
    """
    if token is None:
        token = settings.get("token")
    tokens = [token] if isinstance(token, str) else list(token or [])
    for t in tokens:
        secrets.register(t)
    oauth = settings.get("oauth")
    validator = None
    if oauth:
        key = oauth.get("key")
        if key is not None and not str(key).lstrip().startswith("-----BEGIN"):
            secrets.register(str(key))  # a shared secret (a PEM public key is no secret)
        audience = oauth.get("audience")
        validator = JwtValidator(OAuthSettings(
            issuer=str(oauth.get("issuer") or ""),
            audience=tuple([audience] if isinstance(audience, str) else audience or ()),
            algorithms=tuple(oauth.get("algorithms") or ("RS256",)),
            key=None if key is None else str(key), jwks_url=oauth.get("jwks_url"),
            leeway=float(oauth.get("leeway", DEFAULT_LEEWAY))))
    if not tokens and validator is None:
        raise ValueError('the endpoint needs a bearer token or OAuth: set serve.token (e.g. '
                         '"${env:SCIM_ENDPOINT_TOKEN}") or serve.oauth in the manifest, or give --token-env NAME')
    return Either(StaticTokens(tokens) if tokens else None, validator)


# ---- helpers ----------------------------------------------------------------------------------------------


def _load_key(text: str, algorithms: Sequence[str]) -> Any:
    """The verification key for ``algorithms``: a shared secret as it is, a PEM public key or
    certificate loaded; refused when it does not suit every algorithm (no RS256 key as an HS256
    secret, no private key where the public one belongs)."""
    pem = text.lstrip().startswith("-----BEGIN")
    shared = [a for a in algorithms if a.startswith("HS")]
    if shared and len(shared) < len(algorithms):
        raise ValueError("serve.oauth.algorithms: a shared secret (HS*) and a public key algorithm cannot share "
                         "one key; name algorithms of one kind")
    if shared:
        if pem:
            raise ValueError(f"serve.oauth.key: {shared[0]} needs a shared secret, but the key is a PEM key")
        short = [a for a in shared if len(text.encode()) < _HMAC_MINIMUM[a]]
        if short:
            raise ValueError(f"serve.oauth.key: a shared secret for {short[-1]} has at least "
                             f"{_HMAC_MINIMUM[short[-1]]} bytes (RFC 7518 §3.2)")
        return text
    if not pem:
        raise ValueError(f"serve.oauth.key: {algorithms[0]} needs a PEM public key or certificate "
                         "(-----BEGIN PUBLIC KEY-----), not a shared secret")
    if "PRIVATE KEY-----" in text:
        raise ValueError("serve.oauth.key is a private key: give the issuer's public key (or certificate)")
    key: Any = text
    if "-----BEGIN CERTIFICATE-----" in text:
        try:
            key = x509.load_pem_x509_certificate(text.encode()).public_key()
        except ValueError:
            raise ValueError("serve.oauth.key: the PEM certificate cannot be read") from None
    for name in algorithms:
        try:
            jwt.get_algorithm_by_name(name).prepare_key(key)
        except (jwt.InvalidKeyError, ValueError, TypeError):
            raise ValueError(f"serve.oauth.key: the PEM key is not a public key for {name}") from None
    return key


def _check_jwks_url(url: str) -> None:
    """HTTPS, or plain HTTP to this machine only: keys fetched in clear from elsewhere could be forged."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and (parts.hostname == "localhost" or _loopback(parts.hostname or "")):
        return
    raise ValueError(f"serve.oauth.jwks_url: {url} is not an https:// URL (plain http only to localhost)")


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _unverified(credential: str) -> dict[str, Any]:
    try:
        return jwt.decode(credential, options={"verify_signature": False})
    except jwt.PyJWTError:
        return {}


def _quoted(value: Any) -> str:
    text = str(value)
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "..."


def _claim(credential: str, name: str) -> str:
    """A claim of a token whose signature already verified, quoted for a message (cut when long)."""
    value = _unverified(credential).get(name)
    if value is None:
        return f"(no {name})"
    if isinstance(value, list):
        return ", ".join(f"'{_quoted(v)}'" for v in value[:5])
    return f"'{_quoted(value)}'"


def _when(credential: str, name: str) -> str:
    value = _unverified(credential).get(name)
    try:
        return datetime.fromtimestamp(int(value), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError, OSError):
        return "(unreadable)"
