"""A process timed from start to exit, with the peak RSS of that process alone.

    python bench/measure.py USAGE_FILE COMMAND...   # the helper: runs COMMAND, writes its usage as JSON

Linux reports, as a child's peak RSS (``ru_maxrss`` from ``wait4``), at least what its parent's
address space held at its highest when it forked: the copy is counted at exec. A bench that holds
servers, clients or 100k records would lend its own peak to every process it measures. So
:func:`measure` starts this file as a small helper (standard library only, about 10 MB), which
starts the command and waits for it: the command's peak is its own, or the helper's 10 MB at the
least. The helper times the command alone, so its own start-up is not in the seconds either.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Measured:
    """One process from start to exit: wall seconds, CPU seconds and peak RSS (MB) of that process
    alone (not its children's), and what it printed on stdout."""

    seconds: float
    cpu: float
    peak_mb: float
    out: str


def measure(command: list[str], env: dict[str, str], cwd: Path = REPO) -> Measured:
    """Run ``command`` through the helper and measure it; a failed run stops the benchmark with the
    end of its stderr."""
    # measured as installed: pip compiles modules to bytecode, and a shell that forbids writing it
    # (PYTHONDONTWRITEBYTECODE, set on the project's machines) would have every start compile
    # provision's hundred-odd modules again, about 0.35 s of CPU charged to every whole run
    env = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}
    with tempfile.TemporaryDirectory(prefix="measure-") as tmp:
        usage_file = Path(tmp) / "usage.json"
        done = subprocess.run([sys.executable, "-S", __file__, str(usage_file), *command], env=env, cwd=cwd,
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed ({done.returncode}): {done.stderr[-2000:]}")
        usage = json.loads(usage_file.read_text())
    return Measured(usage["seconds"], usage["cpu"], usage["peak_mb"], done.stdout)


def helper(usage_file: str, command: list[str]) -> int:
    """Run ``command`` (its output passes through), write its seconds, CPU and peak RSS; its exit code."""
    started = time.perf_counter()
    proc = subprocess.Popen(command)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
    Path(usage_file).write_text(json.dumps({"seconds": elapsed, "cpu": usage.ru_utime + usage.ru_stime,
                                            "peak_mb": usage.ru_maxrss / 1024}))
    return proc.returncode


if __name__ == "__main__":
    sys.exit(helper(sys.argv[1], sys.argv[2:]))
