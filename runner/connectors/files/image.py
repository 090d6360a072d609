"""The objects of one target file, held in memory, and what each operation does to them.

A file target keeps the whole current set of its objects (the *image*): read from the file (or,
in ``changes`` mode, from the connector's private copy) when the object is first used, changed
by each operation, and written back whole at the end of the run. Operations never change an
:class:`Entry` in place; they put a new one, so a batch that cannot be made durable is undone by
putting the old ones back (:meth:`Image.undo`).

The rules are those of connector interface 2 (``runner/connectors/base.py``): every operation
is safe to apply twice. An add of an object already there reports :class:`AlreadyExists`; an
update that changes nothing succeeds and changes nothing (so, in ``changes`` mode, it writes no
change record); a delete of an absent object reports :class:`NotFound`; a rename to the name the
object has succeeds.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from runner.connectors.base import AlreadyExists, NotFound, ObjectError, Operation, PermanentError
from runner.names import BadDN, escape_rdn_value, normalize_dn, parse_dn


@dataclass(frozen=True)
class Entry:
    """One object: its anchor, its name (LDIF: the DN) and its attributes (never None values)."""

    anchor: str
    attributes: Mapping[str, Any]
    name: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"anchor": self.anchor, "name": self.name, "attributes": dict(self.attributes)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Entry:
        return cls(str(data["anchor"]), dict(data["attributes"]), data.get("name"))


@dataclass(frozen=True)
class Change:
    """What one operation did, for a change record: ``add``, ``modify``, ``delete`` or ``rename``."""

    op: str
    operation: Operation
    before: Entry | None
    after: Entry | None


@dataclass
class Image:
    """The entries of one file by anchor, with an index by name (DNs compared per RFC 4514).

    ``undo_log`` holds, for each anchor a batch touched, the entry it had before (None: none);
    :meth:`begin` starts a batch and :meth:`undo` rolls it back."""

    by_anchor: dict[str, Entry] = field(default_factory=dict)
    by_name: dict[str, str] = field(default_factory=dict)
    undo_log: dict[str, Entry | None] = field(default_factory=dict)

    @classmethod
    def of(cls, entries: Iterable[Entry]) -> Image:
        image = cls()
        for entry in entries:
            image.put(entry)
        image.undo_log.clear()
        return image

    def __len__(self) -> int:
        return len(self.by_anchor)

    def entries(self) -> Iterator[Entry]:
        return iter(self.by_anchor.values())

    def find(self, anchor: str | None, name: str | None = None) -> Entry | None:
        """The entry with this anchor; without one (or when an anchor is a DN that differs only in
        spelling), the entry with this name."""
        if anchor is not None:
            entry = self.by_anchor.get(anchor)
            if entry is not None or not self.by_name:
                return entry
            found = self.by_name.get(normalize_dn(anchor))
            if found is not None and normalize_dn(found) == normalize_dn(anchor):
                return self.by_anchor.get(found)
            return None
        if name is not None:
            found = self.by_name.get(normalize_dn(name))
            return self.by_anchor.get(found) if found is not None else None
        return None

    def named(self, name: str) -> Entry | None:
        found = self.by_name.get(normalize_dn(name))
        return self.by_anchor.get(found) if found is not None else None

    def put(self, entry: Entry) -> None:
        self._remember(entry.anchor)
        old = self.by_anchor.get(entry.anchor)
        if old is not None and old.name is not None:
            self.by_name.pop(normalize_dn(old.name), None)
        self.by_anchor[entry.anchor] = entry
        if entry.name is not None:
            self.by_name[normalize_dn(entry.name)] = entry.anchor

    def remove(self, anchor: str) -> Entry | None:
        self._remember(anchor)
        old = self.by_anchor.pop(anchor, None)
        if old is not None and old.name is not None and self.by_name.get(normalize_dn(old.name)) == anchor:
            del self.by_name[normalize_dn(old.name)]
        return old

    def _remember(self, anchor: str) -> None:
        if anchor not in self.undo_log:
            self.undo_log[anchor] = self.by_anchor.get(anchor)

    def begin(self) -> None:
        self.undo_log.clear()

    def touched(self) -> dict[str, Entry | None]:
        """Each anchor the batch touched and what it holds now (None: gone)."""
        return {anchor: self.by_anchor.get(anchor) for anchor in self.undo_log}

    def undo(self) -> None:
        """Put back what the batch changed (its results were never made durable)."""
        log = dict(self.undo_log)
        for anchor in log:
            current = self.by_anchor.pop(anchor, None)
            if current is not None and current.name is not None:
                self.by_name.pop(normalize_dn(current.name), None)
        for anchor, entry in log.items():
            if entry is not None:
                self.by_anchor[anchor] = entry
                if entry.name is not None:
                    self.by_name[normalize_dn(entry.name)] = anchor
        self.undo_log.clear()


# ---- values -------------------------------------------------------------------------------------


def plain(value: Any) -> Any:
    """A value as the image keeps it: tuples and sets as lists."""
    if isinstance(value, tuple | set | frozenset):
        items = [plain(v) for v in value]
        return sorted(items, key=str) if isinstance(value, set | frozenset) else items
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _text(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


def same_value(have: Any, want: Any) -> bool:
    """How lookups compare: a single value matches one of a list's values, a list the same values
    in any order, None an absent or empty attribute; 1, True and "1" stay different."""
    if want is None or want == []:
        return have is None or have == [] or have == ""
    if isinstance(want, list):
        return isinstance(have, list) and sorted(map(_text, have)) == sorted(map(_text, want))
    if isinstance(have, list):
        return any(_text(v) == _text(want) for v in have)
    return _text(have) == _text(want)


def attribute(attributes: Mapping[str, Any], name: str, fold: bool) -> Any:
    """``attributes[name]``; with ``fold`` (LDIF) the attribute's name compares case-insensitively."""
    if name in attributes or not fold:
        return attributes.get(name)
    lowered = name.casefold()
    return next((v for k, v in attributes.items() if k.casefold() == lowered), None)


