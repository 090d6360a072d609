"""Reading the target back: what it really holds, in the form the state keeps.

Used on first contact (match rules, unique values), with ``--full``, and by crash recovery.
Target records become *mapped form*: mapped attributes only (sensitive ones cannot be read
back), references turned into the source anchors of the objects they name, whether by target
anchor or by target name (an LDAP DN). A linked object whose target values differ from what the
state believed (drift, or an export whose result was lost) is computed again, so the next
export changes it by difference.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import Any

from runner.connectors.base import ConnectionFailed, Page, Record
from runner.engine.context import RunContext
from runner.engine.matching import fold
from runner.manifest.model import ObjectType
from runner.mapping.mapper import Mapper, normalize
from runner.state.base import now_iso
from runner.state.imports import TargetObject


def import_target(ctx: RunContext, ot: ObjectType, mapper: Mapper) -> int:
    """Read the target object type: index what match rules and unique values look at, and
    reconcile what the state knows of each object with what the target holds."""
    type_id = ctx.type_ids[ot.name]
    wanted = {rule.target for rule in ot.match} | set(mapper.unique)
    rules = ctx.caps(ot).normalizations
    count = drifted = 0
    ctx.store.begin_target_import(type_id)
    for page in read_all_partitions(ctx, ot):
        index: list[tuple[str, str, str]] = []
        for record in page.records:
            if record.anchor is None:
                raise ConnectionFailed(f"{ot.name}: the target connector returned an object without an anchor; "
                                       "it cannot be matched or reconciled")
            for attr in wanted:
                for v in _values(record.attributes.get(attr)):
                    if v not in (None, ""):
                        index.append((attr, fold(v, attr, rules), str(record.anchor)))
        objects = state_form(ctx, ot, mapper, page.records)
        drifted += _reconcile(ctx, ot, mapper, objects)
        ctx.store.index_targets(type_id, [o.target_anchor for o in objects], index)
        ctx.heartbeat()
        ctx.store.commit()
        count += len(objects)
    ctx.store.set_watermark(type_id, "target", None, now_iso())  # first contact is over
    ctx.store.commit()
    ctx.logger.info("%s: read %d target objects (%d differ from what the state knew)", ot.name, count, drifted)
    return count


def _reconcile(ctx: RunContext, ot: ObjectType, mapper: Mapper, objects: list[TargetObject]) -> int:
    """Store unknown objects; overwrite known ones that differ, and compute their source objects again."""
    store, type_id = ctx.store, ctx.type_ids[ot.name]
    known = store.targets_data(type_id, [o.target_anchor for o in objects])
    fresh, changed = [], []
    for obj in objects:
        if obj.target_anchor not in known:
            fresh.append(obj)
            continue
        old, was_disabled = known[obj.target_anchor]
        merged = {**obj.data, **{k: v for k, v in old.items() if k in mapper.sensitive}}
        if any(old.get(k) != v for k, v in obj.data.items()) or was_disabled != obj.disabled:
            changed.append(obj._replace(data=merged))
    store.store_targets(type_id, fresh, overwrite=False)
    if changed:
        store.store_targets(type_id, changed, overwrite=True)
        linked = store.linked_anchors(type_id, [o.target_anchor for o in changed])
        store.mark_dirty(type_id, list(linked.values()))
    return len(changed)


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
    (values naming objects we do not manage are left out), and whether it is disabled."""
    caps = ctx.caps(ot)
    wanted: dict[tuple[str, str], set[str]] = defaultdict(set)
    for record in records:
        for attr, ref_type in mapper.references.items():
            for value in _values(record.attributes.get(attr)):
                wanted[(ref_type, caps.reference_form(attr))].add(str(value))
    known: dict[tuple[str, str], dict[str, str]] = {}
    for (ref_type, form), values in wanted.items():
        type_id = ctx.type_ids[ref_type]
        if form == "name":
            known[(ref_type, form)] = {k: v for k, v in ctx.store.anchors_by_name(type_id, sorted(values)).items()}
        else:
            known[(ref_type, form)] = ctx.store.linked_anchors(type_id, sorted(values))
    out: list[TargetObject] = []
    disable = ot.target.disable
    for record in records:
        data: dict[str, Any] = {}
        for attr in mapper.names:
            if attr in mapper.sensitive or attr not in record.attributes:
                continue
            value = record.attributes[attr]
            ref_type = mapper.references.get(attr)
            if ref_type is not None:
                names = known.get((ref_type, caps.reference_form(attr)), {})
                mapped = [names[str(v)] for v in _values(value) if str(v) in names]
                value = mapped if attr in mapper.multi_valued else (mapped[0] if mapped else None)
            data[attr] = normalize(value, attr in mapper.multi_valued)
        disabled = bool(disable) and all(record.attributes.get(k) == v for k, v in disable.items())
        out.append(TargetObject(str(record.anchor), data, record.name, record.partition, disabled, record.version))
    return out




def _values(value: Any) -> Iterator[Any]:
    if value is None:
        return
    yield from (value if isinstance(value, list | tuple) else [value])
