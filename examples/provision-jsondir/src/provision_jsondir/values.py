"""Attribute values: the normalizations the connector applies when it stores them, and updates.

The connector behaves like a system that normalizes what it stores (a directory that lower-cases
mail addresses, a phone field that keeps digits): every normalization it declares in its
capabilities is applied to string values on the way in. The engine compares values through the
same normalizations, so a stored ``jsmith@example.org`` for a sent ``JSmith@Example.org`` is no
difference to re-send.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from provision_jsondir.names import canonical_dn


def _remove_diacritics(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return unicodedata.normalize("NFC", "".join(c for c in decomposed if not unicodedata.combining(c)))


def _phone_digits(text: str) -> str:
    digits = re.sub(r"\D", "", text)
    return "+" + digits if text.strip().startswith("+") else digits


NORMALIZERS: dict[str, Callable[[str], str]] = {
    "case_insensitive": str.lower,
    "remove_diacritics": _remove_diacritics,
    "trim": str.strip,
    "collapse_spaces": lambda text: re.sub(r"\s+", " ", text),
    "dn": canonical_dn,
    "phone_digits": _phone_digits,
}

Normalizations = Mapping[str, Sequence[str]]


def normalize(attribute: str, value: Any, normalizations: Normalizations) -> Any:
    """``value`` as stored: the attribute's normalizations (and those of ``"*"``) applied in order."""
    steps = [*normalizations.get("*", ()), *normalizations.get(attribute, ())]
    if not steps:
        return value
    if isinstance(value, list):
        return [normalize(attribute, v, normalizations) for v in value]
    if isinstance(value, str):
        for step in steps:
            value = NORMALIZERS[step](value)
    return value


def set_attributes(stored: dict[str, Any], changes: Mapping[str, Any], normalizations: Normalizations) -> None:
    """Replace each attribute in ``changes`` (a multi-valued one whole); None removes it."""
    for attribute, value in changes.items():
        if value is None:
            stored.pop(attribute, None)
        else:
            stored[attribute] = normalize(attribute, _plain(value), normalizations)


def add_values(stored: dict[str, Any], additions: Mapping[str, Sequence[Any]], normalizations: Normalizations) -> None:
    """Add values to multi-valued attributes; values already there are not repeated."""
    for attribute, values in additions.items():
        current = _as_list(stored.get(attribute))
        for value in normalize(attribute, [_plain(v) for v in values], normalizations):
            if value not in current:
                current.append(value)
        stored[attribute] = current


def remove_values(stored: dict[str, Any], removals: Mapping[str, Sequence[Any]], normalizations: Normalizations) -> None:
    """Remove values from multi-valued attributes; an attribute left empty stays as ``[]``."""
    for attribute, values in removals.items():
        if attribute not in stored:
            continue
        gone = normalize(attribute, [_plain(v) for v in values], normalizations)
        stored[attribute] = [v for v in _as_list(stored[attribute]) if v not in gone]


def matches(stored: Mapping[str, Any], wanted: Mapping[str, Any], normalizations: Normalizations) -> bool:
    """Whether an object's stored attributes equal ``wanted``, both sides compared through the
    normalizations (a value stored before a normalization was configured still matches).

    The way directory and SCIM filters compare: a single value looked for in a multi-valued
    attribute matches when it is one of its values; a list matches the same values in any order;
    None matches an attribute that is absent or empty.
    """
    for attribute, value in wanted.items():
        have = normalize(attribute, _plain(stored.get(attribute)), normalizations)
        want = normalize(attribute, _plain(value), normalizations)
        if not _equal(have, want):
            return False
    return True


def _equal(have: Any, want: Any) -> bool:
    if want is None or want == []:
        return have is None or have == []
    if isinstance(want, list):
        return isinstance(have, list) and sorted(map(_text, have)) == sorted(map(_text, want))
    if isinstance(have, list):
        return any(_text(v) == _text(want) for v in have)
    return _text(have) == _text(want)


def _text(value: Any) -> str:
    """A value as JSON: 1, True and "1" stay different, as they are in the object file."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _plain(value: Any) -> Any:
    """JSON-friendly data: tuples and sets become lists."""
    if isinstance(value, tuple | set | frozenset):
        items = [_plain(v) for v in value]
        return sorted(items, key=str) if isinstance(value, set | frozenset) else items
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value
