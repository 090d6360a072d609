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

from runner.connectors.base import ObjectError, PermanentError
from runner.connectors.ldap import dn as dns
from runner.connectors.ldap.schema import Schema
from runner.names import template_fields

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
    owner: str = "ldap"  # the connector's name in the manifest, for messages

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
        self._written = [(b.casefold(), b) for b in self.partitions if "\\" not in b]

    def partition(self, partition: str | None, name: str | None = None) -> str:
        """The base DN for an operation: the given partition, or the one a full DN lies under."""
        if partition is not None:
            found = self._served(partition)
            if found is None:
                raise ObjectError(f"unknown partition {partition!r}; this connector serves "
                                  f"{', '.join(self.partitions)}")
            return found
        return (self._home(dns.normalize_dn(name)) if name else None) or self.partitions[0]

    def locate(self, name: str, partition: str | None, *, strict: bool = True) -> tuple[str, str]:
        """(base DN, full DN) of an object name, normalizing the name once.

        With full names, a name outside its partition raises PermanentError when ``strict`` (a
        name about to be written): joined below the partition it would create entries such as
        ``dc=nonexistent,dc=com,dc=example,dc=org``. Compute refuses such names first
        (:meth:`name_problem`); this is the last guard for exports stored before it did.
        ``strict=False`` only guesses where an old name is, to look there."""
        folded = dns.normalize_dn(name)
        if partition is not None:
            base = self.partition(partition)
            root = dns.normalize_dn(base)
            if folded == root or folded.endswith("," + root):
                return base, name
        else:
            for root, base in self._longest_first:
                if folded == root or folded.endswith("," + root):
                    return base, name
            base = self.partitions[0]
        if strict and not self.relative_names:
            raise PermanentError(self._outside(name, partition))
        return base, f"{name},{base}"

    def name_problem(self, name: str, partition: str | None) -> str | None:
        """Why an object cannot be written under ``name`` (in ``partition``), or None: a name
        that is no DN, an RDN without ``attr=`` or with an empty value, a partition this
        connector does not serve, or a DN outside the partitions. Every write below a
        partition would accept such a name, creating the containers it implies.

        A name holding ``{field}`` placeholders is a template (``provision validate`` asks
        about ``target.name`` as written): only its fixed suffix is judged, since values can
        still pick the partition (``dc={company},dc=org``). A rendered value that looks like a
        placeholder gains nothing: the write itself refuses a DN outside its partition."""
        shape = dns.shape_problem(name)
        if shape is not None:
            return f"DN {name!r} {shape}; fix target.name"
        base = self._served(partition) if partition is not None else None
        if partition is not None and base is None:
            return (f"partition {partition!r} is not one of {self._who()}; fix target.partition or add the "
                    "partition to the connector")
        if self._plainly_under(name, base):
            return None
        fixed, free = dns.fixed_suffix(name) if template_fields(name) else (name, 0)
        folded = dns.normalize_dn(fixed) if fixed else ""
        if self._reaches(folded, free, base):
            return None
        home = self._home(folded) if folded else None
        if home is not None and base is not None:
            return (f"DN {name!r} lies in partition {home!r}, but target.partition puts it in {base!r}; make "
                    "target.name and target.partition agree")
        if not self.relative_names:
            return self._outside(name, partition)
        if fixed and dns.last_type(fixed) == "dc":
            return (f"DN {name!r} {self._foreign()}, but names: relative puts it below the partition; write it "
                    "relative to the partition (uid=...,ou=people) or add its naming context as a partition")
        return None

    def container_problem(self, container: str) -> str | None:
        """Why ``container`` (relative to the partition, such as ``disable.move_to``) cannot hold
        entries, or None: joined below the partition, a full DN of another naming context would
        create it there (``ou=disabled,dc=nonexistent,dc=com,dc=example,dc=org``)."""
        shape = dns.shape_problem(container)
        if shape is not None:
            return f"{container!r} {shape}"
        if self._home(dns.normalize_dn(container)) is None and dns.last_type(container) == "dc":
            return (f"{container!r} {self._foreign()}; write it relative to the partition (ou=disabled) or add "
                    "its naming context as a partition")
        return None

    def _foreign(self) -> str:
        return f"ends in a domain component, so it reads as a full DN outside every partition of {self._who()}"

    def _plainly_under(self, name: str, base: str | None) -> bool:
        """The common case without normalizing (compute asks for every object): a name without
        escapes whose text ends in a partition as configured, case aside."""
        if "\\" in name or "{" in name:
            return False
        text = name.casefold()
        return any(text.endswith("," + written) for written, partition in self._written
                   if base is None or partition == base)

    def _reaches(self, folded: str, free: int, base: str | None) -> bool:
        """Whether a name ending in ``folded`` (normalized) after ``free`` more RDNs lies in a
        partition (in ``base`` when given): ``folded`` is below one, or is the end of one that
        ``free`` RDNs can complete (``dc={o}`` + ``dc=org`` reaches ``dc=example,dc=org``)."""
        for root, partition in self._longest_first:
            if base is not None and partition != base:
                continue
            if folded and (folded == root or folded.endswith("," + root)):
                return True
            if free and (not folded or root.endswith("," + folded)) and \
                    dns.depth(root) - dns.depth(folded) <= free:
                return True
        return False

    def _served(self, partition: str) -> str | None:
        """The configured base DN ``partition`` names, or None."""
        return self._folded.get(partition) or self._folded.get(dns.normalize_dn(partition))

    def _home(self, folded: str) -> str | None:
        """The configured partition a full DN (normalized) lies in (the deepest), or None."""
        for root, base in self._longest_first:
            if folded == root or folded.endswith("," + root):
                return base
        return None

    def _who(self) -> str:
        return f"connector {self.owner!r} ({'; '.join(self.partitions)})"

    def _outside(self, name: str, partition: str | None) -> str:
        if partition is not None:
            return (f"DN {name!r} lies outside partition {partition!r} (target.partition) of connector "
                    f"{self.owner!r}; fix target.name or target.partition")
        return f"DN {name!r} lies outside every partition of {self._who()}; fix target.name or add the partition"

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
