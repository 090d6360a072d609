"""PATCH (RFC 7644 §3.5.2) as Microsoft Entra sends it: parsed into plain operations, then applied.

Parsing (:func:`parse_patch`) takes Entra's forms as they come and hands a store one normalised
form, each operation with a resolved path and a conformed value:

* op names in any case (``Add``, ``Replace``, ``Remove``: Microsoft, "Don't require a
  case-sensitive match on structural elements in SCIM, in particular PATCH op operation values");
* booleans as strings (``"value": "False"`` to disable a user, Entra without ``aadOptscim062020``);
* an operation without ``path`` whose value is an object of attributes, keys being names, dotted
  sub-attributes (``"name.givenName"``) or fully qualified extension attributes (Entra with the
  flag "replaces multiple attributes" this way) — split into one operation per key;
* value-filtered paths (``emails[type eq "work"].value``);
* ``manager`` (``urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager`` or plain
  ``manager``) as ``{"value": id}``, a bare id, or a one-element list with ``$ref``;
* member removal both as ``members[value eq "id"]`` and, without the flag, as ``path: members``
  with ``value: [{"value": "id"}]`` (split into one filtered remove per member).

Applying (:func:`apply`) works on the stored attributes copy-on-write (the stored version is never
changed, so a failing operation leaves nothing half-done) and keeps each multi-valued attribute it
touches as a dict keyed by the element's identity: a member's ``value`` for references, the
element's canonical JSON otherwise. Adding or removing one member of a group of tens of thousands
is then one dict operation, and the whole request is linear in the group's size once (to index it
and to write the list back), whatever the number of operations: no scans of the member list per
member.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from runner.connectors.scim.protocol import Attr

from .conform import check_required, conform_simple, conform_single, conform_value, is_empty
from .errors import Invalid, lookup
from .filters import Condition, Path, parse_path
from .schema import Kind

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
_OPS = ("add", "replace", "remove")


@dataclass(frozen=True)
class Operation:
    """One PATCH operation, normalised: ``value`` is conformed to the path's target (an element
    for a value-filtered path without sub-attribute, a list for a multi-valued attribute)."""

    op: Literal["add", "replace", "remove"]
    path: Path
    value: Any = None


# ---- parsing ------------------------------------------------------------------------------------------


def parse_patch(kind: Kind, body: Any) -> list[Operation]:
    """A PatchOp request body -> operations; 400 (``invalidSyntax``, ``invalidPath``,
    ``invalidValue``, ``mutability``, ``noTarget``) for what cannot be applied."""
    if not isinstance(body, Mapping):
        raise Invalid("a PATCH body is a JSON object", scim_type="invalidSyntax")
    schemas = lookup(body, "schemas")
    if schemas is not None and PATCH_OP not in (schemas if isinstance(schemas, list) else [schemas]):
        raise Invalid(f"a PATCH body has the schema {PATCH_OP}", scim_type="invalidSyntax")
    raw = lookup(body, "Operations")
    if not isinstance(raw, list) or not raw:
        raise Invalid("a PATCH body has a non-empty list of Operations", scim_type="invalidSyntax")
    ops: list[Operation] = []
    for n, item in enumerate(raw, 1):
        if not isinstance(item, Mapping):
            raise Invalid(f"operation {n} is not a JSON object", scim_type="invalidSyntax")
        name = str(lookup(item, "op") or "").lower()
        if name not in _OPS:
            raise Invalid(f"operation {n}: op is add, replace or remove, not {lookup(item, 'op')!r}",
                          scim_type="invalidSyntax")
        path_text = lookup(item, "path")
        value = lookup(item, "value")
        if path_text is None or (isinstance(path_text, str) and not path_text.strip()):
            if name == "remove":
                raise Invalid(f"operation {n}: remove needs a path", scim_type="noTarget")
            if not isinstance(value, Mapping):
                raise Invalid(f"operation {n}: without a path, the value is an object of attributes",
                              scim_type="invalidSyntax")
            for key, v in value.items():
                if str(key).lower() in ("schemas", "id", "meta"):
                    continue
                ops.extend(_operations(kind, name, parse_path(kind, str(key)), v))
            continue
        if not isinstance(path_text, str):
            raise Invalid(f"operation {n}: path is a string", scim_type="invalidPath")
        ops.extend(_operations(kind, name, parse_path(kind, path_text), value))
    return ops


def _operations(kind: Kind, op: str, path: Path, value: Any) -> list[Operation]:
    """The operations one (op, path, value) stands for, values conformed."""
    if path.attr is None:  # the whole extension: its attributes one by one
        if op == "remove":
            return [Operation("remove", path)]
        if not isinstance(value, Mapping):
            raise Invalid(f"{path.block} takes an object of its attributes")
        out: list[Operation] = []
        for key, v in value.items():
            if str(key).lower() == "schemas":  # scim2-models sends an extension object with its own
                continue
            found = kind.resolve(str(key), path.block)
            if found is None:
                raise Invalid(f"{path.block} has no attribute {key!r}", scim_type="invalidPath")
            out.extend(_operations(kind, op, Path(path.block, found[1]), v))
        return out
    attr = path.attr
    if attr.mutability == "readOnly" or (path.sub is not None and path.sub.mutability == "readOnly"):
        raise Invalid(f"{path.text} is read-only", scim_type="mutability")
    if path.conditions is not None and not attr.multi:
        raise Invalid(f"{path.text}: a value filter picks values of a multi-valued attribute; "
                      f"{attr.name} has one value", scim_type="invalidPath")
    if op == "remove":
        if attr.multi and path.conditions is None and path.sub is None and not is_empty(value):
            return [Operation("remove", Path(path.block, attr, conditions)) for conditions in _selectors(attr, value)]
        return [Operation("remove", path)]
    conformed = _conform(attr, path, value)
    if is_empty(conformed):
        return [Operation("remove", path)] if op == "replace" else []
    return [Operation(op, path, conformed)]  # type: ignore[arg-type]


def _conform(attr: Attr, path: Path, value: Any) -> Any:
    where = path.text
    if is_empty(value):
        return None
    if path.sub is not None:
        return conform_simple(path.sub, value, where)
    if path.conditions is not None:  # the value replaces or extends the matching elements
        if isinstance(value, list):
            if len(value) != 1:
                raise Invalid(f"{where} takes one element")
            value = value[0]
        return conform_single(attr, value, where)
    return conform_value(attr, value, where)


def _selectors(attr: Attr, value: Any) -> Iterable[tuple[Condition, ...]]:
    """Entra's ``remove`` of ``members`` with ``value: [{"value": id}]``: a value filter per element
    (a reference is picked by its value alone; other elements by every sub-attribute sent)."""
    for element in value if isinstance(value, list) else [value]:
        if isinstance(element, str) and "value" in attr.subs:
            element = {"value": element}
        if not isinstance(element, Mapping):
            raise Invalid(f"{attr.name}: remove takes the elements to remove, as objects")
        conditions = []
        for key, v in element.items():
            sub = attr.subs.get(str(key).lower())
            if sub is None:
                raise Invalid(f"{attr.name} has no sub-attribute {key!r}")
            if v is None or (attr.is_reference and sub.name != "value"):
                continue
            conditions.append(Condition(sub, conform_simple(sub, v, f"{attr.name}.{sub.name}"), sub.case_exact))
        if not conditions:
            raise Invalid(f"{attr.name}: an element to remove needs a value")
        yield tuple(conditions)


# ---- applying -----------------------------------------------------------------------------------------


def apply(kind: Kind, attributes: Mapping[str, Any], operations: Sequence[Operation]) -> dict[str, Any]:
    """The attributes after ``operations``, in order; ``attributes`` is not changed. 400 ``noTarget``
    for a ``replace`` whose value filter matches nothing (RFC 7644 §3.5.2.3), ``invalidValue`` when
    a required attribute would be left without a value."""
    draft = _Draft(kind, attributes)
    for op in operations:
        draft.apply(op)
    return draft.finish()


class _Multi:
    """A multi-valued attribute being changed: elements by identity, in order."""

    def __init__(self, attr: Attr, items: Iterable[Any]) -> None:
        self.attr = attr
        self.by_value = attr.is_reference  # members: one element per member id
        self.elements: dict[Any, Any] = {}
        for element in items:
            self.elements.setdefault(self.key(element), element)

    def key(self, element: Any) -> Any:
        if self.by_value and isinstance(element, Mapping):
            return element.get("value")
        return json.dumps(element, sort_keys=True, separators=(",", ":"))

    def add(self, elements: Iterable[Any]) -> None:
        """§3.5.2.1: a value already there is not added again."""
        added = []
        for element in elements:
            key = self.key(element)
            if key not in self.elements:
                self.elements[key] = element
                added.append(key)
        self.one_primary(added)

    def replace_all(self, elements: Iterable[Any]) -> None:
        self.elements = {}
        self.add(elements)

    def select(self, conditions: Sequence[Condition]) -> list[Any]:
        """The keys of the elements meeting every condition; by lookup for ``[value eq "id"]`` on a
        reference (members), by scan otherwise."""
        if self.by_value and len(conditions) == 1 and conditions[0].sub is not None \
                and conditions[0].sub.name == "value" and conditions[0].case_exact:
            value = conditions[0].value
            return [value] if value in self.elements else []
        return [k for k, e in self.elements.items() if all(c.holds(e) for c in conditions)]

    def remove(self, keys: Iterable[Any]) -> None:
        for key in keys:
            self.elements.pop(key, None)

    def change(self, changes: Mapping[Any, Any]) -> None:
        """Put changed elements in place of the ones under those keys (order kept; an element
        that became equal to another one is dropped)."""
        rebuilt: dict[Any, Any] = {}
        for key, element in self.elements.items():
            element = changes.get(key, element)
            rebuilt.setdefault(self.key(element), element)
        self.elements = rebuilt
        self.one_primary([self.key(e) for e in changes.values()])

    def one_primary(self, keys: Sequence[Any]) -> None:
        """§3.5.2: a value made primary makes the others not primary ("primary" true MUST appear
        no more than once, RFC 7643 §2.4)."""
        if "primary" not in self.attr.subs:
            return
        chosen = [k for k in keys if isinstance(self.elements.get(k), Mapping) and self.elements[k].get("primary") is True]
        if not chosen:
            return
        keep = chosen[-1]
        demoted = {k: {**e, "primary": False} for k, e in self.elements.items()
                   if k != keep and isinstance(e, Mapping) and e.get("primary") is True}
        if demoted:
            self.elements = {self.key(e): e for e in (demoted.get(k, e) for k, e in self.elements.items())}

    def items(self) -> list[Any]:
        return list(self.elements.values())


class _Draft:
    """The attributes being patched: top level and extension blocks copied when first changed."""

    def __init__(self, kind: Kind, attributes: Mapping[str, Any]) -> None:
        self.kind = kind
        self.out = dict(attributes)
        self.copied: set[str] = set()
        self.multis: dict[tuple[str | None, str], _Multi] = {}

    def holder(self, block: str | None) -> dict[str, Any]:
        if block is None:
            return self.out
        if block not in self.copied:
            self.out[block] = dict(self.out.get(block) or {})
            self.copied.add(block)
        return self.out[block]

    def multi(self, block: str | None, attr: Attr) -> _Multi:
        key = (block, attr.name)
        if key not in self.multis:
            self.multis[key] = _Multi(attr, self.holder(block).get(attr.name) or [])
        return self.multis[key]

    def apply(self, op: Operation) -> None:
        path = op.path
        if path.attr is None:  # remove a whole extension
            self.out.pop(path.block or "", None)
            self.copied.discard(path.block or "")
            self.multis = {k: m for k, m in self.multis.items() if k[0] != path.block}
            return
        if path.attr.multi:
            self.apply_multi(op, path, path.attr)
        else:
            self.apply_single(op, path, path.attr)

    def apply_single(self, op: Operation, path: Path, attr: Attr) -> None:
        holder = self.holder(path.block)
        current = holder.get(attr.name)
        if path.sub is not None:
            complex_value = dict(current) if isinstance(current, Mapping) else {}
            if op.op == "remove":
                complex_value.pop(path.sub.name, None)
            else:
                complex_value[path.sub.name] = op.value
            _put(holder, attr.name, complex_value)
        elif op.op == "remove":
            holder.pop(attr.name, None)
        elif attr.type == "complex" and not attr.is_reference and isinstance(current, Mapping):
            holder[attr.name] = {**current, **op.value}  # §3.5.2.3: sub-attributes not sent stay
        else:
            holder[attr.name] = op.value

    def apply_multi(self, op: Operation, path: Path, attr: Attr) -> None:
        values = self.multi(path.block, attr)
        if path.conditions is None and path.sub is None:
            if op.op == "remove":
                values.elements = {}
            elif op.op == "add":
                values.add(op.value)
            else:
                values.replace_all(op.value)
            return
        keys = values.select(path.conditions or ())
        if op.op == "remove":
            if path.sub is None:
                values.remove(keys)
            else:
                values.change({k: {n: v for n, v in values.elements[k].items() if n != path.sub.name} for k in keys})
            return
        if not keys:
            if op.op == "replace" and path.conditions:
                raise Invalid(f"{path.text} matches no value to replace", scim_type="noTarget")
            pinned = {c.sub.name: c.value for c in path.conditions or () if c.sub is not None}
            values.add([{**pinned, path.sub.name: op.value} if path.sub else {**pinned, **op.value}])
            return
        if path.sub is not None:
            values.change({k: {**values.elements[k], path.sub.name: op.value} for k in keys})
        elif op.op == "add":
            values.change({k: {**values.elements[k], **op.value} for k in keys})
        else:
            pinned = {c.sub.name: c.value for c in path.conditions or () if c.sub is not None}
            values.change({k: {**pinned, **op.value} for k in keys})

    def finish(self) -> dict[str, Any]:
        for (block, name), values in self.multis.items():
            _put(self.holder(block), name, values.items())
        for ext in self.kind.extensions:
            if ext in self.out and not self.out[ext]:
                del self.out[ext]
        check_required(self.kind, self.out)
        return self.out


def _put(holder: dict[str, Any], name: str, value: Any) -> None:
    if is_empty(value):
        holder.pop(name, None)
    else:
        holder[name] = value
