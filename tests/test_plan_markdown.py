"""`provision plan --output markdown`: the plan as a pull-request comment, the same counts and
operations as the JSON plan."""

from __future__ import annotations

import json
from pathlib import Path

from runner import sampledata

MANIFEST = Path(__file__).resolve().parents[1] / "manifests" / "quickstart.yaml"


def test_the_markdown_plan_has_the_json_plans_counts_and_every_operation(provision, quickstart_env):
    data, manifest = quickstart_env(people=120, groups=6), MANIFEST
    assert provision("run", manifest).code == 0
    sampledata.mutate(data, 7, 10.0)
    plan = json.loads(provision("plan", manifest, "--output", "json").out)
    md = provision("plan", manifest, "--format", "markdown")
    assert md.code == 0, md.err
    lines = md.out.splitlines()
    assert lines[0] == "### provision plan: `quickstart`"
    for name, c in plan["object_types"].items():
        row = f"| {name} | {c['imported']} | {c['added']} | {c['updated']} | {c['renamed']} | {c['disabled']} | " \
              f"{c['deleted']} | {c['unchanged']} | {c['failed']} |"
        assert row in lines, (row, lines[:12])
    assert plan["changes"], "the HR change plans something"
    for change in plan["changes"]:
        assert any(f"**{change['action']}** `{change['anchor']}`" in line for line in lines), change
    assert sum(1 for line in lines if line.startswith("- ")) == len(plan["changes"])


def test_markdown_is_for_plans_only(quickstart_env):
    import subprocess
    import sys

    quickstart_env(people=20, groups=2)
    result = subprocess.run([sys.executable, "-m", "runner", "run", str(MANIFEST), "--output", "markdown"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "invalid choice: 'markdown'" in result.stderr
