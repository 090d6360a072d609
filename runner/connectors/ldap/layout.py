"""How the connector's configuration lays objects out in the directory, and how values cross over.

A :class:`Layout` knows the partitions (base DNs), whether object names are full DNs or relative
to their partition, and per object type (an object class name) which classes an entry gets, how
it is found, how it is disabled and which placeholder keeps an empty group valid. It converts
values both ways: engine values (str, int, bool, lists) to LDAP strings, and LDAP values back to
what the engine compares (a scalar for a single value unless the attribute is listed as
multi-valued; lists otherwise), so a mapping of ``mail: x`` does not see ``[x]`` as a change.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from runner.connectors.base import ObjectError
from runner.connectors.ldap import dn as dns
from runner.connectors.ldap.schema import Schema

UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
# attributes read as lists even when they hold one value (the rest: a list only when they hold several)
DEFAULT_MULTI = ("member", "uniqueMember", "memberUid", "memberOf", "objectClass", "seeAlso")
# never returned in records: structure, passwords, operational bookkeeping
HIDDEN = {"objectclass", "userpassword", "entryuuid", "entrycsn", "modifytimestamp", "createtimestamp",
          "structuralobjectclass", "creatorsname", "modifiersname", "entrydn", "subschemasubentry",
          "hassubordinates", "memberof", "contextcsn"}
GROUP_ATTRIBUTES = {"groupofnames": "member", "groupofuniquenames": "uniqueMember"}


@dataclass(frozen=True)
class ObjectView:
    """One object type of the configuration (``objects.<objectClass>``)."""

    name: str
    classes: tuple[str, ...]  # objectClass values written on add
    filter: str  # what a read matches
    auxiliary: tuple[str, ...] = ()
    multi_valued: frozenset[str] = frozenset()
    disable_container: str | None = None  # a disable moves the entry below this (relative to the partition)
    placeholder_attribute: str | None = None  # member of a groupOfNames
    placeholder: str | None = None  # the DN that keeps an empty group valid


@dataclass
class Layout:
    partitions: list[str]
    relative_names: bool
    objects: dict[str, ObjectView]
    schema: Schema = field(default_factory=Schema)

    # ---- partitions and names ------------------------------------------------------------------

    def view(self, object: str) -> ObjectView:
        found = self.objects.get(object) or next((v for k, v in self.objects.items() if k.lower() == object.lower()),
                                                 None)
        if found is None:
            raise ObjectError(f"object {object!r} is not served; configured: {', '.join(self.objects)}")
        return found

    def __post_init__(self) -> None:
        # normalized once: every operation asks which partition its DN lies in (PERF: per-op Python)
        self._folded = {dns.normalize_dn(b): b for b in self.partitions}
        self._longest_first = sorted(self._folded.items(), key=lambda kv: len(kv[0]), reverse=True)

    def partition(self, partition: str | None, name: str | None = None) -> str:
        """The base DN for an operation: the given partition, or the one a full DN lies under."""
        if partition is not None:
            found = self._folded.get(partition) or self._folded.get(dns.normalize_dn(partition))
            if found is None:
                raise ObjectError(f"unknown partition {partition!r}; this connector serves "
                                  f"{', '.join(self.partitions)}")
            return found
        if name:
            folded = dns.normalize_dn(name)
            for root, base in self._longest_first:
                if folded == root or folded.endswith("," + root):
                    return base
        return self.partitions[0]

    def locate(self, name: str, partition: str | None) -> tuple[str, str]:
        """(base DN, full DN) of an object name, normalizing the name once."""
        folded = dns.normalize_dn(name)
        if partition is not None:
            base = self.partition(partition)
            root = dns.normalize_dn(base)
            return base, name if folded == root or folded.endswith("," + root) else f"{name},{base}"
        for root, base in self._longest_first:
            if folded == root or folded.endswith("," + root):
                return base, name
        base = self.partitions[0]
        return base, f"{name},{base}"

    def bases(self, partition: str | None) -> list[str]:
        return [self.partition(partition)] if partition is not None else list(self.partitions)

    def dn(self, name: str, base: str) -> str:
        return dns.join(name, base)

    def name_of(self, dn: str, base: str) -> str:
        return dns.relative_to(dn, base) if self.relative_names else dn

    # ---- values ----------------------------------------------------------------------------------

    def is_dn(self, attribute: str) -> bool:
        found = self.schema.attribute(attribute)
        return found is not None and found.type == "dn"

    def to_ldap(self, attribute: str, value: Any, base: str) -> list[str]:
        """An engine value as the LDAP values to write (None and [] are no values)."""
        if value is None:
            return []
        values = value if isinstance(value, list | tuple) else [value]
        out = []
        for v in values:
            if v is None or v == "":
                continue
            text = ("TRUE" if v else "FALSE") if isinstance(v, bool) else str(v)
            if self.relative_names and self.is_dn(attribute) and not any(dns.is_under(text, b)
                                                                         for b in self.partitions):
                text = dns.join(text, base)
            out.append(text)
        return out

    def entry_attributes(self, view: ObjectView, raw: Mapping[str, Sequence[Any]], base: str) -> dict[str, Any]:
        """LDAP attributes (as ldap3 returns them without a schema: lists) as a record's attributes."""
        out: dict[str, Any] = {}
        for name, values in raw.items():
            if name.lower() in HIDDEN or ";" in name:
                continue
            attribute = self.schema.attribute(name)
            canonical = attribute.name if attribute else name
            if not isinstance(values, list | tuple):
                values = [values]
            decoded = [_text(v) for v in values]
            if view.placeholder and canonical.lower() == (view.placeholder_attribute or "").lower():
                placeholder = dns.normalize_dn(view.placeholder)
                decoded = [v for v in decoded if dns.normalize_dn(v) != placeholder]
            if self.relative_names and attribute is not None and attribute.type == "dn":
                decoded = [self.name_of(v, base) if dns.is_under(v, base) else v for v in decoded]
            if attribute is not None and attribute.type == "integer":
                decoded = [int(v) if re.fullmatch(r"-?\d+", v) else v for v in decoded]
            elif attribute is not None and attribute.type == "boolean":
                decoded = [{"TRUE": True, "FALSE": False}.get(v, v) for v in decoded]
            if canonical in view.multi_valued or canonical.lower() in {m.lower() for m in view.multi_valued}:
                out[canonical] = decoded
            elif not decoded:
                continue
            elif len(decoded) == 1 or (attribute is not None and attribute.single):
                out[canonical] = decoded[0]
            else:
                out[canonical] = decoded
        return out


