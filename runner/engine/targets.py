"""The target as read: every partition of an object type, and records in the form the state keeps.

Shared by the reconciliation, crash recovery, lookups of match rules and preview. The *mapped
form* holds mapped attributes only (sensitive ones cannot be read back), references turned into
the source anchors of the objects they name (by target anchor or by target name, an LDAP DN),
and whether the object is disabled.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import Any

from runner.connectors.base import Page, Record
from runner.engine.context import RunContext
from runner.manifest.model import ObjectType
from runner.mapping.mapper import Mapper, normalize
from runner.state.imports import TargetObject
from runner.state.reconcile import GONE_PREFIX


def read_all_partitions(ctx: RunContext, ot: ObjectType) -> Iterator[Page]:
    """A fixed target partition is read alone; a template (``{site}``) means every partition the
    connector reports for the object."""
    connector = ctx.target(ot)
    partition = ot.target.partition
    if partition and "{" not in partition:
        partitions: list[str | None] = [partition]
    else:
        found = [p for info in connector.discover() if info.name == ot.target.object for p in info.partitions]
        partitions = list(found) or [None]
    for name in partitions:
        yield from connector.read(ot.target.object, name, None)


def state_form(ctx: RunContext, ot: ObjectType, mapper: Mapper, records: Sequence[Record]) -> list[TargetObject]:
    """Target records in the form the state keeps: mapped attributes only (sensitive ones are
    unreadable), references turned back into the source anchors of the objects they name
    (values naming objects we do not manage are left out), and whether it is disabled.

    A hot loop (every object of a reconciliation): what does not depend on the record is worked
    out once per page."""
    caps = ctx.caps(ot)
    refs = [(attr, ref_type, caps.reference_form(attr), attr in mapper.multi_valued)
            for attr, ref_type in mapper.references.items() if attr not in mapper.sensitive]
    plain = [(attr, attr in mapper.multi_valued) for attr in mapper.names
             if attr not in mapper.sensitive and attr not in mapper.references]
    wanted: dict[tuple[str, str], set[str]] = defaultdict(set)
    for record in records:
        attributes = record.attributes
        for attr, ref_type, form, _ in refs:
            for value in values_of(attributes.get(attr)):
                wanted[(ref_type, form)].add(str(value))
    known: dict[tuple[str, str], dict[str, str]] = {}
    for (ref_type, form), values in wanted.items():
        type_id = ctx.type_ids[ref_type]
        if form == "name":
            known[(ref_type, form)] = ctx.store.imports.anchors_by_name(type_id, sorted(values))
        else:
            known[(ref_type, form)] = ctx.store.imports.linked_anchors(type_id, sorted(values))
    out: list[TargetObject] = []
    disable = list(ot.target.disable.items())
    for record in records:
        attributes = record.attributes
        data: dict[str, Any] = {}
        for attr, multi in plain:
            if attr in attributes:
                value = attributes[attr]
                if multi:
                    data[attr] = normalize(value, True)
                else:
                    data[attr] = None if value == "" or value == [] else value
        for attr, ref_type, form, multi in refs:
            if attr in attributes:
                names = known.get((ref_type, form), {})
                gone = ctx.gone.get(ref_type, ()) if multi and form == "anchor" else ()
                mapped = [names[str(v)] if str(v) in names else GONE_PREFIX + str(v)
                          for v in values_of(attributes[attr]) if str(v) in names or str(v) in gone]
                data[attr] = normalize(mapped if multi else (mapped[0] if mapped else None), multi)
        disabled = bool(disable) and all(attributes.get(k) == v for k, v in disable)
        out.append(TargetObject(str(record.anchor), data, record.name, record.partition, disabled, record.version))
    return out


def keep_secrets(read: TargetObject, known: dict[str, Any], mapper: Mapper) -> TargetObject:
    """A target object as read, with the sensitive values' digests the state kept (a target never
    returns them), so taking what it holds does not make every password look changed."""
    return read._replace(data={**read.data, **{k: v for k, v in known.items() if k in mapper.sensitive}})


def values_of(value: Any) -> Iterator[Any]:
    if value is None:
        return
    yield from (value if isinstance(value, list | tuple) else [value])
