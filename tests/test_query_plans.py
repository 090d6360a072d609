"""The state store's hot queries keep plans that scale to a million objects.

SQLite hides a bad plan until the data is large; PostgreSQL and MariaDB show it in EXPLAIN at
a size a test can afford. A store of 20,000 objects (links, target values, pending exports,
references) is built once per server; each hot query is captured as the store really sends
it, then explained: no subquery run per row without an index, no sort of a whole table to page
it, paging on an index range. At a million objects these are the difference between seconds
and hours (``../shared/PERF.md``, docs/performance.md).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from runner.state import tables as t
from runner.state.records import Change, Confirmations, Deleted, PendingExport
from runner.state.store import StateStore

N = 20_000
PAGE = 50  # small next to what is left, as the engine's pages (500) are next to a million rows
# the machine's servers, or the throwaway ones scripts/servers.sh started (it exports these)
SERVERS = {"postgresql": os.environ.get("PROVISION_TEST_POSTGRESQL_URL", "postgresql+psycopg://postgres@127.0.0.1:5432"),
           "mariadb": os.environ.get("PROVISION_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306")}
ACTIONS = ("add", "update", "disable", "delete")
FORWARD = ("add", "replace", "update", "rename", "disable", "set_password")


@pytest.fixture(scope="module", params=["postgresql", "mariadb"])
def store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StateStore]:
    """A state store of N objects in a fresh database of the server, dropped afterwards."""
    name = f"prov_plans_{secrets.token_hex(4)}"
    server = SERVERS[request.param]
    admin = sa.create_engine(f"{server}/{'postgres' if request.param == 'postgresql' else ''}",
                             isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    try:
        with populated(f"{server}/{name}", tmp_path_factory.mktemp("plans")) as opened:
            yield opened
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE {name}" + (" WITH (FORCE)" if request.param == "postgresql" else ""))
        admin.dispose()


@contextlib.contextmanager
def populated(url: str, folder: Path) -> Iterator[StateStore]:
    """A store at ``url`` holding :func:`populate`'s objects, closed (uncommitted work dropped) after."""
    opened = StateStore(url, folder)
    try:
        populate(opened)
        yield opened
    finally:
        opened.rollback()
        opened.close()


