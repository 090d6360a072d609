"""Explain what an object type does with one record: each scope clause's result, each mapped
attribute's rule and value. Used by ``provision preview`` and ``provision test``.

Nothing here decides anything: every clause and every attribute is evaluated by
:func:`runner.mapping.scope.compile_scope` and :class:`runner.mapping.mapper.Mapper`, one at a
time, so an explanation can never disagree with what a run does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

from runner.manifest.model import AttributeMapping, Clause, Group, ObjectType
from runner.mapping.mapper import Mapper, MappingFailed
from runner.mapping.scope import NO_VALUE_OPS, compile_scope
from runner.secrets import MASK


def show(value: Any) -> str:
    """A value as it reads in a message: JSON, without escaping non-ASCII letters."""
    return json.dumps(value, ensure_ascii=False, default=str)


@dataclass(frozen=True)
class ScopeStep:
    """One line of a scoping filter: a group (``all:``/``any:``) or a clause, and its result."""

    depth: int
    text: str
    result: bool
    attribute: str | None = None  # a clause's attribute, whose value is ``value``
    value: Any = None

    def line(self) -> str:
        out = f"{'  ' * self.depth}{self.text}: {str(self.result).lower()}"
        if self.attribute is not None:
            out += f"  ({self.attribute} = {show(self.value)})"
        return out

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"depth": self.depth, "rule": self.text, "result": self.result}
        if self.attribute is not None:
            out["value"] = self.value
        return out


def clause_text(clause: Clause) -> str:
    if clause.op in NO_VALUE_OPS:
        return f"{clause.attribute} {clause.op}"
    return f"{clause.attribute} {clause.op} {show(clause.value)}"


def explain_scope(group: Group | None, record: dict[str, Any], depth: int = 0) -> list[ScopeStep]:
    """Every group and clause of ``group`` with its result for ``record``; [] without a filter."""
    if group is None:
        return []
    steps = [ScopeStep(depth, group.kind, bool(compile_scope(group)(record)))]
    for item in group.items:
        if isinstance(item, Group):
            steps += explain_scope(item, record, depth + 1)
        else:
            result = bool(compile_scope(Group("all", (item,)))(record))
            steps.append(ScopeStep(depth + 1, clause_text(item), result, item.attribute, record.get(item.attribute)))
    return steps


@dataclass(frozen=True)
class AttributeStep:
    """One mapped attribute: its rule and the value it gives (or why it gives none)."""

    target: str
    rule: str
    value: Any = None
    left_out: bool = False  # ignore_flow_if_null_or_empty: the attribute is not sent at all
    error: str | None = None
    sensitive: bool = False
    reference: str | None = None

    @property
    def shown(self) -> str:
        if self.error is not None:
            return f"fails: {self.error}"
        if self.left_out:
            return "nothing (left out: the target keeps its value)"
        if self.sensitive and self.value is not None:
            return MASK
        return show(self.value)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"target": self.target, "rule": self.rule,
                               "value": MASK if self.sensitive and self.value is not None else self.value}
        if self.left_out:
            out["left_out"] = True
        if self.error is not None:
            out["error"] = self.error
        if self.reference is not None:
            out["reference"] = self.reference
        return out


MASK_TEXT = "***"


def rule_text(spec: AttributeMapping) -> str:
    """How an attribute is mapped, for people; values of sensitive attributes (and expressions
    holding a ${env:}/${file:} value) are not shown."""
    from runner.manifest.yamlfile import FromOutside

    hide = spec.sensitive
    if spec.source is not None:
        text = f"source {spec.source}"
    elif spec.expression is not None:
        text = ("expression *** (it holds a ${env:}/${file:} value)" if isinstance(spec.expression, FromOutside)
                else "expression *** (sensitive: its text may hold the secret)" if hide
                else f"expression {' '.join(spec.expression.split())}")
    else:
        text = f"constant {MASK_TEXT if hide else show(spec.constant)}"
    extras = []
    if spec.default is not None:
        extras.append(f"default {MASK_TEXT if hide else show(spec.default)}"
                      + ("" if spec.default_always else " on create"))
    if spec.null == "clear" and not spec.reference:
        extras.append("null clears")
    if spec.reference:
        extras.append(f"reference to {spec.reference}")
    if spec.multi_valued:
        extras.append("multi-valued")
    if spec.apply == "on_create":
        extras.append("on create only")
    if spec.sensitive:
        extras.append("sensitive")
    return text + (f" ({', '.join(extras)})" if extras else "")


def explain_mapping(ot: ObjectType, record: dict[str, Any]) -> list[AttributeStep]:
    """Each mapped attribute of ``ot`` for ``record``. One failing attribute does not hide the
    others (a run fails the whole object; :meth:`Mapper.map` says which attribute first)."""
    steps: list[AttributeStep] = []
    for spec in ot.mapping:
        one = Mapper(replace(ot, mapping=(spec,)))
        sensitive = spec.target in one.sensitive
        try:
            values = one.map(record)
        except MappingFailed as exc:
            steps.append(AttributeStep(spec.target, rule_text(spec), error=str(exc), sensitive=sensitive,
                                       reference=spec.reference))
            continue
        steps.append(AttributeStep(spec.target, rule_text(spec), values.get(spec.target),
                                   left_out=spec.target not in values, sensitive=sensitive,
                                   reference=spec.reference))
    return steps
