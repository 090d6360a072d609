"""Two runs of one pipeline never overlap; a lock left by a killed run is taken over."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from conftest import QUICKSTART

HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from runner.mapping.checks import load
    from runner.state.opening import Mode, open_store
    store = open_store(load(sys.argv[1]), Mode.WRITE)
    store.runs.acquire_lock("quickstart", "holder-run")
    print("locked", flush=True)
    time.sleep(120)
""")


def hold_lock(manifest: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(manifest)], stdout=subprocess.PIPE, text=True,
                            env=os.environ.copy())
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def test_second_run_stops_with_exit_3_naming_the_holder(quickstart_env, provision):
    quickstart_env(people=30, groups=3)
    holder = hold_lock(QUICKSTART)
    try:
        result = provision("run", QUICKSTART, "--output", "json")
        assert result.code == 3
        assert "already running" in result.err
        assert f"pid {holder.pid}" in result.err and "holder-run" in result.err
        assert result.json()["status"] == "stopped"
    finally:
        holder.kill()
        holder.wait()


def test_lock_of_a_killed_run_is_taken_over(quickstart_env, provision):
    quickstart_env(people=30, groups=3)
    holder = hold_lock(QUICKSTART)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    result = provision("run", QUICKSTART, "--output", "json")
    assert result.code == 0, result.err
    assert result.json()["status"] == "ok"
    assert "took over the lock" in result.err and "holder-run" in result.err
    # and the lock is released afterwards: the next run goes through without a takeover
    again = provision("run", QUICKSTART)
    assert again.code == 0 and "took over" not in again.err
