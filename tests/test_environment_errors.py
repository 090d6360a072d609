"""What the machine does to a job at 3 a.m.: a locked or unreadable state store, a full disk, a
closed pipe, a mistyped target path. Each gets a clear message and its exit code (4 for the
environment, 141 for a closed pipe), never "internal error", and loses nothing.

Real processes and real files throughout: a second process holding a SQLite write transaction,
previews run while runs are going, a pipe closed early, /dev/full, SQLite's own page limit, a
process without the power to ignore file permissions."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import QUICKSTART, REPO, person, read_app, write_hr

from runner import sampledata

EXIT_ENVIRONMENT = 4
EXIT_BROKEN_PIPE = 141
HOLDER = """
import sqlite3, sys, time
con = sqlite3.connect(sys.argv[1], isolation_level=None)
con.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
seconds = float(sys.argv[2])
time.sleep(seconds) if seconds >= 0 else sys.stdin.read()
con.execute("COMMIT")
print(f"released {time.time()}", flush=True)
"""


def cli(*args: str | Path, env: dict[str, str] | None = None, timeout: float = 120,
        prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """``provision ARGS`` in its own process."""
    return subprocess.run([*prefix, sys.executable, "-m", "runner.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=env or dict(os.environ), cwd=REPO)


def spawn(*args: str | Path, **kwargs) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "runner.cli", *map(str, args)], text=True, cwd=REPO,
                            env=dict(os.environ), **kwargs)


def hold_lock(db: Path, seconds: float) -> subprocess.Popen[str]:
    """A second process with a write transaction open on ``db`` (-1: until its stdin closes)."""
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(db), str(seconds)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
    return holder


def no_internal_error(text: str) -> None:
    for bad in ("internal error", "Traceback", "Exception ignored", "BrokenPipeError", "PROVISION_DEBUG"):
        assert bad not in text, text


@pytest.fixture
def provisioned(quickstart_env, provision, tmp_path: Path) -> Path:
    """The quickstart run once on 200 people; returns the state store's file."""
    quickstart_env(people=200, groups=20)
    first = provision("run", QUICKSTART)
    assert first.code == 0, first.err
    return tmp_path / "app.db.state"


# ---- a busy or locked state store ---------------------------------------------------------------

def test_a_run_waits_for_a_write_transaction_another_process_holds(provisioned: Path, provision, tmp_path: Path,
                                                                   monkeypatch):
    """SQLite's busy timeout only helps a transaction that asks for the write lock first: a run
    that read first used to fail at once with "database is locked"."""
    monkeypatch.setenv("PROVISION_STATE_BUSY_TIMEOUT", "60")
    sampledata.mutate(tmp_path / "data", 7, 3.0)
    holder = hold_lock(provisioned, 3)
    started = time.time()
    result = provision("run", QUICKSTART, "--output", "json", "--allow-deletes", "all")
    holder_out, _ = holder.communicate(timeout=60)
    released = float(holder_out.split()[-1])
    assert result.code == 0, result.err
    assert released > started  # the run started while the lock was held, so it waited for it
    assert result.json()["status"] == "ok"
    again = provision("run", QUICKSTART, "--output", "json")
    assert again.code == 0 and all(c["added"] == c["updated"] == c["deleted"] == 0
                                   for c in again.json()["object_types"].values())


def test_a_state_store_locked_past_the_timeout_stops_with_exit_4(provisioned: Path, provision, tmp_path: Path,
                                                                  monkeypatch):
    monkeypatch.setenv("PROVISION_STATE_BUSY_TIMEOUT", "1")
    before = read_app(tmp_path / "app.db")
    holder = hold_lock(provisioned, -1)
    try:
        started = time.monotonic()
        result = provision("run", QUICKSTART)
        took = time.monotonic() - started
        # readers are not blocked meanwhile: status and preview answer
        status = provision("status", QUICKSTART)
        preview = provision("preview", QUICKSTART, "--object-type", "user", "--anchor", "E0000001")
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert result.code == EXIT_ENVIRONMENT, result.out + result.err
    assert f"the state store {provisioned} is locked by another process" in result.err
    assert "waited 1 s" in result.err and "PROVISION_STATE_BUSY_TIMEOUT" in result.err
    no_internal_error(result.out + result.err)
    assert took < 20
    assert status.code == 0, status.err
    assert preview.code == 0, preview.err
    assert read_app(tmp_path / "app.db") == before
    assert provision("run", QUICKSTART).code == 0  # once the lock is gone, all is well


