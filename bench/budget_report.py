"""The rows of bench/budget.py: one measured ratio against its budget, printed as a table and kept as JSON."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.measure import Measured

RSS_BUDGET_MB = 300  # the peak RSS at 1M people
RSS_BUDGET_PEOPLE = 1_000_000


@dataclass(frozen=True)
class Row:
    """provision against its baseline, measured in the same bench on the same data.

    ``ratio`` is the medians' ratio, ``ratio_min`` the minimums' (the run least hit by the
    machine's other work on each side). ``budget`` is None where the issue sets none (a floor on
    the way), and ``met`` is None then too. ``percent``: the ratio reads as a share of the
    baseline (a delta cycle against the initial one)."""

    part: int
    what: str
    size: int
    baseline: str
    provision_seconds: list[float]
    baseline_seconds: list[float]
    ratio: float
    ratio_min: float | None
    budget: float | None
    budget_text: str
    met: bool | None
    peak_rss_mb: float
    baseline_peak_rss_mb: float | None
    percent: bool = False
    facts: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def compared(part: int, what: str, size: int, baseline: str, ours: list[Measured], base: list[Measured],
             budget: float | None, budget_text: str, *, percent: bool = False, **facts: Any) -> Row:
    """The row of provision's runs ``ours`` against the baseline's runs ``base``."""
    o, b = [m.seconds for m in ours], [m.seconds for m in base]
    ratio = statistics.median(o) / statistics.median(b)
    return Row(part, what, size, baseline, o, b, ratio, min(o) / min(b), budget, budget_text,
               None if budget is None else ratio <= budget, max(m.peak_mb for m in ours),
               max(m.peak_mb for m in base), percent, facts)


def rss_row(size: int, runs: list[Measured]) -> Row:
    """The highest peak RSS of provision's processes at this size, as a share of 300 MB; the budget
    holds at 1M people, so below that the row reports the memory without a verdict."""
    peak = max(runs, key=lambda m: m.peak_mb)
    applies = size >= RSS_BUDGET_PEOPLE
    return Row(5, "peak RSS of any provision process at this size", size, f"{RSS_BUDGET_MB} MB",
               [peak.seconds], [], peak.peak_mb / RSS_BUDGET_MB, None, 1.0 if applies else None,
               f"<= {RSS_BUDGET_MB} MB at 1M people", peak.peak_mb <= RSS_BUDGET_MB if applies else None,
               peak.peak_mb, None, facts={"processes": len(runs)})


def seconds(values: list[float]) -> str:
    return f"{min(values):.2f} / {statistics.median(values):.2f}" if values else "-"


def ratio_text(row: Row) -> str:
    if row.part == 5:
        return f"{row.ratio:.2f}x of {RSS_BUDGET_MB} MB"
    if row.percent:
        return f"{row.ratio:.1%}" + (f" ({row.ratio_min:.1%})" if row.ratio_min is not None else "")
    return f"{row.ratio:.2f}x" + (f" ({row.ratio_min:.2f}x)" if row.ratio_min is not None else "")


def table(rows: list[Row]) -> str:
    """A Markdown table, ready for docs/performance.md."""
    lines = ["| part | what | size | provision s (min / median) | against | baseline s (min / median) "
             "| ratio (median; min) | budget | met | peak RSS MB |", "|---|---|---:|---:|---|---:|---:|---|---|---:|"]
    for r in rows:
        met = "n/a" if r.met is None else ("yes" if r.met else "**no**")
        lines.append(f"| {r.part} | {r.what} | {r.size:,} | {seconds(r.provision_seconds)} | {r.baseline} "
                     f"| {seconds(r.baseline_seconds)} | {ratio_text(r)} | {r.budget_text} | {met} "
                     f"| {r.peak_rss_mb:.0f} |")
    return "\n".join(lines)
