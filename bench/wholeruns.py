"""What the whole-run connector benchmarks share (bench/rest_export.py, bench/soap_export.py):
the example manifest copied beside fresh HR data, a process timed from start to exit, and the
table, the JSON and the exit code of a provision-against-raw ratio."""

from __future__ import annotations

import json
import statistics
import subprocess
import time
from pathlib import Path

from runner import sampledata

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


def timed(command: list[str], env: dict[str, str]) -> float:
    """Seconds ``command`` took, start to exit; a failed run stops the benchmark with its error."""
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=REPO)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}): {done.stderr[-2000:]}")
    return elapsed


def report(what: str, raw_label: str, count: int, raws: list[float], ours: list[float], budget: float,
           json_path: Path | None, **facts: object) -> int:
    """Print the medians and their ratio, write them as JSON when asked; 0 within ``budget``, else 1."""
    o, r = statistics.median(ours), statistics.median(raws)
    print(f"{what}, median of {len(ours)}")
    print(f"{raw_label:<20}{r:7.2f} s  {count / r:7.0f}/s   runs: {', '.join(f'{x:.2f}' for x in raws)}")
    print(f"{'provision run':<20}{o:7.2f} s  {count / o:7.0f}/s   runs: {', '.join(f'{x:.2f}' for x in ours)}")
    print(f"ratio {o / r:.2f}x (budget {budget}x)")
    if json_path:
        json_path.write_text(json.dumps({**facts, "count": count, "raw_seconds": raws, "provision_seconds": ours,
                                         "ratio": o / r, "budget": budget}, indent=2))
    return 0 if o / r <= budget else 1
