"""Parts 1, 2, 3 and the check of bench/budget.py: cycles of an example pipeline into SQLite against their floors.

One repetition of one source runs, in a folder of its own, in this order (so that drift hits
provision and its baselines alike): the floor's bulk load, the floor with a state table, the
initial cycle, the no-op cycle, ``runner.sampledata mutate``, the delta cycle, and (for the
first source) a mapping change re-evaluated with ``--no-import`` and its floor. Every process is
measured on its own (bench/measure.py). The first repetition also proves that each floor wrote
what provision wrote (``budget_children.py same``), so the ratios compare equal work.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.budget_report import Row, compared
from bench.measure import Measured, measure
from bench.state_1m import pipeline, sampledata

CHILDREN = str(Path(__file__).resolve().parent / "budget_children.py")
DISPLAY_NAME = "expression: \"join(' ', [coalesce(preferred_name, first_name), last_name])\""
UPPER_DISPLAY_NAME = "expression: \"upper(join(' ', [coalesce(preferred_name, first_name), last_name]))\""
CHANGES = ("added", "updated", "renamed", "disabled", "deleted")
FLOOR_BUDGET, FLOOR_BUDGET_TEXT = 4.0, "<= 4x (goal 3x)"


@dataclass(frozen=True)
class Source:
    """An example pipeline from HR data into a SQLite application database."""

    name: str
    label: str
    manifest: str  # in manifests/
    mapping: str  # in mappings/: the person mapping, whose display_name the mapping change edits
    schema: str  # budget_children.SCHEMAS
    reader: str  # how the floor reads the source: csv or sql
    delta_budget: float  # share of the initial cycle


SOURCES = {
    "csv": Source("csv", "CSV -> SQLite", "quickstart.yaml", "person-to-app-user.yaml", "quickstart", "csv", 0.15),
    "watermark": Source("watermark", "SQLite watermark -> SQLite", "hr-sql-watermark.yaml",
                        "hr-person-to-account.yaml", "hr", "sql", 0.05),
    "changes": Source("changes", "SQLite change table -> SQLite", "hr-sql-to-sql.yaml", "hr-person-to-account.yaml",
                      "hr", "sql", 0.05),
}


@dataclass(frozen=True)
class Pipeline:
    """One repetition of one source: a copy of the example and of the HR data in ``root``."""

    source: Source
    root: Path
    manifest: Path
    env: dict[str, str]

    @classmethod
    def make(cls, source: Source, made: Path, root: Path) -> Pipeline:
        data = root / "data"
        shutil.copytree(made, data)
        manifest = pipeline(root, f"sqlite:///{root / 'state.db'}", source.manifest)
        env = os.environ | {"PROVISION_DATA": str(data), "PROVISION_TARGET": str(root / "app.db"),
                            "HR_DB_URL": f"sqlite:///{data / 'hr.db'}", "TARGET_DB_URL": f"sqlite:///{root / 'app.db'}"}
        return cls(source, root, manifest, env)

    @property
    def target(self) -> Path:
        return self.root / "app.db"

    def run(self, *options: str) -> tuple[Measured, dict[str, dict[str, int]]]:
        """``provision run`` in a process of its own: measured, with its counts per object type."""
        done = measure([sys.executable, "-m", "runner", "run", str(self.manifest), "--output", "json", *options],
                       self.env)
        return done, json.loads(done.out)["object_types"]

    def child(self, *args: str | Path) -> Measured:
        """A bench/budget_children.py process (a floor, the plain read, the check)."""
        return measure([sys.executable, CHILDREN, *map(str, args)], self.env)

    def floor(self, name: str, *extra: str | Path) -> Measured:
        return self.child("load", self.source.schema, self.source.reader, self.root / "data", self.root / name, *extra)

    def same(self, other: Path) -> None:
        """Stop the bench unless ``other`` holds what provision's target holds."""
        self.child("same", self.source.schema, self.target, other)


def median_seconds(runs: list[Measured]) -> float:
    return statistics.median(m.seconds for m in runs)


def changed(counts: dict[str, dict[str, int]]) -> int:
    return sum(c.get(k, 0) for c in counts.values() for k in CHANGES)


def expect(what: str, ok: bool, counts: dict[str, Any]) -> None:
    if not ok:
        raise SystemExit(f"{what}: unexpected counts {counts}")


def initial(p: Pipeline, parts: set[str], verify: bool) -> dict[str, Measured]:
    """The floors (when part 1 is measured), then the initial cycle."""
    got = {}
    if "initial" in parts:
        got["floor"] = p.floor("floor.db")
        got["floor+state"] = p.floor("floor-state.db", "--state", p.root / "floor-state.state.db")
    got["initial"], counts = p.run()
    expect("initial cycle", counts["user"]["added"] > 0, counts)
    if verify and "initial" in parts:
        p.same(p.root / "floor.db")  # the floor with a state table writes its target the same way
    return got