def populate(store: StateStore) -> None:
    """Objects as a big pipeline has them: a tenth dirty, every one linked (2% tombstones), one
    indexed value each, half with a pending export at three name depths, each referencing its
    manager; then the server's statistics, as a long-lived store has them."""
    tid = store.type_id("plans", "user")
    anchors = [f"E{i:06d}" for i in range(N)]
    store.bulk_insert(t.source_objects, ("type_id", "anchor", "data", "hash", "deleted", "dirty", "exists_after",
                                         "in_scope", "seen"),
                      [(tid, a, json.dumps({"n": a}), "h", False, i % 10 == 0, True, True, "before")
                       for i, a in enumerate(anchors)])
    store.bulk_insert(t.links, ("type_id", "source_anchor", "target_anchor", "live", "target_name", "name_key"),
                      [(tid, a, f"T{a}", i % 50 != 0, f"uid={a},ou=people", f"uid={a.lower()},ou=people")
                       for i, a in enumerate(anchors)])
    store.bulk_insert(t.target_objects, ("type_id", "target_anchor", "data", "disabled"),
                      [(tid, f"T{a}", "{}", False) for a in anchors])
    store.bulk_insert(t.target_index, ("type_id", "attribute", "value", "target_anchor"),
                      [(tid, "email", f"{a.lower()}@example.org", f"T{a}") for a in anchors])
    store.bulk_insert(t.pending, ("type_id", "source_anchor", "action", "target_anchor", "name", "depth", "payload",
                                  "attempts", "revision"),
                      [(tid, a, ACTIONS[i // 2 % 4], f"T{a}", f"uid={a}", i % 3, "{}", 0, "r")
                       for i, a in enumerate(anchors) if i % 2 == 0])
    store.bulk_insert(t.refs, ("type_id", "anchor", "ref_type_id", "ref_anchor", "dropped"),
                      [(tid, a, tid, anchors[i // 10], i % 7 == 0) for i, a in enumerate(anchors)])
    store.commit()
    if store.conn.dialect.name == "sqlite":
        return  # a store the engine fills in one run has no statistics on SQLite
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for table in ("source_objects", "links", "target_objects", "target_index", "pending_exports", "refs"):
            conn.exec_driver_sql(f"ANALYZE {table}" if conn.dialect.name == "postgresql" else f"ANALYZE TABLE {table}")


@contextlib.contextmanager
def sent(store: StateStore) -> Iterator[list[tuple[str, Any]]]:
    """Every statement the store sends meanwhile, with its parameters."""
    statements: list[tuple[str, Any]] = []

    def hook(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, many: bool) -> None:
        statements.append((statement, parameters[0] if many else parameters))

    event.listen(store.engine, "before_cursor_execute", hook)
    try:
        yield statements
    finally:
        event.remove(store.engine, "before_cursor_execute", hook)


def plans(store: StateStore, statements: list[tuple[str, Any]]) -> list[Any]:
    """The server's plan of each statement (not executed again): PostgreSQL's JSON plan tree,
    MariaDB's EXPLAIN rows."""
    found = []
    for statement, parameters in statements:
        if store.conn.dialect.name == "postgresql":
            found.append(store.conn.exec_driver_sql("EXPLAIN (FORMAT JSON) " + statement, parameters).scalar()[0]["Plan"])
        else:
            found.append([dict(r._mapping) for r in store.conn.exec_driver_sql("EXPLAIN " + statement, parameters)])
    return found


def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


def problems(store: StateStore, statements: list[tuple[str, Any]], paging: bool,
             ranged: tuple[str, str] | None = None) -> list[str]:
    """What is wrong with the plans, statement by statement. Always: a subquery run per row (on
    PostgreSQL any SubPlan; on MariaDB a dependent subquery that scans instead of looking up by
    index). ``paging``: also any sort or scan of a whole table (the page must come from an index
    in index order; a sort of the few rows a union of such ranges returns is fine). ``ranged``
    (table, keyset column): every read of that table starts at the keyset (an index range), so a
    page never walks past the rows of the pages before it."""
    found: list[str] = []
    assert statements, "the store sent nothing"
    for (statement, _), plan in zip(statements, plans(store, statements), strict=True):
        where = " ".join(statement.split())[:160]
        if store.conn.dialect.name == "postgresql":
            for node in nodes(plan):
                kind = node["Node Type"]
                if str(node.get("Subplan Name", "")).startswith("SubPlan"):
                    found.append(f"per-row subplan in {where}: {kind}")
                if paging and kind == "Seq Scan":
                    found.append(f"full scan of {node['Relation Name']} in {where}")
                if paging and kind in ("Sort", "Incremental Sort") and not _over_union(node):
                    found.append(f"sort ({node.get('Sort Key')}) in {where}")
                if ranged and node.get("Relation Name") == ranged[0] and ranged[1] not in node.get("Index Cond", ""):
                    found.append(f"{ranged[0]} read without the keyset as an index range ({kind}) in {where}")
        else:
            for row in plan:
                derived = str(row["table"] or "").startswith(("<derived", "<union"))
                if row["select_type"] == "DEPENDENT SUBQUERY" and row["type"] in ("ALL", "index"):
                    found.append(f"per-row scan of {row['table']} in {where}")
                if paging and not derived and row["type"] in ("ALL", "index"):
                    found.append(f"full scan of {row['table']} ({row['type']}) in {where}")
                if paging and not derived and "filesort" in str(row["Extra"]):
                    found.append(f"sort of {row['table']} in {where}")
                if ranged and row["table"] == ranged[0] and row["type"] != "range":
                    found.append(f"{ranged[0]} read as {row['type']}, not a range from the keyset, in {where}")
    return found


def _over_union(node: dict[str, Any]) -> bool:
    """A sort merging the short, already ordered pages of a union (one range per action)."""
    children = node.get("Plans", [])
    return any(c["Node Type"] in ("Append", "Subquery Scan") or _over_union(c) for c in children
               if c["Node Type"] not in ("Seq Scan", "Index Scan", "Index Only Scan", "Bitmap Heap Scan"))


def explained(store: StateStore, call: Any, paging: bool, ranged: tuple[str, str] | None = None) -> list[str]:
    with sent(store) as statements:
        call()
    try:
        return problems(store, statements, paging, ranged)
    finally:
        store.rollback()


SO, PE = ("source_objects", "anchor"), ("pending_exports", "source_anchor")


def test_paging_queries_walk_an_index_range_without_sorting(store: StateStore):
    tid = store.type_id("plans", "user")
    pages = {  # name: (call, the keyset the page starts at)
        "dirty objects (compute)": (lambda: store.compute.dirty_rows(tid, "E010000", PAGE), SO),
        "adds, parents first": (lambda: store.exports.pending_page(tid, "run", ["add"], (1, "E010000"), PAGE, due="9"), PE),
        "the forward phase": (lambda: store.exports.pending_page(tid, "run", FORWARD, (1, "E010000"), PAGE, due="9"), PE),
        "deletes, children first": (lambda: store.exports.pending_page(tid, "run", ["delete"], (-1, "E010000"), PAGE, True,
                                                                       due="9"), PE),
        "the first page of deletes": (lambda: store.exports.pending_page(tid, "run", ["delete"], None, PAGE, True), None),
        "every pending export (plan)": (lambda: store.exports.all_pending(tid, "E010000", PAGE), PE),
    }
    found = {name: explained(store, call, True, ranged) for name, (call, ranged) in pages.items()}
    assert not {name: f for name, f in found.items() if f}


def test_lookups_and_anti_joins_use_indexes(store: StateStore):
    tid = store.type_id("plans", "user")
    some = [f"E{i:06d}" for i in range(5000, 5500)]

    def full_import() -> None:
        store.imports.begin_full_import(tid)
        store.imports.import_page(tid, [(a, {"n": a}) for a in some], full=True)
        store.imports.finish_full_import(tid)

    calls = {
        "match candidates": lambda: store.imports.match_candidates(tid, "email", "e005000@example.org"),
        "a full import's page and its end": full_import,
        "referrers of changed objects": lambda: store.compute.mark_referrers_dirty(tid, some),
        "referrers of added objects": lambda: store.compute.mark_referrers_dirty(tid, some, only_dropped=True),
        "tombstones": lambda: store.exports.prune_tombstones(tid),
        "recording deletes": lambda: store.exports.record(tid, "run", Confirmations(
            deletes=[Deleted(a, f"T{a}", True) for a in some[:100]])),
        "name collisions": lambda: store.exports.name_collisions(tid),
        # the few operations a killed run left in flight: the database may sort those few
        "in doubt (recovery)": lambda: store.exports.in_doubt(tid, "run", "E010000", 500),
        "unique values": lambda: store.imports.reserve_if_free(tid, "email", "new@example.org", "E000001"),
        "replacing pending exports": lambda: store.compute.set_pending(
            tid, [PendingExport(a, "update", f"T{a}", Change(set={"n": 1})) for a in some], []),
    }
    found = {name: explained(store, call, paging=False) for name, call in calls.items()}
    assert not {name: f for name, f in found.items() if f}


def test_the_checks_catch_the_plans_they_guard_against(store: StateStore):
    """The checks fail on the shapes PERF.md measured as the problem: an anti-join run per row (a
    NOT IN on PostgreSQL, a correlated NOT EXISTS without an index on MariaDB), paging in an
    order no index has, and the keyset form the other server needs (PostgreSQL cannot range an
    OR, MariaDB cannot range a row-value comparison)."""
    postgresql = store.conn.dialect.name == "postgresql"
    per_row = ("SELECT anchor FROM source_objects WHERE type_id = 1 AND anchor NOT IN "
               "(SELECT source_anchor FROM links WHERE type_id = 1 AND live = true)" if postgresql else
               "SELECT anchor FROM source_objects WHERE type_id = 1 AND NOT EXISTS (SELECT 1 FROM links "
               "WHERE links.target_name = source_objects.data)")
    unsorted = "SELECT anchor FROM source_objects WHERE type_id = 1 ORDER BY lower(anchor) LIMIT 500"
    other_keyset = ("SELECT source_anchor FROM pending_exports WHERE type_id = 1 AND action = 'add' AND "
                    + ("(depth > 1 OR (depth = 1 AND source_anchor > 'E010000'))" if postgresql else
                       "(depth, source_anchor) > (1, 'E010000')") + " ORDER BY depth, source_anchor LIMIT 500")
    for sql, paging, ranged, says in ((per_row, False, None, "per-row"), (unsorted, True, None, "sort"),
                                      (other_keyset, True, PE, "range")):
        shapes = problems(store, [(sql, ())], paging, ranged)  # explained only: some would take minutes
        store.rollback()
        assert any(says in p for p in shapes), (sql, shapes)


def test_a_version_2_store_moves_its_reservations(tmp_path: Path):
    """Schema 3 keeps reserved unique values in their own table: an upgraded store still knows
    what it reserved, and a second taker of a reserved value is refused."""
    url = f"sqlite:///{tmp_path / 'state.db'}"
    StateStore(url, tmp_path).close()
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # back to version 2, holding a reservation the old way
        conn.exec_driver_sql("DROP TABLE reservations")
        conn.exec_driver_sql("DROP INDEX pending_action")
        conn.exec_driver_sql("DROP INDEX links_live_anchor")
        conn.exec_driver_sql("DROP INDEX target_index_anchor")
        conn.exec_driver_sql("ALTER TABLE source_objects DROP COLUMN seen")
        conn.exec_driver_sql("CREATE TABLE import_seen (type_id INTEGER, anchor VARCHAR(255), "
                             "PRIMARY KEY (type_id, anchor))")
        conn.exec_driver_sql("CREATE INDEX pending_order ON pending_exports (type_id, depth, source_anchor)")
        conn.exec_driver_sql("INSERT INTO target_index VALUES (1, 'user_name', 'ada.l', '~E1')")
        conn.exec_driver_sql("UPDATE provision_meta SET value = '2' WHERE key = 'schema_version'")
    engine.dispose()
    store = StateStore(url, tmp_path)
    try:
        assert store.imports.reserved(1, "user_name", "E1") == "ada.l"
        assert store.imports.match_candidates(1, "user_name", "ada.l") == []  # a reservation is not a target object
        assert not store.imports.reserve_if_free(1, "user_name", "ada.l", "E2")
        assert store.imports.reserve_if_free(1, "user_name", "ada.l", "E1")  # its own reservation
    finally:
        store.close()


def test_a_version_3_store_gets_the_anchor_in_its_tombstone_index(tmp_path: Path):
    """Schema 4 replaces version 3's links index (type_id, live), which made SQLite walk every
    live link to look a page of them up, by (type_id, live, source_anchor)."""
    url = f"sqlite:///{tmp_path / 'state.db'}"
    StateStore(url, tmp_path).close()
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # back to version 3
        conn.exec_driver_sql("DROP INDEX links_live_anchor")
        conn.exec_driver_sql("CREATE INDEX links_live ON links (type_id, live)")
        conn.exec_driver_sql("UPDATE provision_meta SET value = '3' WHERE key = 'schema_version'")
    engine.dispose()
    StateStore(url, tmp_path).close()
    indexes = {i["name"] for i in sa.inspect(sa.create_engine(url)).get_indexes("links")}
    assert "links_live_anchor" in indexes and "links_live" not in indexes, indexes


def test_two_workers_never_reserve_the_same_value(server_database: str, tmp_path: Path):
    """A unique value and an object type's number are taken by one insert on a unique key: a
    second worker reserving the same value while the first has not committed waits for it and
    is refused; one creating the same object type gets the first one's number."""
    import threading

    first, second = StateStore(server_database, tmp_path), StateStore(server_database, tmp_path)
    try:
        assert first.insert_new(t.object_types, dict(pipeline="p", name="user"))  # not committed yet
        assert first.imports.reserve_if_free(1, "user_name", "ada.l", "E1")
        answers: dict[str, Any] = {}

        def other() -> None:
            answers["type_id"] = second.type_id("p", "user")
            answers["reserved"] = second.imports.reserve_if_free(1, "user_name", "ada.l", "E2")
            second.commit()

        worker = threading.Thread(target=other)
        worker.start()
        worker.join(1.0)
        assert worker.is_alive(), "the second worker must wait for the first one's insert"
        first.commit()
        worker.join(30)
        assert answers == {"type_id": first.type_id("p", "user"), "reserved": False}
        assert second.imports.reserve_if_free(1, "user_name", "ada.l2", "E2")
    finally:
        first.close()
        second.close()


# ---- SQLite: no statistics, so an index on a column of two values can win over the key ------

@pytest.fixture(scope="module")
def sqlite_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StateStore]:
    """The same store on SQLite, never analyzed: SQLite then plans by heuristics alone, as a
    store the engine fills in one run is planned."""
    folder = tmp_path_factory.mktemp("plans-sqlite")
    with populated(f"sqlite:///{folder / 'state.db'}", folder) as opened:
        yield opened


def sqlite_lookups_by_key(store: StateStore, call: Any, column: str) -> list[str]:
    """What is wrong with the plans of the statements ``call`` sends that look rows up by a list
    of ``column`` values: each must search by that column, not walk a prefix of another index."""
    with sent(store) as statements:
        call()
    looked_up = [(sql, p) for sql, p in statements if f".{column} IN (" in sql]
    assert looked_up, "the call sent no lookup by that column"
    wrong = []
    for sql, parameters in looked_up:
        for row in store.conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, parameters):
            detail = row[-1]
            if detail.startswith(("SEARCH", "SCAN")) and f"{column}=?" not in detail:
                wrong.append(f"{detail}  <-  {sql[:120]}")
    return wrong


def test_sqlite_looks_objects_up_by_their_anchor(sqlite_store: StateStore):
    """The export resolves every reference of a page (500 anchors) and asks which referenced adds
    are still waiting, once per page. With an index on (type_id, live) SQLite answered the first
    by walking every live link of the type, and with pending_action it answered the second by
    walking every pending add: each page cost time in proportion to the store, so an initial
    export of 300k objects spent a third of its time there."""
    store = sqlite_store
    tid = store.type_id("plans", "user")
    some = [f"E{i:06d}" for i in range(5000, 5500)]
    calls = {
        "target anchors of references": (lambda: store.exports.target_anchors(tid, some), "source_anchor"),
        "target names of references": (lambda: store.exports.target_names(tid, some), "source_anchor"),
        "anchors of deleted objects too": (lambda: store.exports.target_anchors(tid, some, live_only=False), "source_anchor"),
        "adds still waiting": (lambda: store.exports.pending_actions(tid, some, "run", due="9"), "source_anchor"),
        "objects that will exist": (lambda: store.compute.exists_after(tid, some), "anchor"),
        "what the target holds": (lambda: store.exports.targets_data(tid, [f"T{a}" for a in some]), "target_anchor"),
    }
    found = {name: sqlite_lookups_by_key(store, call, column) for name, (call, column) in calls.items()}
    assert not {name: f for name, f in found.items() if f}


def test_the_sqlite_check_catches_the_old_index(sqlite_store: StateStore):
    """Version 3's links index (type_id, live), put back for a moment in place of version 4's, is
    what the check finds."""
    store = sqlite_store
    tid = store.type_id("plans", "user")
    store.conn.exec_driver_sql("DROP INDEX links_live_anchor")  # rolled back below, as the new index is
    store.conn.exec_driver_sql("CREATE INDEX links_live_v3 ON links (type_id, live)")
    try:
        wrong = sqlite_lookups_by_key(store, lambda: store.exports.target_anchors(tid, [f"E{i:06d}" for i in range(500)]),
                                      "source_anchor")
    finally:
        store.rollback()
    assert wrong and "links_live_v3" in wrong[0], wrong


def sqlite_count_plans(store: StateStore, tid: int) -> list[str]:
    """SQLite's plan of each count a run ends with (objects present, out of scope)."""
    with sent(store) as statements:
        store.runs.count_present(tid)
        store.runs.count_out_of_scope(tid)
    counts = [(sql, p) for sql, p in statements if "count(" in sql.lower()]
    assert len(counts) == 2, counts
    # a new text each time: the driver keeps prepared statements, and one prepared against the
    # schema before a change in the same transaction can answer with its old plan
    nonce = f" -- {time.monotonic_ns()}"
    return [row[-1] for sql, p in counts for row in store.conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql + nonce, p)
            if row[-1].startswith(("SEARCH source_objects", "SCAN source_objects"))]


def test_sqlite_counts_present_objects_from_an_index(sqlite_store: StateStore):
    """Every run ends by counting the objects present and out of scope. Filtered on deleted and
    in_scope with no index holding them, each count read the whole table, records and all: a
    delta cycle of 1% of 100,000 people read its 210 MB store twice for two numbers."""
    plans = sqlite_count_plans(sqlite_store, sqlite_store.type_id("plans", "user"))
    assert plans and all("INDEX source_objects_present" in p for p in plans), plans
    assert "COVERING" in plans[0], plans  # the objects present: from the index alone


def test_the_sqlite_count_check_catches_a_table_scan(sqlite_store: StateStore):
    store = sqlite_store
    store.conn.exec_driver_sql("DROP INDEX source_objects_present")
    try:
        plans = sqlite_count_plans(store, store.type_id("plans", "user"))
    finally:
        store.rollback()
    assert not any("source_objects_present" in p for p in plans), plans
