"""Secret values seen while loading manifests, and the one function that scrubs them from text.

Every path out of the process that may carry text we did not write ourselves (error messages,
logs, the provisioning log, JSON output) goes through :func:`redact`. Values are registered when
the manifest is loaded: everything read through ``${file:...}``, environment variables whose
name or manifest key looks secret (password, secret, token, key, credential), and the password
parts of URLs (user-info and query parameters such as ``?password=``).

Registration only knows what the manifest said. A URL can also reach a message from elsewhere
(a driver's error, a URL built at run time), so :func:`redact` also masks the credentials of
anything in the text that looks like a URL: :func:`mask_url`.
"""

from __future__ import annotations

import json
import re
import threading
from urllib.parse import unquote

MASK = "***"
_SECRET_WORDS = re.compile(r"pass|pwd|secret|token|credential|key|cert|auth", re.IGNORECASE)
_lock = threading.Lock()
# Never registered from a URL (``?token=true``): masking every "true" would break JSON output.
_KEYWORDS = frozenset({"true", "false", "null", "none", "yes", "no", "on", "off"})
_values: set[str] = set()

# scheme://user:PASSWORD@host. The password runs to the first "@" (as SQLAlchemy reads it, so
# "u:pa/ss@h" hides "pa/ss"), then on through further "@"s that come before the host's "/?#" (as
# urllib reads "u:p@ss@h"). Whitespace ends a URL in free text.
_USERINFO = re.compile(
    r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/?#@]*:)"
    r"(?P<password>[^\s@]*(?:@[^\s@/?#]*(?=@))*)@")
# "host:8080/path?e=a@b" is a port and a path, not "user:password@": digits then "/", "?" or "#".
_PORT_THEN_PATH = re.compile(r"\d*[/?#]")
# ?password=... &token=... ;PWD=... (ODBC strings use ";"). A name counts when it contains one of
# the words, so client_secret and refresh_token are masked too. The value stops at the next
# parameter, at whitespace, or at a quote, so masking a URL inside JSON or a quoted message
# leaves the quoting intact (registered values catch a password that itself contains a quote).
_QUERY_SECRET = re.compile(
    r"(?P<head>[?&;][^\s=&;#?\"']*(?:password|passwd|pwd|token|secret|api_key|apikey|access_token)"
    r"[^\s=&;#?\"']*=)(?P<value>[^\s&;#\"']*)", re.IGNORECASE)
# The same inside a percent-encoded value, as SQLAlchemy documents ODBC strings:
# ?odbc_connect=DRIVER%3Dx%3BPWD%3Dsecret (%3B is ";", %26 "&", %3D "=").
_ENCODED_NAME = r"[^\s=&;#?%\"']*"
_QUERY_SECRET_ENCODED = re.compile(
    rf"(?P<head>(?:%26|%3B|=){_ENCODED_NAME}(?:password|passwd|pwd|token|secret|api_key|apikey|access_token)"
    rf"{_ENCODED_NAME}%3D)(?P<value>(?:(?!%26|%3B)[^\s&;#\"'])*)", re.IGNORECASE)


def looks_secret(*names: str) -> bool:
    """True when a variable or key name suggests it holds a secret."""
    return any(_SECRET_WORDS.search(n or "") for n in names)


def register(value: str) -> None:
    """Remember a secret value so it is masked wherever it would be printed or stored."""
    if value and len(value) >= 3:
        with _lock:
            # the value as it may appear: plain, URL-decoded, and escaped by repr() or json.dumps()
            for form in (value, unquote(value), repr(value)[1:-1], json.dumps(value)[1:-1]):
                _values.add(form)


def url_passwords(text: str) -> list[str]:
    """The credentials written in URLs in ``text``: user-info passwords and secret query values."""
    found = [m["password"] for m in _USERINFO.finditer(text) if _is_password(m["password"])]
    for pattern in (_QUERY_SECRET, _QUERY_SECRET_ENCODED):
        found += [m["value"] for m in pattern.finditer(text) if m["value"]]
    return found


def register_url_password(text: str) -> None:
    """Register every password in ``text``'s URLs (``scheme://user:pw@host``, ``?password=pw``).

    Registered, the value is masked even where it appears without its URL around it, e.g. in a
    driver's "password authentication failed" message that quotes it.
    """
    if "://" in text or "=" in text:
        for password in url_passwords(text):
            if password.lower() not in _KEYWORDS:
                register(password)


def mask_url(url: str) -> str:
    """``url`` (or any text holding URLs) with user-info passwords and secret query values as ``***``.

    ``render_as_string(hide_password=True)`` hides only the user-info password; a password
    passed as ``?password=`` (libpq, MySQL drivers and ODBC all accept one) would be shown.
    """
    if "://" in url:
        url = _USERINFO.sub(_mask_userinfo, url)
    if "=" in url:
        url = _QUERY_SECRET.sub(_mask_value, url)
    if "%3" in url:
        url = _QUERY_SECRET_ENCODED.sub(_mask_value, url)
    return url


def _is_password(candidate: str) -> bool:
    """False for what only looks like a password: a port and a path (``host:8080/x?e=a@b``)."""
    return bool(candidate) and not _PORT_THEN_PATH.match(candidate)


def _mask_value(match: re.Match[str]) -> str:
    """``name=***``; a bracket, colon or full stop the text put after the URL stays outside the mask.

    "(state: ...?password=pw)" must keep its ")", "connect to ...?password=pw: refused" its ":".
    A password ending in such a character shows that one character, all it can give away.
    """
    value = match["value"]
    if not value:
        return match[0]
    kept = len(value) - len(value.rstrip(").,:>]"))
    tail = value[len(value) - kept:] if kept and "(" not in value else ""
    return match["head"] + MASK + tail


def _mask_userinfo(match: re.Match[str]) -> str:
    if not _is_password(match["password"]):
        return match[0]
    return f"{match['head']}{MASK}@"


def redact(text: str) -> str:
    """``text`` with every registered secret, and every URL's credentials, replaced by ``***``."""
    if not text:
        return text
    if _values:
        for value in sorted(_values, key=len, reverse=True):
            if value in text:
                text = text.replace(value, MASK)
    return mask_url(text)