def matches(attributes: Mapping[str, Any], values: Mapping[str, Any], fold: bool) -> bool:
    return all(same_value(attribute(attributes, k, fold), plain(v)) for k, v in values.items())


def changed(attributes: Mapping[str, Any], op: Operation, fold: bool) -> dict[str, Any]:
    """The attributes after an update: ``op.attributes`` set (None removes; a list replaces the
    whole list), then ``add_values`` added (values already there are not repeated) and
    ``remove_values`` removed."""
    out = dict(attributes)
    for name, value in op.attributes.items():
        key = _existing(out, name, fold)
        value = plain(value)
        if value is None or value == []:
            out.pop(key, None)
        else:
            out[key] = value
    for name, values in op.add_values.items():
        key = _existing(out, name, fold)
        current = as_list(out.get(key))
        for value in plain(list(values)):
            if value not in current:
                current.append(value)
        if current:
            out[key] = current
    for name, values in op.remove_values.items():
        key = _existing(out, name, fold)
        if key not in out:
            continue
        gone = plain(list(values))
        kept = [v for v in as_list(out[key]) if v not in gone]
        if kept:
            out[key] = kept
        else:
            del out[key]
    return out


def _existing(attributes: Mapping[str, Any], name: str, fold: bool) -> str:
    """The spelling of ``name`` the attributes use already (LDIF names are case-insensitive)."""
    if not fold or name in attributes:
        return name
    lowered = name.casefold()
    return next((k for k in attributes if k.casefold() == lowered), name)


def without_nulls(attributes: Mapping[str, Any]) -> dict[str, Any]:
    return {k: plain(v) for k, v in attributes.items() if v is not None and v != []}


# ---- operations ---------------------------------------------------------------------------------


class Rules:
    """How the file decides anchors and names; the connector of each format fills it in."""

    named = False  # objects have names (LDIF DNs) and may be renamed
    fold = False  # attribute names compare case-insensitively

    def anchor_of(self, attributes: Mapping[str, Any], name: str | None) -> str | None:
        raise NotImplementedError

    def new_attributes(self, op: Operation) -> dict[str, Any]:
        """An add's attributes as stored."""
        return without_nulls(op.attributes)

    def renamed_attributes(self, attributes: Mapping[str, Any], old: str, new: str) -> dict[str, Any]:
        return dict(attributes)

    def password_attributes(self, attributes: Mapping[str, Any], password: str) -> dict[str, Any]:
        raise ObjectError("this file keeps no passwords")

    def problem(self, entry: Entry) -> str | None:
        """Why the file cannot hold ``entry`` (a value its format cannot write), or None."""
        return None


