"""Writing the directory: add, modify by difference, modDN, delete, disable, passwords.

Every operation is safe to apply twice (the replay contract): an add of an entry that exists is
``AlreadyExists`` (the engine adopts it by name); value additions and removals go with the
Permissive Modify control, so adding a present member or removing an absent one succeeds; a
rename to the current DN succeeds; a second delete is ``NotFound``.

An operation finds its entry by the name the engine recorded, guarded by an Assertion control
(RFC 4528) on its entryUUID, so the usual case costs one request; when the entry moved (or the
name was not given) it is found by a search for its entryUUID, and the request is sent again.
An add asks for the new entry's entryUUID with the Post-Read control (RFC 4527): no extra search.
"""

from __future__ import annotations

import base64
import hashlib
import os
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import ldap3

from runner.connectors.base import (
    ConfigurationError,
    NotFound,
    ObjectError,
    Operation,
    PermanentError,
    Result,
)
from runner.connectors.ldap import dn as dns
from runner.connectors.ldap import read, wire
from runner.connectors.ldap.connection import (
    AFFECTS_MULTIPLE_DSAS,
    ALREADY_EXISTS,
    ASSERTION_FAILED,
    NO_SUCH_ATTRIBUTE,
    NO_SUCH_OBJECT,
    NOT_ALLOWED_ON_NON_LEAF,
    OBJECT_CLASS_VIOLATION,
    POST_READ,
    assert_uuid,
    error_for,
    permissive_modify,
    post_read,
)
from runner.connectors.ldap.layout import Layout, ObjectView

CONTAINERS = {"ou": ("organizationalUnit",), "o": ("organization",), "dc": ("domain",), "l": ("locality",),
              "c": ("country",)}
HASHES = ("ssha", "ssha256", "ssha512", "crypt", "none")
POST_READ_UUID = post_read(["entryUUID"])


CRYPT_MISSING = ("password_hash: crypt needs Python's crypt module (crypt(3), SHA-512), which Python 3.13 "
                 "removed: install crypt-r (pip install crypt-r, the same module), or use password_hash: ssha512 "
                 "(OpenLDAP verifies it with the pw-sha2 module)")