def test_previews_and_status_never_disturb_a_running_run(quickstart_env, provision, tmp_path: Path):
    """Previews (no --apply) and status while runs are going: every run ends ok, every preview
    answers. Until enough previews overlapped a run (bounded: a few runs)."""
    data = quickstart_env(people=1500, groups=30)
    assert provision("run", QUICKSTART).code == 0
    anchors = [line.split(",", 1)[0] for line in (data / "people.csv").read_text(encoding="utf-8").splitlines()[1:4]]
    overlapped = 0
    for attempt in range(6):
        sampledata.mutate(data, 100 + attempt, 40.0)
        run = spawn("run", QUICKSTART, "--allow-deletes", "all", "--output", "json",
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        i = 0
        while run.poll() is None:
            args = ("status", QUICKSTART) if i % 3 == 2 else \
                ("preview", QUICKSTART, "--object-type", "user", "--anchor", anchors[i % len(anchors)])
            other = cli(*args)
            assert other.returncode == 0, other.stdout + other.stderr
            overlapped += run.poll() is None  # it finished while the run was still going
            i += 1
        out, err = run.communicate(timeout=120)
        assert run.returncode == 0, err
        assert json.loads(out)["status"] == "ok"
        no_internal_error(err)
        if overlapped >= 4:
            break
    assert overlapped >= 4, "the runs were too quick for previews to overlap them"


# ---- a closed pipe ------------------------------------------------------------------------------

@pytest.mark.parametrize("output", ["text", "json"])
def test_plan_into_a_pipe_closed_early_exits_141_quietly(quickstart_env, output: str):
    quickstart_env(people=1000, groups=20)  # a plan of every add: far more than a pipe buffer holds
    plan = spawn("plan", QUICKSTART, "--output", output, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert plan.stdout is not None and plan.stdout.read(100)  # head: takes a little, then goes away
    plan.stdout.close()
    try:
        err = plan.stderr.read()
        plan.wait(timeout=120)
    finally:
        plan.kill()
    assert plan.returncode == EXIT_BROKEN_PIPE, err
    assert err == ""
    shell = subprocess.run(["bash", "-c", f'"{sys.executable}" -m runner.cli plan "{QUICKSTART}" | head -n 2; '
                            'echo "exit ${PIPESTATUS[0]}" >&2'], capture_output=True, text=True, timeout=120,
                           cwd=REPO)
    assert shell.stdout.startswith("plan ") and len(shell.stdout.splitlines()) == 2
    assert shell.stderr == f"exit {EXIT_BROKEN_PIPE}\n"


# ---- full disks ---------------------------------------------------------------------------------

def test_a_full_disk_under_the_log_file_names_it_and_exits_4(quickstart_env, provision, tmp_path: Path):
    """/dev/full answers every write with ENOSPC, as a full disk does."""
    quickstart_env(people=50, groups=5)
    result = provision("run", QUICKSTART, "--log-file", "/dev/full")
    assert result.code == EXIT_ENVIRONMENT, result.out + result.err
    assert "no space left: the disk is full (/dev/full)" in result.err
    assert "Free some space there" in result.err
    no_internal_error(result.err)
    # nothing lost: the next run (log elsewhere) settles what was in flight and finishes the job
    log = tmp_path / "prov.log"
    again = provision("run", QUICKSTART, "--log-file", log, "--output", "json")
    assert again.code == 0, again.err
    after = provision("run", QUICKSTART, "--output", "json").json()["object_types"]
    assert all(c["added"] == c["updated"] == 0 for c in after.values()), after
    users = provision("status", QUICKSTART, "--output", "json").json()["object_types"]["user"]
    assert users["linked"] == users["in_scope"] > 0 and users["pending"] == 0
    assert len(read_app(tmp_path / "app.db")["users"]) == users["in_scope"]


def test_output_to_a_full_disk_exits_4_naming_standard_output(quickstart_env):
    quickstart_env(people=300, groups=5)
    with open("/dev/full", "w") as full:
        result = subprocess.run([sys.executable, "-m", "runner.cli", "plan", str(QUICKSTART)], stdout=full,
                                stderr=subprocess.PIPE, text=True, timeout=120, cwd=REPO)
    assert result.returncode == EXIT_ENVIRONMENT, result.stderr
    assert "no space left: the disk is full (standard output)" in result.stderr
    no_internal_error(result.stderr)


def test_a_full_state_store_names_its_file_and_loses_nothing(provisioned: Path, provision, tmp_path: Path,
                                                              monkeypatch):
    """SQLite's max_page_count makes the store's file unable to grow: "database or disk is full",
    exactly what a full disk gives it."""
    from runner.state import store as store_module

    pages = sqlite3.connect(provisioned).execute("PRAGMA page_count").fetchone()[0]
    real = store_module._sqlite_pragmas

    def capped(dbapi_connection, record):
        real(dbapi_connection, record)
        dbapi_connection.execute(f"PRAGMA max_page_count={pages}")

    sampledata.mutate(tmp_path / "data", 11, 60.0)
    monkeypatch.setattr(store_module, "_sqlite_pragmas", capped)
    result = provision("run", QUICKSTART, "--allow-deletes", "all")
    assert result.code == EXIT_ENVIRONMENT, result.out + result.err
    assert f"the state store {provisioned} cannot grow: the disk (or the quota) is full" in result.err
    no_internal_error(result.err)
    monkeypatch.setattr(store_module, "_sqlite_pragmas", real)
    again = provision("run", QUICKSTART, "--allow-deletes", "all", "--output", "json")
    assert again.code == 0, again.err
    after = provision("run", QUICKSTART, "--output", "json").json()["object_types"]
    assert all(c["added"] == c["updated"] == c["deleted"] == c["disabled"] == 0 for c in after.values()), after


# ---- read-only, unreadable, incompatible state stores -------------------------------------------

def _without_file_powers() -> tuple[str, ...]:
    """A command prefix for a process that obeys file permissions (root ignores them)."""
    if os.geteuid() != 0:
        return ()
    setpriv = shutil.which("setpriv")
    prefix = (setpriv, "--bounding-set", "-dac_override,-dac_read_search,-fowner", "--") if setpriv else ()
    if not prefix:
        pytest.fail("cannot start a process that obeys file permissions here: install util-linux (setpriv)")
    with tempfile.TemporaryDirectory() as folder:
        probe = Path(folder) / "read-only"
        probe.write_text("")
        probe.chmod(0o444)
        tried = subprocess.run([*prefix, sys.executable, "-c", f"open({str(probe)!r}, 'a')"], capture_output=True)
    if tried.returncode == 0:
        pytest.fail("cannot start a process that obeys file permissions here (setpriv could not drop them)")
    return prefix


@pytest.mark.parametrize("what", ["file", "folder"])
def test_a_read_only_state_store_names_its_file_and_exits_4(provisioned: Path, tmp_path: Path, what: str):
    prefix = _without_file_powers()
    before = read_app(tmp_path / "app.db")
    sampledata.mutate(tmp_path / "data", 5, 5.0)
    locked = [provisioned] if what == "file" else [provisioned, tmp_path]
    for path in locked:
        path.chmod(0o555 if path.is_dir() else 0o444)
    try:
        result = cli("run", QUICKSTART, "--allow-deletes", "all", prefix=prefix)
    finally:
        for path in locked:
            path.chmod(0o755 if path.is_dir() else 0o644)
    assert result.returncode == EXIT_ENVIRONMENT, result.stdout + result.stderr
    assert f"the state store {provisioned} " in result.stderr
    assert ("is read-only for the user running provision" in result.stderr
            or "cannot be opened: check that its folder exists" in result.stderr), result.stderr
    no_internal_error(result.stderr)
    assert read_app(tmp_path / "app.db") == before


def test_a_state_store_that_is_not_a_database_exits_4(quickstart_env, provision, tmp_path: Path):
    quickstart_env(people=20, groups=2)
    state = tmp_path / "app.db.state"
    state.write_bytes(b"this is a spreadsheet someone saved here\n" * 200)
    for command in (("run",), ("status",), ("plan",), ("preview", "--object-type", "user", "--anchor", "E0000001")):
        result = provision(command[0], QUICKSTART, *command[1:])
        assert result.code == EXIT_ENVIRONMENT, (command, result.err)
        assert f"the state store {state} is not a SQLite database" in result.err
        no_internal_error(result.err)
    assert not (tmp_path / "app.db").exists()


def test_a_state_store_from_a_newer_provision_exits_4(provisioned: Path, provision):
    con = sqlite3.connect(provisioned)
    con.execute("UPDATE provision_meta SET value = '999' WHERE key = 'schema_version'")
    con.commit()
    con.close()
    result = provision("run", QUICKSTART)
    assert result.code == EXIT_ENVIRONMENT, result.err
    assert "schema version 999" in result.err and "upgrade provision" in result.err


# ---- a target database that does not exist ------------------------------------------------------

def test_a_mistyped_target_path_creates_nothing_and_provisions_nobody(quickstart_copy: Path, provision,
                                                                      tmp_path: Path, monkeypatch):
    """A manifest without create: true (the state store kept in its own place, as in production)."""
    text = quickstart_copy.read_text()
    assert "    create: true" in text
    text = "\n".join(line for line in text.splitlines() if not line.startswith("    create: true"))
    quickstart_copy.write_text(text.replace('state: "sqlite:///${env:PROVISION_TARGET:-out/app.db}.state"',
                                            f'state: "sqlite:///{tmp_path}/state/prod.db"'))
    write_hr(tmp_path / "data", [person("E1", "Ada", "One"), person("E2", "Ben", "Two")], [])
    typo = tmp_path / "srv" / "ap" / "app.db"
    monkeypatch.setenv("PROVISION_TARGET", str(typo))
    result = provision("run", quickstart_copy, "--output", "json")
    assert result.code == 1, result.err
    out = result.json()
    assert out["status"] == "failed"
    for counts in out["object_types"].values():
        assert counts["added"] == 0
        assert (f"the database file {typo} does not exist: check the path, or set create: true on "
                "connector 'app' if provision should create it") in counts["error"]
    assert not (tmp_path / "srv").exists()
    status = provision("status", quickstart_copy)
    assert "user: 0 in source, 0 in scope, 0 linked in target" in status.out
    assert "error: connector 'app': " in status.out  # the run's error, in its recent runs

    # the same manifest with create: true makes the database and its folders
    quickstart_copy.write_text(text.replace("    url: ", "    create: true\n    url: ", 1).replace(
        'state: "sqlite:///${env:PROVISION_TARGET:-out/app.db}.state"', f'state: "sqlite:///{tmp_path}/state/p2.db"'))
    made = provision("run", quickstart_copy)
    assert made.code == 0, made.err
    assert sorted(read_app(typo)["users"]) == ["ada.one", "ben.two"]


# ---- status: every failure, each run's counts, duration and error -------------------------------

def test_status_counts_every_failure_and_lists_them_all_on_request(provision, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("PROVISION_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("PROVISION_TARGET", str(tmp_path / "app.db"))
    people = [person(f"E{i:02}", "Ok", f"Person{i}") for i in range(5)]
    people += [person(f"B{i:02}", "Bad", f"Row{i}", email="") for i in range(25)]
    write_hr(tmp_path / "data", people, [])
    assert provision("run", QUICKSTART).code == 1

    text = provision("status", QUICKSTART)
    assert text.code == 0, text.err
    lines = text.out.splitlines()
    assert "user: 30 in source, 30 in scope, 5 linked in target" in text.out and "25 failing" in text.out
    listed = [line for line in lines if line.startswith("    B")]
    assert len(listed) == 20 and listed[0].startswith("    B00: ") and "user_name" in listed[0]
    assert "    ... and 5 more (--failures all lists every one)" in lines
    assert "failures: 25 in all" in lines

    every = provision("status", QUICKSTART, "--failures", "all").out.splitlines()
    assert [line.split(":")[0].strip() for line in every if line.startswith("    B")] == [f"B{i:02}" for i in range(25)]
    assert not any("more (--failures all" in line for line in every)
    assert len([line for line in provision("status", QUICKSTART, "--failures", "3").out.splitlines()
                if line.startswith("    B")]) == 3
    as_json = provision("status", QUICKSTART, "--output", "json", "--failures", "all").json()
    assert as_json["failing"] == 25 and len(as_json["object_types"]["user"]["failures"]) == 25
    assert as_json["object_types"]["user"]["failures_not_shown"] == 0
    with pytest.raises(SystemExit) as usage:
        provision("status", QUICKSTART, "--failures", "some")
    assert usage.value.code == 2

    # each recent run: its counts, how long it took, and what stopped a pass
    monkeypatch.setenv("PROVISION_DATA", str(tmp_path / "nowhere"))
    assert provision("run", QUICKSTART).code == 1
    runs = lines_after(provision("status", QUICKSTART).out, "last runs:")
    failed, partial = runs[0], next(i for i, line in enumerate(runs) if " partial " in line)
    assert " run   failed " in failed and failed.rstrip().endswith(" s")
    assert any(line.strip().startswith("error: ") and "nowhere" in line for line in runs[1:partial])
    assert runs[partial].rstrip().endswith(" s")
    assert ("      user: 30 imported, 5 added, 0 updated, 0 renamed, 0 disabled, 0 deleted, 0 unchanged, 25 failed"
            in runs[partial:])
    durations = provision("status", QUICKSTART, "--output", "json").json()["runs"]
    assert all(isinstance(r["duration_seconds"], float) and r["duration_seconds"] >= 0 for r in durations)


def lines_after(text: str, marker: str) -> list[str]:
    lines = text.splitlines()
    return lines[lines.index(marker) + 1:]


def test_status_of_a_pipeline_that_never_ran_leaves_no_file(quickstart_env, provision, tmp_path: Path):
    quickstart_env(people=5, groups=1)
    result = provision("status", QUICKSTART)
    assert result.code == 0, result.err
    assert "user: 0 in source" in result.out and "  none yet" in result.out
    assert f"(state: sqlite:///{tmp_path}/app.db.state)" in result.out
    assert list(tmp_path.glob("app.db*")) == []
