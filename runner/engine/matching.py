"""Match rules: adopt an existing target object on first contact instead of creating a duplicate.

When an object type has ``match:`` rules, the target is read before compute and the values the
rules look at are indexed in the state store. A source object with no link tries the rules in
order; the first rule with exactly one unlinked hit links it. Two or more hits are a conflict:
the object is not exported and the log names the candidates. Once linked, the link holds (a
later rename does not re-match). Values compare trimmed and case-folded, then through the
normalizations the target connector declares for the attribute.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from runner.connectors.base import ConnectionFailed, Page
from runner.engine.context import RunContext
from runner.engine.diff import comparer
from runner.manifest.model import ObjectType
from runner.mapping.expressions import Getter, compile_expression, field_getter
from runner.mapping.mapper import Mapper


class MatchConflict(ValueError):
    pass


def fold(value: Any, attribute: str = "", normalizations: Mapping[str, tuple[str, ...]] | None = None) -> str:
    """The form match rules and unique values compare in: trimmed, case-folded, then whatever the
    target declares for the attribute (e.g. remove_diacritics makes Zoë match Zoe)."""
    text = str(value).strip().casefold()
    return comparer(normalizations)(attribute, text) if normalizations else text


def import_target(ctx: RunContext, ot: ObjectType, mapper: Mapper) -> int:
    """Read the target object type and index the attributes the match rules use."""
    type_id = ctx.type_ids[ot.name]
    wanted = {rule.target for rule in ot.match} | set(mapper.unique)
    kept = [a.name for a in mapper.attributes if a.name not in mapper.references and a.name not in mapper.sensitive]
    count = 0
    rules = ctx.target(ot).capabilities().normalizations
    ctx.store.begin_target_import(type_id)
    for page in _read_all_partitions(ctx, ot):
        records, index = [], []
        for record in page.records:
            if record.anchor is None:
                raise ConnectionFailed(f"{ot.name}: the target connector returned an object without an anchor; "
                                       "it cannot be used with match rules")
            anchor = str(record.anchor)
            records.append((anchor, {k: record.attributes.get(k) for k in kept}, record.name))
            for attr in wanted:
                value = record.attributes.get(attr)
                for v in value if isinstance(value, list) else [value]:
                    if v not in (None, ""):
                        index.append((attr, fold(v, attr, rules), anchor))
        ctx.store.import_target_page(type_id, records, index)
        ctx.store.commit()
        count += len(records)
    ctx.logger.info("%s: read %d target objects for matching", ot.name, count)
    return count


def pick_unique(ctx: RunContext, type_id: int, anchor: str, desired: dict[str, Any], mapper: Mapper) -> None:
    """Replace select_unique_value candidates in ``desired`` by the first value free in the target
    (and not reserved by another new object); raise ValueError when none is."""
    if not mapper.unique:
        return
    store = ctx.store
    rules = ctx.target(mapper.object_type).capabilities().normalizations
    for attr in mapper.unique:
        candidates = desired.get(attr)
        if not isinstance(candidates, list) or not candidates:
            desired[attr] = None
            continue
        earlier = store.reserved(type_id, attr, anchor)
        chosen = next((c for c in candidates if fold(c, attr, rules) == earlier), None)
        if chosen is None:
            tries = list(candidates) + [f"{candidates[-1]}{n}" for n in range(2, UNIQUE_SUFFIXES + 2)]
            chosen = next((c for c in tries if store.reserve_if_free(type_id, attr, fold(c, attr, rules), anchor)), None)
        if chosen is None:
            raise ValueError(f"attribute {attr!r}: no free value among {candidates[:3]} and "
                             f"{UNIQUE_SUFFIXES} numbered variants")
        desired[attr] = chosen


UNIQUE_SUFFIXES = 999


def _read_all_partitions(ctx: RunContext, ot: ObjectType) -> Iterator[Page]:
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


class Matcher:
    """The compiled match rules of one object type."""

    def __init__(self, ctx: RunContext, ot: ObjectType):
        self.ctx, self.type_id = ctx, ctx.type_ids[ot.name]
        self.normalizations = ctx.target(ot).capabilities().normalizations
        self.rules: list[tuple[str, Getter, str]] = []
        for rule in ot.match:
            getter = field_getter(rule.source) if rule.source else compile_expression(rule.expression or "").evaluate
            self.rules.append((rule.source or rule.expression or "", getter, rule.target))

    def find(self, record: dict[str, Any]) -> str | None:
        """The target anchor this record matches, None for no match; MatchConflict for several."""
        for label, get, target_attr in self.rules:
            try:
                value = get(record)
            except Exception:  # a rule that cannot be evaluated for this record simply does not match
                continue
            if value in (None, ""):
                continue
            hits = self.ctx.store.match_candidates(self.type_id, target_attr,
                                                   fold(value, target_attr, self.normalizations))
            if len(hits) == 1:
                return hits[0]
            if len(hits) > 1:
                raise MatchConflict(f"{label} = {value!r} matches {len(hits)} target objects by {target_attr} "
                                    f"({', '.join(hits)}); nothing exported until one remains")
        return None
