"""Benchmark: the performance budget of issue 25, every measure a ratio against a baseline on the same data.

    python bench/budget.py --people 100000 [1000000] [--repeat 3] [--only initial,delta,...]
                           [--sources csv,watermark,changes] [--connector-people N] [--json out.json]

Every row is provision against a baseline measured in this bench, interleaved with it, on the
same data and the same machine; each side is a process of its own, timed from start to exit,
with its own peak RSS (bench/measure.py). The machine is shared, so read the ratios, not the
seconds. The parts (``--only`` takes their names):

1. ``initial``: the initial cycle of each source (``csv``: manifests/quickstart.yaml, CSV files
   -> SQLite; ``watermark``: manifests/hr-sql-watermark.yaml and ``changes``:
   manifests/hr-sql-to-sql.yaml, the sample's hr.db read by the sql connector with an updated_at
   watermark or a change table -> SQLite) against the floor: the same rows read, mapped in plain
   Python and bulk-loaded with SQLAlchemy Core (bench/budget_children.py). Budget 4x, goal 3x.
   The floor with a state table (anchor, target id, row digest) is reported too, without budget.
2. ``delta``: the no-op cycle (nothing changed; at most 5% of the initial cycle) and the delta
   cycle after ``runner.sampledata mutate --percent 1`` (at most 5% with the watermark or the
   change table, 15% with the CSV files, which are read whole).
3. ``mapping``: a mapping change (display_name upper-cased) re-evaluated from the state store with
   ``run --no-import``, on the first source. The baseline is the floor of the same work: the
   target's active users read and the same new values written back with one Core executemany of
   UPDATEs; a re-evaluation writes every object again, as an initial cycle does, so the initial
   cycle's 4x is its budget (the issue sets none). The JSON has the ratio to the initial cycle too.
4. Connectors and check. ``ldap``, ``scim``, ``rest``, ``soap``: whole ``provision run``s of the
   example manifest (users only, from a new state store) against a raw client sending the very
   records that run left, at the same concurrency, against the same real server started as the
   tests start it (bench/wholeruns.py, bench/raw_clients.py): at most 1.25x, at the issue's sizes
   (LDAP 10,000 people, SCIM 2,000, REST 5,000, SOAP 2,000; ``--connector-people`` for all).
   ``check``: ``provision check`` without a source read on the quickstart's N people, after a
   reconciling run, against a plain paged read of the target: at most 2x.
5. ``rss``: the highest peak RSS of any provision process at each size; the budget (300 MB) holds
   at 1M people, so smaller sizes report it without a verdict.

Prints a Markdown table and, with ``--json``, writes every row with its runs. Exits 0 when every
budget measured is met, 1 otherwise.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # tests/ is not on it: bench/ and tests/bench/ would clash

from bench.budget_cycles import SOURCES, Pipeline, check_row, cycle_rows, repetition  # noqa: E402
from bench.budget_report import Row, compared, rss_row, table  # noqa: E402
from bench.state_1m import sampledata  # noqa: E402
from bench.wholeruns import Target, whole_runs  # noqa: E402

CYCLE_PARTS = ("initial", "delta", "mapping")
CONNECTOR_BUDGET = 1.25


@dataclass(frozen=True)
class Connector:
    """A whole-run comparison of part 4: where its target class is, the issue's size, the raw client."""

    label: str
    people: int
    module: str  # bench/<module>.py, imported when measured: each pulls in its connector and server
    target: str
    raw: str

    def start(self, folder: Path) -> Target:
        return getattr(importlib.import_module(f"bench.{self.module}"), self.target)(folder)


CONNECTORS = {
    "ldap": Connector("LDAP (slapd)", 10000, "ldap_export", "LdapTarget", "raw ldap3 adds"),
    "scim": Connector("SCIM (scim2-server)", 2000, "scim_export", "ScimTarget", "raw requests POSTs"),
    "rest": Connector("REST (json-server)", 5000, "rest_export", "RestTarget", "raw requests POSTs"),
    "soap": Connector("SOAP (spyne)", 2000, "soap_export", "SoapTarget", "raw zeep createUser"),
}
PARTS = (*CYCLE_PARTS, *CONNECTORS, "check", "rss")


def connector_row(name: str, people: int, repeat: int, concurrency: int) -> Row:
    """Part 4 for one connector: interleaved whole runs of provision and of the raw client."""
    connector = CONNECTORS[name]
    with tempfile.TemporaryDirectory(prefix=f"budget-{name}-") as tmp:
        contest = whole_runs(connector.start(Path(tmp) / "server"), Path(tmp), people, concurrency, repeat)
    return compared(4, f"provision run, {connector.label}, {contest.count:,} records created", people,
                    f"{connector.raw}, {concurrency} threads", contest.ours, contest.raws, CONNECTOR_BUDGET,
                    f"<= {CONNECTOR_BUDGET}x", records=contest.count, concurrency=concurrency)


