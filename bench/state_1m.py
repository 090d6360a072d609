"""Benchmark: the state store at scale. The quickstart pipeline's initial cycle and a 1% delta
cycle, with the state store on SQLite, PostgreSQL or MariaDB, timed phase by phase.

    python bench/state_1m.py --people 100000 1000000 --state sqlite postgresql mariadb [--percent 1] [--source csv|sql]

Each cycle runs `provision run` in a fresh process, as cron would; that process times the
engine's passes (recovery, import, target read, compute, export) by wrapping them, and "other"
is what is left of the whole-process time (start-up, connectors, counts, log pruning); "cpu" is
that process's CPU time, steadier than wall time on a shared machine (the servers' work is not
in it). The
state lives in a database this bench creates on the machine's servers and drops afterwards:
PostgreSQL at 127.0.0.1:5432 (user postgres, trust) and MariaDB at 127.0.0.1:3306 (root, no
password); override with --postgresql / --mariadb (a server URL without a database).

``--source csv`` (the default) is the quickstart's CSV files, which have no delta: every cycle
reads and hashes every row (a full import), so the delta cycle's import costs about what the
initial one's does; compute and export see only what changed. ``--source sql`` runs
manifests/hr-sql-to-sql.yaml instead: the same generated people and groups in the sample's
SQLite ``hr.db``, read by the sql connector with the change-table delta (``mutate`` writes one
change row per add, modify and delete), into a SQLite application database; its delta cycle
reads only the changed rows, which is what the budget of 5% of the initial cycle is about.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.measure import measure  # noqa: E402

PHASES = ("recover", "import", "target read", "compute", "export")
csv.field_size_limit(2**31 - 1)  # a big group's member list in groups.csv is over the 128 KiB default
SERVERS = {"postgresql": "postgresql+psycopg://postgres@127.0.0.1:5432", "mariadb": "mysql+pymysql://root@127.0.0.1:3306"}


def child(manifest: str, phases_file: str) -> int:
    """Run provision in this process with the engine's passes timed; the times go to ``phases_file``."""
    from runner.cli import main as cli_main
    from runner.engine import run

    spent = dict.fromkeys(PHASES, 0.0)

    def timed(phase: str, fn):  # noqa: ANN001, ANN202 - a bench-only wrapper
        def wrapper(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[phase] += time.perf_counter() - start
        return wrapper

    run.recover = timed("recover", run.recover)
    run.import_type = timed("import", run.import_type)
    run.target_side = timed("target read", run.target_side)  # the first-contact or reconciling read
    run.compute_type = timed("compute", run.compute_type)
    run.export_type = timed("export", run.export_type)
    try:
        return cli_main(["run", manifest, "--output", "json"])
    finally:
        Path(phases_file).write_text(json.dumps(spent))


class Database:
    """A fresh database for one backend's state store, dropped by :meth:`drop`."""

    def __init__(self, backend: str, servers: dict[str, str], root: Path):
        import sqlalchemy as sa

        self.backend, self.sa = backend, sa
        if backend == "sqlite":
            self.url, self.admin = f"sqlite:///{root / 'state.db'}", None
            return
        self.name = f"prov_bench_{secrets.token_hex(4)}"
        server = servers[backend].rstrip("/")
        self.admin = sa.create_engine(f"{server}/{'postgres' if backend == 'postgresql' else ''}",
                                      isolation_level="AUTOCOMMIT")
        with self.admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {self.name}")
        self.url = f"{server}/{self.name}"

    def drop(self) -> None:
        if self.admin is None:
            return
        with self.admin.connect() as conn:
            force = " WITH (FORCE)" if self.backend == "postgresql" else ""
            conn.exec_driver_sql(f"DROP DATABASE {self.name}{force}")
        self.admin.dispose()


MANIFESTS = {"csv": "quickstart.yaml", "sql": "hr-sql-to-sql.yaml"}


def pipeline(root: Path, state_url: str, name: str) -> Path:
    """A copy of the example manifest ``manifests/NAME`` and its files, with the state store at ``state_url``."""
    shutil.copytree(REPO / "manifests", root / "manifests", ignore=shutil.ignore_patterns("out", ".provision", "data"))
    shutil.copytree(REPO / "mappings", root / "mappings")
    manifest = root / "manifests" / name
    text = re.sub(r'^state: .*$', f'state: "{state_url}"', manifest.read_text(), count=1, flags=re.M)
    manifest.write_text(text)
    return manifest


def cycle(manifest: Path, env: dict[str, str], root: Path) -> tuple[float, float, float, dict[str, float], dict]:
    """Whole-process seconds, CPU seconds of provision's process (the database servers' are not
    in it), peak RSS (MB), seconds per phase and the run's JSON summary."""
    phases_file = root / "phases.json"
    run = measure([sys.executable, __file__, "--child", str(manifest), str(phases_file)], env)
    return run.seconds, run.cpu, run.peak_mb, json.loads(phases_file.read_text()), json.loads(run.out)


def sampledata(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "runner.sampledata", *args], check=True, capture_output=True,
                          cwd=REPO, text=True)
    return done.stdout


