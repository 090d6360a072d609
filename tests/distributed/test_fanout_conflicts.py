"""Slices of one sweep write each other's rows (a scope sweep marks referrers dirty wherever they
are), so two of them can deadlock in PostgreSQL. The one PostgreSQL picks as the victim is rolled
back and run again (slices.with_retries), carrying on from what it committed: each slice's writes
land exactly once, none is lost to the conflict, and none is hidden (the log says so). And a slice
of a run whose lock another run took over writes nothing (its commits are fenced)."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from runner.distributed.slices import with_retries
from runner.state.store import StateStore


def test_two_slices_that_deadlock_both_finish_with_each_write_once(databases, tmp_path: Path, caplog) -> None:
    url = databases()
    first, second = StateStore(url, tmp_path), StateStore(url, tmp_path)
    first.conn.exec_driver_sql("CREATE TABLE rows_ (k int PRIMARY KEY, v int NOT NULL)")
    first.conn.exec_driver_sql("INSERT INTO rows_ VALUES (1, 0), (2, 0)")
    first.commit()
    both_hold_one = threading.Barrier(2, timeout=30)
    attempts = {"first": 0, "second": 0}

    def slice_(store: StateStore, name: str, mine: int, theirs: int, step: int) -> dict:
        attempts[name] += 1
        store.conn.exec_driver_sql(f"UPDATE rows_ SET v = v + {step} WHERE k = {mine}")
        if attempts[name] == 1:
            both_hold_one.wait()  # each holds its own row and now wants the other's: a deadlock
        store.conn.exec_driver_sql(f"UPDATE rows_ SET v = v + {step} WHERE k = {theirs}")
        store.commit()
        return {}

    failures: list[BaseException] = []

    def run(store: StateStore, name: str, mine: int, theirs: int, step: int) -> None:
        try:
            with_retries(store, lambda: slice_(store, name, mine, theirs, step), name)
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
    assert any("deadlock detected" in r.getMessage() and "running it again" in r.getMessage() for r in caplog.records)
    first.close()
    second.close()


def test_a_slice_of_a_run_whose_lock_was_taken_over_stops_and_writes_nothing(cluster, monkeypatch) -> None:
    """A slice task that arrives after another run took its run's lock over (its coordinator died)
    claims it, finds the fence gone at its first commit and stops: not a row written."""
    import sqlalchemy as sa

    from runner.distributed import slices
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
