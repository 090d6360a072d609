"""plan --out / apply against a real target, the same story on every connector: a reviewed plan
is refused when its source or its target changed, and once applied the target is what the
mappings say (``provision check`` finds nothing to do)."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any


def edit_person(data: Path, anchor: str, **values: str) -> None:
    with open(data / "people.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        if row["employee_id"] == anchor:
            row.update(values)
    with open(data / "people.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def active_people(data: Path, n: int) -> list[str]:
    with open(data / "people.csv", newline="", encoding="utf-8") as f:
        return [r["employee_id"] for r in csv.DictReader(f) if r["status"] == "active"][:n]


def plan_items(provision: Any, manifest: Path, out: Path) -> list[dict[str, Any]]:
    result = provision("plan", manifest, "--out", out)
    assert result.code == 0, result.out + result.err
    return [json.loads(line) for line in out.read_text().splitlines()[1:]]


def plan_apply_cycle(provision: Any, manifest: Path, data: Path, tmp: Path, snapshot: Callable[[], Any],
                     edit_target: Callable[[str], None]) -> None:
    """``edit_target(target_anchor)`` changes a mapped attribute of that object by hand."""
    first, second, third = active_people(data, 3)
    edit_person(data, first, title="Reviewed Title One")
    edit_person(data, second, title="Reviewed Title Two")
    items = plan_items(provision, manifest, tmp / "one.plan")
    assert {(i["anchor"], i["action"]) for i in items} == {(first, "update"), (second, "update")}, items

    # the source changed for a planned object: refused, nothing written
    before = snapshot()
    edit_person(data, second, title="Changed After Review")
    refused = provision("apply", tmp / "one.plan")
    assert refused.code == 3, refused.out + refused.err
    assert f"user {second}: the source record changed since the plan" in refused.out
    assert snapshot() == before

    # planned again and applied: the target is as the mappings say, and a run has nothing left
    assert provision("apply", tmp / "one.plan", "--replan").code == 0
    applied = provision("apply", tmp / "one.plan", "--output", "json")
    assert applied.code == 0, applied.out + applied.err
    assert applied.json()["object_types"]["user"]["updated"] == 2
    assert provision("check", manifest).code == 0
    run = provision("run", manifest, "--output", "json").json()["object_types"]
    assert all(c["added"] + c["updated"] + c["deleted"] + c["disabled"] == 0 for c in run.values()), run

    # the target changed by hand for a planned object: refused, nothing written
    edit_person(data, third, title="Reviewed Title Three")
    (item,) = plan_items(provision, manifest, tmp / "two.plan")
    edit_target(item["target_anchor"])
    before = snapshot()
    refused = provision("apply", tmp / "two.plan")
    assert refused.code == 3 and f"user {third}: the target object changed since the plan" in refused.out
    assert snapshot() == before
