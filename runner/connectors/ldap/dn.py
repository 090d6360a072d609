"""Distinguished names as the LDAP connector handles them: full DNs, names relative to a partition.

Parsing, escaping and the comparable form are RFC 4514's and live in :mod:`runner.mapping.names`
(the engine compares names with the same functions); this module only adds what a directory
client needs on top: a DN's parent and leading RDN, whether a DN lies under a base, and turning
an object's name (full, or relative to its partition's base DN) into the DN to send.
"""

from __future__ import annotations

from runner.mapping.names import BadDN, escape_rdn_value, normalize_dn, parse_dn

__all__ = ["BadDN", "escape_rdn_value", "normalize_dn", "parse_dn", "split", "parent", "is_under", "join",
           "relative_to", "rdn_values", "build_rdn"]


def _first_separator(dn: str) -> int:
    """Index of the comma ending the first RDN (RFC 4514 §3: a backslash escapes the next char)."""
    i = 0
    while i < len(dn):
        c = dn[i]
        if c == "\\":
            i += 2
            continue
        if c in ",;":
            return i
        i += 1
    return -1


def split(dn: str) -> tuple[str, str]:
    """(first RDN, the rest) of a DN as written: ``uid=a\\,b,ou=x`` -> (``uid=a\\,b``, ``ou=x``)."""
    at = _first_separator(dn)
    if at < 0:
        return dn.strip(), ""
    return dn[:at].strip(), dn[at + 1:].strip()


def parent(dn: str) -> str:
    return split(dn)[1]


def is_under(dn: str, base: str) -> bool:
    """Whether ``dn`` is ``base`` or below it, compared per RFC 4514 (case, escapes, spaces)."""
    if not base:
        return True
    folded, root = normalize_dn(dn), normalize_dn(base)
    return folded == root or folded.endswith("," + root)


def join(name: str, base: str) -> str:
    """The DN of ``name`` under ``base``: a name already under it is taken as a full DN."""
    if not base or is_under(name, base):
        return name
    return f"{name},{base}" if name else base


def relative_to(dn: str, base: str) -> str:
    """``dn`` without its ``base`` suffix (the RDNs below the base, as written)."""
    if not base or not is_under(dn, base):
        return dn
    depth = len(parse_dn(base))
    rdns: list[str] = []
    rest = dn
    while rest and len(parse_dn(rest)) > depth:
        first, rest = split(rest)
        rdns.append(first)
    return ",".join(rdns)


def rdn_values(dn: str) -> list[tuple[str, str]]:
    """The (attribute, value) pairs of a DN's first RDN, escapes undone."""
    rdns = parse_dn(dn)
    return rdns[0] if rdns else []


def build_rdn(pairs: list[tuple[str, str]]) -> str:
    return "+".join(f"{a}={escape_rdn_value(v)}" for a, v in pairs)
