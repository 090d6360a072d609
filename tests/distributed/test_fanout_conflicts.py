"""Slices of one sweep write each other's rows (a scope sweep marks referrers dirty wherever they
are), so two of them can deadlock, in PostgreSQL as in MariaDB. The one the server picks as the
victim is rolled back and run again (slices.with_retries), carrying on from what it committed:
each slice's writes land exactly once (and are counted once), none is lost to the conflict, and
none is hidden (the log says so). A slice of a run whose lock another run took over writes nothing
(its commits are fenced), and the coordinator that took it over waits for the dead run's slices
still running."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from runner.distributed import slices, tally
from runner.distributed.slices import with_retries
from runner.engine.context import TypeCounts
from runner.state.store import StateStore


@pytest.mark.parametrize("server", ["postgresql", "mariadb"])
def test_two_slices_that_deadlock_both_finish_with_each_write_once(databases, tmp_path: Path, caplog,
                                                                   server: str) -> None:
    """Each write counted once too: a slice's counts are committed with its writes (tally.py), and
    the victim's rolled-back ones are not counted again when it runs again."""
    url = databases(server)
    first, second = StateStore(url, tmp_path), StateStore(url, tmp_path)
    first.conn.exec_driver_sql("CREATE TABLE rows_ (k int PRIMARY KEY, v int NOT NULL)")
    first.conn.exec_driver_sql("INSERT INTO rows_ VALUES (1, 0), (2, 0)")
    first.commit()
    slices.ensure_table(first.engine)
    with first.engine.connect() as conn:
        tally.add_rows(conn, "the-run", "its-task", [("first", "export"), ("second", "export")])
        conn.commit()
    tallies = {"first": tally.Tally(first, "the-run"), "second": tally.Tally(second, "the-run")}
    counts = {name: t.part(name, "export").setdefault("rows_", TypeCounts()) for name, t in tallies.items()}
    both_hold_one = threading.Barrier(2, timeout=30)
    attempts = {"first": 0, "second": 0}

    def slice_(store: StateStore, name: str, mine: int, theirs: int, step: int) -> dict:
        attempts[name] += 1
        store.conn.exec_driver_sql(f"UPDATE rows_ SET v = v + {step} WHERE k = {mine}")
        counts[name].updated += 1
        if attempts[name] == 1:
            both_hold_one.wait()  # each holds its own row and now wants the other's: a deadlock
        store.conn.exec_driver_sql(f"UPDATE rows_ SET v = v + {step} WHERE k = {theirs}")
        counts[name].updated += 1
        store.commit()
        return {}

    failures: list[BaseException] = []

    def run(store: StateStore, name: str, mine: int, theirs: int, step: int) -> None:
        try:
            with_retries(store, lambda: slice_(store, name, mine, theirs, step), name,
                         lambda: tallies[name].again(name))
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    with caplog.at_level(logging.WARNING, logger="provision"):
        threads = [threading.Thread(target=run, args=(first, "first", 1, 2, 1)),
                   threading.Thread(target=run, args=(second, "second", 2, 1, 10))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert not failures, failures
    assert sorted(attempts.values()) == [1, 2]  # the victim ran again, once
    rows = dict(first.conn.exec_driver_sql("SELECT k, v FROM rows_").all())
    assert rows == {1: 11, 2: 11}  # both slices' writes, each exactly once
    committed = dict(first.conn.execute(sa.select(tally.rows.c.part, tally.rows.c.counts)).all())
    assert {name: json.loads(text)["rows_"]["updated"] for name, text in committed.items()} == {"first": 2, "second": 2}
    assert counts["first"].updated == counts["second"].updated == 2
    # PostgreSQL: "deadlock detected"; MariaDB: "Deadlock found when trying to get lock"
    assert any("deadlock" in r.getMessage().lower() and "running it again" in r.getMessage() for r in caplog.records)
    first.close()
    second.close()


def test_a_slice_of_a_run_whose_lock_was_taken_over_stops_and_writes_nothing(cluster, monkeypatch) -> None:
    """A slice task that arrives after another run took its run's lock over (its coordinator died)
    claims it, finds the fence gone at its first commit and stops: not a row written."""
    from runner.engine.context import RunOptions
    from runner.mapping.checks import load
    from runner.state.opening import Mode, open_store

    for name in ("PROVISION_STATE_URL", "PROVISION_DATA", "PROVISION_TARGET"):
        monkeypatch.setenv(name, cluster.env[name])
    store = open_store(load(cluster.manifest), Mode.WRITE)
    try:
        store.runs.acquire_lock("quickstart", "the-run-that-took-over")
        slices.ensure_table(store.engine)
        with store.engine.connect() as conn:
            conn.execute(slices.claims.insert().values(run_id="the-dead-run", slice_id="user/import/1", kind="import",
                                                       label="user: import", state="queued", attempts=0))
            conn.commit()
        spec = {"id": "user/import/1", "kind": "import", "type": "user", "partition": None, "label": "user: import"}
        outcome = slices.perform(str(cluster.manifest), RunOptions(), "the-dead-run", spec, {}, "w1", False)
        assert outcome["state"] == "stopped" and "took the lock over" in outcome["error"]
        with store.engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM source_objects")).scalar() == 0
            assert conn.execute(sa.select(slices.claims.c.state)).scalar() == "stopped"
    finally:
        store.close()


HOLDER = """
import sys, time
import sqlalchemy as sa
from runner.distributed import slices
engine = sa.create_engine(sys.argv[1])
with slices.slices_of(engine, "quickstart"), slices.slices_of(engine, "quickstart"):
    print("running", flush=True)  # two slices of the pipeline at once: the lock is shared
    time.sleep(600)
"""


@pytest.mark.parametrize("server", ["postgresql", "mariadb"])
def test_a_coordinator_taking_over_waits_for_a_running_slice_until_its_process_dies(databases, server: str,
                                                                                     caplog) -> None:
    """A coordinator that took a dead run's lock over waits for that run's slices still running
    (a shared lock on the pipeline's row each), through the server's lock wait timeouts (1 s
    here), and goes on as soon as the last one's process is killed (its connection, and so its
    lock, dropped by the server)."""
    url = databases(server)
    short = {"postgresql": {"options": "-c lock_timeout=1000"},
             "mariadb": {"init_command": "SET innodb_lock_wait_timeout = 1"}}[server]
    engine = sa.create_engine(url, connect_args=short)
    slices.ensure_table(engine)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, url], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "running"
        waited: list[float] = []
        started = time.monotonic()
        waiter = threading.Thread(target=lambda: (slices.wait_for_dead_slices(engine, "quickstart"),
                                                  waited.append(time.monotonic() - started)))
        with caplog.at_level(logging.WARNING, logger="provision"):
            waiter.start()
            time.sleep(3)
            assert waiter.is_alive()  # still waiting, past three lock wait timeouts
            holder.kill()
            waiter.join(30)
        assert not waiter.is_alive() and 3 <= waited[0] < 20, waited
        assert any("still waiting for the slices of a dead run" in r.getMessage() for r in caplog.records)
    finally:
        holder.kill()
        holder.wait()
        engine.dispose()
