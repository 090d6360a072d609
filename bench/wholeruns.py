"""What the whole-run benchmarks share (bench/rest_export.py, bench/soap_export.py, bench/budget.py):
the example manifest copied beside fresh HR data, interleaved runs of provision and of a raw client
against one server (each measured by bench/measure.py), and the table, the JSON and the exit code
of a provision-against-raw ratio."""

from __future__ import annotations

import json
import os
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from bench.measure import Measured, measure
from bench.raw_clients import RAW_CLIENTS
from runner import sampledata

__all__ = ["RAW_CLIENTS", "Contest", "Measured", "Target", "example", "measure", "report", "whole_runs"]

REPO = Path(__file__).resolve().parent.parent


def example(tmp: Path, name: str, mappings: tuple[str, ...], people: int, concurrency: int) -> tuple[Path, Path]:
    """``manifests/NAME.yaml`` and its mappings in ``tmp`` at ``concurrency``, with HR data of that many
    people: (manifest, data folder)."""
    data = tmp / "data"
    sampledata.make(data, people, 1, 7)
    manifest = tmp / "manifests" / f"{name}.yaml"
    manifest.parent.mkdir()
    text = (REPO / "manifests" / f"{name}.yaml").read_text()
    assert "concurrency: 4" in text, f"manifests/{name}.yaml no longer says concurrency: 4"
    manifest.write_text(text.replace("concurrency: 4", f"concurrency: {concurrency}"))
    (tmp / "mappings").mkdir()
    for mapping in mappings:
        (tmp / "mappings" / mapping).write_text((REPO / "mappings" / mapping).read_text())
    return manifest, data


class Target(Protocol):
    """A real server both sides of a whole-run comparison write users to."""

    example: str  # manifests/<example>.yaml, whose user object type goes to this server
    mappings: tuple[str, ...]  # the mapping files that manifest names

    def reset(self) -> dict[str, str]:
        """Make the target empty; the environment the example manifest (and the raw client) needs."""

    def records(self) -> list[dict[str, Any]]:
        """The users the target holds, as a raw client would send them (server-made fields left out)."""

    def raw_command(self, bodies: Path, concurrency: int) -> list[str]:
        """The raw client's process, sending the records in ``bodies`` to the target as it is now."""

    def stop(self) -> None:
        """Stop the server(s) by PID."""


@dataclass(frozen=True)
class Contest:
    """Interleaved whole runs: provision's and the raw client's, and how many records each sent."""

    ours: list[Measured]
    raws: list[Measured]
    count: int


def canonical(records: list[dict[str, Any]]) -> list[str]:
    """Records in a form that compares equal whatever order the server lists them in."""
    return sorted(json.dumps(r, sort_keys=True) for r in records)


def whole_runs(target: Target, tmp: Path, people: int, concurrency: int, repeat: int) -> Contest:
    """``repeat`` interleaved pairs, so drift hits both sides alike: ``provision run --object-type
    user`` of the example from a new state store (CSV import, scope, mapping, the first-contact read
    of the target, the creates, the state kept), then the raw client sending the very records that
    run left, at the same concurrency; the raw side must leave the same records. Stops the target."""
    try:
        manifest, data = example(tmp, target.example, target.mappings, people, concurrency)
        provision = [sys.executable, "-m", "runner", "run", str(manifest), "--object-type", "user"]
        env = os.environ | {"PROVISION_DATA": str(data)}
        bodies_file = tmp / "bodies.json"
        ours, raws, bodies = [], [], []
        for n in range(repeat):
            ours.append(measure(provision, env | target.reset() | {"PROVISION_STATE": str(tmp / f"state-{n}.db")}))
            bodies = target.records()
            assert bodies, "the provision run created no user"
            bodies_file.write_text(json.dumps(bodies))
            raw_env = env | target.reset()
            raws.append(measure(target.raw_command(bodies_file, concurrency), raw_env))
            if canonical(target.records()) != canonical(bodies):
                raise SystemExit(f"{target.example}: the raw run left other users than provision's")
        return Contest(ours, raws, len(bodies))
    finally:
        target.stop()


def report(what: str, raw_label: str, contest: Contest, budget: float, json_path: Path | None,
           **facts: object) -> int:
    """Print the medians and their ratio, write them as JSON when asked; 0 within ``budget``, else 1."""
    count = contest.count
    ours, raws = [m.seconds for m in contest.ours], [m.seconds for m in contest.raws]
    o, r = statistics.median(ours), statistics.median(raws)
    print(f"{what}, median of {len(ours)}")
    print(f"{raw_label:<20}{r:7.2f} s  {count / r:7.0f}/s   runs: {', '.join(f'{x:.2f}' for x in raws)}")
    print(f"{'provision run':<20}{o:7.2f} s  {count / o:7.0f}/s   runs: {', '.join(f'{x:.2f}' for x in ours)}")
    print(f"ratio {o / r:.2f}x (budget {budget}x)")
    if json_path:
        json_path.write_text(json.dumps({**facts, "count": count, "raw_seconds": raws, "provision_seconds": ours,
                                         "ratio": o / r, "budget": budget}, indent=2))
    return 0 if o / r <= budget else 1
