"""Filters and attribute paths, in the subset of RFC 7644 §3.4.2.2 that Microsoft Entra sends.

Entra "only uses the following operators: eq, and" (Microsoft, "Develop and plan provisioning for a
SCIM endpoint"), to find a user by its matching attribute and a group by ``displayName``:

* ``userName eq "bjensen@example.com"``, ``externalId eq "..."``, ``id eq "..."``,
  ``displayName eq "..."``;
* ``emails[type eq "work"].value eq "..."`` (a matching attribute with a value filter), and the
  same condition as ``emails[type eq "work" and value eq "..."]``;
* ``id eq "..." and manager eq "..."`` (whether a reference has a value; ``manager`` and
  ``members`` compare their ``value``);
* an empty filter: every resource.

Attribute names and the keywords ``eq`` and ``and`` are case-insensitive (RFC 7644 §3.4.2.2);
string values compare case-insensitively unless the attribute is ``caseExact`` (``id``,
``externalId``). Anything else (``or``, ``not``, parentheses, other operators, unknown attributes)
is refused with 400 ``invalidFilter`` rather than half-understood: a filter the endpoint read
wrongly would make Entra create a duplicate or update the wrong user.

PATCH paths (RFC 7644 §3.5.2, ``attr``, ``attr.sub``, ``attr[filter]``, ``attr[filter].sub``,
``urn:...:attr``, a bare extension URN) use the same grammar and are parsed here too, refused with
``invalidPath``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from runner.connectors.scim.protocol import Attr

from .errors import Invalid
from .schema import ID, Kind

_TOKEN = re.compile(r'\s*(?:(?P<string>"(?:[^"\\]|\\.)*")|(?P<open>\[)|(?P<close>\])|(?P<word>[^\s\[\]"()]+)'
                    r'|(?P<bad>\S))')
_WORD = re.compile(r"^(?:(?P<urn>urn:.+):)?(?P<attr>[A-Za-z$][\w$-]*)(?:\.(?P<sub>[A-Za-z$][\w$-]*))?$",
                   re.IGNORECASE)
_NUMBER = re.compile(r"^-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?$")


@dataclass(frozen=True)
class Condition:
    """``sub eq value`` on one value of an attribute (``sub`` None: the value itself)."""

    sub: Attr | None
    value: Any
    case_exact: bool

    def holds(self, element: Any) -> bool:
        actual = element if self.sub is None else (
            element.get(self.sub.name) if isinstance(element, Mapping) else None)
        return equal(actual, self.value, self.case_exact)


@dataclass(frozen=True)
class Match:
    """One clause of a filter: some value of the attribute (one element, for a multi-valued one)
    meets every condition."""

    block: str | None  # None: top level; else the extension URN holding the attribute
    attr: Attr
    conditions: tuple[Condition, ...]

    def holds(self, resource_id: str, attributes: Mapping[str, Any]) -> bool:
        return any(all(c.holds(v) for c in self.conditions) for v in values(self.block, self.attr, resource_id, attributes))


@dataclass(frozen=True)
class Filter:
    """A parsed filter: every clause must hold (``and``)."""

    clauses: tuple[Match, ...]

    def __call__(self, resource_id: str, attributes: Mapping[str, Any]) -> bool:
        return all(m.holds(resource_id, attributes) for m in self.clauses)

    def equality(self, attr: Attr) -> Any:
        """The value a clause ``attr eq value`` pins (an index lookup for a store), else None."""
        for m in self.clauses:
            if m.attr is attr and m.block is None and len(m.conditions) == 1 and m.conditions[0].sub is None:
                return m.conditions[0].value
        return None


@dataclass(frozen=True)
class Path:
    """An attribute path (RFC 7644 §3.5.2 PATH; ``attributes`` query parameter names)."""

    block: str | None  # None: top level; else the extension URN
    attr: Attr | None  # None: the whole extension ``block``
    conditions: tuple[Condition, ...] | None = None  # a value filter: emails[type eq "work"]
    sub: Attr | None = None

    @property
    def text(self) -> str:
        name = self.attr.name if self.attr else ""
        base = f"{self.block}:{name}" if self.block and name else (self.block or name)
        if self.conditions is not None:
            base += "[" + " and ".join(f"{c.sub.name if c.sub else 'value'} eq {json.dumps(c.value)}"
                                       for c in self.conditions) + "]"
        return base + (f".{self.sub.name}" if self.sub else "")


def values(block: str | None, attr: Attr, resource_id: str, attributes: Mapping[str, Any]) -> list[Any]:
    """The values an attribute has in a stored resource (a list, empty when unassigned)."""
    if attr is ID:
        return [resource_id]
    holder = attributes if block is None else attributes.get(block) or {}
    value = holder.get(attr.name)
    return value if isinstance(value, list) else ([] if value is None else [value])


def equal(actual: Any, expected: Any, case_exact: bool) -> bool:
    if isinstance(actual, str) and isinstance(expected, str) and not case_exact:
        return actual.casefold() == expected.casefold()
    return actual == expected and type(actual) is type(expected)


# ---- parsing ----------------------------------------------------------------------------------------


class _Syntax(Exception):
    pass


def _tokens(text: str) -> Iterator[tuple[str, str]]:
    for m in _TOKEN.finditer(text):
        kind = m.lastgroup
        if kind is None:
            continue
        if kind == "bad":
            raise _Syntax(f"unexpected {m.group(kind)!r} (grouping with parentheses is not supported)")
        yield kind, m.group(kind)


class _Parser:
    def __init__(self, kind: Kind, text: str) -> None:
        self.kind = kind
        self.tokens = list(_tokens(text))
        self.at = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise _Syntax("it ends too early")
        self.at += 1
        return token

    def keyword(self, word: str) -> bool:
        token = self.peek()
        if token and token[0] == "word" and token[1].lower() == word:
            self.at += 1
            return True
        return False

    def expect_eq(self, after: str) -> None:
        token = self.take()
        if token[0] != "word" or token[1].lower() != "eq":
            raise _Syntax(f"after {after} only 'eq' is supported, not {token[1]!r}")

    def literal(self) -> Any:
        kind, text = self.take()
        if kind == "string":
            return json.loads(text)
        if kind == "word" and text.lower() in ("true", "false", "null"):
            return json.loads(text.lower())
        if kind == "word" and _NUMBER.match(text):
            return json.loads(text)
        raise _Syntax(f"{text!r} is not a value: strings are in double quotes")

    def attribute(self, *, whole_extension: bool) -> tuple[str | None, Attr | None, Attr | None]:
        """(block, attribute or None for a whole extension, sub-attribute) of the next word."""
        kind, word = self.take()
        if kind != "word":
            raise _Syntax(f"expected an attribute name, not {word!r}")
        ext = self.kind.extension(word)
        if ext is not None:
            if not whole_extension:
                raise _Syntax(f"{word} is a schema, not an attribute")
            return ext, None, None
        m = _WORD.match(word)
        found = self.kind.resolve(m.group("attr"), m.group("urn")) if m else None
        if found is None:
            raise _Syntax(f"{self.kind.name} has no attribute {word!r}")
        block, attr = found
        return block, attr, self.sub_attribute(attr, m.group("sub")) if m.group("sub") else None

    @staticmethod
    def sub_attribute(attr: Attr, name: str) -> Attr:
        sub = attr.subs.get(name.lower())
        if sub is None:
            raise _Syntax(f"{attr.name} has no sub-attribute {name!r}")
        return sub

    def value_filter(self, attr: Attr) -> tuple[Condition, ...]:
        """``[sub eq v and sub2 eq w]``, the opening bracket already taken."""
        if attr.type != "complex":
            raise _Syntax(f"{attr.name} has no sub-attributes to filter on")
        conditions = []
        while True:
            kind, word = self.take()
            if kind != "word":
                raise _Syntax(f"expected a sub-attribute of {attr.name}, not {word!r}")
            sub = self.sub_attribute(attr, word)
            self.expect_eq(word)
            conditions.append(Condition(sub, self.literal(), sub.case_exact))
            if self.keyword("and"):
                continue
            if self.take()[0] != "close":
                raise _Syntax("a value filter ends with ']' ('or' and 'not' are not supported)")
            return tuple(conditions)

    def after_bracket_sub(self, attr: Attr) -> Attr | None:
        token = self.peek()
        if token and token[0] == "word" and token[1].startswith("."):
            self.at += 1
            return self.sub_attribute(attr, token[1][1:])
        return None

    def clause(self) -> Match:
        block, attr, sub = self.attribute(whole_extension=False)
        assert attr is not None
        if sub is None and self.peek() == ("open", "["):
            self.at += 1
            conditions = self.value_filter(attr)
            sub = self.after_bracket_sub(attr)
            if sub is None:
                return Match(block, attr, conditions)
            self.expect_eq(f"{attr.name}[...].{sub.name}")
            return Match(block, attr, (*conditions, Condition(sub, self.literal(), sub.case_exact)))
        self.expect_eq(attr.name + (f".{sub.name}" if sub else ""))
        if attr.type == "complex" and sub is None:  # manager eq "id", members eq "id": their value
            if "value" not in attr.subs:
                raise _Syntax(f"{attr.name} is complex: name one of its sub-attributes")
            sub = attr.subs["value"]
        return Match(block, attr, (Condition(sub, self.literal(), (sub or attr).case_exact),))

    def path(self) -> Path:
        block, attr, sub = self.attribute(whole_extension=True)
        conditions = None
        if attr is not None and sub is None and self.peek() == ("open", "["):
            self.at += 1
            conditions = self.value_filter(attr)
            sub = self.after_bracket_sub(attr)
        return Path(block, attr, conditions, sub)

    def end(self) -> None:
        token = self.peek()
        if token is not None:
            raise _Syntax(f"unexpected {token[1]!r} ('or', 'not' and operators other than 'eq' are not supported)")


def parse_filter(kind: Kind, text: str | None) -> Filter | None:
    """The filter in ``text`` (None for no or an empty filter); 400 ``invalidFilter`` otherwise."""
    if text is None or not text.strip():
        return None
    try:
        parser = _Parser(kind, text)
        clauses = [parser.clause()]
        while parser.keyword("and"):
            clauses.append(parser.clause())
        parser.end()
    except _Syntax as e:
        raise Invalid(f"filter {text!r}: {e}. This endpoint understands 'attribute eq \"value\"' "
                      f"clauses joined by 'and'", scim_type="invalidFilter") from None
    return Filter(tuple(clauses))


def parse_path(kind: Kind, text: str) -> Path:
    """An attribute path (PATCH ``path``, a key of a PATCH value, an ``attributes`` name);
    400 ``invalidPath`` when it names nothing this resource type has."""
    try:
        parser = _Parser(kind, text)
        path = parser.path()
        parser.end()
    except _Syntax as e:
        raise Invalid(f"path {text!r}: {e}", scim_type="invalidPath") from None
    return path
