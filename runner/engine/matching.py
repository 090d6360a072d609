"""Match rules: adopt an existing target object on first contact instead of creating a duplicate.

When an object type has ``match:`` rules, the target is read before compute and the values the
rules look at are indexed in the state store. A source object with no link tries the rules in
order; the first rule with exactly one unlinked hit links it. Two or more hits are a conflict:
the object is not exported and the log names the candidates. Once linked, the link holds (a
later rename does not re-match). Values compare trimmed and case-folded, then through the
normalizations the target connector declares for the attribute.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from runner.engine.context import RunContext
from runner.engine.diff import comparer
from runner.engine.targets import state_form
from runner.manifest.model import ObjectType, Situation
from runner.mapping.expressions import compile_expression, field_getter
from runner.mapping.mapper import Mapper
from runner.names import normalize_dn

NAME = "__name__"  # the target index's entry for an object's name (correlation by DN)


class MatchConflict(ValueError):
    """The object cannot be linked safely: several candidates (ambiguous), its one candidate is
    claimed by another source object (collision), or linking is left to a person (unlinked,
    with ``reconcile.unlinked: report``). It is held, not added, and reported."""

    def __init__(self, message: str, situation: Situation = Situation.AMBIGUOUS, candidates: Sequence[str] = ()):
        super().__init__(message)
        self.situation = situation
        self.candidates = list(candidates)


def fold(value: Any, attribute: str = "", normalizations: Mapping[str, tuple[str, ...]] | None = None) -> str:
    """The form match rules and unique values compare in: trimmed, case-folded, then whatever the
    target declares for the attribute (e.g. remove_diacritics makes Zoë match Zoe)."""
    text = str(value).strip().casefold()
    return comparer(normalizations)(attribute, text) if normalizations else text


def pick_unique(ctx: RunContext, type_id: int, anchor: str, desired: dict[str, Any], mapper: Mapper) -> None:
    """Replace select_unique_value candidates in ``desired`` by the first value free in the target
    (and not reserved by another new object); raise ValueError when none is."""
    if not mapper.unique:
        return
    store = ctx.store
    rules = ctx.caps(mapper.object_type).normalizations
    for attr in mapper.unique:
        candidates = desired.get(attr)
        if not isinstance(candidates, list) or not candidates:
            desired[attr] = None
            continue
        earlier = store.imports.reserved(type_id, attr, anchor)
        chosen = next((c for c in candidates if fold(c, attr, rules) == earlier), None)
        numbered = getattr(candidates, "numbered", False)  # one candidate only: jsmith2, jsmith3, ...
        if chosen is None:
            tries = list(candidates) + ([f"{candidates[-1]}{n}" for n in range(2, UNIQUE_SUFFIXES + 2)]
                                        if numbered else [])
            chosen = next((c for c in tries if store.imports.reserve_if_free(type_id, attr, fold(c, attr, rules), anchor)),
                          None)
        if chosen is None:
            raise ValueError(f"attribute {attr!r}: no free value among {candidates[:3]} and "
                             f"{UNIQUE_SUFFIXES} numbered variants" if numbered else
                             f"attribute {attr!r}: every candidate of select_unique_value() is taken in the "
                             f"target ({', '.join(map(repr, candidates))}); add another candidate")
        desired[attr] = chosen


UNIQUE_SUFFIXES = 999


LOOKUP_LIMIT = 100  # at most this many unlinked objects: ask the target per object instead of reading it all


# a rule's value from (source record, mapped values, rendered name)
Value = Callable[[dict[str, Any], dict[str, Any], str | None], Any]


class Matcher:
    """The compiled match rules of one object type.

    Two ways to find candidates: in the index a target read filled (first contact, many
    unlinked objects: one paged read), or by asking the target (``lookups=True``: a handful of
    new hires, when reading a million entries to match three would be absurd).

    ``correlate=True`` (a reconciliation): without match rules, the correlation attributes
    (``target.correlate`` or the connector's natural key) are the rules, compared on the mapped
    values, and a hierarchical target's objects correlate by name. So a first contact with a
    target that already holds the objects (a lost state store, a new pipeline on an old
    directory) links them instead of adding them twice. ``link=False`` (``reconcile.unlinked:
    report``) holds an object that would link instead of linking it."""

    def __init__(self, ctx: RunContext, ot: ObjectType, lookups: bool = False, correlate: bool = False,
                 link: bool = True):
        self.ctx, self.ot, self.type_id = ctx, ot, ctx.type_ids[ot.name]
        self.lookups, self.link = lookups, link
        self.normalizations = ctx.caps(ot).normalizations
        self.rules: list[tuple[str, Value, str]] = []
        for rule in ot.match:
            get = field_getter(rule.source) if rule.source else compile_expression(rule.expression or "").evaluate
            self.rules.append((rule.source or rule.expression or "", _on_source(get), rule.target))
        if correlate and not self.rules:
            self.rules = correlation_rules(ctx, ot)
        self.linked = 0  # objects linked by the rules in this run
        self.indexed = lookups or ctx.store.imports.has_target_index(self.type_id)

    def find(self, record: dict[str, Any], desired: dict[str, Any] | None = None,
             name: str | None = None) -> str | None:
        """The target anchor this record matches, None for no match; MatchConflict for several,
        for a candidate another source object claims, or for a match a person must confirm."""
        for label, get, target_attr in self.rules:
            try:
                value = get(record, desired or {}, name)
            except Exception:  # a rule that cannot be evaluated for this record simply does not match
                continue
            if value in (None, ""):
                continue
            claimed: list[str] = []
            if self.lookups:
                hits = self._ask(target_attr, value)
            elif not self.indexed:
                hits = []  # the target held nothing when it was read: nothing to match
            else:
                folded = normalize_dn(str(value)) if target_attr == NAME else fold(value, target_attr,
                                                                                    self.normalizations)
                hits = self.ctx.store.imports.match_candidates(self.type_id, target_attr, folded)
                if not hits:
                    claimed = self.ctx.store.imports.match_candidates(self.type_id, target_attr, folded, claimed=True)
            shown = "name" if target_attr == NAME else target_attr
            if len(hits) == 1:
                if not self.link:
                    raise MatchConflict(f"{label} = {value!r} matches target object {hits[0]} by {shown}; "
                                        "reconcile.unlinked: report holds it until a person links it",
                                        Situation.UNLINKED, hits)
                self.linked += 1
                return hits[0]
            if len(hits) > 1:
                raise MatchConflict(f"{label} = {value!r} matches {len(hits)} target objects by {shown} "
                                    f"({', '.join(hits)}); nothing exported until one remains", candidates=hits)
            if claimed:
                raise MatchConflict(f"{label} = {value!r} matches target object {claimed[0]} by {shown}, which "
                                    "another source object already claims; nothing exported until one of them "
                                    "changes", Situation.COLLISION, claimed)
        return None

    def _ask(self, attribute: str, value: Any) -> list[str]:
        """Unlinked target objects holding ``value``, asked of the target; what they hold is
        recorded so compute can diff against it."""
        records = [r for r in self.ctx.target(self.ot).lookup(self.ot.target.object, {attribute: value})
                   if r.anchor is not None] if attribute != NAME else []
        linked = self.ctx.store.imports.linked_anchors(self.type_id, [str(r.anchor) for r in records])
        records = [r for r in records if str(r.anchor) not in linked]
        if len(records) == 1:
            self.ctx.store.imports.store_targets(self.type_id, state_form(self.ctx, self.ot, Mapper(self.ot), records),
                                                 overwrite=False)
        return sorted(str(r.anchor) for r in records)


def few_unlinked(ctx: RunContext, ot: ObjectType) -> bool:
    """Whether the target was read before (first contact is over) and so few source objects lack
    a target object now that lookups beat reading the target again. Lookups compare values as
    the target does (its collation), a full read as match rules fold them (trimmed, case-folded)."""
    type_id = ctx.type_ids[ot.name]
    if ctx.store.imports.watermark(type_id, "target", None) is None:
        return False
    if ctx.store.runs.count_unlinked(type_id, 1, failing=True):
        return False  # an unresolved match (a conflict) is judged again the way it was first judged
    return ctx.store.runs.count_unlinked(type_id, LOOKUP_LIMIT + 1) <= LOOKUP_LIMIT


def _on_source(get: Callable[[dict[str, Any]], Any]) -> Value:
    return lambda record, desired, name: get(record)


def correlation_rules(ctx: RunContext, ot: ObjectType) -> list[tuple[str, Value, str]]:
    """Rules from the attributes that identify an object in the target: ``target.correlate``, else
    the connector's natural key, else (hierarchical targets) the object's name."""
    attributes = ot.target.correlate or ctx.caps(ot).correlation
    if attributes:
        return [(attr, lambda record, desired, name, a=attr: desired.get(a), attr) for attr in attributes]
    if ot.target.name:
        return [("target.name", lambda record, desired, name: name, NAME)]
    return []