def _text(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return base64.b64encode(bytes(value)).decode("ascii")
    if hasattr(value, "isoformat"):
        return value.strftime("%Y%m%d%H%M%SZ")
    return value if isinstance(value, str | int) else str(value)


def escape_filter(value: str) -> str:
    """RFC 4515 §3: escape a value for a search filter."""
    out = []
    for ch in value:
        if ch in "*()\\\0":
            out.append(f"\\{ord(ch):02x}")
        else:
            out.append(ch)
    return "".join(out)


def equality_filter(values: Mapping[str, Any], layout: Layout, base: str) -> str:
    parts = []
    for attribute, value in values.items():
        ldap_values = layout.to_ldap(attribute, value, base)
        found = layout.schema.attribute(attribute)
        if found is not None and "collapse_spaces" in found.normalizations:
            # RFC 4518 §2.6.1 insignificant spaces; slapd does not fold tabs, so send them folded
            ldap_values = [" ".join(v.split()) for v in ldap_values]
        if not ldap_values:
            parts.append(f"(!({attribute}=*))")
        parts.extend(f"({attribute}={escape_filter(v)})" for v in ldap_values)
    return "".join(parts)


def any_of(attribute: str, values: Iterable[str]) -> str:
    inner = "".join(f"({attribute}={escape_filter(v)})" for v in values)
    return f"(|{inner})"
