"""LDIF files as a target: a directory's entries to review before an LDAP export runs, or change
records for ``ldapmodify``.

Configuration::

    review:
      type: ldif
      path: out/                      # folder of the files, relative to the manifest
      mode: snapshot                  # or changes: RFC 2849 change records (docs/files.md)
      password_hash: ssha             # how a password in an add or set_password is written
      objects:
        inetOrgPerson: {file: people.ldif}
        groupOfNames: {file: groups.ldif, classes: [top, groupOfNames]}

Names are DNs (``target.name``), so the target is hierarchical: a department move is a rename
(``changetype: modrdn`` in changes mode). An entry's anchor is its DN, or with ``key:`` the value
of that attribute (an ``employeeNumber`` that outlives renames). References are DNs, as the ldap
connector writes them. A snapshot lists entries parents first, then by DN from the root; each
starts with ``objectClass`` (``classes:``, by default the class and its usual superclasses) and
keeps its attributes in the order they were first written. Passwords are never written in clear:
``userPassword`` holds the RFC 2307 hash (``{SSHA}...``) the ldap connector would send.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, BinaryIO

from runner.connectors.base import Capabilities, ConnectionFailed, Record
from runner.connectors.files import rfc2849
from runner.connectors.files.connector import (
    COMMON_PROPERTIES,
    OBJECT_COMMON,
    FileObject,
    FileTarget,
    change_time,
)
from runner.connectors.files.image import Change, Entry, Rules, as_list, attribute, without_nulls
from runner.connectors.ldap.layout import DEFAULT_MULTI
from runner.connectors.ldap.write import HASHES, hash_password, hash_problem
from runner.names import BadDN, escape_rdn_value, normalize_dn, parse_dn

OPERATIONS = frozenset({"add", "update", "rename", "disable", "delete", "set_password"})
# The objectClass values of a new entry when ``classes:`` does not say: the class and its superclasses.
CLASSES = {
    "inetOrgPerson": ["top", "person", "organizationalPerson", "inetOrgPerson"],
    "organizationalPerson": ["top", "person", "organizationalPerson"],
    "person": ["top", "person"],
    "groupOfNames": ["top", "groupOfNames"],
    "groupOfUniqueNames": ["top", "groupOfUniqueNames"],
    "posixGroup": ["top", "posixGroup"],
    "organizationalUnit": ["top", "organizationalUnit"],
}


class LdifRules(Rules):
    """DN-named entries; the anchor is the DN, or the value of ``key``."""

    named = True
    fold = True

    def __init__(self, key: str | None, classes: Sequence[str], password_attribute: str, password_hash: str):
        self.key, self.classes = key, list(classes)
        self.password_attribute, self.password_hash = password_attribute, password_hash

    def anchor_of(self, attributes: Mapping[str, Any], name: str | None) -> str | None:
        if self.key is None:
            return name or None
        values = as_list(attribute(attributes, self.key, True))
        return str(values[0]) if values and values[0] not in (None, "") else None

    def new_attributes(self, op: Any) -> dict[str, Any]:
        """The mapped attributes, with the RDN's values (a directory keeps them in the entry)."""
        attributes = without_nulls(op.attributes)
        for name, value in _rdn(op.name or ""):
            present = as_list(attribute(attributes, name, True))
            if value not in [str(v) for v in present]:
                key = next((k for k in attributes if k.casefold() == name.casefold()), name)
                attributes[key] = [*present, value] if present else value
        return attributes

    def renamed_attributes(self, attributes: Mapping[str, Any], old: str, new: str) -> dict[str, Any]:
        """deleteoldrdn: 1: the old RDN's values leave the entry and the new RDN's come in."""
        out = dict(attributes)
        for name, value in _rdn(old):
            key = next((k for k in out if k.casefold() == name.casefold()), None)
            if key is not None:
                kept = [v for v in as_list(out[key]) if str(v) != value]
                if kept:
                    out[key] = kept if len(kept) > 1 or isinstance(out[key], list) else kept[0]
                else:
                    del out[key]
        for name, value in _rdn(new):
            key = next((k for k in out if k.casefold() == name.casefold()), name)
            present = as_list(out.get(key))
            if value not in [str(v) for v in present]:
                out[key] = [*present, value] if present else value
        return out

    def password_attributes(self, attributes: Mapping[str, Any], password: str) -> dict[str, Any]:
        out = {k: v for k, v in attributes.items() if k.casefold() != self.password_attribute.casefold()}
        out[self.password_attribute] = hash_password(password, self.password_hash)
        return out

    def problem(self, entry: Entry) -> str | None:
        for name, value in entry.attributes.items():
            if not rfc2849.valid_attribute(name):
                return f"{name!r} is not an LDAP attribute name, so LDIF cannot hold it"
            for v in as_list(value):
                if isinstance(v, dict | list) or v is None:
                    return f"attribute {name!r} holds a {type(v).__name__}, which LDIF cannot write"
        return None


