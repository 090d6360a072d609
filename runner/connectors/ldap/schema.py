"""The directory's subschema (RFC 4512 §4.2): object classes, attributes, and how values compare.

ldap3 parses the subschema entry the server publishes; this module turns it into what the engine
asks about: every attribute an object class allows (its superclasses and configured auxiliary
classes included), whether it is single-valued, its syntax, and the normalizations its equality
matching rule implies (``caseIgnoreMatch`` → case-insensitive and insignificant spaces, RFC 4518),
so a directory that stores ``JSmith`` is not updated to ``jsmith`` on every run.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from runner.connectors.base import AttributeInfo, ObjectInfo

# equality matching rule -> the engine's normalizations (RFC 4517 §4.2, RFC 4518 §2.6.1)
MATCHING_RULES: dict[str, tuple[str, ...]] = {
    "caseignorematch": ("case_insensitive", "trim", "collapse_spaces"),
    "caseignoreia5match": ("case_insensitive", "trim", "collapse_spaces"),
    "caseignorelistmatch": ("case_insensitive", "trim", "collapse_spaces"),
    "caseexactmatch": ("trim", "collapse_spaces"),
    "caseexactia5match": ("trim", "collapse_spaces"),
    "distinguishednamematch": ("dn",),
    "uniquemembermatch": ("dn",),
}

# syntax OID -> the engine's value type (RFC 4517 §3.3)
SYNTAX_TYPES = {
    "1.3.6.1.4.1.1466.115.121.1.27": "integer",
    "1.3.6.1.4.1.1466.115.121.1.7": "boolean",
    "1.3.6.1.4.1.1466.115.121.1.12": "dn",
    "1.3.6.1.4.1.1466.115.121.1.34": "dn",  # name and optional UID
    "1.3.6.1.4.1.1466.115.121.1.24": "datetime",
    "1.3.6.1.4.1.1466.115.121.1.40": "binary",
    "1.3.6.1.4.1.1466.115.121.1.5": "binary",
    "1.3.6.1.4.1.1466.115.121.1.28": "binary",
    "1.3.6.1.4.1.1466.115.121.1.8": "binary",
}
SYNTAX_NAMES = {
    "1.3.6.1.4.1.1466.115.121.1.15": "Directory String", "1.3.6.1.4.1.1466.115.121.1.26": "IA5 String",
    "1.3.6.1.4.1.1466.115.121.1.27": "Integer", "1.3.6.1.4.1.1466.115.121.1.7": "Boolean",
    "1.3.6.1.4.1.1466.115.121.1.12": "DN", "1.3.6.1.4.1.1466.115.121.1.34": "Name and Optional UID",
    "1.3.6.1.4.1.1466.115.121.1.24": "Generalized Time", "1.3.6.1.4.1.1466.115.121.1.40": "Octet String",
    "1.3.6.1.4.1.1466.115.121.1.50": "Telephone Number", "1.3.6.1.4.1.1466.115.121.1.44": "Printable String",
    "1.3.6.1.4.1.1466.115.121.1.36": "Numeric String", "1.3.6.1.4.1.1466.115.121.1.38": "OID",
    "1.3.6.1.4.1.1466.115.121.1.28": "JPEG", "1.3.6.1.4.1.1466.115.121.1.5": "Binary",
    "1.3.6.1.4.1.1466.115.121.1.41": "Postal Address", "1.3.6.1.4.1.1466.115.121.1.4": "Audio",
    "1.3.6.1.4.1.1466.115.121.1.23": "Fax", "1.3.6.1.4.1.1466.115.121.1.6": "Bit String",
    "1.3.6.1.4.1.1466.115.121.1.8": "Certificate", "1.3.6.1.4.1.1466.115.121.1.22": "Facsimile Telephone Number",
    "1.3.6.1.4.1.1466.115.121.1.39": "Other Mailbox", "1.3.6.1.4.1.1466.115.121.1.11": "Country String",
    "1.3.6.1.1.16.1": "UUID",
}


@dataclass(frozen=True)
class Attribute:
    name: str  # the schema's first name, the spelling records use
    single: bool
    syntax: str | None
    equality: str | None
    read_only: bool = False
    description: str | None = None
    operational: bool = False

    @property
    def type(self) -> str:
        return SYNTAX_TYPES.get(self.syntax or "", "string")

    @property
    def normalizations(self) -> tuple[str, ...]:
        return MATCHING_RULES.get((self.equality or "").lower(), ())


@dataclass(frozen=True)
class ObjectClass:
    name: str
    kind: str  # STRUCTURAL, AUXILIARY, ABSTRACT
    superiors: tuple[str, ...]
    must: tuple[str, ...]
    may: tuple[str, ...]
    description: str | None = None


@dataclass
class Schema:
    """What the server's subschema says, by lower-case name (every alias of an attribute too)."""

    attributes: dict[str, Attribute] = field(default_factory=dict)
    classes: dict[str, ObjectClass] = field(default_factory=dict)

    def attribute(self, name: str) -> Attribute | None:
        return self.attributes.get(name.lower())

    def canonical(self, name: str) -> str:
        found = self.attribute(name)
        return found.name if found else name

    def lineage(self, object_class: str) -> list[ObjectClass]:
        """The class and its superclasses, most specific first."""
        out: list[ObjectClass] = []
        todo = [object_class]
        while todo:
            found = self.classes.get(todo.pop(0).lower())
            if found is None or found in out:
                continue
            out.append(found)
            todo.extend(found.superiors)
        return out

    def allowed(self, classes: Iterable[str]) -> tuple[list[str], list[str]]:
        """(required, optional) attribute names of an entry with these object classes."""
        must: dict[str, None] = {}
        may: dict[str, None] = {}
        for cls in classes:
            for oc in self.lineage(cls):
                must.update(dict.fromkeys(self.canonical(a) for a in oc.must))
                may.update(dict.fromkeys(self.canonical(a) for a in oc.may))
        return list(must), [a for a in may if a not in must]

    def superclasses(self, object_class: str) -> list[str]:
        """The object class values to write: the class and its non-``top`` superclasses, top last."""
        names = [oc.name for oc in self.lineage(object_class)]
        return [n for n in names if n.lower() != "top"] + (["top"] if names else [])

    def normalizations(self, names: Iterable[str]) -> dict[str, tuple[str, ...]]:
        out: dict[str, tuple[str, ...]] = {}
        for name in names:
            attribute = self.attribute(name)
            if attribute is not None and attribute.normalizations:
                out[attribute.name] = attribute.normalizations
        return out

    def object_info(self, name: str, auxiliary: Sequence[str], partitions: Sequence[str],
                    hidden: Iterable[str] = ()) -> ObjectInfo:
        """The ObjectInfo of an object type: complete when the server knows the class."""
        hide = {h.lower() for h in hidden}
        if name.lower() not in self.classes:
            return ObjectInfo(name, (), tuple(partitions), complete=False,
                              description="the server's schema has no such object class")
        must, may = self.allowed([name, *auxiliary])
        infos = []
        for attr_name in [*must, *may]:
            if attr_name.lower() in hide:
                continue
            attribute = self.attribute(attr_name)
            if attribute is None:
                infos.append(AttributeInfo(attr_name, required=attr_name in must))
                continue
            infos.append(AttributeInfo(attribute.name, attribute.type, not attribute.single, attr_name in must,
                                       SYNTAX_NAMES.get(attribute.syntax or "", attribute.syntax),
                                       attribute.normalizations, attribute.read_only, attribute.description))
        oc = self.classes[name.lower()]
        return ObjectInfo(oc.name, tuple(infos), tuple(partitions), complete=True, description=oc.description)


