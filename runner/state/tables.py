"""The connector space's tables and their versioned migrations.

Every row belongs to one object type of one pipeline, named by a small integer (``type_id``) so
several pipelines can share one PostgreSQL store and rows stay narrow. JSON is stored as text:
portable across SQLite, PostgreSQL and MariaDB, and cheap to hash.

Schema version lives in ``provision_meta``; :func:`migrate` brings an older store up to date when
it is opened and refuses one written by a newer provision.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

SCHEMA_VERSION = 10

metadata = sa.MetaData()
S = sa.String(255)
# JSON documents: TEXT, but LONGTEXT on MySQL/MariaDB, whose TEXT stops at 64 KB (a big group)
Doc = sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")

meta = sa.Table(
    "provision_meta", metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

object_types = sa.Table(
    "object_types", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("pipeline", S, nullable=False),
    sa.Column("name", S, nullable=False),
    sa.Column("config_hash", sa.String(64)),
    sa.UniqueConstraint("pipeline", "name", name="object_types_name"),
)

locks = sa.Table(
    "locks", metadata,
    sa.Column("pipeline", S, primary_key=True),
    sa.Column("run_id", sa.String(40), nullable=False),
    sa.Column("host", S, nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("user", S, nullable=False),
    sa.Column("acquired", sa.String(40), nullable=False),
    sa.Column("heartbeat", sa.Float, nullable=False),
)

runs = sa.Table(
    "runs", metadata,
    sa.Column("run_id", sa.String(40), primary_key=True),
    sa.Column("pipeline", S, nullable=False, index=True),
    sa.Column("kind", sa.String(16), nullable=False),  # run | plan
    # running | ok | partial | failed | stopped | interrupted | abandoned (killed; its lock was taken over)
    sa.Column("started", sa.String(40), nullable=False),
    sa.Column("finished", sa.String(40)),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("summary", Doc),
    sa.Column("manifest_hash", sa.String(64)),  # runner/manifest/provenance.py
    sa.Column("manifest_commit", sa.String(64)),  # HEAD of the manifest's git repository, "+" when modified
)

# What the source held when last read. dirty: changed since last computed. exists_after: will the
# object exist in the target once this run's exports land (drives references to it).
source_objects = sa.Table(
    "source_objects", metadata,
    sa.Column("type_id", sa.Integer, primary_key=True),
    sa.Column("anchor", S, primary_key=True),
    sa.Column("native_anchor", S),  # the connector's own key, when it has one (deletions may carry only it)
    sa.Column("partition", S),
    sa.Column("data", Doc, nullable=False),
    sa.Column("hash", sa.String(40), nullable=False),
    sa.Column("deleted", sa.Boolean, nullable=False, default=False),
    sa.Column("dirty", sa.Boolean, nullable=False, default=True),
    sa.Column("in_scope", sa.Boolean),
    sa.Column("exists_after", sa.Boolean, nullable=False, default=False),
    sa.Column("error", Doc),
    # the mark of the last full import that saw the object: the objects of a partition that the
    # import just finished did not stamp with its mark are gone (one scan, no table of seen anchors)
    sa.Column("seen", sa.String(16)),
    # when the source stopped holding it (deleted set): disable_then_delete_after counts from here
    sa.Column("gone_at", sa.String(40)),
    sa.Index("source_objects_dirty", "type_id", "dirty", "anchor"),  # keyset pages over dirty objects
    sa.Index("source_objects_native", "type_id", "native_anchor"),
    # the counts every run ends with (present, out of scope) from the index alone: without it each
    # scanned the whole table, records and all (45,000 page reads at 100k objects, every run)
    sa.Index("source_objects_present", "type_id", "deleted", "in_scope"),
)

# The join between a source object and its target object. live=False keeps the target anchor of
# a deleted object for as long as others still need it to remove references to it.
links = sa.Table(
    "links", metadata,
    sa.Column("type_id", sa.Integer, primary_key=True),
    sa.Column("source_anchor", S, primary_key=True),
    sa.Column("target_anchor", S, nullable=False),
    sa.Column("live", sa.Boolean, nullable=False, default=True),
    # the object's name in the target (an LDAP DN), kept after a delete for removing references by
    # name; name_key is its comparable form (runner.names.normalize_dn), cut to 255
    sa.Column("target_name", sa.Text),
    sa.Column("name_key", S),
    sa.Index("links_target", "type_id", "target_anchor"),
    sa.Index("links_name", "type_id", "name_key"),
    # the few tombstones (live=False) without a scan; the anchor last, so that SQLite (which plans
    # without statistics) looking links up by anchor "AND live" uses all three columns instead of
    # walking every live link of the type, as it did with (type_id, live): quadratic at 100k+
    sa.Index("links_live_anchor", "type_id", "live", "source_anchor"),
)

# What the target is known to hold, in mapped form (references as source anchors).
target_objects = sa.Table(
    "target_objects", metadata,
    sa.Column("type_id", sa.Integer, primary_key=True),
    sa.Column("target_anchor", S, primary_key=True),
    sa.Column("name", sa.Text),
    sa.Column("data", Doc, nullable=False),
    sa.Column("disabled", sa.Boolean, nullable=False, default=False),
    sa.Column("partition", S),
    sa.Column("version", S),  # the target's version of the object (ETag, entryCSN) when it has one
    # the mark of the last reconciliation that read it (the linked objects it did not stamp are
    # missing), and whether that read found it inside target.boundary with no link claiming it
    # (an orphan, unless compute links it)
    sa.Column("seen", sa.String(16)),
    sa.Column("unclaimed", sa.Boolean),
    # the fingerprint of the object as a reconciliation last read it and found it as the state
    # says; cleared by every write of the row (an export, a read that differed): while the target
    # returns the same record, it is linked without being compared again
    sa.Column("checked", sa.String(16)),
    # the attributes the last export wrote (JSON list), until a reconciliation reads the object:
    # what differs among them then was accepted and not kept (a read-only or dropped attribute)
    sa.Column("sent", sa.Text),
    # a reconciliation's orphan candidates in anchor order, without walking every object it read
    sa.Index("target_objects_unclaimed", "type_id", "unclaimed", "target_anchor"),
)

# Multi-valued attributes of target objects, a row per value (mapped form: references as source
# anchors; value as JSON text), so a big group changes by difference (runner/state/values.py).
target_values = sa.Table(
    "target_values", metadata,
    sa.Column("type_id", sa.Integer, primary_key=True),
    sa.Column("target_anchor", S, primary_key=True),
    sa.Column("attribute", S, primary_key=True),
    sa.Column("value", S, primary_key=True),
)

# Values of target objects read from the target, for the match rules (first contact only).
target_index = sa.Table(
    "target_index", metadata,
    sa.Column("type_id", sa.Integer, primary_key=True),
    sa.Column("attribute", S, primary_key=True),
    sa.Column("value", S, primary_key=True),
    sa.Column("target_anchor", S, primary_key=True),
    sa.Index("target_index_anchor", "type_id", "target_anchor"),  # re-indexing or deleting one object
)

# Values select_unique_value reserved for new objects (values as the caller folds them). The
# primary key makes a reservation one insert that either wins or finds the value taken, so two
# workers can never reserve the same value.
reservations = sa.Table(
    "reservations", metadata,
    sa.Column("type_id", sa.Integer, primary_key=True),
    sa.Column("attribute", S, primary_key=True),
    sa.Column("value", S, primary_key=True),
    sa.Column("anchor", S, nullable=False),  # the source anchor it is reserved for
    sa.Index("reservations_anchor", "type_id", "anchor"),  # freed when the object is deleted
)

# One pending export per object, kept until the target confirms it. sent_run is set (and committed)
# before the operation goes to the target and cleared with its result: a row that still has it
# after its run ended is in doubt, and the next run resolves it first (runner/engine/recovery.py).
pending = sa.Table(
    "pending_exports", metadata,
    sa.Column("type_id", sa.Integer, primary_key=True),
    sa.Column("source_anchor", S, primary_key=True),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("target_anchor", S),
    sa.Column("name", sa.Text),  # the object's target name (hierarchical connectors)
    sa.Column("depth", sa.Integer, nullable=False, default=0),  # parents first on add, children first on delete
    sa.Column("payload", Doc, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("last_error", Doc),
    sa.Column("attempted_run", sa.String(40)),
    sa.Column("revision", sa.String(16), nullable=False, default=""),  # new each time compute rewrites it
    sa.Column("sent_run", sa.String(40)),  # in flight: sent by this run, result not yet recorded
    sa.Column("partition", S),  # where the object lives now
    # retries across runs (runner/retries.py): not sent before next_attempt ('' : due now);
    # held: failed with a permanent error, not sent until compute rewrites it (the source changed);
    # failed_runs: runs in a row in which it failed (the back-off step). A rewrite resets all three.
    # No index of their own: pages keep walking pending_action, and these are plain comparisons on
    # the row (an index led by them would make the database sort every first page).
    sa.Column("next_attempt", sa.String(40), nullable=False, server_default=""),
    sa.Column("held", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("failed_runs", sa.Integer, nullable=False, server_default="0"),
    sa.Column("since", sa.String(40)),  # when the object first had an export pending (kept across rewrites)
    # keyset pages in export order, one action at a time: parents first walks it forward, children
    # first (deletes) backward, so no order the export uses needs a sort
    sa.Index("pending_action", "type_id", "action", "depth", "source_anchor"),
)

# Who references whom (desired values), so a change in one object re-evaluates those pointing at
# it. dropped: the reference was left out at export because its object did not exist yet.
refs = sa.Table(
    "refs", metadata,
    sa.Column("type_id", sa.Integer, primary_key=True),
    sa.Column("anchor", S, primary_key=True),
    sa.Column("ref_type_id", sa.Integer, primary_key=True),
    sa.Column("ref_anchor", S, primary_key=True),
    sa.Column("dropped", sa.Boolean, nullable=False, default=False),
    sa.Index("refs_target", "ref_type_id", "ref_anchor"),
)

# What the last reconciliation of each object type found, other than linked objects: one row per
# object and situation (drifted, missing, unlinked, ambiguous, orphan, collision), replaced by
# the next reconciliation. key: the source anchor, or the target anchor for an orphan.
findings = sa.Table(
    "reconcile_findings", metadata,
    sa.Column("type_id", sa.Integer, primary_key=True),
    sa.Column("situation", sa.String(16), primary_key=True),
    sa.Column("key", S, primary_key=True),
    sa.Column("run_id", sa.String(40), nullable=False),
    sa.Column("detail", Doc, nullable=False),  # JSON: target anchor and name, attributes, candidates
)

# Which system each connector of a pipeline wrote to (Connector.identity): a run that finds
# another one behind the same manifest stops, instead of taking it for the one it knows.
bindings = sa.Table(
    "bindings", metadata,
    sa.Column("pipeline", S, primary_key=True),
    sa.Column("connector", S, primary_key=True),
    sa.Column("identity", Doc, nullable=False),
    sa.Column("bound", sa.String(40), nullable=False),
)

watermarks = sa.Table(
    "watermarks", metadata,
    sa.Column("type_id", sa.Integer, primary_key=True),
    sa.Column("side", sa.String(8), primary_key=True),
    sa.Column("partition", S, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

log = sa.Table(
    "provisioning_log", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(40), nullable=False, index=True),
    sa.Column("time", sa.String(40), nullable=False),
    sa.Column("pipeline", S, nullable=False),
    sa.Column("object_type", S, nullable=False),
    sa.Column("anchor", S, nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("result", sa.String(16), nullable=False),
    sa.Column("entry", Doc, nullable=False),
    sa.Index("provisioning_log_time", "pipeline", "time"),  # retention: prune what is older than N days
    sa.Index("provisioning_log_anchor", "pipeline", "anchor", "time"),  # provision logs --anchor: one object's story
)

# A pipeline whose runs fail wholesale (runner/engine/quarantine.py): failed_runs counts such runs
# in a row; since is set once it is quarantined (later runs probe the targets first).
quarantine = sa.Table(
    "quarantine", metadata,
    sa.Column("pipeline", S, primary_key=True),
    sa.Column("failed_runs", sa.Integer, nullable=False, default=0),
    sa.Column("reason", Doc, nullable=False),  # why the last of those runs failed
    sa.Column("since", sa.String(40)),  # quarantined since; None: counting, not quarantined
    sa.Column("run_id", sa.String(40)),  # the last run that failed wholesale
)

# Alert episodes (runner/engine/notify.py): one row per pipeline and kind while the condition lasts;
# delivered: the channels the alert reached, so it is announced once per episode on each.
alerts = sa.Table(
    "alerts", metadata,
    sa.Column("pipeline", S, primary_key=True),
    sa.Column("kind", sa.String(32), primary_key=True),
    sa.Column("since", sa.String(40), nullable=False),
    sa.Column("detail", Doc, nullable=False),
    sa.Column("delivered", sa.String(64), nullable=False, default=""),  # the channels it reached: webhook,email
)

# Objects a person released past the deletion guard (`provision approve`): each for the action
# pending when it was approved; a run sends it although the guard holds the rest, and the row goes
# once that action is no longer pending (sent, or the source changed its mind).
approvals = sa.Table(
    "approvals", metadata,
    sa.Column("type_id", sa.Integer, primary_key=True),
    sa.Column("source_anchor", S, primary_key=True),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("approved_at", sa.String(40), nullable=False),
    sa.Column("approved_by", S),  # the operating-system user who approved it
    sa.Column("released_from", sa.String(64)),  # the run or plan that held it
)


def _to_v2(conn: sa.Connection) -> None:
    """Spine v2: in-flight marks, revisions, recorded partitions and versions; retries across runs,
    quarantine and log retention."""
    q = conn.dialect.identifier_preparer.quote  # "partition" is a reserved word on MariaDB
    for table, column, kind in (("pending_exports", "revision", "VARCHAR(16) NOT NULL DEFAULT ''"),
                                ("pending_exports", "sent_run", "VARCHAR(40)"),
                                ("pending_exports", "partition", "VARCHAR(255)"),
                                ("pending_exports", "next_attempt", "VARCHAR(40) NOT NULL DEFAULT ''"),
                                ("pending_exports", "held", "BOOLEAN NOT NULL DEFAULT false"),
                                ("pending_exports", "failed_runs", "INTEGER NOT NULL DEFAULT 0"),
                                ("target_objects", "partition", "VARCHAR(255)"),
                                ("target_objects", "version", "VARCHAR(255)"),
                                ("links", "target_name", "TEXT"),
                                ("links", "name_key", "VARCHAR(255)")):
        conn.exec_driver_sql(f"ALTER TABLE {q(table)} ADD COLUMN {q(column)} {kind}")
    conn.exec_driver_sql("CREATE INDEX links_name ON links (type_id, name_key)")
    conn.exec_driver_sql(f"CREATE INDEX provisioning_log_time ON provisioning_log (pipeline, {q('time')})")
    target_values.create(conn)
    quarantine.create(conn)
    _lists_to_rows(conn)


def _lists_to_rows(conn: sa.Connection) -> None:
    """Version 1 kept multi-valued attributes as lists inside target_objects.data: move them to rows."""
    import json

    from runner.state.records import dumps

    to = target_objects.c
    for type_id, anchor, data in list(conn.execute(sa.select(to.type_id, to.target_anchor, to.data))):
        doc = json.loads(data)
        lists = {k: v for k, v in doc.items() if isinstance(v, list)}
        if not lists:
            continue
        rows = {(k, dumps(v)) for k, vs in lists.items() for v in vs}
        if rows:
            conn.execute(target_values.insert(), [dict(type_id=type_id, target_anchor=anchor, attribute=a, value=v)
                                                  for a, v in rows])
        singles = {k: v for k, v in doc.items() if not isinstance(v, list)}
        conn.execute(target_objects.update().where(to.type_id == type_id, to.target_anchor == anchor)
                     .values(data=dumps(singles)))


def _to_v3(conn: sa.Connection) -> None:
    """A million objects on PostgreSQL and MariaDB: a full import stamps what it sees on the
    source object (import_seen goes), reservations of unique values get a table whose key
    refuses a second taker, pending exports are paged one action at a time (tombstones get their
    index in version 4)."""
    q = conn.dialect.identifier_preparer.quote
    conn.exec_driver_sql(f"ALTER TABLE {q('source_objects')} ADD COLUMN {q('seen')} VARCHAR(16)")
    conn.exec_driver_sql(f"DROP TABLE {q('import_seen')}")
    on = f" ON {q('pending_exports')}" if conn.dialect.name in ("mysql", "mariadb") else ""
    conn.exec_driver_sql(f"DROP INDEX {q('pending_order')}{on}")
    for table, name in ((pending, "pending_action"), (target_index, "target_index_anchor")):
        next(i for i in table.indexes if i.name == name).create(conn)
    reservations.create(conn)
    ix = target_index.c
    held = ix.target_anchor.startswith("~")
    taken: dict[tuple[int, str, str], str] = {}
    for type_id, attribute, value, anchor in conn.execute(
            sa.select(ix.type_id, ix.attribute, ix.value, ix.target_anchor).where(held)
            .order_by(ix.type_id, ix.attribute, ix.value, ix.target_anchor)):
        taken.setdefault((type_id, attribute, value), anchor[1:])  # a value reserved twice: the first keeps it
    if taken:
        conn.execute(reservations.insert(), [dict(type_id=k[0], attribute=k[1], value=k[2], anchor=a)
                                             for k, a in taken.items()])
    conn.execute(target_index.delete().where(held))


def _to_v4(conn: sa.Connection) -> None:
    """SQLite at 100k objects and more: links looked up by anchor and liveness walked every live
    link through (type_id, live); the index gets the anchor as its last column."""
    q = conn.dialect.identifier_preparer.quote
    on = f" ON {q('links')}" if conn.dialect.name in ("mysql", "mariadb") else ""
    conn.exec_driver_sql(f"DROP INDEX IF EXISTS {q('links_live')}{on}")  # a store that went through v3
    next(i for i in links.indexes if i.name == "links_live_anchor").create(conn)


def _to_v5(conn: sa.Connection) -> None:
    """Reconciliation: target objects carry the mark of the read that saw them and whether it
    found them unclaimed inside the managed boundary; findings per situation; the identity of each target; when a
    source object went (deferred deletion)."""
    q = conn.dialect.identifier_preparer.quote
    inspector = sa.inspect(conn)
    for table, column, kind in (("target_objects", "seen", "VARCHAR(16)"), ("target_objects", "unclaimed", "BOOLEAN"),
                                ("target_objects", "checked", "VARCHAR(16)"), ("target_objects", "sent", "TEXT"),
                                ("source_objects", "gone_at", "VARCHAR(40)")):
        if column not in {c["name"] for c in inspector.get_columns(table)}:
            conn.exec_driver_sql(f"ALTER TABLE {q(table)} ADD COLUMN {q(column)} {kind}")
    if "target_objects_unclaimed" not in {i["name"] for i in inspector.get_indexes("target_objects")}:
        next(i for i in target_objects.indexes if i.name == "target_objects_unclaimed").create(conn)
    findings.create(conn, checkfirst=True)
    bindings.create(conn, checkfirst=True)
    so = source_objects.c  # objects already gone: their restore window starts now
    from runner.state.base import now_iso

    conn.execute(source_objects.update().where(so.deleted.is_(True)).values(gone_at=now_iso()))


def _to_v6(conn: sa.Connection) -> None:
    """Each run records where its manifest came from (a hash of its files, the git commit)."""
    q = conn.dialect.identifier_preparer.quote
    have = {c["name"] for c in sa.inspect(conn).get_columns("runs")}
    for column in ("manifest_hash", "manifest_commit"):
        if column not in have:
            conn.exec_driver_sql(f"ALTER TABLE {q('runs')} ADD COLUMN {q(column)} VARCHAR(64)")


def _to_v7(conn: sa.Connection) -> None:
    """Approvals by object past the deletion guard."""
    approvals.create(conn, checkfirst=True)


def _to_v8(conn: sa.Connection) -> None:
    """provision logs --anchor: one object's entries found by index, not by a scan of a year of logs;
    alert episodes (notify:)."""
    if "provisioning_log_anchor" not in {i["name"] for i in sa.inspect(conn).get_indexes("provisioning_log")}:
        next(i for i in log.indexes if i.name == "provisioning_log_anchor").create(conn)
    alerts.create(conn, checkfirst=True)


def _to_v9(conn: sa.Connection) -> None:
    """How long an export has been pending (the oldest-pending metric, provision pending)."""
    if "since" not in {c["name"] for c in sa.inspect(conn).get_columns("pending_exports")}:
        q = conn.dialect.identifier_preparer.quote
        conn.exec_driver_sql(f"ALTER TABLE {q('pending_exports')} ADD COLUMN {q('since')} VARCHAR(40)")


def _to_v10(conn: sa.Connection) -> None:
    """The end-of-run counts of present and out-of-scope objects by index, not by a table scan."""
    if "source_objects_present" not in {i["name"] for i in sa.inspect(conn).get_indexes("source_objects")}:
        next(i for i in source_objects.indexes if i.name == "source_objects_present").create(conn)


# version -> the step that brings version-1 to it. The newest version is created whole by create_all.
MIGRATIONS: dict[int, Callable[[sa.Connection], None]] = {2: _to_v2, 3: _to_v3, 4: _to_v4, 5: _to_v5, 6: _to_v6, 7: _to_v7, 8: _to_v8, 9: _to_v9, 10: _to_v10}


class IncompatibleStore(RuntimeError):
    pass


MIGRATION_LOCK = 0x70726F76  # the key of the server lock that serialises migrations ("prov")


def migrate(engine: sa.Engine) -> None:
    """Create the tables of a new store, or bring an old one to SCHEMA_VERSION, in one transaction.

    Two processes opening a new store at once (two cron entries, beat firings, workers) would
    both create its tables, and the second fail (PostgreSQL: a duplicate ``pg_type`` row): a
    server lock makes the second wait and then find them. SQLite needs none: its transactions
    begin IMMEDIATE, which takes the file's write lock first (:class:`runner.state.store.StateStore`)."""
    with engine.connect() as conn, _migration_lock(conn), conn.begin():
        _migrate(conn)