def _rdn(dn: str) -> list[tuple[str, str]]:
    try:
        rdns = parse_dn(dn)
    except BadDN:
        return []
    return list(rdns[0]) if rdns else []


def text(value: Any) -> str:
    """A value as LDAP text: booleans as TRUE/FALSE (RFC 4517 §3.3.3), numbers as written."""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    return str(value)


class LdifConnector(FileTarget):
    """LDIF files: a snapshot of the entries (content records) or RFC 2849 change records."""

    type_name = "ldif"
    interface_version = 2
    suffix = ".ldif"
    format_label = "LDIF"
    terminator = b"\n\n"
    key_required = False
    config_schema = {
        "description": "LDIF files (RFC 2849) as a target: the entries an LDAP export would make, or change records for ldapmodify (docs/files.md)",
        "type": "object",
        "additionalProperties": False,
        "required": ["path"],
        "properties": {
            "type": {"const": "ldif"},
            **COMMON_PROPERTIES,
            "password_attribute": {"type": "string", "minLength": 1, "default": "userPassword",
                                   "description": "the attribute a password is written to, hashed"},
            "password_hash": {"enum": [h for h in HASHES if h != "none"], "default": "ssha",
                              "description": "the RFC 2307 scheme passwords are hashed with (never clear text)"},
            "objects": {
                "type": "object",
                "description": "objectClass -> its file (default: <objectClass>.ldif)",
                "additionalProperties": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        **OBJECT_COMMON,
                        "key": {"type": "string", "minLength": 1,
                                "description": "an attribute that identifies each entry across renames (its "
                                               "anchor); default: the DN"},
                        "classes": {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1},
                                    "description": "objectClass values of a new entry (default: the class and "
                                                   "its superclasses)"},
                        "multi_valued": {"type": "array", "items": {"type": "string", "minLength": 1},
                                         "description": "attributes read back as lists even with one value "
                                                        "(member, uniqueMember, memberUid... by default)"},
                    },
                },
            },
        },
    }

    def capabilities(self, object: str | None = None) -> Capabilities:
        key = self._spec(object).get("key") if object else None
        return Capabilities(hierarchical=True, full_export=True, password_in_first_pass=True,
                            operations=OPERATIONS, multi_valued_deltas=True, reference_forms={"*": "name"},
                            correlation=(key,) if key else ())

    def check(self) -> list[tuple[tuple[str | int, ...], str]]:
        problems = super().check()
        message = hash_problem(self.config.get("password_hash", "ssha"))
        if message:
            problems.append((("password_hash",), message))
        return problems

    def rules(self, obj: FileObject) -> LdifRules:
        classes = obj.spec.get("classes") or CLASSES.get(obj.name, ["top", obj.name])
        return LdifRules(obj.key, classes, self.config.get("password_attribute", "userPassword"),
                         self.config.get("password_hash", "ssha"))

    def name_problem(self, object: str, name: str, partition: str | None = None) -> str | None:
        try:
            rdns = parse_dn(name)
        except BadDN as exc:
            return f"{name!r} is not a DN: {exc}"
        if not rdns or any(not value for rdn in rdns for _, value in rdn):
            return f"{name!r} is not a DN with a value in every RDN"
        return None

    def record(self, obj: FileObject, entry: Entry) -> Record:
        """The entry without objectClass and the password hash (neither is a mapped value)."""
        hidden = {"objectclass", self.config.get("password_attribute", "userPassword").casefold()}
        multi = {a.casefold() for a in obj.spec.get("multi_valued", DEFAULT_MULTI)}
        attributes = {}
        for name, value in entry.attributes.items():
            if name.casefold() in hidden:
                continue
            attributes[name] = as_list(value) if name.casefold() in multi else value
        return Record(attributes, anchor=entry.anchor, name=entry.name, location=obj.label)

    # ---- reading a snapshot -------------------------------------------------------------------

    def load_entries(self, obj: FileObject) -> Iterable[tuple[Entry, str]]:
        rules = self.rules(obj)
        multi = {a.casefold() for a in obj.spec.get("multi_valued", DEFAULT_MULTI)}
        try:
            content = obj.path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise ConnectionFailed(f"{obj.label}: not UTF-8 text (byte {exc.start}); fix or remove the file") from None
        try:
            for found in rfc2849.parse(content):
                where = f"{obj.label}:{found.line}"
                if found.changetype is not None:
                    raise ConnectionFailed(f"{where}: a change record (changetype: {found.changetype}) in a snapshot "
                                           "file, which holds entries only; is this the change file of mode: changes?")
                attributes: dict[str, Any] = {}
                for name, values in found.attributes().items():
                    keep = values if len(values) > 1 or name.casefold() in multi or name.casefold() == "objectclass" \
                        else values[0]
                    attributes[name] = keep
                anchor = rules.anchor_of(attributes, found.dn)
                if anchor is None:
                    raise ConnectionFailed(f"{where}: the entry {found.dn!r} has no {obj.key}, the attribute that "
                                           "identifies entries (key); fix or remove it")
                yield Entry(anchor, attributes, found.dn), where
        except rfc2849.LdifError as exc:
            raise ConnectionFailed(f"{obj.label}:{exc.line}: {exc.message}; fix the file (or remove it and run "
                                   "with --reconcile)") from None

    # ---- writing ------------------------------------------------------------------------------

    def render(self, obj: FileObject, entries: Sequence[Entry], handle: BinaryIO) -> None:
        rules = self.rules(obj)
        handle.write(f"{rfc2849.VERSION}\n".encode())  # OpenLDAP reads a lone version line as a record
        for entry in entries:
            lines = [rfc2849.value_line("dn", entry.name or ""), *self._attribute_lines(entry, rules)]
            handle.write(rfc2849.record(lines).encode("utf-8"))

    def _attribute_lines(self, entry: Entry, rules: LdifRules) -> list[str]:
        classes = as_list(attribute(entry.attributes, "objectClass", True)) or rules.classes
        lines = [rfc2849.value_line("objectClass", text(c)) for c in classes]
        for name, value in entry.attributes.items():
            if name.casefold() != "objectclass":
                lines += [rfc2849.value_line(name, text(v)) for v in as_list(value)]
        return lines

    def changes_header(self, obj: FileObject) -> bytes:
        return f"{rfc2849.VERSION}\n".encode()

    def change_records(self, obj: FileObject, changes: Sequence[Change]) -> bytes:
        rules = self.rules(obj)
        return "".join(rfc2849.record(self._change_lines(c, rules)) for c in changes).encode("utf-8")

    def _change_lines(self, change: Change, rules: LdifRules) -> list[str]:
        op, before, after = change.operation, change.before, change.after
        head = [rfc2849.comment(f"{change_time()} {op.kind} key: {op.key}" if op.key else f"{change_time()} {op.kind}")]
        if change.op == "add" and after is not None:
            return [*head, rfc2849.value_line("dn", after.name or ""), "changetype: add",
                    *self._attribute_lines(after, rules)]
        if change.op == "delete" and before is not None:
            return [*head, rfc2849.value_line("dn", before.name or ""), "changetype: delete"]
        if change.op == "rename" and before is not None and after is not None:
            return [*head, rfc2849.value_line("dn", before.name or ""), *modrdn_lines(before.name or "",
                                                                                        after.name or "")]
        assert after is not None
        return [*head, rfc2849.value_line("dn", after.name or ""), "changetype: modify",
                *self._modify_body(change, rules)]

    def _modify_body(self, change: Change, rules: LdifRules) -> list[str]:
        op, after = change.operation, change.after
        assert after is not None
        if op.kind == "set_password":
            value = attribute(after.attributes, rules.password_attribute, True)
            return rfc2849.modify_lines([(rules.password_attribute, [text(value)])], [], [])
        replace = [(name, [text(v) for v in as_list(value)]) for name, value in op.attributes.items()]
        add = [(name, [text(v) for v in values]) for name, values in op.add_values.items() if values]
        delete = [(name, [text(v) for v in values]) for name, values in op.remove_values.items() if values]
        return rfc2849.modify_lines(replace, add, delete)


def modrdn_lines(old: str, new: str) -> list[str]:
    """``changetype: modrdn`` from ``old`` to ``new``: the new RDN, and the new parent when it moves."""
    rdns = parse_dn(new)
    first = "+".join(f"{a}={escape_rdn_value(v)}" for a, v in rdns[0])
    lines = ["changetype: modrdn", rfc2849.value_line("newrdn", first), "deleteoldrdn: 1"]
    old_parent, new_parent = _parent(old), _parent(new)
    if normalize_dn(old_parent) != normalize_dn(new_parent):
        lines.append(rfc2849.value_line("newsuperior", new_parent))
    return lines


def _parent(dn: str) -> str:
    rdns = parse_dn(dn)
    return ",".join("+".join(f"{a}={escape_rdn_value(v)}" for a, v in rdn) for rdn in rdns[1:])
