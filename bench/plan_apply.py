"""Benchmark: what a reviewed change costs, ``plan --out`` then ``apply``, against a plain ``run``.

    python bench/plan_apply.py [--people 20000] [--percent 5] [--repeat 3] [--json OUT]

The quickstart (CSV -> SQLite) is provisioned once; the HR data then changes by ``--percent``
(hires, leavers, renames, moves). From copies of that same target and state store, interleaved:

* run: ``provision run``, the baseline;
* plan: ``provision plan --out``: import and compute on a copy of the state, then every planned
  object read back from the target for its fingerprint;
* apply: ``provision apply`` of that plan: import and compute again, the gate (every planned
  object compared and read back again), then the export of exactly the plan.

Each is a process of its own, timed start to exit. Budgets: apply <= 1.5x run (what the gate
adds to a run), plan + apply <= 2.5x run (the whole reviewed path: two imports and computes).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.measure import measure  # noqa: E402

QUICKSTART = REPO / "manifests" / "quickstart.yaml"
BUDGET_APPLY, BUDGET_BOTH = 1.5, 2.5


def provision(env: dict[str, str], *args: str) -> float:
    return measure([sys.executable, "-m", "runner", *args], env).seconds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--people", type=int, default=20000)
    ap.add_argument("--percent", type=float, default=5.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = root / "data"
        groups = max(10, args.people // 100)
        subprocess.run([sys.executable, "-m", "runner.sampledata", "make", "--out", str(data), "--people",
                        str(args.people), "--groups", str(groups), "--seed", "1"], check=True, cwd=REPO)
        base = root / "base"
        base.mkdir()
        env = dict(os.environ, PROVISION_DATA=str(data), PROVISION_TARGET=str(base / "app.db"))
        provision(env, "run", str(QUICKSTART))
        subprocess.run([sys.executable, "-m", "runner.sampledata", "mutate", "--out", str(data), "--percent",
                        str(args.percent), "--seed", "2"], check=True, cwd=REPO, capture_output=True)
        runs, plans, applies, operations = [], [], [], 0
        for i in range(args.repeat):
            for side in ("run", "reviewed"):
                where = root / f"{side}-{i}"
                shutil.copytree(base, where)
                env = dict(os.environ, PROVISION_DATA=str(data), PROVISION_TARGET=str(where / "app.db"))
                if side == "run":
                    runs.append(provision(env, "run", str(QUICKSTART)))
                    continue
                plan = where / "change.plan"
                plans.append(provision(env, "plan", str(QUICKSTART), "--out", str(plan)))
                operations = len(plan.read_text().splitlines()) - 1
                applies.append(provision(env, "apply", str(plan)))
                shutil.rmtree(where)
    run, plan, apply = (statistics.median(x) for x in (runs, plans, applies))
    print(f"{args.people} people, {args.percent}% changed: {operations} planned operations; median of {args.repeat}")
    for label, values in (("run", runs), ("plan --out", plans), ("apply", applies)):
        print(f"{label:<12}{statistics.median(values):7.2f} s   runs: {', '.join(f'{x:.2f}' for x in values)}")
    print(f"apply / run {apply / run:.2f}x (budget {BUDGET_APPLY}x); plan + apply / run {(plan + apply) / run:.2f}x "
          f"(budget {BUDGET_BOTH}x)")
    if args.json:
        args.json.write_text(json.dumps({"people": args.people, "operations": operations, "run_seconds": runs,
                                         "plan_seconds": plans, "apply_seconds": applies, "apply_ratio": apply / run,
                                         "reviewed_ratio": (plan + apply) / run}, indent=2))
    return 0 if apply / run <= BUDGET_APPLY and (plan + apply) / run <= BUDGET_BOTH else 1


if __name__ == "__main__":
    sys.exit(main())
