"""Text forms for the terminal: attribute changes (plan, preview) and the preview report."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runner import secrets
from runner.mapping.explain import show

if TYPE_CHECKING:
    from runner.engine.preview import Preview

_OUT_OF_SCOPE = {"disable": "disabled if provisioned", "delete": "deleted if provisioned",
                 "ignore": "left alone if provisioned"}


def change_lines(changes: dict[str, Any]) -> list[str]:
    """One line per attribute: ``attr: old -> new``, ``attr: new``, or ``attr: +added -removed``."""
    lines = []
    for attr, change in changes.items():
        if "add" in change or "remove" in change:
            parts = [f"+{show(v)}" for v in change.get("add", [])] + [f"-{show(v)}" for v in change.get("remove", [])]
            lines.append(f"{attr}: {' '.join(parts)}")
        elif "old" in change:
            lines.append(f"{attr}: {show(change['old'])} -> {show(change['new'])}")
        elif change.get("new") is not None:
            lines.append(f"{attr}: {show(change['new'])}")
    return lines


def render(p: Preview) -> str:
    """The preview as text, one section per step."""
    lines = [f"preview of {p.object_type} {p.anchor} ({p.pipeline})"]
    what = {"new": "new to the state store", "changed": f"changed since last seen: {', '.join(p.changed)}",
            "unchanged": "unchanged since last seen"}[p.imported]
    lines.append(f"import: found after {p.read} record{'s' if p.read != 1 else ''}; {what}")
    lines += [f"    {k}: {show(v)}" for k, v in p.source.items()]
    if not p.scope:
        lines.append("scope: in scope (no scoping filter)")
    else:
        verdict = "in scope" if p.in_scope else f"out of scope ({_OUT_OF_SCOPE[p.when_out_of_scope]})"
        lines.append(f"scope: {verdict}")
        lines += ["    " + s.line() for s in p.scope]
    lines.append(f"match: {_match_text(p)}")
    for rule in p.match_rules:
        hits = ", ".join(rule["hits"]) or "no unlinked target object"
        lines.append(f"    {rule['rule']}: {show(rule['value'])} -> {rule.get('error') or hits}")
    lines.append("mapping:" if p.in_scope else "mapping (not exported: out of scope):")
    for step in p.mapping:
        line = f"    {step.target}: {step.rule} -> {step.shown}"
        refs = p.references.get(step.target)
        if refs:
            line += "; " + ", ".join(f"{r['anchor']} " + _reference_text(r) for r in refs)
        lines.append(line)
    if p.target_read == "missing":
        lines.append("target: the linked object is gone from the target; it is created again")
    if p.target is not None:
        where = "as read from the target now" if p.target_read == "read" else "as the state store knows it"
        lines.append(f"target ({where}){', disabled' if p.target_disabled else ''}:")
        lines += [f"    {k}: {show(v)}" for k, v in p.target.items()]
    lines.append(f"diff: {_diff_head(p)}")
    if p.change is not None:
        lines += ["    " + line for line in change_lines(p.change.changes)]
    if p.applied:
        if p.result is None:
            lines.append("apply: nothing to export")
        elif p.result["result"] == "ok":
            target = f" (target {p.result['target_anchor']})" if p.result["target_anchor"] else ""
            lines.append(f"apply: {p.result['action']} ok{target}")
        else:
            lines.append(f"apply: failed: {p.result['error']}")
    else:
        lines.append("nothing written (--apply exports this object)")
    return secrets.redact("\n".join(lines))


def _reference_text(ref: dict[str, Any]) -> str:
    if ref["target_anchor"] is not None:
        return f"is target {ref['target_anchor']}"
    if ref["provisioned"]:
        return "is not in the target yet: set once it is added"
    return "is not provisioned: left out"


def _match_text(p: Preview) -> str:
    if p.linked is not None:
        return f"linked to target {p.linked} (stored link)"
    if p.matched is not None:
        return f"matched target {p.matched} by the match rules"
    if not p.in_scope:
        return "not linked to a target object"
    if p.match_rules:
        return "no target object matches: a new one is added"
    return "not linked to a target object: a new one is added"


def _diff_head(p: Preview) -> str:
    if p.error is not None:
        return f"the object fails: {p.error}"
    if p.change is None:
        return "nothing to export: the target holds these values" if p.in_scope else "nothing to export"
    head = p.change.action
    if p.change.target_anchor:
        head += f" target {p.change.target_anchor}"
    if p.change.error:
        head += f" (retrying after: {p.change.error})"
    return head




def discovery_lines(d: Any) -> list[str]:
    """``provision discover``: the server's facts, then each object type and its attributes as a table."""
    lines = [f"connector {d.connector} ({d.type_name})"]
    if d.server:
        lines.append("  server:")
        for key, value in d.server.items():
            shown = ", ".join(str(v) for v in value) if isinstance(value, list | tuple | set) else value
            lines.append(f"    {key}: {shown}")
    for o in d.objects:
        facts = [f for f in ("complete" if o.complete else "", f"partitions: {', '.join(o.partitions)}"
                             if o.partitions else "") if f]
        lines.append(f"  object {o.name}" + (f" ({'; '.join(facts)})" if facts else "")
                     + (f": {o.description}" if o.description else ""))
        width = max((len(a.name) for a in o.attributes), default=0)
        for a in o.attributes:
            flags = [a.type, "multi" if a.multi_valued else "single"]
            flags += [f for f, on in (("required", a.required), ("read-only", a.read_only)) if on]
            if a.syntax:
                flags.append(f"syntax {a.syntax}")
            if a.normalizations:
                flags.append(f"compared {'+'.join(a.normalizations)}")
            lines.append(f"    {a.name.ljust(width)}  {', '.join(flags)}")
    return lines