def _crypt() -> Any | None:
    """The crypt(3) wrapper: the standard library's up to Python 3.12, else crypt-r's copy of it
    (module ``crypt_r``), else None. Imported only when ``crypt`` is asked for."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # deprecated in 3.11: chosen knowingly
        try:
            import crypt

            return crypt
        except ImportError:
            pass
    try:
        import crypt_r  # type: ignore[import-not-found]

        return crypt_r
    except ImportError:
        return None


def hash_problem(scheme: str) -> str | None:
    """Why ``password_hash: scheme`` cannot work here (None when it can): a configuration message."""
    if scheme != "crypt":
        return None
    module = _crypt()
    if module is None:
        return CRYPT_MISSING
    if getattr(module, "METHOD_SHA512", None) not in getattr(module, "methods", ()):
        return "password_hash: crypt: this system's crypt(3) cannot make SHA-512 ($6$) hashes; use ssha512"
    return None


def hash_password(password: str, scheme: str) -> str:
    """The userPassword value for a password (RFC 2307 style schemes); never the clear text unless
    ``none`` (a server that hashes itself)."""
    secret = password.encode("utf-8")
    if scheme == "none":
        return password
    if scheme == "crypt":
        module = _crypt()
        if module is None:
            raise ConfigurationError(CRYPT_MISSING)
        return "{CRYPT}" + module.crypt(password, module.mksalt(module.METHOD_SHA512))
    salt = os.urandom(8)
    algorithm, label = {"ssha": (hashlib.sha1, "SSHA"), "ssha256": (hashlib.sha256, "SSHA256"),
                        "ssha512": (hashlib.sha512, "SSHA512")}[scheme]
    digest = algorithm(secret + salt).digest()
    return "{" + label + "}" + base64.b64encode(digest + salt).decode("ascii")


@dataclass
class Writer:
    """The write side of one open connector: its layout and options."""

    layout: Layout
    password_attribute: str = "userPassword"
    password_hash: str = "ssha"
    create_parents: bool = True
    remove_empty_parents: bool = False
    delete_subtree: bool = False
    redact: Callable[[str], str] = str

    def __post_init__(self) -> None:
        problem = hash_problem(self.password_hash)  # at open, not at the first add
        if problem:
            raise ConfigurationError(problem)

    # ---- dispatch ------------------------------------------------------------------------------

    def apply(self, conn: ldap3.Connection, op: Operation) -> Result:
        handler = getattr(self, f"op_{op.kind}", None)
        if handler is None:
            return Result.failed(op, ObjectError(f"the ldap connector cannot {op.kind}"))
        try:
            view = self.layout.view(op.object)
            return handler(conn, op, view)
        except (ObjectError, dns.BadDN) as exc:
            error = exc if isinstance(exc, ObjectError) else PermanentError(f"bad DN: {exc}")
            return Result.failed(op, error)

    def _fail(self, op: Operation, conn: ldap3.Connection, what: str) -> Result:
        error = error_for(conn.result, self.redact(what))
        assert error is not None
        return Result.failed(op, error)

    # ---- add ------------------------------------------------------------------------------------

    def op_add(self, conn: ldap3.Connection, op: Operation, view: ObjectView) -> Result:
        if not op.name:
            return Result.failed(op, PermanentError("an LDAP entry needs a name (target.name: a DN template)"))
        base, target = self.layout.locate(op.name, op.partition)
        attributes = self.entry(view, op.attributes, base)
        if op.password:
            attributes[self.password_attribute] = [hash_password(op.password, self.password_hash)]
        for _ in range(3):
            wire.add(conn, target, attributes, [POST_READ_UUID])
            code = conn.result.get("result")
            if code == 0:
                return Result(op.id, True, self._post_read_uuid(conn) or self._uuid_of(conn, target))
            if code == NO_SUCH_OBJECT and self.create_parents:
                if self.make_parents(conn, dns.parent(target), base):
                    continue
                if conn.result.get("result") not in (0, NO_SUCH_OBJECT):  # busy, unavailable... on the way
                    return self._fail(op, conn, f"add of {target}: creating its parent {dns.parent(target)}")
            if code == NO_SUCH_OBJECT:
                return Result.failed(op, ObjectError(f"cannot add {target}: its parent {dns.parent(target)} does not "
                                                     "exist (create_parents: true creates missing containers)"))
            if code == ALREADY_EXISTS:
                return self._fail(op, conn, f"add of {target}: an entry with this DN exists")
            return self._fail(op, conn, f"add of {target}")
        return self._fail(op, conn, f"add of {target}")

    def entry(self, view: ObjectView, attributes: Mapping[str, Any], base: str) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {"objectClass": list(dict.fromkeys([*view.classes, *view.auxiliary]))}
        for name, value in attributes.items():
            values = self.layout.to_ldap(name, value, base)
            if values:
                out[name] = values
        if view.placeholder_attribute and view.placeholder:
            key = next((k for k in out if k.lower() == view.placeholder_attribute.lower()), None)
            if key is None:
                out[view.placeholder_attribute] = [view.placeholder]
        return out

    @staticmethod
    def _post_read_uuid(conn: ldap3.Connection) -> str | None:
        control = (conn.result.get("controls") or {}).get(POST_READ)
        if not control:
            return None
        return read._one(control["value"]["result"].get("entryUUID"))

    @staticmethod
    def _uuid_of(conn: ldap3.Connection, target: str) -> str | None:
        conn.search(target, "(objectClass=*)", ldap3.BASE, attributes=["entryUUID"])
        return read._one(conn.response[0]["attributes"].get("entryUUID")) if conn.response else None

    def make_parents(self, conn: ldap3.Connection, container: str, base: str) -> bool:
        """Create the missing containers from ``base`` down to ``container``: True when it exists now
        (made here, or by another thread meanwhile), False when it cannot be made (``conn.result``
        then holds the answer that stopped it: noSuchObject, or busy, unavailable...)."""
        if not container or not dns.is_under(container, base) or dns.normalize_dn(container) == dns.normalize_dn(base):
            return False
        missing = []
        current = container
        while current and dns.normalize_dn(current) != dns.normalize_dn(base):
            conn.search(current, "(objectClass=*)", ldap3.BASE, attributes=["1.1"])
            if conn.result.get("result") == 0:
                break
            if conn.result.get("result") != NO_SUCH_OBJECT:  # busy, unavailable...: not known to be missing
                return False
            missing.append(current)
            current = dns.parent(current)
        for parent_dn in reversed(missing):
            pairs = dns.rdn_values(parent_dn)
            kind = pairs[0][0].lower() if pairs else ""
            if kind not in CONTAINERS:
                return False
            attributes: dict[str, list[str]] = {"objectClass": list(CONTAINERS[kind])}
            for attribute, value in pairs:
                attributes.setdefault(attribute, []).append(value)
            wire.add(conn, parent_dn, attributes)
            if conn.result.get("result") not in (0, ALREADY_EXISTS):
                return False
        return True

    # ---- finding the entry an operation is about ------------------------------------------------------

    def _guarded(self, conn: ldap3.Connection, op: Operation, send: Callable[[str, list[Any]], Any],
                 hint: str | None, inline: bool = True) -> str | None:
        """Send ``send(dn, controls)`` to the entry with ``op.anchor``: first at the name the engine
        recorded (asserting its entryUUID), then wherever a search finds it. Returns the DN it
        was sent to, or None when no such entry exists (conn.result holds the last answer).

        ``inline=False``: the entry is found first (a base search at the recorded name, else by
        entryUUID) and the change sent without the Assertion control. slapd's memberof overlay
        hands the controls of a group's member change on to the modifies it makes of the member
        entries, where an assertion of the group's entryUUID fails: the change is applied and
        memberOf is left wrong."""
        guard = assert_uuid(op.anchor) if op.anchor and read.UUID.match(op.anchor) else None
        if guard is None:
            return None
        if not inline:
            found = self._at_hint(conn, op, hint) or read.locate(conn, op.anchor or "", self.layout.bases(op.partition))
            if found is not None:
                send(found, [])
            return found
        tried = None
        if hint:
            base = self.layout.partition(op.partition, hint)
            tried = self.layout.dn(hint, base)
            send(tried, [guard])
            if conn.result.get("result") not in (NO_SUCH_OBJECT, ASSERTION_FAILED):
                return tried
        partitions = self.layout.bases(op.partition)
        found = read.locate(conn, op.anchor or "", partitions)
        if found is None:
            return None
        if tried is not None and dns.normalize_dn(found) == dns.normalize_dn(tried):
            return tried  # the assertion failed at the right entry: a real answer
        send(found, [guard])
        return found

    def _at_hint(self, conn: ldap3.Connection, op: Operation, hint: str | None) -> str | None:
        """The recorded name, when the entry there is the one with ``op.anchor``."""
        if not hint:
            return None
        target = self.layout.dn(hint, self.layout.partition(op.partition, hint))
        conn.search(target, f"(entryUUID={op.anchor})", ldap3.BASE, attributes=["1.1"])
        return target if any(e.get("type") == "searchResEntry" for e in conn.response or []) else None

    def _not_found(self, op: Operation) -> Result:
        where = f" in {op.partition}" if op.partition else ""
        return Result.failed(op, NotFound(f"no entry with entryUUID {op.anchor}{where}"))

    # ---- update, disable, set_password -----------------------------------------------------------

    def changes(self, view: ObjectView, op: Operation, base: str) -> dict[str, list[tuple[Any, list[str]]]]:
        out: dict[str, list[tuple[Any, list[str]]]] = {}
        holder = (view.placeholder_attribute or "").lower() if view.placeholder else ""
        for name, value in op.attributes.items():
            values = self.layout.to_ldap(name, value, base)
            if name.lower() == holder and not values:
                values = [view.placeholder or ""]
            out.setdefault(name, []).append((ldap3.MODIFY_REPLACE, values))
        for name, values in op.add_values.items():
            ldap_values = self.layout.to_ldap(name, list(values), base)
            if ldap_values:
                out.setdefault(name, []).append((ldap3.MODIFY_ADD, ldap_values))
                if name.lower() == holder:
                    out[name].append((ldap3.MODIFY_DELETE, [view.placeholder or ""]))
        for name, values in op.remove_values.items():
            ldap_values = self.layout.to_ldap(name, list(values), base)
            if ldap_values:
                out.setdefault(name, []).append((ldap3.MODIFY_DELETE, ldap_values))
        return out

    def modify(self, conn: ldap3.Connection, op: Operation, view: ObjectView,
               changes: dict[str, list[tuple[Any, list[str]]]]) -> Result:
        if not changes:
            found = read.locate(conn, op.anchor or "", self.layout.bases(op.partition))
            return Result(op.id, True, op.anchor) if found else self._not_found(op)

        def send(target: str, controls: list[Any]) -> None:
            wire.modify(conn, target, changes, [permissive_modify(), *controls])
            if conn.result.get("result") == NO_SUCH_ATTRIBUTE and self._drop_absent(conn, target, changes):
                # slapd honours Permissive Modify for adds only: remove just the values still there
                if not changes:
                    settled.append(target)
                    return
                wire.modify(conn, target, changes, [permissive_modify(), *controls])
            if conn.result.get("result") == OBJECT_CLASS_VIOLATION and view.placeholder:
                # the last member left a group that needs one: the placeholder keeps it valid
                holder = next((k for k in changes if k.lower() == (view.placeholder_attribute or "").lower()), None)
                if holder is not None:
                    changes[holder] = [(ldap3.MODIFY_ADD, [view.placeholder]), *changes[holder]]
                    wire.modify(conn, target, changes, [permissive_modify(), *controls])

        settled: list[str] = []  # every value to remove was gone already: nothing left to send
        members = any(self.layout.is_dn(name) for name in changes)  # overlays follow DN values
        target = self._guarded(conn, op, send, op.name, inline=not members)
        if target is None:
            return self._not_found(op)
        if conn.result.get("result") == 0 or settled:
            return Result(op.id, True, op.anchor)
        return self._fail(op, conn, f"modify of {target}")

    def _drop_absent(self, conn: ldap3.Connection, target: str,
                     changes: dict[str, list[tuple[Any, list[str]]]]) -> bool:
        """Leave out of ``changes`` the values to delete that the entry no longer holds (a replayed
        removal); True when something changed and the modify should be sent again."""
        names = [n for n, steps in changes.items() if any(kind == ldap3.MODIFY_DELETE for kind, _ in steps)]
        if not names:
            return False
        conn.search(target, "(objectClass=*)", ldap3.BASE, attributes=names)
        if conn.result.get("result") != 0 or not conn.response:
            return False
        held = {k.lower(): v for k, v in conn.response[0]["attributes"].items()}
        dropped = False
        for name in names:
            present = {self._key(name, v) for v in held.get(name.lower(), [])}
            steps = []
            for kind, values in changes[name]:
                if kind == ldap3.MODIFY_DELETE:
                    kept = [v for v in values if self._key(name, v) in present]
                    dropped = dropped or len(kept) != len(values)
                    if not kept:
                        continue
                    values = kept
                steps.append((kind, values))
            changes[name] = steps
            if not steps:
                del changes[name]
        return dropped

    def _key(self, attribute: str, value: Any) -> str:
        """A value as the directory compares it (its equality matching rule, roughly)."""
        text = str(value)
        found = self.layout.schema.attribute(attribute)
        steps = found.normalizations if found else ()
        if "dn" in steps:
            return dns.normalize_dn(text)
        if "collapse_spaces" in steps:
            text = " ".join(text.split())
        return text.casefold() if "case_insensitive" in steps else text

    def op_update(self, conn: ldap3.Connection, op: Operation, view: ObjectView) -> Result:
        base = self.layout.partition(op.partition, op.name)
        return self.modify(conn, op, view, self.changes(view, op, base))

    def op_set_password(self, conn: ldap3.Connection, op: Operation, view: ObjectView) -> Result:
        if not op.password:
            return Result.failed(op, PermanentError("set_password without a password"))
        value = hash_password(op.password, self.password_hash)
        return self.modify(conn, op, view, {self.password_attribute: [(ldap3.MODIFY_REPLACE, [value])]})

    def op_disable(self, conn: ldap3.Connection, op: Operation, view: ObjectView) -> Result:
        base = self.layout.partition(op.partition, op.name)
        result = self.modify(conn, op, view, self.changes(view, op, base))
        if not result.ok or not view.disable_container:
            return result
        current = read.locate(conn, op.anchor or "", self.layout.bases(op.partition))
        if current is None:
            return self._not_found(op)
        container = self.layout.dn(view.disable_container, base)
        if dns.normalize_dn(dns.parent(current)) == dns.normalize_dn(container):
            return Result(op.id, True, op.anchor, name=self.layout.name_of(current, base))
        moved = self._move(conn, op, current, f"{dns.split(current)[0]},{container}", base)
        if isinstance(moved, Result):
            return moved
        return Result(op.id, True, op.anchor, name=self.layout.name_of(moved, base))

    # ---- rename ---------------------------------------------------------------------------------

    def op_rename(self, conn: ldap3.Connection, op: Operation, view: ObjectView) -> Result:
        if not op.name:
            return Result.failed(op, PermanentError("a rename needs the new name"))
        base, new = self.layout.locate(op.name, op.partition)
        if not (op.anchor and read.UUID.match(op.anchor)):
            return self._not_found(op)
        current = None
        if op.old_name:  # where the engine last saw it, if it is still there
            _, candidate = self.layout.locate(op.old_name, op.old_partition or op.partition, strict=False)
            conn.search(candidate, f"(entryUUID={op.anchor})", ldap3.BASE, attributes=["1.1"])
            if conn.result.get("result") == 0 and conn.response:
                current = candidate
        if current is None:
            where = op.old_partition or op.partition
            current = read.locate(conn, op.anchor, self.layout.bases(where))
            if current is None and where is not None:  # moved between partitions by someone else
                current = read.locate(conn, op.anchor, self.layout.bases(None))
        if current is None:
            return self._not_found(op)
        if dns.normalize_dn(current) == dns.normalize_dn(new):
            return Result(op.id, True, op.anchor)
        moved = self._move(conn, op, current, new, base)
        return moved if isinstance(moved, Result) else Result(op.id, True, op.anchor)

    def _move(self, conn: ldap3.Connection, op: Operation, current: str, new: str, base: str) -> str | Result:
        new_rdn, new_parent = dns.split(new)
        superior = None if dns.normalize_dn(dns.parent(current)) == dns.normalize_dn(new_parent) else new_parent
        guard = [assert_uuid(op.anchor)]
        for _ in range(2):
            conn.modify_dn(current, new_rdn, delete_old_dn=True, new_superior=superior, controls=guard)
            code = conn.result.get("result")
            if code == 0:
                self.prune(conn, dns.parent(current), base)
                return new
            if code == NO_SUCH_OBJECT and superior and self.create_parents:
                if self.make_parents(conn, superior, base):
                    continue
                if conn.result.get("result") not in (0, NO_SUCH_OBJECT):  # busy, unavailable... on the way
                    return self._fail(op, conn, f"rename of {current} to {new}: creating its parent {superior}")
            if code == ALREADY_EXISTS:
                return Result.failed(op, ObjectError(f"cannot rename {current} to {new}: that DN is taken"))
            if code == NO_SUCH_OBJECT and superior:
                return Result.failed(op, ObjectError(f"cannot move {current}: the new parent {superior} does not "
                                                     "exist"))
            if code == AFFECTS_MULTIPLE_DSAS:  # into another partition: a modDN cannot cross databases
                return self._recreate(conn, op, current, new, base)
            break
        return self._fail(op, conn, f"rename of {current} to {new}")

    def _recreate(self, conn: ldap3.Connection, op: Operation, current: str, new: str, base: str) -> Result:
        """Move an entry into another partition, which LDAP's modDN cannot do (affectsMultipleDSAs):
        read it whole, delete it, add it at the new DN with the same attributes (the naming value
        the new RDN's), and answer with the new entry's entryUUID, which becomes its anchor.
        Deleted before it is added: a run killed in between finds the object gone from the target
        and adds it again from the mappings (what no mapping sets, and its memberships, are lost
        then), where the other order would leave two entries for one person."""
        conn.search(current, "(objectClass=*)", ldap3.BASE, attributes=["*"], controls=[assert_uuid(op.anchor)])
        if conn.result.get("result") != 0 or not conn.response:
            return self._fail(op, conn, f"move of {current} to another partition: reading it")
        attributes = {k: list(v) for k, v in conn.response[0]["raw_attributes"].items() if v}
        for attr, value in dns.rdn_values(dns.split(current)[0]):  # the old name's values go, the new ones come
            kept = [v for v in attributes.get(attr, []) if v.decode("utf-8", "replace").casefold() != value.casefold()]
            attributes[attr] = kept
        for attr, value in dns.rdn_values(dns.split(new)[0]):
            attributes.setdefault(attr, []).append(value.encode())
        attributes = {k: v for k, v in attributes.items() if v}
        conn.delete(current, controls=[assert_uuid(op.anchor)])
        if conn.result.get("result") != 0:
            return self._fail(op, conn, f"move of {current} to another partition: deleting it")
        parent = dns.parent(new)
        if self.create_parents and not self.make_parents(conn, parent, base) and conn.result.get("result") not in (
                0, NO_SUCH_OBJECT):
            return self._fail(op, conn, f"move of {current} to another partition: creating its parent {parent}")
        conn.add(new, attributes=attributes, controls=[POST_READ_UUID])
        if conn.result.get("result") != 0:
            return self._fail(op, conn, f"move of {current} to {new}: adding it there (it is deleted from "
                                        "its old place; the next run adds it again)")
        uuid = self._post_read_uuid(conn) or self._uuid_of(conn, new)
        self.prune(conn, dns.parent(current), self.layout.partition(op.old_partition, current))
        return Result(op.id, True, uuid or op.anchor, name=self.layout.name_of(new, base))

    # ---- delete ---------------------------------------------------------------------------------

    def op_delete(self, conn: ldap3.Connection, op: Operation, view: ObjectView) -> Result:
        def send(target: str, controls: list[Any]) -> None:
            conn.delete(target, controls=controls)

        target = self._guarded(conn, op, send, op.name)
        if target is None:
            return self._not_found(op)
        code = conn.result.get("result")
        if code == NOT_ALLOWED_ON_NON_LEAF:
            if not self.delete_subtree:
                return Result.failed(op, ObjectError(f"cannot delete {target}: it still has entries below it "
                                                     "(delete_subtree: true removes them too)"))
            self._delete_below(conn, target)
            conn.delete(target)
            code = conn.result.get("result")
        if code == 0:
            self.prune(conn, dns.parent(target), self.layout.partition(op.partition, target))
            return Result(op.id, True, op.anchor)
        return self._fail(op, conn, f"delete of {target}")

    def _delete_below(self, conn: ldap3.Connection, target: str) -> None:
        below: list[str] = []
        for entries in read.paged(conn, target, "(objectClass=*)", ["1.1"], 500, ldap3.LEVEL):
            below.extend(e["dn"] for e in entries)
        for child in below:
            conn.delete(child)
            if conn.result.get("result") == NOT_ALLOWED_ON_NON_LEAF:
                self._delete_below(conn, child)
                conn.delete(child)

    def prune(self, conn: ldap3.Connection, container: str, base: str) -> None:
        """With ``remove_empty_parents``: remove containers left empty, up to the partition base."""
        if not self.remove_empty_parents:
            return
        while container and dns.is_under(container, base) and dns.normalize_dn(container) != dns.normalize_dn(base):
            pairs = dns.rdn_values(container)
            if not pairs or pairs[0][0].lower() not in CONTAINERS:
                return
            conn.delete(container)  # refused (66) while anything is below it
            if conn.result.get("result") != 0:
                return
            container = dns.parent(container)
