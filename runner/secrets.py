"""Secret values seen while loading manifests, and the one function that scrubs them from text.

Every path out of the process that may carry text we did not write ourselves (error messages,
logs, the provisioning log, JSON output) goes through :func:`redact`. Values are registered when
the manifest is loaded: everything read through ``${file:...}``, environment variables whose
name or manifest key looks secret (password, secret, token, key, credential), and the password
part of URLs.
"""

from __future__ import annotations

import json
import re
import threading
from urllib.parse import unquote, urlsplit

MASK = "***"
_SECRET_WORDS = re.compile(r"pass|pwd|secret|token|credential|key|cert|auth", re.IGNORECASE)
_lock = threading.Lock()
_values: set[str] = set()


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


def register_url_password(text: str) -> None:
    """If ``text`` is a URL with a password (``scheme://user:pw@host``), register the password."""
    try:
        password = urlsplit(text).password
    except ValueError:
        return
    if password:
        register(password)


def redact(text: str) -> str:
    """``text`` with every registered secret replaced by ``***``."""
    if not _values or not text:
        return text
    for value in sorted(_values, key=len, reverse=True):
        if value in text:
            text = text.replace(value, MASK)
    return text
