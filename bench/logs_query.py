"""Benchmark: ``provision logs`` on a year of provisioning log at 100,000 people.

    python bench/logs_query.py [--people 100000] [--entries 2000000] [--repeat 5] [--json OUT]

The quickstart's state store (SQLite) gets ``--entries`` log entries spread over 365 days and
``--people`` anchors (about 20 per person: a year of changes, failures and retries), written in
bulk. Then, in this process, each query ``provision logs`` answers is timed against the raw SQL
an operator would type for the same rows (same indexes, no manifest, no JSON decoding):

* one object's story (``--anchor``), the question asked most;
* the failures of the last 24 hours (``--result failed --since 24h``);
* one run's entries (``--run``).

Budget: each at most 5x its raw query, and one object's story under 200 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
QUICKSTART = REPO / "manifests" / "quickstart.yaml"
BUDGET, STORY_MS = 5.0, 200.0


def fill(db: Path, people: int, entries: int) -> tuple[str, str]:
    """Bulk log entries over a year; returns (an anchor to look up, a run id to look up)."""
    import datetime as dt

    rng = random.Random(7)
    con = sqlite3.connect(db)
    start = dt.datetime.now(dt.UTC) - dt.timedelta(days=365)
    runs = [f"{(start + dt.timedelta(hours=h)).strftime('%Y%m%dT%H%M%SZ')}-{h:06x}" for h in range(0, 365 * 24, 1)]
    batch = []
    for i in range(entries):
        hour = rng.randrange(len(runs))
        when = (start + dt.timedelta(hours=hour, seconds=rng.randrange(3600))).isoformat(timespec="milliseconds")
        when = when.replace("+00:00", "Z")
        anchor = f"E{rng.randrange(people):07d}"
        failed = rng.random() < 0.02
        entry = {"time": when, "run_id": runs[hour], "pipeline": "quickstart", "object_type": "user", "anchor": anchor,
                 "target_anchor": str(i), "action": "update", "result": "failed" if failed else "ok",
                 "changes": {"title": {"old": "Analyst", "new": "Engineer"}},
                 "error": "HTTP 503" if failed else None}
        batch.append((runs[hour], when, "quickstart", "user", anchor, "update", entry["result"], json.dumps(entry)))
        if len(batch) == 50_000:
            con.executemany("INSERT INTO provisioning_log (run_id, time, pipeline, object_type, anchor, action, "
                            "result, entry) VALUES (?,?,?,?,?,?,?,?)", batch)
            batch = []
    con.executemany("INSERT INTO provisioning_log (run_id, time, pipeline, object_type, anchor, action, result, entry)"
                    " VALUES (?,?,?,?,?,?,?,?)", batch)
    con.commit()
    con.execute("ANALYZE")
    con.close()
    return f"E{people // 2:07d}", runs[len(runs) - 5]


def timed(fn, repeat: int) -> list[float]:  # type: ignore[no-untyped-def]
    out = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        out.append((time.perf_counter() - started) * 1000)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--people", type=int, default=100_000)
    ap.add_argument("--entries", type=int, default=2_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = root / "data"
        subprocess.run([sys.executable, "-m", "runner.sampledata", "make", "--out", str(data), "--people", "20",
                        "--groups", "2", "--seed", "1"], check=True, cwd=REPO, capture_output=True)
        os.environ.update(PROVISION_DATA=str(data), PROVISION_TARGET=str(root / "app.db"))
        subprocess.run([sys.executable, "-m", "runner", "run", str(QUICKSTART)], check=True, cwd=REPO,
                       capture_output=True)
        state = root / "app.db.state"
        anchor, run_id = fill(state, args.people, args.entries)
        from runner.engine.logs import Filters, logs

        raw = sqlite3.connect(state)
        since = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - 86400))
        cases = {
            "one object (--anchor)": (
                lambda: logs(QUICKSTART, Filters(anchor=anchor)),
                lambda: raw.execute("SELECT entry FROM provisioning_log WHERE pipeline = ? AND anchor = ? ORDER BY "
                                    "time DESC LIMIT 200", ("quickstart", anchor)).fetchall()),
            "failed, last 24h": (
                lambda: logs(QUICKSTART, Filters(result="failed", since="24h")),
                lambda: raw.execute("SELECT entry FROM provisioning_log WHERE pipeline = ? AND time >= ? AND result = "
                                    "'failed' ORDER BY time DESC LIMIT 200", ("quickstart", since)).fetchall()),
            "one run (--run)": (
                lambda: logs(QUICKSTART, Filters(run_id=run_id)),
                lambda: raw.execute("SELECT entry FROM provisioning_log WHERE run_id = ? ORDER BY time DESC LIMIT 200",
                                    (run_id,)).fetchall()),
        }
        results, ok = {}, True
        print(f"{args.entries} log entries, {args.people} people; median of {args.repeat} (ms)")
        for name, (ours, theirs) in cases.items():
            o, r = statistics.median(timed(ours, args.repeat)), statistics.median(timed(theirs, args.repeat))
            ratio = o / r if r else float("inf")
            results[name] = {"provision_ms": o, "raw_ms": r, "ratio": ratio}
            print(f"{name:<24} provision {o:8.1f}   raw SQL {r:8.1f}   ratio {ratio:5.1f}x")
            ok &= ratio <= BUDGET or o <= STORY_MS
        ok &= results["one object (--anchor)"]["provision_ms"] <= STORY_MS
        raw.close()
    print(f"budget: each within {BUDGET}x its raw query (or under {STORY_MS:.0f} ms), one object under "
          f"{STORY_MS:.0f} ms: {'met' if ok else 'MISSED'}")
    if args.json:
        args.json.write_text(json.dumps({"entries": args.entries, "people": args.people, "cases": results}, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