_SITUATION_TEXT = {"drifted": "drifted", "missing": "missing", "orphan": "orphan", "ambiguous": "ambiguous",
                   "collision": "collision", "unlinked": "unlinked", "pending": "not exported yet"}


def check_lines(report: Any) -> list[str]:
    """``provision check``: counts per situation, then each object that differs, attribute by
    attribute with the value the mappings give and the one the target holds."""
    lines = []
    for name, counts in report.situations.items():
        lines.append(f"  {name}: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    for d in report.differences:
        who = d.anchor + (f" (target {d.target_anchor}" + (f", {d.name}" if d.name else "") + ")"
                          if d.target_anchor else "")
        action = f" -> {d.action}" if d.action else ""
        lines.append(f"  {_SITUATION_TEXT.get(d.situation, d.situation)} {d.object_type} {who}{action}"
                     + (f": {d.note}" if d.note else ""))
        for attr, value in d.attributes.items():
            parts = []
            if "expected" in value:
                parts.append(f"expected {show(value['expected'])}")
            if "found" in value:
                parts.append(f"found {show(value['found'])}")
            if value.get("missing_values"):
                parts.append("missing " + ", ".join(show(v) for v in value["missing_values"]))
            if value.get("extra_values"):
                parts.append("not expected " + ", ".join(show(v) for v in value["extra_values"]))
            lines.append(f"      {attr}: {'; '.join(parts)}")
    if report.not_shown:
        lines.append(f"  ... and {report.not_shown} more (see --output json, or narrow with --object-type)")
    return lines


def adopt_lines(report: Any) -> list[str]:
    """``run --adopt-report``: how each target object would link, before anything is written."""
    lines = [f"adopt report of {report.summary.pipeline}: nothing was written to the target"]
    for name, counts in report.situations.items():
        lines.append(f"  {name}: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    for d in report.differences:
        if d.situation == "unlinked":
            lines.append(f"  link {d.object_type} {d.anchor} -> target {d.target_anchor}"
                         + (f" then {d.action}" if d.action else ""))
        elif d.situation == "pending" and d.action == "add":
            lines.append(f"  add {d.object_type} {d.anchor}: no target object matches")
        else:
            lines.append(f"  {d.situation} {d.object_type} {d.anchor}" + (f": {d.note}" if d.note else ""))
    return lines


# ---- a plan as Markdown, for a pull request ---------------------------------------------------------

_MD_SYMBOL = {"add": "➕", "update": "✏️", "rename": "↪️", "disable": "⏸️", "delete": "🗑️", "replace": "🔁"}


def plan_markdown(summary: Any, items: list[Any], more: int) -> str:
    """``provision plan --output markdown``: the counts as a table, then each object's operation with
    its attribute changes, folded per object type: what a reviewer pastes into the pull request that
    changes the manifest. Secrets are masked as everywhere else."""
    lines = [f"### provision plan: `{summary.pipeline}`", ""]
    origin = summary.manifest or {}
    if origin.get("hash"):
        where = f"commit `{origin['commit'][:12]}`" if origin.get("commit") else "no git repository"
        modified = ", with changes not committed" if origin.get("modified") else ""
        lines += [f"Manifest `{origin['hash'][:12]}` ({where}{modified}); plan `{summary.run_id}`: "
                  f"**{summary.status}**.", ""]
    lines += ["| object type | imported | add | update | rename | disable | delete | unchanged | failed |",
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    notes = []
    for name, c in summary.object_types.items():
        lines.append(f"| {name} | {c.imported} | {c.added} | {c.updated} | {c.renamed} | {c.disabled} | {c.deleted} "
                     f"| {c.unchanged} | {c.failed} |")
        if c.guard:
            notes.append(f"- **{name}**: the deletion guard would stop this run: {c.guard}")
        if c.error:
            notes.append(f"- **{name}**: stopped: {c.error}")
        if c.reconciled:
            found = ", ".join(f"{n} {s}" for s, n in c.reconciled.items() if n and s != "linked")
            if found:
                notes.append(f"- **{name}**: reconciled with the target: {found}")
    if notes:
        lines += ["", *notes]
    by_type: dict[str, list[Any]] = {}
    for item in items:
        by_type.setdefault(item.object_type, []).append(item)
    for name, group in by_type.items():
        lines += ["", f"<details><summary>{name}: {len(group)} operation{'s' if len(group) != 1 else ''}</summary>",
                  ""]
        for item in group:
            head = f"- {_MD_SYMBOL.get(str(item.action), '•')} **{item.action}** `{item.anchor}`"
            if item.target_anchor:
                head += f" (target `{item.target_anchor}`)"
            if item.error:
                head += f"; retrying after: {item.error}"
            lines.append(head)
            lines += [f"  - {_code(line)}" for line in change_lines(item.changes)]
        lines += ["", "</details>"]
    if more:
        lines += ["", f"... and {more} more operations (`provision plan --output json`, or narrow with --object-type)"]
    if not items:
        lines += ["", "No operation: the targets are as the mappings say."]
    return secrets.redact("\n".join(lines))


def _code(text: str) -> str:
    """``text`` as Markdown inline code, whatever backticks it holds."""
    fence = "``" if "`" in text else "`"
    return f"{fence} {text} {fence}" if fence == "``" else f"`{text}`"


SHOWN = 10000  # operations listed in a simulation's text; JSON has them all


def simulation_lines(sim: Any, markdown: bool = False) -> list[str]:
    """``provision plan NEW --against OLD``: counts per type and attribute, then each object the
    change affects with its values, as text or as Markdown for the pull request."""
    counts = sim.counts()
    title = f"simulation of `{sim.pipeline}`" if markdown else f"simulation of {sim.pipeline}"
    lines = [f"### {title}: this manifest against {sim.old_label}" if markdown else
             f"{title}: this manifest against {sim.old_label}"]
    if markdown:
        lines += ["", "| object type | add | change | disable | delete | rename | values changed |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | --- |"]
    for name, c in counts.items():
        values = ", ".join(f"{a} {n}" for a, n in c["attributes"].items()) or "none"
        if markdown:
            lines.append(f"| {name} | {c['added']} | {c['updated']} | {c['disabled']} | {c['deleted']} | "
                         f"{c['renamed']} | {values} |")
        else:
            lines.append(f"  {name}: would add {c['added']}, change {c['updated']}, disable {c['disabled']}, "
                         f"delete {c['deleted']}, rename {c['renamed']}; values changed: {values}")
    for name, c in sim.new.object_types.items():
        if c.guard:
            lines.append(f"{'- **' + name + '**' if markdown else '  ' + name}: the deletion guard would stop a "
                         f"run: {c.guard}")
    if not sim.differences:
        lines += ["", "No object changes: the new manifest does what the old one does."]
    elif markdown:
        lines += ["", f"<details><summary>{len(sim.differences)} objects</summary>", ""]
    for d in sim.differences[:SHOWN]:
        head = f"{d.action} {d.object_type} {d.anchor}"
        if d.before is not None:
            head += f" (instead of: {d.before.action})" if d.after is not None else " (no longer: " \
                f"{d.before.action})"
        body = change_lines(d.after.changes) if d.after is not None else []
        if markdown:
            lines += [f"- **{head}**"] + [f"  - {_code(line)}" for line in body]
        else:
            lines += [head] + [f"    {line}" for line in body]
    if len(sim.differences) > SHOWN:
        lines.append(f"... and {len(sim.differences) - SHOWN} more (--output json lists them all)")
    if markdown and sim.differences:
        lines += ["", "</details>"]
    return [secrets.redact(line) for line in lines]
