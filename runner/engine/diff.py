"""Compare what an object should hold with what the target is known to hold.

Comparison goes through the normalizations the target connector declares (a directory that
stores ``JSmith`` for ``jsmith`` is not updated every run). Multi-valued attributes compare as
sets and change by values added and removed. Sensitive values are compared by salted digest and
never stored or queued in clear.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from runner.connectors.base import Capabilities
from runner.mapping.functions import normalize_diacritics
from runner.mapping.mapper import Mapper
from runner.names import normalize_dn
from runner.state.records import Change

SENSITIVE = {"$sensitive": True}  # stands in a pending export for a value re-derived at export time

_NORMALIZERS: dict[str, Callable[[str], str]] = {
    "case_insensitive": str.casefold,
    "remove_diacritics": normalize_diacritics,
    "trim": str.strip,
    "collapse_spaces": lambda s: " ".join(s.split()),
    "phone_digits": lambda s: ("+" if s.strip().startswith("+") else "") + re.sub(r"\D", "", s),
    "dn": normalize_dn,
}


def same_name(a: str, b: str, caps: Capabilities) -> bool:
    """Whether two object names are the same under the target's rules: DNs per RFC 4514 (escapes,
    multi-valued RDNs, case) when it is hierarchical or declares ``dn`` for every attribute."""
    if a == b:
        return True
    if caps.hierarchical or "dn" in caps.normalizations.get("*", ()):
        return normalize_dn(a) == normalize_dn(b) if "=" in a and "=" in b else a.casefold() == b.casefold()
    return False


def comparer(normalizations: Mapping[str, tuple[str, ...]]) -> Callable[[str, Any], Any]:
    """A function giving the comparable form of an attribute's value under the target's rules."""
    if not normalizations:
        return lambda name, value: value

    def key(name: str, value: Any) -> Any:
        steps = tuple(normalizations.get("*", ())) + tuple(normalizations.get(name, ()))
        if not steps:
            return value
        if isinstance(value, list):
            return sorted(key(name, v) for v in value)
        if isinstance(value, str):
            for step in steps:
                value = _NORMALIZERS[step](value)
        return value

    return key


def stored_form(name: str, value: Any, mapper: Mapper, digest: Callable[[Any], str] | None) -> Any:
    """How a value is kept in the state store (digest) or a pending export (marker) if sensitive."""
    if name in mapper.sensitive and value is not None:
        return digest(value) if digest is not None else SENSITIVE
    return value


def stored_forms(values: dict[str, Any], mapper: Mapper, digest: Callable[[Any], str] | None) -> dict[str, Any]:
    """:func:`stored_form` of every value; a plain copy when the mapping has no sensitive
    attribute (it runs for every object an initial cycle computes and records)."""
    if not mapper.sensitive:
        return dict(values)
    return {k: stored_form(k, v, mapper, digest) for k, v in values.items()}


def attribute_changes(desired: dict[str, Any], stored: dict[str, Any], mapper: Mapper,
                      digest: Callable[[Any], str], creating: bool,
                      compare: Callable[[str, Any], Any] = lambda n, v: v) -> Change:
    """The change turning ``stored`` into ``desired`` (without attribute changes when nothing
    differs). Multi-valued attributes change by values added and removed; their old lists are
    never copied into the change."""
    set_: dict[str, Any] = {}
    old: dict[str, Any] = {}
    add: dict[str, list[Any]] = {}
    remove: dict[str, list[Any]] = {}
    for name, value in desired.items():
        if name in mapper.on_create and not creating:
            continue
        before = stored.get(name)
        if value in (None, []) and name not in mapper.clear_on_null:
            continue  # null does not clear unless the mapping says null: clear
        if name in mapper.multi_valued:
            now_keys = {_k(compare(name, v)): v for v in value or []}
            was_keys = {_k(compare(name, v)): v for v in before or []}
            plus = [now_keys[k] for k in sorted(now_keys.keys() - was_keys.keys())]
            minus = [was_keys[k] for k in sorted(was_keys.keys() - now_keys.keys())]
            if plus:
                add[name] = plus
            if minus:
                remove[name] = minus
            continue
        if name in mapper.sensitive:
            if value is not None and digest(value) != before or value is None and before is not None:
                set_[name] = stored_form(name, value, mapper, None)
                old[name] = before
            continue
        if compare(name, value) != compare(name, before):
            set_[name] = value
            old[name] = before
    return Change(set=set_, add=add, remove=remove, old=old)


def _k(value: Any) -> str:
    return f"{type(value).__name__}:{value}"
