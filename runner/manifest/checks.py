"""Semantic checks: what a JSON Schema cannot say about a manifest.

Unknown connector types and objects, duplicate target attributes, expressions that do not
compile, references to unknown object types or to types listed later, and options that
contradict each other. Every check reports all it finds; nothing stops at the first.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from runner.connectors.base import Connector, ConnectorContext
from runner.connectors.registry import UnknownConnector, connector_class
from runner.errors import Problem
from runner.manifest import schema
from runner.manifest.model import Manifest, ObjectType
from runner.manifest.yamlfile import Located
from runner.mapping.expressions import ExpressionError, compile_expression
from runner.mapping.scope import scope_problems


def connector_problems(data: dict[str, Any], located: Located, base_dir: Any) -> tuple[list[Problem], dict[str, Connector]]:
    """Check each connector block against its connector's own schema; build the connectors."""
    found: list[Problem] = []
    built: dict[str, Connector] = {}
    for name, block in data.get("connectors", {}).items():
        at = ("connectors", name)
        try:
            cls = connector_class(block["type"])
        except UnknownConnector as exc:
            found.append(located.problem((*at, "type"), str(exc) + "; third-party connectors register "
                                         "under the 'provision.connectors' entry point"))
            continue
        block_problems = schema.problems(dict(cls.config_schema), block, located, at)
        found += block_problems
        if block_problems:
            continue
        connector = cls(block, ConnectorContext(name, base_dir))
        for path, message in connector.check():
            found.append(located.problem((*at, *path), message))
        built[name] = connector
    return found, built


def semantic_problems(manifest: Manifest, located: Located, connectors: dict[str, Connector]) -> list[Problem]:
    found: list[Problem] = []
    seen: dict[str, int] = {}
    for index, ot in enumerate(manifest.object_types):
        if ot.name in seen:
            found.append(located.problem((*ot.path, "name"), f"object type {ot.name!r} is already defined "
                                         f"as object_types[{seen[ot.name]}]"))
        seen.setdefault(ot.name, index)
        found += list(_endpoint_problems(ot, located, connectors))
        found += list(_mapping_problems(ot, index, manifest, located))
        found += [located.problem(e.path, str(e)) for e in scope_problems(ot.scope)]
        found += list(_match_problems(ot, located))
        found += list(_disable_problems(ot, located))
    return found


def _endpoint_problems(ot: ObjectType, located: Located, connectors: dict[str, Connector]) -> Iterator[Problem]:
    for side, spec in (("source", ot.source), ("target", ot.target)):
        at = (*ot.path, side)
        if spec.connector not in connectors:
            if spec.connector not in located.data.get("connectors", {}):
                known = ", ".join(sorted(located.data.get("connectors", {})))
                yield located.problem((*at, "connector"), f"unknown connector {spec.connector!r}; defined: {known}")
            continue
        connector = connectors[spec.connector]
        names = connector.object_names()
        if names is not None and spec.object not in names:
            yield located.problem((*at, "object"), f"connector {spec.connector!r} has no object {spec.object!r}; "
                                  f"it has: {', '.join(names) or 'none'}")
        if side == "target" and not connector.capabilities().operations:
            yield located.problem((*at, "connector"), f"connector {spec.connector!r} (type {connector.type_name}) "
                                  "can only be read, not written to")


def _mapping_problems(ot: ObjectType, index: int, manifest: Manifest, located: Located) -> Iterator[Problem]:
    order = {t.name: i for i, t in reversed(list(enumerate(manifest.object_types)))}
    targets: dict[str, Any] = {}
    for m in ot.mapping:
        kinds = [k for k, present in (("source", m.source is not None), ("constant", m.has_constant),
                                      ("expression", m.expression is not None)) if present]
        if len(kinds) != 1:
            what = "none" if not kinds else " and ".join(kinds)
            yield located.problem(m.path, f"attribute {m.target!r} needs exactly one of source, constant or "
                                  f"expression (has {what})")
        if m.target in targets:
            first = located.where(targets[m.target])
            yield located.problem((*m.path, "target"), f"duplicate target attribute {m.target!r} "
                                  f"(first mapped at line {first[1]})")
        targets.setdefault(m.target, m.path)
        if m.expression is not None:
            try:
                compile_expression(m.expression)
            except ExpressionError as exc:
                yield located.problem((*m.path, "expression"), str(exc))
        if m.reference is not None:
            if m.reference not in order:
                yield located.problem((*m.path, "reference"), f"unknown object type {m.reference!r}; "
                                      f"defined: {', '.join(order)}")
            elif order[m.reference] > index:
                yield located.problem((*m.path, "reference"), f"object type {m.reference!r} is listed after "
                                      f"{ot.name!r}; list it first so its objects exist when referenced")
        if m.sensitive and m.reference:
            yield located.problem((*m.path, "sensitive"), "a reference cannot be sensitive")


def _match_problems(ot: ObjectType, located: Located) -> Iterator[Problem]:
    for rule in ot.match:
        if (rule.source is None) == (rule.expression is None):
            yield located.problem(rule.path, "a match rule needs exactly one of source or expression")
        if rule.expression is not None:
            try:
                compile_expression(rule.expression)
            except ExpressionError as exc:
                yield located.problem((*rule.path, "expression"), str(exc))


def _disable_problems(ot: ObjectType, located: Located) -> Iterator[Problem]:
    uses_disable = ot.when_deleted == "disable" or (ot.when_out_of_scope == "disable" and ot.scope is not None)
    if uses_disable and not ot.target.disable:
        which = "when_out_of_scope" if ot.when_out_of_scope == "disable" else "when_deleted"
        yield located.problem((*ot.path, which), "disabling needs target.disable: the attributes that mark "
                              "an object disabled, e.g. {active: false}")
    for name in ot.target.disable:
        if ot.attribute(name) is None:
            yield located.problem((*ot.path, "target", "disable", name), f"disable attribute {name!r} must also "
                                  "be mapped, so an object that comes back in scope is enabled again")
