"""Distinguished names as the LDAP connector handles them: full DNs, names relative to a partition.

Parsing, escaping and the comparable form are RFC 4514's and live in :mod:`runner.names`
(the engine compares names with the same functions); this module only adds what a directory
client needs on top: a DN's parent and leading RDN, whether a DN lies under a base, and turning
an object's name (full, or relative to its partition's base DN) into the DN to send.
"""

from __future__ import annotations

import re

from runner.names import BadDN, escape_rdn_value, normalize_dn, parse_dn, template_fields

__all__ = ["BadDN", "escape_rdn_value", "normalize_dn", "parse_dn", "split", "parent", "is_under", "join",
           "relative_to", "rdn_values", "build_rdn", "shape_problem", "last_type",
           "fixed_suffix", "depth"]

# RFC 4514 §3 attributeType: a descr or a numericoid (RFC 4512 §1.4). A whole ``{field}`` is
# accepted too: ``provision validate`` checks a DN template as it is written, and the engine
# fills a placeholder in that place with an escaped value, which the directory judges.
_TYPE = r"[A-Za-z][A-Za-z0-9-]*|[0-9]+(?:\.[0-9]+)*|\{[A-Za-z_][A-Za-z0-9_.-]*\}"
_ATTRIBUTE_TYPE = re.compile(_TYPE)
# a DN without escapes whose every RDN is type=value with a value: what compute renders almost always
_AVA = rf" *(?:{_TYPE}) *=(?: *[^,;+\\ ])+ *"  # one way to match: linear time
_PLAIN_DN = re.compile(rf"{_AVA}(?:\+{_AVA})*(?:[,;]{_AVA}(?:\+{_AVA})*)*")


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


_RDN_SEPARATOR = re.compile("[,;]")


def _pieces(text: str, separators: str) -> list[str]:
    """``text`` cut at every unescaped separator (``,;``, ``+`` or ``=``), empty pieces kept
    (RFC 4514 §3: a backslash escapes the next character)."""
    if "\\" not in text:
        return _RDN_SEPARATOR.split(text) if separators == ",;" else text.split(separators)
    parts, start, i = [], 0, 0
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] in separators:
            parts.append(text[start:i])
            start = i + 1
        i += 1
    parts.append(text[start:])
    return parts


def shape_problem(dn: str) -> str | None:
    """Why ``dn`` cannot name an entry, as the end of a sentence starting with the DN, or None.

    :func:`parse_dn` is lenient on purpose (names are compared with it, whatever they hold): it
    reads ``jsmith,ou=people`` as one RDN of type ``jsmith,ou``. A name about to be written is
    checked RDN by RDN as written instead, so a template value that lost its ``attr=``, or that
    rendered empty, is refused before the directory is asked to create something else. Runs
    for every object compute maps, so the plain case is a few splits."""
    if _PLAIN_DN.fullmatch(dn):
        return None
    if not dn.strip():
        return "is empty"
    for rdn in _pieces(dn, ",;"):
        for ava in _pieces(rdn, "+") if "+" in rdn else (rdn,):
            problem = _ava_problem(ava, rdn)
            if problem is not None:
                return problem
    if "\\" in dn:
        try:
            parse_dn(dn)
        except BadDN as exc:
            return f"is not a DN: {exc}"
    return None


def _ava_problem(ava: str, rdn: str) -> str | None:
    """What is wrong with one ``attr=value`` of ``rdn``, or None."""
    parts = _pieces(ava, "=")
    if len(parts) == 1 or not _ATTRIBUTE_TYPE.fullmatch(parts[0].strip()):
        if not rdn.strip():
            return "has an empty RDN (a comma at an end, or two in a row)"
        return f"has an RDN without an attribute type, {rdn.strip()!r}: each RDN is attr=value, such as uid=jsmith"
    if not parts[1].strip() and len(parts) == 2:
        return f"has an RDN with an empty value, {rdn.strip()!r}"
    return None


def last_type(dn: str) -> str:
    """The attribute type of the last RDN as written, case-folded (``dc`` for ``...,dc=com``)."""
    return _pieces(dn, ",;")[-1].split("=", 1)[0].strip().casefold()


def fixed_suffix(template: str) -> tuple[str, int]:
    """(the literal RDNs after the last RDN holding a ``{field}``, how many RDNs come before them)
    of a name template: ``uid={uid},ou=people,dc={o},dc=org`` -> (``dc=org``, 3). Only the fixed
    suffix is known before values are; the RDNs before it can still reach any depth of it."""
    rdns = _pieces(template, ",;")
    last = max((i for i, rdn in enumerate(rdns) if template_fields(rdn)), default=-1)
    return ",".join(rdns[last + 1:]).strip(), last + 1


def depth(dn: str) -> int:
    """The number of RDNs of a DN (0 for the empty DN)."""
    return len(_pieces(dn, ",;")) if dn.strip() else 0