def apply_operation(image: Image, op: Operation, rules: Rules) -> tuple[str, Change | None]:
    """Carry out ``op`` on ``image``: the object's anchor afterwards, and the change (None when
    nothing changed). Raises an ObjectError subclass for what the object cannot do."""
    if op.kind == "add":
        return _add(image, op, rules)
    if op.kind in ("update", "disable", "set_password"):
        return _update(image, op, rules)
    if op.kind == "delete":
        entry = _existing_entry(image, op, rules)
        image.remove(entry.anchor)
        return entry.anchor, Change("delete", op, entry, None)
    if op.kind == "rename" and rules.named:
        return _rename(image, op, rules)
    raise ObjectError(f"this file target cannot {op.kind}")


def _add(image: Image, op: Operation, rules: Rules) -> tuple[str, Change]:
    attributes = rules.new_attributes(op)
    if op.password is not None:
        attributes = rules.password_attributes(attributes, op.password)
    anchor = rules.anchor_of(attributes, op.name)
    if anchor is None:
        raise ObjectError("the add has no value for the key attribute, which is the object's anchor")
    if rules.named and op.name and image.named(op.name) is not None:
        raise AlreadyExists(f"an entry named {op.name!r} is there already")
    if anchor in image.by_anchor:
        raise AlreadyExists(f"an object with the key {anchor!r} is there already")
    entry = Entry(anchor, attributes, op.name if rules.named else None)
    _check(entry, rules)
    image.put(entry)
    return anchor, Change("add", op, None, entry)


def _update(image: Image, op: Operation, rules: Rules) -> tuple[str, Change | None]:
    entry = _existing_entry(image, op, rules)
    attributes = changed(entry.attributes, op, rules.fold)
    if op.kind == "set_password":
        if op.password is None:
            raise ObjectError("set_password without a password")
        attributes = rules.password_attributes(attributes, op.password)
    anchor = rules.anchor_of(attributes, entry.name)
    if anchor is None:
        raise ObjectError("the update clears the key attribute, which is the object's anchor")
    if attributes == entry.attributes:
        return entry.anchor, None  # a replay, or nothing to change
    if anchor != entry.anchor and anchor in image.by_anchor:
        raise AlreadyExists(f"another object has the key {anchor!r}")
    after = Entry(anchor, attributes, entry.name)
    _check(after, rules)
    if anchor != entry.anchor:
        image.remove(entry.anchor)
    image.put(after)
    return anchor, Change("modify", op, entry, after)


def _rename(image: Image, op: Operation, rules: Rules) -> tuple[str, Change | None]:
    if not op.name:
        raise ObjectError("a rename needs the new name")
    entry = _existing_entry(image, op, rules)
    if entry.name == op.name:
        return entry.anchor, None  # a replay
    other = image.named(op.name)
    if other is not None and other.anchor != entry.anchor:
        raise AlreadyExists(f"an entry named {op.name!r} is there already")
    attributes = rules.renamed_attributes(entry.attributes, entry.name or "", op.name)
    anchor = rules.anchor_of(attributes, op.name) or entry.anchor
    after = Entry(anchor, attributes, op.name)
    _check(after, rules)
    image.remove(entry.anchor)
    image.put(after)
    return anchor, Change("rename", op, entry, after)


def _existing_entry(image: Image, op: Operation, rules: Rules) -> Entry:
    entry = image.find(op.anchor, (op.old_name or op.name) if op.kind == "rename" else op.name)
    if entry is None:
        raise NotFound(f"no object with the key {op.anchor!r} in the file")
    return entry


def _check(entry: Entry, rules: Rules) -> None:
    problem = rules.problem(entry)
    if problem is not None:
        raise PermanentError(problem)


def sorted_entries(entries: Iterable[Entry], named: bool) -> list[Entry]:
    """The order a snapshot lists its objects in, the same on every run: by anchor, or for named
    objects (DNs) parents before children, then by DN read from the root."""
    if not named:
        return sorted(entries, key=lambda e: e.anchor)

    return sorted(entries, key=lambda e: dn_order(e.name or ""))


def dn_order(name: str) -> tuple[int, Sequence[str]]:
    """Sort key of a DN: its depth, then its RDNs (normalized) from the root down."""
    try:
        rdns = parse_dn(name)
    except BadDN:
        return 0, [name.casefold()]
    parts = ["+".join(sorted(f"{a.casefold()}={escape_rdn_value(v.casefold())}" for a, v in rdn)) for rdn in rdns]
    return len(parts), parts[::-1]