def deltas(p: Pipeline, percent: float) -> dict[str, Measured]:
    """The no-op cycle (nothing may change), then ``percent``% of the people changed and the delta cycle."""
    got = {}
    got["no-op"], counts = p.run()
    expect("no-op cycle", changed(counts) == 0, counts)
    sampledata("mutate", "--out", str(p.root / "data"), "--seed", "2", "--percent", str(percent))
    got["delta"], counts = p.run()
    expect("delta cycle", changed(counts) > 0, counts)
    return got


def mapping_change(p: Pipeline, verify: bool) -> tuple[dict[str, Measured], int]:
    """display_name upper-cased in the mapping, re-evaluated from the state store without reading
    the source; the floor writes the same values into a copy of the target as it was before."""
    shutil.copy(p.target, p.root / "floor-update.db")
    mapping = p.root / "mappings" / p.source.mapping
    text = mapping.read_text()
    assert text.count(DISPLAY_NAME) == 1, f"{mapping.name} no longer maps display_name as the bench expects"
    mapping.write_text(text.replace(DISPLAY_NAME, UPPER_DISPLAY_NAME))
    got = {}
    got["mapping"], counts = p.run("--no-import", "--object-type", "user")
    user = counts["user"]
    expect("mapping change", user["imported"] == 0 and user["updated"] > 0, counts)
    got["floor update"] = p.child("update", p.source.schema, p.root / "floor-update.db")
    if verify:
        p.same(p.root / "floor-update.db")
    return got, user["updated"]


def repetition(p: Pipeline, parts: set[str], percent: float, verify: bool, remap: bool) -> dict[str, Any]:
    """One repetition of the selected cycles; what was measured, by name."""
    got: dict[str, Any] = initial(p, parts, verify)
    if "delta" in parts:
        got |= deltas(p, percent)
    if remap:
        measured, got["re-evaluated"] = mapping_change(p, verify)
        got |= measured
    print(f"  {p.source.name}: " + ", ".join(f"{k} {v.seconds:.2f} s" for k, v in got.items()
                                              if isinstance(v, Measured)), flush=True)
    return got


def cycle_rows(source: Source, size: int, runs: list[dict[str, Any]], percent: float) -> list[Row]:
    """Parts 1, 2 and 3 for one source, from its repetitions."""
    def series(name: str) -> list[Measured]:
        return [r[name] for r in runs]

    rows = []
    if "floor" in runs[0]:
        rows.append(compared(1, f"initial cycle, {source.label}", size, "SQLAlchemy Core bulk load, no state",
                             series("initial"), series("floor"), FLOOR_BUDGET, FLOOR_BUDGET_TEXT))
        rows.append(compared(1, f"initial cycle, {source.label}", size, "Core + a state table (anchor, id, row hash)",
                             series("initial"), series("floor+state"), None, "none (a floor on the way)"))
    if "delta" in runs[0]:
        rows.append(compared(2, f"no-op cycle, {source.label}", size, "the initial cycle", series("no-op"),
                             series("initial"), 0.05, "<= 5%", percent=True))
        rows.append(compared(2, f"{percent:g}% delta cycle, {source.label}", size, "the initial cycle",
                             series("delta"), series("initial"), source.delta_budget,
                             f"<= {source.delta_budget:.0%}", percent=True))
    if "mapping" in runs[0]:
        against_initial = median_seconds(series("mapping")) / median_seconds(series("initial"))
        rows.append(compared(3, f"mapping change, {runs[0]['re-evaluated']:,} users re-evaluated from the state "
                                f"(--no-import), {source.label}", size,
                             "Core UPDATE executemany of the same values", series("mapping"), series("floor update"),
                             FLOOR_BUDGET, "<= 4x (the issue sets none: the initial cycle's)",
                             against_initial_cycle=against_initial))
    return rows


def check_row(p: Pipeline, size: int, repeat: int) -> tuple[Row, list[Measured]]:
    """``check`` against a plain paged read of the same target, in the steady state: a reconciling
    run has read the target since the last exports (as bench/check.py measures it)."""
    reconciled, _ = p.run("--no-import", "--reconcile")
    checks, reads = [], []
    for _ in range(repeat):
        reads.append(p.child("read", p.target))
        checks.append(p.child("check", p.manifest))
    linked = json.loads(checks[0].out)["linked"]
    row = compared(4, f"check (no source read) of {linked:,} linked objects, {p.source.label}", size,
                   "plain paged read of the target (sql connector)", checks, reads, 2.0, "<= 2x", linked=linked)
    return row, [reconciled, *checks]
