"""``provision apply PLAN``: carry out exactly the operations of a saved plan, or refuse.

Checked before anything runs: the plan has not expired, and the manifest (with its mapping
files) hashes as it did when the plan was made. Then a run with the plan's own options imports
and computes as usual, and the gate (:mod:`runner.engine.gate`) compares every planned object's
operation and the fingerprints of its inputs with what it finds now; any difference refuses the
whole apply before the first operation is sent (exit 3). Otherwise the export sends the planned
operations and nothing else: what became pending since the plan waits for a later run.

``--replan`` makes the plan again with the same options, over the same file, for another review.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

from runner.engine import planfile
from runner.engine.context import RunOptions, StopFlag
from runner.engine.plan import PlanItem
from runner.engine.run import Summary, execute, new_run_id
from runner.manifest.provenance import provenance
from runner.state.base import now_iso


def plan_options(saved: planfile.SavedPlan) -> dict[str, Any]:
    options = {k: v for k, v in (saved.header.get("options") or {}).items() if k in planfile.OPTIONS}
    options["object_types"] = tuple(options.get("object_types") or ())
    return options


def apply_plan(path: Path, *, replan: bool = False, stop: StopFlag | None = None, log_file: str | None = None,
               expires: float | None = None, on_plan_item: Callable[[PlanItem], None] | None = None,
               progress: Any = None) -> Summary:
    saved = planfile.read(path)
    options = plan_options(saved)
    manifest = saved.manifest_path
    if replan:
        return execute(manifest, RunOptions(plan=True, plan_out=str(path), **options,
                                            **({"plan_expires": expires} if expires else {})), on_plan_item)
    reasons = []
    if saved.expires <= dt.datetime.now(dt.UTC):
        reasons.append(f"the plan expired at {saved.header['expires']}")
    was = saved.header["manifest"]["hash"]
    now = provenance(manifest).hash
    if now != was:
        reasons.append(f"the manifest {manifest} or one of its mapping files changed since the plan "
                       f"(hash {was[:12]}, now {now[:12]})")
    if reasons:
        summary = Summary(saved.header["pipeline"], new_run_id(), "refused", now_iso(), now_iso(), refused=reasons,
                          kind="apply")
        return summary
    return execute(manifest, RunOptions(**options, apply=saved, stop=stop, log_file=log_file, progress=progress))