def _first(value: Any) -> str | None:
    if not value:
        return None
    if isinstance(value, list | tuple):
        return str(value[0]) if value else None
    return str(value)


def from_ldap3(schema: Any) -> Schema:
    """Our view of an ``ldap3`` SchemaInfo (read from the server's subschema entry)."""
    out = Schema()
    for info in schema.attribute_types.values():
        names = list(info.name or [info.oid])
        syntax = info.syntax
        equality = _first(info.equality)
        # attributes inherit syntax and matching rules from their superior type (RFC 4512 §4.1.2)
        sup = _first(info.superior)
        while sup and (syntax is None or equality is None):
            parent = schema.attribute_types.get(sup)
            if parent is None:
                break
            syntax = syntax or parent.syntax
            equality = equality or _first(parent.equality)
            sup = _first(parent.superior)
        attribute = Attribute(names[0], bool(info.single_value), str(syntax).split("{")[0] if syntax else None,
                              equality, bool(info.no_user_modification), _first(info.description),
                              str(info.usage or "USER_APPLICATIONS").upper().replace("_", "")
                              != "USERAPPLICATIONS")
        for alias in [*names, info.oid]:
            out.attributes[str(alias).lower()] = attribute
    for info in schema.object_classes.values():
        names = list(info.name or [info.oid])
        kind = str(info.kind or "STRUCTURAL").upper()
        oc = ObjectClass(names[0], kind, tuple(info.superior or ()), tuple(info.must_contain or ()),
                         tuple(info.may_contain or ()), _first(info.description))
        for alias in [*names, info.oid]:
            out.classes[str(alias).lower()] = oc
    return out
