"""Object names, below every layer: name templates and RFC 4514 distinguished names.

A name template (``uid={user_name},ou={department},ou=people`` or ``{region}``) names its fields
in braces; :func:`shape` tells, before any value is known, the RDNs of every name it renders.
DNs are parsed, escaped and compared per RFC 4514, the same way wherever a name is compared: the
engine and the state store (normalize_dn), the LDAP connector (which adds what a directory client
needs on top, :mod:`runner.connectors.ldap.dn`) and the manifest checks. Filling a template with
an object's mapped values, and the depth that orders exports, are :mod:`runner.mapping.names`.
"""

from __future__ import annotations

import re

FIELD = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.-]*)\}")  # a {field} of a name template
_SPECIAL = re.compile(r'[,+"\\<>;=]')
_RDN_SEPARATOR = re.compile(r"[,;]")


def template_fields(template: str) -> list[str]:
    return FIELD.findall(template)


def escape_rdn_value(value: str) -> str:
    """RFC 4514 §2.4: escape special characters, and leading/trailing spaces and a leading '#'."""
    if not _SPECIAL.search(value) and not value.startswith((" ", "#")) and not value.endswith(" "):
        return value  # the common case, without the substitution (names are normalised per exported object)
    out = re.sub(r'([,+"\\<>;=])', r"\\\1", value)
    if out.startswith((" ", "#")):
        out = "\\" + out
    if out.endswith(" ") and not out.endswith("\\ "):
        out = out[:-1] + "\\ "
    return out


def shape(template: str) -> str | None:
    """A name with the RDNs of every name ``template`` renders, to check before any value is
    known; None when the values decide them.

    In a DN-style template every value is escaped (see :func:`runner.mapping.names.render`), so
    a value adds no RDN and ends none: the template itself, each ``{field}`` standing for its
    value, has the shape of every rendering. Without ``=`` values go in as they are (``{dn}``), so only a template
    without fields can be judged."""
    if "=" in template or not template_fields(template):
        return template
    return None


class BadDN(ValueError):
    """Text that is not a distinguished name per RFC 4514."""


_HEX = "0123456789abcdefABCDEF"


def parse_dn(dn: str) -> list[list[tuple[str, str]]]:
    """RFC 4514 §3: a DN as RDNs, each a list of (type, value) with escapes undone.

    Handles ``\\,``-style escapes, ``\\XX`` hex pairs (UTF-8 bytes), multi-valued RDNs joined by
    ``+`` and spaces around separators. A ``#`` hex-string value is kept as written."""
    rdns: list[list[tuple[str, str]]] = []
    i, n = 0, len(dn)
    if not dn.strip():
        return rdns
    if "\\" not in dn:
        plain = _parse_unescaped(dn)
        if plain is not None:
            return plain
    rdn: list[tuple[str, str]] = []
    while i <= n:
        eq = dn.find("=", i)
        if eq < 0:
            raise BadDN(f"{dn!r}: an RDN without '=' at position {i}")
        attr = dn[i:eq].strip()
        if not attr:
            raise BadDN(f"{dn!r}: an RDN without an attribute type at position {i}")
        i = eq + 1
        while i < n and dn[i] == " ":
            i += 1
        raw = bytearray()
        trailing = 0  # unescaped spaces at the end of the value (not part of it)
        while i < n and dn[i] not in ",+;":
            c = dn[i]
            if c == "\\":
                pair = dn[i + 1:i + 3]
                if len(pair) == 2 and all(ch in _HEX for ch in pair):
                    raw.append(int(pair, 16))
                    i += 3
                elif i + 1 < n:
                    raw.extend(dn[i + 1].encode())
                    i += 2
                else:
                    raise BadDN(f"{dn!r}: a backslash at the end")
                trailing = 0
                continue
            trailing = trailing + 1 if c == " " else 0
            raw.extend(c.encode())
            i += 1
        value = raw.decode("utf-8", errors="replace")
        if trailing:
            value = value[:-trailing]
        rdn.append((attr, value))
        if i >= n:
            rdns.append(rdn)
            break
        if dn[i] == "+":
            i += 1
            continue
        rdns.append(rdn)
        rdn = []
        i += 1
    return rdns


def _parse_unescaped(dn: str) -> list[list[tuple[str, str]]] | None:
    """parse_dn for a DN without backslashes (most of them), by splitting instead of a character
    loop: the same result, found a few times faster (every recorded export normalises its name).
    None when an RDN lacks a type or an '=', left to the full parser to report."""
    rdns = []
    for part in _RDN_SEPARATOR.split(dn):
        rdn = []
        for ava in part.split("+"):
            attr, eq, value = ava.partition("=")
            attr = attr.strip()
            if not eq or not attr:
                return None
            rdn.append((attr, value.lstrip(" ").rstrip(" ")))
        rdns.append(rdn)
    return rdns


def normalize_dn(dn: str) -> str:
    """The comparable form of a DN: types and values case-folded, escapes in one canonical form,
    the AVAs of a multi-valued RDN in sorted order, no spaces around separators. Text that is
    not a DN is only case-folded."""
    try:
        rdns = parse_dn(dn)
    except BadDN:
        return dn.casefold()
    return ",".join("+".join(sorted(f"{a.casefold()}={escape_rdn_value(v.casefold())}" for a, v in rdn))
                    for rdn in rdns)