@contextmanager
def _migration_lock(conn: sa.Connection) -> Iterator[None]:
    """Hold the server's named lock (a session lock: MariaDB's DDL commits on its own)."""
    dialect = conn.dialect.name
    if dialect == "postgresql":
        lock, unlock = "SELECT pg_advisory_lock(:key)", "SELECT pg_advisory_unlock(:key)"
    elif dialect in ("mysql", "mariadb"):
        lock, unlock = "SELECT GET_LOCK(CONCAT('provision-', :key), 300)", "SELECT RELEASE_LOCK(CONCAT('provision-', :key))"
    else:
        yield
        return
    conn.execute(sa.text(lock), {"key": MIGRATION_LOCK})
    conn.commit()
    try:
        yield
    finally:
        conn.rollback()  # a failed migration left its transaction open
        conn.execute(sa.text(unlock), {"key": MIGRATION_LOCK})
        conn.commit()


def _migrate(conn: sa.Connection) -> None:
    inspector = sa.inspect(conn)
    if not inspector.has_table("provision_meta"):
        metadata.create_all(conn)
        conn.execute(meta.insert().values(key="schema_version", value=str(SCHEMA_VERSION)))
        return
    found = int(conn.execute(sa.select(meta.c.value).where(meta.c.key == "schema_version")).scalar_one())
    if found > SCHEMA_VERSION:
        raise IncompatibleStore(f"the state store has schema version {found}, newer than this provision "
                                f"understands ({SCHEMA_VERSION}); upgrade provision")
    for version in range(found + 1, SCHEMA_VERSION + 1):
        MIGRATIONS[version](conn)
        conn.execute(meta.update().where(meta.c.key == "schema_version").values(value=str(version)))