def group_sizes(data: Path) -> dict[str, int]:
    """Group id -> how many members it has, from the sample's groups.csv."""
    with open(data / "groups.csv", newline="", encoding="utf-8") as f:
        return {row["group_id"]: len([m for m in row["members"].split(";") if m]) for row in csv.DictReader(f)}


def delta_work(data: Path, summary: dict) -> dict[str, int]:
    """What a delta cycle has to compute again: the people mutate touched, the groups whose
    members changed, and the members those groups hold (each such group is mapped and compared
    whole, so with the sample's Pareto group sizes this grows faster than the people do)."""
    changed = set(summary["groups_changed"])
    people = set().union(*(summary[k] for k in ("hired", "updated", "renamed", "moved", "terminated", "removed")))
    members = sum(size for gid, size in group_sizes(data).items() if gid in changed)
    return {"people": len(people), "groups": len(changed), "members": members}


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        raise SystemExit(child(sys.argv[2], sys.argv[3]))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--people", type=int, nargs="+", default=[100000])
    ap.add_argument("--state", nargs="+", choices=("sqlite", "postgresql", "mariadb"),
                    default=["sqlite", "postgresql", "mariadb"])
    ap.add_argument("--percent", type=float, default=1.0)
    ap.add_argument("--groups", type=int, nargs="+",
                    help="groups per --people size (default: one per 100 people, at least 10)")
    ap.add_argument("--group-sizes", choices=("random", "stratified"), default="random",
                    help="random Pareto draws (noisy: seed 1 gives 15x the memberships for 10x the groups) or "
                         "the distribution's quantiles (10.95x), for 10x the data")
    ap.add_argument("--source", choices=tuple(MANIFESTS), default="csv",
                    help="csv: the quickstart (no delta); sql: hr-sql-to-sql.yaml (change-table delta)")
    ap.add_argument("--postgresql", default=SERVERS["postgresql"], help="server URL, no database")
    ap.add_argument("--mariadb", default=SERVERS["mariadb"], help="server URL, no database")
    args = ap.parse_args()
    servers = {"postgresql": args.postgresql, "mariadb": args.mariadb}
    print(f"source: {args.source} ({MANIFESTS[args.source]}), group sizes: {args.group_sizes}")
    print(f"{'people':>8} {'state':10} {'cycle':9} {'total':>7} " + " ".join(f"{p:>11}" for p in PHASES)
          + f" {'other':>7} {'cpu':>7} {'peak MB':>7}  user counts", flush=True)
    groups = args.groups or [max(10, people // 100) for people in args.people]
    if len(groups) != len(args.people):
        ap.error("--groups takes one number per --people size")
    for people, group_count in zip(args.people, groups, strict=True):
        with tempfile.TemporaryDirectory(prefix="state-bench-") as tmp:
            made = Path(tmp) / "made"
            sampledata("make", "--out", str(made), "--people", str(people), "--groups", str(group_count),
                       "--seed", "1", "--group-sizes", args.group_sizes)
            sizes = group_sizes(made).values()
            print(f"{people} people, {group_count} groups: {sum(sizes)} memberships, the biggest group "
                  f"{max(sizes, default=0)}", flush=True)
            for backend in args.state:
                root = Path(tmp) / backend
                data = root / "data"
                shutil.copytree(made, data)
                db = Database(backend, servers, root)
                try:
                    manifest = pipeline(root, db.url, MANIFESTS[args.source])
                    env = dict(os.environ, PROVISION_DATA=str(data), PROVISION_TARGET=str(root / "app.db"),
                               HR_DB_URL=f"sqlite:///{data / 'hr.db'}", TARGET_DB_URL=f"sqlite:///{root / 'app.db'}")
                    for name in ("initial", f"delta {args.percent:g}%"):
                        work = {}
                        if name != "initial":
                            summary = json.loads(sampledata("mutate", "--out", str(data), "--seed", "2", "--percent",
                                                            str(args.percent)))
                            work = {"work": delta_work(data, summary)}
                        seconds, cpu, peak, spent, out = cycle(manifest, env, root)
                        counts = {k: v for k, v in out["object_types"]["user"].items() if v} | work
                        print(f"{people:8} {backend:10} {name:9} {seconds:7.1f} "
                              + " ".join(f"{spent[p]:11.1f}" for p in PHASES)
                              + f" {seconds - sum(spent.values()):7.1f} {cpu:7.1f} {peak:7.0f}  {counts}", flush=True)
                finally:
                    db.drop()
                    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