def size_rows(size: int, args: argparse.Namespace, parts: set[str]) -> list[Row]:
    """Parts 1, 2, 3, check and 5 at one size: every repetition of every source, interleaved."""
    cycles = bool(parts & {*CYCLE_PARTS, "rss"})
    sources = [SOURCES[s] for s in args.sources] if cycles else []
    if "check" in parts and SOURCES["csv"] not in sources:
        sources.append(SOURCES["csv"])  # the check runs on the quickstart's target
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="budget-") as tmp:
        made = Path(tmp) / "made"
        groups = args.groups or max(10, size // 100)
        sampledata("make", "--out", str(made), "--people", str(size), "--groups", str(groups), "--seed", "1")
        print(f"{size:,} people, {groups:,} groups", flush=True)
        runs: dict[str, list[dict]] = {s.name: [] for s in sources}
        last: dict[str, Pipeline] = {}
        for n in range(args.repeat if cycles else 1):
            for source in sources:
                if source.name in last:  # a million people's state is gigabytes: one repetition's at a time
                    shutil.rmtree(last[source.name].root)
                last[source.name] = Pipeline.make(source, made, Path(tmp) / f"{source.name}-{n}")
                runs[source.name].append(repetition(last[source.name], parts, args.percent, verify=n == 0,
                                                    remap="mapping" in parts and source is sources[0]))
        for source in sources:
            rows += cycle_rows(source, size, runs[source.name], args.percent)
        provision_runs = [m for per in runs.values() for r in per for k, m in r.items()
                          if k in ("initial", "no-op", "delta", "mapping")]
        if "check" in parts:
            row, checks = check_row(last["csv"], size, args.repeat)
            rows.append(row)
            provision_runs += checks
        if "rss" in parts:
            rows.append(rss_row(size, provision_runs))
    return rows


def machine() -> dict[str, object]:
    """Where the numbers come from: a shared machine's load says how far to trust the seconds."""
    return {"cpus": os.cpu_count(), "load_average": os.getloadavg(), "platform": platform.platform(),
            "python": platform.python_version()}


def parse(argv: list[str] | None) -> argparse.Namespace:
    def names(known: tuple[str, ...]) -> Callable[[str], list[str]]:
        def split(text: str) -> list[str]:
            chosen = [n.strip() for n in text.split(",") if n.strip()]
            chosen = [c for n in chosen for c in (CONNECTORS if n == "connectors" else [n])]
            unknown = sorted(set(chosen) - set(known))
            if unknown:
                raise argparse.ArgumentTypeError(f"unknown {', '.join(unknown)}; known: {', '.join(known)}")
            return chosen
        return split

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, nargs="+", default=[100000], help="sizes for parts 1-3, check and rss")
    parser.add_argument("--groups", type=int, help="groups (default: one per 100 people, at least 10)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--percent", type=float, default=1.0, help="the delta cycle's share of changed people")
    parser.add_argument("--sources", type=names(tuple(SOURCES)), default=list(SOURCES))
    parser.add_argument("--only", type=names(PARTS), default=list(PARTS),
                        help=f"parts to measure, from {', '.join(PARTS)} (connectors: the four servers)")
    parser.add_argument("--concurrency", type=int, default=4, help="part 4's threads, both sides")
    parser.add_argument("--connector-people", type=int, help="part 4's size for every server (default: the issue's)")
    parser.add_argument("--json", type=Path, help="write every row here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    parts = set(args.only)
    before = machine()
    rows: list[Row] = []
    for size in args.people:
        if parts - set(CONNECTORS):
            rows += size_rows(size, args, parts)
    for name in CONNECTORS:
        if name in parts:
            people = args.connector_people or CONNECTORS[name].people
            print(f"{name}: {people:,} people, {args.repeat} interleaved pairs", flush=True)
            rows.append(connector_row(name, people, args.repeat, args.concurrency))
    after = machine()
    rows.sort(key=lambda r: r.part)  # stable: sizes and sources keep their order within a part
    print(table(rows))
    print(f"load average {before['load_average']} before, {after['load_average']} after; {after['cpus']} CPUs")
    if args.json:
        args.json.write_text(json.dumps({"machine": {"before": before, "after": after}, "people": args.people,
                                         "repeat": args.repeat, "rows": [r.as_json() for r in rows]}, indent=2))
    return 0 if all(r.met is not False for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
