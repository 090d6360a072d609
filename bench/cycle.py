"""Benchmark: the quickstart pipeline's initial, no-op and delta cycles against a raw bulk load.

    python bench/cycle.py --people 100000 [--groups 1000] [--percent 1]

Each phase runs `provision run` in a fresh process (whole-process time and peak RSS, as a user
would see from cron). The floor is the same people mapped in plain Python and written with one
sqlite3 executemany: what no provisioning tool can beat on this machine.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.measure import measure  # noqa: E402


def sampledata_cli(*args: str) -> None:
    """In its own process: a child forked from a bench holding 100k people in memory would report
    the bench's memory as its own peak."""
    subprocess.run([sys.executable, "-m", "runner.sampledata", *args], check=True, capture_output=True)


def timed_run(env: dict[str, str]) -> tuple[float, float, dict]:
    """Seconds, peak RSS in MB (of this run's process alone) and the JSON summary of one run."""
    run = measure([sys.executable, "-m", "runner", "run", str(REPO / "manifests" / "quickstart.yaml"),
                   "--output", "json"], env)
    return run.seconds, run.peak_mb, json.loads(run.out)


def floor(data: Path, db: Path) -> float:
    """Map people.csv in plain Python and insert with one executemany: the raw bulk-load floor."""
    start = time.perf_counter()
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, user_name TEXT UNIQUE, display_name TEXT,"
                " given_name TEXT, family_name TEXT, email TEXT, department TEXT, title TEXT, phone TEXT,"
                " manager TEXT, active BOOLEAN)")
    with open(data / "people.csv", newline="", encoding="utf-8") as f:
        rows = [(p["email"].split("@")[0].lower(), f"{p['preferred_name'] or p['first_name']} {p['last_name']}",
                 p["first_name"], p["last_name"], p["email"], p["department"], p["title"], p["phone"] or None,
                 p["manager_id"] or None, True)
                for p in csv.DictReader(f) if p["status"] in ("active", "leave")]
    con.executemany("INSERT INTO users (user_name, display_name, given_name, family_name, email, department,"
                    " title, phone, manager, active) VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
    con.commit()
    con.close()
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--people", type=int, default=10000)
    ap.add_argument("--groups", type=int, default=None)
    ap.add_argument("--percent", type=float, default=1.0)
    args = ap.parse_args()
    groups = args.groups or max(10, args.people // 100)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = root / "data"
        sampledata_cli("make", "--out", str(data), "--people", str(args.people), "--groups", str(groups), "--seed", "1")
        env = dict(os.environ, PROVISION_DATA=str(data), PROVISION_TARGET=str(root / "app.db"))
        print(f"{args.people} people, {groups} groups", flush=True)
        print(f"{'phase':14} {'seconds':>8} {'people/s':>9} {'peak MB':>8}  user counts", flush=True)
        for phase in ("initial", "no-op", f"delta {args.percent}%"):
            if phase.startswith("delta"):
                sampledata_cli("mutate", "--out", str(data), "--seed", "2", "--percent", str(args.percent))
            seconds, peak, out = timed_run(env)
            counts = {k: v for k, v in out["object_types"]["user"].items() if v and k != "imported"}
            print(f"{phase:14} {seconds:8.2f} {args.people / seconds:9.0f} {peak:8.0f}  {counts}", flush=True)
        raw = floor(data, root / "floor.db")
        print(f"{'raw floor':14} {raw:8.2f} {args.people / raw:9.0f}           "
              "(plain Python map + sqlite3 executemany)")

if __name__ == "__main__":
    main()
