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


def test_a_run_whose_lock_is_taken_over_during_compute_commits_no_more_of_it(quickstart_env, provision, tmp_path,
                                                                           monkeypatch):
    """Compute renews the lock with each page it commits, so a long compute is not taken for a
    dead run, and a run that lost its lock meanwhile stops before its next page is recorded."""
    import sqlite3

    from runner.engine import compute

    quickstart_env(people=2500, groups=3)
    sweep, pages = compute.map_sweep, []

    def stolen_after_first_page(ctx, *args, **kwargs):  # type: ignore[no-untyped-def]
        report = ctx.progress.report

        def reported(name, phase, done, *rest, **kw):  # type: ignore[no-untyped-def]
            report(name, phase, done, *rest, **kw)
            if phase == "compute" and not kw.get("finished") and not pages:
                pages.append(done)
                with sqlite3.connect(tmp_path / "app.db.state") as con:  # another run decided this one was dead
                    con.execute("UPDATE locks SET run_id = 'thief', pid = 1")

        monkeypatch.setattr(ctx.progress, "report", reported)
        return sweep(ctx, *args, **kwargs)

    monkeypatch.setattr(compute, "map_sweep", stolen_after_first_page)
    result = provision("run", QUICKSTART, "--output", "json")
    assert result.code == 3, result.err
    assert "took the lock over" in result.err
    with sqlite3.connect(tmp_path / "app.db.state") as con:
        clean = con.execute("SELECT count(*) FROM source_objects WHERE dirty = 0").fetchone()[0]
    assert pages == [1000] and clean == 1000, "the page after the takeover was not recorded"
