"""Turn one source record into the target attributes an object type wants.

Values are normalised so they compare the same way every run: empty strings become null,
multi-valued attributes become sorted lists without nulls or duplicates (their order never
matters), references hold the *source* anchors of the objects they point at (the engine turns
them into target keys at export time, when it knows them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from runner.manifest.model import AttributeMapping, ObjectType
from runner.mapping.expressions import Getter, compile_expression, evaluation_error, field_getter


class MappingFailed(ValueError):
    """A record cannot be mapped; the object fails, the run goes on."""

    def __init__(self, attribute: str, reason: str):
        super().__init__(f"attribute {attribute!r}: {reason}")
        self.attribute = attribute


@dataclass(frozen=True)
class CompiledAttribute:
    spec: AttributeMapping
    get: Getter
    ignore_flow: bool = False  # null/empty means "leave the attribute alone", not "clear it"
    redacted: bool = False  # the expression calls redact(): treat as sensitive
    unique: bool = False  # select_unique_value(): the engine picks a candidate free in the target

    @property
    def name(self) -> str:
        return self.spec.target


def _compile(spec: AttributeMapping) -> CompiledAttribute:
    if spec.source is not None:
        return CompiledAttribute(spec, field_getter(spec.source))
    if spec.expression is not None:
        expression = compile_expression(spec.expression)
        return CompiledAttribute(spec, expression.evaluate, expression.ignore_flow, expression.sensitive,
                                 expression.unique)
    constant = spec.constant
    return CompiledAttribute(spec, lambda record: constant)


def as_list(value: Any) -> list[Any]:
    """A single- or multi-valued value as a list (null: empty)."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def normalize(value: Any, multi_valued: bool) -> Any:
    """The comparable form of a mapped value."""
    if multi_valued:
        if value is None:
            return []
        items = value if isinstance(value, list) else [value]
        return sorted({v for v in items if v not in (None, "")}, key=lambda v: (str(type(v)), v))
    if value == "" or value == []:
        return None
    return value


def with_create_defaults(values: dict[str, Any], mapper: Mapper) -> dict[str, Any]:
    """``values`` for a create: null attributes with a (create-only) default take it."""
    if not mapper.create_defaults:
        return values
    out = dict(values)
    for name, default in mapper.create_defaults.items():
        if out.get(name) in (None, []) and name in out:
            out[name] = default
    return out


class Mapper:
    """The compiled mapping of one object type. Compile once per run, call per record."""

    def __init__(self, object_type: ObjectType):
        self.object_type = object_type
        self.attributes = [_compile(spec) for spec in object_type.mapping if not spec.proposed_only]
        # rules under review: computed beside the current ones, reported, never exported
        self.proposed = [_compile(spec.proposed) for spec in object_type.mapping if spec.proposed is not None]
        self.names = frozenset(a.name for a in self.attributes)
        self.unique = frozenset(a.name for a in self.attributes if a.unique)
        self.on_create = frozenset(a.name for a in self.attributes if a.spec.apply == "on_create" or a.unique)
        self.sensitive = frozenset(a.name for a in self.attributes if a.spec.sensitive or a.redacted)
        self.references = {a.name: a.spec.reference for a in self.attributes if a.spec.reference}
        self.multi_valued = frozenset(a.name for a in self.attributes if a.spec.multi_valued)
        self.passwords = frozenset(a.name for a in self.attributes if a.spec.password)
        # a null value clears the target only where asked, and always for references (never dangle)
        self.clear_on_null = frozenset(a.name for a in self.attributes if a.spec.null == "clear" or a.spec.reference)
        self.create_defaults = {a.name: normalize(a.spec.default, a.spec.multi_valued) for a in self.attributes
                                if a.spec.default is not None and not a.spec.default_always}
        # what map() needs of each attribute, unpacked once: it runs for every object of every run
        self._plan = tuple((a.name, a.get, a.spec.default if a.spec.default_always else None, a.spec.multi_valued,
                            a.ignore_flow) for a in self.attributes)

    def map_proposed(self, record: dict[str, Any]) -> dict[str, Any]:
        """The values the proposed rules give ``record`` (an attribute whose rule fails: its error)."""
        out: dict[str, Any] = {}
        for attr in self.proposed:
            try:
                out[attr.name] = normalize(attr.get(record), attr.spec.multi_valued)
            except Exception as exc:  # reported, like any difference: the rule is under review
                out[attr.name] = f"(fails: {evaluation_error(exc)})"
        return out

    def map(self, record: dict[str, Any]) -> dict[str, Any]:
        """Every mapped attribute of ``record``; raises MappingFailed naming the attribute."""
        out: dict[str, Any] = {}
        for name, get, default, multi_valued, ignore_flow in self._plan:
            try:
                value = get(record)
            except Exception as exc:  # an expression error is a data error in this one record
                raise MappingFailed(name, evaluation_error(exc)) from None
            if default is not None and (value is None or value == ""):
                value = default
            if multi_valued:
                value = normalize(value, True)
            elif value == "" or value == []:  # normalize() of a single value, inline
                value = None
            if ignore_flow and value in (None, []):
                continue
            out[name] = value
        return out
