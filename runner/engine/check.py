"""``provision check``: is the target as the mappings say? A reconciliation that writes nothing.

It is a plan that reconciles every object type with its target first (``run --reconcile``
without the export), on a state store that is never written (:mod:`runner.state.dry`), so a
check run twice says the same and a run afterwards still finds everything to do. Each object
the reconciliation or the plan found different is listed with its situation and, per
attribute, the value the mappings give (expected) and the one the target holds (found). ``--fix`` runs the same with the export, so one command repairs a row deleted by
hand, a value edited in the target or an orphan (as ``reconcile.orphan`` says).

The exit code suits monitoring: 0 when the target is as the mappings say, 1 when something
differs (drifted, missing, orphan, ambiguous or colliding objects, or changes not exported yet).
Objects linked by this check (unlinked: the state had lost track of them) do not count when
they hold the right values: the target was right, the state was not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.actions import Action
from runner.engine.context import RunContext, RunOptions
from runner.engine.plan import PlanItem
from runner.engine.run import Summary, execute
from runner.manifest.model import Situation
from runner.state.reconcile import ORPHAN_PREFIX, Finding

SHOWN = 1000  # objects listed per object type; the counts are always complete

# situations that mean "the target is not as the mappings say"
DIFFERENT = (Situation.DRIFTED, Situation.MISSING, Situation.ORPHAN, Situation.AMBIGUOUS, Situation.COLLISION)


@dataclass
class Difference:
    """One object that is not as the mappings say, and what would (or did) happen to it."""

    object_type: str
    situation: str
    anchor: str  # the source anchor; an orphan's target anchor
    target_anchor: str | None = None
    name: str | None = None
    action: str | None = None  # what a run does about it (with --fix, the run's counts say what it did)
    attributes: dict[str, dict[str, Any]] = field(default_factory=dict)  # attr -> expected / found
    note: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if v not in (None, {}, [])}


@dataclass
class CheckReport:
    summary: Summary
    fixed: bool
    situations: dict[str, dict[str, int]] = field(default_factory=dict)
    differences: list[Difference] = field(default_factory=list)
    not_shown: int = 0
    unchecked: list[str] = field(default_factory=list)  # object types whose target cannot be read

    @property
    def differs(self) -> bool:
        return bool(self.differences) or self.not_shown > 0

    @property
    def exit_code(self) -> int:
        """0 only when every object type was read and found as the mappings say: one whose target
        its connector cannot read was not checked, which is not the same as all right."""
        if self.fixed or self.summary.status not in ("ok", "partial"):
            return self.summary.exit_code
        return 1 if self.differs or self.unchecked or self.summary.status == "partial" else 0

    def as_json(self) -> dict[str, Any]:
        return {**self.summary.as_json(), "check": {
            "fixed": self.fixed, "differs": self.differs, "situations": self.situations,
            "differences": [d.as_dict() for d in self.differences], "differences_not_shown": self.not_shown,
            "unchecked": self.unchecked}}


def check(path: str | Path, options: RunOptions, fix: bool = False, links: bool = False) -> CheckReport:
    """Reconcile every selected object type with its target; without ``fix``, write nothing to it.
    ``links``: list every object linked by the match and correlate rules, right values or not
    (``run --adopt-report``)."""
    options.reconcile, options.plan, options.dry = True, not fix, not fix
    items: list[PlanItem] = []
    found: dict[str, list[Finding]] = {}

    def inspect(ctx: RunContext) -> None:
        for name in ctx.reconciled:
            found[name] = ctx.store.reconcile.findings(ctx.type_ids[name])

    summary = execute(path, options, items.append if not fix else None, inspect)
    report = CheckReport(summary, fix)
    report.unchecked = [name for name, counts in summary.object_types.items()
                        if name not in found and not counts.error]
    for name, counts in summary.object_types.items():
        if counts.reconciled is None:
            continue
        report.situations[name] = counts.reconciled
        by_anchor = {i.anchor: i for i in items if i.object_type == name}
        listed: set[str] = set()
        for finding in found.get(name, []):
            if finding.situation not in DIFFERENT and finding.key not in by_anchor and not links:
                continue  # linked by this check with the right values: the target was right
            item = by_anchor.get(ORPHAN_PREFIX + finding.key if finding.situation == Situation.ORPHAN
                                 else finding.key)
            listed.add(item.anchor if item else finding.key)
            report.differences.append(_difference(name, finding.situation, finding.key, finding.detail, item))
        for item in by_anchor.values():  # changes in the source not exported yet
            if item.anchor not in listed:
                report.differences.append(_difference(name, "pending", item.anchor, {}, item))
    if len(report.differences) > SHOWN:
        report.not_shown = len(report.differences) - SHOWN
        report.differences = report.differences[:SHOWN]
    return report


def _difference(object_type: str, situation: str, key: str, detail: dict[str, Any],
                item: PlanItem | None) -> Difference:
    attributes: dict[str, dict[str, Any]] = {}
    if item is not None and item.action == Action.ADD:
        pass  # nothing of it is there: every attribute would be listed as expected
    elif item is not None:  # the plan's old -> new: what the target holds -> what the mappings say
        for attr, change in item.changes.items():
            entry = {"expected": change.get("new")} if "new" in change else {}
            if "old" in change:
                entry["found"] = change["old"]
            if "add" in change:
                entry["missing_values"] = change["add"]
            if "remove" in change:
                entry["extra_values"] = change["remove"]
            attributes[attr] = entry
    elif detail.get("attributes"):
        attributes = dict(detail["attributes"])
    note = detail.get("error")
    if detail.get("not_held"):
        note = (f"the target accepted {', '.join(detail['not_held'])} and does not hold it (written by the last "
                "export, or updated at the last reconciliation and different again): a read-only or dropped "
                "attribute, or changed back since?")
    if situation == Situation.MISSING:
        note = note or "linked in the state, gone from the target"
    elif situation == Situation.ORPHAN:
        holds = ", ".join(f"{k} {v!r}" for k, v in (detail.get("holds") or {}).items())
        note = note or (f"holds {holds}; " if holds else "") + "claimed by no source object" + \
            ("" if item is None else f" ({detail.get('reaction')} it)")
    return Difference(object_type, situation, key, detail.get("target_anchor") or (item.target_anchor if item else None),
                      detail.get("name"), item.action if item else None, attributes, note)
