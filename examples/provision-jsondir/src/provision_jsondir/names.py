"""Object names: DN-style paths relative to a partition, and where they live on disk. Pure functions.

A name is a comma-separated list of RDNs (``type=value``), leaf first, as in an LDAP DN
(RFC 4514 §2)::

    uid=jsmith,ou=people,ou=sales

Its parent is the name without the first RDN (``ou=people,ou=sales``); a name of one RDN sits
at the partition root. A comma, plus, quote, backslash, angle bracket or semicolon inside a value
is escaped with a backslash (RFC 4514 §2.4): ``cn=Smith\\, John,ou=people``. Spaces around the
separators are not part of the name; the connector stores the tidy form (``uid=jsmith,ou=people``).

Two names are the same object when they match the way LDAP's distinguishedNameMatch with
caseIgnoreMatch values does (RFC 4517 §4.2.15, §4.2.11): attribute types and values compare
case-insensitively (Unicode case folding, NFC), so ``UID=JSmith`` and ``uid=jsmith`` collide.

On disk an RDN is one path segment: the object ``uid=jsmith,ou=people`` is the file
``ou=people/uid=jsmith.json`` and its children live in the folder ``ou=people/uid=jsmith/``.
Characters that some file system refuses (``/ \\ : * ? " < > |``, control characters) and ``%``
itself are percent-encoded in the segment, and so is a trailing dot or space (Windows).
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import unquote

#: The canonical form of a name, leaf first: one folded ``type=value`` string per RDN.
Key = tuple[str, ...]

_TYPE = re.compile(r"[A-Za-z][A-Za-z0-9-]*|[0-9]+(\.[0-9]+)*")  # descr or numericoid, RFC 4512 §1.4
_UNSAFE = set('%/\\:*?"<>|')
MAX_SEGMENT_BYTES = 250  # 255 on common file systems, less the ".json" suffix


class InvalidName(ValueError):
    """The text is not a DN-style name this connector can store."""


def parse(name: str) -> tuple[str, ...]:
    """The tidy RDNs of ``name``, leaf first. Raises InvalidName with what is wrong."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidName("an empty name; names look like uid=jsmith,ou=people")
    pieces: list[str] = []
    current: list[str] = []
    escaped = False
    for char in name:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            current.append(char)
            escaped = True
        elif char == ",":
            pieces.append("".join(current))
            current = []
        else:
            current.append(char)
    if escaped:
        raise InvalidName(f"{name!r} ends with a lone backslash")
    pieces.append("".join(current))
    return tuple(_rdn(piece, name) for piece in pieces)


def _rdn(piece: str, name: str) -> str:
    piece = _strip(piece)
    index = _unescaped(piece, "=")
    if index < 0:
        raise InvalidName(f"{name!r}: {piece!r} is not type=value (names look like uid=jsmith,ou=people)")
    kind, value = piece[:index].strip(), piece[index + 1:].lstrip()
    if not _TYPE.fullmatch(kind):
        raise InvalidName(f"{name!r}: {kind!r} is not an attribute type")
    if not value:
        raise InvalidName(f"{name!r}: {kind}= has no value")
    return f"{kind}={value}"


def _strip(piece: str) -> str:
    """Leading spaces and trailing spaces that are not escaped."""
    piece = piece.lstrip()
    while piece.endswith(" ") and not _is_escaped(piece, len(piece) - 1):
        piece = piece[:-1]
    return piece


def _is_escaped(text: str, index: int) -> bool:
    backslashes = 0
    while index - backslashes - 1 >= 0 and text[index - backslashes - 1] == "\\":
        backslashes += 1
    return backslashes % 2 == 1


def _unescaped(text: str, char: str) -> int:
    return next((i for i, c in enumerate(text) if c == char and not _is_escaped(text, i)), -1)


def join(rdns: tuple[str, ...]) -> str:
    """The tidy name of a tuple of RDNs."""
    return ",".join(rdns)


def key(rdns: tuple[str, ...]) -> Key:
    """The canonical form two names are compared by."""
    out = []
    for rdn in rdns:
        kind, _, value = rdn.partition("=")
        out.append(f"{kind.lower()}={unicodedata.normalize('NFC', value).casefold()}")
    return tuple(out)


def is_within(inner: Key, outer: Key) -> bool:
    """``inner`` names ``outer`` itself or something below it."""
    return len(inner) >= len(outer) and inner[len(inner) - len(outer):] == outer


def segment(rdn: str) -> str:
    """The file-name segment of one RDN (reversible with :func:`rdn_of`)."""
    out = []
    for i, char in enumerate(rdn):
        trailing = i == len(rdn) - 1 and char in ". "
        if char in _UNSAFE or ord(char) < 0x20 or ord(char) == 0x7F or trailing:
            out.append("".join(f"%{b:02X}" for b in char.encode("utf-8")))
        else:
            out.append(char)
    text = "".join(out)
    if len(text.encode("utf-8")) > MAX_SEGMENT_BYTES:
        raise InvalidName(f"{rdn[:40]!r}...: an RDN this long does not fit in a file name")
    return text


def rdn_of(segment_text: str) -> str:
    """The RDN a file-name segment stands for."""
    return unquote(segment_text, errors="strict")


def canonical_dn(value: str) -> str:
    """A DN value in the form the ``dn`` normalization stores: tidy, attribute types lower case."""
    try:
        rdns = parse(value)
    except InvalidName:
        return value
    return join(tuple(f"{r.partition('=')[0].lower()}={r.partition('=')[2]}" for r in rdns))


def parse_rdn(text: str) -> str:
    """The tidy form of a single RDN (a decoded file-name segment). Raises InvalidName."""
    rdns = parse(text)
    if len(rdns) != 1:
        raise InvalidName(f"{text!r} is not a single RDN")
    return rdns[0]
