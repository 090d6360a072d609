"""Benchmark: ``provision check`` on a provisioned target, as a ratio to a plain read of it.

    python bench/check.py [--people 100000] [--groups 100] [--repeat 3]

The quickstart (CSV -> SQLite) provisions ``--people`` people and ``--groups`` groups once (not
timed). Then, interleaved and repeated in this process on the same data:

* **read**: the baseline, a plain paged read of both target tables through the sql connector
  (what any reconciliation must at least do);
* **check**: ``provision check`` with ``--no-import`` (the source is not read again): the
  reconciliation's paged target read, the classification against the state store, compute and
  the plan, on a private snapshot of the state store (which it copies first: that is part of
  its cost and of the number). Steady state: a reconciling run (``run --reconcile``, or
  ``reconcile_every``) has read the target since the last exports, so each object the target
  returns as it was then is known to be as the state says without being compared again;
* **cold check**: the same right after the initial load, before any reconciliation: every
  object is mapped back and compared.

It prints min / median / max seconds of each and the ratios of the medians to the read (budget
for check: at most 2x).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.budget_children import plain_read  # noqa: E402
from runner import sampledata  # noqa: E402
from runner.engine.check import check  # noqa: E402
from runner.engine.context import RunOptions  # noqa: E402
from runner.engine.run import execute  # noqa: E402

QUICKSTART = Path(__file__).resolve().parent.parent / "manifests" / "quickstart.yaml"


def timed_check(manifest: Path = QUICKSTART) -> int:
    """``check --no-import`` of the manifest; stops the bench if it finds the untouched target differs."""
    report = check(manifest, RunOptions(no_import=True))
    if report.differs or report.summary.status != "ok":
        raise SystemExit(f"check found differences on an untouched target: {report.as_json()['check']}")
    return sum(c["linked"] for c in report.situations.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=100000)
    parser.add_argument("--groups", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        sampledata.make(folder / "data", args.people, args.groups, 1)
        os.environ["PROVISION_DATA"] = str(folder / "data")
        os.environ["PROVISION_TARGET"] = str(folder / "app.db")
        start = time.perf_counter()
        summary = execute(QUICKSTART, RunOptions())
        print(f"provisioned {args.people} people, {args.groups} groups in {time.perf_counter() - start:.1f} s "
              f"({summary.status})", flush=True)
        times: dict[str, list[float]] = {"read": [], "cold check": [], "check": []}
        sizes: dict[str, int] = {}

        def measure(name: str, work: Callable[[], int]) -> None:
            start = time.perf_counter()
            sizes[name] = work()
            times[name].append(time.perf_counter() - start)

        for _ in range(args.repeat):
            measure("read", lambda: plain_read(folder / "app.db"))
            measure("cold check", timed_check)
        start = time.perf_counter()
        execute(QUICKSTART, RunOptions(no_import=True, reconcile=True))
        print(f"run --reconcile once: {time.perf_counter() - start:.1f} s", flush=True)
        for _ in range(args.repeat):
            measure("read", lambda: plain_read(folder / "app.db"))
            measure("check", timed_check)
        read = statistics.median(times["read"])
        for name, values in times.items():
            ratio = "" if name == "read" else f"  {statistics.median(values) / read:5.2f}x the read"
            print(f"{name:<10} {sizes[name]:>7} objects  min {min(values):6.2f}  median {statistics.median(values):6.2f}"
                  f"  max {max(values):6.2f} s{ratio}")
        print(f"check / read: {statistics.median(times['check']) / read:.2f}x (budget 2x)")


if __name__ == "__main__":
    main()
